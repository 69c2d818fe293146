"""The one check a reviewer (and CI) runs on a values pull request: `dask-platform validate`.

    dask-platform validate                        # every check, text report, exit 1 on any problem
    dask-platform validate --base origin/main     # plus which objects change against the base branch
    dask-platform validate --base origin/main --markdown > summary.md   # for a PR comment / job summary

Each check is one function that returns typed problems: values schema and helm render per cluster
(``render_each``), kubernetes-validate --strict for the cluster's Kubernetes version, the CRD schemas of custom
resources, the object policy (``dask_platform.policy``), and drift of every generated file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dask_platform import generated
from dask_platform.argocd import argocd_outputs
from dask_platform.crdschema import is_custom, validate_custom
from dask_platform.environment import version_outputs
from dask_platform.errors import UserError, display_path
from dask_platform.helmbin import find_helm
from dask_platform.policy import check_objects
from dask_platform.render import HelmError, RenderedCluster, all_feature_objects, render_clusters
from dask_platform.repo import RepoTree
from dask_platform.schema import schema_outputs

CheckName = Literal["schema", "render", "kubernetes-schema", "policy", "drift"]


@dataclass(frozen=True)
class Problem:
    check: CheckName
    where: str
    detail: str


@dataclass
class Report:
    clusters: list[str] = field(default_factory=list)
    objects: int = 0
    problems: list[Problem] = field(default_factory=list)
    changes: dict[str, list[str]] = field(default_factory=dict)  # cluster -> lines

    @property
    def ok(self) -> bool:
        return not self.problems


def _object_key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def diff_objects(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Leaf paths that differ between two objects: 'spec.replicas: 4 -> 6'."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_objects(a, b, path)
        else:

            def short(v: Any) -> str:
                text = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
                return text if len(text) <= 60 else text[:57] + "..."

            out.append(
                f"{path}: {short(a) if a is not None else '(none)'} -> {short(b) if b is not None else '(none)'}"
            )
    return out


def _git(tree: RepoTree, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(tree.root), *args], capture_output=True, text=True)


def objects_at(tree: RepoTree, ref: str, folder: Path) -> dict[str, dict[str, Any]] | None:
    """Objects of a rendered folder as committed at git ``ref`` (None when the folder did not exist there)."""
    if _git(tree, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise UserError(f"--base {ref}: not a commit in {display_path(tree.root)}")
    rel = tree.rel(folder)
    rel = _git(tree, "rev-parse", "--show-prefix").stdout.strip() + rel  # the tree may sit below the git root
    if _git(tree, "cat-file", "-e", f"{ref}:{rel}").returncode != 0:
        return None
    out = {}
    for name in _git(tree, "ls-tree", "--name-only", f"{ref}:{rel}").stdout.split():
        if name.endswith(".yaml"):
            shown = _git(tree, "show", f"{ref}:{rel}/{name}")
            if shown.returncode != 0:
                raise UserError(f"git show {ref}:{rel}/{name} failed: {shown.stderr.strip()}")
            obj = yaml.safe_load(shown.stdout)
            out[_object_key(obj)] = obj
    return out


def change_summary(tree: RepoTree, base: str, rendered: Iterable[RenderedCluster]) -> dict[str, list[str]]:
    """Per cluster, the objects added, removed and changed between ``base`` and this tree's render."""
    out = {}
    for r in rendered:
        name = r.cluster.name
        before = objects_at(tree, base, r.output.path)
        after = {_object_key(o): o for o in r.objects}
        if before is None:
            out[name] = [f"new cluster: {len(after)} objects"]
            continue
        lines = [f"added {k}" for k in sorted(set(after) - set(before))]
        lines += [f"removed {k}" for k in sorted(set(before) - set(after))]
        for k in sorted(set(after) & set(before)):
            changes = diff_objects(before[k], after[k])
            if changes:
                lines.append(f"changed {k}: " + "; ".join(changes[:6]) + (" ..." if len(changes) > 6 else ""))
        if lines:
            out[name] = lines
    return out


def render_each(tree: RepoTree, helm: Path) -> tuple[dict[str, RenderedCluster], list[Problem]]:
    """Render every cluster on its own, so one cluster's bad values do not hide the others' problems."""
    rendered, problems = {}, []
    for name in tree.cluster_names():
        try:
            rendered[name] = render_clusters(tree, [name], helm)[0]
        except HelmError as exc:
            problems.append(Problem("render", name, str(exc)))
        except UserError as exc:
            problems.append(Problem("schema", name, str(exc)))
    return rendered, problems


def check_kubernetes_schemas(r: RenderedCluster) -> list[Problem]:
    """kubernetes-validate --strict for the cluster's Kubernetes version (built-in kinds)."""
    import kubernetes_validate

    version = f"{r.cluster.kubernetes_version}.0"
    problems = []
    for obj in r.objects:
        if is_custom(obj):
            continue
        where = f"{r.cluster.name}: {_object_key(obj)}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(
                Problem("kubernetes-schema", where, f"{exc.message} (at {path or 'top level'}; Kubernetes {version})")
            )
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
            problems.append(Problem("kubernetes-schema", where, str(exc)))
    return problems


def check_crd_schemas(tree: RepoTree, r: RenderedCluster) -> list[Problem]:
    """Custom resources (KEDA, prometheus-operator) against their CRD schemas."""
    custom = [o for o in r.objects if is_custom(o)]
    return [
        Problem("kubernetes-schema", f"{r.cluster.name}: {_object_key(obj)}", f"{error} (CRD schema)")
        for obj, errors in zip(custom, validate_custom(tree.crd_dir, custom), strict=True)
        for error in errors
    ]


def check_policy(r: RenderedCluster) -> list[Problem]:
    return [
        Problem("policy", f"{r.cluster.name}: {v.kind}/{v.name}", f"{v.rule}: {v.detail}")
        for v in check_objects(r.objects)
    ]


def check_drift(tree: RepoTree, rendered: dict[str, RenderedCluster], helm: Path) -> list[Problem]:
    """Every generated file against its generator: rendered/, the Argo CD manifests (when every cluster
    rendered), values.schema.json and the files derived from the pins."""
    outputs: list[tuple[generated.AnyOutput, str]] = [(r.output, "render --all") for r in rendered.values()]
    if set(rendered) == set(tree.cluster_names()):
        objects = {name: r.objects for name, r in rendered.items()}
        clusters = [r.cluster for r in rendered.values()]
        possible = all_feature_objects(tree, helm)
        outputs += [(o, "render --all") for o in argocd_outputs(tree, clusters, objects, possible)]
    outputs += [(o, "schema") for o in schema_outputs(tree)]
    outputs += [(o, "versions sync") for o in version_outputs(tree)]
    return [
        Problem("drift", display_path(output.path), f"stale; run `dask-platform {command}`")
        for output, command in outputs
        if generated.diff(output)
    ]


def run_checks(tree: RepoTree, base: str | None = None, helm: Path | None = None) -> Report:
    helm = helm or find_helm()
    rendered, problems = render_each(tree, helm)
    report = Report(clusters=tree.cluster_names(), problems=problems)
    for r in rendered.values():
        report.objects += len(r.objects)
        report.problems += check_kubernetes_schemas(r) + check_crd_schemas(tree, r) + check_policy(r)
    report.problems += check_drift(tree, rendered, helm)
    if base:
        report.changes = change_summary(tree, base, rendered.values())
    return report


def format_report(report: Report, markdown: bool, base: str | None) -> str:
    status = "passed" if report.ok else f"failed: {len(report.problems)} problem(s)"
    lines = []
    if markdown:
        lines.append(f"### dask-platform validation: {status}")
        lines.append("")
        lines.append(
            f"{len(report.clusters)} clusters, {report.objects} objects: values schema, helm render, "
            "kubernetes-validate --strict, pod/RBAC policy, drift."
        )
        if report.problems:
            lines += ["", "| check | where | problem |", "|---|---|---|"]
            lines += [f"| {p.check} | `{p.where}` | {p.detail.replace('|', '/')} |" for p in report.problems]
        if base is not None:
            lines += ["", f"#### Changes against `{base}`"]
            if not report.changes:
                lines.append("No rendered object changes.")
            for cluster, changes in report.changes.items():
                lines.append(f"- **{cluster}**")
                lines += [f"  - {c}" for c in changes]
    else:
        lines.append(f"validation {status} ({len(report.clusters)} clusters, {report.objects} objects)")
        lines += [f"  [{p.check}] {p.where}: {p.detail}" for p in report.problems]
        if base is not None:
            lines.append(f"changes against {base}:" if report.changes else f"no rendered changes against {base}")
            for cluster, changes in report.changes.items():
                lines.append(f"  {cluster}:")
                lines += [f"    {c}" for c in changes]
    return "\n".join(lines)

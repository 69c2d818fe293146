"""The one command a reviewer (and CI) runs on a values pull request.

    python scripts/validate.py                        # every check, text report, exit 1 on any problem
    python scripts/validate.py --base origin/main     # plus which objects change against the base branch
    python scripts/validate.py --base origin/main --markdown > summary.md   # for a PR comment / job summary

Checks, per cluster: values schema, render (helm), kubernetes-validate --strict for the cluster's Kubernetes
version, the object policy (scripts/policy.py), and drift (committed rendered/ and Argo CD manifests, the
generated values.schema.json and the files derived from the environment's pins).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.common import CHART_DIR, CLUSTERS_DIR, UserError, clusters_dir_option, display_path
from scripts.crdschema import is_custom, validate_custom
from scripts.layers import cluster_names
from scripts.policy import check_objects


@dataclass
class Problem:
    cls: str  # schema | render | kubernetes-schema | policy | drift
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


def objects_at(ref: str, folder: Path) -> dict[str, dict[str, Any]] | None:
    """Objects of a rendered folder as committed at git ``ref`` (None when the folder did not exist)."""
    root = folder.parent
    while not (root / ".git").exists() and root != root.parent:
        root = root.parent
    rel = folder.relative_to(root).as_posix()
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "--name-only", f"{ref}:{rel}"], capture_output=True, text=True
    )
    if listing.returncode != 0:
        if (
            "Not a valid object name" in listing.stderr
            or "not a tree" in listing.stderr
            or "does not exist" in listing.stderr
        ):
            return None
        raise UserError(f"git ls-tree {ref}:{rel} failed: {listing.stderr.strip()}")
    out = {}
    for name in listing.stdout.split():
        if name.endswith(".yaml"):
            text = subprocess.run(
                ["git", "-C", str(root), "show", f"{ref}:{rel}/{name}"], capture_output=True, text=True, check=True
            ).stdout
            obj = yaml.safe_load(text)
            out[_object_key(obj)] = obj
    return out


def change_summary(base: str, rendered: dict[str, Any]) -> dict[str, list[str]]:
    """Per cluster, the objects added, removed and changed between ``base`` and this tree's render."""
    out = {}
    for name, r in rendered.items():
        before = objects_at(base, r.cluster.rendered_dir)
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


def run_checks(clusters_dir: Path = CLUSTERS_DIR, chart_dir: Path = CHART_DIR, base: str | None = None) -> Report:
    import kubernetes_validate

    from scripts.layers import load_cluster
    from scripts.render import argocd_changes, diff_rendered, render_clusters
    from scripts.schema import SOURCE, TARGET, build_schema_json
    from scripts.toolbin import find_helm

    report = Report(clusters=cluster_names(clusters_dir))
    helm = find_helm()
    rendered = {}
    for name in report.clusters:
        try:
            rendered[name] = render_clusters([name], helm, clusters_dir, chart_dir)[0]
        except UserError as exc:
            cls = "render" if "helm template failed" in str(exc) else "schema"
            report.problems.append(Problem(cls, name, str(exc)))
    for name, r in rendered.items():
        version = f"{load_cluster(name, clusters_dir).kubernetes_version}.0"
        custom = [o for o in r.objects if is_custom(o)]
        for obj, errors in zip(custom, validate_custom(custom), strict=True):
            for error in errors:
                report.problems.append(
                    Problem("kubernetes-schema", f"{name}: {_object_key(obj)}", f"{error} (CRD schema)")
                )
        for obj in r.objects:
            report.objects += 1
            if is_custom(obj):
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                report.problems.append(
                    Problem(
                        "kubernetes-schema",
                        f"{name}: {_object_key(obj)}",
                        f"{exc.message} (at {path or 'top level'}; Kubernetes {version})",
                    )
                )
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
                report.problems.append(Problem("kubernetes-schema", f"{name}: {_object_key(obj)}", str(exc)))
        for v in check_objects(r.objects):
            report.problems.append(Problem("policy", f"{name}: {v.kind}/{v.name}", f"{v.rule}: {v.detail}"))
        if diff_rendered(r):
            report.problems.append(
                Problem(
                    "drift",
                    display_path(r.cluster.rendered_dir),
                    "committed manifests differ from the render; run scripts/render.py",
                )
            )
    if len(rendered) == len(report.clusters):
        for path in argocd_changes(clusters_dir):
            report.problems.append(Problem("drift", display_path(path), "stale; run scripts/render.py --all"))
    if chart_dir == CHART_DIR and TARGET.read_text() != build_schema_json(SOURCE):
        report.problems.append(Problem("drift", display_path(TARGET), "stale; run scripts/schema.py"))
    if clusters_dir == CLUSTERS_DIR:
        from scripts.versions import stale_files

        for path in stale_files():
            report.problems.append(Problem("drift", display_path(path), "stale; run scripts/versions.py sync"))
    if base:
        report.changes = change_summary(base, rendered)
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
            lines += [f"| {p.cls} | `{p.where}` | {p.detail.replace('|', '/')} |" for p in report.problems]
        if base is not None:
            lines += ["", f"#### Changes against `{base}`"]
            if not report.changes:
                lines.append("No rendered object changes.")
            for cluster, changes in report.changes.items():
                lines.append(f"- **{cluster}**")
                lines += [f"  - {c}" for c in changes]
    else:
        lines.append(f"validation {status} ({len(report.clusters)} clusters, {report.objects} objects)")
        lines += [f"  [{p.cls}] {p.where}: {p.detail}" for p in report.problems]
        if base is not None:
            lines.append(f"changes against {base}:" if report.changes else f"no rendered changes against {base}")
            for cluster, changes in report.changes.items():
                lines.append(f"  {cluster}:")
                lines += [f"    {c}" for c in changes]
    return "\n".join(lines)


@click.command()
@click.option("--base", help="Git ref to summarise object changes against (e.g. origin/main).")
@click.option("--markdown", is_flag=True, help="Print the report as Markdown (PR comment, job summary).")
@clusters_dir_option
@click.option(
    "--chart", "chart_dir", type=click.Path(file_okay=False, path_type=Path), default=CHART_DIR, show_default=True
)
def main(base: str | None, markdown: bool, clusters_dir: Path, chart_dir: Path) -> None:
    """Validate every cluster; exit 1 when anything is wrong."""
    try:
        report = run_checks(clusters_dir, chart_dir, base)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(format_report(report, markdown, base))
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

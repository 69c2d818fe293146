"""Change a value the way a values pull request should: one line in the right file, validated, re-rendered.

    python scripts/values.py set aws dask.workerGroups.default.replicas=6
    python scripts/values.py set aws-example 'serviceAccounts.dask.annotations.eks\\.amazonaws\\.com/role-arn=arn:...'
    python scripts/values.py set minikube jupyter.enabled=false --no-render

TARGET is a cloud (edits values/<cloud>.yaml) or a cluster (edits the ``values:`` of clusters/<name>/cluster.yaml).
KEY is a dotted path (escape a dot inside a key as ``\\.``); VALUE is read as YAML (``6`` is a number, ``"6"`` a
string, ``null`` deletes the key as helm does). The file is edited with ruamel.yaml, so comments, key order and
quoting stay as they were; the change is checked against the chart's schema for every affected cluster before
anything is written, then the affected clusters are re-rendered.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.common import (
    CLUSTERS_DIR,
    VALUES_DIR,
    UserError,
    atomic_write,
    clusters_dir_option,
    display_path,
    report_user_errors,
)


@dataclass(frozen=True)
class Assignment:
    path: list[str]
    value: Any


def parse_assignment(text: str) -> Assignment:
    """``a.b\\.c=3`` -> Assignment(["a", "b.c"], 3)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UserError(f"{text!r}: expected KEY=VALUE")
    parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]
    if any(not p for p in parts):
        raise UserError(f"{key!r}: empty key in the path")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise UserError(f"{text!r}: the value is not valid YAML ({exc.__class__.__name__})") from None
    return Assignment(parts, value)


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def set_in_text(text: str, path: list[str], value: Any, source: Path) -> str:
    """The YAML ``text`` with ``path`` set to ``value``; every other byte unchanged."""
    y = _yaml()
    data = y.load(text) if text.strip() else CommentedMap()
    if data is None:
        data = CommentedMap()
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = CommentedMap()
            node[part] = child
        elif not isinstance(child, dict):
            raise UserError(
                f"is a {type(child).__name__}, not a mapping", file=source, key_path=".".join(path[: i + 1])
            )
        node = child
    node[path[-1]] = value
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


@dataclass(frozen=True)
class Target:
    file: Path
    prefix: list[str]  # where values start inside the file
    clusters: list[str]  # clusters whose rendering depends on the file


def resolve_target(name: str, clusters_dir: Path = CLUSTERS_DIR, values_dir: Path = VALUES_DIR) -> Target:
    from scripts.layers import cluster_names, load_cluster

    if (values_dir / f"{name}.yaml").is_file():
        users = [c for c in cluster_names(clusters_dir) if load_cluster(c, clusters_dir).cloud == name]
        return Target(values_dir / f"{name}.yaml", [], users)
    if (clusters_dir / name / "cluster.yaml").is_file():
        return Target(clusters_dir / name / "cluster.yaml", ["values"], [name])
    clouds = sorted(p.stem for p in values_dir.glob("*.yaml"))
    raise UserError(
        f"{name!r} is neither a cloud ({', '.join(clouds)}) nor a cluster under {display_path(clusters_dir)}"
    )


def apply(
    target_name: str, assignments: list[Assignment], clusters_dir: Path = CLUSTERS_DIR, render: bool = True
) -> tuple[Path, list[str]]:
    """Edit, validate every affected cluster on a scratch copy, then write and re-render. Returns the edited
    file and the re-rendered clusters."""
    from scripts.layers import load_cluster
    from scripts.render import build_values, render_clusters, write_argocd, write_rendered

    values_dir = clusters_dir.parent / "values"
    target = resolve_target(target_name, clusters_dir, values_dir)
    text = target.file.read_text()
    for a in assignments:
        text = set_in_text(text, [*target.prefix, *a.path], a.value, target.file)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        shutil.copytree(values_dir, scratch / "values")
        shutil.copytree(clusters_dir, scratch / "clusters", ignore=shutil.ignore_patterns("rendered", "argocd"))
        relative = target.file.relative_to(clusters_dir.parent)
        (scratch / relative).write_text(text)
        try:
            for name in target.clusters:
                build_values(load_cluster(name, scratch / "clusters"))
        except UserError as exc:  # name the real file, not its scratch copy
            raise UserError(str(exc).replace(f"{scratch}/", "")) from None
    atomic_write(target.file, text)
    if render and target.clusters:
        for rendered in render_clusters(target.clusters, clusters_dir=clusters_dir):
            write_rendered(rendered)
        write_argocd(clusters_dir)
    return target.file, target.clusters


@click.group()
def main() -> None:
    """Edit values files for a pull request."""


@main.command("set")
@click.argument("target")
@click.argument("assignments", nargs=-1, required=True)
@click.option("--no-render", is_flag=True, help="Only edit and validate; do not re-render.")
@clusters_dir_option
@report_user_errors
def set_command(target: str, assignments: tuple[str, ...], no_render: bool, clusters_dir: Path) -> None:
    """Set KEY=VALUE in TARGET (a cloud or a cluster), validate, and re-render what depends on it."""
    parsed = [parse_assignment(a) for a in assignments]
    path, clusters = apply(target, parsed, clusters_dir, render=not no_render)
    click.echo(f"{display_path(path)}: set {', '.join('.'.join(a.path) for a in parsed)}")
    if clusters and not no_render:
        click.echo(f"re-rendered: {', '.join(clusters)} (review with: python scripts/validate.py --base origin/main)")


if __name__ == "__main__":
    main()

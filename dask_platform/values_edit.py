"""Change a value the way a values pull request should: one line in the right file, validated, re-rendered.

    dask-platform values set aws dask.workerGroups.default.replicas=6
    dask-platform values set aws-example 'dask.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:...'
    dask-platform values set minikube jupyter.enabled=false --no-render

The target is a cloud (edits values/<cloud>.yaml) or a cluster (edits the ``values:`` of clusters/<name>/cluster.yaml).
KEY is a dotted path (escape a dot inside a key as ``\\.``); VALUE is read as YAML (``6`` is a number, ``"6"`` a
string, ``null`` deletes the key as helm does). The file is edited with ruamel.yaml, so comments, key order and
quoting stay as they were; the edited text is checked against the chart's schema for every affected cluster,
through the tree's unsaved edits, before anything is written; then the affected clusters are re-rendered.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.values import build_values


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
class EditTarget:
    """The file a values edit goes to, where the values start in it, and the clusters that render from it."""

    file: Path
    prefix: list[str]
    clusters: list[str]


def resolve_edit_target(tree: RepoTree, name: str) -> EditTarget:
    """A cloud name -> values/<cloud>.yaml (and its clusters); a cluster name -> its cluster.yaml ``values:``.
    A name that is both (minikube) is the cloud."""
    if name in tree.clouds():
        users = [c for c in tree.cluster_names() if load_cluster(tree, c).cloud == name]
        return EditTarget(tree.values_file(name), [], users)
    if name in tree.cluster_names():
        return EditTarget(tree.cluster_file(name), ["values"], [name])
    raise UserError(
        f"{name!r} is neither a cloud ({', '.join(tree.clouds())}) nor a cluster ({', '.join(tree.cluster_names())})"
    )


def edit_values(tree: RepoTree, target_name: str, assignments: list[Assignment]) -> tuple[EditTarget, str]:
    """The edited text of the target file, checked for every affected cluster; nothing is written."""
    target = resolve_edit_target(tree, target_name)
    text = tree.read_text(target.file)
    for a in assignments:
        text = set_in_text(text, [*target.prefix, *a.path], a.value, target.file)
    edited = tree.with_text(target.file, text)
    for name in target.clusters:
        build_values(edited, load_cluster(edited, name))
    return target, text

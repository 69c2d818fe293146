"""The clusters: clusters/<name>/cluster.yaml, read and checked against clusters/cluster.schema.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dask_platform.errors import UserError, key_path_str
from dask_platform.repo import RepoTree
from dask_platform.schema import explain, schema_errors


@dataclass(frozen=True)
class Cluster:
    """A cluster as described by clusters/<name>/cluster.yaml."""

    name: str
    cloud: str
    namespace: str
    release: str
    kubernetes_version: str
    path: Path
    overrides: dict[str, Any] = field(default_factory=dict)  # its `values:`
    settings: dict[str, Any] = field(default_factory=dict)  # everything else (region, nodeGroups, argocd, ...)


def supported_kubernetes_minors(tree: RepoTree) -> list[str]:
    """The Kubernetes minors the chart supports: those it has a cluster-autoscaler image for."""
    defaults = tree.load_mapping(tree.chart / "values.yaml")
    tags = defaults["cluster-autoscaler"]["image"]["tagByKubernetesMinor"]
    return sorted(tags, key=lambda v: tuple(int(p) for p in v.split(".")))


def load_cluster(tree: RepoTree, name: str) -> Cluster:
    """Read and check clusters/<name>/cluster.yaml."""
    path = tree.cluster_file(name)
    if not path.parent.is_dir():
        known = ", ".join(tree.cluster_names()) or "none"
        raise UserError(f"no cluster named {name!r} (known: {known})", file=path.parent)
    data = tree.load_mapping(path)
    errors = schema_errors(data, tree.load_mapping(tree.cluster_schema))
    if errors:
        key_path, message = explain(errors[0])
        raise UserError(message, file=path, key_path=key_path_str(key_path))
    clouds = tree.clouds()
    if data["cloud"] not in clouds:
        raise UserError(
            f"unknown cloud {data['cloud']!r}: expected one of {', '.join(clouds)} (a file values/<cloud>.yaml)",
            file=path,
            key_path="cloud",
        )
    minors = supported_kubernetes_minors(tree)
    if data["kubernetesVersion"] not in minors:
        raise UserError(
            f"Kubernetes {data['kubernetesVersion']} is not supported: expected one of {', '.join(minors)}",
            file=path,
            key_path="kubernetesVersion",
        )
    return Cluster(
        name=name,
        cloud=data["cloud"],
        namespace=data["namespace"],
        release=data.get("release", "dask"),
        kubernetes_version=data["kubernetesVersion"],
        path=path,
        overrides=data.get("values") or {},
        settings={k: v for k, v in data.items() if k != "values"},
    )


def load_clusters(tree: RepoTree, names: list[str] | None = None) -> list[Cluster]:
    """The named clusters (default: every clusters/*/cluster.yaml)."""
    return [load_cluster(tree, name) for name in (tree.cluster_names() if names is None else names)]

"""Render each cluster's manifests from the chart, its cloud's values and its cluster.yaml (helm via pyhelm3).

The output of a cluster is clusters/<name>/rendered/, one file per object, replaced as a whole; the Argo CD
manifests that derive from every cluster's render come from ``dask_platform.argocd``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dask_platform.clusters import Cluster, load_clusters
from dask_platform.errors import UserError
from dask_platform.generated import AnyOutput, FolderOutput, header
from dask_platform.helmbin import find_helm
from dask_platform.repo import RepoTree
from dask_platform.values import ClusterValues, build_values

COMMAND = "render --all"  # what a generated file tells you to run (any cluster list works too)


class HelmError(UserError):
    """helm itself refused to render the chart (a template error), as opposed to values that break the schema."""


@dataclass(frozen=True)
class RenderedCluster:
    """One cluster rendered: its values, its objects, and the files they are written as (name -> text)."""

    cluster: Cluster
    values: ClusterValues
    objects: list[dict[str, Any]]
    output: FolderOutput

    @property
    def files(self) -> dict[str, str]:
        return self.output.files


async def template_objects(
    helm: Path, chart_dir: Path, release: str, namespace: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """Render the chart with helm (through pyhelm3) and return its objects, CRDs included."""
    import pyhelm3
    import pyhelm3.errors

    client = pyhelm3.Client(executable=str(helm))
    try:
        chart = await client.get_chart(chart_dir)
        resources = await client.template_resources(chart, release, values, namespace=namespace, include_crds=True)
        return [r for r in resources if r]
    except pyhelm3.errors.Error as exc:
        message = " ".join(str(exc).split())
        raise HelmError(f"helm template failed: {message}", file=chart_dir) from None


def object_filename(obj: dict[str, Any], namespace: str | None = None) -> str:
    """A stable file name for an object: <kind>-<name>.yaml, lower case; an object in another namespace than the
    release's ``namespace`` (a tenant's) is <kind>-<its namespace>-<name>.yaml, as tenants' objects share names."""
    own = obj["metadata"].get("namespace")
    where = f"{own}-" if namespace and own and own != namespace else ""
    return f"{obj['kind'].lower()}-{where}{obj['metadata']['name']}.yaml"


def manifest_files(cluster: Cluster, objects: Iterable[dict[str, Any]]) -> dict[str, str]:
    """One YAML file per object, each with the generated-file header, sorted by file name."""
    # Paths as the repository lays them out, whichever folder the tree is in (a scratch copy renders the same).
    sources = f"charts/dask-platform, values/{cluster.cloud}.yaml and clusters/{cluster.name}/cluster.yaml"
    top = header(COMMAND, sources)
    files: dict[str, str] = {}
    for obj in objects:
        name = object_filename(obj, cluster.namespace)
        if name in files:
            raise UserError(f"two objects render to the same file {name}", file=cluster.path.parent / "rendered")
        files[name] = top + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=120)
    return dict(sorted(files.items()))


def render_clusters(tree: RepoTree, names: list[str] | None = None, helm: Path | None = None) -> list[RenderedCluster]:
    """Render the named clusters (default: all). Every cluster's values are checked first, so bad input fails
    before any helm process starts; then helm renders them concurrently (separate processes)."""
    clusters = load_clusters(tree, names)
    values = [build_values(tree, c) for c in clusters]
    helm = helm or find_helm()

    async def _all() -> list[Any]:
        jobs = [
            template_objects(helm, tree.chart, c.release, c.namespace, v.user)
            for c, v in zip(clusters, values, strict=True)
        ]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(_all())
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [
        RenderedCluster(c, v, objects, FolderOutput(tree.rendered_dir(c.name), manifest_files(c, objects)))
        for c, v, objects in zip(clusters, values, results, strict=True)
    ]


def render_outputs(tree: RepoTree, names: list[str] | None = None, helm: Path | None = None) -> list[AnyOutput]:
    """What `dask-platform render` writes: the rendered/ folders of ``names`` (default: every cluster) and the
    Argo CD manifests, which derive from every cluster's objects (the others' as committed)."""
    from dask_platform.argocd import argocd_outputs

    chosen = render_clusters(tree, names, helm)
    fresh = {r.cluster.name for r in chosen}
    others = load_clusters(tree, [n for n in tree.cluster_names() if n not in fresh])
    objects = {r.cluster.name: r.objects for r in chosen} | {c.name: committed_objects(tree, c.name) for c in others}
    clusters = sorted([r.cluster for r in chosen] + others, key=lambda c: c.name)
    possible = all_feature_objects(tree, helm or find_helm())
    return [r.output for r in chosen] + argocd_outputs(tree, clusters, objects, possible)


def all_feature_objects(tree: RepoTree, helm: Path) -> list[dict[str, Any]]:
    """The chart rendered with every optional feature on: every kind a values change could add to a cluster."""
    values = tree.load_mapping(tree.all_features_values)
    return asyncio.run(template_objects(helm, tree.chart, "dask", "dask", values))


def committed_objects(tree: RepoTree, name: str) -> list[dict[str, Any]]:
    """A cluster's objects as its rendered/ folder holds them."""
    return [tree.load_mapping(p) for p in sorted(tree.rendered_dir(name).glob("*.yaml"))]


def rendered_objects(tree: RepoTree, name: str) -> list[dict[str, Any]]:
    """A cluster's committed objects (what Argo CD applies), or a clear error when it was never rendered."""
    objects = committed_objects(tree, name)
    if not objects:
        raise UserError(
            f"no rendered objects in {tree.rel(tree.rendered_dir(name))}: run `dask-platform render {name}`"
        )
    return objects

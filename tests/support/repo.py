"""The repository under test (this checkout, read through a RepoTree) and helpers to read its rendered objects."""

from __future__ import annotations

from dask_platform.render import RenderedCluster
from dask_platform.repo import RepoTree

REPO = RepoTree.checkout()


def objects_of(rendered: RenderedCluster, kind: str) -> dict[str, dict]:
    """Objects of one kind by name."""
    return {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == kind}


def container_args(deployment: dict) -> list[str]:
    return deployment["spec"]["template"]["spec"]["containers"][0].get("args", [])

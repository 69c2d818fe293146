"""Shared fixtures: the real helm binary, and every shipped cluster rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.common import REPO_ROOT
from scripts.layers import cluster_names, load_cluster
from scripts.render import RenderedCluster, render_clusters
from scripts.toolbin import find_helm


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_helm()


@pytest.fixture(scope="session")
def rendered(helm: Path) -> dict[str, RenderedCluster]:
    """Every cluster under clusters/, rendered in memory from the working tree."""
    return {r.cluster.name: r for r in render_clusters(cluster_names(), helm)}


@pytest.fixture(scope="session")
def clouds_by_cluster() -> dict[str, str]:
    return {name: load_cluster(name).cloud for name in cluster_names()}


def objects_of(rendered: RenderedCluster, kind: str) -> dict[str, dict]:
    """Objects of one kind by name."""
    return {o["metadata"]["name"]: o for o in rendered.objects if o["kind"] == kind}


def container_args(deployment: dict) -> list[str]:
    return deployment["spec"]["template"]["spec"]["containers"][0].get("args", [])


REPO = REPO_ROOT

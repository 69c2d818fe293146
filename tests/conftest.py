"""Shared fixtures: the real helm binary, the repository (and scratch copies of it), every cluster rendered once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dask_platform.clusters import load_cluster
from dask_platform.helmbin import find_helm
from dask_platform.render import RenderedCluster, render_clusters
from dask_platform.repo import RepoTree
from tests.support.repo import REPO
from tests.support.scratch import scratch_copy


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_helm()


@pytest.fixture
def scratch(tmp_path: Path) -> RepoTree:
    """A writable copy of the repository (a git repository with one commit: the working tree as it is)."""
    return scratch_copy(tmp_path / "repo")


@pytest.fixture(scope="session")
def node():
    """The real single-node cluster (testbed.node, as `scripts/dev node up` starts it), for the whole session; torn
    down at the end."""
    from tests.support.node import running_node, unavailable_reason

    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"no single-node cluster in CI: {reason}")
        pytest.skip(reason)
    with running_node(REPO) as node:
        yield node


@pytest.fixture(scope="session")
def embedded(tmp_path_factory) -> dict:
    """The small rossmann run (testbed.daskproc.small_run_args) on an embedded cluster of 2 workers: the reference
    results the node's runs (the shared scheduler, a tenant's own cluster) must reproduce."""
    import json

    from testbed.daskproc import run_cli

    tmp = tmp_path_factory.mktemp("node-embedded")
    proc = run_cli(["--workers", "2", "--no-progress"], tmp)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(next((tmp / "results").glob("*/summary.json")).read_text())


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory):
    """A real kube-apiserver + etcd (testbed/envtest.py) for one test module; never skipped in CI."""
    from testbed.envtest import start_control_plane

    try:
        with start_control_plane(tmp_path_factory.mktemp("envtest")) as plane:
            yield plane
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no kube-apiserver in CI: {exc}")
        pytest.skip(f"no kube-apiserver here: {exc}")


@pytest.fixture(scope="module")
def api(control_plane):
    """An admin API client of ``control_plane``."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture(scope="session")
def rendered(helm: Path) -> dict[str, RenderedCluster]:
    """Every cluster under clusters/, rendered in memory from the working tree."""
    return {r.cluster.name: r for r in render_clusters(REPO, None, helm)}


@pytest.fixture(scope="session")
def clouds_by_cluster() -> dict[str, str]:
    return {name: load_cluster(REPO, name).cloud for name in REPO.cluster_names()}

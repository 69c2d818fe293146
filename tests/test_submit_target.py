"""Where a job runs: --scheduler, then --cluster, then $DASK_SCHEDULER_ADDRESS, else an embedded cluster; one
target type per way, each with what it needs (the embedded cluster: the tree given with --repo)."""

from __future__ import annotations

import pytest

from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.submit.target import (
    Address,
    Connection,
    DeployedCluster,
    Embedded,
    normalize_address,
    resolve_target,
)
from tests.support.repo import REPO


def test_precedence_scheduler_then_cluster_then_environment_then_embedded():
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://env:8786"}
    assert resolve_target(REPO, Connection(scheduler="h:1"), env) == Address("tcp://h:1", source="--scheduler")
    assert resolve_target(REPO, Connection(cluster="minikube", kube_context="k"), env) == DeployedCluster(
        REPO, "minikube", kube_context="k"
    )
    assert resolve_target(REPO, Connection(), env) == Address("tcp://env:8786", source="DASK_SCHEDULER_ADDRESS")
    assert resolve_target(REPO, Connection(workers=3, memory_limit="1GiB"), {}) == Embedded(
        REPO, workers=3, memory_limit="1GiB"
    )
    with pytest.raises(UserError, match="either --scheduler or --cluster"):
        resolve_target(REPO, Connection(scheduler="h:1", cluster="minikube"), {})


def test_only_the_embedded_cluster_shares_this_environment():
    """Versions are compared and job code shipped for every target but the embedded cluster; a port-forward is
    tried three times (each connection a new stream)."""
    assert [t.shares_environment for t in (Embedded(REPO), Address("tcp://h:1"), DeployedCluster(REPO, "x"))] == [
        True,
        False,
        False,
    ]
    assert DeployedCluster(REPO, "x").connect_attempts == 3 and Address("tcp://h:1").connect_attempts == 1


def test_every_target_works_on_the_tree_it_is_given(tmp_path):
    """--repo reaches the embedded cluster (its Dask configuration) and the deployed cluster (its rendered objects);
    tests/test_submit_run.py runs a job with --repo."""
    other = RepoTree(tmp_path)
    assert resolve_target(other, Connection(), {}).tree == other
    assert resolve_target(other, Connection(cluster="minikube"), {}).tree == other


@pytest.mark.parametrize("bad", ["localhost", "tcp://host:port", ":8786"])
def test_bad_addresses(bad: str):
    with pytest.raises(UserError, match="expected tcp://HOST:PORT"):
        normalize_address(bad)

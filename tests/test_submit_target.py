"""Where a job runs: --scheduler, then --cluster, then $DASK_SCHEDULER_ADDRESS, else an embedded cluster."""

from __future__ import annotations

import pytest

from dask_platform.errors import UserError
from dask_platform.submit.target import normalize_address, resolve_run_target


def test_precedence_scheduler_then_cluster_then_environment_then_embedded():
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://env:8786"}
    assert resolve_run_target("h:1", None, env).address == "tcp://h:1"
    assert resolve_run_target(None, "minikube", env).kind == "cluster"
    assert resolve_run_target(None, None, env).address == "tcp://env:8786"
    assert resolve_run_target(None, None, env).source == "DASK_SCHEDULER_ADDRESS"
    assert resolve_run_target(None, None, {}).kind == "embedded"
    with pytest.raises(UserError, match="either --scheduler or --cluster"):
        resolve_run_target("h:1", "minikube", {})


@pytest.mark.parametrize("bad", ["localhost", "tcp://host:port", ":8786"])
def test_bad_addresses(bad: str):
    with pytest.raises(UserError, match="expected tcp://HOST:PORT"):
        normalize_address(bad)

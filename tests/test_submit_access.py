"""A deployed cluster's scheduler Service comes from its rendered manifests (what Argo CD applies)."""

from __future__ import annotations

import pytest

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.submit.access import scheduler_service
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["minikube", "aws-example", "gcp-example", "azure-example"])
def test_cluster_scheduler_service_comes_from_the_rendered_manifests(name: str):
    ref = scheduler_service(REPO, name)
    cluster = load_cluster(REPO, name)
    assert ref.namespace == cluster.namespace
    assert ref.name == f"{cluster.release}-scheduler"
    assert ref.port == 8786
    assert ref.selector["app.kubernetes.io/component"] == "scheduler"


def test_unrendered_cluster_is_a_clear_error(scratch: RepoTree):
    scratch.cluster_file("c").parent.mkdir()
    scratch.cluster_file("c").write_text(
        "cloud: minikube\nnamespace: d\nkubernetesVersion: '1.36'\nargocd: {name: c}\n"
    )
    with pytest.raises(UserError, match=r"no rendered scheduler Service: run `dask-platform render c`"):
        scheduler_service(scratch, "c")


@pytest.mark.dask
def test_a_silent_port_is_an_error_not_a_hang():
    """A peer that accepts and never answers (a stalled port-forward stream, another service) gets a clear error
    after the timeout, once per attempt, instead of distributed's unbounded wait for the handshake."""
    import socket
    import threading
    import time

    from dask_platform.submit.access import connect

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()[0]) for _ in range(2)], daemon=True).start()
    start = time.perf_counter()
    with pytest.raises(UserError, match="accepted the connection but sent no handshake within 6 s"):
        connect(f"tcp://127.0.0.1:{listener.getsockname()[1]}", 1, attempts=2)
    assert time.perf_counter() - start < 20
    assert len(accepted) == 2  # one new connection per attempt
    listener.close()


def _pod(name: str, phase: str = "Running", ready: bool = True, deleting: bool = False, age_s: int = 0):
    import datetime

    from kubernetes import client as k8s

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            creation_timestamp=now - datetime.timedelta(seconds=age_s),
            deletion_timestamp=now if deleting else None,
        ),
        status=k8s.V1PodStatus(
            phase=phase, conditions=[k8s.V1PodCondition(type="Ready", status="True" if ready else "False")]
        ),
    )


def test_port_forward_never_picks_a_pod_being_deleted():
    """A deleted scheduler stays Running while its preStop drains; the replacement must be chosen (the node test
    that deletes the scheduler failed on this once: the reconnect went to the terminating pod and was reset)."""
    from dask_platform.submit.access import serving_pod

    old = _pod("old", deleting=True, age_s=600)
    new = _pod("new", ready=False, age_s=5)
    assert serving_pod([old, new]) == "new"
    assert serving_pod([old]) is None
    assert serving_pod([_pod("pending", phase="Pending")]) is None


def test_port_forward_prefers_a_ready_pod_then_the_newest():
    from dask_platform.submit.access import serving_pod

    assert serving_pod([_pod("starting", ready=False, age_s=1), _pod("ready", age_s=100)]) == "ready"
    assert serving_pod([_pod("older", age_s=100), _pod("newer", age_s=1)]) == "newer"

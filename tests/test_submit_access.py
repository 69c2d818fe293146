"""Reaching a cluster: a deployed cluster's scheduler Service comes from its committed objects (what Argo CD
applies), found by its component label; whatever stops a target from being reached is one error line; the embedded
cluster's workers start with the platform's Dask configuration."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.render import render_clusters
from dask_platform.repo import RepoTree
from dask_platform.submit.connect import reach
from dask_platform.submit.kube import scheduler_service
from dask_platform.submit.target import Address, DeployedCluster
from testbed.daskproc import free_port
from tests.support.repo import REPO


@pytest.mark.parametrize("name", ["minikube", "aws-example", "gcp-example", "azure-example"])
def test_cluster_scheduler_service_comes_from_the_rendered_manifests(name: str):
    ref = scheduler_service(REPO, name)
    cluster = load_cluster(REPO, name)
    assert ref.namespace == cluster.namespace
    assert ref.name == f"{cluster.release}-scheduler"
    assert ref.port == 8786
    assert ref.selector["app.kubernetes.io/component"] == "scheduler"


def test_the_service_is_found_whatever_the_chart_names_it(scratch: RepoTree, helm: Path):
    """The Service is found by its component label, not by a file name rebuilt from the release: a release the
    chart shortens (here the chart's prefix cut to 12 characters, the longest release the cluster schema allows)
    still gets its port-forward. The lookup by "service-<release>-scheduler.yaml" found nothing here."""
    helpers = scratch.chart / "templates" / "_helpers-names.tpl"
    text = helpers.read_text()
    assert text.count(".Release.Name | trunc 40") == 1
    helpers.write_text(text.replace(".Release.Name | trunc 40", ".Release.Name | trunc 12"))
    release = "forecasting-team-eu-west-1-production-ab"
    assert len(release) == 40  # clusters/cluster.schema.yaml: release names have at most 40 characters
    folder = scratch.clusters_dir / "long"
    folder.mkdir()
    settings = yaml.safe_load(scratch.cluster_file("minikube").read_text()) | {"release": release}
    (folder / "cluster.yaml").write_text(yaml.safe_dump(settings))
    [rendered] = render_clusters(scratch, ["long"], helm)
    rendered.output.write()
    ref = scheduler_service(scratch, "long")
    assert ref.name == "forecasting-scheduler" != f"{release}-scheduler"
    assert ref.selector["app.kubernetes.io/instance"] == release and ref.port == 8786
    assert not (scratch.rendered_dir("long") / f"service-{release}-scheduler.yaml").exists()


def test_unrendered_cluster_is_a_clear_error(scratch: RepoTree):
    scratch.cluster_file("c").parent.mkdir()
    scratch.cluster_file("c").write_text(
        "cloud: minikube\nnamespace: d\nkubernetesVersion: '1.36'\nargocd: {name: c}\n"
    )
    with pytest.raises(UserError, match=r"no rendered objects in clusters/c/rendered: run `dask-platform render c`"):
        scheduler_service(scratch, "c")


def test_a_rendered_folder_without_a_scheduler_service_is_a_clear_error(scratch: RepoTree):
    (scratch.rendered_dir("minikube") / "service-dask-scheduler.yaml").unlink()
    with pytest.raises(UserError, match=r"expected one Service labelled app.kubernetes.io/component: scheduler"):
        scheduler_service(scratch, "minikube")


def test_a_missing_kubeconfig_is_one_line(tmp_path: Path):
    target = DeployedCluster(REPO, "minikube", kubeconfig=str(tmp_path / "missing"))
    with pytest.raises(UserError) as info, reach(target, 2, print):
        pass
    message = str(info.value)
    assert message.startswith("cluster minikube: no usable kubeconfig (") and "missing" in message
    assert "\n" not in message


def kubeconfig(path: Path, server: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


@contextlib.contextmanager
def api_server_refusing(status: int) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering every request as a Kubernetes API server refusing it would."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_kubernetes_api_refusals_and_silence_are_one_line(tmp_path: Path):
    """They were tracebacks (an ApiException, urllib3's MaxRetryError) before the conversion was in one place."""
    with api_server_refusing(403) as server:
        target = DeployedCluster(REPO, "minikube", kubeconfig=kubeconfig(tmp_path / "refusing", server))
        with (
            pytest.raises(UserError, match=r"^cluster minikube: the Kubernetes API answered 403 "),
            reach(target, 2, print),
        ):
            pass
    target = DeployedCluster(
        REPO, "minikube", kubeconfig=kubeconfig(tmp_path / "gone", f"http://127.0.0.1:{free_port()}")
    )
    with (
        pytest.raises(UserError, match=r"^cluster minikube: the Kubernetes API server did not answer"),
        reach(target, 2, print),
    ):
        pass


@pytest.mark.dask
def test_errors_of_the_run_itself_are_not_converted():
    """reach converts what stops it from reaching the scheduler, not what the job raises once connected (the CLI
    tells a lost scheduler from the job's own errors)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        with pytest.raises(OSError, match="the job's own"), reach(Address(address), 5, print) as reached:
            assert reached.address == address and reached.client.scheduler_info()["address"] == address
            raise OSError("the job's own")


@pytest.mark.dask
def test_a_silent_port_is_an_error_not_a_hang():
    """A peer that accepts and never answers (a stalled port-forward stream, another service) gets a clear error
    after the timeout, once per attempt, instead of distributed's unbounded wait for the handshake."""
    import socket
    import threading
    import time

    from dask_platform.submit.connect import Unreachable, connect

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()[0]) for _ in range(2)], daemon=True).start()
    start = time.perf_counter()
    with pytest.raises(Unreachable, match="accepted the connection but sent no handshake within 6 s"):
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
    from dask_platform.submit.kube import serving_pod

    old = _pod("old", deleting=True, age_s=600)
    new = _pod("new", ready=False, age_s=5)
    assert serving_pod([old, new]) == "new"
    assert serving_pod([old]) is None
    assert serving_pod([_pod("pending", phase="Pending")]) is None


def test_port_forward_prefers_a_ready_pod_then_the_newest():
    from dask_platform.submit.kube import serving_pod

    assert serving_pod([_pod("starting", ready=False, age_s=1), _pod("ready", age_s=100)]) == "ready"
    assert serving_pod([_pod("older", age_s=100), _pod("newer", age_s=1)]) == "newer"


def distributed_default_routes() -> list[str]:
    """The scheduler's HTTP routes as distributed ships them (its distributed.yaml), whatever this process set."""
    from pathlib import Path

    import distributed

    shipped = yaml.safe_load((Path(distributed.__file__).parent / "distributed.yaml").read_text())
    return shipped["distributed"]["scheduler"]["http"]["routes"]


def test_platform_dask_config_is_read_leaf_by_leaf(scratch: RepoTree):
    """docker/dask.yaml becomes dotted keys: setting them keeps Dask's other settings of the same section (a nested
    dict given to dask.config.set would replace the whole section: the nanny's OMP_NUM_THREADS=1 would go)."""
    import dask
    import distributed  # noqa: F401  (loads distributed's defaults into dask.config)

    from dask_platform.submit.embedded import worker_dask_config

    config = worker_dask_config(REPO)
    assert config == {
        "distributed.scheduler.http.routes": [*distributed_default_routes(), "distributed.http.scheduler.api"],
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 4194304,
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 4194304,
        "kubernetes.idle-timeout": 1800,
    }
    with dask.config.set(config):
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    assert environ["MALLOC_MMAP_THRESHOLD_"] == 4194304 and environ["OMP_NUM_THREADS"] == 1
    scratch.dask_config.write_text("- a list\n")
    with pytest.raises(UserError, match="expected a mapping at the top level") as info:
        worker_dask_config(scratch)
    assert "docker/dask.yaml" in str(info.value)


@pytest.mark.dask
def test_embedded_workers_start_with_the_platform_malloc_settings():
    """The embedded cluster's worker processes get docker/dask.yaml's environment, as the image's do (the node test
    checks the pods): without it an MLP epoch ran 1.5-1.7x slower in a worker (docs/benchmarks.md)."""
    import os

    from distributed import Client

    from dask_platform.submit.embedded import embedded_cluster, worker_spawn_environ

    wanted = worker_spawn_environ(REPO)
    assert wanted == {"MALLOC_TRIM_THRESHOLD_": "4194304", "MALLOC_MMAP_THRESHOLD_": "4194304"}

    def environ() -> dict[str, str | None]:
        return {key: os.environ.get(key) for key in wanted}

    from distributed import LocalCluster

    # a cluster with distributed's defaults first: its nanny writes MALLOC_TRIM_THRESHOLD_=65536 into this
    # process's environment, where the next nanny would take it from
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as plain, Client(plain) as client:
        assert next(iter(client.run(environ).values()))["MALLOC_TRIM_THRESHOLD_"] == "65536"
    polluted = environ()
    with embedded_cluster(1, 1, "1GiB") as cluster, Client(cluster) as client:
        seen = client.run(environ)
    assert list(seen.values()) == [wanted]
    assert environ() == polluted and polluted["MALLOC_TRIM_THRESHOLD_"] == "65536"  # put back as it was

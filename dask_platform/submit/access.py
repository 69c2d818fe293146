"""Starting or reaching the Dask cluster a job runs on: an embedded LocalCluster, a Client with a clear error
when nothing answers, and a port-forward to a deployed cluster's scheduler Service."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree

DEFAULT_CONNECT_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class ServiceRef:
    """The scheduler Service of a deployed cluster, as rendered into clusters/<name>/rendered/."""

    namespace: str
    name: str
    port: int
    selector: dict[str, str]


def scheduler_service(tree: RepoTree, cluster_name: str) -> ServiceRef:
    """Find the scheduler Service (namespace, name, comm port, selector) in a cluster's rendered manifests:
    the same files Argo CD applies, so the address always matches what is deployed."""
    cluster = load_cluster(tree, cluster_name)
    path = tree.rendered_dir(cluster_name) / f"service-{cluster.release}-scheduler.yaml"
    if not path.is_file():
        raise UserError(f"no rendered scheduler Service: run `dask-platform render {cluster_name}`", file=path)
    service = yaml.safe_load(path.read_text())
    ports = {p.get("name"): p for p in service["spec"]["ports"]}
    if "tcp-comm" not in ports:
        raise UserError("the scheduler Service has no port named tcp-comm", file=path, key_path="spec.ports")
    return ServiceRef(
        namespace=service["metadata"].get("namespace", cluster.namespace),
        name=service["metadata"]["name"],
        port=int(ports["tcp-comm"]["port"]),
        selector=dict(service["spec"]["selector"]),
    )


@contextlib.contextmanager
def embedded_cluster(n_workers: int | None, threads_per_worker: int | None, memory_limit: str) -> Iterator[Any]:
    """A LocalCluster sized to this machine: one single-threaded worker process per core by default (BLAS and
    scikit-learn are single-threaded per task, so processes give real parallelism)."""
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    n = n_workers or cores
    threads = threads_per_worker or max(1, cores // n)
    dashboard = ":8787" if _port_free(8787) else ":0"
    with LocalCluster(
        n_workers=n,
        threads_per_worker=threads,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=dashboard,
        host="127.0.0.1",
    ) as cluster:
        yield cluster


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def connect(address: str, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Any:
    """A Client connected to ``address``; a clear UserError when nothing answers within ``timeout_s``."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout_s}s", set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise UserError(
            f"could not reach the Dask scheduler at {address} within {timeout_s:g} s ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}). Is the scheduler running and the port open?"
        ) from None


@contextlib.contextmanager
def port_forward(ref: ServiceRef, kube_context: str | None = None) -> Iterator[str]:
    """Forward a free local port to the scheduler pod behind ``ref`` (like kubectl port-forward), with the
    ``kubernetes`` client's websocket port-forward. Yields the local tcp:// address."""
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.stream import portforward

    try:
        config.load_kube_config(context=kube_context)
    except Exception as exc:
        raise UserError(f"no usable kubeconfig for --cluster: {exc}") from None
    api = k8s.CoreV1Api()
    selector = ",".join(f"{k}={v}" for k, v in sorted(ref.selector.items()))
    pods = [
        p for p in api.list_namespaced_pod(ref.namespace, label_selector=selector).items if p.status.phase == "Running"
    ]
    if not pods:
        raise UserError(f"no running scheduler pod in namespace {ref.namespace} (selector {selector})")
    pod = pods[0].metadata.name
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def pipe(conn: socket.socket) -> None:
        pf = portforward(api.connect_get_namespaced_pod_portforward, pod, ref.namespace, ports=str(ref.port))
        remote = pf.socket(ref.port)
        try:
            while not stop.is_set():
                readable, _, _ = select.select([conn, remote], [], [], 0.5)
                for src in readable:
                    data = src.recv(65536)
                    if not data:
                        return
                    (remote if src is conn else conn).sendall(data)
        finally:
            conn.close()
            remote.close()

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=pipe, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()

"""A deployed cluster's scheduler: its Service, found among the cluster's committed objects (what Argo CD applies)
by the chart's component label, and a port-forward to a pod behind it. Failures to reach it are raised as they come
(kubeconfig, Kubernetes API) or as Unreachable; dask_platform.submit.connect turns them into one-line errors."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.render import object_filename, rendered_objects
from dask_platform.repo import RepoTree
from dask_platform.submit.connect import KubeconfigError, Unreachable

# The chart labels every object with its component (charts/dask-platform/templates/_helpers-names.tpl, dp.labels and
# dp.selectorLabels): the scheduler's Service is the one Service labelled so, whatever the chart names it.
COMPONENT_LABEL = "app.kubernetes.io/component"
SCHEDULER_COMPONENT = "scheduler"
COMM_PORT = "tcp-comm"  # the name of the Service port clients connect to (the scheduler's comm port)


@dataclass(frozen=True)
class ServiceRef:
    """The scheduler Service of a deployed cluster, as rendered into clusters/<name>/rendered/."""

    namespace: str
    name: str
    port: int
    selector: dict[str, str]


def scheduler_service(tree: RepoTree, cluster_name: str) -> ServiceRef:
    """The scheduler Service (namespace, name, comm port, selector) among a cluster's committed objects: the same
    files Argo CD applies, so the address always matches what is deployed. Found by its component label, not by
    its name, which the chart derives from the release (and may shorten)."""
    cluster = load_cluster(tree, cluster_name)
    folder = tree.rendered_dir(cluster_name)
    services = [
        obj
        for obj in rendered_objects(tree, cluster_name)
        if obj.get("kind") == "Service"
        and (obj.get("metadata", {}).get("labels") or {}).get(COMPONENT_LABEL) == SCHEDULER_COMPONENT
    ]
    if len(services) != 1:
        names = ", ".join(s["metadata"]["name"] for s in services) or "none"
        raise UserError(
            f"expected one Service labelled {COMPONENT_LABEL}: {SCHEDULER_COMPONENT} among the rendered objects, "
            f"found {names}: run `dask-platform render {cluster_name}`",
            file=folder,
        )
    service = services[0]
    ports = {p.get("name"): p for p in service["spec"].get("ports", [])}
    if COMM_PORT not in ports:
        raise UserError(
            f"the scheduler Service has no port named {COMM_PORT}",
            file=folder / object_filename(service),
            key_path="spec.ports",
        )
    return ServiceRef(
        namespace=service["metadata"].get("namespace", cluster.namespace),
        name=service["metadata"]["name"],
        port=int(ports[COMM_PORT]["port"]),
        selector=dict(service["spec"]["selector"]),
    )


def serving_pod(pods: list[Any]) -> str | None:
    """The name of the pod a port-forward should reach among a Service's pods (kubernetes client V1Pod objects),
    or None. A pod being deleted is never chosen: it may still be Running while its preStop hook drains, and a
    connection to it is reset once it stops. A Ready pod is preferred to one that is only Running, then the newest."""
    live = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
    if not live:
        return None

    def rank(p: Any) -> tuple[bool, Any]:
        ready = any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        return ready, p.metadata.creation_timestamp

    return max(live, key=rank).metadata.name


def api_client(kube_context: str | None = None, kubeconfig: str | None = None) -> Any:
    """A Kubernetes API client from ``kubeconfig``, else $KUBECONFIG, else ~/.kube/config (``kube_context``, else
    its current context); a kubeconfig that cannot be used is a KubeconfigError."""
    from kubernetes import config

    source = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        return config.new_client_from_config(config_file=source, context=kube_context)
    except Exception as exc:  # missing, unparsable (yaml, TypeError), no such context (ConfigException)
        where = f"{source or '~/.kube/config'}{f', context {kube_context}' if kube_context else ''}"
        raise KubeconfigError(f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from exc


@contextlib.contextmanager
def port_forward(ref: ServiceRef, kube_context: str | None = None, kubeconfig: str | None = None) -> Iterator[str]:
    """Forward a free local port to a running pod behind ``ref`` (like kubectl port-forward), with the
    ``kubernetes`` client's websocket port-forward. Yields the local tcp:// address. The kubeconfig is
    ``kubeconfig``, else $KUBECONFIG, else ~/.kube/config."""
    from kubernetes import client as k8s
    from kubernetes.stream import portforward

    api = k8s.CoreV1Api(api_client(kube_context, kubeconfig))
    selector = ",".join(f"{k}={v}" for k, v in sorted(ref.selector.items()))
    pod = serving_pod(api.list_namespaced_pod(ref.namespace, label_selector=selector).items)
    if pod is None:
        raise Unreachable(f"no running pod of {ref.name} in namespace {ref.namespace} (selector {selector})")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()
    # kubernetes.stream's portforward() swaps its ApiClient's request method for a websocket one while it opens a stream
    # and puts back what it found: two openings at once (distributed opens several connections together) can
    # leave the websocket one in place for good, and every later stream then fails. One opening at a time.
    opening = threading.Lock()

    def pipe(conn: socket.socket) -> None:
        try:
            with opening:
                forward = api.connect_get_namespaced_pod_portforward
                remote = portforward(forward, pod, ref.namespace, ports=str(ref.port)).socket(ref.port)
        except Exception:  # the pod is gone (deleted, replaced): refuse this connection, the client sees it closed
            conn.close()
            return
        _relay(conn, remote, stop)

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed under accept() at the end of the session: nothing to serve
                return
            threading.Thread(target=pipe, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    threading.excepthook = _quiet_proxy_errors(threading.excepthook)
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def _relay(conn: socket.socket, remote: Any, stop: threading.Event) -> None:
    """Copy bytes both ways between a local connection and a port-forward stream until one side closes."""
    try:
        while not stop.is_set():
            readable, _, _ = select.select([conn, remote], [], [], 0.5)
            for src in readable:
                data = src.recv(65536)
                if not data:
                    return
                (remote if src is conn else conn).sendall(data)
    except OSError:  # the pod went away (deleted, restarted): the client sees a closed connection
        return
    finally:
        conn.close()
        remote.close()


def _quiet_proxy_errors(previous: Any) -> Any:
    """An excepthook that drops the kubernetes client's port-forward proxy errors. That thread raises when the pod
    goes away (deleted, restarted), possibly after the run has ended; the job then sees a closed connection and
    says so in one line, which a thread's traceback would bury. Other threads' errors are printed as before."""
    if getattr(previous, "quiet_proxy_errors", False):
        return previous

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name.startswith("Kubernetes port forward proxy"):
            return
        previous(args)

    hook.quiet_proxy_errors = True  # type: ignore[attr-defined]
    return hook

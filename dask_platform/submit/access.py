"""Starting or reaching the Dask cluster a job runs on: an embedded LocalCluster, a Client with a clear error
when nothing answers, and a port-forward to a deployed cluster's scheduler Service."""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.submit.target import DEFAULT_CONNECT_TIMEOUT_S


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


def worker_dask_config(tree: RepoTree) -> dict[str, Any]:
    """The platform's Dask configuration (docker/dask.yaml, the image's /etc/dask/dask.yaml) as the dotted keys
    ``dask.config.set`` takes: leaf by leaf, so that Dask's other settings under the same sections stay."""
    data = tree.load_mapping(tree.dask_config)
    flat: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(data, "")
    return flat


SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ."


def worker_spawn_environ(tree: RepoTree) -> dict[str, str]:
    """The environment variables the platform's Dask configuration gives each worker process at its start."""
    config = worker_dask_config(tree)
    return {
        key.removeprefix(SPAWN_ENVIRON): str(value) for key, value in config.items() if key.startswith(SPAWN_ENVIRON)
    }


@contextlib.contextmanager
def embedded_cluster(
    n_workers: int | None, threads_per_worker: int | None, memory_limit: str, tree: RepoTree | None = None
) -> Iterator[Any]:
    """A LocalCluster sized to this machine: one single-threaded worker process per core by default (BLAS and
    scikit-learn are single-threaded per task, so processes give real parallelism), its workers started with the
    platform's Dask configuration, as the image's are."""
    import dask
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    n = n_workers or cores
    threads = threads_per_worker or max(1, cores // n)
    dashboard = ":8787" if _port_free(8787) else ":0"
    tree = tree or RepoTree.checkout()
    with (
        dask.config.set(worker_dask_config(tree)),
        # a nanny takes a pre-spawn variable from this process's environment before the configuration
        process_environ(worker_spawn_environ(tree)),
        LocalCluster(
            n_workers=n,
            threads_per_worker=threads,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=dashboard,
            host="127.0.0.1",
        ) as cluster,
    ):
        yield cluster


@contextlib.contextmanager
def process_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """This process's environment with ``values`` set (None: unset) while the block runs, then put back as it was.

    The embedded cluster needs it: a nanny takes a pre-spawn variable from this process's environment when it is set
    there, before the Dask configuration, and writes its own values into this environment when it spawns its worker
    (distributed 2026.8.0, nanny.py: _get_env_variables, WorkerProcess.start). So in a process that started another
    cluster before (a notebook, the tests, the benchmarks) that cluster's MALLOC_TRIM_THRESHOLD_ would win over the
    platform's: set here, it is the platform's."""
    before = {key: os.environ.get(key) for key in values}

    def apply(state: Mapping[str, str | None]) -> None:
        for key, value in state.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    apply(values)
    try:
        yield
    finally:
        apply(before)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _refuse_fast(address: str) -> None:
    """A closed port is known at once: say so instead of letting distributed retry until its timeout. Anything
    else (no route, a slow network, an accepting port) is left to the Client and its timeout."""
    match = re.fullmatch(r"tcp://\[?([^\]]+?)\]?:([0-9]+)", address)
    if not match:
        return
    try:
        with socket.create_connection((match.group(1), int(match.group(2))), timeout=2):
            return
    except ConnectionRefusedError:
        raise UserError(
            f"the Dask scheduler at {address} refused the connection: nothing listens on that port. Is the "
            "scheduler running, and is that its comm port (8786 by default)?"
        ) from None
    except OSError:
        return


def connect(address: str, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S, attempts: int = 1) -> Any:
    """A Client connected to ``address``; a clear UserError when nothing answers within ``timeout_s``.

    distributed waits for the scheduler's handshake without a deadline once TCP connects, so a peer that accepts
    and stays silent (another service on that port, a port-forward stream that never delivers) would hang the
    run: the connection is made in a helper thread and given up after the timeout. With ``attempts`` > 1 (a
    port-forward, where every connection gets a new stream), a silent or failed connection is tried again."""
    _refuse_fast(address)
    from distributed import Client

    for attempt in range(attempts):
        outcome: dict[str, Any] = {}

        def make_client(outcome: dict[str, Any] = outcome) -> None:
            try:
                outcome["client"] = Client(address, timeout=f"{timeout_s}s", set_as_default=True)
            except BaseException as exc:
                outcome["error"] = exc

        # A daemon thread: one stuck on a silent peer must not keep the process alive at exit.
        thread = threading.Thread(target=make_client, name="dask-connect", daemon=True)
        thread.start()
        thread.join(timeout_s + 5)
        if "client" in outcome:
            return outcome["client"]
        error = outcome.get("error")
        if isinstance(error, OSError | TimeoutError) and attempt + 1 < attempts:
            continue  # through a port-forward: a new connection opens a new stream
        if isinstance(error, OSError | TimeoutError):
            raise UserError(
                f"could not reach the Dask scheduler at {address} within {timeout_s:g} s"
                f"{f' ({attempts} attempts)' if attempts > 1 else ''} ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:200]}). Is the scheduler running and the port open?"
            ) from None
        if error is not None:
            raise error
        # connected, but silent: a new connection (a new port-forward stream) may answer
    raise UserError(
        f"the Dask scheduler at {address} accepted the connection but sent no handshake within {timeout_s + 5:g} s "
        f"({attempts} attempts). Is that port a Dask scheduler's comm port?"
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


@contextlib.contextmanager
def port_forward(ref: ServiceRef, kube_context: str | None = None, kubeconfig: str | None = None) -> Iterator[str]:
    """Forward a free local port to a running pod behind ``ref`` (like kubectl port-forward), with the
    ``kubernetes`` client's websocket port-forward. Yields the local tcp:// address. The kubeconfig is
    ``kubeconfig``, else $KUBECONFIG, else ~/.kube/config."""
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.stream import portforward

    try:
        api = k8s.CoreV1Api(
            config.new_client_from_config(
                config_file=kubeconfig or os.environ.get("KUBECONFIG") or None, context=kube_context
            )
        )
    except Exception as exc:
        raise UserError(f"no usable kubeconfig for --cluster: {exc}") from None
    selector = ",".join(f"{k}={v}" for k, v in sorted(ref.selector.items()))
    pod = serving_pod(api.list_namespaced_pod(ref.namespace, label_selector=selector).items)
    if pod is None:
        raise UserError(f"no running pod of {ref.name} in namespace {ref.namespace} (selector {selector})")
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

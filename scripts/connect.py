"""Where a job runs and how its code gets there: resolve the scheduler address, start an embedded cluster,
reach a deployed one through a port-forward, compare versions, and ship the ``jobs`` package.

Pure functions (``resolve_target``, ``scheduler_service``, ``version_table``, ``jobs_fingerprint``) are apart
from the ones with side effects (``embedded_cluster``, ``port_forward``, ``connect``, ``ensure_job_code``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.common import CLUSTERS_DIR, REPO_ROOT, UserError
from scripts.layers import load_cluster

JOBS_DIR = REPO_ROOT / "jobs"
DEFAULT_CONNECT_TIMEOUT_S = 8.0

# Packages whose mismatch between client, scheduler and workers breaks unpickling; others only warn.
PICKLE_CRITICAL = ("python", "dask", "distributed", "cloudpickle", "scikit-learn", "pandas")
COMPARED = (*PICKLE_CRITICAL, "numpy", "dask-ml", "pyarrow", "msgpack")


@dataclass(frozen=True)
class Target:
    """Where to run: an embedded LocalCluster, a scheduler address, or a cluster of clusters/ (port-forward)."""

    kind: str  # "embedded" | "address" | "cluster"
    address: str = ""
    cluster: str = ""
    source: str = ""  # which option or variable chose it


def resolve_target(scheduler: str | None, cluster: str | None, environ: dict[str, str]) -> Target:
    """--scheduler wins, then --cluster, then $DASK_SCHEDULER_ADDRESS; otherwise an embedded cluster."""
    if scheduler and cluster:
        raise UserError("give either --scheduler or --cluster, not both")
    if scheduler:
        return Target("address", normalize_address(scheduler), source="--scheduler")
    if cluster:
        return Target("cluster", cluster=cluster, source="--cluster")
    env = environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if env:
        return Target("address", normalize_address(env), source="DASK_SCHEDULER_ADDRESS")
    return Target("embedded", source="default")


def normalize_address(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``; a port is required."""
    if "://" not in address:
        address = f"tcp://{address}"
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"scheduler address {address!r}: expected tcp://HOST:PORT")
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class ServiceRef:
    """The scheduler Service of a deployed cluster, as rendered into clusters/<name>/rendered/."""

    namespace: str
    name: str
    port: int
    selector: dict[str, str]


def scheduler_service(cluster_name: str, clusters_dir: Path = CLUSTERS_DIR) -> ServiceRef:
    """Find the scheduler Service (namespace, name, comm port, selector) in a cluster's rendered manifests:
    the same files Argo CD applies, so the address always matches what is deployed."""
    cluster = load_cluster(cluster_name, clusters_dir)
    path = cluster.rendered_dir / f"service-{cluster.release}-scheduler.yaml"
    if not path.is_file():
        raise UserError(f"no rendered scheduler Service: run python scripts/render.py {cluster_name}", file=path)
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


# --- side effects -----------------------------------------------------------------------------------------------


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


# --- versions -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionReport:
    rows: list[tuple[str, str, str, str]]  # package, client, scheduler, workers (a set, comma-joined)
    critical: list[str]  # packages whose mismatch breaks pickling
    minor: list[str]  # other differences

    def table(self) -> str:
        header = ("package", "client", "scheduler", "workers")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        for row in self.rows:
            mark = "  <-- differs" if row[0] in self.critical + self.minor else ""
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + mark)
        return "\n".join(lines)


def _short_python(version: str | None) -> str:
    return ".".join((version or "-").split(".")[:3])


def version_table(versions: dict[str, Any]) -> VersionReport:
    """Compare the output of ``Client.get_versions(packages=...)``: python by major.minor.micro, packages exactly."""

    def pkgs(entry: dict[str, Any]) -> dict[str, str]:
        packages = dict(entry.get("packages", {}))
        packages["python"] = _short_python(packages.get("python"))
        return {k: str(v) if v is not None else "-" for k, v in packages.items()}

    client = pkgs(versions["client"])
    scheduler = pkgs(versions["scheduler"])
    workers = [pkgs(w) for w in versions.get("workers", {}).values()]
    rows, critical, minor = [], [], []
    for name in COMPARED:
        worker_values = sorted({w.get(name, "-") for w in workers}) or ["-"]
        values = {client.get(name, "-"), scheduler.get(name, "-"), *worker_values}
        if name == "python":  # pickles cross patch releases of one minor
            values = {".".join(v.split(".")[:2]) for v in values}
        rows.append((name, client.get(name, "-"), scheduler.get(name, "-"), ", ".join(worker_values)))
        if len(values) > 1:
            (critical if name in PICKLE_CRITICAL else minor).append(name)
    return VersionReport(rows, critical, minor)


# --- job code -------------------------------------------------------------------------------------------------


def jobs_fingerprint(folder: Path = JOBS_DIR) -> str:
    """A hash of the jobs package's Python sources: equal on both sides means the same code."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_jobs_archive(target_dir: Path, folder: Path = JOBS_DIR) -> Path:
    """A zip of the jobs package (sources only), importable once on sys.path: what upload_file sends."""
    path = target_dir / f"jobs-{jobs_fingerprint(folder)}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for source in sorted(folder.rglob("*.py")):
            zf.write(source, source.relative_to(folder.parent).as_posix())
    return path


def _remote_fingerprint() -> str:
    """Runs on the scheduler and workers (pickled by value): the fingerprint of the jobs package they import."""
    import hashlib as _hashlib
    import importlib
    import sys as _sys
    from pathlib import Path as _Path

    for name in [m for m in _sys.modules if m == "jobs" or m.startswith("jobs.")]:
        del _sys.modules[name]
    importlib.invalidate_caches()
    try:
        module = importlib.import_module("jobs")
    except ImportError:
        return "missing"
    location = getattr(module, "__file__", None)
    if location is None:
        return "missing"
    root = _Path(location).parent
    if not root.is_dir():  # imported from a zip: hash the archive's members
        import zipfile as _zipfile

        archive = str(root).split(".zip")[0] + ".zip"
        digest = _hashlib.sha256()
        with _zipfile.ZipFile(archive) as zf:
            for member in sorted(n for n in zf.namelist() if n.endswith(".py")):
                digest.update(member.encode())
                digest.update(zf.read(member))
        return digest.hexdigest()[:16]
    digest = _hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def remote_fingerprints(client: Any) -> dict[str, str]:
    """The jobs fingerprint on the scheduler and on each worker."""
    import cloudpickle

    this_module = sys.modules[__name__]  # the cluster lacks scripts/: send the function's code itself
    cloudpickle.register_pickle_by_value(this_module)
    try:
        out = {"scheduler": client.run_on_scheduler(_remote_fingerprint)}
        out.update(client.run(_remote_fingerprint))
    finally:
        cloudpickle.unregister_pickle_by_value(this_module)
    return out


def ensure_job_code(client: Any, local: str | None = None) -> str:
    """Make the jobs package importable on the scheduler and every worker; returns what was done.

    Same fingerprint everywhere: the code is already there (the image, or a shared environment). Otherwise
    the package is zipped and sent with ``Client.upload_file`` (scheduler and workers), then checked again.
    """
    local = local or jobs_fingerprint()
    remote = remote_fingerprints(client)
    if all(fp == local for fp in remote.values()):
        return f"jobs {local}: already importable on the scheduler and {len(remote) - 1} workers"
    with tempfile.TemporaryDirectory() as tmp:
        archive = build_jobs_archive(Path(tmp))
        client.upload_file(str(archive), load=True)
    remote = remote_fingerprints(client)
    stale = sorted(k for k, fp in remote.items() if fp != local)
    if stale:
        raise UserError(f"uploaded the jobs package but {', '.join(stale)} still import another version")
    return f"jobs {local}: uploaded {archive.name} to the scheduler and {len(remote) - 1} workers"

"""Real Dask scheduler and worker processes on 127.0.0.1 for tests and benchmarks, started with the `dask` CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DASK = str(Path(sys.executable).parent / "dask")
# Single-threaded BLAS, as the chart's nanny-managed workers have: results do not depend on thread timing.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def image_site(dest: Path) -> Path:
    """A PYTHONPATH folder holding another release of the ``jobs`` package (one file differs from this checkout's):
    what the processes of a cluster import that runs other job code than the client's (an earlier upload), and
    what hides the editable install of this checkout, which no pod has (the image carries no job code). The client
    must then upload its own code, as it would on that cluster."""
    import jobs

    target = dest / "jobs"
    if not target.is_dir():
        shutil.copytree(Path(jobs.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
        init = target / "__init__.py"
        init.write_text(init.read_text() + "\n# the image's release of the jobs package\n")
    return dest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Wait until something accepts connections on 127.0.0.1:port; fail early if ``proc`` exits."""
    deadline = time.time() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(f"nothing listens on port {port}: {log.read_text()[-2000:] if log.exists() else ''}")
        time.sleep(0.2)


@dataclass
class LocalDask:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    start_worker: Callable[[], subprocess.Popen] | None = None  # one more worker, as a scale-up would add

    def kill_worker(self, index: int) -> None:
        self.workers[index].send_signal(signal.SIGKILL)
        self.workers[index].wait(10)


def wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(n, timeout=timeout)


@contextlib.contextmanager
def local_dask(
    cwd: Path,
    n_workers: int = 2,
    memory_limit: str = "2GiB",
    nanny: bool = False,
    extra_env: dict[str, str] | None = None,
) -> Iterator[LocalDask]:
    """A scheduler and ``n_workers`` single-threaded workers whose working folder is ``cwd`` and whose
    PYTHONPATH holds another release of the jobs package (``image_site``)."""
    site = image_site(cwd / "opt-dask-platform")
    env = dict(os.environ) | {"PYTHONPATH": str(site)} | WORKER_ENV | (extra_env or {})
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = cwd / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []

    def start(name: str, args: list[str]) -> subprocess.Popen:
        out = (logs / f"{name}.log").open("w")
        proc = subprocess.Popen([DASK, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        scheduler = start(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                f"127.0.0.1:{free_port()}",
                "--no-show",
            ],
        )
        cluster = LocalDask(address, scheduler)

        def start_worker() -> subprocess.Popen:
            i = len(cluster.workers)
            args = ["worker", address, "--nthreads", "1", "--memory-limit", memory_limit, "--host", "127.0.0.1"]
            worker = start(f"worker-{i}", [*args, "--name", f"w{i}", "--nanny" if nanny else "--no-nanny"])
            cluster.workers.append(worker)
            return worker

        cluster.start_worker = start_worker
        for _ in range(n_workers):
            start_worker()
        wait_for_port(port, scheduler, logs / "scheduler.log")  # before workers and clients connect
        if n_workers:
            wait_for_workers(address, n_workers)
        yield cluster
    finally:
        stop_all(procs)


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each process still running (the last started first), SIGKILL to any not gone after 15 s."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def small_run_args(tmp: Path, *extra: str) -> list[str]:
    """`submit rossmann` on small data (40 stores, the small search, no refit), results and cache under ``tmp``."""
    out = ["rossmann", "--stores", "40", "--search", "small", "--refit-rows", "0"]
    return [*out, "--out", str(tmp / "results"), "--cache", str(tmp / "cache"), *extra]


def run_cli(args: list[str], tmp: Path) -> subprocess.Popen:
    """``scripts/submit.py rossmann`` on small data as its own process; extra ``args`` choose where it runs."""
    from dask_platform.repo import RepoTree

    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    script = str(RepoTree.checkout().root / "scripts/submit.py")
    return subprocess.Popen(
        [sys.executable, script, *small_run_args(tmp, *args)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

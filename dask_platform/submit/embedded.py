"""The embedded cluster: a LocalCluster on this machine whose workers start with the platform's Dask configuration
(docker/dask.yaml, the image's /etc/dask/dask.yaml), as the image's do."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from dask_platform.repo import RepoTree


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
    Dask configuration of ``tree`` (default: this checkout), as the image's are."""
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

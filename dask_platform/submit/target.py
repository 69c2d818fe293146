"""Where a job runs: an embedded LocalCluster, a scheduler address, or a cluster of clusters/ (port-forward);
and the connection options every job shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from dask_platform.errors import UserError

DEFAULT_CONNECT_TIMEOUT_S = 8.0


# A worker group scaled to zero comes back when its adaptive target rises: KEDA polls (10 s), the pod starts, and
# on a cloud a node may have to be added first (a few minutes).
DEFAULT_WORKER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RunTarget:
    """Where to run, and which option or variable chose it."""

    kind: Literal["embedded", "address", "cluster"]
    address: str = ""
    cluster: str = ""
    source: str = ""


def resolve_run_target(scheduler: str | None, cluster: str | None, environ: Mapping[str, str]) -> RunTarget:
    """--scheduler wins, then --cluster, then $DASK_SCHEDULER_ADDRESS; otherwise an embedded cluster."""
    if scheduler and cluster:
        raise UserError("give either --scheduler or --cluster, not both")
    if scheduler:
        return RunTarget("address", normalize_address(scheduler), source="--scheduler")
    if cluster:
        return RunTarget("cluster", cluster=cluster, source="--cluster")
    env = environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if env:
        return RunTarget("address", normalize_address(env), source="DASK_SCHEDULER_ADDRESS")
    return RunTarget("embedded", source="default")


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
class Connection:
    """How to reach (or start) the Dask cluster: the options every job shares."""

    scheduler: str | None = None
    cluster: str | None = None
    kube_context: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str = "auto"
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    allow_version_mismatch: bool = False
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT_S

"""Where a job runs: one type per way of running, each with one ``open`` that yields the scheduler's address (as
this process reaches it) for the time of the run, and the connection options every job shares.

    Embedded          a LocalCluster started here, in this Python environment (the default)
    Address           a scheduler address as given (--scheduler, $DASK_SCHEDULER_ADDRESS)
    DeployedCluster   a cluster of clusters/, through a port-forward to its scheduler Service
    TenantCluster     a tenant's own DaskCluster on a cluster of clusters/, for the run (dask_platform.submit.tenant)

Another way is one more type with ``source``, ``where`` and ``open``, and a line in resolve_target. Connecting a
Client to the address, and turning whatever stops that into one error line, is dask_platform.submit.connect's
(``reach``), the same for every type.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar

from dask_platform.errors import UserError
from dask_platform.repo import RepoTree

DEFAULT_CONNECT_TIMEOUT_S = 8.0


# A worker group scaled to zero comes back when its adaptive target rises: KEDA polls (10 s), the pod starts, and
# on a cloud a node may have to be added first (a few minutes).
DEFAULT_WORKER_TIMEOUT_S = 600.0

Echo = Callable[[str], None]


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
    tenant: str | None = None
    keep: bool = False


class Target(abc.ABC):
    """A way of running a job."""

    # Its scheduler and workers run this process's Python environment and job code: nothing to compare or ship.
    shares_environment: ClassVar[bool] = False
    # Connections tried before giving up (through a port-forward every connection opens a new stream).
    connect_attempts: ClassVar[int] = 1
    source: str  # the option or variable that chose it

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """How an error names it ("" when the scheduler's address in the message says it all)."""

    @abc.abstractmethod
    def open(self, echo: Echo) -> AbstractContextManager[str]:
        """Start or reach the scheduler; yields its address for the time of the run."""


@dataclass(frozen=True)
class Embedded(Target):
    """A LocalCluster on this machine, started with the Dask configuration of ``tree`` (docker/dask.yaml)."""

    tree: RepoTree
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str = "auto"
    source: str = "default"
    shares_environment: ClassVar[bool] = True

    @property
    def where(self) -> str:
        return "the embedded Dask cluster"

    @contextlib.contextmanager
    def open(self, echo: Echo) -> Iterator[str]:
        from dask_platform.submit.embedded import embedded_cluster

        with embedded_cluster(self.workers, self.threads_per_worker, self.memory_limit, self.tree) as cluster:
            workers = cluster.scheduler_info.get("workers", {})
            threads = sum(w.get("nthreads", 0) for w in workers.values())
            echo(
                f"embedded Dask cluster: {len(workers)} workers, {threads} threads; dashboard {cluster.dashboard_link}"
            )
            yield cluster.scheduler_address


@dataclass(frozen=True)
class Address(Target):
    """A running scheduler at a known address."""

    address: str
    source: str = "--scheduler"

    @property
    def where(self) -> str:
        return ""

    @contextlib.contextmanager
    def open(self, echo: Echo) -> Iterator[str]:
        yield self.address


@dataclass(frozen=True)
class DeployedCluster(Target):
    """A cluster of clusters/<name>/: its scheduler Service found among the committed objects, reached through a
    port-forward with the kubeconfig (``kubeconfig``, else $KUBECONFIG, else ~/.kube/config) and ``kube_context``."""

    tree: RepoTree
    name: str
    kube_context: str | None = None
    kubeconfig: str | None = None
    source: str = "--cluster"
    connect_attempts: ClassVar[int] = 3

    @property
    def where(self) -> str:
        return f"cluster {self.name}"

    @contextlib.contextmanager
    def open(self, echo: Echo) -> Iterator[str]:
        from dask_platform.submit.kube import port_forward, scheduler_service

        ref = scheduler_service(self.tree, self.name)
        with port_forward(ref, self.kube_context, self.kubeconfig) as address:
            echo(f"port-forward {address} -> {ref.namespace}/svc/{ref.name}:{ref.port}")
            yield address


def resolve_target(tree: RepoTree, conn: Connection, environ: Mapping[str, str]) -> Target:
    """--scheduler wins, then --cluster (with --tenant: the tenant's own cluster), then $DASK_SCHEDULER_ADDRESS;
    otherwise an embedded cluster."""
    if conn.scheduler and conn.cluster:
        raise UserError("give either --scheduler or --cluster, not both")
    if conn.tenant and not conn.cluster:
        raise UserError("--tenant needs --cluster: the cluster under clusters/ whose values declare the tenant")
    if conn.keep and not conn.tenant:
        raise UserError("--keep keeps a tenant's DaskCluster: it needs --tenant")
    if conn.scheduler:
        return Address(normalize_address(conn.scheduler), source="--scheduler")
    if conn.cluster and conn.tenant:
        from dask_platform.submit.tenant import TenantCluster

        return TenantCluster(
            tree, conn.cluster, conn.tenant, workers=conn.workers, keep=conn.keep, kube_context=conn.kube_context
        )
    if conn.cluster:
        return DeployedCluster(tree, conn.cluster, kube_context=conn.kube_context)
    env = environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
    if env:
        return Address(normalize_address(env), source="DASK_SCHEDULER_ADDRESS")
    return Embedded(tree, conn.workers, conn.threads_per_worker, conn.memory_limit)


def normalize_address(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``; a port is required."""
    if "://" not in address:
        address = f"tcp://{address}"
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"scheduler address {address!r}: expected tcp://HOST:PORT")
    return f"{scheme}://{host}:{port}"

"""Run a job of jobs/ where the user says (dask_platform.submit.target: an embedded LocalCluster by default, a
scheduler address, or a deployed cluster through a port-forward); and the versions report (`dask-platform doctor`)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from distributed.versions import VersionMismatchWarning

from dask_platform.environment import load_environment
from dask_platform.errors import UserError, VersionMismatch
from dask_platform.repo import RepoTree
from dask_platform.submit.compat import COMPARED, version_table
from dask_platform.submit.connect import reach
from dask_platform.submit.target import Connection, Target, resolve_target
from jobs.registry import get_job
from jobs.runtime import VERSIONED_PACKAGES, local_versions
from jobs.shipping import ShippingError, ship


def submit(
    tree: RepoTree,
    job_name: str,
    options: Any,
    conn: Connection,
    echo: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run one job where ``conn`` says; returns its summary. Raises UserError for anything the user can fix."""
    job = get_job(job_name)
    target = resolve_target(tree, conn, os.environ if environ is None else environ)
    # Our own version check (check_versions) says what differs and whether it matters; distributed's warning on
    # every connection would only repeat it as a table on stderr.
    warnings.filterwarnings("ignore", category=VersionMismatchWarning)
    with reach(target, conn.connect_timeout, echo) as reached:
        client = reached.client
        if target.shares_environment:
            shipping = "embedded cluster: workers share this Python environment"
        else:
            check_versions(client, conn.allow_version_mismatch, echo)
            wait_for_first_worker(client, conn.worker_timeout, echo)
            shipping = ship_job_code(client)
            echo(f"code: {shipping}")
        echo(f"running {job_name} on {reached.address} ({target.source})")
        summary = job.run(client, options, scheduler_address=reached.address, code_shipping=shipping)
    echo(job.format(summary))
    return summary


def ship_job_code(client: Any) -> str:
    """This checkout's jobs package on the scheduler and every worker (jobs.shipping), or a one-line error."""
    try:
        return ship(client)
    except ShippingError as exc:
        raise UserError(str(exc)) from None


def wait_for_first_worker(client: Any, timeout_s: float, echo: Callable[[str], None]) -> None:
    """A cluster whose workers scaled to zero: queue one tiny task, which raises the scheduler's adaptive target to
    at least 1 (Scheduler.adaptive_target: unrunnable or queued tasks and no workers), so KEDA scales the group up;
    say so on one line and wait for a worker, or stop with a clear error after ``timeout_s``."""
    if client.scheduler_info(n_workers=-1)["workers"]:
        return
    wake = client.submit(sum, [0], pure=False, key=f"dask-platform-wake-{os.getpid()}")
    try:
        target, deadline = 0, time.monotonic() + 10
        while target < 1 and time.monotonic() < deadline:  # until the scheduler has the task
            target = client.sync(client.scheduler.adaptive_target)
            time.sleep(0.1)
        echo(f"waiting for workers: 0 of {target} (the worker group scales up from zero; up to {timeout_s:g} s)")
        try:
            client.wait_for_workers(1, timeout=timeout_s)
        except TimeoutError:
            raise UserError(
                f"no worker joined the cluster within {timeout_s:g} s: a group at 0 replicas scales up only with "
                "worker autoscaling on (dask.workerGroups.<group>.autoscaling, KEDA installed); otherwise raise its "
                "replicas, or wait longer with --worker-timeout"
            ) from None
    finally:
        wake.release()


def check_versions(client: Any, allow_mismatch: bool, echo: Callable[[str], None]) -> None:
    """Stop (exit 3, with the table) when client and cluster cannot exchange pickles; warn on minor differences."""
    report = version_table(client.get_versions(packages=list(VERSIONED_PACKAGES)))
    if report.critical and not allow_mismatch:
        raise VersionMismatch(
            f"client and cluster versions differ in {', '.join(report.critical)}; pickled tasks would "
            f"fail. Use the platform image's environment (requirements/lock.txt), or pass "
            f"--allow-version-mismatch to try anyway:\n{report.table()}"
        )
    if report.critical or report.minor:
        echo(f"warning: versions differ in {', '.join(report.critical + report.minor)}:\n{report.table()}")


@dataclass(frozen=True)
class DoctorReport:
    """Versions side by side: package, pyproject pin, this machine, then scheduler and workers when compared."""

    header: list[str]
    rows: list[list[str]]
    image: str
    cluster_named: bool
    problems: list[str]

    def text(self) -> str:
        widths = [max(len(r[i]) for r in [self.header, *self.rows]) for i in range(len(self.header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [self.header, *self.rows]]
        lines += ["", f"image the chart deploys: {self.image}"]
        if not self.cluster_named:
            lines.append("cluster: none named (--scheduler, --cluster or DASK_SCHEDULER_ADDRESS to compare one)")
        lines += [f"differs: {p}" for p in self.problems] or ["no differences"]
        return "\n".join(lines)


def cluster_versions(target: Target, conn: Connection) -> dict[str, Any]:
    """``Client.get_versions`` of the cluster ``target`` names ({} for an embedded cluster: nothing to compare)."""
    if target.shares_environment:
        return {}
    with reach(target, conn.connect_timeout, lambda _: None) as reached:
        return reached.client.get_versions(packages=list(VERSIONED_PACKAGES))


def doctor_report(tree: RepoTree, conn: Connection, environ: Mapping[str, str]) -> DoctorReport:
    """Local versions, the pins of pyproject.toml, the cluster's (when one is named and reachable) and the image
    tag the chart deploys, side by side."""
    env = load_environment(tree)
    local = local_versions()
    target = resolve_target(tree, conn, environ)
    remote = cluster_versions(target, conn)
    report = version_table(remote) if remote else None
    remote_rows = {r[0]: r for r in report.rows} if report is not None else {}
    header = ["package", "pyproject pin", "this machine"] + (["scheduler", "workers"] if report else [])
    rows, problems = [], []
    for name in COMPARED:
        pin = env.python if name == "python" else env.pins.get(name, "-")
        mine = local.get(name, "-")
        remote_cells = list(remote_rows.get(name, (name, "-", "-", "-"))[2:]) if report else []
        rows.append([name, pin, mine, *remote_cells])
        if pin != "-" and not mine.startswith(pin):
            problems.append(f"{name}: this machine has {mine}, pyproject.toml pins {pin}")
    if report is not None:
        problems += [f"{n}: client and cluster differ" for n in report.critical + report.minor]
    image = f"{env.image_repository}:{env.image_tag} (GPU: {env.gpu_image_tag})"
    return DoctorReport(header, rows, image, not target.shares_environment, problems)

"""Run an ML job of jobs/ on Dask: an embedded local cluster by default, or a deployed scheduler.

    python scripts/submit.py --list
    python scripts/submit.py rossmann                          # embedded LocalCluster sized to this machine
    python scripts/submit.py rossmann --scheduler tcp://HOST:8786
    python scripts/submit.py rossmann --cluster aws-example    # port-forward to that cluster's scheduler
    python scripts/submit.py rossmann --help                   # the job's own options

DASK_SCHEDULER_ADDRESS is used when neither --scheduler nor --cluster is given (as in the platform's Jupyter).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.registry import JOBS, get_job
from jobs.runtime import VERSIONED_PACKAGES
from scripts.common import UserError, report_user_errors
from scripts.connect import (
    DEFAULT_CONNECT_TIMEOUT_S,
    Target,
    connect,
    embedded_cluster,
    ensure_job_code,
    port_forward,
    resolve_target,
    scheduler_service,
    version_table,
)


class VersionMismatch(UserError):
    exit_code = 3


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


def submit(
    job_name: str,
    options: Any,
    conn: Connection,
    echo: Callable[[str], None] = click.echo,
    environ: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one job where ``conn`` says; returns its summary. Raises UserError for anything the user can fix."""
    job = get_job(job_name)
    target = resolve_target(conn.scheduler, conn.cluster, dict(os.environ if environ is None else environ))
    with contextlib.ExitStack() as stack:
        address = _start_or_reach(target, conn, stack, echo)
        client = connect(address, conn.connect_timeout)
        stack.callback(client.close)
        if target.kind == "embedded":
            shipping = "embedded cluster: workers share this Python environment"
        else:
            report = version_table(client.get_versions(packages=list(VERSIONED_PACKAGES)))
            if report.critical and not conn.allow_version_mismatch:
                raise VersionMismatch(
                    f"client and cluster versions differ in {', '.join(report.critical)}; pickled tasks would "
                    f"fail. Use the platform image's environment (requirements/lock.txt), or pass "
                    f"--allow-version-mismatch to try anyway:\n{report.table()}"
                )
            if report.critical or report.minor:
                echo(f"warning: versions differ in {', '.join(report.critical + report.minor)}:\n{report.table()}")
            shipping = ensure_job_code(client)
            echo(f"code: {shipping}")
        echo(f"running {job_name} on {address} ({target.source})")
        summary = job.run(client, options, scheduler_address=address, code_shipping=shipping)
    echo(job.format(summary))
    return summary


def _start_or_reach(target: Target, conn: Connection, stack: contextlib.ExitStack, echo: Callable[[str], None]) -> str:
    if target.kind == "embedded":
        cluster = stack.enter_context(embedded_cluster(conn.workers, conn.threads_per_worker, conn.memory_limit))
        workers = cluster.scheduler_info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        echo(f"embedded Dask cluster: {len(workers)} workers, {threads} threads; dashboard {cluster.dashboard_link}")
        return cluster.scheduler_address
    if target.kind == "cluster":
        ref = scheduler_service(target.cluster)
        address = stack.enter_context(port_forward(ref, conn.kube_context))
        echo(f"port-forward {address} -> {ref.namespace}/svc/{ref.name}:{ref.port}")
        return address
    return target.address


# --- the command line ---------------------------------------------------------------------------------------


CONNECTION_OPTIONS = [
    click.Option(
        ["--scheduler"],
        help="Scheduler address tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS, else an embedded cluster).",
    ),
    click.Option(["--cluster"], help="A cluster under clusters/: reach its scheduler through a port-forward."),
    click.Option(["--kube-context"], help="kubeconfig context for --cluster (default: the current one)."),
    click.Option(["--workers"], type=int, help="Embedded cluster: worker processes (default: one per core)."),
    click.Option(["--threads-per-worker"], type=int, help="Embedded cluster: threads per worker."),
    click.Option(["--memory-limit"], default="auto", show_default=True, help="Embedded cluster: per worker."),
    click.Option(
        ["--connect-timeout"],
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        show_default=True,
        help="Seconds to wait for the scheduler.",
    ),
    click.Option(["--allow-version-mismatch"], is_flag=True, help="Run even if client/cluster versions differ."),
]
CONNECTION_FIELDS = {f.name for f in dataclasses.fields(Connection)}


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, is_flag) of a dataclass field annotation such as ``int | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if isinstance(annotation, types.UnionType) and args else annotation
    if base is bool:
        return bool, True
    return {int: int, float: float, str: str}.get(base, str), False


def job_command(name: str) -> click.Command:
    """A click command for a registered job, its options read from the job's options dataclass."""
    job = get_job(name)
    hints = typing.get_type_hints(job.options)
    params: list[click.Parameter] = []
    for f in dataclasses.fields(job.options):
        kind, is_flag = _click_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        if is_flag:
            decl = [f"{flag}/--no-{f.name.replace('_', '-')}"]
            params.append(click.Option(decl, default=f.default, show_default=True, help=f.metadata.get("help")))
            continue
        choices = f.metadata.get("choices")
        params.append(
            click.Option(
                [flag],
                type=click.Choice(choices) if choices else kind,
                default=f.default,
                show_default=f.default is not None,
                help=f.metadata.get("help"),
            )
        )

    @report_user_errors
    def callback(**kwargs: Any) -> None:
        conn = Connection(**{k: v for k, v in kwargs.items() if k in CONNECTION_FIELDS})
        options = job.options(**{k: v for k, v in kwargs.items() if k not in CONNECTION_FIELDS})
        try:
            submit(name, options, conn)
        except KeyboardInterrupt:
            click.echo("interrupted: running tasks cancelled, cluster connection closed", err=True)
            raise SystemExit(130) from None
        except (ValueError, FileNotFoundError) as exc:  # the jobs' own input errors (data files, search files)
            raise UserError(str(exc)) from None

    return click.Command(name, params=params + CONNECTION_OPTIONS, callback=callback, help=job.summary)


class JobGroup(click.Group):
    """Subcommands are the registered jobs, built when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(JOBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return job_command(cmd_name) if cmd_name in JOBS else None


@click.group(cls=JobGroup, invoke_without_command=True)
@click.option("--list", "list_jobs", is_flag=True, help="List the jobs.")
@click.pass_context
def main(ctx: click.Context, list_jobs: bool) -> None:
    """Run an ML job on Dask (embedded cluster, --scheduler, or --cluster)."""
    if list_jobs:
        for name in sorted(JOBS):
            click.echo(f"{name:10s} {get_job(name).summary}")
        return
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


if __name__ == "__main__":
    main()

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


def doctor_report(conn: Connection, environ: dict[str, str]) -> tuple[str, bool]:
    """Local versions, the pins of pyproject.toml, the cluster's (when one is named and reachable) and the image
    tag the chart deploys, side by side. Returns (text, whether anything differs)."""
    from jobs.runtime import local_versions
    from scripts.versions import load_environment

    env = load_environment()
    local = local_versions()
    target = resolve_target(conn.scheduler, conn.cluster, environ)
    remote: dict[str, Any] = {}
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        if target.kind != "embedded":
            address = _start_or_reach(target, conn, stack, lambda _: None)
            client = connect(address, conn.connect_timeout)
            stack.callback(client.close)
            remote = client.get_versions(packages=list(VERSIONED_PACKAGES))
    header = ["package", "pyproject pin", "this machine"]
    report = None
    if remote:
        report = version_table(remote)
        header += ["scheduler", "workers"]
    remote_rows = {r[0]: r for r in report.rows} if report is not None else {}
    rows = []
    for name in ("python", *VERSIONED_PACKAGES):
        pin = env.python if name == "python" else env.pins.get(name, "-")
        mine = local.get(name, "-")
        row = [name, pin, mine]
        if report is not None:
            row += list(remote_rows.get(name, (name, "-", "-", "-"))[2:])
        same_as_pin = pin == "-" or mine.startswith(pin)
        if not same_as_pin:
            problems.append(f"{name}: this machine has {mine}, pyproject.toml pins {pin}")
        rows.append(row)
    if report is not None:
        problems += [f"{n}: client and cluster differ" for n in report.critical + report.minor]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.append("")
    lines.append(f"image the chart deploys: {env.image_repository}:{env.image_tag} (GPU: {env.gpu_image_tag})")
    if target.kind == "embedded":
        lines.append("cluster: none named (--scheduler, --cluster or DASK_SCHEDULER_ADDRESS to compare one)")
    lines += [f"differs: {p}" for p in problems] or ["no differences"]
    return "\n".join(lines), bool(problems)


@click.command()
@click.option("--scheduler", help="Scheduler address to compare with (default: $DASK_SCHEDULER_ADDRESS).")
@click.option("--cluster", help="A cluster under clusters/ to compare with (port-forward).")
@click.option("--kube-context", help="kubeconfig context for --cluster.")
@click.option("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S, show_default=True)
@report_user_errors
def doctor(scheduler: str | None, cluster: str | None, kube_context: str | None, connect_timeout: float) -> None:
    """Versions here, pinned, on the cluster and in the deployed image, side by side; exit 1 if they differ."""
    text, differs = doctor_report(
        Connection(scheduler=scheduler, cluster=cluster, kube_context=kube_context, connect_timeout=connect_timeout),
        dict(os.environ),
    )
    click.echo(text)
    if differs:
        raise SystemExit(1)


class JobGroup(click.Group):
    """Subcommands are the registered jobs (built when asked for) and ``doctor``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*sorted(JOBS), "doctor"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "doctor":
            return doctor
        return job_command(cmd_name) if cmd_name in JOBS else None


@click.group(cls=JobGroup, invoke_without_command=True)
@click.option("--list", "list_jobs", is_flag=True, help="List the jobs.")
@click.option("--versions", is_flag=True, help="Same as the doctor command: versions side by side.")
@click.pass_context
def main(ctx: click.Context, list_jobs: bool, versions: bool) -> None:
    """Run an ML job on Dask (embedded cluster, --scheduler, or --cluster)."""
    if versions:
        ctx.invoke(doctor)
        return
    if list_jobs:
        for name in sorted(JOBS):
            click.echo(f"{name:10s} {get_job(name).summary}")
        return
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


if __name__ == "__main__":
    main()

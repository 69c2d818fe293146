"""The `dask-platform` command line: thin click commands over the library's functions. `dask-platform --help`
lists the commands (render, schema, versions, images, values, validate, plan, cost, tenants, bootstrap,
jupyter-token, submit, doctor); each has its own --help.

Every command takes the repository from ``--repo`` (default: the checkout this package is installed from).
A UserError prints one line naming the file and key path, and exits 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import types
import typing
from concurrent.futures import CancelledError
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from dask_platform import generated
from dask_platform.errors import UserError, display_path, report_user_errors
from dask_platform.repo import RepoTree
from dask_platform.submit.target import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_WORKER_TIMEOUT_S, Connection
from jobs.registry import JOBS, get_job


def tree_of(ctx: click.Context) -> RepoTree:
    """The repository the command works on: the group's --repo, else this checkout."""
    return ctx.find_object(RepoTree) or RepoTree.checkout()


@click.group()
@click.option(
    "--repo",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Repository to work on (default: the checkout this tool is installed from).",
)
@click.pass_context
def main(ctx: click.Context, repo: Path | None) -> None:
    """dask-platform: render, check and change the platform; run jobs on it."""
    ctx.obj = RepoTree(repo.resolve()) if repo else RepoTree.checkout()


# --- generated files ---------------------------------------------------------------------------------------


@main.command()
@click.argument("clusters", nargs=-1)
@click.option("--all", "all_clusters", is_flag=True, help="Render every clusters/*/cluster.yaml.")
@click.option("--check", is_flag=True, help="Render in memory; exit 1 with a diff if committed files differ.")
@click.pass_context
@report_user_errors
def render(ctx: click.Context, clusters: tuple[str, ...], all_clusters: bool, check: bool) -> None:
    """Render CLUSTERS (folder names under clusters/) and the Argo CD manifests."""
    from dask_platform.render import render_outputs

    if not clusters and not all_clusters:
        raise UserError("name at least one cluster, or pass --all")
    outputs = render_outputs(tree_of(ctx), None if all_clusters else list(clusters))
    _sync(outputs, check, "render --all")


@main.command()
@click.option("--check", is_flag=True, help="Exit 1 with a diff when values.schema.json is stale.")
@click.pass_context
@report_user_errors
def schema(ctx: click.Context, check: bool) -> None:
    """Write the chart's values.schema.json from its documented values.schema.yaml."""
    from dask_platform.schema import schema_outputs

    _sync(schema_outputs(tree_of(ctx)), check, "schema")


@main.group()
def versions() -> None:
    """Show, sync or check what derives from the pins in pyproject.toml."""


@versions.command()
@click.pass_context
@report_user_errors
def show(ctx: click.Context) -> None:
    """Print the derived facts as JSON (image tag, pins, supported Kubernetes minors)."""
    from dask_platform.clusters import supported_kubernetes_minors
    from dask_platform.environment import load_environment

    tree = tree_of(ctx)
    env = load_environment(tree)
    facts = {**asdict(env), "image_tag": env.image_tag, "gpu_image_tag": env.gpu_image_tag}
    click.echo(json.dumps({**facts, "kubernetes_minors": supported_kubernetes_minors(tree)}, indent=2))


@versions.command()
@click.pass_context
@report_user_errors
def sync(ctx: click.Context) -> None:
    """Rewrite the derived files (then re-render: dask-platform render --all)."""
    from dask_platform.environment import version_outputs

    _sync(version_outputs(tree_of(ctx)), False, "versions sync")


@versions.command()
@click.pass_context
@report_user_errors
def check(ctx: click.Context) -> None:
    """Exit 1 with a diff when a derived file is stale."""
    from dask_platform.environment import version_outputs

    _sync(version_outputs(tree_of(ctx)), True, "versions sync")


@main.group()
def images() -> None:
    """The images the rendered clusters pull; the check that gates the deploy branch Argo CD syncs."""


@images.command("show")
@click.pass_context
@report_user_errors
def images_show(ctx: click.Context) -> None:
    """Print the deploy branch and every image clusters/*/rendered pulls (and whether anonymously) as JSON."""
    from dask_platform.images import deploy_branch, rendered_pulls

    tree = tree_of(ctx)
    pulls = [asdict(p) for p in rendered_pulls(tree)]
    click.echo(json.dumps({"deploy_branch": deploy_branch(tree), "pulls": pulls}, indent=2))


@images.command("check")
@click.pass_context
@report_user_errors
def images_check(ctx: click.Context) -> None:
    """Exit 1 naming each rendered image that cannot be pulled the way its pods pull it (docker manifest inspect)."""
    from dask_platform.environment import load_environment
    from dask_platform.images import docker_probe, pull_problems, rendered_pulls

    tree = tree_of(ctx)
    pulls = rendered_pulls(tree)
    problems = pull_problems(pulls, docker_probe, load_environment(tree).image_repository)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"every rendered image can be pulled as its pods pull it: {len(pulls)} checked")


def _sync(outputs: list[generated.AnyOutput], check: bool, command: str) -> None:
    """Write or check generated files; a stale file under --check exits 1."""
    echo = (lambda text: click.echo(text, err=True)) if check else click.echo
    up_to_date = generated.sync(outputs, check, echo, command)
    if check and not up_to_date:
        raise SystemExit(1)
    if up_to_date:
        click.echo(f"up to date: {len(outputs)} generated files/folders")


# --- reviewing and changing values -------------------------------------------------------------------------


@main.group()
def values() -> None:
    """Edit values files for a pull request."""


@values.command("set")
@click.argument("target")
@click.argument("assignments", nargs=-1, required=True)
@click.option("--no-render", is_flag=True, help="Only edit and validate; do not re-render.")
@click.pass_context
@report_user_errors
def values_set(ctx: click.Context, target: str, assignments: tuple[str, ...], no_render: bool) -> None:
    """Set KEY=VALUE in TARGET (a cloud, else a cluster), validate, and re-render what depends on it."""
    from dask_platform.render import render_outputs
    from dask_platform.values_edit import edit_values, parse_assignment

    tree = tree_of(ctx)
    parsed = [parse_assignment(a) for a in assignments]
    edit, text = edit_values(tree, target, parsed)
    # Render from the edited text before writing anything: a render that fails leaves every file as it was.
    outputs = render_outputs(tree.with_text(edit.file, text), edit.clusters) if edit.clusters and not no_render else []
    generated.atomic_write(edit.file, text)
    click.echo(f"{display_path(edit.file)}: set {', '.join('.'.join(a.path) for a in parsed)}")
    if outputs:
        generated.sync(outputs, False, lambda _: None, "render --all")
        click.echo(f"re-rendered: {', '.join(edit.clusters)} (review with: dask-platform validate --base origin/main)")


@main.command()
@click.option("--base", help="Git ref to summarise object changes against (e.g. origin/main).")
@click.option("--markdown", is_flag=True, help="Print the report as Markdown (PR comment, job summary).")
@click.pass_context
@report_user_errors
def validate(ctx: click.Context, base: str | None, markdown: bool) -> None:
    """Validate every cluster; exit 1 when anything is wrong."""
    from dask_platform.validate import format_report, run_checks

    report = run_checks(tree_of(ctx), base)
    click.echo(format_report(report, markdown, base))
    if not report.ok:
        raise SystemExit(1)


# --- clusters --------------------------------------------------------------------------------------------


@main.command()
@click.argument("cluster")
@click.pass_context
@report_user_errors
def plan(ctx: click.Context, cluster: str) -> None:
    """Print how to create CLUSTER (nothing is run)."""
    from dask_platform.clusters import load_cluster
    from dask_platform.costs import cost_lines
    from dask_platform.provision import build_plan
    from dask_platform.render import rendered_objects

    tree = tree_of(ctx)
    click.echo("\n".join(cost_lines(tree, cluster)))
    click.echo(build_plan(load_cluster(tree, cluster), rendered_objects(tree, cluster)), nl=False)


@main.command()
@click.argument("cluster")
@click.pass_context
@report_user_errors
def cost(ctx: click.Context, cluster: str) -> None:
    """What CLUSTER costs per hour and month, idle and busy, and the command that deletes it."""
    from dask_platform.costs import cost_lines

    click.echo("\n".join(cost_lines(tree_of(ctx), cluster)))


@main.command()
@click.argument("cluster")
@click.option("--kube-context", help="kubeconfig context of CLUSTER (default: the current one).")
@click.option("--no-idle", is_flag=True, help="Do not ask each scheduler how long it has been idle.")
@click.pass_context
@report_user_errors
def tenants(ctx: click.Context, cluster: str, kube_context: str | None, no_idle: bool) -> None:
    """The tenants' Dask clusters running on CLUSTER: age, phase, workers, idle time and cost per hour."""
    import time

    from dask_platform.clusters import load_cluster
    from dask_platform.costs import prices, tenant_costs
    from dask_platform.render import rendered_objects
    from dask_platform.submit.kube import ServiceRef, api_client
    from dask_platform.submit.tenant import (
        CLUSTER_LABEL,
        COMPONENT_LABEL,
        build_rows,
        format_rows,
        list_tenant_clusters,
        scheduler_idle_since,
    )
    from dask_platform.tenants import tenant_settings
    from dask_platform.values import build_values

    tree = tree_of(ctx)
    settings = tenant_settings(rendered_objects(tree, cluster))
    if not settings:
        raise UserError(f"cluster {cluster} declares no tenants (tenants in its values)")
    loaded = load_cluster(tree, cluster)
    effective = build_values(tree, loaded).effective
    costs = {t.tenant: t.pod_hourly for t in tenant_costs(loaded, effective, prices(loaded.cloud))}
    from dask_platform.submit.connect import explain

    try:
        items, forbidden = list_tenant_clusters(api_client(kube_context), settings)
    except Exception as exc:  # no kubeconfig, the API refusing or not answering: one line
        message = explain(exc)
        if message is None:
            raise
        raise UserError(f"cluster {cluster}: {message}") from None
    idle: dict[str, float | None] = {}
    for tenant, obj in items if not no_idle else []:
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        selector = {CLUSTER_LABEL: name, COMPONENT_LABEL: "scheduler"}
        ref = ServiceRef(ns, f"{name}-scheduler", settings[tenant].dashboard_port, selector)
        idle[f"{ns}/{name}"] = scheduler_idle_since(ref, kube_context, None)
    click.echo("\n".join(format_rows(build_rows(items, time.time(), costs, idle))))
    if forbidden:
        click.echo(f"(not allowed to list the clusters of: {', '.join(forbidden)})")


@main.command()
@click.argument("cluster", required=False)
@click.option("--fleet", is_flag=True, help="Apply the fleet's AppProject and ApplicationSet (a management cluster).")
@click.option("--dry-run", is_flag=True, help="Print the objects; touch nothing.")
@click.option("--server-dry-run", is_flag=True, help="Send them to the API server with dryRun=All.")
@click.option("--context", "kube_context", help="kubeconfig context (default: the current one).")
@click.pass_context
@report_user_errors
def bootstrap(
    ctx: click.Context, cluster: str | None, fleet: bool, dry_run: bool, server_dry_run: bool, kube_context: str | None
) -> None:
    """CLUSTER runs its own Argo CD: create Jupyter's token Secret (once), apply the AppProject and the ApplicationSet
    of CLUSTER's Application. --fleet: apply the fleet's AppProject and ApplicationSet to a management cluster."""
    import yaml

    from dask_platform.bootstrap import bootstrap_objects, fleet_objects, server_side_apply

    if bool(cluster) == fleet:
        raise click.UsageError("name one CLUSTER, or give --fleet")
    tree = tree_of(ctx)
    objects = fleet_objects(tree) if fleet else bootstrap_objects(tree, cluster)
    if dry_run:
        click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
        return
    api_client = kube_api(kube_context)
    if cluster and not server_dry_run:
        server_side_apply(objects, api_client, dry_run=True)  # Argo CD installed, objects valid: before any Secret
        for line in jupyter_secret_lines(tree, cluster, api_client):
            click.echo(line)
    for line in server_side_apply(objects, api_client, dry_run=server_dry_run):
        click.echo(line)
    if fleet:
        for name in fleet_cluster_names(tree):
            click.echo(f"then, with {name}'s own kube context: dask-platform jupyter-token {name} --context CONTEXT")


def fleet_cluster_names(tree: RepoTree) -> list[str]:
    from dask_platform.argocd import in_cluster
    from dask_platform.clusters import load_clusters

    return [c.name for c in load_clusters(tree, tree.cluster_names()) if not in_cluster(c)]


@main.command("jupyter-token")
@click.argument("cluster")
@click.option("--context", "kube_context", help="kubeconfig context (default: the current one).")
@click.pass_context
@report_user_errors
def jupyter_token(ctx: click.Context, cluster: str, kube_context: str | None) -> None:
    """Create JupyterLab's token Secret in CLUSTER (once) and print the token, and its TLS Secret (self-signed) when
    the cluster renders jupyter.tls and none exists; bootstrap does the same."""
    for line in jupyter_secret_lines(tree_of(ctx), cluster, kube_api(kube_context)):
        click.echo(line)


def jupyter_secret_lines(tree: RepoTree, cluster: str, api_client: Any) -> list[str]:
    """Create what Jupyter's pod needs and the chart never renders (secrets do not belong in git): the login token
    and, with jupyter.tls, a self-signed certificate for the Service's names. Returns what to tell the user."""
    from dask_platform.bootstrap import ensure_jupyter_tls, ensure_jupyter_token, jupyter_secrets

    wanted = jupyter_secrets(tree, cluster)
    token = ensure_jupyter_token(api_client, wanted.namespace, wanted.token_secret, wanted.token_key)
    where = f"Secret {wanted.namespace}/{wanted.token_secret}"
    lines = [f"{where}: created; JupyterLab's token (shown once): {token}" if token else f"{where}: exists"]
    if wanted.tls_secret:
        created = ensure_jupyter_tls(api_client, wanted.namespace, wanted.tls_secret, wanted.tls_hosts)
        where = f"Secret {wanted.namespace}/{wanted.tls_secret}"
        lines.append(
            f"{where}: created, self-signed for {', '.join(wanted.tls_hosts)}; replace it with your CA's certificate "
            "under the same name (docs/autoscaling-and-security.md, TLS per cloud)"
            if created
            else f"{where}: exists"
        )
    return lines


def kube_api(kube_context: str | None) -> Any:
    from kubernetes import config

    try:
        return config.new_client_from_config(context=kube_context)
    except Exception as exc:
        raise UserError(f"no usable kubeconfig: {exc}") from None


# --- jobs ------------------------------------------------------------------------------------------------

CONNECTION_OPTIONS = [
    click.Option(
        ["--scheduler"],
        help="Scheduler address tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS, else an embedded cluster).",
    ),
    click.Option(["--cluster"], help="A cluster under clusters/: reach its scheduler through a port-forward."),
    click.Option(["--kube-context"], help="kubeconfig context for --cluster (default: the current one)."),
    click.Option(
        ["--tenant"],
        help="With --cluster: run on a Dask cluster of this tenant's own, created for the run and deleted after.",
    ),
    click.Option(["--keep"], is_flag=True, help="With --tenant: leave the tenant's cluster running at the end."),
    click.Option(
        ["--workers"],
        type=int,
        help="Embedded cluster: worker processes (default: one per core); --tenant: workers (default: its maximum).",
    ),
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
    click.Option(
        ["--worker-timeout"],
        type=float,
        default=DEFAULT_WORKER_TIMEOUT_S,
        show_default=True,
        help="Seconds to wait for a first worker on a cluster scaled to zero.",
    ),
]
CONNECTION_FIELDS = {f.name for f in dataclasses.fields(Connection)}


def _click_type(annotation: Any) -> tuple[Any, bool]:
    """(click type, is_flag) of a dataclass field annotation such as ``int | None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if isinstance(annotation, types.UnionType) and args else annotation
    if base is bool:
        return bool, True
    return {int: int, float: float, str: str}.get(base, str), False


def job_options(options_class: type) -> list[click.Parameter]:
    """Click options for a job's options dataclass: one per field, with its help and choices."""
    hints = typing.get_type_hints(options_class)
    params: list[click.Parameter] = []
    for f in dataclasses.fields(options_class):
        kind, is_flag = _click_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help")
        if is_flag:
            decl = [f"{flag}/--no-{f.name.replace('_', '-')}"]
            params.append(click.Option(decl, default=f.default, show_default=True, help=help_text))
            continue
        choices = f.metadata.get("choices")
        kind = click.Choice(choices) if choices else kind
        params.append(
            click.Option([flag], type=kind, default=f.default, show_default=f.default is not None, help=help_text)
        )
    return params


def job_command(name: str) -> click.Command:
    """A click command for a registered job."""
    job = get_job(name)

    @report_user_errors
    def callback(**kwargs: Any) -> None:
        conn = Connection(**{k: v for k, v in kwargs.items() if k in CONNECTION_FIELDS})
        options = job.options(**{k: v for k, v in kwargs.items() if k not in CONNECTION_FIELDS})
        from dask_platform.submit.run import submit

        # A lost scheduler ends the run with one line (below); distributed's reconnect attempts would log tracebacks.
        for logger in ("distributed.client", "distributed.comm", "distributed.core"):
            logging.getLogger(logger).setLevel(logging.CRITICAL)
        try:
            submit(tree_of(click.get_current_context()), name, options, conn, click.echo)
        except KeyboardInterrupt:
            click.echo("interrupted: running tasks cancelled, cluster connection closed", err=True)
            raise SystemExit(130) from None
        except (ValueError, FileNotFoundError) as exc:  # the jobs' own input errors (data files, search files)
            raise UserError(str(exc)) from None
        except (OSError, TimeoutError, CancelledError) as exc:  # the scheduler went away mid-run
            detail = " ".join(str(exc).split())[:200]
            raise UserError(
                f"lost the Dask scheduler while running {name} ({type(exc).__name__}: {detail}); nothing was "
                "written. Run again once the scheduler is back."
            ) from None

    return click.Command(
        name, params=job_options(job.options) + CONNECTION_OPTIONS, callback=callback, help=job.summary
    )


class JobGroup(click.Group):
    """Subcommands are the registered jobs, built when asked for (and `doctor`, as on the top level)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*sorted(JOBS), "doctor"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "doctor":
            return doctor
        return job_command(cmd_name) if cmd_name in JOBS else None


@main.group("submit", cls=JobGroup, invoke_without_command=True)
@click.option("--list", "list_jobs", is_flag=True, help="List the jobs.")
@click.pass_context
def submit_group(ctx: click.Context, list_jobs: bool) -> None:
    """Run an ML job on Dask (embedded cluster, --scheduler, or --cluster)."""
    if list_jobs:
        for name in sorted(JOBS):
            click.echo(f"{name:10s} {get_job(name).summary}")
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
@click.option("--scheduler", help="Scheduler address to compare with (default: $DASK_SCHEDULER_ADDRESS).")
@click.option("--cluster", help="A cluster under clusters/ to compare with (port-forward).")
@click.option("--kube-context", help="kubeconfig context for --cluster.")
@click.option("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S, show_default=True)
@click.pass_context
@report_user_errors
def doctor(
    ctx: click.Context, scheduler: str | None, cluster: str | None, kube_context: str | None, connect_timeout: float
) -> None:
    """Versions here, pinned, on the cluster and in the deployed image, side by side; exit 1 if they differ."""
    from dask_platform.submit.run import doctor_report

    conn = Connection(scheduler=scheduler, cluster=cluster, kube_context=kube_context, connect_timeout=connect_timeout)
    report = doctor_report(tree_of(ctx), conn, os.environ)
    click.echo(report.text())
    if report.problems:
        raise SystemExit(1)

"""`python -m testbed.node up|down|status` (what `scripts/dev node` runs): the single-node test cluster's commands.
Part of the test bed, not of the `dask-platform` command: the product's users never start a node."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dask_platform.errors import report_user_errors
from dask_platform.repo import RepoTree


@click.group()
def node() -> None:
    """A real single-node Kubernetes on this machine (tests and trials; root, Debian 12)."""


@node.command("up")
@click.option("--image/--no-image", default=True, help="Build the platform image from docker/Dockerfile and load it.")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Repository whose docker/Dockerfile makes the platform image (default: this checkout).",
)
@report_user_errors
def node_up(image: bool, repo: Path | None) -> None:
    """Start the node (a running one is torn down first); prints its kubeconfig."""
    from dask_platform.environment import load_environment
    from testbed.node.config import Network
    from testbed.node.lifecycle import default_layout, up

    tree = RepoTree(repo.resolve()) if repo else RepoTree.checkout()
    env = load_environment(tree)
    platform = (tree, f"{env.image_repository}:{env.image_tag}") if image else None
    kubeconfig = up(Network(), default_layout(), click.echo, platform)
    click.echo(str(kubeconfig))


@node.command("down")
@report_user_errors
def node_down() -> None:
    """Delete the workloads, stop every process and undo every change to the machine."""
    from testbed.node.config import Network
    from testbed.node.lifecycle import default_layout, down

    down(Network(), default_layout(), click.echo)


@node.command("status")
@report_user_errors
def node_status() -> None:
    """The node's processes, and how many packets the network guard dropped (must be 0)."""
    from testbed.node.config import Network
    from testbed.node.lifecycle import default_layout, status

    click.echo(json.dumps(status(Network(), default_layout()), indent=2))


if __name__ == "__main__":
    node(prog_name="scripts/dev node")

"""The real single-node cluster for the tests: started once per session (testbed.node.lifecycle.up, with the platform
image built from docker/Dockerfile), torn down at the end; and helpers to reach what runs on it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dask_platform.environment import load_environment
from dask_platform.repo import RepoTree
from testbed.node.config import Layout, Network
from testbed.node.lifecycle import default_layout, down, guard_counters, leftovers, up

NAMESPACE = "dask-node"
RELEASE = "dask"
SCENARIO = "03-small-node-values.yaml"


@dataclass(frozen=True)
class Node:
    kubeconfig: Path
    layout: Layout
    net: Network
    boot_s: float

    def api(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def guard_drops(self) -> int:
        return guard_counters(self.net)


def unavailable_reason() -> str | None:
    """Why this machine cannot run the node (None: it can)."""
    if os.geteuid() != 0:
        return "the node needs root"
    for tool in ("containerd", "runc", "buildah", "mmdebstrap", "dnsmasq", "iptables", "ctr"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"{tool} is not installed (scripts/dev test installs the node's Debian packages)"
    return None


@contextlib.contextmanager
def running_node(tree: RepoTree) -> Iterator[Node]:
    env = load_environment(tree)
    net, layout = Network(), default_layout()
    started = time.time()
    kubeconfig = up(net, layout, print, (tree, f"{env.image_repository}:{env.image_tag}"))
    try:
        yield Node(kubeconfig, layout, net, time.time() - started)
    finally:
        drops = down(net, layout, print)
    assert drops == 0, f"{drops} packets of the node's ranges tried to leave the machine (dropped)"
    left = leftovers(net, layout)
    assert left == [], f"node down left these behind: {left}"


def node_cluster(
    tree: RepoTree, name: str = "node", namespace: str = NAMESPACE, values: dict[str, Any] | None = None
) -> str:
    """A cluster folder in ``tree`` for the node: minikube's values with ``values`` (default: the ci/ scenario sized
    for 2 cores) in ``namespace``."""
    if values is None:
        values = yaml.safe_load((tree.chart / "ci" / SCENARIO).read_text())
    doc = {
        "cloud": "minikube",
        "namespace": namespace,
        "kubernetesVersion": "1.36",
        "argocd": {"server": "https://kubernetes.default.svc"},
        "values": values,
    }
    path = tree.cluster_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return name


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"{what} not reached after {timeout:.0f} s")


def start_submit(node: Node, tree: RepoTree, tmp: Path, *where: str) -> subprocess.Popen:
    """`dask-platform submit rossmann` on small data (testbed.daskproc.small_run_args), on the node (``where``: e.g.
    --cluster NAME [--tenant T]), as a process with the node's kubeconfig."""
    from testbed.daskproc import small_run_args

    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"} | {"KUBECONFIG": str(node.kubeconfig)}
    args = small_run_args(tmp, "--no-progress", *where)
    cmd = [sys.executable, "-m", "dask_platform", "--repo", str(tree.root), "submit", *args]
    return subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

"""The real single-node cluster for the tests: started once per session (testbed.node.lifecycle.up, with the platform
image built from docker/Dockerfile), torn down at the end; and helpers to reach what runs on it."""

from __future__ import annotations

import contextlib
import os
import subprocess
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


def node_cluster(tree: RepoTree, name: str = "node") -> str:
    """A cluster folder in ``tree`` for the node: minikube's values with the ci/ scenario sized for 2 cores."""
    scenario = yaml.safe_load((tree.chart / "ci" / SCENARIO).read_text())
    doc = {
        "cloud": "minikube",
        "namespace": NAMESPACE,
        "kubernetesVersion": "1.36",
        "argocd": {"server": "https://kubernetes.default.svc"},
        "values": scenario,
    }
    path = tree.cluster_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return name

"""minikube: one local node, no node groups, no prices; the plan is one `minikube start`."""

from __future__ import annotations

from typing import Any

from dask_platform.clouds.base import Cloud, Plan, load_node_groups
from dask_platform.clusters import Cluster

MINIKUBE = {"cpus": 4, "memory": "8g", "disk": "30g"}
# NetworkPolicy enforcement: minikube's default CNI does not enforce NetworkPolicy; Calico does (minikube handbook,
# network_policy.md).
MINIKUBE_CNI = "--cni=calico"


def build_minikube_command(cluster: Cluster) -> list[str]:
    return [
        "minikube",
        "start",
        f"--profile={cluster.name}",
        f"--cpus={MINIKUBE['cpus']}",
        f"--memory={MINIKUBE['memory']}",
        f"--disk-size={MINIKUBE['disk']}",
        MINIKUBE_CNI,
        f"--kubernetes-version=v{cluster.kubernetes_version}.0",
    ]


def plan(cluster: Cluster, objects: list[dict[str, Any]]) -> Plan:
    return Plan(commands=(build_minikube_command(cluster),))


def teardown(cluster: Cluster) -> str:
    return f"minikube delete --profile={cluster.name}"


CLOUD = Cloud(name="minikube", plan=plan, teardown=teardown, node_groups=load_node_groups("minikube"))

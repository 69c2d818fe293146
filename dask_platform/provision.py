"""Provisioning plans generated from clusters/<name>/cluster.yaml (`dask-platform plan`); nothing here calls a cloud.

    dask-platform plan aws-example     # eksctl ClusterConfig (YAML) + the commands to run
    dask-platform plan gcp-example     # gcloud container clusters/node-pools create ...
    dask-platform plan azure-example   # az aks create / az aks nodepool add ...
    dask-platform plan minikube        # minikube start ...

Every cloud gets two node groups: "core" (scheduler, Jupyter, cluster-autoscaler) and "workers" (Dask
workers; the seed's 4-node default), the names values/<cloud>.yaml selects nodes by. Sizes can be overridden in
cluster.yaml under ``nodeGroups``. The ``build_*`` functions are pure and return data.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from dask_platform.clusters import Cluster
from dask_platform.errors import UserError


@dataclass(frozen=True)
class NodeGroup:
    name: str
    instance_type: str
    min_size: int
    max_size: int
    desired: int
    labels: dict[str, str] = field(default_factory=dict)


# Per-cloud defaults: machine types sized for values/<cloud>.yaml (one 4-CPU/12-GiB worker per "workers" node).
DEFAULT_NODE_GROUPS: dict[str, list[NodeGroup]] = {
    "aws": [NodeGroup("core", "m6i.large", 1, 3, 2), NodeGroup("workers", "m6i.xlarge", 1, 10, 4)],
    "gcp": [NodeGroup("core", "e2-standard-2", 1, 3, 2), NodeGroup("workers", "e2-standard-4", 1, 10, 4)],
    "azure": [NodeGroup("core", "Standard_D2s_v5", 1, 3, 2), NodeGroup("workers", "Standard_D4s_v5", 1, 10, 4)],
    "minikube": [],
}
# The node label each cloud puts on a node group's nodes (what values/<cloud>.yaml selects by).
NODE_GROUP_LABEL = {
    "aws": "eks.amazonaws.com/nodegroup",
    "gcp": "cloud.google.com/gke-nodepool",
    "azure": "kubernetes.azure.com/agentpool",
}
MINIKUBE = {"cpus": 4, "memory": "8g", "disk": "30g"}


def node_groups(cluster: Cluster) -> list[NodeGroup]:
    """The cloud's default node groups with cluster.yaml ``nodeGroups.<name>`` overrides applied."""
    overrides: dict[str, Any] = cluster.settings.get("nodeGroups", {}) or {}
    groups = []
    defaults = {g.name: g for g in DEFAULT_NODE_GROUPS[cluster.cloud]}
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise UserError(
            f"unknown node group (expected {', '.join(defaults)})",
            file=cluster.path,
            key_path=f"nodeGroups.{sorted(unknown)[0]}",
        )
    keys = {"instanceType": "instance_type", "minSize": "min_size", "maxSize": "max_size", "desired": "desired"}
    for name, group in defaults.items():
        changes = {keys[k]: v for k, v in (overrides.get(name) or {}).items()}
        group = replace(group, **changes)
        if not group.min_size <= group.desired <= group.max_size:
            raise UserError(
                f"expected minSize <= desired <= maxSize, got {group.min_size}, {group.desired}, {group.max_size}",
                file=cluster.path,
                key_path=f"nodeGroups.{name}",
            )
        groups.append(group)
    return groups


def _require(cluster: Cluster, key: str) -> str:
    value = cluster.settings.get(key)
    if not value:
        raise UserError(f"required for a {cluster.cloud} cluster", file=cluster.path, key_path=key)
    return str(value)


def autoscaler_tags(cluster: Cluster) -> dict[str, str]:
    """The tags cluster-autoscaler's auto-discovery (values/aws.yaml) looks for on a node group's ASG."""
    return {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{cluster.name}": "owned"}


def build_eksctl_config(cluster: Cluster) -> dict[str, Any]:
    """An eksctl ClusterConfig: OIDC on (for IRSA), managed node groups tagged for autoscaler discovery."""
    region = _require(cluster, "region")
    tags = autoscaler_tags(cluster)
    return {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {
            "name": cluster.name,
            "region": region,
            "version": cluster.kubernetes_version,
            "tags": {"dask-platform/cluster": cluster.name},
        },
        "iam": {"withOIDC": True},
        "managedNodeGroups": [
            {
                "name": g.name,
                "instanceType": g.instance_type,
                "minSize": g.min_size,
                "maxSize": g.max_size,
                "desiredCapacity": g.desired,
                "volumeSize": 100,
                "labels": {"dask-platform/node-group": g.name, **g.labels},
                "tags": tags,
                "propagateASGTags": True,
                "iam": {"withAddonPolicies": {"autoScaler": g.name == "core"}},
            }
            for g in node_groups(cluster)
        ],
    }


def build_gke_commands(cluster: Cluster) -> list[list[str]]:
    """gcloud commands: a cluster with Workload Identity, one autoscaled pool per node group (GKE's managed
    autoscaler), and the default pool removed (GKE always creates one named "default-pool")."""
    project, region = _require(cluster, "project"), _require(cluster, "region")
    where = [f"--project={project}", f"--region={region}"]
    commands = [
        [
            "gcloud",
            "container",
            "clusters",
            "create",
            cluster.name,
            *where,
            f"--node-locations={region}-b",
            f"--cluster-version={cluster.kubernetes_version}",
            f"--workload-pool={project}.svc.id.goog",
            "--num-nodes=1",
        ]
    ]
    for g in node_groups(cluster):
        commands.append(
            [
                "gcloud",
                "container",
                "node-pools",
                "create",
                g.name,
                f"--cluster={cluster.name}",
                *where,
                f"--machine-type={g.instance_type}",
                f"--num-nodes={g.desired}",
                "--enable-autoscaling",
                f"--min-nodes={g.min_size}",
                f"--max-nodes={g.max_size}",
                "--workload-metadata=GKE_METADATA",
            ]
        )
    commands.append(
        ["gcloud", "container", "node-pools", "delete", "default-pool", f"--cluster={cluster.name}", *where, "--quiet"]
    )
    return commands


def build_aks_commands(cluster: Cluster) -> list[list[str]]:
    """az commands: a cluster with OIDC + Workload Identity and AKS's autoscaler, then the workers pool."""
    group, location = _require(cluster, "resourceGroup"), _require(cluster, "region")
    core, *others = node_groups(cluster)
    commands = [
        [
            "az",
            "aks",
            "create",
            f"--resource-group={group}",
            f"--name={cluster.name}",
            f"--location={location}",
            f"--kubernetes-version={cluster.kubernetes_version}",
            "--enable-oidc-issuer",
            "--enable-workload-identity",
            f"--nodepool-name={core.name}",
            f"--node-vm-size={core.instance_type}",
            f"--node-count={core.desired}",
            "--enable-cluster-autoscaler",
            f"--min-count={core.min_size}",
            f"--max-count={core.max_size}",
            "--generate-ssh-keys",
        ]
    ]
    for g in others:
        commands.append(
            [
                "az",
                "aks",
                "nodepool",
                "add",
                f"--resource-group={group}",
                f"--cluster-name={cluster.name}",
                f"--name={g.name}",
                f"--node-vm-size={g.instance_type}",
                f"--node-count={g.desired}",
                "--enable-cluster-autoscaler",
                f"--min-count={g.min_size}",
                f"--max-count={g.max_size}",
            ]
        )
    return commands


def build_minikube_command(cluster: Cluster) -> list[str]:
    return [
        "minikube",
        "start",
        f"--profile={cluster.name}",
        f"--cpus={MINIKUBE['cpus']}",
        f"--memory={MINIKUBE['memory']}",
        f"--disk-size={MINIKUBE['disk']}",
        f"--kubernetes-version=v{cluster.kubernetes_version}.0",
    ]


def build_plan(cluster: Cluster) -> str:
    """What `cluster.py plan` prints for a cluster."""
    if cluster.cloud == "aws":
        config = build_eksctl_config(cluster)
        return (
            f"# eksctl ClusterConfig for {cluster.name}: save as eksctl.yaml, then\n"
            f"#   eksctl create cluster -f eksctl.yaml\n" + yaml.safe_dump(config, sort_keys=False)
        )
    if cluster.cloud == "gcp":
        commands = build_gke_commands(cluster)
    elif cluster.cloud == "azure":
        commands = build_aks_commands(cluster)
    elif cluster.cloud == "minikube":
        commands = [build_minikube_command(cluster)]
    else:
        raise UserError(f"no provisioning plan for cloud {cluster.cloud!r}", file=cluster.path, key_path="cloud")
    return "\n".join(shlex.join(c) for c in commands) + "\n"

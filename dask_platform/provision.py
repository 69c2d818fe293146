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
from dask_platform.identity import (
    Shell,
    build_aks_identity_commands,
    build_eksctl_service_accounts,
    build_gke_identity_commands,
    identities,
)
from dask_platform.machines import AKS_MAX_PODS, allocatable


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
    # "workers" may shrink to no node: idle workers scale to zero (worker autoscaling with minReplicas 0), and the node
    # autoscaler then removes their empty nodes. "core" keeps one node for the scheduler and Jupyter.
    "aws": [NodeGroup("core", "m6i.large", 1, 3, 2), NodeGroup("workers", "m6i.xlarge", 0, 10, 4)],
    "gcp": [NodeGroup("core", "e2-standard-2", 1, 3, 2), NodeGroup("workers", "e2-standard-4", 0, 10, 4)],
    "azure": [NodeGroup("core", "Standard_D2s_v5", 1, 3, 2), NodeGroup("workers", "Standard_D4s_v5", 0, 10, 4)],
    "minikube": [],
}
# The node label each cloud puts on a node group's nodes (what values/<cloud>.yaml selects by).
NODE_GROUP_LABEL = {
    "aws": "eks.amazonaws.com/nodegroup",
    "gcp": "cloud.google.com/gke-nodepool",
    "azure": "kubernetes.azure.com/agentpool",
}
MINIKUBE = {"cpus": 4, "memory": "8g", "disk": "30g"}

# NetworkPolicy enforcement, off by default on every cloud (the chart's policies are then ignored):
# EKS: the VPC CNI's network policy agent, VPC CNI >= 1.14 (docs.aws.amazon.com/eks/latest/userguide/
#   cni-network-policy-configure.html: configuration value enableNetworkPolicy "true").
EKS_VPC_CNI_ADDON = {
    "name": "vpc-cni",
    "version": "latest",
    "configurationValues": '{"enableNetworkPolicy": "true"}',
    "resolveConflicts": "overwrite",
}
# The EBS CSI driver, which provisions the gp3 volumes values/aws.yaml asks for (EKS has no CSI driver for EBS by
# default; eksctl examples/25-addons.yaml: wellKnownPolicies ebsCSIController).
EKS_EBS_CSI_ADDON = {"name": "aws-ebs-csi-driver", "wellKnownPolicies": {"ebsCSIController": True}}
# GKE: Dataplane V2 enforces NetworkPolicy; creation time only (cloud.google.com/kubernetes-engine/docs/how-to/
#   dataplane-v2).
GKE_NETWORK_POLICY = ["--enable-dataplane-v2"]
# AKS: Azure CNI Overlay powered by Cilium (learn.microsoft.com/azure/aks/azure-cni-powered-by-cilium; the API
#   requires --network-policy cilium with the Cilium dataplane). --max-pods: what machines.py's reservations assume.
AKS_NETWORK = [
    "--network-plugin=azure",
    "--network-plugin-mode=overlay",
    "--network-dataplane=cilium",
    "--network-policy=cilium",
]
# minikube: its default CNI does not enforce NetworkPolicy; Calico does (minikube handbook, network_policy.md).
MINIKUBE_CNI = "--cni=calico"


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


# The ASG tag prefix cluster-autoscaler reads a node's labels from when the group has no node to look at, i.e. to
# scale it up from zero (kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md, "Auto-Discovery
# Setup": k8s.io/cluster-autoscaler/node-template/label/<label>). EKS sets eks.amazonaws.com/nodegroup itself, so
# no node group definition carries it: without this tag a pod selecting it could never wake an empty group.
NODE_TEMPLATE_LABEL = "k8s.io/cluster-autoscaler/node-template/label/"


def node_template_tags(cluster: Cluster, group: NodeGroup) -> dict[str, str]:
    """The labels a node of ``group`` will carry, as node-template tags (the group label the chart selects by and
    the group's own labels)."""
    labels = {NODE_GROUP_LABEL[cluster.cloud]: group.name, "dask-platform/node-group": group.name, **group.labels}
    return {NODE_TEMPLATE_LABEL + key: value for key, value in labels.items()}


def build_eksctl_config(cluster: Cluster, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """An eksctl ClusterConfig: OIDC on, one IAM role per rendered ServiceAccount identity (IRSA; no node-role
    policies, so other pods on a node do not get the autoscaler's rights), NetworkPolicy enforced, the EBS CSI
    driver, and managed node groups tagged for the autoscaler's discovery."""
    found = identities(cluster, objects)
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
        "iam": {"withOIDC": True, "serviceAccounts": build_eksctl_service_accounts(cluster, found)},
        "addons": [EKS_VPC_CNI_ADDON, EKS_EBS_CSI_ADDON],
        "managedNodeGroups": [
            {
                "name": g.name,
                "instanceType": g.instance_type,
                "minSize": g.min_size,
                "maxSize": g.max_size,
                "desiredCapacity": g.desired,
                "volumeSize": 100,
                "labels": {"dask-platform/node-group": g.name, **g.labels},
                "tags": {**tags, **node_template_tags(cluster, g)},
                "propagateASGTags": True,
            }
            for g in node_groups(cluster)
        ],
    }


def build_gke_commands(cluster: Cluster, objects: list[dict[str, Any]]) -> list[list[str]]:
    """gcloud commands: a cluster with Workload Identity and Dataplane V2, one autoscaled pool per node group (GKE's
    managed autoscaler), the default pool removed (GKE always creates one named "default-pool"), then the rendered
    ServiceAccounts' IAM service accounts."""
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
            *GKE_NETWORK_POLICY,
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
    return commands + build_gke_identity_commands(cluster, identities(cluster, objects))


def build_aks_commands(cluster: Cluster, objects: list[dict[str, Any]]) -> list[list[str]]:
    """az commands: a cluster with OIDC + Workload Identity, Cilium NetworkPolicy and AKS's autoscaler, the workers
    pool, then a federated managed identity per rendered ServiceAccount identity."""
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
            *AKS_NETWORK,
            f"--max-pods={AKS_MAX_PODS}",
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
                f"--max-pods={AKS_MAX_PODS}",
                "--enable-cluster-autoscaler",
                f"--min-count={g.min_size}",
                f"--max-count={g.max_size}",
            ]
        )
    return commands + build_aks_identity_commands(cluster, identities(cluster, objects))


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


def shell_line(command: list[str]) -> str:
    """One command as a shell line: words quoted, except the substitutions the shell must run."""
    return " ".join(word if isinstance(word, Shell) else shlex.quote(word) for word in command)


def capacity_lines(cluster: Cluster) -> list[str]:
    """What one node of each group leaves for pods (the figures the render-time check uses)."""
    lines = []
    for g in node_groups(cluster):
        room = allocatable(cluster.cloud, g.instance_type)
        if room is not None:
            lines.append(f"# node group {g.name}: {room.describe()} (dask_platform/machines.py)")
    return lines


def build_plan(cluster: Cluster, objects: list[dict[str, Any]]) -> str:
    """What `dask-platform plan` prints for a cluster, from its cluster.yaml and its rendered objects."""
    notes, after = capacity_lines(cluster), []
    if cluster.cloud == "aws":
        config = build_eksctl_config(cluster, objects)
        head = [
            f"# eksctl ClusterConfig for {cluster.name}: save as eksctl.yaml, then",
            "#   eksctl create cluster -f eksctl.yaml",
        ]
        return "\n".join([*head, *notes]) + "\n" + yaml.safe_dump(config, sort_keys=False)
    if cluster.cloud == "gcp":
        commands = build_gke_commands(cluster, objects)
    elif cluster.cloud == "azure":
        commands = build_aks_commands(cluster, objects)
        after.append(
            "# then put each identity's client id (az identity show --query clientId) in clusters/"
            f"{cluster.name}/cluster.yaml as the ServiceAccount's azure.workload.identity/client-id"
        )
    elif cluster.cloud == "minikube":
        commands = [build_minikube_command(cluster)]
    else:
        raise UserError(f"no provisioning plan for cloud {cluster.cloud!r}", file=cluster.path, key_path="cloud")
    return "\n".join([*notes, *(shell_line(c) for c in commands), *after]) + "\n"

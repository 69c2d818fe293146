"""Provisioning plans generated from clusters/<name>/cluster.yaml (`dask-platform plan`); nothing here calls a cloud.

    dask-platform plan aws-example     # eksctl ClusterConfig (YAML) + the commands to run
    dask-platform plan gcp-example     # gcloud container clusters/node-pools create ...
    dask-platform plan azure-example   # az aks create / az aks nodepool add ...
    dask-platform plan minikube        # minikube start ...

Every cloud gets three node groups, the names values/<cloud>.yaml selects nodes by: "core" (scheduler, Jupyter,
cluster-autoscaler; in the cluster's zone), "workers" (Dask workers, the seed's 4-node default; tainted for them) and
"gpu" (GPU workers; empty until a GPU worker group is enabled). Sizes can be overridden in cluster.yaml under
``nodeGroups``. The nodes are private; facts the chart must agree with (Jupyter's zone, its load balancer's source
range) are handed to the values by ``planned_values``. The ``build_*`` functions are pure and return data.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
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
class Taint:
    """A node taint as the plan sets it (eksctl ``taints``, gcloud/az ``--node-taints``) or as the cloud sets it."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def __str__(self) -> str:
        """KEY=VALUE:EFFECT, the form gcloud and az take and (as VALUE:EFFECT) cluster-autoscaler's ASG tag."""
        return f"{self.key}={self.value}:{self.effect}"


def tolerates(toleration: dict[str, Any], taint: Taint) -> bool:
    """Whether a pod toleration tolerates ``taint``, by Kubernetes' rules (an empty key with Exists tolerates every
    taint; an empty effect every effect; Equal, the default operator, also compares the value)."""
    if toleration.get("effect") and toleration["effect"] != taint.effect:
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint.key:
        return False
    return operator == "Exists" or str(toleration.get("value", "")) == taint.value


@dataclass(frozen=True)
class NodeGroup:
    """A node group of the plan. ``labels`` and ``taints`` are set by the plan; ``cloud_labels`` and
    ``cloud_taints`` are what the cloud sets on such nodes itself (sources beside DEFAULT_NODE_GROUPS)."""

    name: str
    instance_type: str
    min_size: int
    max_size: int
    desired: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    cloud_labels: dict[str, str] = field(default_factory=dict)
    cloud_taints: tuple[Taint, ...] = ()
    accelerator: str = ""  # GKE: the GPU attached to each node (gcloud --accelerator type=...)
    zonal: bool = False  # pinned to the cluster's zone (cluster.yaml `zone`)

    @property
    def all_taints(self) -> tuple[Taint, ...]:
        return (*self.taints, *self.cloud_taints)


# Worker pools are tainted so that nothing but Dask workers lands there: a kube-system pod without a
# PodDisruptionBudget (not a DaemonSet) on a worker node keeps cluster-autoscaler from removing the node, so the
# pool never scales to zero (kubernetes/autoscaler cluster-autoscaler/FAQ.md, "What types of pods can prevent CA
# from removing a node?"). The cloud's own DaemonSets tolerate every taint (aws-node, kube-proxy; ebs-csi-node:
# aws-ebs-csi-driver chart values node.tolerateAllTaints true), so nodes.py's DaemonSet share still applies.
WORKER_TAINT = Taint("dask-platform/workers", "true")
# GPU nodes: NVIDIA's device plugin tolerates nvidia.com/gpu (NVIDIA/k8s-device-plugin deployments/static/
# nvidia-device-plugin.yml); GKE taints GPU nodes with it itself (cloud.google.com/kubernetes-engine/docs/how-to/gpus:
# "GKE automatically taints the GPU nodes" when the cluster has a non-GPU pool, which the plan creates first).
GPU_TAINT = Taint("nvidia.com/gpu", "present")
# AKS's convention, which the device plugin DaemonSet of its docs tolerates (learn.microsoft.com/azure/aks/
# gpu-cluster: az aks nodepool add --node-taints sku=gpu:NoSchedule).
AKS_GPU_TAINT = Taint("sku", "gpu")
T4 = "nvidia-tesla-t4"

# Per-cloud defaults: machine types sized for values/<cloud>.yaml (one 4-CPU/12-GiB worker per "workers" node).
# "workers" and "gpu" may shrink to no node: idle workers scale to zero (worker autoscaling with minReplicas 0), and
# the node autoscaler then removes their empty nodes. "core" keeps one node for the scheduler and Jupyter, in the
# cluster's zone (Jupyter's home is a zonal disk: EBS, Persistent Disk, Azure Disk).
DEFAULT_NODE_GROUPS: dict[str, list[NodeGroup]] = {
    "aws": [
        NodeGroup("core", "m6i.large", 1, 3, 2, zonal=True),
        NodeGroup("workers", "m6i.xlarge", 0, 10, 4, taints=(WORKER_TAINT,)),
        # k8s.amazonaws.com/accelerator: the label cluster-autoscaler >= 1.15 reads to treat a node as a GPU node
        # while its device plugin starts (autoscaler cloudprovider/aws/README.md, "Special note on GPU instances").
        NodeGroup("gpu", "g4dn.xlarge", 0, 4, 0, labels={"k8s.amazonaws.com/accelerator": T4}, taints=(GPU_TAINT,)),
    ],
    # GKE: one --node-locations zone for the whole cluster, so every pool is in it.
    "gcp": [
        NodeGroup("core", "e2-standard-2", 1, 3, 2, zonal=True),
        NodeGroup("workers", "e2-standard-4", 0, 10, 4, taints=(WORKER_TAINT,), zonal=True),
        # GKE labels GPU nodes cloud.google.com/gke-accelerator=<type> (GKE docs, how-to/gpus).
        NodeGroup(
            "gpu",
            "n1-standard-4",
            0,
            4,
            0,
            cloud_labels={"cloud.google.com/gke-accelerator": T4},
            cloud_taints=(GPU_TAINT,),
            accelerator=T4,
            zonal=True,
        ),
    ],
    "azure": [
        NodeGroup("core", "Standard_D2s_v5", 1, 3, 2, zonal=True),
        NodeGroup("workers", "Standard_D4s_v5", 0, 10, 4, taints=(WORKER_TAINT,)),
        # AKS labels GPU nodes kubernetes.azure.com/accelerator=nvidia (AKS docs, use-labels: reserved labels).
        NodeGroup(
            "gpu",
            "Standard_NC4as_T4_v3",
            0,
            4,
            0,
            taints=(AKS_GPU_TAINT,),
            cloud_labels={"kubernetes.azure.com/accelerator": "nvidia"},
        ),
    ],
    "minikube": [],
}
# The node label each cloud puts on a node group's nodes (what values/<cloud>.yaml selects by).
NODE_GROUP_LABEL = {
    "aws": "eks.amazonaws.com/nodegroup",
    "gcp": "cloud.google.com/gke-nodepool",
    "azure": "kubernetes.azure.com/agentpool",
}
# The well-known zone label every cloud's node controller sets (kubernetes.io/docs/reference/labels-annotations-taints,
# topology.kubernetes.io/zone); AKS zone values are <region>-<n> (AKS docs, availability-zones).
ZONE_LABEL = "topology.kubernetes.io/zone"
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

# --- the network -----------------------------------------------------------------------------------------------
# EKS: eksctl puts managed node groups in public subnets unless privateNetworking is set (eksctl docs,
# vpc-configuration: "The initial nodegroup is created in public subnets"; vpc-subnet-settings), and the AWS
# service controller opens a LoadBalancer Service's NodePort on the node security group to
# loadBalancerSourceRanges, 0.0.0.0/0 when none (kubernetes/cloud-provider-aws pkg/providers/v1/aws.go,
# EnsureLoadBalancer: sourceRangeCidrs, then updateInstanceSecurityGroupsForNLB; kubernetes/kubernetes#57212): with
# public nodes Jupyter's NodePort was reachable from the internet. The plan puts every node group in the private
# subnets, with egress through one NAT gateway (vpc.nat.gateway Single, eksctl's default, set explicitly; eksctl docs
# vpc-configuration "NAT Gateway"), and the Jupyter Service's source range is the VPC (planned_values below).
# eksctl's default VPC CIDR (eksctl docs, vpc-configuration), explicit so the Service's source range can derive from
# the same value.
DEFAULT_VPC_CIDR = "192.168.0.0/16"
EKS_NAT_GATEWAY = "Single"
# GKE: nodes have external IPs unless private (cloud.google.com/kubernetes-engine/docs/concepts/network-isolation),
# and the project's default network admits SSH from anywhere to them (default-allow-ssh, cloud.google.com/vpc/docs/
# firewalls, "Pre-populated rules in the default network"). Private nodes need a Cloud Router with a NAT to pull the
# platform image (global.image; gcloud compute routers nats create --auto-allocate-nat-external-ips
# --nat-all-subnet-ip-ranges, gcloud reference) and Private Google Access on the subnet to reach Google APIs directly.
GKE_NETWORK = "default"
# AKS: nodes get a public IP only when asked (--enable-node-public-ip: AKS docs, use-node-public-ips) and the
# internal load balancer stays in the VNet: nothing to change.


def _require(cluster: Cluster, key: str) -> str:
    value = cluster.settings.get(key)
    if not value:
        raise UserError(f"required for a {cluster.cloud} cluster", file=cluster.path, key_path=key)
    return str(value)


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


# cloud -> (the default zone in region R, the zone names of region R): EKS zones are <region><letter>, GKE
# <region>-<letter>, AKS zone labels <region>-<n> for `--zones n` (AKS docs, availability-zones).
ZONES = {
    "aws": ("{region}a", r"{region}[a-z]"),
    "gcp": ("{region}-b", r"{region}-[a-z]"),
    "azure": ("{region}-1", r"{region}-[1-3]"),
}


def cluster_zone(cluster: Cluster) -> str | None:
    """The zone of the zonal node groups (cluster.yaml ``zone``, default per cloud), None without zones."""
    if cluster.cloud not in ZONES:
        return None
    region = _require(cluster, "region")
    default, pattern = ZONES[cluster.cloud]
    zone = str(cluster.settings.get("zone") or default.format(region=region))
    if not re.fullmatch(pattern.format(region=re.escape(region)), zone):
        example = default.format(region=region)
        raise UserError(
            f"expected a zone of region {region} (like {example}), got {zone!r}", file=cluster.path, key_path="zone"
        )
    return zone


def vpc_zones(cluster: Cluster) -> list[str]:
    """EKS: the zones the VPC spans: the cluster's zone and the next of a, b, c (EKS needs subnets in two zones; a
    node group's zones must be among the VPC's, eksctl docs vpc-subnet-settings)."""
    zone, region = cluster_zone(cluster), _require(cluster, "region")
    others = [f"{region}{letter}" for letter in "abc" if f"{region}{letter}" != zone]
    return [zone, *others][:3]


def vpc_cidr(cluster: Cluster) -> str:
    """EKS: the VPC's CIDR (cluster.yaml ``network.vpcCidr``, default eksctl's own)."""
    value = str((cluster.settings.get("network") or {}).get("vpcCidr") or DEFAULT_VPC_CIDR)
    try:
        return str(ipaddress.ip_network(value))
    except ValueError:
        raise UserError(
            f"expected an IPv4 CIDR like 10.0.0.0/16, got {value!r}", file=cluster.path, key_path="network.vpcCidr"
        ) from None


def planned_values(cluster: Cluster) -> dict[str, Any]:
    """Chart values that follow from the plan (values.py layers them over values/<cloud>.yaml): Jupyter in the zone
    of its zonal disk, and on EKS its Service open to the VPC only (one source: cluster.yaml ``zone`` and
    ``network.vpcCidr``)."""
    zone = cluster_zone(cluster)
    if zone is None:
        return {}
    jupyter: dict[str, Any] = {"nodeSelector": {ZONE_LABEL: zone}}
    if cluster.cloud == "aws":
        jupyter["service"] = {"loadBalancerSourceRanges": [vpc_cidr(cluster)]}
    return {"jupyter": jupyter}


def node_labels(cluster: Cluster, group: NodeGroup) -> dict[str, str]:
    """The labels a node of ``group`` carries that the plan knows: the group label, the plan's and the cloud's own
    labels, and the zone when the group is pinned to one."""
    labels = {NODE_GROUP_LABEL[cluster.cloud]: group.name, **group.cloud_labels, **group.labels}
    if cluster.cloud == "aws":
        labels["dask-platform/node-group"] = group.name  # set by the eksctl config below
    if group.zonal:
        labels[ZONE_LABEL] = str(cluster_zone(cluster))
    return labels


def matching_groups(cluster: Cluster, groups: list[NodeGroup], selector: dict[str, str]) -> list[NodeGroup]:
    """The planned groups whose nodes a pod with ``selector`` may run on. A label the plan knows for some group must
    have that group's value; labels it knows for none (kubernetes.io/arch, ...) are not judged, nor is the zone of a
    group that is not pinned to one."""
    known = {key for g in groups for key in node_labels(cluster, g)}
    found = []
    for g in groups:
        labels = node_labels(cluster, g)
        judged = [k for k in selector if k in labels or (k in known and k != ZONE_LABEL)]
        if all(labels.get(k) == str(selector[k]) for k in judged):
            found.append(g)
    return found


# --- maintenance windows ----------------------------------------------------------------------------------------
# Weekend nights by default (00:00 UTC is 01:00-02:00 in western Europe); cluster.yaml `maintenance` sets days, start
# (UTC) and hours. GKE: one recurring window, at least 48 hours in any 32 days in windows of 4 hours or more, weekday
# recurrences read in UTC (cloud.google.com/kubernetes-engine/docs/how-to/maintenance-window). AKS: a Weekly
# aksManagedAutoUpgradeSchedule and aksManagedNodeOSUpgradeSchedule, 4 hours or more with auto-upgrade
# (learn.microsoft.com/azure/aks/planned-maintenance). EKS has no managed maintenance window: control plane and managed
# node group updates run when you start them (docs.aws.amazon.com/eks/latest/userguide/update-managed-node-group.html),
# apart from EKS's automatic upgrade at the end of extended support.
DEFAULT_MAINTENANCE = {"days": ["Saturday", "Sunday"], "start": "00:00", "hours": 6}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
GKE_DAYS = {day: day[:2].upper() for day in WEEKDAYS}  # RFC 5545 BYDAY: MO, TU, ...


@dataclass(frozen=True)
class Maintenance:
    days: list[str]
    start: str  # HH:MM, UTC
    hours: int


def maintenance(cluster: Cluster) -> Maintenance:
    """cluster.yaml ``maintenance`` over the defaults; GKE's 48-hours-in-32-days rule checked (each weekday occurs at
    least 4 times in any 32 days)."""
    settings = {**DEFAULT_MAINTENANCE, **(cluster.settings.get("maintenance") or {})}
    window = Maintenance(list(settings["days"]), str(settings["start"]), int(settings["hours"]))
    if cluster.cloud == "gcp" and len(set(window.days)) * window.hours * 4 < 48:
        raise UserError(
            f"GKE needs at least 48 maintenance hours in any 32 days: expected days x hours >= 12, got "
            f"{len(set(window.days))} x {window.hours}",
            file=cluster.path,
            key_path="maintenance",
        )
    return window


def gke_maintenance_flags(window: Maintenance) -> list[str]:
    start = datetime.datetime(2000, 1, 1, *map(int, window.start.split(":")))
    end = start + datetime.timedelta(hours=window.hours)
    days = ",".join(GKE_DAYS[d] for d in window.days)
    return [
        f"--maintenance-window-start={start:%Y-%m-%dT%H:%M:%SZ}",
        f"--maintenance-window-end={end:%Y-%m-%dT%H:%M:%SZ}",
        f"--maintenance-window-recurrence=FREQ=WEEKLY;BYDAY={days}",
    ]


def aks_maintenance_commands(cluster: Cluster, window: Maintenance) -> list[list[str]]:
    """Kubernetes patch upgrades on the first day of the window, node image upgrades on the last."""
    where = [f"--resource-group={cluster.settings['resourceGroup']}", f"--cluster-name={cluster.name}"]
    schedules = [
        ("aksManagedAutoUpgradeSchedule", window.days[0]),
        ("aksManagedNodeOSUpgradeSchedule", window.days[-1]),
    ]
    return [
        ["az", "aks", "maintenanceconfiguration", "add", *where, f"--name={name}", "--schedule-type=Weekly",
         f"--day-of-week={day}", "--interval-weeks=1", f"--duration={window.hours}", "--utc-offset=+00:00",
         f"--start-time={window.start}"]
        for name, day in schedules
    ]  # fmt: skip


# --- EKS ------------------------------------------------------------------------------------------------------------


def autoscaler_tags(cluster: Cluster) -> dict[str, str]:
    """The tags cluster-autoscaler's auto-discovery (values/aws.yaml) looks for on a node group's ASG."""
    return {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{cluster.name}": "owned"}


# The ASG tag prefixes cluster-autoscaler reads a node's labels and taints from when the group has no node to look
# at, i.e. to scale it up from zero (kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md,
# "Auto-Discovery Setup": k8s.io/cluster-autoscaler/node-template/label/<label> and .../taint/<key> with value
# <value>:<effect>; aws_manager.go extractTaintsFromAsg skips values without the effect). EKS sets
# eks.amazonaws.com/nodegroup itself, so no node group definition carries it: without this tag a pod selecting it
# could never wake an empty group. eksctl's propagateASGTags writes the taint tag without the effect (eksctl
# pkg/cfn/builder GenerateClusterAutoscalerTags), and the node group's own tags override it
# (pkg/cfn/manager propagateManagedNodeGroupTagsToASGTask), so the plan sets it.
NODE_TEMPLATE_LABEL = "k8s.io/cluster-autoscaler/node-template/label/"
NODE_TEMPLATE_TAINT = "k8s.io/cluster-autoscaler/node-template/taint/"


def node_template_tags(cluster: Cluster, group: NodeGroup) -> dict[str, str]:
    """The labels and taints a node of ``group`` will carry, as node-template tags."""
    tags = {NODE_TEMPLATE_LABEL + key: value for key, value in node_labels(cluster, group).items()}
    tags.update({NODE_TEMPLATE_TAINT + t.key: f"{t.value}:{t.effect}" for t in group.all_taints})
    return tags


def eksctl_node_group(cluster: Cluster, g: NodeGroup) -> dict[str, Any]:
    """One managed node group: private subnets, pinned to the cluster's zone when zonal, tainted, and tagged for the
    autoscaler's discovery. AmazonLinux2023 picks the EKS accelerated AMI for GPU types, and eksctl then installs
    NVIDIA's device plugin, tolerating the group's taints (eksctl docs gpu-support; pkg/addons/device_plugin.go)."""
    group: dict[str, Any] = {
        "name": g.name,
        "instanceType": g.instance_type,
        "amiFamily": "AmazonLinux2023",
        "minSize": g.min_size,
        "maxSize": g.max_size,
        "desiredCapacity": g.desired,
        "volumeSize": 100,
        "privateNetworking": True,
    }
    if g.zonal:
        group["availabilityZones"] = [cluster_zone(cluster)]
    group["labels"] = {"dask-platform/node-group": g.name, **g.labels}
    if g.taints:
        group["taints"] = [{"key": t.key, "value": t.value, "effect": t.effect} for t in g.taints]
    group["tags"] = {**autoscaler_tags(cluster), **node_template_tags(cluster, g)}
    group["propagateASGTags"] = True
    return group


def build_eksctl_config(cluster: Cluster, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """An eksctl ClusterConfig: OIDC on, one IAM role per rendered ServiceAccount identity (IRSA; no node-role
    policies, so other pods on a node do not get the autoscaler's rights), NetworkPolicy enforced, the EBS CSI
    driver, a VPC whose nodes are private, and managed node groups tagged for the autoscaler's discovery."""
    found = identities(cluster, objects)
    region = _require(cluster, "region")
    return {
        "apiVersion": "eksctl.io/v1alpha5",
        "kind": "ClusterConfig",
        "metadata": {
            "name": cluster.name,
            "region": region,
            "version": cluster.kubernetes_version,
            "tags": {"dask-platform/cluster": cluster.name},
        },
        "availabilityZones": vpc_zones(cluster),
        "vpc": {"cidr": vpc_cidr(cluster), "nat": {"gateway": EKS_NAT_GATEWAY}},
        "iam": {"withOIDC": True, "serviceAccounts": build_eksctl_service_accounts(cluster, found)},
        "addons": [EKS_VPC_CNI_ADDON, EKS_EBS_CSI_ADDON],
        "managedNodeGroups": [eksctl_node_group(cluster, g) for g in node_groups(cluster)],
    }


# --- GKE ------------------------------------------------------------------------------------------------------------


def gke_nat_router(cluster: Cluster) -> str:
    return f"{cluster.name}-nat"


def build_gke_network_commands(cluster: Cluster) -> list[list[str]]:
    """The egress of private nodes: Private Google Access on the region's subnet, a Cloud Router and its NAT."""
    project, region, router = _require(cluster, "project"), _require(cluster, "region"), gke_nat_router(cluster)
    where = [f"--project={project}", f"--region={region}"]
    return [
        ["gcloud", "compute", "networks", "subnets", "update", GKE_NETWORK, *where,
         "--enable-private-ip-google-access"],
        ["gcloud", "compute", "routers", "create", router, *where, f"--network={GKE_NETWORK}"],
        ["gcloud", "compute", "routers", "nats", "create", router, f"--router={router}", *where,
         "--auto-allocate-nat-external-ips", "--nat-all-subnet-ip-ranges"],
    ]  # fmt: skip


def gke_pool_flags(g: NodeGroup) -> list[str]:
    """A pool's taints and GPU: GKE installs the driver (gpu-driver-version=default) and its device plugin, and taints
    the nodes itself (cloud.google.com/kubernetes-engine/docs/how-to/gpus; gcloud container node-pools create
    --accelerator type=TYPE,count=COUNT,gpu-driver-version=...)."""
    flags = [f"--node-taints={','.join(str(t) for t in g.taints)}"] if g.taints else []
    if g.accelerator:
        flags.append(f"--accelerator=type={g.accelerator},count=1,gpu-driver-version=default")
    return flags


def build_gke_commands(cluster: Cluster, objects: list[dict[str, Any]]) -> list[list[str]]:
    """gcloud commands: the NAT for private nodes, a cluster with private nodes in one zone, Workload Identity,
    Dataplane V2 and a weekend maintenance window, one autoscaled pool per node group (GKE's managed autoscaler), the
    default pool removed (GKE always creates one named "default-pool"), then the rendered ServiceAccounts' IAM
    service accounts."""
    project, region = _require(cluster, "project"), _require(cluster, "region")
    where = [f"--project={project}", f"--region={region}"]
    commands = build_gke_network_commands(cluster)
    commands.append(
        [
            "gcloud",
            "container",
            "clusters",
            "create",
            cluster.name,
            *where,
            f"--node-locations={cluster_zone(cluster)}",
            f"--cluster-version={cluster.kubernetes_version}",
            f"--workload-pool={project}.svc.id.goog",
            *GKE_NETWORK_POLICY,
            f"--network={GKE_NETWORK}",
            "--enable-private-nodes",
            *gke_maintenance_flags(maintenance(cluster)),
            "--num-nodes=1",
        ]
    )
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
                *gke_pool_flags(g),
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


# --- AKS ------------------------------------------------------------------------------------------------------------

# Patch upgrades only (the minor stays cluster.yaml's kubernetesVersion; the AKS default channel is none) and weekly
# node images, set explicitly (NodeImage is the default node OS channel from API 2023-06-01: AKS docs gpu-cluster and
# auto-upgrade-node-os-image), both in the maintenance windows (learn.microsoft.com/azure/aks/auto-upgrade-cluster).
AKS_UPGRADES = ["--auto-upgrade-channel=patch", "--node-os-upgrade-channel=NodeImage"]


def aks_pool_command(cluster: Cluster, g: NodeGroup) -> list[str]:
    """``az aks nodepool add`` for one user pool (taints can only be set at creation: AKS docs, gpu-cluster)."""
    taints = [f"--node-taints={','.join(str(t) for t in g.taints)}"] if g.taints else []
    return [
        "az",
        "aks",
        "nodepool",
        "add",
        f"--resource-group={cluster.settings['resourceGroup']}",
        f"--cluster-name={cluster.name}",
        f"--name={g.name}",
        f"--node-vm-size={g.instance_type}",
        *taints,
        f"--node-count={g.desired}",
        f"--max-pods={AKS_MAX_PODS}",
        "--enable-cluster-autoscaler",
        f"--min-count={g.min_size}",
        f"--max-count={g.max_size}",
    ]


def build_aks_commands(cluster: Cluster, objects: list[dict[str, Any]]) -> list[list[str]]:
    """az commands: a cluster with OIDC + Workload Identity, Cilium NetworkPolicy, AKS's autoscaler and patch
    auto-upgrades, its core pool in one zone, the other pools, the maintenance windows, then a federated managed
    identity per rendered ServiceAccount identity."""
    group, location = _require(cluster, "resourceGroup"), _require(cluster, "region")
    core, *others = node_groups(cluster)
    zone = [f"--zones={str(cluster_zone(cluster)).rsplit('-', 1)[1]}"] if core.zonal else []
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
            *AKS_UPGRADES,
            f"--max-pods={AKS_MAX_PODS}",
            f"--nodepool-name={core.name}",
            f"--node-vm-size={core.instance_type}",
            *zone,
            f"--node-count={core.desired}",
            "--enable-cluster-autoscaler",
            f"--min-count={core.min_size}",
            f"--max-count={core.max_size}",
            "--generate-ssh-keys",
        ]
    ]
    commands += [aks_pool_command(cluster, g) for g in others]
    commands += aks_maintenance_commands(cluster, maintenance(cluster))
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


# What the plan cannot do itself, printed with it (sources above and in docs/autoscaling-and-security.md).
PLAN_NOTES = {
    "aws": [
        "# network: nodes in private subnets; egress (the platform image, S3) through one NAT gateway, billed per GB",
        "#   processed; Jupyter's internal NLB is open to the VPC CIDR only (jupyter.service.loadBalancerSourceRanges)",
        "# gpu: eksctl installs NVIDIA's device plugin for the gpu group (eksctl docs, gpu-support)",
        "# maintenance: EKS has no managed window; upgrade with eksctl upgrade cluster / eksctl upgrade nodegroup",
    ],
    "gcp": [
        "# network: private nodes; egress (the platform image) through Cloud NAT, Google APIs through Private Google",
        "#   Access",
        "# gpu: GKE installs the driver and device plugin and taints the nodes nvidia.com/gpu=present:NoSchedule",
    ],
    "azure": [
        "# gpu: AKS installs the driver; before enabling dask.workerGroups.gpu install NVIDIA's device plugin",
        '#   DaemonSet of learn.microsoft.com/azure/aks/gpu-cluster ("Manually install the NVIDIA device plugin": it',
        "#   tolerates sku=gpu:NoSchedule and selects kubernetes.azure.com/accelerator=nvidia)",
    ],
}


def build_plan(cluster: Cluster, objects: list[dict[str, Any]]) -> str:
    """What `dask-platform plan` prints for a cluster, from its cluster.yaml and its rendered objects."""
    notes, after = [*capacity_lines(cluster), *PLAN_NOTES.get(cluster.cloud, [])], []
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

"""What every cloud module provides (``Cloud``), and the shapes they share: node groups and their taints, machine
sizes, what a node leaves for pods, a plan. Nothing here names a cloud; dask_platform/clouds/<cloud>.py does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from dask_platform.errors import UserError

if TYPE_CHECKING:
    from dask_platform.clusters import Cluster


@dataclass(frozen=True)
class Taint:
    """A node taint as the plan sets it (eksctl ``taints``, gcloud/az ``--node-taints``) or as the cloud sets it."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def __str__(self) -> str:
        """KEY=VALUE:EFFECT, the form gcloud and az take and (as VALUE:EFFECT) cluster-autoscaler's ASG tag."""
        return f"{self.key}={self.value}:{self.effect}"

    @classmethod
    def parse(cls, text: str) -> Taint:
        """The inverse of ``str``: KEY=VALUE:EFFECT (the form of the node group data files)."""
        key, rest = text.split("=", 1)
        value, effect = rest.rsplit(":", 1)
        return cls(key, value, effect)


# Worker pools are tainted so that nothing but Dask workers lands there: a kube-system pod without a
# PodDisruptionBudget (not a DaemonSet) on a worker node keeps cluster-autoscaler from removing the node, so the
# pool never scales to zero (kubernetes/autoscaler cluster-autoscaler/FAQ.md, "What types of pods can prevent CA
# from removing a node?"). The cloud's own DaemonSets tolerate every taint (aws-node, kube-proxy; ebs-csi-node:
# aws-ebs-csi-driver chart values node.tolerateAllTaints true), so machines.py's DaemonSet share still applies.
WORKER_TAINT = Taint("dask-platform/workers", "true")
# GPU nodes: NVIDIA's device plugin tolerates nvidia.com/gpu (NVIDIA/k8s-device-plugin deployments/static/
# nvidia-device-plugin.yml); GKE taints GPU nodes with it itself (cloud.google.com/kubernetes-engine/docs/how-to/gpus:
# "GKE automatically taints the GPU nodes" when the cluster has a non-GPU pool, which the plan creates first).
GPU_TAINT = Taint("nvidia.com/gpu", "present")


@dataclass(frozen=True)
class NodeGroup:
    """A node group of the plan. ``labels`` and ``taints`` are set by the plan; ``cloud_labels`` and
    ``cloud_taints`` are what the cloud sets on such nodes itself (sources beside the cloud's node group data)."""

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


# cluster.yaml / data file key -> NodeGroup field.
NODE_GROUP_KEYS = {
    "instanceType": "instance_type",
    "minSize": "min_size",
    "maxSize": "max_size",
    "desired": "desired",
    "labels": "labels",
    "taints": "taints",
    "cloudLabels": "cloud_labels",
    "cloudTaints": "cloud_taints",
    "accelerator": "accelerator",
    "zonal": "zonal",
}


def load_node_groups(cloud: str) -> tuple[NodeGroup, ...]:
    """dask_platform/clouds/<cloud>.yaml ``nodeGroups``: the cloud's default node groups, as data."""
    path = resources.files("dask_platform.clouds") / f"{cloud}.yaml"
    return parse_node_groups(yaml.safe_load(path.read_text()) or {}, f"dask_platform/clouds/{cloud}.yaml")


def parse_node_groups(data: dict[str, Any], file: str) -> tuple[NodeGroup, ...]:
    """Node groups from a data file's ``nodeGroups`` list; an unknown key is refused with its key path."""
    groups = []
    for index, entry in enumerate(data.get("nodeGroups") or []):
        unknown = sorted(set(entry) - {"name", *NODE_GROUP_KEYS})
        if unknown or "name" not in entry:
            raise UserError(
                f"expected a node group with a name and {', '.join(NODE_GROUP_KEYS)}",
                file=file,
                key_path=f"nodeGroups.{index}" + (f".{unknown[0]}" if unknown else ""),
            )
        fields: dict[str, Any] = {NODE_GROUP_KEYS[k]: v for k, v in entry.items() if k != "name"}
        for key in ("taints", "cloud_taints"):
            fields[key] = tuple(Taint.parse(t) for t in fields.get(key, ()))
        groups.append(NodeGroup(entry["name"], **fields))
    return tuple(groups)


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_mib: int
    max_pods: int
    gpus: int = 0


def tiers(total: int, edges: list[int], rates: list[float]) -> float:
    """Sum of rate x the part of ``total`` inside each band [edges[i], edges[i+1])."""
    reserved = 0.0
    for (low, high), rate in zip(zip(edges, [*edges[1:], None], strict=False), rates, strict=False):
        top = total if high is None else min(total, high)
        if top > low:
            reserved += (top - low) * rate
    return reserved


@dataclass(frozen=True)
class Plan:
    """What a cloud's plan builder returns: a config file printed as YAML after the notes (``config``), or shell
    commands followed by ``after`` lines; ``head`` comes before the notes."""

    head: tuple[str, ...] = ()
    config: dict[str, Any] | None = None
    commands: tuple[list[str], ...] = ()
    after: tuple[str, ...] = ()


def _no_reservation(machine: Machine) -> int:
    return 0


def _nothing(cluster: Cluster) -> dict[str, Any]:
    return {}


def _no_check(cluster: Cluster, window: Any) -> None:
    return None


@dataclass(frozen=True)
class Cloud:
    """Everything the tool knows of one cloud (docs/clouds.md lists these fields for a new cloud)."""

    name: str
    plan: Callable[[Cluster, list[dict[str, Any]]], Plan]  # the provisioning plan (pure)
    teardown: Callable[[Cluster], str]  # the one command line that deletes the cluster
    node_group_label: str = ""  # the label the cloud puts on a node group's nodes ("" without node groups)
    node_groups: tuple[NodeGroup, ...] = ()  # the defaults (clouds/<cloud>.yaml), cluster.yaml nodeGroups overrides
    plan_labels: tuple[str, ...] = ()  # labels the plan itself sets to the group's name on every node
    machines: dict[str, Machine] = field(default_factory=dict)  # machine type -> nominal size
    reserved_cpu_m: Callable[[Machine], int] = _no_reservation  # kube-reserved CPU, millicores
    reserved_memory_mib: Callable[[Machine], int] = _no_reservation  # kernel + kube-reserved + eviction, MiB
    daemonsets: tuple[int, int] = (0, 0)  # the cloud's DaemonSets on every node (millicores, MiB)
    gpu_daemonsets: tuple[int, int] = (0, 0)  # and in addition on GPU nodes
    zone: tuple[str, str] | None = None  # (the default zone in {region}, the pattern of the region's zones)
    jupyter_values: Callable[[Cluster], dict[str, Any]] = _nothing  # load-balancer facts the chart must agree with
    identity_annotation: str = ""  # the ServiceAccount annotation naming the pods' cloud identity
    check_maintenance: Callable[[Cluster, Any], None] = _no_check  # the cloud's rules on maintenance windows
    plan_notes: tuple[str, ...] = ()  # what the plan cannot do itself, printed with it
    prices: str = ""  # the price table, a dated data file under dask_platform/; "": runs on this machine, free


# --- what the cloud modules share (dask_platform/provision.py re-exports it) ---------------------------------------


def cloud_of(cluster: Cluster) -> Cloud:
    """The cluster's ``Cloud`` (imported here, not at the top: the cloud modules build on this module)."""
    from dask_platform.clouds import CLOUDS

    if cluster.cloud not in CLOUDS:
        raise UserError(f"no provisioning plan for cloud {cluster.cloud!r}", file=cluster.path, key_path="cloud")
    return CLOUDS[cluster.cloud]


# The well-known zone label every cloud's node controller sets (kubernetes.io/docs/reference/labels-annotations-taints,
# topology.kubernetes.io/zone); AKS zone values are <region>-<n> (AKS docs, availability-zones).
ZONE_LABEL = "topology.kubernetes.io/zone"


def require(cluster: Cluster, key: str) -> str:
    value = cluster.settings.get(key)
    if not value:
        raise UserError(f"required for a {cluster.cloud} cluster", file=cluster.path, key_path=key)
    return str(value)


def node_groups(cluster: Cluster) -> list[NodeGroup]:
    """The cloud's default node groups with cluster.yaml ``nodeGroups.<name>`` overrides applied."""
    overrides: dict[str, Any] = cluster.settings.get("nodeGroups", {}) or {}
    groups = []
    defaults = {g.name: g for g in cloud_of(cluster).node_groups}
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


def cluster_zone(cluster: Cluster) -> str | None:
    """The zone of the zonal node groups (cluster.yaml ``zone``, default per cloud: ``Cloud.zone``), None without
    zones."""
    zones = cloud_of(cluster).zone
    if zones is None:
        return None
    region = require(cluster, "region")
    default, pattern = zones
    zone = str(cluster.settings.get("zone") or default.format(region=region))
    if not re.fullmatch(pattern.format(region=re.escape(region)), zone):
        example = default.format(region=region)
        raise UserError(
            f"expected a zone of region {region} (like {example}), got {zone!r}", file=cluster.path, key_path="zone"
        )
    return zone


def node_labels(cluster: Cluster, group: NodeGroup) -> dict[str, str]:
    """The labels a node of ``group`` carries that the plan knows: the group label, the plan's and the cloud's own
    labels, and the zone when the group is pinned to one."""
    c = cloud_of(cluster)
    labels = {c.node_group_label: group.name, **group.cloud_labels, **group.labels}
    labels.update({key: group.name for key in c.plan_labels})  # set by the plan (eksctl's node group labels)
    if group.zonal:
        labels[ZONE_LABEL] = str(cluster_zone(cluster))
    return labels


# --- maintenance windows ----------------------------------------------------------------------------------------
# Weekend nights by default (00:00 UTC is 01:00-02:00 in western Europe); cluster.yaml `maintenance` sets days, start
# (UTC) and hours. Each cloud checks its own rules (Cloud.check_maintenance) and turns the window into its plan's
# flags; the sources are beside them in dask_platform/clouds/<cloud>.py.
DEFAULT_MAINTENANCE = {"days": ["Saturday", "Sunday"], "start": "00:00", "hours": 6}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class Maintenance:
    days: list[str]
    start: str  # HH:MM, UTC
    hours: int


def maintenance(cluster: Cluster) -> Maintenance:
    """cluster.yaml ``maintenance`` over the defaults, checked by the cloud's rules (``Cloud.check_maintenance``)."""
    settings = {**DEFAULT_MAINTENANCE, **(cluster.settings.get("maintenance") or {})}
    window = Maintenance(list(settings["days"]), str(settings["start"]), int(settings["hours"]))
    cloud_of(cluster).check_maintenance(cluster, window)
    return window

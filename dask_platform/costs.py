"""What a cluster costs per hour and per month, idle and busy, and how to delete it (`dask-platform cost`, and the
head of `dask-platform plan`). Prices are on-demand list prices from dask_platform/prices/<cloud>.yaml, each table
with its date and sources; nothing here calls a cloud. Storage, load balancers and traffic are not counted (named
in the report).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from dask_platform.clouds import cloud
from dask_platform.clusters import Cluster
from dask_platform.machines import allocatable
from dask_platform.provision import NodeGroup, node_groups
from dask_platform.quantity import parse_quantity
from dask_platform.repo import RepoTree

HOURS_PER_MONTH = 730  # 365 x 24 / 12, the month the three providers' calculators use


@dataclass(frozen=True)
class PriceTable:
    region: str
    date: str  # of the machine prices' source
    source: str
    control_plane: float  # USD per cluster-hour
    machines: dict[str, float]  # machine type -> USD per hour
    accelerators: dict[str, float] = field(default_factory=dict)  # GPU type -> USD per GPU-hour on top of the machine
    network: float = 0.0  # USD per hour of what the plan creates for the nodes' egress (NAT)
    network_per_node: float = 0.0  # and per node-hour, up to network_node_cap nodes (Cloud NAT)
    network_node_cap: int = 0
    notes: tuple[str, ...] = ()  # the sources of the control-plane and network figures

    @property
    def as_of(self) -> datetime.date | None:
        return datetime.date.fromisoformat(self.date) if self.date else None


def load_prices(name: str) -> PriceTable:
    """The cloud's price table, dask_platform/prices/<cloud>.yaml (``Cloud.prices``; shipped with the package:
    pyproject.toml package-data); none for a cloud that runs on this machine."""
    path = cloud(name).prices
    if not path:
        return PriceTable(region="", date="", source="runs on your machine", control_plane=0.0, machines={})
    data = yaml.safe_load((resources.files("dask_platform") / path).read_text())
    network = data.get("network") or {}
    return PriceTable(
        region=data["region"],
        date=str(data["date"]),
        source=" ".join(data["source"].split()),
        control_plane=float(data["controlPlane"]["hourly"]),
        machines={k: float(v) for k, v in data["machines"].items()},
        accelerators={k: float(v) for k, v in (data.get("accelerators") or {}).items()},
        network=float(network.get("hourly", 0.0)),
        network_per_node=float(network.get("perNode", 0.0)),
        network_node_cap=int(network.get("nodeCap", 0)),
        notes=tuple(" ".join(str(x["source"]).split()) for x in (data["controlPlane"], network) if x.get("source")),
    )


@cache
def prices(name: str) -> PriceTable:
    return load_prices(name)


@dataclass(frozen=True)
class GroupScale:
    group: str
    machine_type: str
    hourly: float
    idle_nodes: int  # what the values keep when no work runs
    busy_nodes: int  # the group's maximum when something selects it, else its minimum
    floor_nodes: int  # the group's minimum: every worker group autoscaled to zero


@dataclass(frozen=True)
class TenantCost:
    """What a tenant's pods cost: each takes 1/pods_per_node of a node of its worker group's node group."""

    tenant: str
    machine_type: str
    pods_per_node: int
    pod_hourly: float
    quota_pods: int  # the most pods its quota admits (pods, cpu and memory)

    @property
    def quota_hourly(self) -> float:
        return self.pod_hourly * self.quota_pods


@dataclass(frozen=True)
class CostReport:
    cluster: str
    cloud: str
    control_plane: float
    groups: list[GroupScale]
    missing: list[str]  # why a figure could not be computed (region or machine type not in the table)
    teardown: str
    network: float = 0.0
    network_per_node: float = 0.0
    network_node_cap: int = 0
    tenants: list[TenantCost] = field(default_factory=list)

    def nodes(self, scale: str) -> int:
        return sum(getattr(g, f"{scale}_nodes") for g in self.groups)

    def hourly(self, scale: str) -> float:
        """USD per hour at ``scale``: idle, busy or floor (machines, control plane, egress NAT)."""
        nat = self.network + self.network_per_node * min(self.nodes(scale), self.network_node_cap)
        return self.control_plane + nat + sum(g.hourly * getattr(g, f"{scale}_nodes") for g in self.groups)

    def monthly(self, scale: str) -> float:
        return self.hourly(scale) * HOURS_PER_MONTH


def _worker_pods_per_node(cloud_name: str, machine_type: str, group_values: dict[str, Any]) -> int:
    room = allocatable(cloud_name, machine_type)
    requests = (group_values.get("resources") or {}).get("requests") or {}
    if room is None or not requests.get("cpu") or not requests.get("memory"):
        return 1
    by_cpu = room.cpu_m / 1000 // float(parse_quantity(requests["cpu"]))
    by_memory = room.memory_bytes // float(parse_quantity(requests["memory"]))
    return max(1, int(min(by_cpu, by_memory)))


def _selecting(cluster: Cluster, group: NodeGroup, effective: dict[str, Any]) -> list[tuple[list[Any], dict[str, Any]]]:
    """The enabled components whose pods select ``group`` (by its group label)."""
    from dask_platform.values import pod_owners

    label = cloud(cluster.cloud).node_group_label
    return [
        (owner, settings)
        for owner, settings in pod_owners(effective)
        if (settings.get("nodeSelector") or {}).get(label) == group.name
    ]


def idle_nodes(cluster: Cluster, group: NodeGroup, effective: dict[str, Any]) -> int:
    """Nodes ``group`` keeps when no work runs: its minimum, or what the worker groups selecting it keep (an
    autoscaled group its minReplicas, a fixed one its replicas), whichever is more."""
    nodes = 0
    for owner, values in _selecting(cluster, group, effective):
        if owner[:2] != ["dask", "workerGroups"]:
            continue
        scaling = values.get("autoscaling") or {}
        pods = scaling.get("minReplicas", 0) if scaling.get("enabled") else values.get("replicas", 0)
        nodes += math.ceil(pods / _worker_pods_per_node(cluster.cloud, group.instance_type, values))
    return max(group.min_size, nodes)


def teardown_command(cluster: Cluster) -> str:
    """The one command line that deletes the cluster (and with it its nodes, load balancers and network)."""
    return cloud(cluster.cloud).teardown(cluster)


def _group_scale(cluster: Cluster, g: NodeGroup, table: PriceTable, effective: dict[str, Any]) -> GroupScale | str:
    """A group's price and node counts, or why it has no price."""
    price = table.machines.get(g.instance_type)
    if price is None:
        return f"no price for {g.instance_type} in dask_platform/{cloud(cluster.cloud).prices}"
    if g.accelerator:
        if g.accelerator not in table.accelerators:
            return f"no price for the {g.accelerator} GPU in dask_platform/{cloud(cluster.cloud).prices}"
        price += table.accelerators[g.accelerator]
    busy = g.max_size if _selecting(cluster, g, effective) else g.min_size
    return GroupScale(g.name, g.instance_type, price, idle_nodes(cluster, g, effective), busy, g.min_size)


def tenant_costs(cluster: Cluster, effective: dict[str, Any], table: PriceTable) -> list[TenantCost]:
    """Per tenant: the price of one of its pods (sized as its worker group, on the node group that group selects)
    and of all the pods its quota admits at once."""
    from dask_platform.tenants import _group, admitted_pods

    label = cloud(cluster.cloud).node_group_label
    groups = {g.name: g for g in node_groups(cluster)}
    out = []
    for name, tenant in sorted((effective.get("tenants") or {}).items()):
        _, values = _group(effective, tenant)
        node_group = groups.get(((values or {}).get("nodeSelector") or {}).get(label, ""))
        if values is None or node_group is None or node_group.instance_type not in table.machines:
            continue
        per_node = _worker_pods_per_node(cluster.cloud, node_group.instance_type, values)
        hourly = table.machines[node_group.instance_type] / per_node
        quota_pods = admitted_pods(tenant["quota"], values["resources"])
        out.append(TenantCost(name, node_group.instance_type, per_node, hourly, quota_pods))
    return out


def build_cost_report(cluster: Cluster, effective: dict[str, Any]) -> CostReport:
    """Idle (node groups at what no work keeps) and busy (every group some component selects at its maximum) cost
    of ``cluster``. A group nothing selects and that may be empty (the gpu group while GPU workers are off) costs
    nothing and is left out."""
    table = prices(cluster.cloud)
    missing = []
    if table.region and cluster.settings.get("region") != table.region:
        missing.append(f"prices are for {table.region}; {cluster.settings.get('region')} is not in the table")
    groups = []
    for g in node_groups(cluster):
        if g.min_size == 0 and not _selecting(cluster, g, effective):
            continue
        scale = _group_scale(cluster, g, table, effective)
        if isinstance(scale, str):
            missing.append(scale)
        else:
            groups.append(scale)
    return CostReport(
        cluster.name,
        cluster.cloud,
        table.control_plane,
        groups,
        missing,
        teardown_command(cluster),
        table.network,
        table.network_per_node,
        table.network_node_cap,
        tenant_costs(cluster, effective, table),
    )


def format_cost_report(report: CostReport) -> list[str]:
    """The report as comment lines (the plan's head, and `dask-platform cost`)."""
    table = prices(report.cloud)
    if not cloud(report.cloud).prices:
        return ["# cost: none (runs on this machine)", f"# delete: {report.teardown}"]
    lines = [f"# cost, on-demand list prices in {table.region} as of {table.date} (storage, load balancers and"]
    lines.append("# traffic not counted):")
    if report.missing:
        lines += [f"#   not computed: {m}" for m in report.missing]
    else:
        scales = ["idle", "busy"]
        if report.hourly("floor") < report.hourly("idle"):
            scales.append("floor")
        for scale in scales:
            nodes = ", ".join(f"{getattr(g, f'{scale}_nodes')} x {g.machine_type}" for g in report.groups)
            fixed = report.hourly(scale) - sum(g.hourly * getattr(g, f"{scale}_nodes") for g in report.groups)
            lines.append(
                f"#   {scale:<5} ${report.hourly(scale):7.2f}/hour  ${report.monthly(scale):9.2f}/month  "
                f"({nodes}; control plane and NAT ${fixed:.3f}/hour)"
            )
        if "floor" in scales:
            lines.append(
                "#   (floor: idle with the worker groups autoscaled to zero: dask.workerGroups.<group>.autoscaling "
                "enabled, minReplicas 0, KEDA in the cluster)"
            )
    for t in report.tenants:
        lines.append(
            f"#   tenant {t.tenant}: ${t.pod_hourly:.3f} per pod-hour (1/{t.pods_per_node} of a {t.machine_type}); "
            f"at its quota ({t.quota_pods} pods) ${t.quota_hourly:.2f}/hour, on nodes the autoscaler adds"
        )
    lines.append(f"# prices: {table.source}")
    lines += [f"#   {note}" for note in table.notes]
    lines.append(f"# delete: {report.teardown}")
    return lines


def cost_lines(tree: RepoTree, name: str) -> list[str]:
    """The cost report of cluster ``name`` as its values stand (what `plan` and `cost` print)."""
    from dask_platform.clusters import load_cluster
    from dask_platform.values import build_values

    cluster = load_cluster(tree, name)
    return format_cost_report(build_cost_report(cluster, build_values(tree, cluster).effective))

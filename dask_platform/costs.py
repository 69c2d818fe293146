"""What a cluster costs per hour and per month, idle and busy, and how to delete it (`dask-platform cost`, and the
head of `dask-platform plan`). Prices are on-demand list prices from the table below, with its date and sources;
nothing here calls a cloud. Storage, load balancers and traffic are not counted (named in the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dask_platform.clusters import Cluster
from dask_platform.machines import allocatable
from dask_platform.provision import NODE_GROUP_LABEL, NodeGroup, node_groups
from dask_platform.quantity import parse_quantity
from dask_platform.repo import RepoTree

HOURS_PER_MONTH = 730  # 365 x 24 / 12, the month the three providers' calculators use


@dataclass(frozen=True)
class PriceTable:
    region: str
    date: str
    source: str
    control_plane: float  # USD per cluster-hour
    machines: dict[str, float]  # machine type -> USD per hour


PRICES: dict[str, PriceTable] = {
    "aws": PriceTable(
        region="us-east-1",
        date="2026-02-09",
        source="aws/karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go (generated 2026-02-09 "
        "from the AWS price list); EKS control plane $0.10/h in standard support (aws.amazon.com/eks/pricing)",
        control_plane=0.10,
        machines={"m6i.large": 0.096, "m6i.xlarge": 0.192, "g4dn.xlarge": 0.526},
    ),
    "gcp": PriceTable(
        region="europe-west1",
        date="2025-03-06",
        source="Cyclenerd/google-cloud-pricing-cost-calculator pricing.yml (generated 2025-03-06 from the Cloud "
        "Billing catalog); GKE cluster management fee $0.10/h for a regional cluster "
        "(cloud.google.com/kubernetes-engine/pricing; the free-tier credit covers zonal clusters only)",
        control_plane=0.10,
        machines={"e2-standard-2": 0.07371546, "e2-standard-4": 0.14743092, "n1-standard-4": 0.209007},
    ),
    "azure": PriceTable(
        region="westeurope",
        date="2023-12-18",
        source="Azure/karpenter-provider-azure pkg/providers/pricing/zz_generated.pricing.go (generated 2023-12-18 "
        "from the Azure Retail Prices API); AKS Free tier control plane $0 (the plan creates Free tier clusters)",
        control_plane=0.0,
        machines={"Standard_D2s_v5": 0.115, "Standard_D4s_v5": 0.230, "Standard_NC4as_T4_v3": 0.658},
    ),
    "minikube": PriceTable(region="", date="", source="runs on your machine", control_plane=0.0, machines={}),
}


@dataclass(frozen=True)
class GroupScale:
    group: str
    machine_type: str
    hourly: float
    idle_nodes: int  # what the values keep when no work runs
    busy_nodes: int  # the group's maximum
    floor_nodes: int  # the group's minimum: every worker group autoscaled to zero


@dataclass(frozen=True)
class CostReport:
    cluster: str
    cloud: str
    control_plane: float
    groups: list[GroupScale]
    missing: list[str]  # why a figure could not be computed (region or machine type not in the table)
    teardown: str

    def hourly(self, scale: str) -> float:
        """USD per hour at ``scale``: idle, busy or floor."""
        return self.control_plane + sum(g.hourly * getattr(g, f"{scale}_nodes") for g in self.groups)

    def monthly(self, scale: str) -> float:
        return self.hourly(scale) * HOURS_PER_MONTH


def _worker_pods_per_node(cloud: str, machine_type: str, group_values: dict[str, Any]) -> int:
    room = allocatable(cloud, machine_type)
    requests = (group_values.get("resources") or {}).get("requests") or {}
    if room is None or not requests.get("cpu") or not requests.get("memory"):
        return 1
    by_cpu = room.cpu_m / 1000 // float(parse_quantity(requests["cpu"]))
    by_memory = room.memory_bytes // float(parse_quantity(requests["memory"]))
    return max(1, int(min(by_cpu, by_memory)))


def idle_nodes(cluster: Cluster, group: NodeGroup, effective: dict[str, Any]) -> int:
    """Nodes ``group`` keeps when no work runs: its minimum, or what the worker groups selecting it keep (an
    autoscaled group its minReplicas, a fixed one its replicas), whichever is more."""
    label = NODE_GROUP_LABEL.get(cluster.cloud)
    nodes = 0
    for values in (effective.get("dask", {}).get("workerGroups") or {}).values():
        if not values or values.get("enabled") is False:
            continue
        if (values.get("nodeSelector") or {}).get(label) != group.name:
            continue
        scaling = values.get("autoscaling") or {}
        pods = scaling.get("minReplicas", 0) if scaling.get("enabled") else values.get("replicas", 0)
        nodes += math.ceil(pods / _worker_pods_per_node(cluster.cloud, group.instance_type, values))
    return max(group.min_size, nodes)


def teardown_command(cluster: Cluster) -> str:
    """The one command that deletes the cluster (and with it its nodes and load balancers)."""
    s = cluster.settings
    if cluster.cloud == "aws":
        return f"eksctl delete cluster --name {cluster.name} --region {s.get('region')} --wait"
    if cluster.cloud == "gcp":
        where = f"--project={s.get('project')} --region={s.get('region')}"
        return f"gcloud container clusters delete {cluster.name} {where}"
    if cluster.cloud == "azure":
        return f"az aks delete --resource-group={s.get('resourceGroup')} --name={cluster.name} --yes"
    return f"minikube delete --profile={cluster.name}"


def build_cost_report(cluster: Cluster, effective: dict[str, Any]) -> CostReport:
    """Idle (node groups at what no work keeps) and busy (every group at its maximum) cost of ``cluster``."""
    table = PRICES[cluster.cloud]
    missing = []
    if table.region and cluster.settings.get("region") != table.region:
        missing.append(f"prices are for {table.region}; {cluster.settings.get('region')} is not in the table")
    groups = []
    for g in node_groups(cluster) if cluster.cloud != "minikube" else []:
        price = table.machines.get(g.instance_type)
        if price is None:
            missing.append(f"no price for {g.instance_type} in dask_platform/costs.py")
            continue
        idle = idle_nodes(cluster, g, effective)
        groups.append(GroupScale(g.name, g.instance_type, price, idle, g.max_size, g.min_size))
    return CostReport(cluster.name, cluster.cloud, table.control_plane, groups, missing, teardown_command(cluster))


def format_cost_report(report: CostReport) -> list[str]:
    """The report as comment lines (the plan's head, and `dask-platform cost`)."""
    table = PRICES[report.cloud]
    if report.cloud == "minikube":
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
            lines.append(
                f"#   {scale:<5} ${report.hourly(scale):7.2f}/hour  ${report.monthly(scale):9.2f}/month  "
                f"({nodes}; control plane ${report.control_plane:.2f}/hour)"
            )
        if "floor" in scales:
            lines.append(
                "#   (floor: idle with the worker groups autoscaled to zero: dask.workerGroups.<group>.autoscaling "
                "enabled, minReplicas 0, KEDA in the cluster)"
            )
    lines.append(f"# prices: {table.source}")
    lines.append(f"# delete: {report.teardown}")
    return lines


def cost_lines(tree: RepoTree, name: str) -> list[str]:
    """The cost report of cluster ``name`` as its values stand (what `plan` and `cost` print)."""
    from dask_platform.clusters import load_cluster
    from dask_platform.values import build_values

    cluster = load_cluster(tree, name)
    return format_cost_report(build_cost_report(cluster, build_values(tree, cluster).effective))

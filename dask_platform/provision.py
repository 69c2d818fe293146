"""Provisioning plans generated from clusters/<name>/cluster.yaml (`dask-platform plan`); nothing here calls a cloud.

    dask-platform plan aws-example     # eksctl ClusterConfig (YAML) + the commands to run
    dask-platform plan gcp-example     # gcloud container clusters/node-pools create ...
    dask-platform plan azure-example   # az aks create / az aks nodepool add ...
    dask-platform plan minikube        # minikube start ...

The logic every cloud shares: node groups (the cloud's defaults, dask_platform/clouds/<cloud>.yaml, with cluster.yaml
``nodeGroups`` overrides), the cluster's zone, node labels, maintenance windows, and the plan's text. What differs
per cloud is asked of its ``Cloud`` (dask_platform/clouds/). Every cloud with node groups gets three, the names
values/<cloud>.yaml selects nodes by: "core" (scheduler, Jupyter, cluster-autoscaler; in the cluster's zone),
"workers" (Dask workers, the seed's 4-node default; tainted for them) and "gpu" (GPU workers; empty until a GPU
worker group is enabled). The nodes are private; facts the chart must agree with (Jupyter's zone, its load
balancer's source range) are handed to the values by ``planned_values``. The ``build_*`` functions are pure and
return data.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from dask_platform.clouds.base import (
    DEFAULT_MAINTENANCE,
    GPU_TAINT,
    WEEKDAYS,
    WORKER_TAINT,
    ZONE_LABEL,
    Maintenance,
    NodeGroup,
    Taint,
    cloud_of,
    cluster_zone,
    maintenance,
    node_groups,
    node_labels,
    require,
)
from dask_platform.clusters import Cluster
from dask_platform.identity import Shell

__all__ = [
    "DEFAULT_MAINTENANCE",
    "GPU_TAINT",
    "WEEKDAYS",
    "WORKER_TAINT",
    "Maintenance",
    "NodeGroup",
    "Taint",
    "cluster_zone",
    "maintenance",
    "node_groups",
    "node_labels",
    "require",
]


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


def planned_values(cluster: Cluster) -> dict[str, Any]:
    """Chart values that follow from the plan (values.py layers them over values/<cloud>.yaml): Jupyter in the zone
    of its zonal disk, and the cloud's load-balancer facts (on EKS its Service open to the VPC only; one source:
    cluster.yaml ``zone`` and ``network.vpcCidr``)."""
    zone = cluster_zone(cluster)
    if zone is None:
        return {}
    jupyter: dict[str, Any] = {"nodeSelector": {ZONE_LABEL: zone}}
    jupyter.update(cloud_of(cluster).jupyter_values(cluster))
    return {"jupyter": jupyter}


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


def shell_line(command: list[str]) -> str:
    """One command as a shell line: words quoted, except the substitutions the shell must run."""
    return " ".join(word if isinstance(word, Shell) else shlex.quote(word) for word in command)


def capacity_lines(cluster: Cluster) -> list[str]:
    """What one node of each group leaves for pods (the figures the render-time check uses)."""
    from dask_platform.machines import allocatable

    lines = []
    for g in node_groups(cluster):
        room = allocatable(cluster.cloud, g.instance_type)
        if room is not None:
            lines.append(f"# node group {g.name}: {room.describe()} (dask_platform/machines.py)")
    return lines


def build_plan(cluster: Cluster, objects: list[dict[str, Any]]) -> str:
    """What `dask-platform plan` prints for a cluster, from its cluster.yaml and its rendered objects: the cloud's
    plan (``Cloud.plan``) after what each node leaves for pods and the cloud's notes (what the plan cannot do
    itself)."""
    c = cloud_of(cluster)
    notes = [*capacity_lines(cluster), *c.plan_notes]
    plan = c.plan(cluster, objects)
    if plan.config is not None:
        return "\n".join([*plan.head, *notes]) + "\n" + yaml.safe_dump(plan.config, sort_keys=False)
    return "\n".join([*plan.head, *notes, *(shell_line(x) for x in plan.commands), *plan.after]) + "\n"

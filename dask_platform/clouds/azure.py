"""Azure AKS: node groups (azure.yaml), machines and what they leave for pods, prices
(dask_platform/prices/azure.yaml), the az plan, Workload Identity, maintenance windows and teardown."""

from __future__ import annotations

import re
import shlex
from typing import Any

from dask_platform.clouds.base import (
    Cloud,
    Machine,
    Maintenance,
    NodeGroup,
    Plan,
    cluster_zone,
    load_node_groups,
    maintenance,
    node_groups,
    require,
    tiers,
)
from dask_platform.clusters import Cluster
from dask_platform.errors import UserError
from dask_platform.identity import Identity, Shell, grants, identities
from dask_platform.tenants import tenant_groups

# The label AKS puts on a node pool's nodes (what values/azure.yaml selects by).
NODE_GROUP_LABEL = "kubernetes.azure.com/agentpool"
# AKS zone labels are <region>-<n> for `--zones n` (AKS docs, availability-zones).
ZONE = ("{region}-1", r"{region}-[1-3]")

# Nominal machine sizes: learn.microsoft.com/azure/virtual-machines/sizes (dsv5-series, nct4-v3-series); max pods
# AKS_MAX_PODS, which the plan passes as --max-pods (the Azure CNI Overlay default is 250:
# concepts-network-ip-address-planning).
AKS_MAX_PODS = 110
MACHINES = {
    "Standard_D2s_v5": Machine(2, 8192, AKS_MAX_PODS),
    "Standard_D4s_v5": Machine(4, 16384, AKS_MAX_PODS),
    "Standard_D8s_v5": Machine(8, 32768, AKS_MAX_PODS),
    "Standard_NC4as_T4_v3": Machine(4, 28672, AKS_MAX_PODS, gpus=1),
}
# The cloud's own DaemonSets on every node (CPU millicores, memory MiB): kube-proxy 100m, cloud-node-manager
# 50m/50Mi (cloud-provider-azure helm values), csi-azuredisk-node and csi-azurefile-node 30m/60Mi each (their
# deploy/*-node.yaml); agrees with measured AKS nodes (2i2c) to 1m. GPU nodes: the device plugin DaemonSet of the
# AKS docs requests nothing (AKS docs, gpu-cluster).
DAEMONSETS = (210, 170)


def reserved_cpu_m(machine: Machine) -> int:
    """AKS: 6% of the first core, 4% of the second, 2% of cores 3-4, 1% above (node-resource-reservations; table 1c
    60m, 2c 100m, 4c 140m, 8c 180m, 16c 260m)."""
    return int(tiers(machine.cpus * 1000, [0, 1000, 2000, 4000], [0.06, 0.04, 0.02, 0.01]))


def reserved_memory_mib(machine: Machine) -> int:
    """AKS 1.29+: min(20 MiB x maxPods + 50 MiB, 25% of memory) (node-resource-reservations), eviction 100Mi. Kernel:
    2.5% of nominal (measured AKS nodes report 97.6-98.1% of it: 2i2c-org/infrastructure instance_capacities.yaml)."""
    mem = machine.memory_mib
    return int(min(20 * machine.max_pods + 50, mem * 0.25) + 100 + mem * 0.025)


# --- identity -------------------------------------------------------------------------------------------------------
# Azure Workload Identity: learn.microsoft.com/azure/aks/workload-identity-deploy-cluster
IDENTITY_ANNOTATION = "azure.workload.identity/client-id"
# The audience of the federated credential AKS tokens carry (workload-identity-deploy-cluster, same page).
AZURE_TOKEN_AUDIENCE = "api://AzureADTokenExchange"


def azure_identity_name(cluster: Cluster, identity: Identity) -> str:
    return f"{cluster.name}-{identity.component}"


def build_aks_identity_commands(cluster: Cluster, found: list[Identity]) -> list[list[str]]:
    """az: a user-assigned managed identity per ServiceAccount, federated with exactly that ServiceAccount through
    the cluster's OIDC issuer, then the component's roles on the resource group. The identity's client id is what
    the ServiceAccount annotation must hold (`az identity show ... --query clientId`)."""
    group, cluster_name = cluster.settings["resourceGroup"], cluster.name
    where = [f"--resource-group={group}"]
    issuer = ["az", "aks", "show", *where, f"--name={cluster_name}", "--query=oidcIssuerProfile.issuerUrl", "-o", "tsv"]
    commands = []
    for i in found:
        name = azure_identity_name(cluster, i)
        commands.append(
            ["az", "identity", "create", *where, f"--name={name}", f"--location={cluster.settings['region']}"]
        )
        commands.append(
            ["az", "identity", "federated-credential", "create", *where, f"--identity-name={name}", f"--name={name}",
             Shell(f'--issuer="$({shlex.join(issuer)})"'), f"--subject={i.subject}",
             f"--audience={AZURE_TOKEN_AUDIENCE}"]
        )  # fmt: skip
        principal = ["az", "identity", "show", *where, f"--name={name}", "--query=principalId", "-o", "tsv"]
        scope = ["az", "group", "show", f"--name={group}", "--query=id", "-o", "tsv"]
        for role in grants(cluster, i.component):
            commands.append(
                ["az", "role", "assignment", "create", Shell(f'--assignee-object-id="$({shlex.join(principal)})"'),
                 "--assignee-principal-type=ServicePrincipal", f"--role={role}",
                 Shell(f'--scope="$({shlex.join(scope)})"')]
            )  # fmt: skip
    return commands


# --- the network ----------------------------------------------------------------------------------------------------
# NetworkPolicy enforcement, off by default: Azure CNI Overlay powered by Cilium (learn.microsoft.com/azure/aks/
# azure-cni-powered-by-cilium; the API requires --network-policy cilium with the Cilium dataplane). --max-pods: what
# the reservations above assume. Nodes get a public IP only when asked (--enable-node-public-ip: AKS docs,
# use-node-public-ips) and the internal load balancer stays in the VNet: nothing to change.
AKS_NETWORK = [
    "--network-plugin=azure",
    "--network-plugin-mode=overlay",
    "--network-dataplane=cilium",
    "--network-policy=cilium",
]

# --- maintenance and upgrades ---------------------------------------------------------------------------------------
# Patch upgrades only (the minor stays cluster.yaml's kubernetesVersion; the AKS default channel is none) and weekly
# node images, set explicitly (NodeImage is the default node OS channel from API 2023-06-01: AKS docs gpu-cluster and
# auto-upgrade-node-os-image), both in the maintenance windows (learn.microsoft.com/azure/aks/auto-upgrade-cluster).
AKS_UPGRADES = ["--auto-upgrade-channel=patch", "--node-os-upgrade-channel=NodeImage"]


def aks_maintenance_commands(cluster: Cluster, window: Maintenance) -> list[list[str]]:
    """Kubernetes patch upgrades on the first day of the window, node image upgrades on the last: a Weekly
    aksManagedAutoUpgradeSchedule and aksManagedNodeOSUpgradeSchedule, 4 hours or more with auto-upgrade
    (learn.microsoft.com/azure/aks/planned-maintenance)."""
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


# --- the plan -------------------------------------------------------------------------------------------------------


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


# Tenants' people: with AKS-managed Microsoft Entra ID integration (az aks create --enable-aad), Entra users and
# groups are subjects of Kubernetes RBAC, a group named by its object id (learn.microsoft.com/azure/aks/
# entra-id-authorization, note on integrated authentication; learn.microsoft.com/azure/aks/azure-ad-rbac).
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def aks_entra_flags(cluster: Cluster, objects: list[dict[str, Any]]) -> list[str]:
    """``--enable-aad`` when tenants bind Entra groups (each named by its object id)."""
    groups = tenant_groups(objects)
    for tenant, names in groups.items():
        for group in names:
            if not _GUID.match(group):
                raise UserError(
                    f"{group!r}: on AKS a tenant's group is a Microsoft Entra group's object id (a GUID: "
                    "az ad group show --query id)",
                    file=cluster.path,
                    key_path=f"values.tenants.{tenant}.group",
                )
    return ["--enable-aad"] if groups else []


def build_aks_commands(cluster: Cluster, objects: list[dict[str, Any]]) -> list[list[str]]:
    """az commands: a cluster with OIDC + Workload Identity, Cilium NetworkPolicy, AKS's autoscaler and patch
    auto-upgrades, its core pool in one zone, the other pools, the maintenance windows, then a federated managed
    identity per rendered ServiceAccount identity."""
    group, location = require(cluster, "resourceGroup"), require(cluster, "region")
    core, *others = node_groups(cluster)
    zone = [f"--zones={str(cluster_zone(cluster)).rsplit('-', 1)[1]}"] if core.zonal else []
    commands = [
        ["az", "aks", "create", f"--resource-group={group}", f"--name={cluster.name}", f"--location={location}",
         f"--kubernetes-version={cluster.kubernetes_version}", "--enable-oidc-issuer", "--enable-workload-identity",
         *aks_entra_flags(cluster, objects),
         *AKS_NETWORK, *AKS_UPGRADES, f"--max-pods={AKS_MAX_PODS}", f"--nodepool-name={core.name}",
         f"--node-vm-size={core.instance_type}", *zone, f"--node-count={core.desired}",
         "--enable-cluster-autoscaler", f"--min-count={core.min_size}", f"--max-count={core.max_size}",
         "--generate-ssh-keys"]
    ]  # fmt: skip
    commands += [aks_pool_command(cluster, g) for g in others]
    commands += aks_maintenance_commands(cluster, maintenance(cluster))
    return commands + build_aks_identity_commands(cluster, identities(cluster, objects))


def plan(cluster: Cluster, objects: list[dict[str, Any]]) -> Plan:
    after = (
        "# then put each identity's client id (az identity show --query clientId) in clusters/"
        f"{cluster.name}/cluster.yaml as the ServiceAccount's azure.workload.identity/client-id",
    )
    return Plan(commands=tuple(build_aks_commands(cluster, objects)), after=after)


def teardown(cluster: Cluster) -> str:
    return f"az aks delete --resource-group={cluster.settings.get('resourceGroup')} --name={cluster.name} --yes"


PLAN_NOTES = (
    "# gpu: AKS installs the driver; before enabling dask.workerGroups.gpu install NVIDIA's device plugin",
    '#   DaemonSet of learn.microsoft.com/azure/aks/gpu-cluster ("Manually install the NVIDIA device plugin": it',
    "#   tolerates sku=gpu:NoSchedule and selects kubernetes.azure.com/accelerator=nvidia)",
)

CLOUD = Cloud(
    name="azure",
    prices="prices/azure.yaml",
    plan=plan,
    teardown=teardown,
    node_group_label=NODE_GROUP_LABEL,
    node_groups=load_node_groups("azure"),
    machines=MACHINES,
    reserved_cpu_m=reserved_cpu_m,
    reserved_memory_mib=reserved_memory_mib,
    daemonsets=DAEMONSETS,
    zone=ZONE,
    identity_annotation=IDENTITY_ANNOTATION,
    plan_notes=PLAN_NOTES,
)

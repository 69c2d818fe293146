"""Google GKE: node groups (gcp.yaml), machines and what they leave for pods, prices (dask_platform/prices/gcp.yaml),
the gcloud plan, Workload Identity, maintenance window rules and teardown."""

from __future__ import annotations

import datetime
import re
from typing import Any

from dask_platform.clouds.base import (
    WEEKDAYS,
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
from dask_platform.identity import Identity, grants, identities, value_key
from dask_platform.tenants import tenant_groups

# The label GKE puts on a node pool's nodes (what values/gcp.yaml selects by).
NODE_GROUP_LABEL = "cloud.google.com/gke-nodepool"
# GKE zones are <region>-<letter>.
ZONE = ("{region}-b", r"{region}-[a-z]")

# Nominal machine sizes: cloud.google.com/compute/docs/general-purpose-machines (GB = 1024 MiB); max pods 110, the
# GKE Standard default (cloud.google.com/kubernetes-engine/docs/how-to/flexible-pod-cidr).
GKE_MAX_PODS = 110
MACHINES = {
    "e2-standard-2": Machine(2, 8192, GKE_MAX_PODS),
    "e2-standard-4": Machine(4, 16384, GKE_MAX_PODS),
    "e2-standard-8": Machine(8, 32768, GKE_MAX_PODS),
    "n1-standard-4": Machine(4, 15360, GKE_MAX_PODS, gpus=1),  # with one T4 attached
}
# The cloud's own DaemonSets on every node (CPU millicores, memory MiB). GKE does not publish its DaemonSets'
# requests: kube-proxy 100m (kubernetes cluster/gce/manifests/kube-proxy.manifest) plus about 339m/526Mi derived
# from measured GKE 1.29 nodes with network policy on (2i2c-org/infrastructure daemonset_requests.yaml).
DAEMONSETS = (440, 530)
# The DaemonSets GPU nodes run in addition: nvidia-driver-installer, whose init containers request 150m (a pod's
# effective request is the larger of its largest init container and the sum of its containers), and
# nvidia-gpu-device-plugin 50m/20Mi (GoogleCloudPlatform/container-engine-accelerators
# nvidia-driver-installer/cos/daemonset-preloaded.yaml and cmd/nvidia_gpu/device-plugin.yaml, which GKE says is not
# its source of truth: the best published figure).
GPU_DAEMONSETS = (200, 20)


def reserved_cpu_m(machine: Machine) -> int:
    """kube-reserved CPU (kubernetes/autoscaler cluster-autoscaler/cloudprovider/gce/reserved.go): 6%, 1%, 0.5% of
    cores 3-4, 0.25% above."""
    return int(tiers(machine.cpus * 1000, [0, 1000, 2000, 4000], [0.06, 0.01, 0.005, 0.0025]))


def reserved_memory_mib(machine: Machine) -> int:
    """reserved.go: 25% of the first 4000 MiB, 20% of the next 4000, 10% up to 16000, 6% up to 128000, 2% above;
    kernel: memory/64 + 16 MiB, + 64 MiB swiotlb above 3 GiB (CalculateKernelReserved, same file); eviction 100Mi."""
    mem = machine.memory_mib
    kube = tiers(mem, [0, 4000, 8000, 16000, 128000], [0.25, 0.20, 0.10, 0.06, 0.02])
    kernel = mem / 64 + 16 + (64 if mem > 3072 else 0)
    return int(kube + 100 + kernel)


# --- identity -------------------------------------------------------------------------------------------------------
# GKE Workload Identity (KSA linked to an IAM service account):
# cloud.google.com/kubernetes-engine/docs/how-to/workload-identity
IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
# The role that lets a KSA impersonate a GSA (GKE workload-identity page, "link Kubernetes ServiceAccounts to IAM").
GKE_WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"
_GSA = re.compile(r"^([a-z][a-z0-9-]{4,28}[a-z0-9])@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$")


def build_gke_identity_commands(cluster: Cluster, found: list[Identity]) -> list[list[str]]:
    """gcloud: the IAM service account, the KSA allowed to act as it, then the component's roles on the project."""
    project = cluster.settings["project"]
    commands = []
    for i in found:
        match = _GSA.match(i.cloud_id)
        if not match:
            raise UserError(
                f"expected an IAM service account email (<name>@<project>.iam.gserviceaccount.com), got {i.cloud_id!r}",
                file=cluster.path,
                key_path=value_key(i, cluster),
            )
        name, gsa_project = match.groups()
        member = f"serviceAccount:{project}.svc.id.goog[{i.namespace}/{i.service_account}]"
        commands.append(["gcloud", "iam", "service-accounts", "create", name, f"--project={gsa_project}"])
        commands.append(
            ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", i.cloud_id, f"--project={gsa_project}",
             f"--role={GKE_WORKLOAD_IDENTITY_ROLE}", f"--member={member}"]
        )  # fmt: skip
        for role in grants(cluster, i.component):
            commands.append(
                ["gcloud", "projects", "add-iam-policy-binding", gsa_project,
                 f"--member=serviceAccount:{i.cloud_id}", f"--role={role}"]
            )  # fmt: skip
    return commands


# --- the network ----------------------------------------------------------------------------------------------------
# NetworkPolicy enforcement, off by default: Dataplane V2 enforces NetworkPolicy; creation time only
# (cloud.google.com/kubernetes-engine/docs/how-to/dataplane-v2).
GKE_NETWORK_POLICY = ["--enable-dataplane-v2"]
# Nodes have external IPs unless private (cloud.google.com/kubernetes-engine/docs/concepts/network-isolation),
# and the project's default network admits SSH from anywhere to them (default-allow-ssh, cloud.google.com/vpc/docs/
# firewalls, "Pre-populated rules in the default network"). Private nodes need a Cloud Router with a NAT to pull the
# platform image (global.image; gcloud compute routers nats create --auto-allocate-nat-external-ips
# --nat-all-subnet-ip-ranges, gcloud reference) and Private Google Access on the subnet to reach Google APIs directly.
GKE_NETWORK = "default"


def gke_nat_router(cluster: Cluster) -> str:
    return f"{cluster.name}-nat"


def build_gke_network_commands(cluster: Cluster) -> list[list[str]]:
    """The egress of private nodes: Private Google Access on the region's subnet, a Cloud Router and its NAT."""
    project, region, router = require(cluster, "project"), require(cluster, "region"), gke_nat_router(cluster)
    where = [f"--project={project}", f"--region={region}"]
    return [
        ["gcloud", "compute", "networks", "subnets", "update", GKE_NETWORK, *where,
         "--enable-private-ip-google-access"],
        ["gcloud", "compute", "routers", "create", router, *where, f"--network={GKE_NETWORK}"],
        ["gcloud", "compute", "routers", "nats", "create", router, f"--router={router}", *where,
         "--auto-allocate-nat-external-ips", "--nat-all-subnet-ip-ranges"],
    ]  # fmt: skip


# --- maintenance ----------------------------------------------------------------------------------------------------
# GKE: one recurring window, at least 48 hours in any 32 days in windows of 4 hours or more, weekday recurrences read
# in UTC (cloud.google.com/kubernetes-engine/docs/how-to/maintenance-window).
GKE_DAYS = {day: day[:2].upper() for day in WEEKDAYS}  # RFC 5545 BYDAY: MO, TU, ...


def check_maintenance(cluster: Cluster, window: Maintenance) -> None:
    """GKE's 48-hours-in-32-days rule (each weekday occurs at least 4 times in any 32 days)."""
    if len(set(window.days)) * window.hours * 4 < 48:
        raise UserError(
            f"GKE needs at least 48 maintenance hours in any 32 days: expected days x hours >= 12, got "
            f"{len(set(window.days))} x {window.hours}",
            file=cluster.path,
            key_path="maintenance",
        )


def gke_maintenance_flags(window: Maintenance) -> list[str]:
    start = datetime.datetime(2000, 1, 1, *map(int, window.start.split(":")))
    end = start + datetime.timedelta(hours=window.hours)
    days = ",".join(GKE_DAYS[d] for d in window.days)
    return [
        f"--maintenance-window-start={start:%Y-%m-%dT%H:%M:%SZ}",
        f"--maintenance-window-end={end:%Y-%m-%dT%H:%M:%SZ}",
        f"--maintenance-window-recurrence=FREQ=WEEKLY;BYDAY={days}",
    ]


# --- the plan -------------------------------------------------------------------------------------------------------


def gke_pool_flags(g: NodeGroup) -> list[str]:
    """A pool's taints and GPU: GKE installs the driver (gpu-driver-version=default) and its device plugin, and taints
    the nodes itself (cloud.google.com/kubernetes-engine/docs/how-to/gpus; gcloud container node-pools create
    --accelerator type=TYPE,count=COUNT,gpu-driver-version=...)."""
    flags = [f"--node-taints={','.join(str(t) for t in g.taints)}"] if g.taints else []
    if g.accelerator:
        flags.append(f"--accelerator=type={g.accelerator},count=1,gpu-driver-version=default")
    return flags


# Tenants' people: Google Groups for RBAC. A RoleBinding's Group subject is a Google group's email, and the cluster
# must name the domain's gke-security-groups group that contains those groups (cloud.google.com/kubernetes-engine/
# docs/how-to/google-groups-rbac: gcloud container clusters create --security-group="gke-security-groups@DOMAIN").
def gke_security_group(cluster: Cluster, objects: list[dict[str, Any]]) -> list[str]:
    """``--security-group=gke-security-groups@DOMAIN`` when tenants bind Google groups (all of one domain)."""
    domains = set()
    for tenant, groups in tenant_groups(objects).items():
        for group in groups:
            local, _, domain = group.partition("@")
            if not local or not domain or "." not in domain:
                raise UserError(
                    f"{group!r}: on GKE a tenant's group is a Google group's email (Google Groups for RBAC)",
                    file=cluster.path,
                    key_path=f"values.tenants.{tenant}.group",
                )
            domains.add(domain)
    if len(domains) > 1:
        raise UserError(
            f"tenants' groups are in {len(domains)} domains ({', '.join(sorted(domains))}): GKE reads the groups of "
            "one gke-security-groups@DOMAIN group",
            file=cluster.path,
            key_path="values.tenants",
        )
    return [f"--security-group=gke-security-groups@{d}" for d in sorted(domains)]


def build_gke_commands(cluster: Cluster, objects: list[dict[str, Any]]) -> list[list[str]]:
    """gcloud commands: the NAT for private nodes, a cluster with private nodes in one zone, Workload Identity,
    Dataplane V2 and a weekend maintenance window, one autoscaled pool per node group (GKE's managed autoscaler), the
    default pool removed (GKE always creates one named "default-pool"), then the rendered ServiceAccounts' IAM
    service accounts."""
    project, region = require(cluster, "project"), require(cluster, "region")
    where = [f"--project={project}", f"--region={region}"]
    commands = build_gke_network_commands(cluster)
    commands.append(
        ["gcloud", "container", "clusters", "create", cluster.name, *where,
         f"--node-locations={cluster_zone(cluster)}", f"--cluster-version={cluster.kubernetes_version}",
         f"--workload-pool={project}.svc.id.goog", *GKE_NETWORK_POLICY, f"--network={GKE_NETWORK}",
         "--enable-private-nodes", *gke_maintenance_flags(maintenance(cluster)),
         *gke_security_group(cluster, objects), "--num-nodes=1"]
    )  # fmt: skip
    for g in node_groups(cluster):
        commands.append(
            ["gcloud", "container", "node-pools", "create", g.name, f"--cluster={cluster.name}", *where,
             f"--machine-type={g.instance_type}", *gke_pool_flags(g), f"--num-nodes={g.desired}",
             "--enable-autoscaling", f"--min-nodes={g.min_size}", f"--max-nodes={g.max_size}",
             "--workload-metadata=GKE_METADATA"]
        )  # fmt: skip
    commands.append(
        ["gcloud", "container", "node-pools", "delete", "default-pool", f"--cluster={cluster.name}", *where, "--quiet"]
    )
    return commands + build_gke_identity_commands(cluster, identities(cluster, objects))


def plan(cluster: Cluster, objects: list[dict[str, Any]]) -> Plan:
    return Plan(commands=tuple(build_gke_commands(cluster, objects)))


def teardown(cluster: Cluster) -> str:
    """The cluster, then the NAT's router the plan created beside it."""
    where = f"--project={cluster.settings.get('project')} --region={cluster.settings.get('region')}"
    return (
        f"gcloud container clusters delete {cluster.name} {where} && "
        f"gcloud compute routers delete {gke_nat_router(cluster)} {where} --quiet"
    )


PLAN_NOTES = (
    "# network: private nodes; egress (the platform image) through Cloud NAT, Google APIs through Private Google",
    "#   Access",
    "# gpu: GKE installs the driver and device plugin and taints the nodes nvidia.com/gpu=present:NoSchedule",
)

CLOUD = Cloud(
    name="gcp",
    prices="prices/gcp.yaml",
    plan=plan,
    teardown=teardown,
    node_group_label=NODE_GROUP_LABEL,
    node_groups=load_node_groups("gcp"),
    machines=MACHINES,
    reserved_cpu_m=reserved_cpu_m,
    reserved_memory_mib=reserved_memory_mib,
    daemonsets=DAEMONSETS,
    gpu_daemonsets=GPU_DAEMONSETS,
    zone=ZONE,
    identity_annotation=IDENTITY_ANNOTATION,
    check_maintenance=check_maintenance,
    plan_notes=PLAN_NOTES,
)

"""What a node of each machine type leaves for our pods: capacity minus what the cloud reserves, minus the share of
the cloud's own DaemonSets. Used by `dask-platform plan` (what each group offers) and by the render-time check that
every pod's requests fit the node group it selects (values.py). Figures carry their source; where a cloud does not
publish a figure, the one used is derived from measured clusters, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from dask_platform.quantity import BINARY

MIB = BINARY["Mi"]


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_mib: int
    max_pods: int
    gpus: int = 0


# Nominal machine sizes. AWS: karpenter-provider-aws website/content/en/docs/reference/instance-types.md; max pods
# (VPC CNI secondary-IP mode): awslabs/amazon-eks-ami nodeadm/internal/kubelet/eni-max-pods.txt.
# GCP: cloud.google.com/compute/docs/general-purpose-machines (GB = 1024 MiB); max pods 110, the GKE Standard default
# (cloud.google.com/kubernetes-engine/docs/how-to/flexible-pod-cidr).
# Azure: learn.microsoft.com/azure/virtual-machines/sizes (dsv5-series, nct4-v3-series); max pods AKS_MAX_PODS,
# which the plan passes as --max-pods (the Azure CNI Overlay default is 250: concepts-network-ip-address-planning).
AKS_MAX_PODS = 110
GKE_MAX_PODS = 110
MACHINES: dict[str, dict[str, Machine]] = {
    "aws": {
        "m6i.large": Machine(2, 8192, 29),
        "m6i.xlarge": Machine(4, 16384, 58),
        "m6i.2xlarge": Machine(8, 32768, 58),
        "g4dn.xlarge": Machine(4, 16384, 29, gpus=1),
    },
    "gcp": {
        "e2-standard-2": Machine(2, 8192, GKE_MAX_PODS),
        "e2-standard-4": Machine(4, 16384, GKE_MAX_PODS),
        "e2-standard-8": Machine(8, 32768, GKE_MAX_PODS),
        "n1-standard-4": Machine(4, 15360, GKE_MAX_PODS, gpus=1),  # with one T4 attached
    },
    "azure": {
        "Standard_D2s_v5": Machine(2, 8192, AKS_MAX_PODS),
        "Standard_D4s_v5": Machine(4, 16384, AKS_MAX_PODS),
        "Standard_D8s_v5": Machine(8, 32768, AKS_MAX_PODS),
        "Standard_NC4as_T4_v3": Machine(4, 28672, AKS_MAX_PODS, gpus=1),
    },
}

# The cloud's own DaemonSets on every node (CPU millicores, memory MiB).
DAEMONSETS: dict[str, tuple[int, int]] = {
    # aws-node 25m + aws-eks-nodeagent 25m (aws/amazon-vpc-cni-k8s config/master/aws-k8s-cni.yaml), kube-proxy
    # 100m, ebs-csi-node 3 x 10m/40Mi (kubernetes-sigs/aws-ebs-csi-driver charts values.yaml).
    "aws": (180, 120),
    # GKE does not publish its DaemonSets' requests: kube-proxy 100m (kubernetes cluster/gce/manifests/
    # kube-proxy.manifest) plus about 339m/526Mi derived from measured GKE 1.29 nodes with network policy on
    # (2i2c-org/infrastructure daemonset_requests.yaml).
    "gcp": (440, 530),
    # kube-proxy 100m, cloud-node-manager 50m/50Mi (cloud-provider-azure helm values), csi-azuredisk-node and
    # csi-azurefile-node 30m/60Mi each (their deploy/*-node.yaml); agrees with measured AKS nodes (2i2c) to 1m.
    "azure": (210, 170),
}
# The DaemonSets GPU nodes run in addition (CPU millicores, memory MiB). GKE: nvidia-driver-installer, whose init
# containers request 150m (a pod's effective request is the larger of its largest init container and the sum of its
# containers), and nvidia-gpu-device-plugin 50m/20Mi (GoogleCloudPlatform/container-engine-accelerators
# nvidia-driver-installer/cos/daemonset-preloaded.yaml and cmd/nvidia_gpu/device-plugin.yaml, which GKE says is not
# its source of truth: the best published figure). EKS: eksctl's NVIDIA device plugin requests nothing (eksctl
# pkg/addons/assets/nvidia-device-plugin.yaml); AKS: nor does the DaemonSet of its docs (AKS docs, gpu-cluster).
GPU_DAEMONSETS: dict[str, tuple[int, int]] = {"gcp": (200, 20)}


def _tiers(total: int, edges: list[int], rates: list[float]) -> float:
    """Sum of rate x the part of ``total`` inside each band [edges[i], edges[i+1])."""
    reserved = 0.0
    for (low, high), rate in zip(zip(edges, [*edges[1:], None], strict=False), rates, strict=False):
        top = total if high is None else min(total, high)
        if top > low:
            reserved += (top - low) * rate
    return reserved


def reserved_cpu_m(cloud: str, machine: Machine) -> int:
    """kube-reserved CPU in millicores."""
    cores_m = machine.cpus * 1000
    if cloud == "azure":
        # AKS: 6% of the first core, 4% of the second, 2% of cores 3-4, 1% above (node-resource-reservations;
        # table 1c 60m, 2c 100m, 4c 140m, 8c 180m, 16c 260m).
        return int(_tiers(cores_m, [0, 1000, 2000, 4000], [0.06, 0.04, 0.02, 0.01]))
    # EKS (amazon-eks-ami nodeadm/internal/kubelet/config.go) and GKE (kubernetes/autoscaler
    # cluster-autoscaler/cloudprovider/gce/reserved.go): 6%, 1%, 0.5% of cores 3-4, 0.25% above.
    return int(_tiers(cores_m, [0, 1000, 2000, 4000], [0.06, 0.01, 0.005, 0.0025]))


def reserved_memory_mib(cloud: str, machine: Machine) -> int:
    """Memory the node keeps from pods: the kernel's share of the nominal size, kube-reserved and the eviction
    threshold (100Mi on all three clouds: the sources below)."""
    eviction = 100
    mem = machine.memory_mib
    if cloud == "aws":
        # nodeadm: 11 x maxPods + 255 MiB. Kernel: 7.5% of nominal, the heuristic Karpenter uses for the gap
        # between nominal and kubelet capacity (karpenter-provider-aws vmMemoryOverheadPercent; measured 4-7%).
        return int(11 * machine.max_pods + 255 + eviction + mem * 0.075)
    if cloud == "gcp":
        # reserved.go: 25% of the first 4000 MiB, 20% of the next 4000, 10% up to 16000, 6% up to 128000, 2% above;
        # kernel: memory/64 + 16 MiB, + 64 MiB swiotlb above 3 GiB (CalculateKernelReserved, same file).
        kube = _tiers(mem, [0, 4000, 8000, 16000, 128000], [0.25, 0.20, 0.10, 0.06, 0.02])
        kernel = mem / 64 + 16 + (64 if mem > 3072 else 0)
        return int(kube + eviction + kernel)
    if cloud == "azure":
        # AKS 1.29+: min(20 MiB x maxPods + 50 MiB, 25% of memory) (node-resource-reservations). Kernel: 2.5% of
        # nominal (measured AKS nodes report 97.6-98.1% of it: 2i2c-org/infrastructure instance_capacities.yaml).
        return int(min(20 * machine.max_pods + 50, mem * 0.25) + eviction + mem * 0.025)
    raise KeyError(cloud)


@dataclass(frozen=True)
class Allocatable:
    """What one node of a group leaves for our pods (millicores, bytes)."""

    machine_type: str
    cpu_m: int
    memory_bytes: int

    def describe(self) -> str:
        return f"{self.machine_type}: {self.cpu_m}m CPU, {self.memory_bytes / 2**30:.2f} GiB for pods"


def allocatable(cloud: str, machine_type: str) -> Allocatable | None:
    """What a node of ``machine_type`` leaves for our pods after the cloud's reservations and DaemonSets, or None
    when the type is not in the table (then nothing can be checked)."""
    machine = MACHINES.get(cloud, {}).get(machine_type)
    if machine is None:
        return None
    ds_cpu, ds_mem = DAEMONSETS[cloud]
    if machine.gpus:
        gpu_cpu, gpu_mem = GPU_DAEMONSETS.get(cloud, (0, 0))
        ds_cpu, ds_mem = ds_cpu + gpu_cpu, ds_mem + gpu_mem
    cpu = machine.cpus * 1000 - reserved_cpu_m(cloud, machine) - ds_cpu
    mem = machine.memory_mib - reserved_memory_mib(cloud, machine) - ds_mem
    return Allocatable(machine_type, cpu, mem * MIB)

"""Amazon EKS: node groups (aws.yaml), machines and what they leave for pods, prices (dask_platform/prices/aws.yaml),
the eksctl plan, IRSA identities and teardown."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from dask_platform.clouds.base import (
    Cloud,
    Machine,
    NodeGroup,
    Plan,
    cluster_zone,
    load_node_groups,
    node_groups,
    node_labels,
    require,
    tiers,
)
from dask_platform.clusters import Cluster
from dask_platform.errors import UserError
from dask_platform.identity import Identity, grants, identities, value_key
from dask_platform.tenants import PRINCIPALS_ANNOTATION, TENANT_LABEL

# The label EKS puts on a managed node group's nodes (what values/aws.yaml selects by).
NODE_GROUP_LABEL = "eks.amazonaws.com/nodegroup"
# EKS zones are <region><letter>.
ZONE = ("{region}a", r"{region}[a-z]")

# Nominal machine sizes: karpenter-provider-aws website/content/en/docs/reference/instance-types.md; max pods
# (VPC CNI secondary-IP mode): awslabs/amazon-eks-ami nodeadm/internal/kubelet/eni-max-pods.txt.
MACHINES = {
    "m6i.large": Machine(2, 8192, 29),
    "m6i.xlarge": Machine(4, 16384, 58),
    "m6i.2xlarge": Machine(8, 32768, 58),
    "g4dn.xlarge": Machine(4, 16384, 29, gpus=1),
}
# The cloud's own DaemonSets on every node (CPU millicores, memory MiB): aws-node 25m + aws-eks-nodeagent 25m
# (aws/amazon-vpc-cni-k8s config/master/aws-k8s-cni.yaml), kube-proxy 100m, ebs-csi-node 3 x 10m/40Mi
# (kubernetes-sigs/aws-ebs-csi-driver charts values.yaml). GPU nodes: eksctl's NVIDIA device plugin requests nothing
# (eksctl pkg/addons/assets/nvidia-device-plugin.yaml).
DAEMONSETS = (180, 120)


def reserved_cpu_m(machine: Machine) -> int:
    """kube-reserved CPU (amazon-eks-ami nodeadm/internal/kubelet/config.go): 6%, 1%, 0.5% of cores 3-4, 0.25%
    above."""
    return int(tiers(machine.cpus * 1000, [0, 1000, 2000, 4000], [0.06, 0.01, 0.005, 0.0025]))


def reserved_memory_mib(machine: Machine) -> int:
    """nodeadm: 11 x maxPods + 255 MiB, eviction 100Mi. Kernel: 7.5% of nominal, the heuristic Karpenter uses for the
    gap between nominal and kubelet capacity (karpenter-provider-aws vmMemoryOverheadPercent; measured 4-7%)."""
    return int(11 * machine.max_pods + 255 + 100 + machine.memory_mib * 0.075)


# --- identity -------------------------------------------------------------------------------------------------------
# EKS IRSA: docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html
IDENTITY_ANNOTATION = "eks.amazonaws.com/role-arn"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")


def aws_role_name(identity: Identity, cluster: Cluster) -> str:
    match = _ROLE_ARN.match(identity.cloud_id)
    if not match:
        raise UserError(
            f"expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {identity.cloud_id!r}",
            file=cluster.path,
            key_path=value_key(identity, cluster),
        )
    return match.group(2)


def autoscaler_policy(cluster: Cluster) -> dict[str, Any]:
    """cluster-autoscaler's IAM policy with auto-discovery: describe everything, change only this cluster's node
    groups (kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md, "Full Cluster Autoscaler
    Features Policy", whose README asks to restrict the write actions; the tag is the one its discovery uses)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                    "eks:DescribeNodegroup",
                ],
                "Resource": ["*"],
            },
            {
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": ["*"],
                "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster.name}": "owned"}},
            },
        ],
    }


def build_eksctl_service_accounts(cluster: Cluster, found: list[Identity]) -> list[dict[str, Any]]:
    """eksctl ``iam.serviceAccounts``: one IAM role per identity, trusted by exactly that ServiceAccount.
    ``roleOnly``: the chart owns the ServiceAccount and its annotation (eksctl's ClusterIAMServiceAccount docs).
    eksctl requires a policy per entry: the autoscaler's own, or the component's ``grants``."""
    entries = []
    for i in found:
        entry: dict[str, Any] = {
            "metadata": {"name": i.service_account, "namespace": i.namespace},
            "roleName": aws_role_name(i, cluster),
            "roleOnly": True,
        }
        if i.component == "cluster-autoscaler":
            entry["attachPolicy"] = autoscaler_policy(cluster)
        elif grants(cluster, i.component):
            entry["attachPolicyARNs"] = grants(cluster, i.component)
        else:
            raise UserError(
                "the IAM role of this component needs at least one policy ARN (eksctl requires one; e.g. a policy "
                "on the team's bucket)",
                file=cluster.path,
                key_path=f"grants.{i.component}",
            )
        entries.append(entry)
    return entries


# --- the network ----------------------------------------------------------------------------------------------------
# NetworkPolicy enforcement, off by default: the VPC CNI's network policy agent, VPC CNI >= 1.14
# (docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html: configuration value
# enableNetworkPolicy "true").
EKS_VPC_CNI_ADDON = {
    "name": "vpc-cni",
    "version": "latest",
    "configurationValues": '{"enableNetworkPolicy": "true"}',
    "resolveConflicts": "overwrite",
}
# The EBS CSI driver, which provisions the gp3 volumes values/aws.yaml asks for (EKS has no CSI driver for EBS by
# default; eksctl examples/25-addons.yaml: wellKnownPolicies ebsCSIController).
EKS_EBS_CSI_ADDON = {"name": "aws-ebs-csi-driver", "wellKnownPolicies": {"ebsCSIController": True}}
# eksctl puts managed node groups in public subnets unless privateNetworking is set (eksctl docs,
# vpc-configuration: "The initial nodegroup is created in public subnets"; vpc-subnet-settings), and the AWS
# service controller opens a LoadBalancer Service's NodePort on the node security group to
# loadBalancerSourceRanges, 0.0.0.0/0 when none (kubernetes/cloud-provider-aws pkg/providers/v1/aws.go,
# EnsureLoadBalancer: sourceRangeCidrs, then updateInstanceSecurityGroupsForNLB; kubernetes/kubernetes#57212): with
# public nodes Jupyter's NodePort was reachable from the internet. The plan puts every node group in the private
# subnets, with egress through one NAT gateway (vpc.nat.gateway Single, eksctl's default, set explicitly; eksctl docs
# vpc-configuration "NAT Gateway"), and the Jupyter Service's source range is the VPC (jupyter_values below).
# eksctl's default VPC CIDR (eksctl docs, vpc-configuration), explicit so the Service's source range can derive from
# the same value.
DEFAULT_VPC_CIDR = "192.168.0.0/16"
EKS_NAT_GATEWAY = "Single"


def vpc_zones(cluster: Cluster) -> list[str]:
    """The zones the VPC spans: the cluster's zone and the next of a, b, c (EKS needs subnets in two zones; a node
    group's zones must be among the VPC's, eksctl docs vpc-subnet-settings)."""
    zone, region = cluster_zone(cluster), require(cluster, "region")
    others = [f"{region}{letter}" for letter in "abc" if f"{region}{letter}" != zone]
    return [zone, *others][:3]


def vpc_cidr(cluster: Cluster) -> str:
    """The VPC's CIDR (cluster.yaml ``network.vpcCidr``, default eksctl's own)."""
    value = str((cluster.settings.get("network") or {}).get("vpcCidr") or DEFAULT_VPC_CIDR)
    try:
        return str(ipaddress.ip_network(value))
    except ValueError:
        raise UserError(
            f"expected an IPv4 CIDR like 10.0.0.0/16, got {value!r}", file=cluster.path, key_path="network.vpcCidr"
        ) from None


def jupyter_values(cluster: Cluster) -> dict[str, Any]:
    """Jupyter's internal NLB open to the VPC only (the network comment above)."""
    return {"service": {"loadBalancerSourceRanges": [vpc_cidr(cluster)]}}


# --- the plan -------------------------------------------------------------------------------------------------------


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
# The label the eksctl config sets on every node to its group's name.
PLAN_LABEL = "dask-platform/node-group"


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
    group["labels"] = {PLAN_LABEL: g.name, **g.labels}
    if g.taints:
        group["taints"] = [{"key": t.key, "value": t.value, "effect": t.effect} for t in g.taints]
    group["tags"] = {**autoscaler_tags(cluster), **node_template_tags(cluster, g)}
    group["propagateASGTags"] = True
    return group


# Tenants' people: an EKS access entry maps an IAM principal to Kubernetes groups, which the tenant's RoleBinding
# names (docs.aws.amazon.com/eks/latest/eksctl/access-entries.html: accessConfig.accessEntries, principalARN,
# kubernetesGroups; eksctl's default authenticationMode API_AND_CONFIG_MAP permits them). One entry per principal
# (the EKS API: "You can't specify the same ARN in more than one access entry"), with every group it belongs to.
def build_eksctl_access_entries(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Access entries for the tenants' principals (tenants.<name>.principals, wherever the values set them: the
    rendered RoleBinding carries them), each mapped to the groups of the tenants that list it."""
    groups: dict[str, list[str]] = {}
    for obj in objects:
        meta = obj.get("metadata", {})
        principals = (meta.get("annotations") or {}).get(PRINCIPALS_ANNOTATION, "")
        if obj.get("kind") != "RoleBinding" or TENANT_LABEL not in (meta.get("labels") or {}) or not principals:
            continue
        for principal in principals.split(","):
            for subject in obj.get("subjects", []):
                if subject.get("kind") == "Group" and subject["name"] not in groups.setdefault(principal, []):
                    groups[principal].append(subject["name"])
    return [{"principalARN": p, "kubernetesGroups": sorted(g)} for p, g in sorted(groups.items())]


def build_eksctl_config(cluster: Cluster, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """An eksctl ClusterConfig: OIDC on, one IAM role per rendered ServiceAccount identity (IRSA; no node-role
    policies, so other pods on a node do not get the autoscaler's rights), NetworkPolicy enforced, the EBS CSI
    driver, a VPC whose nodes are private, and managed node groups tagged for the autoscaler's discovery."""
    found = identities(cluster, objects)
    region = require(cluster, "region")
    config = {
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
    entries = build_eksctl_access_entries(objects)
    if entries:
        config["accessConfig"] = {"authenticationMode": "API_AND_CONFIG_MAP", "accessEntries": entries}
    return config


def plan(cluster: Cluster, objects: list[dict[str, Any]]) -> Plan:
    head = (
        f"# eksctl ClusterConfig for {cluster.name}: save as eksctl.yaml, then",
        "#   eksctl create cluster -f eksctl.yaml",
    )
    return Plan(head=head, config=build_eksctl_config(cluster, objects))


def teardown(cluster: Cluster) -> str:
    return f"eksctl delete cluster --name {cluster.name} --region {cluster.settings.get('region')} --wait"


# What the plan cannot do itself (sources above and in docs/autoscaling-and-security.md). EKS has no managed
# maintenance window: control plane and managed node group updates run when you start them
# (docs.aws.amazon.com/eks/latest/userguide/update-managed-node-group.html), apart from EKS's automatic upgrade at the
# end of extended support.
PLAN_NOTES = (
    "# network: nodes in private subnets; egress (the platform image, S3) through one NAT gateway, billed per GB",
    "#   processed; Jupyter's internal NLB is open to the VPC CIDR only (jupyter.service.loadBalancerSourceRanges)",
    "# gpu: eksctl installs NVIDIA's device plugin for the gpu group (eksctl docs, gpu-support)",
    "# maintenance: EKS has no managed window; upgrade with eksctl upgrade cluster / eksctl upgrade nodegroup",
)

CLOUD = Cloud(
    name="aws",
    prices="prices/aws.yaml",
    plan=plan,
    teardown=teardown,
    node_group_label=NODE_GROUP_LABEL,
    node_groups=load_node_groups("aws"),
    plan_labels=(PLAN_LABEL,),
    machines=MACHINES,
    reserved_cpu_m=reserved_cpu_m,
    reserved_memory_mib=reserved_memory_mib,
    daemonsets=DAEMONSETS,
    zone=ZONE,
    jupyter_values=jupyter_values,
    identity_annotation=IDENTITY_ANNOTATION,
    plan_notes=PLAN_NOTES,
)

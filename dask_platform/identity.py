"""The cloud side of the pods' identities, derived from the ServiceAccounts the chart renders.

A ServiceAccount's identity annotation (set in clusters/<name>/cluster.yaml values) names the cloud identity its
pods act as; that identity must exist and trust exactly that ServiceAccount. `dask-platform plan` emits the steps
that create it, from the rendered objects (the names Argo CD applies), and grants it the cluster.yaml ``grants``
of its component. The ``build_*`` functions are pure and return data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dask_platform.clusters import Cluster
from dask_platform.errors import UserError

# cloud -> the ServiceAccount annotation that names the pods' cloud identity.
IDENTITY_ANNOTATION = {
    # EKS IRSA: docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html
    "aws": "eks.amazonaws.com/role-arn",
    # GKE Workload Identity (KSA linked to an IAM service account):
    # cloud.google.com/kubernetes-engine/docs/how-to/workload-identity
    "gcp": "iam.gke.io/gcp-service-account",
    # Azure Workload Identity: learn.microsoft.com/azure/aks/workload-identity-deploy-cluster
    "azure": "azure.workload.identity/client-id",
}
# The audience of the federated credential AKS tokens carry (workload-identity-deploy-cluster, same page).
AZURE_TOKEN_AUDIENCE = "api://AzureADTokenExchange"
# The role that lets a KSA impersonate a GSA (GKE workload-identity page, "link Kubernetes ServiceAccounts to IAM").
GKE_WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")
_GSA = re.compile(r"^([a-z][a-z0-9-]{4,28}[a-z0-9])@([a-z][a-z0-9-]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com$")


@dataclass(frozen=True)
class Identity:
    """A rendered ServiceAccount with a cloud identity: its component, where it is, and the identity it names."""

    component: str
    namespace: str
    service_account: str
    cloud_id: str

    @property
    def subject(self) -> str:
        """How the cluster's OIDC tokens name this ServiceAccount (the `sub` claim)."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def identities(cluster: Cluster, objects: list[dict[str, Any]]) -> list[Identity]:
    """The ServiceAccounts in ``objects`` (a cluster's rendered objects) that carry the cloud's identity annotation."""
    key = IDENTITY_ANNOTATION.get(cluster.cloud)
    found = []
    for obj in objects:
        if obj.get("kind") != "ServiceAccount" or not key:
            continue
        meta = obj["metadata"]
        cloud_id = (meta.get("annotations") or {}).get(key)
        if cloud_id:
            component = meta.get("labels", {}).get("app.kubernetes.io/component", meta["name"])
            found.append(Identity(component, meta["namespace"], meta["name"], cloud_id))
    return sorted(found, key=lambda i: i.component)


def grants(cluster: Cluster, component: str) -> list[str]:
    """What cluster.yaml ``grants.<component>`` gives the component's identity (policy ARNs, roles)."""
    return list((cluster.settings.get("grants") or {}).get(component) or [])


def _value_key(identity: Identity, cluster: Cluster) -> str:
    return f"values.{identity.component}.serviceAccount.annotations.{IDENTITY_ANNOTATION[cluster.cloud]}"


def aws_role_name(identity: Identity, cluster: Cluster) -> str:
    match = _ROLE_ARN.match(identity.cloud_id)
    if not match:
        raise UserError(
            f"expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {identity.cloud_id!r}",
            file=cluster.path,
            key_path=_value_key(identity, cluster),
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
                key_path=_value_key(i, cluster),
            )
        name, gsa_project = match.groups()
        member = f"serviceAccount:{project}.svc.id.goog[{i.namespace}/{i.service_account}]"
        commands.append(["gcloud", "iam", "service-accounts", "create", name, f"--project={gsa_project}"])
        commands.append(
            [
                "gcloud",
                "iam",
                "service-accounts",
                "add-iam-policy-binding",
                i.cloud_id,
                f"--project={gsa_project}",
                f"--role={GKE_WORKLOAD_IDENTITY_ROLE}",
                f"--member={member}",
            ]
        )
        for role in grants(cluster, i.component):
            commands.append(
                [
                    "gcloud",
                    "projects",
                    "add-iam-policy-binding",
                    gsa_project,
                    f"--member=serviceAccount:{i.cloud_id}",
                    f"--role={role}",
                ]
            )
    return commands


class Shell(str):
    """A command-line word the shell must expand (a "$(...)" substitution): printed as is, not quoted."""


def azure_identity_name(cluster: Cluster, identity: Identity) -> str:
    return f"{cluster.name}-{identity.component}"


def build_aks_identity_commands(cluster: Cluster, found: list[Identity]) -> list[list[str]]:
    """az: a user-assigned managed identity per ServiceAccount, federated with exactly that ServiceAccount through
    the cluster's OIDC issuer, then the component's roles on the resource group. The identity's client id is what
    the ServiceAccount annotation must hold (`az identity show ... --query clientId`)."""
    import shlex

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
            [
                "az",
                "identity",
                "federated-credential",
                "create",
                *where,
                f"--identity-name={name}",
                f"--name={name}",
                Shell(f'--issuer="$({shlex.join(issuer)})"'),
                f"--subject={i.subject}",
                f"--audience={AZURE_TOKEN_AUDIENCE}",
            ]
        )
        principal = ["az", "identity", "show", *where, f"--name={name}", "--query=principalId", "-o", "tsv"]
        scope = ["az", "group", "show", f"--name={group}", "--query=id", "-o", "tsv"]
        for role in grants(cluster, i.component):
            commands.append(
                [
                    "az",
                    "role",
                    "assignment",
                    "create",
                    Shell(f'--assignee-object-id="$({shlex.join(principal)})"'),
                    "--assignee-principal-type=ServicePrincipal",
                    f"--role={role}",
                    Shell(f'--scope="$({shlex.join(scope)})"'),
                ]
            )
    return commands

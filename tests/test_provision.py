"""Provisioning plans per cloud, consistent with what the chart selects and the autoscaler discovers."""

from __future__ import annotations

import shlex

import pytest
import yaml
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.provision import (
    NODE_GROUP_LABEL,
    build_aks_commands,
    build_eksctl_config,
    build_gke_commands,
    build_minikube_command,
    build_plan,
    node_groups,
)
from dask_platform.render import committed_objects
from dask_platform.repo import RepoTree
from tests.support.repo import REPO, container_args, objects_of

pytestmark = pytest.mark.helm


def test_eks_config_has_oidc_and_autoscaler_discovery_tags_matching_the_autoscaler(rendered):
    cluster = load_cluster(REPO, "aws-example")
    config = build_eksctl_config(cluster, committed_objects(REPO, cluster.name))
    assert config["iam"]["withOIDC"] is True
    assert config["metadata"]["version"] == cluster.kubernetes_version
    workers = next(g for g in config["managedNodeGroups"] if g["name"] == "workers")
    assert workers["desiredCapacity"] == 4  # the seed's 4-node default
    ca = objects_of(rendered["aws-example"], "Deployment")["dask-cluster-autoscaler"]
    discovery = next(a for a in container_args(ca) if a.startswith("--node-group-auto-discovery="))
    wanted = discovery.split("asg:tag=", 1)[1].split(",")
    for group in config["managedNodeGroups"]:
        assert set(wanted) <= set(group["tags"]), group["name"]
        assert group["propagateASGTags"] is True
    assert wanted == ["k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/aws-example"]


@pytest.mark.parametrize("name", [n for n in REPO.cluster_names() if load_cluster(REPO, n).cloud != "minikube"])
def test_every_node_group_the_chart_selects_is_created(name: str, rendered):
    cluster = load_cluster(REPO, name)
    label = NODE_GROUP_LABEL[cluster.cloud]
    created = {g.name for g in node_groups(cluster)}
    selected = set()
    for dep in objects_of(rendered[name], "Deployment").values():
        selector = dep["spec"]["template"]["spec"].get("nodeSelector", {})
        if label in selector:
            selected.add(selector[label])
    assert selected and selected <= created


def test_gke_commands_enable_workload_identity_and_autoscaling():
    commands = build_gke_commands(load_cluster(REPO, "gcp-example"), committed_objects(REPO, "gcp-example"))
    create = commands[0]
    assert create[:4] == ["gcloud", "container", "clusters", "create"]
    assert "--workload-pool=example-project.svc.id.goog" in create
    pools = [c for c in commands if c[3] == "create" and c[2] == "node-pools"]
    assert {c[4] for c in pools} == {"core", "workers"}
    for pool in pools:
        assert "--enable-autoscaling" in pool and "--workload-metadata=GKE_METADATA" in pool
    assert any(c[2:5] == ["node-pools", "delete", "default-pool"] for c in commands)


def test_aks_commands_enable_workload_identity_and_autoscaling():
    commands = build_aks_commands(load_cluster(REPO, "azure-example"), committed_objects(REPO, "azure-example"))
    assert {"--enable-oidc-issuer", "--enable-workload-identity", "--enable-cluster-autoscaler"} <= set(commands[0])
    assert "--nodepool-name=core" in commands[0]
    assert commands[1][:4] == ["az", "aks", "nodepool", "add"] and "--name=workers" in commands[1]


def test_minikube_profile_fits_the_chart_values():
    command = build_minikube_command(load_cluster(REPO, "minikube"))
    assert "--cpus=4" in command and "--memory=8g" in command
    assert "--kubernetes-version=v1.36.0" in command
    assert "--cni=calico" in command  # minikube's default CNI ignores NetworkPolicy (minikube handbook)


def test_plan_output_parses():
    aws = build_plan(load_cluster(REPO, "aws-example"), committed_objects(REPO, "aws-example"))
    assert yaml.safe_load(aws)["kind"] == "ClusterConfig"
    for name in ("gcp-example", "azure-example", "minikube"):
        for line in build_plan(load_cluster(REPO, name), committed_objects(REPO, name)).splitlines():
            if not line.startswith("#"):
                assert shlex.split(line)[0] in {"gcloud", "az", "minikube"}
    result = CliRunner().invoke(cli, ["plan", "minikube"])
    assert result.exit_code == 0 and result.output.splitlines()[-1].startswith("minikube start")


def test_node_group_overrides_and_their_errors(scratch: RepoTree):
    folder = scratch.clusters_dir / "c"
    folder.mkdir(parents=True)
    base = "cloud: aws\nnamespace: dask\nkubernetesVersion: '1.35'\nregion: us-east-1\nargocd: {name: c}\n"
    (folder / "cluster.yaml").write_text(base + "nodeGroups:\n  workers: {instanceType: m6i.2xlarge, maxSize: 20}\n")
    groups = {g.name: g for g in node_groups(load_cluster(scratch, "c"))}
    assert groups["workers"].instance_type == "m6i.2xlarge" and groups["workers"].max_size == 20
    (folder / "cluster.yaml").write_text(base + "nodeGroups:\n  gpu: {desired: 1}\n")
    with pytest.raises(UserError, match=r"key nodeGroups\.gpu: unknown node group"):
        node_groups(load_cluster(scratch, "c"))
    (folder / "cluster.yaml").write_text(base + "nodeGroups:\n  workers: {desired: 30}\n")
    with pytest.raises(UserError, match=r"key nodeGroups\.workers: expected minSize <= desired <= maxSize"):
        node_groups(load_cluster(scratch, "c"))
    (folder / "cluster.yaml").write_text(base.replace("region: us-east-1\n", ""))
    with pytest.raises(UserError, match="key region: required for a aws cluster"):
        build_plan(load_cluster(scratch, "c"), [])


# --- the cloud side of the pods' identities, from the rendered ServiceAccounts -------------------------------------


def identity_accounts(name: str, annotation: str) -> dict[tuple[str, str], str]:
    """(namespace, name) -> identity of every rendered ServiceAccount carrying ``annotation``."""
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["annotations"][annotation]
        for o in committed_objects(REPO, name)
        if o["kind"] == "ServiceAccount" and annotation in o["metadata"].get("annotations", {})
    }


def test_eks_roles_trust_exactly_the_rendered_service_accounts_and_no_node_role_gets_asg_rights():
    cluster = load_cluster(REPO, "aws-example")
    config = build_eksctl_config(cluster, committed_objects(REPO, cluster.name))
    accounts = identity_accounts("aws-example", "eks.amazonaws.com/role-arn")
    entries = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in config["iam"]["serviceAccounts"]}
    assert set(entries) == set(accounts) and len(entries) == 2
    for key, entry in entries.items():
        assert accounts[key].endswith(":role/" + entry["roleName"])
        assert entry["roleOnly"] is True  # the chart owns the ServiceAccount and its annotation
    ca = entries[("dask", "dask-cluster-autoscaler")]["attachPolicy"]["Statement"]
    writes = next(s for s in ca if "autoscaling:SetDesiredCapacity" in s["Action"])
    assert writes["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/aws-example": "owned"}}
    assert entries[("dask", "dask-dask")]["attachPolicyARNs"] == cluster.settings["grants"]["dask"]
    assert "withAddonPolicies" not in yaml.safe_dump(config)
    addons = {a["name"]: a for a in config["addons"]}
    assert addons["vpc-cni"]["configurationValues"] == '{"enableNetworkPolicy": "true"}'
    assert addons["aws-ebs-csi-driver"]["wellKnownPolicies"] == {"ebsCSIController": True}


def test_gke_binds_each_rendered_service_account_to_its_iam_service_account():
    cluster = load_cluster(REPO, "gcp-example")
    commands = build_gke_commands(cluster, committed_objects(REPO, cluster.name))
    assert "--enable-dataplane-v2" in commands[0]  # NetworkPolicy enforced (set at creation only)
    bindings = [c for c in commands if c[:4] == ["gcloud", "iam", "service-accounts", "add-iam-policy-binding"]]
    accounts = identity_accounts("gcp-example", "iam.gke.io/gcp-service-account")
    assert len(bindings) == len(accounts) == 1
    for (namespace, name), gsa in accounts.items():
        [binding] = [b for b in bindings if b[4] == gsa]
        assert "--role=roles/iam.workloadIdentityUser" in binding
        assert f"--member=serviceAccount:example-project.svc.id.goog[{namespace}/{name}]" in binding
    assert any(
        c[:3] == ["gcloud", "projects", "add-iam-policy-binding"] and "--role=roles/storage.objectUser" in c
        for c in commands
    )


def test_aks_federates_each_rendered_service_account_and_enforces_network_policy():
    from dask_platform.machines import AKS_MAX_PODS

    cluster = load_cluster(REPO, "azure-example")
    commands = build_aks_commands(cluster, committed_objects(REPO, cluster.name))
    assert {"--network-policy=cilium", "--network-dataplane=cilium", f"--max-pods={AKS_MAX_PODS}"} <= set(commands[0])
    assert all(f"--max-pods={AKS_MAX_PODS}" in c for c in commands if c[:4] == ["az", "aks", "nodepool", "add"])
    federated = [c for c in commands if c[:4] == ["az", "identity", "federated-credential", "create"]]
    accounts = identity_accounts("azure-example", "azure.workload.identity/client-id")
    assert len(federated) == len(accounts) == 1
    for namespace, name in accounts:
        assert f"--subject=system:serviceaccount:{namespace}:{name}" in federated[0]
        assert "--audience=api://AzureADTokenExchange" in federated[0]
    plan = build_plan(cluster, committed_objects(REPO, cluster.name))
    assert '--issuer="$(az aks show ' in plan  # the shell runs the substitution: not quoted away


def test_identity_errors_name_the_key(scratch: RepoTree):
    path = scratch.cluster_file("aws-example")
    text = path.read_text()
    path.write_text(text.replace("grants:\n  dask: [arn:aws:iam::111122223333:policy/aws-example-dask-data]\n", ""))
    with pytest.raises(UserError, match=r"key grants\.dask: the IAM role of this component needs at least one policy"):
        build_plan(load_cluster(scratch, "aws-example"), committed_objects(scratch, "aws-example"))
    objects = committed_objects(scratch, "aws-example")
    for o in objects:
        if o["kind"] == "ServiceAccount" and "eks.amazonaws.com/role-arn" in o["metadata"].get("annotations", {}):
            o["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = "aws-example-dask"
    path.write_text(text)
    with pytest.raises(
        UserError, match=r"serviceAccount\.annotations\.eks\.amazonaws\.com/role-arn: expected an IAM role ARN"
    ):
        build_plan(load_cluster(scratch, "aws-example"), objects)


def test_plan_of_an_unrendered_cluster_says_to_render_it(scratch: RepoTree):
    import shutil

    shutil.rmtree(scratch.rendered_dir("gcp-example"))
    result = CliRunner().invoke(cli, ["--repo", str(scratch.root), "plan", "gcp-example"])
    assert result.exit_code == 2, result.output
    assert "run `dask-platform render gcp-example`" in result.output

"""Provisioning plans per cloud, consistent with what the chart selects and the autoscaler discovers."""

from __future__ import annotations

import shlex

import pytest
import yaml
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.clouds import cloud
from dask_platform.clouds.aws import NODE_TEMPLATE_LABEL, NODE_TEMPLATE_TAINT, build_eksctl_config
from dask_platform.clouds.azure import build_aks_commands
from dask_platform.clouds.gcp import build_gke_commands
from dask_platform.clouds.minikube import build_minikube_command
from dask_platform.clusters import load_cluster
from dask_platform.errors import UserError
from dask_platform.machines import allocatable
from dask_platform.provision import ZONE_LABEL, NodeGroup, build_plan, cluster_zone, node_groups
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
    label = cloud(cluster.cloud).node_group_label
    created = {g.name for g in node_groups(cluster)}
    selected = set()
    for dep in objects_of(rendered[name], "Deployment").values():
        selector = dep["spec"]["template"]["spec"].get("nodeSelector", {})
        if label in selector:
            selected.add(selector[label])
    assert selected and selected <= created


def gke_create(commands: list[list[str]]) -> list[str]:
    [create] = [c for c in commands if c[:4] == ["gcloud", "container", "clusters", "create"]]
    return create


def test_gke_commands_enable_workload_identity_and_autoscaling():
    commands = build_gke_commands(load_cluster(REPO, "gcp-example"), committed_objects(REPO, "gcp-example"))
    create = gke_create(commands)
    assert "--workload-pool=example-project.svc.id.goog" in create
    pools = [c for c in commands if c[3] == "create" and c[2] == "node-pools"]
    assert {c[4] for c in pools} == {"core", "workers", "gpu"}
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
    (folder / "cluster.yaml").write_text(base + "nodeGroups:\n  gpu: {instanceType: g5.xlarge, desired: 1}\n")
    assert {g.name: g for g in node_groups(load_cluster(scratch, "c"))}["gpu"].instance_type == "g5.xlarge"
    (folder / "cluster.yaml").write_text(base + "nodeGroups:\n  tpu: {desired: 1}\n")
    with pytest.raises(UserError, match=r"key nodeGroups\.tpu: unknown node group \(expected core, workers, gpu\)"):
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
    assert set(entries) == set(accounts) and len(entries) == 3  # the autoscaler, the Dask pods, one tenant
    for key, entry in entries.items():
        assert accounts[key].endswith(":role/" + entry["roleName"])
        assert entry["roleOnly"] is True  # the chart owns the ServiceAccount and its annotation
    ca = entries[("dask", "dask-cluster-autoscaler")]["attachPolicy"]["Statement"]
    writes = next(s for s in ca if "autoscaling:SetDesiredCapacity" in s["Action"])
    assert writes["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/aws-example": "owned"}}
    assert entries[("dask", "dask-dask")]["attachPolicyARNs"] == cluster.settings["grants"]["dask"]
    tenant = entries[("tenant-forecasting", "dask-tenant")]
    assert tenant["attachPolicyARNs"] == cluster.settings["grants"]["tenant-forecasting"]
    assert "withAddonPolicies" not in yaml.safe_dump(config)
    addons = {a["name"]: a for a in config["addons"]}
    assert addons["vpc-cni"]["configurationValues"] == '{"enableNetworkPolicy": "true"}'
    assert addons["aws-ebs-csi-driver"]["wellKnownPolicies"] == {"ebsCSIController": True}


def test_gke_binds_each_rendered_service_account_to_its_iam_service_account():
    cluster = load_cluster(REPO, "gcp-example")
    commands = build_gke_commands(cluster, committed_objects(REPO, cluster.name))
    assert "--enable-dataplane-v2" in gke_create(commands)  # NetworkPolicy enforced (set at creation only)
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
    from dask_platform.clouds.azure import AKS_MAX_PODS

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
    path.write_text(text.replace("  dask: [arn:aws:iam::111122223333:policy/aws-example-dask-data]\n", ""))
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


# --- the network: private nodes, and Jupyter's load balancer open to the VPC only ----------------------------------


def example_cluster(tree: RepoTree, name: str, **changes) -> RepoTree:
    """``tree`` with clusters/<name>/cluster.yaml changed (top-level keys; None deletes one)."""
    path = tree.cluster_file(name)
    settings = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    path.write_text(yaml.safe_dump(settings))
    return tree


def test_eks_nodes_are_private_behind_one_nat_gateway():
    """eksctl puts managed node groups in public subnets unless privateNetworking (eksctl docs, vpc-configuration);
    the VPC's NAT gateway is set, not left to eksctl's default."""
    config = build_eksctl_config(load_cluster(REPO, "aws-example"), committed_objects(REPO, "aws-example"))
    assert [g["privateNetworking"] for g in config["managedNodeGroups"]] == [True, True, True]
    assert config["vpc"] == {"cidr": "192.168.0.0/16", "nat": {"gateway": "Single"}}


@pytest.mark.parametrize("cidr", [None, "10.20.0.0/16"])
def test_the_vpc_the_plan_creates_is_the_only_source_range_of_jupyters_load_balancer(scratch: RepoTree, helm, cidr):
    """One source: cluster.yaml network.vpcCidr (default eksctl's) is both the plan's vpc.cidr and the rendered
    Service's loadBalancerSourceRanges, so the NodePort is not opened to 0.0.0.0/0 (cloud-provider-aws aws.go)."""
    from dask_platform import render
    from tests.support.repo import objects_of

    example_cluster(scratch, "aws-example", network={"vpcCidr": cidr} if cidr else None)
    cluster = load_cluster(scratch, "aws-example")
    [r] = render.render_clusters(scratch, ["aws-example"], helm)
    config = build_eksctl_config(cluster, r.objects)
    [service] = [s for n, s in objects_of(r, "Service").items() if n.endswith("-jupyter")]
    assert service["spec"]["loadBalancerSourceRanges"] == [config["vpc"]["cidr"]] == [cidr or "192.168.0.0/16"]


def test_a_vpc_cidr_that_is_not_one_is_refused(scratch: RepoTree):
    example_cluster(scratch, "aws-example", network={"vpcCidr": "10.0.0.300/16"})
    with pytest.raises(UserError, match=r"key network\.vpcCidr: expected an IPv4 CIDR"):
        build_eksctl_config(load_cluster(scratch, "aws-example"), [])


def test_gke_nodes_are_private_with_cloud_nat_for_their_egress_and_the_teardown_removes_it():
    from dask_platform.costs import teardown_command

    cluster = load_cluster(REPO, "gcp-example")
    commands = build_gke_commands(cluster, committed_objects(REPO, cluster.name))
    create = gke_create(commands)
    assert "--enable-private-nodes" in create and "--network=default" in create
    before = commands[: commands.index(create)]
    assert [c[:5] for c in before] == [
        ["gcloud", "compute", "networks", "subnets", "update"],
        ["gcloud", "compute", "routers", "create", "gcp-example-nat"],
        ["gcloud", "compute", "routers", "nats", "create"],
    ]
    assert "--enable-private-ip-google-access" in before[0]
    assert {"--router=gcp-example-nat", "--auto-allocate-nat-external-ips", "--nat-all-subnet-ip-ranges"} <= set(
        before[2]
    )
    assert teardown_command(cluster).endswith(
        "gcloud compute routers delete gcp-example-nat --project=example-project --region=europe-west1 --quiet"
    )


def test_aks_nodes_get_no_public_ip():
    """AKS nodes have none unless --enable-node-public-ip (az aks create reference): the plan never asks for one."""
    commands = build_aks_commands(load_cluster(REPO, "azure-example"), committed_objects(REPO, "azure-example"))
    assert not any("--enable-node-public-ip" in c for c in commands)


# --- node groups: workers and GPU pools tainted, the GPU group plannable on every cloud ------------------------------


def groups_of(name: str) -> dict[str, NodeGroup]:
    return {g.name: g for g in node_groups(load_cluster(REPO, name))}


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_every_cloud_plans_an_empty_tainted_gpu_group_and_tainted_workers(name: str):
    groups = groups_of(name)
    gpu = groups["gpu"]
    assert (gpu.min_size, gpu.desired) == (0, 0) and gpu.max_size >= 1
    assert allocatable(load_cluster(REPO, name).cloud, gpu.instance_type) is not None  # the fit check applies
    assert [str(t) for t in gpu.all_taints] in (["nvidia.com/gpu=present:NoSchedule"], ["sku=gpu:NoSchedule"])
    assert [str(t) for t in groups["workers"].all_taints] == ["dask-platform/workers=true:NoSchedule"]
    assert groups["core"].all_taints == ()


def test_eks_taints_the_groups_and_tags_the_taints_for_scale_up_from_zero():
    """cluster-autoscaler reads an empty group's taints from node-template/taint/<key> = <value>:<effect> ASG tags
    (autoscaler cloudprovider/aws/README.md; aws_manager.go skips a value without the effect)."""
    config = build_eksctl_config(load_cluster(REPO, "aws-example"), committed_objects(REPO, "aws-example"))
    groups = {g["name"]: g for g in config["managedNodeGroups"]}
    assert groups["workers"]["taints"] == [{"key": "dask-platform/workers", "value": "true", "effect": "NoSchedule"}]
    assert groups["gpu"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert "taints" not in groups["core"]
    for group in groups.values():
        tags = {k: v for k, v in group["tags"].items() if k.startswith(NODE_TEMPLATE_TAINT)}
        expected = {NODE_TEMPLATE_TAINT + t["key"]: f"{t['value']}:{t['effect']}" for t in group.get("taints", [])}
        assert tags == expected, group["name"]
    # AmazonLinux2023 on a GPU type: the accelerated AMI, and eksctl installs NVIDIA's device plugin
    assert groups["gpu"]["amiFamily"] == "AmazonLinux2023" and groups["gpu"]["instanceType"] == "g4dn.xlarge"
    assert groups["gpu"]["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-tesla-t4"


def test_gke_asks_for_the_gpu_and_its_driver_and_taints_the_workers():
    commands = build_gke_commands(load_cluster(REPO, "gcp-example"), committed_objects(REPO, "gcp-example"))
    pools = {c[4]: c for c in commands if c[2:4] == ["node-pools", "create"]}
    assert "--accelerator=type=nvidia-tesla-t4,count=1,gpu-driver-version=default" in pools["gpu"]
    assert not any(w.startswith("--node-taints") for w in pools["gpu"])  # GKE taints GPU nodes itself
    assert "--node-taints=dask-platform/workers=true:NoSchedule" in pools["workers"]
    assert not any(w.startswith(("--node-taints", "--accelerator")) for w in pools["core"])


def test_aks_taints_the_gpu_and_workers_pools():
    commands = build_aks_commands(load_cluster(REPO, "azure-example"), committed_objects(REPO, "azure-example"))
    pools = {
        w.split("=", 1)[1]: c
        for c in commands
        if c[:4] == ["az", "aks", "nodepool", "add"]
        for w in c
        if w.startswith("--name=")
    }
    assert "--node-taints=sku=gpu:NoSchedule" in pools["gpu"] and "--node-vm-size=Standard_NC4as_T4_v3" in pools["gpu"]
    assert "--node-taints=dask-platform/workers=true:NoSchedule" in pools["workers"]
    assert {"--min-count=0", "--node-count=0"} <= set(pools["gpu"])


def test_the_plan_says_how_the_gpu_device_plugin_gets_installed():
    for name, words in [
        ("aws-example", "eksctl installs NVIDIA's device plugin"),
        ("gcp-example", "GKE installs the driver and device plugin"),
        ("azure-example", "learn.microsoft.com/azure/aks/gpu-cluster"),
    ]:
        assert words in build_plan(load_cluster(REPO, name), committed_objects(REPO, name)), name


# --- one zone for the core group and Jupyter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "zone"),
    [("aws-example", "us-east-1a"), ("gcp-example", "europe-west1-b"), ("azure-example", "westeurope-1")],
)
def test_the_core_group_and_jupyter_are_in_the_clusters_zone(name: str, zone: str, rendered):
    """Jupyter's home is a zonal disk: the plan pins the core group to cluster.yaml's zone and the rendered Jupyter
    Deployment selects that zone (one source: provision.planned_values)."""
    from tests.support.repo import objects_of

    cluster = load_cluster(REPO, name)
    assert cluster_zone(cluster) == zone
    selector = objects_of(rendered[name], "Deployment")["dask-jupyter"]["spec"]["template"]["spec"]["nodeSelector"]
    assert selector[ZONE_LABEL] == zone
    objects = committed_objects(REPO, name)
    if cluster.cloud == "aws":
        config = build_eksctl_config(cluster, objects)
        core = next(g for g in config["managedNodeGroups"] if g["name"] == "core")
        assert core["availabilityZones"] == [zone] and zone in config["availabilityZones"]
        assert core["tags"][NODE_TEMPLATE_LABEL + ZONE_LABEL] == zone
    elif cluster.cloud == "gcp":
        assert f"--node-locations={zone}" in gke_create(build_gke_commands(cluster, objects))
    else:
        assert "--zones=1" in build_aks_commands(cluster, objects)[0]


def test_a_zone_from_another_region_is_refused(scratch: RepoTree):
    example_cluster(scratch, "azure-example", zone="eastus-1")
    with pytest.raises(UserError, match=r"key zone: expected a zone of region westeurope \(like westeurope-1\)"):
        build_aks_commands(load_cluster(scratch, "azure-example"), [])


def test_the_default_zone_without_the_key(scratch: RepoTree):
    example_cluster(scratch, "aws-example", zone=None)
    assert cluster_zone(load_cluster(scratch, "aws-example")) == "us-east-1a"
    example_cluster(scratch, "gcp-example", zone=None)
    assert cluster_zone(load_cluster(scratch, "gcp-example")) == "europe-west1-b"


# --- maintenance windows ----------------------------------------------------------------------------------------


def test_gke_maintenance_window_is_weekend_nights_utc():
    create = gke_create(build_gke_commands(load_cluster(REPO, "gcp-example"), committed_objects(REPO, "gcp-example")))
    assert {
        "--maintenance-window-start=2000-01-01T00:00:00Z",
        "--maintenance-window-end=2000-01-01T06:00:00Z",
        "--maintenance-window-recurrence=FREQ=WEEKLY;BYDAY=SA,SU",
    } <= set(create)


def test_aks_upgrades_patches_and_node_images_in_weekend_windows():
    commands = build_aks_commands(load_cluster(REPO, "azure-example"), committed_objects(REPO, "azure-example"))
    assert {"--auto-upgrade-channel=patch", "--node-os-upgrade-channel=NodeImage"} <= set(commands[0])
    windows = {c[6]: c for c in commands if c[:4] == ["az", "aks", "maintenanceconfiguration", "add"]}
    assert set(windows) == {"--name=aksManagedAutoUpgradeSchedule", "--name=aksManagedNodeOSUpgradeSchedule"}
    assert "--day-of-week=Saturday" in windows["--name=aksManagedAutoUpgradeSchedule"]
    assert "--day-of-week=Sunday" in windows["--name=aksManagedNodeOSUpgradeSchedule"]
    for window in windows.values():
        assert {"--schedule-type=Weekly", "--duration=6", "--utc-offset=+00:00", "--start-time=00:00"} <= set(window)


def test_a_gke_window_shorter_than_48_hours_a_month_is_refused(scratch: RepoTree):
    example_cluster(scratch, "gcp-example", maintenance={"days": ["Sunday"], "hours": 8})
    with pytest.raises(UserError, match=r"key maintenance: GKE needs at least 48 maintenance hours"):
        build_gke_commands(load_cluster(scratch, "gcp-example"), [])
    example_cluster(scratch, "gcp-example", maintenance={"days": ["Sunday"], "hours": 12, "start": "22:00"})
    create = gke_create(build_gke_commands(load_cluster(scratch, "gcp-example"), []))
    assert "--maintenance-window-end=2000-01-02T10:00:00Z" in create


def test_eks_says_it_has_no_managed_maintenance_window():
    plan = build_plan(load_cluster(REPO, "aws-example"), committed_objects(REPO, "aws-example"))
    assert "# maintenance: EKS has no managed window" in plan

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
from dask_platform.repo import RepoTree
from tests.conftest import REPO, container_args, objects_of

pytestmark = pytest.mark.helm


def test_eks_config_has_oidc_and_autoscaler_discovery_tags_matching_the_autoscaler(rendered):
    cluster = load_cluster(REPO, "aws-example")
    config = build_eksctl_config(cluster)
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
    commands = build_gke_commands(load_cluster(REPO, "gcp-example"))
    create = commands[0]
    assert create[:4] == ["gcloud", "container", "clusters", "create"]
    assert "--workload-pool=example-project.svc.id.goog" in create
    pools = [c for c in commands if c[3] == "create" and c[2] == "node-pools"]
    assert {c[4] for c in pools} == {"core", "workers"}
    for pool in pools:
        assert "--enable-autoscaling" in pool and "--workload-metadata=GKE_METADATA" in pool
    assert commands[-1][3:5] == ["delete", "default-pool"]


def test_aks_commands_enable_workload_identity_and_autoscaling():
    commands = build_aks_commands(load_cluster(REPO, "azure-example"))
    assert {"--enable-oidc-issuer", "--enable-workload-identity", "--enable-cluster-autoscaler"} <= set(commands[0])
    assert "--nodepool-name=core" in commands[0]
    assert commands[1][:4] == ["az", "aks", "nodepool", "add"] and "--name=workers" in commands[1]


def test_minikube_profile_fits_the_chart_values():
    command = build_minikube_command(load_cluster(REPO, "minikube"))
    assert "--cpus=4" in command and "--memory=8g" in command
    assert "--kubernetes-version=v1.32.0" in command


def test_plan_output_parses():
    aws = build_plan(load_cluster(REPO, "aws-example"))
    assert yaml.safe_load(aws)["kind"] == "ClusterConfig"
    for name in ("gcp-example", "azure-example", "minikube"):
        for line in build_plan(load_cluster(REPO, name)).splitlines():
            assert shlex.split(line)[0] in {"gcloud", "az", "minikube"}
    result = CliRunner().invoke(cli, ["plan", "minikube"])
    assert result.exit_code == 0 and result.output.startswith("minikube start")


def test_node_group_overrides_and_their_errors(scratch: RepoTree):
    folder = scratch.clusters_dir / "c"
    folder.mkdir(parents=True)
    base = "cloud: aws\nnamespace: dask\nkubernetesVersion: '1.31'\nregion: us-east-1\n"
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
        build_plan(load_cluster(scratch, "c"))

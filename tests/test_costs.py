"""What each cluster costs idle and busy, computed from the price table, and how to delete it."""

from __future__ import annotations

import datetime

import pytest
import yaml
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.clusters import load_cluster
from dask_platform.costs import HOURS_PER_MONTH, build_cost_report, format_cost_report, load_prices, prices
from dask_platform.repo import RepoTree
from dask_platform.values import build_values
from tests.support.repo import REPO


def report_for(tree: RepoTree, name: str):
    cluster = load_cluster(tree, name)
    return build_cost_report(cluster, build_values(tree, cluster).effective)


def test_aws_example_idle_and_busy_from_the_table():
    """Idle: core at its minimum (1 x m6i.large) and the 4 fixed workers (one per m6i.xlarge, since 3.5 CPU of the
    3.74 a node leaves fit once); busy: every group something selects at its maximum (3 + 10; the empty gpu group
    nothing selects stays at 0). Plus the EKS control plane and the NAT gateway of the private nodes."""
    report = report_for(REPO, "aws-example")
    machines, fixed = prices("aws").machines, 0.10 + 0.045 + 0.005
    assert report.hourly("idle") == pytest.approx(fixed + 1 * machines["m6i.large"] + 4 * machines["m6i.xlarge"])
    assert report.hourly("busy") == pytest.approx(fixed + 3 * machines["m6i.large"] + 10 * machines["m6i.xlarge"])
    assert report.monthly("idle") == pytest.approx(report.hourly("idle") * HOURS_PER_MONTH)
    assert report.hourly("floor") == pytest.approx(fixed + machines["m6i.large"])  # workers autoscaled to zero
    assert [g.group for g in report.groups] == ["core", "workers"]
    assert report.teardown == "eksctl delete cluster --name aws-example --region us-east-1 --wait"


def test_workers_at_zero_leave_only_the_core_node_and_the_control_plane(scratch: RepoTree):
    path = scratch.cluster_file("gcp-example")
    settings = yaml.safe_load(path.read_text())
    scaling = {"enabled": True, "minReplicas": 0, "maxReplicas": 10}
    settings["values"]["dask"]["workerGroups"] = {"default": {"autoscaling": scaling}}
    path.write_text(yaml.safe_dump(settings))
    report = report_for(scratch, "gcp-example")
    nat = 0.005 + 0.0014 * 1  # Cloud NAT: its IP, and one node-hour
    assert report.hourly("idle") == pytest.approx(0.10 + nat + prices("gcp").machines["e2-standard-2"])
    assert report.monthly("idle") < 0.25 * report_for(REPO, "gcp-example").monthly("idle")


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_every_example_has_prices_for_its_region_and_machines(name: str):
    report = report_for(REPO, name)
    assert report.missing == [] and report.hourly("idle") < report.hourly("busy")
    lines = format_cost_report(report)
    assert any(line.startswith("#   idle") for line in lines) and lines[-1] == f"# delete: {report.teardown}"


def test_a_region_without_prices_says_so_instead_of_guessing(scratch: RepoTree):
    path = scratch.cluster_file("aws-example")
    path.write_text(path.read_text().replace("us-east-1", "eu-north-1"))  # region and zone
    lines = format_cost_report(report_for(scratch, "aws-example"))
    assert "#   not computed: prices are for us-east-1; eu-north-1 is not in the table" in lines
    assert not any(line.startswith("#   idle") for line in lines)


def test_plan_and_cost_print_the_cost_and_the_teardown_command():
    plan = CliRunner().invoke(cli, ["plan", "azure-example"])
    assert plan.exit_code == 0, plan.output
    assert "# delete: az aks delete --resource-group=example-dask-rg --name=azure-example --yes" in plan.output
    cost = CliRunner().invoke(cli, ["cost", "azure-example"])
    assert cost.exit_code == 0 and cost.output.strip() in plan.output
    aws = CliRunner().invoke(cli, ["plan", "aws-example"]).output
    assert yaml.safe_load(aws)["kind"] == "ClusterConfig"  # the cost lines are YAML comments
    minikube = CliRunner().invoke(cli, ["cost", "minikube"]).output
    assert minikube.splitlines() == [
        "# cost: none (runs on this machine)",
        "# delete: minikube delete --profile=minikube",
    ]


def test_readme_per_cloud_costs_are_the_computed_ones():
    row = next(line for line in (REPO.root / "README.md").read_text().splitlines() if line.startswith("| monthly cost"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    for name, cell in zip(["aws-example", "gcp-example", "azure-example"], cells, strict=False):
        report = report_for(REPO, name)
        expected = " / ".join(f"${report.monthly(s):,.0f}" for s in ("idle", "busy", "floor"))
        assert cell == expected, (name, cell, expected)
    assert cells[3] == "$0"


# --- the price tables -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_price_tables_are_less_than_a_year_old(cloud: str):
    """Prices change: each table carries the date of the source it was read from, and must be refreshed (figures,
    date and source together, from the newest generation of the source) once that date is a year old."""
    table = load_prices(cloud)
    age = datetime.date.today() - datetime.date.fromisoformat(table.date)
    assert age.days <= 365, f"dask_platform/prices/{cloud}.yaml is from {table.date} ({age.days} days): {table.source}"


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_every_machine_the_plan_may_start_is_priced(name: str):
    """Every node group's machine type, the GPU groups' included: a cluster that enables GPU workers gets a cost."""
    from dask_platform.provision import node_groups

    cluster = load_cluster(REPO, name)
    table = load_prices(cluster.cloud)
    assert table.region == cluster.settings["region"]
    for g in node_groups(cluster):
        assert g.instance_type in table.machines, (name, g.name)


def test_gpu_workers_on_count_the_gpu_group_at_its_maximum_when_busy(scratch: RepoTree):
    path = scratch.cluster_file("aws-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["dask"]["workerGroups"] = {"gpu": {"enabled": True}}
    path.write_text(yaml.safe_dump(settings))
    report = report_for(scratch, "aws-example")
    gpu = next(g for g in report.groups if g.group == "gpu")
    assert (gpu.idle_nodes, gpu.busy_nodes, gpu.hourly) == (1, 4, prices("aws").machines["g4dn.xlarge"])


def test_a_gpu_without_a_sourced_price_is_not_guessed(scratch: RepoTree):
    """GKE bills the T4 on top of the n1-standard-4: without a sourced price for it the report says so."""
    path = scratch.cluster_file("gcp-example")
    settings = yaml.safe_load(path.read_text())
    settings["values"]["dask"]["workerGroups"] = {"gpu": {"enabled": True}}
    path.write_text(yaml.safe_dump(settings))
    lines = format_cost_report(report_for(scratch, "gcp-example"))
    assert "#   not computed: no price for the nvidia-tesla-t4 GPU in dask_platform/prices/gcp.yaml" in lines


def test_the_price_tables_ship_with_the_package():
    import tomllib

    config = tomllib.loads((REPO.root / "pyproject.toml").read_text())
    assert "prices/*.yaml" in config["tool"]["setuptools"]["package-data"]["dask_platform"]

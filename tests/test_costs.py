"""What each cluster costs idle and busy, computed from the price table, and how to delete it."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.clusters import load_cluster
from dask_platform.costs import HOURS_PER_MONTH, PRICES, build_cost_report, format_cost_report
from dask_platform.repo import RepoTree
from dask_platform.values import build_values
from tests.support.repo import REPO


def report_for(tree: RepoTree, name: str):
    cluster = load_cluster(tree, name)
    return build_cost_report(cluster, build_values(tree, cluster).effective)


def test_aws_example_idle_and_busy_from_the_table():
    """Idle: core at its minimum (1 x m6i.large) and the 4 fixed workers (one per m6i.xlarge, since 3.5 CPU of the
    3.74 a node leaves fit once); busy: every group at its maximum (3 + 10). Plus the EKS control plane."""
    report = report_for(REPO, "aws-example")
    prices = PRICES["aws"].machines
    assert report.hourly("idle") == pytest.approx(0.10 + 1 * prices["m6i.large"] + 4 * prices["m6i.xlarge"])
    assert report.hourly("busy") == pytest.approx(0.10 + 3 * prices["m6i.large"] + 10 * prices["m6i.xlarge"])
    assert report.monthly("idle") == pytest.approx(report.hourly("idle") * HOURS_PER_MONTH)
    assert report.hourly("floor") == pytest.approx(0.10 + prices["m6i.large"])  # workers autoscaled to zero
    assert report.teardown == "eksctl delete cluster --name aws-example --region us-east-1 --wait"


def test_workers_at_zero_leave_only_the_core_node_and_the_control_plane(scratch: RepoTree):
    path = scratch.cluster_file("gcp-example")
    settings = yaml.safe_load(path.read_text())
    scaling = {"enabled": True, "minReplicas": 0, "maxReplicas": 10}
    settings["values"]["dask"]["workerGroups"] = {"default": {"autoscaling": scaling}}
    path.write_text(yaml.safe_dump(settings))
    report = report_for(scratch, "gcp-example")
    assert report.hourly("idle") == pytest.approx(0.10 + PRICES["gcp"].machines["e2-standard-2"])
    assert report.monthly("idle") < 0.25 * report_for(REPO, "gcp-example").monthly("idle")


@pytest.mark.parametrize("name", ["aws-example", "gcp-example", "azure-example"])
def test_every_example_has_prices_for_its_region_and_machines(name: str):
    report = report_for(REPO, name)
    assert report.missing == [] and report.hourly("idle") < report.hourly("busy")
    lines = format_cost_report(report)
    assert any(line.startswith("#   idle") for line in lines) and lines[-1] == f"# delete: {report.teardown}"


def test_a_region_without_prices_says_so_instead_of_guessing(scratch: RepoTree):
    path = scratch.cluster_file("aws-example")
    path.write_text(path.read_text().replace("region: us-east-1", "region: eu-north-1"))
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

"""`dask-platform values set`: one line changed and every other byte kept, validated before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.validate import format_report, run_checks
from dask_platform.values_edit import parse_assignment, set_in_text

pytestmark = pytest.mark.helm

FIXTURE = """\
# A values file with comments, odd quoting and flow style.
dask:   # the Dask part
  workerGroups:
    default:
      replicas: 4   # one per node
      resources:
        requests: {cpu: "3500m", memory: 12Gi}
        limits: {cpu: '4', memory: "12Gi"}
      nodeSelector:
        "eks.amazonaws.com/nodegroup": 'workers'

jupyter:
  service:
    annotations:
      service.beta.kubernetes.io/aws-load-balancer-scheme: "internal"  # keep private
"""


def test_set_changes_one_line_and_keeps_every_other_byte():
    new = set_in_text(FIXTURE, ["dask", "workerGroups", "default", "replicas"], 6, Path("f.yaml"))
    old_lines, new_lines = FIXTURE.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [("      replicas: 4   # one per node", "      replicas: 6   # one per node")]


def test_set_adds_a_key_with_dots_and_keeps_the_rest():
    a = parse_assignment(r"jupyter.service.annotations.example\.com/owner=team-a")
    assert a.path == ["jupyter", "service", "annotations", "example.com/owner"]
    new = set_in_text(FIXTURE, a.path, a.value, Path("f.yaml"))
    assert new.startswith(FIXTURE.rstrip("\n"))
    assert new.endswith("      example.com/owner: team-a\n")


@pytest.mark.parametrize(
    ("text", "value"),
    [("a=6", 6), ('a="6"', "6"), ("a=null", None), ("a=[x, y]", ["x", "y"]), ("a=true", True), ("a=", "")],
)
def test_values_are_read_as_yaml(text: str, value):
    assert parse_assignment(text).value == value


def test_set_into_a_scalar_is_an_error():
    with pytest.raises(UserError, match=r"key dask\.workerGroups\.default\.replicas: is a int, not a mapping"):
        set_in_text(FIXTURE, ["dask", "workerGroups", "default", "replicas", "x"], 1, Path("f.yaml"))


def values_set(tree: RepoTree, *args: str):
    return CliRunner().invoke(cli, ["--repo", str(tree.root), "values", "set", *args])


def test_values_set_cli_validates_rerenders_and_validate_summarises(scratch: RepoTree):
    before = scratch.values_file("aws").read_text()
    result = values_set(scratch, "aws", "dask.workerGroups.default.replicas=6")
    assert result.exit_code == 0, result.output
    after = scratch.values_file("aws").read_text()
    assert after == before.replace("      replicas: 4\n", "      replicas: 6\n")
    worker = yaml.safe_load((scratch.rendered_dir("aws-example") / "deployment-dask-worker-default.yaml").read_text())
    assert worker["spec"]["replicas"] == 6
    report = run_checks(scratch, base="HEAD")
    assert report.ok, report.problems
    assert report.changes == {"aws-example": ["changed Deployment/dask-worker-default: spec.replicas: 4 -> 6"]}
    md = format_report(report, markdown=True, base="HEAD")
    assert "#### Changes against `HEAD`" in md and "spec.replicas: 4 -> 6" in md


def test_values_set_rejects_an_invalid_value_and_writes_nothing(scratch: RepoTree):
    path = scratch.values_file("minikube")
    before = path.read_text()
    result = values_set(scratch, "minikube", "dask.workerGroups.default.replicas=-3")
    assert result.exit_code == 2
    # the error names the real file (the edit was checked in memory, not on a temporary copy)
    assert f"error: {path}: key dask.workerGroups.default.replicas: -3 is less than the minimum" in result.output
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(p.name for p in scratch.values_dir.iterdir())


def test_values_set_on_a_cluster_edits_its_values_key(scratch: RepoTree):
    # "minikube" names both a cloud and a cluster: the cloud's file wins
    result = values_set(scratch, "minikube", "jupyter.enabled=false", "--no-render")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(scratch.values_file("minikube").read_text())["jupyter"]["enabled"] is False
    result = values_set(scratch, "aws-example", "dask.workerGroups.default.replicas=2", "--no-render")
    assert result.exit_code == 0, result.output
    cluster = yaml.safe_load(scratch.cluster_file("aws-example").read_text())
    assert cluster["values"]["dask"]["workerGroups"]["default"]["replicas"] == 2


def test_values_set_unknown_target(scratch: RepoTree):
    result = values_set(scratch, "mars", "a=1")
    assert result.exit_code == 2 and "neither a cloud" in result.output

"""values.py set keeps every other byte; validate.py fails on each class of problem and summarises changes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scripts import validate as validate_cli
from scripts import values as values_cli
from scripts.common import CHART_DIR, REPO_ROOT, UserError
from scripts.policy import check_objects
from scripts.validate import run_checks
from scripts.values import parse_assignment, set_in_text

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


def copy_tree(tmp: Path) -> Path:
    """A git repository holding a copy of values/ and clusters/ (the chart stays the repository's)."""
    shutil.copytree(REPO_ROOT / "values", tmp / "values")
    shutil.copytree(REPO_ROOT / "clusters", tmp / "clusters")
    subprocess.run(["git", "init", "-q", str(tmp)], check=True)
    subprocess.run(["git", "-C", str(tmp), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(tmp), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base"], check=True
    )
    return tmp / "clusters"


def test_values_set_cli_validates_rerenders_and_validate_summarises(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    before = (tmp_path / "values/aws.yaml").read_text()
    result = CliRunner().invoke(
        values_cli.main, ["set", "aws", "dask.workerGroups.default.replicas=6", "--clusters-dir", str(clusters)]
    )
    assert result.exit_code == 0, result.output
    after = (tmp_path / "values/aws.yaml").read_text()
    assert after == before.replace("      replicas: 4\n", "      replicas: 6\n")
    worker = yaml.safe_load((clusters / "aws-example/rendered/deployment-dask-worker-default.yaml").read_text())
    assert worker["spec"]["replicas"] == 6
    report = run_checks(clusters, base="HEAD")
    assert report.ok, report.problems
    assert report.changes == {"aws-example": ["changed Deployment/dask-worker-default: spec.replicas: 4 -> 6"]}
    md = validate_cli.format_report(report, markdown=True, base="HEAD")
    assert "#### Changes against `HEAD`" in md and "spec.replicas: 4 -> 6" in md


def test_values_set_rejects_an_invalid_value_and_writes_nothing(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    before = (tmp_path / "values/minikube.yaml").read_text()
    result = CliRunner().invoke(
        values_cli.main, ["set", "minikube", "dask.workerGroups.default.replicas=-3", "--clusters-dir", str(clusters)]
    )
    assert result.exit_code == 2
    assert "values/minikube.yaml: key dask.workerGroups.default.replicas: -3 is less than the minimum" in result.output
    assert str(tmp_path) not in result.output.replace(str(tmp_path / "values"), "values")
    assert (tmp_path / "values/minikube.yaml").read_text() == before


def test_values_set_unknown_target(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    result = CliRunner().invoke(values_cli.main, ["set", "mars", "a=1", "--clusters-dir", str(clusters)])
    assert result.exit_code == 2 and "neither a cloud" in result.output


# --- validate.py: one test per class of problem ---------------------------------------------------------------


def classes(report) -> set[str]:
    return {p.cls for p in report.problems}


def test_validate_passes_on_the_repository():
    report = run_checks()
    assert report.ok, [f"{p.cls} {p.where} {p.detail}" for p in report.problems]
    assert report.objects > 30


def test_validate_schema_problem(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    path = clusters / "minikube/cluster.yaml"
    path.write_text(path.read_text() + "values:\n  global:\n    image:\n      tag: latest\n")
    report = run_checks(clusters)
    assert classes(report) == {"schema"}
    assert "key values.global.image.tag" in report.problems[0].detail


def test_validate_kubernetes_schema_problem(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    path = clusters / "minikube/cluster.yaml"
    path.write_text(path.read_text() + "values:\n  dask:\n    scheduler:\n      affinity:\n        nodeAfinity: {}\n")
    report = run_checks(clusters)
    assert "kubernetes-schema" in classes(report)
    assert any("nodeAfinity" in p.detail for p in report.problems)


def test_validate_drift_problem(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    target = clusters / "gcp-example/rendered/deployment-dask-scheduler.yaml"
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 3"))
    report = run_checks(clusters)
    assert classes(report) == {"drift"}
    assert report.problems[0].where.endswith("gcp-example/rendered")


def chart_copy(tmp_path: Path) -> Path:
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    return chart


def test_validate_policy_problem(tmp_path: Path):
    chart = chart_copy(tmp_path)
    helpers = chart / "templates/_helpers.tpl"
    helpers.write_text(helpers.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"))
    report = run_checks(chart_dir=chart)
    assert "policy" in classes(report)
    assert any("read-only-root" in p.detail for p in report.problems)


def test_validate_render_problem(tmp_path: Path):
    chart = chart_copy(tmp_path)
    svc = chart / "charts/dask/templates/scheduler/service.yaml"
    svc.write_text(svc.read_text() + '\n{{ include "dp.missing" . }}\n')
    report = run_checks(chart_dir=chart)
    assert "render" in classes(report)


def test_validate_cli_exit_codes(tmp_path: Path):
    clusters = copy_tree(tmp_path)
    ok = CliRunner().invoke(validate_cli.main, ["--clusters-dir", str(clusters)])
    assert ok.exit_code == 0 and ok.output.startswith("validation passed")
    path = clusters / "minikube/cluster.yaml"
    path.write_text(path.read_text() + "values:\n  dask: {scheduler: {service: {type: Ingress}}}\n")
    bad = CliRunner().invoke(validate_cli.main, ["--clusters-dir", str(clusters), "--markdown"])
    assert bad.exit_code == 1 and "| schema |" in bad.output


# --- the policy rules themselves ------------------------------------------------------------------------------


def good_deployment() -> dict:
    return yaml.safe_load((REPO_ROOT / "clusters/minikube/rendered/deployment-dask-scheduler.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (lambda c, p: p["securityContext"].pop("runAsNonRoot"), "non-root"),
        (lambda c, p: p["securityContext"].update(runAsUser=0), "non-root"),
        (lambda c, p: p["securityContext"].pop("seccompProfile"), "seccomp"),
        (lambda c, p: c["securityContext"].update(allowPrivilegeEscalation=True), "no-privilege-escalation"),
        (lambda c, p: c["securityContext"].update(privileged=True), "no-privilege-escalation"),
        (lambda c, p: c["securityContext"]["capabilities"].update(drop=[]), "capabilities"),
        (lambda c, p: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]), "capabilities"),
        (lambda c, p: c["securityContext"].update(readOnlyRootFilesystem=False), "read-only-root"),
        (lambda c, p: c["resources"]["limits"].pop("memory"), "resources"),
        (lambda c, p: c["resources"].pop("requests"), "resources"),
        (lambda c, p: c.update(image="ghcr.io/x/y:latest"), "pinned-image"),
        (lambda c, p: c.update(image="ghcr.io/x/y"), "pinned-image"),
        (lambda c, p: p.update(hostNetwork=True), "host-namespaces"),
    ],
)
def test_each_pod_rule_catches_its_problem(edit, rule: str):
    dep = good_deployment()
    assert check_objects([dep]) == []
    pod = dep["spec"]["template"]["spec"]
    edit(pod["containers"][0], pod)
    assert rule in {v.rule for v in check_objects([dep])}


def test_rbac_and_secret_rules():
    role = {
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}],
    }
    cluster_role = {
        "kind": "ClusterRole",
        "metadata": {"name": "c", "labels": {"app.kubernetes.io/component": "jupyter"}},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    secret = {"kind": "Secret", "metadata": {"name": "s"}}
    rules = {v.rule for v in check_objects([role, cluster_role, secret])}
    assert rules == {"rbac-no-wildcards", "no-cluster-role", "no-generated-secrets"}

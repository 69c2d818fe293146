"""`dask-platform validate`: it passes on the repository, fails on each class of problem, summarises changes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.repo import RepoTree
from dask_platform.validate import run_checks
from tests.support.repo import REPO

pytestmark = pytest.mark.helm


def classes(report) -> set[str]:
    return {p.check for p in report.problems}


def test_validate_passes_on_the_repository():
    report = run_checks(REPO)
    assert report.ok, [f"{p.check} {p.where} {p.detail}" for p in report.problems]
    assert report.objects > 30


def test_validate_schema_problem(scratch: RepoTree):
    path = scratch.cluster_file("minikube")
    path.write_text(path.read_text() + "values:\n  global:\n    image:\n      tag: latest\n")
    report = run_checks(scratch)
    assert classes(report) == {"schema"}
    assert "key values.global.image.tag" in report.problems[0].detail


def test_validate_kubernetes_schema_problem(scratch: RepoTree):
    path = scratch.cluster_file("minikube")
    path.write_text(path.read_text() + "values:\n  dask:\n    scheduler:\n      affinity:\n        nodeAfinity: {}\n")
    report = run_checks(scratch)
    assert "kubernetes-schema" in classes(report)
    assert any("nodeAfinity" in p.detail for p in report.problems)


def test_validate_drift_problem(scratch: RepoTree):
    target = scratch.rendered_dir("gcp-example") / "deployment-dask-scheduler.yaml"
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 3"))
    report = run_checks(scratch)
    assert classes(report) == {"drift"}
    assert report.problems[0].where.endswith("gcp-example/rendered")


def test_validate_policy_problem(scratch: RepoTree):
    helpers = scratch.chart / "templates/_helpers-pods.tpl"
    helpers.write_text(helpers.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"))
    report = run_checks(scratch)
    assert "policy" in classes(report)
    assert any("read-only-root" in p.detail for p in report.problems)


def test_validate_render_problem(scratch: RepoTree):
    svc = scratch.chart / "templates/dask/scheduler/service.yaml"
    svc.write_text(svc.read_text() + '\n{{ include "dp.missing" . }}\n')
    report = run_checks(scratch)
    assert "render" in classes(report)


def test_validate_drift_of_other_generated_files(scratch: RepoTree):
    (scratch.chart / "values.schema.json").write_text("{}\n")
    project = scratch.argocd_dir / "appproject.yaml"
    project.write_text(project.read_text() + "# edited\n")
    report = run_checks(scratch)
    assert classes(report) == {"drift"}
    assert {p.where.rsplit("/", 1)[-1] for p in report.problems} == {"values.schema.json", "appproject.yaml"}


def test_validate_names_a_bad_base():
    report_error = CliRunner().invoke(cli, ["validate", "--base", "no-such-ref"])
    assert report_error.exit_code == 2 and "--base no-such-ref: not a commit" in report_error.output


def test_validate_cli_exit_codes(scratch: RepoTree):
    ok = CliRunner().invoke(cli, ["--repo", str(scratch.root), "validate"])
    assert ok.exit_code == 0 and ok.output.startswith("validation passed")
    path = scratch.cluster_file("minikube")
    path.write_text(path.read_text() + "values:\n  dask: {scheduler: {service: {type: Ingress}}}\n")
    bad = CliRunner().invoke(cli, ["--repo", str(scratch.root), "validate", "--markdown"])
    assert bad.exit_code == 1 and "| schema |" in bad.output

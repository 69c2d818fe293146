"""What CI on GitHub runs but this machine cannot (ct, kubeconform, GitHub itself), checked offline: workflows
with actionlint and GitHub's workflow schema, ct.yaml finding the chart, every scenario rendering and validating."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dask_platform.clusters import supported_kubernetes_minors
from dask_platform.crdschema import SchemaToolMissing, is_custom, validate_custom
from dask_platform.policy import check_objects
from tests.support.repo import REPO

REPO_ROOT, CHART_DIR = REPO.root, REPO.chart

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((REPO_ROOT / ".github/workflows").glob("*.yml"))
SCENARIOS = [*sorted((CHART_DIR / "ci").glob("*-values.yaml")), REPO.all_features_values]


def test_actionlint():
    proc = subprocess.run([str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflow_schema():
    proc = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_by_sha_and_permissions_minimal(path: Path):
    text = path.read_text()
    for ref in re.findall(r"uses:\s*([^\s#]+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by SHA"
    for line in re.findall(r"uses:.*", text):
        assert re.search(r"#\s*v\d", line), f"{path.name}: say which version a SHA is: {line}"
    doc = yaml.safe_load(text)
    assert doc["permissions"] == {}, "default to no permissions; jobs ask for what they need"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must declare its permissions"
        assert set(job["permissions"].values()) <= {"read", "write", "none"}
        assert "timeout-minutes" in job


def test_ci_runs_on_values_and_cluster_changes():
    doc = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text())
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads the key "on" as True
    for event in ("pull_request", "push"):
        paths = (triggers.get(event) or {}).get("paths")
        assert paths is None or {"values/**", "clusters/**"} <= set(paths)
    text = (REPO_ROOT / ".github/workflows/ci.yml").read_text()
    assert "ct lint --config ct.yaml --all" in text and "ct install --config ct.yaml --all --namespace dask-ci" in text
    assert "scripts/dev test" in text and "dask-platform validate --base" in text and "GITHUB_STEP_SUMMARY" in text


def test_ct_config_finds_the_chart_and_its_scenarios():
    ct = yaml.safe_load((REPO_ROOT / "ct.yaml").read_text())
    charts = [p.parent for d in ct["chart-dirs"] for p in (REPO_ROOT / d).glob("*/Chart.yaml")]
    assert charts == [CHART_DIR], "a wrong chart-dirs makes ct skip the chart silently"
    assert len(list((CHART_DIR / "ci").glob("*-values.yaml"))) >= 2


def render(helm: Path, values: Path) -> list[dict]:
    out = subprocess.run(
        [str(helm), "template", "ci", str(CHART_DIR), "-f", str(values), "--namespace", "ci"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.helm
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_scenario_lints_renders_and_validates(scenario: Path, helm: Path):
    lint = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART_DIR), "-f", str(scenario)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objects = render(helm, scenario)
    assert any(o["kind"] == "Deployment" for o in objects)
    custom = [o for o in objects if is_custom(o)]
    for minor in supported_kubernetes_minors(REPO):
        for obj in objects:
            if not is_custom(obj):
                kubernetes_validate.validate(obj, f"{minor}.0", strict=True)
    try:
        assert validate_custom(REPO.crd_dir, custom) == [[] for _ in custom]
    except SchemaToolMissing as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    assert check_objects(objects) == []


@pytest.mark.helm
def test_all_features_scenario_turns_everything_on(helm: Path):
    objects = render(helm, REPO.all_features_values)
    kinds = {o["kind"] for o in objects}
    assert {
        "PersistentVolumeClaim",
        "ClusterRole",
        "Deployment",
        "Service",
        "Role",
        "ScaledObject",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PriorityClass",
    } <= kinds
    assert json.dumps(objects).count("cluster-autoscaler") > 3

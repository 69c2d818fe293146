"""helm lint --strict per cloud, and every rendered object valid for every supported Kubernetes minor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from dask_platform.clusters import load_cluster, supported_kubernetes_minors
from dask_platform.values import build_values
from tests.support.repo import REPO

CHART_DIR = REPO.chart

pytestmark = pytest.mark.helm

MINORS = supported_kubernetes_minors(REPO)


def test_supported_minors_are_those_all_three_clouds_support_today():
    """Standard support on EKS, GKE and AKS on 2026-11-30 (sources beside the tags in values.yaml): 1.35 and 1.36."""
    assert MINORS == ["1.35", "1.36"]


@pytest.mark.parametrize("name", REPO.cluster_names())
def test_helm_lint_strict(name: str, helm: Path, tmp_path: Path):
    user = build_values(REPO, load_cluster(REPO, name)).user
    values = tmp_path / "values.json"
    values.write_text(json.dumps(user))
    proc = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART_DIR), "-f", str(values), "--namespace", "dask"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_helm_enforces_the_schema_too(helm: Path):
    proc = subprocess.run(
        [str(helm), "template", "x", str(CHART_DIR), "--set", "dask.workerGroups.default.replicas=-1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "dask.workerGroups.default.replicas" in proc.stderr


@pytest.mark.parametrize("minor", MINORS)
def test_rendered_objects_valid_strict(rendered, minor: str):
    failures = []
    count = 0
    for name, r in rendered.items():
        for obj in r.objects:
            count += 1
            try:
                kubernetes_validate.validate(obj, f"{minor}.0", strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert count > 30
    assert not failures, "\n".join(failures)

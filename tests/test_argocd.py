"""Argo CD manifests: valid against Argo CD's CRD schemas, pointing at what exists, derived from one setting."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
import yaml

from scripts.argocd import build_files, load_settings
from scripts.common import CLUSTERS_DIR, REPO_ROOT
from scripts.crdschema import SchemaToolMissing, validate_custom
from scripts.layers import cluster_names, load_cluster

SETTINGS = load_settings()


def crd_validate(objects: list[dict]) -> list[dict]:
    """Validate custom resources with Argo CD's CRD schemas (scripts/crdschema.py)."""
    try:
        errors = validate_custom(objects)
    except SchemaToolMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return [
        {"kind": o["kind"], "name": o["metadata"]["name"], "errors": e} for o, e in zip(objects, errors, strict=True)
    ]


def argo_objects() -> dict[Path, dict]:
    paths = sorted((CLUSTERS_DIR / "argocd").glob("*.yaml")) + sorted(CLUSTERS_DIR.glob("*/application.yaml"))
    return {p: yaml.safe_load(p.read_text()) for p in paths}


def test_every_argo_manifest_is_valid_against_the_crd_schemas():
    objects = argo_objects()
    assert {o["kind"] for o in objects.values()} == {"AppProject", "ApplicationSet", "Application"}
    results = crd_validate(list(objects.values()))
    assert [r for r in results if r["errors"]] == []


def test_crd_validation_catches_a_bad_manifest():
    app = next(o for o in argo_objects().values() if o["kind"] == "Application")
    app["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
    (result,) = crd_validate([app])
    assert any("prune must be boolean" in e for e in result["errors"])


def test_committed_argo_manifests_are_generated():
    for path, text in build_files().items():
        assert path.read_text() == text, f"{path} is stale: run python scripts/render.py --all"


@pytest.mark.parametrize("name", cluster_names())
def test_application_points_at_the_clusters_rendered_manifests(name: str):
    cluster = load_cluster(name)
    app = yaml.safe_load((cluster.folder / "application.yaml").read_text())
    source = app["spec"]["source"]
    assert (source["repoURL"], source["targetRevision"]) == (SETTINGS.repo_url, SETTINGS.revision)
    rendered = REPO_ROOT / source["path"]
    assert rendered == cluster.rendered_dir and any(rendered.glob("*.yaml"))
    assert app["spec"]["destination"]["namespace"] == cluster.namespace
    assert app["spec"]["project"] == SETTINGS.project
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in policy["syncOptions"]
    assert policy["retry"]["backoff"]["factor"] > 1


def test_applicationset_generates_one_application_per_cluster():
    appset = yaml.safe_load((CLUSTERS_DIR / "argocd/applicationset.yaml").read_text())
    generator = appset["spec"]["generators"][0]["git"]
    assert (generator["repoURL"], generator["revision"]) == (SETTINGS.repo_url, SETTINGS.revision)
    pattern = generator["files"][0]["path"]
    files = [p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("clusters/*/*.yaml")]
    matched = sorted(f for f in files if fnmatch.fnmatch(f, pattern))
    assert matched == [f"clusters/{n}/cluster.yaml" for n in cluster_names()]
    template_path = appset["spec"]["template"]["spec"]["source"]["path"]
    for f in matched:  # {{ .path.path }} is the folder of the matched file
        assert (REPO_ROOT / template_path.replace("{{ .path.path }}", str(Path(f).parent))).is_dir()


def test_appproject_allows_exactly_what_the_clusters_need():
    project = yaml.safe_load((CLUSTERS_DIR / "argocd/appproject.yaml").read_text())["spec"]
    assert project["sourceRepos"] == [SETTINGS.repo_url]
    allowed_ns = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"]}
    allowed_cluster = {(k["group"], k["kind"]) for k in project["clusterResourceWhitelist"]}
    destinations = {(d["server"], d["namespace"]) for d in project["destinations"]}
    assert "*" not in {k for _, k in allowed_ns | allowed_cluster}
    assert allowed_cluster <= {
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("scheduling.k8s.io", "PriorityClass"),
    }
    for name in cluster_names():
        cluster = load_cluster(name)
        for path in cluster.rendered_dir.glob("*.yaml"):
            obj = yaml.safe_load(path.read_text())
            key = (obj["apiVersion"].rpartition("/")[0], obj["kind"])
            assert key in (allowed_ns if obj["metadata"].get("namespace") else allowed_cluster), path
        app = yaml.safe_load((cluster.folder / "application.yaml").read_text())
        assert (app["spec"]["destination"]["server"], cluster.namespace) in destinations


def test_setup_objects_sync_before_workloads():
    early = {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolumeClaim",
        "PriorityClass",
    }
    for path in CLUSTERS_DIR.glob("*/rendered/*.yaml"):
        obj = yaml.safe_load(path.read_text())
        wave = int((obj["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))
        assert (wave < 0) == (obj["kind"] in early), path


@pytest.mark.parametrize("name", cluster_names())
def test_bootstrap_applies_exactly_the_committed_manifests(name: str):
    from click.testing import CliRunner

    from scripts import bootstrap

    result = CliRunner().invoke(bootstrap.main, [name, "--dry-run"])
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.output))
    assert objects[0] == yaml.safe_load((CLUSTERS_DIR / "argocd/appproject.yaml").read_text())
    assert objects[1] == yaml.safe_load((CLUSTERS_DIR / name / "application.yaml").read_text())

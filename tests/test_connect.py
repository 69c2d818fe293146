"""Address resolution, the scheduler Service of a cluster, version comparison and the jobs archive."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from scripts.common import UserError
from scripts.connect import (
    build_jobs_archive,
    jobs_fingerprint,
    normalize_address,
    resolve_target,
    scheduler_service,
    version_table,
)
from scripts.layers import load_cluster


def test_precedence_scheduler_then_cluster_then_environment_then_embedded():
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://env:8786"}
    assert resolve_target("h:1", None, env).address == "tcp://h:1"
    assert resolve_target(None, "minikube", env).kind == "cluster"
    assert resolve_target(None, None, env).address == "tcp://env:8786"
    assert resolve_target(None, None, env).source == "DASK_SCHEDULER_ADDRESS"
    assert resolve_target(None, None, {}).kind == "embedded"
    with pytest.raises(UserError, match="either --scheduler or --cluster"):
        resolve_target("h:1", "minikube", {})


@pytest.mark.parametrize("bad", ["localhost", "tcp://host:port", ":8786"])
def test_bad_addresses(bad: str):
    with pytest.raises(UserError, match="expected tcp://HOST:PORT"):
        normalize_address(bad)


@pytest.mark.parametrize("name", ["minikube", "aws-example", "gcp-example", "azure-example"])
def test_cluster_scheduler_service_comes_from_the_rendered_manifests(name: str):
    ref = scheduler_service(name)
    cluster = load_cluster(name)
    assert ref.namespace == cluster.namespace
    assert ref.name == f"{cluster.release}-scheduler"
    assert ref.port == 8786
    assert ref.selector["app.kubernetes.io/component"] == "scheduler"


def test_unrendered_cluster_is_a_clear_error(tmp_path: Path):
    (tmp_path / "values").mkdir()
    (tmp_path / "values/minikube.yaml").write_text("{}\n")
    (tmp_path / "clusters/c").mkdir(parents=True)
    (tmp_path / "clusters/c/cluster.yaml").write_text("cloud: minikube\nnamespace: d\nkubernetesVersion: '1.32'\n")
    with pytest.raises(UserError, match=r"run python scripts/render\.py c"):
        scheduler_service("c", tmp_path / "clusters")


def versions(client: dict, scheduler: dict, *workers: dict) -> dict:
    def entry(p: dict) -> dict:
        return {
            "packages": {
                "python": "3.11.7.final.0",
                "dask": "2026.8.0",
                "distributed": "2026.8.0",
                "cloudpickle": "3.1.3",
                "scikit-learn": "1.9.1",
                "pandas": "3.1.1",
                "numpy": "2.4.6",
                **p,
            }
        }

    return {
        "client": entry(client),
        "scheduler": entry(scheduler),
        "workers": {f"tcp://w{i}": entry(w) for i, w in enumerate(workers)},
    }


def test_equal_versions_pass():
    report = version_table(versions({}, {}, {}, {}))
    assert report.critical == [] and report.minor == []


def test_a_different_distributed_on_a_worker_is_critical_and_shown():
    report = version_table(versions({}, {}, {}, {"distributed": "2025.3.0"}))
    assert report.critical == ["distributed"]
    table = report.table()
    assert "2025.3.0" in table and "<-- differs" in table
    line = next(row for row in table.splitlines() if row.startswith("distributed"))
    assert "2026.8.0" in line and "2025.3.0" in line


def test_python_patch_releases_do_not_matter_but_minors_do():
    assert version_table(versions({"python": "3.11.9.final.0"}, {}, {})).critical == []
    assert version_table(versions({"python": "3.12.1.final.0"}, {}, {})).critical == ["python"]


def test_numpy_difference_only_warns():
    report = version_table(versions({}, {"numpy": "2.3.0"}, {}))
    assert report.critical == [] and report.minor == ["numpy"]


def test_jobs_archive_holds_the_package(tmp_path: Path):
    archive = build_jobs_archive(tmp_path)
    assert archive.name == f"jobs-{jobs_fingerprint()}.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "jobs/__init__.py" in names and "jobs/rossmann/job.py" in names
    assert all(n.endswith(".py") for n in names)

"""The Dask cluster the rendered manifests describe, booted as local processes (tests/boot.py), runs the
Rossmann job; Jupyter's DASK_SCHEDULER_ADDRESS reaches it; every cloud's rendering gives the same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.common import REPO_ROOT
from scripts.layers import cluster_names
from tests.boot import boot

pytestmark = [pytest.mark.dask, pytest.mark.slow]

JOB = ["rossmann", "--stores", "40", "--search", "small", "--refit-rows", "0", "--no-progress"]


def run_job(address: str, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts/submit.py"),
            *JOB,
            "--scheduler",
            address,
            "--out",
            str(tmp / "results"),
            "--cache",
            str(tmp / "cache"),
        ],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next((tmp / "results").glob("*/summary.json")).read_text())


@pytest.fixture(scope="module")
def summaries(tmp_path_factory) -> dict[str, dict]:
    """The job on the booted cluster of every cluster's rendering (4 clouds)."""
    out = {}
    for name in cluster_names():
        tmp = tmp_path_factory.mktemp(name)
        with boot(REPO_ROOT / "clusters" / name / "rendered", tmp / "pods") as booted:
            out[name] = {
                "summary": run_job(booted.scheduler_address, tmp),
                "workers": booted.workers,
                "address": booted.scheduler_address,
            }
    return out


def test_minikube_manifests_form_a_working_cluster_that_runs_the_job(summaries):
    s = summaries["minikube"]["summary"]
    assert summaries["minikube"]["workers"] == 2  # the Deployment's replicas
    assert s["holdout_rmspe"]["model"] < s["holdout_rmspe"]["baseline"]
    assert "uploaded jobs-" in s["code_shipping"]  # the pods' processes did not have the checkout
    assert s["cluster_threads"] == 2  # --nthreads from limits.cpu = 1, x 2 workers


def test_jupyters_scheduler_address_connects(tmp_path: Path):
    from distributed import Client

    rendered = REPO_ROOT / "clusters/minikube/rendered"
    jupyter = yaml.safe_load((rendered / "deployment-dask-jupyter.yaml").read_text())
    env = {e["name"]: e.get("value") for e in jupyter["spec"]["template"]["spec"]["containers"][0]["env"]}
    with (
        boot(rendered, tmp_path) as booted,
        Client(booted.resolve(env["DASK_SCHEDULER_ADDRESS"]), timeout="10s") as client,
    ):
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        assert len(workers) == 2
        assert {w["name"] for w in workers} == {"dask-worker-default-0", "dask-worker-default-1"}
        assert all(w["memory_limit"] == 2 * 2**30 for w in workers)  # --memory-limit from limits.memory
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_every_cloud_gives_the_same_results(summaries):
    reference = summaries["minikube"]["summary"]
    for name, entry in summaries.items():
        s = entry["summary"]
        assert s["best_params"] == reference["best_params"], name
        assert s["cv_rmspe"] == pytest.approx(reference["cv_rmspe"], rel=1e-6), name
        assert s["holdout_rmspe"]["model"] == pytest.approx(reference["holdout_rmspe"]["model"], rel=1e-6), name
        assert s["scheduler_address"] == entry["address"]
    assert len({e["address"] for e in summaries.values()}) == len(summaries)

"""`scripts/submit.py` (= `dask-platform submit`) for real: an embedded LocalCluster (on the tree --repo names), a
deployed-style scheduler with two workers started as processes (job code uploaded), a worker killed mid-search, an
unreachable scheduler, and Ctrl-C."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dask_platform.cli import main as cli
from dask_platform.cli import submit_group
from dask_platform.errors import UserError
from dask_platform.repo import RepoTree
from dask_platform.submit.run import doctor_report, submit
from dask_platform.submit.target import Connection
from jobs.registry import JOBS, Job
from jobs.rossmann.job import RossmannOptions
from jobs.runtime import option
from jobs.shipping import fingerprint, remote_fingerprints, ship
from testbed.daskproc import free_port, local_dask, run_cli
from tests.support.repo import REPO

pytestmark = [pytest.mark.dask, pytest.mark.slow]


def small_options(tmp: Path, **kw) -> RossmannOptions:
    return RossmannOptions(
        stores=40,
        search="small",
        refit_rows=0,
        out=str(tmp / "results"),
        cache=str(tmp / "cache"),
        progress=False,
        **kw,
    )


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def embedded_summary(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("embedded")
    return submit(REPO, "rossmann", small_options(tmp), Connection(workers=2, threads_per_worker=1), quiet, environ={})


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote")
    with local_dask(tmp / "cluster") as cluster:
        lines: list[str] = []
        summary = submit(
            REPO, "rossmann", small_options(tmp), Connection(scheduler=cluster.address), lines.append, environ={}
        )
        yield cluster, summary, lines


def test_embedded_run_beats_the_baseline_and_writes_results(embedded_summary):
    s = embedded_summary
    assert s["holdout_rmspe"]["model"] < s["holdout_rmspe"]["baseline"]
    folder = Path(s["run_folder"])
    assert json.loads((folder / "summary.json").read_text())["best_params"] == s["best_params"]
    # the default strategy is halving: a row per candidate x rung reached (4 at 20 epochs, the best 2 at 40)
    assert s["search"]["strategy"] == "halving" and s["search"]["work"]["schedule"]["rungs"] == [20, 40]
    assert (folder / "cv_results.csv").read_text().count("\n") == 4 + 2 + 1
    assert (folder / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert s["n_candidates"] == 4 and s["search"]["folds"] == 2
    assert 0 < s["parallel_efficiency"] <= 1.05
    assert "embedded" in s["code_shipping"]
    assert not list(folder.parent.glob(".*tmp-*"))


def test_remote_scheduler_gets_the_code_uploaded_and_gives_the_same_result(remote_run, embedded_summary):
    cluster, summary, lines = remote_run
    assert summary["scheduler_address"] == cluster.address
    assert "uploaded jobs-" in summary["code_shipping"] and "2 workers" in summary["code_shipping"]
    assert any(line.startswith("code: jobs ") for line in lines)
    assert summary["best_params"] == embedded_summary["best_params"]
    assert summary["cv_rmspe"] == pytest.approx(embedded_summary["cv_rmspe"], rel=1e-6)
    assert summary["holdout_rmspe"]["model"] < summary["holdout_rmspe"]["baseline"]


def test_uploaded_code_is_found_the_second_time(remote_run):
    from distributed import Client

    cluster, _, _ = remote_run
    with Client(cluster.address) as client:
        assert set(remote_fingerprints(client).values()) == {fingerprint()}
        assert "already importable" in ship(client)


def test_doctor_compares_this_machine_the_pins_and_the_cluster(remote_run):
    cluster, _, _ = remote_run
    report = doctor_report(REPO, Connection(scheduler=cluster.address), {})
    text = report.text()
    assert not report.problems, text
    header = text.splitlines()[0].split()
    assert header == ["package", "pyproject", "pin", "this", "machine", "scheduler", "workers"]
    assert "image the chart deploys: ghcr.io/dask-platform/dask-platform:" in text
    result = CliRunner().invoke(cli, ["doctor"], env={"DASK_SCHEDULER_ADDRESS": cluster.address})
    assert result.exit_code == 0, result.output
    assert "scheduler" in result.output.splitlines()[0]


@dataclass(frozen=True)
class ProbeOptions:
    variable: str = option("MALLOC_TRIM_THRESHOLD_", "The environment variable to read on every worker.")


def probe(client: Any, options: ProbeOptions, scheduler_address: str, code_shipping: str) -> dict[str, Any]:
    """A job that only reports a variable of the workers' environment (the lambda is pickled by value)."""
    name = options.variable
    seen = client.run(lambda: __import__("os").environ.get(name))
    return {"seen": sorted(set(seen.values())), "workers": len(seen)}


def test_repo_reaches_the_embedded_cluster(scratch: RepoTree, monkeypatch):
    """`dask-platform --repo TREE submit JOB` starts the embedded cluster with TREE's Dask configuration
    (docker/dask.yaml): submit once started it with the checkout's, whatever --repo said."""
    config = scratch.dask_config.read_text()
    assert config.count("MALLOC_TRIM_THRESHOLD_: 4194304") == 1
    scratch.dask_config.write_text(config.replace("MALLOC_TRIM_THRESHOLD_: 4194304", "MALLOC_TRIM_THRESHOLD_: 1048576"))
    monkeypatch.setitem(JOBS, "probe", lambda: Job("probe", "a probe", ProbeOptions, probe, json.dumps))
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    args = ["--repo", str(scratch.root), "submit", "probe", "--workers", "1", "--memory-limit", "1GiB"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {"seen": ["1048576"], "workers": 1}


def test_search_survives_a_killed_worker(tmp_path: Path, remote_run):
    """The job runs in its own process (as a user would run it); this test watches the scheduler and kills a
    worker as soon as the first fit or score of the search is done, while the others are not."""
    from distributed import Client

    _, reference, _ = remote_run
    with local_dask(tmp_path / "cluster", n_workers=2) as cluster:
        proc = run_cli(["--scheduler", cluster.address, "--no-progress"], tmp_path)
        killed = False
        try:
            with Client(cluster.address) as watcher:
                deadline = time.time() + 180
                while proc.poll() is None and time.time() < deadline:
                    done = watcher.run_on_scheduler(
                        lambda dask_scheduler: sum(
                            1
                            for ts in dask_scheduler.tasks.values()
                            if ("score" in str(ts.key) or "fit" in str(ts.key)) and ts.state == "memory"
                        )
                    )
                    if done >= 1:
                        cluster.kill_worker(1)
                        killed = True
                        break
                    time.sleep(0.2)
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert killed, "the search finished before a worker could be killed"
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    assert summary["best_params"] == reference["best_params"]
    assert summary["cv_rmspe"] == pytest.approx(reference["cv_rmspe"], rel=1e-6)


def test_a_closed_port_is_reported_at_once_not_after_the_connect_timeout(tmp_path: Path):
    """A refusal is known from the first connection attempt: no waiting out the 8 s connect timeout."""
    port = free_port()
    start = time.perf_counter()
    with pytest.raises(
        UserError, match=rf"scheduler at tcp://127.0.0.1:{port} refused the connection: nothing listens"
    ):
        submit(REPO, "rossmann", small_options(tmp_path), Connection(scheduler=f"127.0.0.1:{port}"), quiet, environ={})
    assert time.perf_counter() - start < 5


def test_cli_unreachable_scheduler_exit_code(tmp_path: Path):
    port = free_port()
    result = CliRunner().invoke(
        submit_group,
        ["rossmann", "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "2", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "error: the Dask scheduler at" in result.output and "refused the connection" in result.output


def test_cli_lists_jobs_and_their_options():
    runner = CliRunner()
    listed = runner.invoke(submit_group, ["--list"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.output.splitlines()] == ["bigdata", "rossmann"]
    helped = runner.invoke(submit_group, ["rossmann", "--help"])
    assert helped.exit_code == 0
    for flag in ("--data", "--search", "--strategy", "--scheduler", "--cluster", "--sample-rows"):
        assert flag in helped.output


def test_cli_bad_search_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "space.yaml"
    bad.write_text("grid: {mlp__nope: [1]}\n")
    result = CliRunner().invoke(submit_group, ["rossmann", "--search", str(bad), "--stores", "5"])
    assert result.exit_code == 2
    assert "key grid.mlp__nope" in result.output


def test_ctrl_c_cancels_and_exits_130(tmp_path: Path):
    proc = run_cli(["--workers", "2"], tmp_path)
    try:
        for line in proc.stdout:  # wait until the job runs on the cluster
            if line.startswith("running rossmann"):
                break
        time.sleep(6)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: running tasks cancelled" in err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())

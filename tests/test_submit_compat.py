"""The version table: which differences between client, scheduler and workers break pickling, which only warn."""

from __future__ import annotations

import pytest

from dask_platform.submit.compat import COMPARED, is_critical, version_table
from jobs.runtime import VERSIONED_PACKAGES


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


def test_a_cluster_without_workers_compares_client_and_scheduler_only():
    """No workers (scaled to zero, or not yet started) is not a difference in every package."""
    assert version_table(versions({}, {})).critical == []
    report = version_table(versions({}, {"distributed": "2025.3.0"}))
    assert report.critical == ["distributed"]


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


def test_one_list_of_compared_packages():
    assert ("python", *VERSIONED_PACKAGES) == COMPARED
    assert [p for p in COMPARED if is_critical(p)] == [
        "python",
        "dask",
        "distributed",
        "cloudpickle",
        "scikit-learn",
        "pandas",
    ]


# An older distributed, as on a cluster not yet upgraded: its scheduler refuses the current Client's first call.
OLD_DISTRIBUTED = "2025.3.0"


@pytest.fixture(scope="module")
def old_scheduler(tmp_path_factory):
    """A real `dask scheduler` from distributed 2025.3.0 in a side virtual environment (pip, as the machine's own
    configuration says), on 127.0.0.1."""
    import subprocess
    import sys

    from testbed.daskproc import free_port, wait_for_port

    env_dir = tmp_path_factory.mktemp("old-distributed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    pins = [f"distributed=={OLD_DISTRIBUTED}", f"dask=={OLD_DISTRIBUTED}"]
    pip = [str(env_dir / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins]
    subprocess.run(pip, check=True, capture_output=True)
    port = free_port()
    log = env_dir.parent / "scheduler.log"
    command = [str(env_dir / "bin/dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen([*command, "--dashboard-address", ":0"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.dask
@pytest.mark.slow
def test_an_older_scheduler_gets_the_version_table_not_a_traceback(old_scheduler, tmp_path):
    import subprocess
    import sys
    import time

    from testbed.daskproc import small_run_args

    start = time.perf_counter()
    args = [sys.executable, "-m", "dask_platform", "submit", *small_run_args(tmp_path, "--scheduler", old_scheduler)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    took = time.perf_counter() - start
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    first, *table = proc.stderr.strip().splitlines()
    assert first.startswith("error: client and cluster versions differ in dask, distributed"), first
    assert "failed the client's first call" in first
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["distributed"][2] == OLD_DISTRIBUTED and rows["distributed"][-1] == "differs"
    assert took < 15, took  # the bound; typically 5 s here, mostly imports
    assert not list((tmp_path / "results").glob("*"))

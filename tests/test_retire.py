"""Scale-down without losing results, for real: the worker's preStop hook from the rendered manifest retires it
through the scheduler, then the worker gets SIGTERM (what Kubernetes does when a replica is removed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from testbed.daskproc import local_dask
from tests.support.repo import REPO

pytestmark = [pytest.mark.dask, pytest.mark.slow]


def pre_stop_command() -> list[str]:
    worker = yaml.safe_load((REPO.rendered_dir("minikube") / "deployment-dask-worker-default.yaml").read_text())
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    return container["lifecycle"]["preStop"]["exec"]["command"]


def test_retired_worker_hands_over_its_results(tmp_path: Path):
    from distributed import Client

    def make_block(i: int, log: str) -> bytes:  # defined here: shipped to the workers by value
        with open(log, "a") as fh:  # one line per execution: a recomputation would add lines
            fh.write(f"{i}\n")
        return bytes([i % 256]) * 2_000_000

    def total(blocks: list[bytes]) -> int:
        return sum(len(b) for b in blocks)

    command = pre_stop_command()
    assert command[0] == "python"
    log = tmp_path / "executions.log"
    with local_dask(tmp_path / "cluster", n_workers=2, nanny=True) as cluster, Client(cluster.address) as client:
        blocks = client.map(make_block, range(20), log=str(log), pure=False)
        client.gather(blocks)
        holders = client.who_has(blocks)
        names = {w["name"]: a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        victim = names["w1"]
        on_victim = [k for k, workers in holders.items() if victim in workers]
        assert on_victim, "the victim must hold results for the test to mean anything"

        # Kubernetes: run the preStop hook (from the manifest, with the container's env), then SIGTERM.
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": cluster.address, "DASK_WORKER_NAME": "w1"}
        hook = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=120)
        assert hook.returncode == 0, hook.stderr
        cluster.workers[1].send_signal(signal.SIGTERM)
        cluster.workers[1].wait(60)

        deadline = time.time() + 30
        while victim in client.scheduler_info(n_workers=-1)["workers"] and time.time() < deadline:
            time.sleep(0.2)
        assert victim not in client.scheduler_info(n_workers=-1)["workers"]
        assert all(f.status == "finished" for f in blocks), "a result was lost"
        assert client.submit(total, blocks).result() == 20 * 2_000_000
        assert sorted(int(x) for x in log.read_text().split()) == list(range(20)), "something was recomputed"
        survivors = set().union(*client.who_has(blocks).values())
        assert survivors and victim not in survivors


def test_without_the_hook_a_sigterm_loses_results(tmp_path: Path):
    """The control: SIGTERM alone (no preStop) drops the worker's results, so they are recomputed. This is
    what the hook prevents."""
    from distributed import Client

    def make_block(i: int, log: str) -> bytes:
        with open(log, "a") as fh:
            fh.write(f"{i}\n")
        return bytes([i % 256]) * 2_000_000

    log = tmp_path / "executions.log"
    with local_dask(tmp_path / "cluster", n_workers=2, nanny=True) as cluster, Client(cluster.address) as client:
        blocks = client.map(make_block, range(20), log=str(log), pure=False)
        client.gather(blocks)
        cluster.workers[1].send_signal(signal.SIGTERM)
        cluster.workers[1].wait(60)
        client.gather(blocks)
        assert len(log.read_text().split()) > 20, "results of the terminated worker were not recomputed"

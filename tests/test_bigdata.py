"""The big-data job on an embedded cluster: partial_fit over Parquet partitions, bounded worker memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dask_platform.submit.run import submit
from dask_platform.submit.target import Connection
from jobs.bigdata.job import BigDataOptions
from tests.support.repo import REPO

pytestmark = [pytest.mark.dask, pytest.mark.slow]


def test_bigdata_learns_partition_by_partition_within_worker_memory(tmp_path: Path):
    opts = BigDataOptions(scale=1, epochs=1, storage=str(tmp_path / "data"), out=str(tmp_path / "out"), progress=False)
    conn = Connection(workers=2, threads_per_worker=1, memory_limit="1GiB")
    summary = submit(REPO, "bigdata", opts, conn, lambda _: None, environ={})
    assert summary["partitions"] == 28 and summary["rows"] > 800_000
    assert len(list((tmp_path / "data").rglob("part-*.parquet"))) == 28
    assert summary["holdout_rmspe"] < 0.2
    assert summary["worker_memory_limit_bytes"] == 2**30
    assert summary["peak_worker_rss_bytes"] < 2**30
    assert json.loads((Path(summary["run_folder"]) / "summary.json").read_text())["rows"] == summary["rows"]


def test_a_cached_partition_without_a_column_the_job_reads_is_written_again(tmp_path: Path):
    """Partitions written before a feature change (here: without Years) are regenerated, not read and failed on."""
    import pandas as pd

    from jobs.bigdata.job import write_partition
    from jobs.storage import parse_location

    folder = parse_location(str(tmp_path))
    first = write_partition(folder, 0, seed=0)
    old = pd.read_parquet(tmp_path / "part-00000.parquet").drop(columns=["Years"])
    old.to_parquet(tmp_path / "part-00000.parquet")
    again = write_partition(folder, 0, seed=0)
    assert "Years" in pd.read_parquet(tmp_path / "part-00000.parquet").columns
    assert again["rows"] == first["rows"]

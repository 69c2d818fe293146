"""jobs/storage.py and both jobs on object storage: real S3 (moto's server) and Azure Blob (Azurite) servers on
127.0.0.1, an embedded cluster and `dask scheduler` + `dask worker` processes, and the one-line errors.

gs:// is covered only up to the network: no Google Cloud Storage emulator is published by Google on PyPI, npm or
Debian (fake-gcs-server is a Go binary from GitHub releases and Docker Hub), so the gs:// test checks that an
unreachable endpoint gives the same one-line error; reading and writing through gcsfs is not exercised here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from dask_platform.submit.embedded import process_environ
from dask_platform.submit.run import submit
from dask_platform.submit.target import Connection
from jobs.bigdata.job import BigDataOptions
from jobs.rossmann.data import SyntheticSpec, generate, write_kaggle_csv
from jobs.rossmann.job import RossmannOptions
from jobs.storage import Location, StorageError, parse_storage_options, unseen_local_problem
from testbed.daskproc import free_port, local_dask
from testbed.storage import (
    StorageServer,
    azurite,
    azurite_available,
    connection_string,
    moto_s3,
    moto_s3_strict,
)
from tests.support.repo import REPO

CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AZURE_STORAGE_CONNECTION_STRING")


# --- options and locations (no server) ----------------------------------------------------------------------------


def test_storage_options_are_typed_and_dotted_keys_nest():
    parsed = parse_storage_options("endpoint_url=http://127.0.0.1:9000, anon=false,client_kwargs.region_name=eu-west-1")
    assert parsed == {
        "endpoint_url": "http://127.0.0.1:9000",
        "anon": False,
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert parse_storage_options("") == {}
    assert parse_storage_options("block_size=1048576") == {"block_size": 1048576}


def test_storage_options_without_a_value_are_refused_with_an_example():
    with pytest.raises(StorageError, match=r"--storage-options 'anon': expected key=value pairs .* got 'anon'"):
        parse_storage_options("anon")


def test_children_of_urls_and_folders():
    assert Location("s3://b/prefix/").child("train.csv").url == "s3://b/prefix/train.csv"
    assert Location("data").child("a", "b.csv").url == os.path.join("data", "a", "b.csv")
    assert Location("abfs://c/p").protocol == "abfs" and not Location("abfs://c/p").is_local
    assert Location("/tmp/x").is_local and Location("file:///tmp/x").is_local


def test_azure_storage_uses_the_environments_credentials_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_ANON", raising=False)
    assert Location("abfs://c/p").filesystem_options() == {"anon": False}  # adlfs alone would be anonymous
    assert Location("abfs://c/p", {"anon": True}).filesystem_options() == {"anon": True}
    assert Location("s3://b/p").filesystem_options() == {}
    monkeypatch.setenv("AZURE_STORAGE_ANON", "true")
    assert Location("abfs://c/p").filesystem_options() == {}


def test_a_local_folder_is_refused_when_the_workers_run_elsewhere():
    here = Location("/data/bigdata")
    problem = unseen_local_problem(here, "--storage", "laptop", ["worker-a", "laptop", "worker-b"])
    assert problem == (
        "--storage /data/bigdata: a folder on this machine (laptop), but the workers run on worker-a, worker-b and "
        "cannot see it; pass an object-storage URL they can reach (s3://bucket/prefix, gs://bucket/prefix or "
        "abfs://container/prefix)"
    )
    assert unseen_local_problem(here, "--storage", "laptop", ["laptop", "laptop"]) is None
    assert unseen_local_problem(Location("s3://b/p"), "--storage", "laptop", ["worker-a"]) is None


# --- real servers ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kaggle_folder(tmp_path_factory) -> Path:
    """Small Kaggle-format CSVs (30 stores x 400 days)."""
    folder = tmp_path_factory.mktemp("kaggle")
    write_kaggle_csv(*generate(SyntheticSpec(stores=30, days=400, seed=1)), folder)
    return folder


@pytest.fixture(scope="module", params=["s3", "abfs"])
def server(request, tmp_path_factory, kaggle_folder) -> Iterator[StorageServer]:
    """A real storage server with the Kaggle CSVs under kaggle/ in its bucket (container)."""
    workdir = tmp_path_factory.mktemp(f"{request.param}-server")
    if request.param == "abfs" and (reason := azurite_available()):
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    start = moto_s3 if request.param == "s3" else azurite
    with start(workdir) as srv, process_environ(srv.env):
        fs, path = fsspec.core.url_to_fs(srv.url("kaggle"), skip_instance_cache=True)
        for name in ("train.csv", "store.csv"):
            fs.put_file(str(kaggle_folder / name), f"{path}/{name}")
        yield srv


def objects(srv: StorageServer, prefix: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(srv.url(prefix), skip_instance_cache=True)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(path))


def csv_rows(folder: Path) -> int:
    return (folder / "train.csv").read_text().count("\n") - 1


def small_rossmann(tmp: Path, data: str) -> RossmannOptions:
    return RossmannOptions(data=data, search="small", refit_rows=20_000, out=str(tmp / "out"), progress=False)


def small_bigdata(tmp: Path, storage: str) -> BigDataOptions:
    return BigDataOptions(stores=80, epochs=1, storage=storage, out=str(tmp / "out"), progress=False)


EMBEDDED = Connection(workers=2, threads_per_worker=1, memory_limit="1GiB")


@pytest.mark.dask
def test_both_jobs_on_an_embedded_cluster(server: StorageServer, kaggle_folder: Path, tmp_path: Path):
    bigdata = submit(REPO, "bigdata", small_bigdata(tmp_path, server.url("bd")), EMBEDDED, print, environ={})
    folder = "bd/scale1-stores80-seed0"
    assert bigdata["data_folder"] == server.url(folder) and bigdata["partitions"] == 2
    assert objects(server, folder) == ["part-00000.parquet", "part-00001.parquet"]  # and no probe marker left
    assert bigdata["holdout_rmspe"] < 0.2

    from_url = submit(REPO, "rossmann", small_rossmann(tmp_path, server.url("kaggle")), EMBEDDED, print, environ={})
    from_folder = submit(REPO, "rossmann", small_rossmann(tmp_path, str(kaggle_folder)), EMBEDDED, print, environ={})
    assert from_url["data"] == f"kaggle:{server.url('kaggle')}"
    assert from_url["rows"] == from_folder["rows"]
    assert from_url["rows"]["train_csv"] == csv_rows(kaggle_folder)
    assert from_url["best_params"] == from_folder["best_params"]
    assert from_url["cv_rmspe"] == pytest.approx(from_folder["cv_rmspe"], rel=1e-6)


@pytest.mark.dask
@pytest.mark.slow
def test_both_jobs_on_dask_processes_whose_workers_hold_the_credentials(
    server: StorageServer, kaggle_folder: Path, tmp_path: Path
):
    """The client has no credentials at all: the workers read and write with their own (as pods do)."""
    with (
        local_dask(tmp_path / "cluster", extra_env=server.env) as cluster,
        process_environ(dict.fromkeys(CREDENTIAL_VARS)),
    ):
        conn = Connection(scheduler=cluster.address)
        bigdata = submit(REPO, "bigdata", small_bigdata(tmp_path, server.url("remote")), conn, print, environ={})
        rossmann = submit(REPO, "rossmann", small_rossmann(tmp_path, server.url("kaggle")), conn, print, environ={})
    assert bigdata["partitions"] == 2 and bigdata["scheduler_address"] == cluster.address
    assert rossmann["rows"]["train_csv"] == csv_rows(kaggle_folder)
    assert objects(server, "remote/scale1-stores80-seed0") == ["part-00000.parquet", "part-00001.parquet"]


# --- errors, as a user sees them ----------------------------------------------------------------------------------


def run_job(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``scripts/submit.py`` as its own process on a 2-worker embedded cluster, with ``env`` as its credentials."""
    tmp.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS and k != "DASK_SCHEDULER_ADDRESS"}
    cmd = [sys.executable, str(REPO.root / "scripts/submit.py"), *args, "--out", str(tmp / "out"), "--workers", "2"]
    return subprocess.run(cmd, cwd=tmp, env=clean | env, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, tmp: Path, *expected: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp / "out").exists() or not any((tmp / "out").iterdir())  # no run folder, not even a staging one


@pytest.mark.dask
def test_a_missing_bucket_is_one_line(server: StorageServer, tmp_path: Path):
    missing = server.url("nope").replace(server.bucket_url.split("://")[1], "no-such-bucket")
    result = run_job(tmp_path, server.env, "bigdata", "--stores", "40", "--storage", missing)
    assert_one_line_error(result, tmp_path, missing, "not found (does the bucket or container exist?)")


@pytest.mark.dask
def test_a_missing_data_file_is_one_line(server: StorageServer, tmp_path: Path):
    result = run_job(tmp_path, server.env, "rossmann", "--data", server.url("empty"), "--search", "small")
    assert_one_line_error(result, tmp_path, f"{server.url('empty', 'train.csv')}: not found")


@pytest.mark.dask
@pytest.mark.slow
def test_an_unreachable_endpoint_is_one_line(server: StorageServer, tmp_path: Path):
    closed = f"127.0.0.1:{free_port()}"
    host = server.endpoint.split("//", 1)[1].split("/", 1)[0]
    env = {k: v.replace(host, closed) for k, v in server.env.items()}
    result = run_job(tmp_path, env, "bigdata", "--stores", "40", "--storage", server.url("bd"))
    assert_one_line_error(result, tmp_path, server.url("bd", "scale1-stores40-seed0"), "cannot be reached")


@pytest.mark.dask
@pytest.mark.slow
def test_an_unreachable_gcs_endpoint_is_one_line(tmp_path: Path):
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}"}
    result = run_job(
        tmp_path, env, "rossmann", "--data", "gs://team-bucket/rossmann", "--storage-options", "token=anon"
    )
    assert_one_line_error(result, tmp_path, "gs://team-bucket/rossmann", "cannot be reached")


@pytest.mark.dask
def test_wrong_credentials_are_one_line(tmp_path: Path):
    with moto_s3_strict(tmp_path / "moto") as strict:
        good = run_job(tmp_path / "good", strict.env, "bigdata", "--stores", "40", "--storage", strict.url("bd"))
        assert good.returncode == 0, good.stderr[-3000:]
        wrong = strict.env | {"AWS_SECRET_ACCESS_KEY": "not-the-key"}
        result = run_job(tmp_path / "bad", wrong, "bigdata", "--stores", "40", "--storage", strict.url("bd2"))
        assert_one_line_error(result, tmp_path / "bad", strict.url("bd2"), "access denied")
    if reason := azurite_available():
        pytest.skip(reason)
    with azurite(tmp_path / "azurite") as az:
        wrong = {"AZURE_STORAGE_CONNECTION_STRING": connection_string(az.endpoint, "d3Jvbmcta2V5" * 7 + "AA==")}
        result = run_job(tmp_path / "bad-az", wrong, "rossmann", "--data", az.url("kaggle"))
        assert_one_line_error(result, tmp_path / "bad-az", az.url("kaggle"), "access denied")

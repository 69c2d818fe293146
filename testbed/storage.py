"""Real object-storage servers on 127.0.0.1 for tests and benchmarks: moto's standalone S3 server (what s3fs's own
tests use) and Azure's official storage emulator Azurite (npm, installed by scripts/dev into scripts/emulators).

Each server runs as its own process on a free port. Credentials reach the code under test the way they reach it
on a laptop: through the environment variables botocore and adlfs read (``env``), never through job options."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from testbed import CHECKOUT
from testbed.daskproc import free_port, wait_for_port

AZURITE = CHECKOUT / "scripts" / "emulators" / "node_modules" / ".bin" / "azurite-blob"

# Azurite's well-known development account (Azure/Azurite README, "Default Storage Account"): public by design.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class StorageServer:
    """A running server: its endpoint, the environment that gives a client valid credentials, and the URL of a
    bucket (container) that exists on it."""

    name: str
    endpoint: str
    env: dict[str, str]
    bucket_url: str
    proc: subprocess.Popen = field(repr=False)

    def url(self, *parts: str) -> str:
        return "/".join([self.bucket_url.rstrip("/"), *parts])


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def moto_s3(workdir: Path, bucket: str = "dask-platform-test") -> Iterator[StorageServer]:
    """moto's S3 server with one bucket. Any access key is accepted unless the server enforces IAM, so the
    wrong-credentials case uses a server started with ``strict=True`` (see ``moto_s3_strict``)."""
    with _moto(workdir, {}) as (endpoint, proc):
        env = s3_env(endpoint, "testing", "testing")
        _make_bucket(env, bucket)
        yield StorageServer("s3", endpoint, env, f"s3://{bucket}", proc)


@contextlib.contextmanager
def _moto(workdir: Path, extra_env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    log = workdir / f"moto-{port}.log"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **extra_env}
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        _stop(proc)


def s3_env(endpoint: str, key_id: str, secret: str) -> dict[str, str]:
    """The variables botocore reads: what a laptop's environment would hold for this server."""
    return {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }


def _make_bucket(env: dict[str, str], bucket: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    s3.create_bucket(Bucket=bucket)


@contextlib.contextmanager
def moto_s3_strict(workdir: Path, bucket: str = "dask-platform-test") -> Iterator[StorageServer]:
    """moto's S3 server enforcing IAM authentication (INITIAL_NO_AUTH_ACTION_COUNT: moto's documented switch):
    only an access key created through its IAM API is accepted. ``env`` holds that key."""
    import boto3

    with _moto(workdir, {"INITIAL_NO_AUTH_ACTION_COUNT": "4"}) as (endpoint, proc):
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        keys = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
        iam = boto3.client("iam", **admin, **keys)
        iam.create_user(UserName="team")  # the 4 unauthenticated calls: the user, its key, its policy, the bucket
        key = iam.create_access_key(UserName="team")["AccessKey"]
        iam.put_user_policy(
            UserName="team",
            PolicyName="bucket",
            PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
            '"Resource": "*"}]}',
        )
        env = s3_env(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        boto3.client("s3", **admin, **keys).create_bucket(Bucket=bucket)
        yield StorageServer("s3-strict", endpoint, env, f"s3://{bucket}", proc)


def azurite_available() -> str | None:
    """Why Azurite cannot run here, or None."""
    if not shutil.which("node"):
        return "node is not installed (scripts/dev installs nodejs)"
    if not AZURITE.exists():
        return f"{AZURITE} is missing (scripts/dev installs scripts/emulators with npm ci)"
    return None


@contextlib.contextmanager
def azurite(workdir: Path, container: str = "dask-platform-test") -> Iterator[StorageServer]:
    """Azurite's blob service with one container; ``env`` holds the development account's connection string."""
    port = free_port()
    data = workdir / f"azurite-{port}"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / f"azurite-{port}.log"
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data)]
    cmd += ["--skipApiVersionCheck", "--silent"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string(endpoint, AZURITE_KEY)}
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(env["AZURE_STORAGE_CONNECTION_STRING"]).create_container(container)
        yield StorageServer("abfs", endpoint, env, f"abfs://{container}", proc)
    finally:
        _stop(proc)


def connection_string(endpoint: str, key: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};BlobEndpoint={endpoint};"

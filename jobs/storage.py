"""Where a job's data lives: a local folder or an object-storage URL (s3://, gs://, abfs://, anything fsspec
knows), and the one-line errors when it cannot be reached.

Credentials are never job options: each backend takes them from the environment it runs in, the same chain its
cloud's SDK uses (on a cluster the pods' identity: EKS IRSA, GKE and Azure Workload Identity; on a laptop the
usual environment variables or profiles). Job options carry only where and how to connect (``--storage-options``:
endpoint, region, anonymous access).

Runs on the workers (tasks open files through a ``Location``), so nothing here imports the tooling.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fsspec

T = TypeVar("T")
PROBE_TIMEOUT_S = 20.0  # an unreachable endpoint makes gcsfs and azure-core retry for minutes (measured: 130 s, 85 s)
URL_EXAMPLES = "s3://bucket/prefix, gs://bucket/prefix or abfs://container/prefix"


# Backend options that make a backend take the credentials of the environment it runs in. adlfs is anonymous unless
# told otherwise (adlfs/spec.py: anon defaults to AZURE_STORAGE_ANON, "true"); with anon=False it uses a connection
# string or key from the environment if there is one, else azure-identity's DefaultAzureCredential, which picks up
# Azure Workload Identity in a pod (adlfs docs/index.md, "set anon=False and let adlfs resolve credentials").
# s3fs (botocore's chain: IRSA's web identity token, variables, profiles) and gcsfs (google-auth: the GKE metadata
# server, ADC) do so by default.
ENVIRONMENT_CREDENTIALS: dict[str, dict[str, Any]] = {"abfs": {"anon": False}, "az": {"anon": False}}


class StorageError(ValueError):
    """A storage location cannot be used; the message names the URL and what to do, in one line."""


@dataclass(frozen=True)
class Location:
    """A folder: a local path or an fsspec URL, with the storage options its file system is opened with."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0] if "://" in self.url else "file"

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    def child(self, *names: str) -> Location:
        if self.is_local:
            return Location(os.path.join(self.url, *names), self.options)
        return Location("/".join([self.url.rstrip("/"), *names]), self.options)

    def filesystem_options(self) -> dict[str, Any]:
        """The storage options with the backend defaults that make it use this environment's credentials."""
        defaults = dict(ENVIRONMENT_CREDENTIALS.get(self.protocol, {}))
        if self.protocol in ("abfs", "az") and "AZURE_STORAGE_ANON" in os.environ:
            defaults = {}  # the variable says it; adlfs reads it
        return defaults | self.options

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The file system and the path in it. A new instance each time: fsspec's cache would otherwise keep
        credentials and endpoints read from the environment of an earlier call."""
        return fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **self.filesystem_options())

    def exists(self) -> bool:
        with storage_errors(self):
            fs, path = self.filesystem()
            return fs.exists(path)

    def write_bytes(self, data: bytes) -> None:
        """All or nothing: a local file is written beside and renamed into place; an object is one PUT (or a
        multipart upload that is only completed at the end)."""
        with storage_errors(self):
            fs, path = self.filesystem()
            if self.is_local:
                fs.makedirs(fs._parent(path), exist_ok=True)
                tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
                fs.pipe_file(tmp, data)
                fs.mv(tmp, path)
            else:
                fs.pipe_file(path, data)

    def read_bytes(self) -> bytes:
        with storage_errors(self):
            fs, path = self.filesystem()
            return fs.cat_file(path)


def parse_location(url: str, options: str = "") -> Location:
    """``url`` with ``--storage-options`` text: comma-separated key=value pairs; a dotted key sets a nested
    option (client_kwargs.region_name=eu-west-1); true/false and numbers are typed."""
    return Location(url, parse_storage_options(options))


def parse_storage_options(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StorageError(
                f"--storage-options {text!r}: expected key=value pairs separated by commas "
                f"(e.g. endpoint_url=https://storage.example:9000,anon=false), got {pair!r}"
            )
        *parents, last = key.strip().split(".")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = _typed(value.strip())
    return out


def _typed(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


# --- errors -------------------------------------------------------------------------------------------------------

# Exception class names (the backends' own classes: importing them would load every backend) by what they mean.
_UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ServiceRequestError", "ClientConnectorError"}
_UNREACHABLE |= {"ClientConnectorDNSError", "ConnectionRefusedError", "ServerTimeoutError", "TransportError"}
_DENIED = {"PermissionError", "ClientAuthenticationError", "RefreshError", "DefaultCredentialsError"}
_NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialUnavailableError"}


def describe(location: Location, exc: BaseException) -> str:
    """One line: the URL, what went wrong in words a user can act on, the backend's own message."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    where = location.url
    if names & _NO_CREDENTIALS:
        what = "no credentials found in this environment (the pod's cloud identity, or the usual variables)"
    elif names & _DENIED or status in (401, 403):
        what = "access denied: the credentials of this environment may not use it"
    elif names & _UNREACHABLE or isinstance(exc, TimeoutError):
        what = "the storage endpoint cannot be reached"
    elif isinstance(exc, FileNotFoundError) or "ResourceNotFoundError" in names or status == 404:
        what = "not found (does the bucket or container exist?)"
    else:
        what = f"cannot be used ({type(exc).__name__})"
    return f"{where}: {what}: {detail}"


@contextmanager
def storage_errors(location: Location) -> Iterator[None]:
    """Turn whatever a storage backend raises into a StorageError naming the location."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # the backends raise OSError, botocore, aiohttp and azure-core errors alike
        raise StorageError(describe(location, exc)) from None


def within(seconds: float, location: Location, call: Callable[[], T]) -> T:
    """``call()``, or a StorageError once ``seconds`` pass without an answer (a daemon thread: a backend that
    retries for minutes must not hold the process open)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="storage-probe")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise StorageError(f"{location.url}: the storage endpoint cannot be reached: no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- probes (run on a worker: with the identity that will do the work) --------------------------------------------


def probe_readable(location: Location, names: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Each of ``names`` exists under ``location`` and can be opened; else a StorageError naming the first."""

    def check() -> None:
        for name in names:
            child = location.child(name)
            with storage_errors(child):
                fs, path = child.filesystem()
                try:  # info() raises what went wrong; isfile() answers False to a refused request too
                    fs.info(path)
                except FileNotFoundError:
                    raise StorageError(f"{child.url}: not found (expected the file {name} in {location.url})") from None
                with fs.open(path, "rb") as f:
                    f.read(1)

    within(timeout_s, location, check)


def probe_writable(location: Location, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """A small object can be written to, read from and deleted in ``location``; else a StorageError."""
    marker = location.child(f".dask-platform-probe-{socket.gethostname()}-{uuid.uuid4().hex[:8]}")

    def check() -> None:
        with storage_errors(location):
            fs, path = marker.filesystem()
            if marker.is_local:
                fs.makedirs(location.url, exist_ok=True)
            fs.pipe_file(path, b"ok")
            fs.cat_file(path)
            fs.rm_file(path)

    within(timeout_s, location, check)


def unseen_local_problem(location: Location, option: str, here: str, worker_hosts: list[str]) -> str | None:
    """Why a local folder cannot serve workers that run on other machines, or None."""
    if not location.is_local:
        return None
    elsewhere = sorted({h for h in worker_hosts if h != here})
    if not elsewhere:
        return None
    shown = ", ".join(elsewhere[:3]) + (f" and {len(elsewhere) - 3} more" if len(elsewhere) > 3 else "")
    return (
        f"{option} {location.url}: a folder on this machine ({here}), but the workers run on {shown} and cannot see "
        f"it; pass an object-storage URL they can reach ({URL_EXAMPLES})"
    )


def to_parquet_bytes(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()

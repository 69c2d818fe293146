"""The job code on the cluster: the scheduler and the workers run the ``jobs`` package of whoever submits.

The platform image carries no job code (its tag hashes the environment only), so editing a job changes no deployed
file and restarts nothing. A client ships the package it imports instead: ``ship(client)`` compares a fingerprint of
its sources with what the scheduler and each worker import and, when they differ, sends a zip of it with
``Client.upload_file``, which distributed registers as a scheduler plugin and a worker plugin: the scheduler (which
unpickles the task graphs) and every worker get it, workers that join later too. `dask-platform submit` calls it;
so does a notebook, once its Client is connected::

    from jobs.shipping import ship
    print(ship(client))
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

# The jobs package this process runs (and would pickle): the code the cluster must import too.
JOBS_DIR = Path(__file__).resolve().parent


class ShippingError(RuntimeError):
    """The cluster still imports other job code after the upload."""


def fingerprint(folder: Path = JOBS_DIR) -> str:
    """A hash of the jobs package's Python sources: equal on both sides means the same code."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_archive(target_dir: Path, folder: Path = JOBS_DIR) -> Path:
    """A zip of the jobs package (sources only), importable once on sys.path: what upload_file sends."""
    path = target_dir / f"jobs-{fingerprint(folder)}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for source in sorted(folder.rglob("*.py")):
            zf.write(source, source.relative_to(folder.parent).as_posix())
    return path


def _remote_fingerprint() -> str:
    """Runs on the scheduler and workers (pickled by value): the fingerprint of the jobs package they import."""
    import hashlib as _hashlib
    import importlib
    import sys as _sys
    from pathlib import Path as _Path

    for name in [m for m in _sys.modules if m == "jobs" or m.startswith("jobs.")]:
        del _sys.modules[name]
    importlib.invalidate_caches()
    try:
        module = importlib.import_module("jobs")
    except ImportError:
        return "missing"
    location = getattr(module, "__file__", None)
    if location is None:
        return "missing"
    root = _Path(location).parent
    if not root.is_dir():  # imported from a zip: hash the archive's members
        import zipfile as _zipfile

        archive = str(root).split(".zip")[0] + ".zip"
        digest = _hashlib.sha256()
        with _zipfile.ZipFile(archive) as zf:
            for member in sorted(n for n in zf.namelist() if n.endswith(".py")):
                digest.update(member.encode())
                digest.update(zf.read(member))
        return digest.hexdigest()[:16]
    digest = _hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def remote_fingerprints(client: Any) -> dict[str, str]:
    """The jobs fingerprint on the scheduler (key ``scheduler``) and on each worker (its address)."""
    import cloudpickle

    this_module = sys.modules[__name__]  # the cluster may have no jobs package at all: send the function's code
    cloudpickle.register_pickle_by_value(this_module)
    try:
        out = {"scheduler": client.run_on_scheduler(_remote_fingerprint)}
        out.update(client.run(_remote_fingerprint))
    finally:
        cloudpickle.unregister_pickle_by_value(this_module)
    return out


def ship(client: Any) -> str:
    """Make this process's jobs package the one the scheduler and every worker import; returns what was done.

    The same fingerprint everywhere: nothing to send (a shared environment, or an earlier upload). Otherwise the
    package is zipped and sent with ``Client.upload_file``, then checked again. After editing a job, restart the
    notebook's kernel (or reload its modules) first: this process ships the files, but runs what it imported."""
    local = fingerprint()
    remote = remote_fingerprints(client)
    if all(fp == local for fp in remote.values()):
        return f"jobs {local}: already importable on the scheduler and {len(remote) - 1} workers"
    with tempfile.TemporaryDirectory() as tmp:
        archive = build_archive(Path(tmp))
        client.upload_file(str(archive), load=True)
    remote = remote_fingerprints(client)
    stale = sorted(k for k, fp in remote.items() if fp != local)
    if stale:
        raise ShippingError(f"uploaded the jobs package but {', '.join(stale)} still import another version")
    return f"jobs {local}: uploaded {archive.name} to the scheduler and {len(remote) - 1} workers"

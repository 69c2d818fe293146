"""The jobs package as the cluster receives it: a zip of its sources, named by their fingerprint."""

from __future__ import annotations

import zipfile
from pathlib import Path

from dask_platform.submit.shipping import JOBS_DIR, build_jobs_archive, jobs_fingerprint
from tests.support.repo import REPO


def test_the_client_ships_the_jobs_package_of_this_checkout():
    assert REPO.jobs_dir == JOBS_DIR


def test_jobs_archive_holds_the_package(tmp_path: Path):
    archive = build_jobs_archive(tmp_path)
    assert archive.name == f"jobs-{jobs_fingerprint()}.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "jobs/__init__.py" in names and "jobs/rossmann/job.py" in names
    assert all(n.endswith(".py") for n in names)

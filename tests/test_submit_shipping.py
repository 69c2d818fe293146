"""The jobs package as the cluster receives it: a zip of its sources, named by their fingerprint; the image carries
none, so the code that runs is the submitter's."""

from __future__ import annotations

import zipfile
from pathlib import Path

import jobs
from jobs.shipping import JOBS_DIR, build_archive, fingerprint
from tests.support.repo import REPO


def test_the_client_ships_the_jobs_package_of_this_checkout():
    assert REPO.jobs_dir == JOBS_DIR == Path(jobs.__file__).resolve().parent


def test_jobs_archive_holds_the_package(tmp_path: Path):
    archive = build_archive(tmp_path)
    assert archive.name == f"jobs-{fingerprint()}.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "jobs/__init__.py" in names and "jobs/rossmann/job.py" in names and "jobs/shipping.py" in names
    assert all(n.endswith(".py") for n in names)


def test_the_fingerprint_follows_every_source(tmp_path: Path):
    """An edit to any module, or a new one, is new code: the cluster gets it."""
    import shutil

    copy = tmp_path / "jobs"
    shutil.copytree(JOBS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprint(copy)
    assert before == fingerprint()
    (copy / "rossmann" / "model.py").write_text((copy / "rossmann" / "model.py").read_text() + "\n# edited\n")
    edited = fingerprint(copy)
    (copy / "rossmann" / "extra.py").write_text("X = 1\n")
    assert len({before, edited, fingerprint(copy)}) == 3

"""The version table: which differences between client, scheduler and workers break pickling, which only warn."""

from __future__ import annotations

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

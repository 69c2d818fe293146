"""The one place jobs register: name -> what it does, its options, how to run it, how to show its result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    name: str
    summary: str
    options: type  # a dataclass of jobs.runtime.option fields
    run: Callable[..., dict[str, Any]]  # run(client, options, scheduler_address=..., code_shipping=...) -> summary
    format: Callable[[dict[str, Any]], str]  # the terminal table of a summary


def _rossmann() -> Job:
    from jobs.rossmann import job

    return Job(
        "rossmann",
        "Rossmann store sales: MLP pipeline hyperparameter search vs a median baseline",
        job.RossmannOptions,
        job.run,
        job.format_table,
    )


def _bigdata() -> Job:
    from jobs.bigdata import job

    return Job(
        "bigdata",
        "A linear model on data larger than a worker's memory, one Parquet partition at a time",
        job.BigDataOptions,
        job.run,
        job.format_table,
    )


JOBS: dict[str, Callable[[], Job]] = {"rossmann": _rossmann, "bigdata": _bigdata}


def get_job(name: str) -> Job:
    return JOBS[name]()

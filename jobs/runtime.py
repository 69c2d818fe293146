"""What every job shares on the client side: options as dataclasses, progress over Dask futures, the
parallel-efficiency measurement, versions, and the atomically written run folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from distributed import Client, as_completed

# The packages whose versions are compared between client, scheduler and workers (the one list: the tooling's
# version table reads it too). True: a difference breaks unpickling of tasks and results; False: only warned about.
# Python itself is compared by major.minor and always matters.
VERSIONED_PACKAGES: dict[str, bool] = {
    "dask": True,
    "distributed": True,
    "cloudpickle": True,
    "scikit-learn": True,
    "pandas": True,
    "numpy": False,
    "dask-ml": False,
    "pyarrow": False,
    "msgpack": False,
}


def option(default: Any, help: str, **extra: Any) -> Any:
    """A job option: a dataclass field whose metadata the CLI turns into a command-line option."""
    return field(default=default, metadata={"help": help, **extra})


def local_versions() -> dict[str, str]:
    """Versions of python and the packages that must match across the cluster (runs anywhere)."""
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    return out


class ProgressGet:
    """A dask ``get`` for dask-ml searches: submits the graph as futures, shows a progress bar as results
    arrive, and cancels the futures if interrupted (Ctrl-C)."""

    def __init__(self, client: Client, description: str, enabled: bool = True):
        self.client = client
        self.description = description
        self.enabled = enabled

    def __call__(self, dsk: Any, keys: Any, **_: Any) -> Any:
        from tqdm.auto import tqdm

        futures = self.client.get(dsk, keys, sync=False)
        flat = _flatten(futures)
        try:
            with tqdm(total=len(flat), desc=self.description, disable=not self.enabled, unit="fit") as bar:
                for _future in as_completed(flat):
                    bar.update()
            return self.client.gather(futures)
        except BaseException:
            self.client.cancel(flat)
            raise


def _flatten(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple)):
        return [x for item in obj for x in _flatten(item)]
    return [obj]


@dataclass
class Efficiency:
    """CPU time the cluster's worker processes spent during a phase, against what its threads could have."""

    wall_s: float = 0.0
    busy_s: float = 0.0
    threads: int = 1

    @property
    def parallel_efficiency(self) -> float:
        return self.busy_s / (self.wall_s * self.threads) if self.wall_s and self.threads else 0.0


def process_cpu_seconds() -> float:
    """User + system CPU seconds of the calling process (run on each worker with ``Client.run``)."""
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


@contextlib.contextmanager
def measure(client: Client) -> Iterator[Efficiency]:
    """Wall time of the block and the CPU seconds the workers spent in it. CPU time, not task durations:
    tasks that wait (nested joblib calls secede from their thread) would otherwise count twice."""
    eff = Efficiency(threads=sum(client.nthreads().values()) or 1)
    before = client.run(process_cpu_seconds)
    start = time.perf_counter()
    yield eff
    eff.wall_s = time.perf_counter() - start
    after = client.run(process_cpu_seconds)
    eff.busy_s = sum(after[w] - before.get(w, 0.0) for w in after)


@dataclass(frozen=True)
class Captured:
    """What a task returned, or the input error (ValueError: bad data, unusable storage) it raised."""

    value: Any = None
    error: ValueError | None = None


def _capture(fn: Callable[..., Any], *args: Any) -> Captured:
    try:
        return Captured(value=fn(*args))
    except ValueError as exc:
        return Captured(error=exc)


def _error_of(captured: Captured) -> ValueError | None:
    return captured.error


def _value_of(captured: Captured) -> Any:
    return captured.value


def submit_checked(client: Client, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on a worker and wait for it; an input error it raises is raised here. Returns the
    future of its value (which stays on the worker). A task that fails on its own would have its worker log the
    traceback too (on an embedded cluster, into the user's terminal); a captured error is a result, not a
    failure."""
    captured = client.submit(_capture, fn, *args, pure=False)
    error = client.submit(_error_of, captured, pure=False).result()
    if error is not None:
        raise error
    return client.submit(_value_of, captured, pure=False)


def timestamp() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_run_folder(target: Path, writers: dict[str, Callable[[Path], None]]) -> Path:
    """Create ``target`` with the files the writers produce, all or nothing: they write into a staging folder
    that is renamed into place at the end."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        for name, write in writers.items():
            write(staging / name)
        os.chmod(staging, 0o755)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def write_json(data: dict[str, Any]) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")

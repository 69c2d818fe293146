"""The big-data job: learn from a data set larger than any worker's memory, one Parquet partition at a time.

1. The workers write the data set themselves (Rossmann-like features, a block of stores per Parquet file), so
   it never passes through the client; ``--scale 10`` makes it ten times larger.
2. Per-partition statistics (for standardisation) are computed in parallel and combined.
3. An ``SGDRegressor`` learns by ``partial_fit``, one partition per task, the model passed from task to task:
   a worker holds one partition at a time, so its memory does not grow with the data.
4. The holdout (each store's last 6 weeks) is scored partition by partition, in parallel.

The summary reports each worker's peak memory next to the data's in-memory size and the worker memory limit.
"""

from __future__ import annotations

import io
import math
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, wait

from jobs.rossmann.data import SyntheticSpec, generate
from jobs.rossmann.features import HOLDOUT_DAYS, NUMERIC, TARGET, derive
from jobs.runtime import local_versions, measure, option, submit_checked, timestamp, write_json, write_run_folder
from jobs.storage import (
    Location,
    StorageError,
    parse_location,
    probe_writable,
    to_parquet_bytes,
    unseen_local_problem,
)

STORES_PER_PARTITION = 40
BASE_STORES = 1115
COLUMNS = NUMERIC  # the Rossmann job's numeric features
ONE_HOT = {
    "DayOfWeek": range(1, 8),
    "DayOfMonth": range(1, 32),
    "Month": range(1, 13),
    "StoreType": "abcd",
    "Assortment": "abc",
    "StateHoliday": "0abc",
}


@dataclass
class BigDataOptions:
    scale: int = option(1, "Data size: 1 = the Rossmann panel (~1M rows); 10 = ten times the stores.")
    stores: int = option(BASE_STORES, "Stores at scale 1 (1,115 as in Rossmann; fewer for a quick try).")
    epochs: int = option(2, "Passes of partial_fit over all partitions.")
    seed: int = option(0, "Seed of the data and the model.")
    storage: str = option(
        ".cache/bigdata",
        "Where the workers write and read the Parquet data set: a folder they share, or an object-storage URL "
        "(s3://, gs://, abfs://) reached with their credentials.",
    )
    storage_options: str = option("", "Options of the storage: key=value,... (endpoint_url, anon, ...).")
    out: str = option("results/bigdata", "Parent folder of the run folder.")
    progress: bool = option(True, "Print progress.")


@dataclass(frozen=True)
class Normalizer:
    """Standardises the numeric columns (one-hot columns are left as they are) and centres the target."""

    mean: np.ndarray
    scale: np.ndarray
    y_mean: float

    @classmethod
    def from_moments(cls, moments: list[tuple[int, np.ndarray, np.ndarray, float]]) -> Normalizer:
        n = sum(m[0] for m in moments)
        mean = sum(m[1] for m in moments) / n
        var = sum(m[2] for m in moments) / n - mean**2
        scale = np.sqrt(np.maximum(var, 1e-12))
        numeric = len(COLUMNS) + 2
        mean[numeric:] = 0.0
        scale[numeric:] = 1.0
        return cls(mean, scale, sum(m[3] for m in moments) / n)

    def x(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


# --- tasks (run on the workers) ---------------------------------------------------------------------------------


def write_partition(folder: Location, index: int, seed: int) -> dict[str, Any]:
    """Generate the stores of partition ``index`` and write them as one Parquet file (whole or not at all); an
    existing file is reused unless it lacks a column this version reads (written before a feature change).
    Returns its stats."""
    target = folder.child(f"part-{index:05d}.parquet")
    frame = read_partition(target) if target.exists() else None
    if frame is None or not {*COLUMNS, *ONE_HOT, "Store", "Date", TARGET} <= set(frame.columns):
        train, store = generate(SyntheticSpec(stores=STORES_PER_PARTITION, seed=seed * 100_003 + index))
        offset = index * STORES_PER_PARTITION
        train["Store"] += offset
        store["Store"] += offset
        features = derive(train.merge(store, on="Store", how="left"))
        features = features[(features["Open"] == 1) & (features["Sales"] > 0)]
        target.write_bytes(to_parquet_bytes(features))
        frame = read_partition(target)
    return {"path": target, "rows": len(frame), "bytes_in_memory": int(frame.memory_usage(deep=True).sum())}


def read_partition(part: Location) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(part.read_bytes()))


def design_matrix(df: pd.DataFrame, train: pd.DataFrame) -> np.ndarray:
    """Numeric columns, the store's and store x weekday's mean log sales in ``train`` (a partition holds whole
    stores, so these encodings are partition-local), then fixed one-hot columns: the same width everywhere."""
    store_mean = train.groupby("Store")[TARGET].mean()
    store_dow_mean = train.groupby(["Store", "DayOfWeek"])[TARGET].mean()
    enc_store = df["Store"].map(store_mean).fillna(store_mean.mean()).to_numpy()
    keys = pd.MultiIndex.from_frame(df[["Store", "DayOfWeek"]])
    enc_dow = store_dow_mean.reindex(keys).fillna(pd.Series(enc_store, index=keys)).to_numpy()
    parts = [df[COLUMNS].to_numpy(dtype=np.float64), enc_store[:, None], enc_dow[:, None]]
    for column, values in ONE_HOT.items():
        col = df[column].astype(str).to_numpy()
        parts.append(np.stack([col == str(v) for v in values], axis=1).astype(np.float64))
    return np.hstack(parts)


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cutoff = df["Date"].max() - pd.Timedelta(days=HOLDOUT_DAYS)
    return df[df["Date"] <= cutoff], df[df["Date"] > cutoff]


def partition_moments(part: Location) -> tuple[int, np.ndarray, np.ndarray]:
    """(n, sum, sum of squares, sum of the target) of a partition's training rows."""
    train = split(read_partition(part))[0]
    X = design_matrix(train, train)
    return len(X), X.sum(axis=0), (X**2).sum(axis=0), float(train[TARGET].sum())


def partial_fit_partition(model: Any, part: Location, norm: Normalizer, seed: int) -> Any:
    """One step of the chain: learn from one partition's training rows (shuffled) and hand the model on."""
    train = split(read_partition(part))[0].sample(frac=1.0, random_state=seed)
    model.partial_fit(norm.x(design_matrix(train, train)), train[TARGET].to_numpy() - norm.y_mean)
    return model


def score_partition(model: Any, part: Location, norm: Normalizer) -> tuple[int, float]:
    """(rows, sum of squared percentage errors) on a partition's holdout rows."""
    train, holdout = split(read_partition(part))
    pred = np.expm1(np.clip(model.predict(norm.x(design_matrix(holdout, train))) + norm.y_mean, 0, 20))
    y = holdout["Sales"].to_numpy(dtype=float)
    return len(y), float((((y - pred) / y) ** 2).sum())


def worker_memory() -> dict[str, int]:
    """Current and peak RSS of this worker process, in bytes."""
    import resource

    import psutil

    return {
        "rss": psutil.Process().memory_info().rss,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


# --- the job (runs on the client) ---------------------------------------------------------------------------


def run(client: Client, opts: BigDataOptions, scheduler_address: str = "", code_shipping: str = "") -> dict:
    started = time.perf_counter()
    n_parts = math.ceil(opts.stores * opts.scale / STORES_PER_PARTITION)
    folder = data_folder(client, opts).child(f"scale{opts.scale}-stores{opts.stores}-seed{opts.seed}")
    submit_checked(client, probe_writable, folder)
    say = print if opts.progress else (lambda *_: None)

    say(f"bigdata: {n_parts} partitions of {STORES_PER_PARTITION} stores -> {folder.url}")
    with measure(client) as eff_write:
        stats = client.gather(
            client.map(write_partition, [folder] * n_parts, range(n_parts), [opts.seed] * n_parts, pure=False)
        )
    paths = [s["path"] for s in stats]
    say(f"bigdata: {sum(s['rows'] for s in stats):,} rows, {sum(s['bytes_in_memory'] for s in stats) / 2**30:.2f} GiB")
    norm = Normalizer.from_moments(client.gather(client.map(partition_moments, paths, pure=False)))
    t_fit = time.perf_counter()
    model_f = fit_partition_by_partition(client, paths, norm, opts, say)
    fit_s = time.perf_counter() - t_fit
    scores = client.gather(client.map(score_partition, [model_f] * len(paths), paths, [norm] * len(paths), pure=False))

    timing = {"write_data": eff_write.wall_s, "partial_fit": fit_s, "total": time.perf_counter() - started}
    summary = build_summary(opts, stats, scores, cluster_memory(client), timing)
    summary.update(data_folder=folder.url, scheduler_address=scheduler_address, code_shipping=code_shipping)
    run_folder = Path(opts.out) / timestamp()
    write_run_folder(run_folder, {"summary.json": write_json(summary)})
    summary["run_folder"] = str(run_folder)
    return summary


def data_folder(client: Client, opts: BigDataOptions) -> Location:
    """--storage as the workers will use it: a URL as given; a local folder made absolute, and refused when the
    workers run on other machines (they could not see it)."""
    location = parse_location(opts.storage, opts.storage_options)
    if not location.is_local:
        return location
    hosts = list(client.run(socket.gethostname).values())
    problem = unseen_local_problem(location, "--storage", socket.gethostname(), hosts)
    if problem:
        raise StorageError(problem)
    return Location(str(Path(location.url.removeprefix("file://")).resolve()), location.options)


def fit_partition_by_partition(
    client: Client, paths: list[Location], norm: Normalizer, opts: BigDataOptions, say: Callable[..., None]
) -> Any:
    """SGD by partial_fit, one partition per task in a shuffled order each epoch; returns the model's future."""
    from sklearn.linear_model import SGDRegressor

    model = SGDRegressor(learning_rate="adaptive", eta0=0.01, alpha=1e-5, random_state=opts.seed)
    model_f = client.scatter(model)
    order = np.random.default_rng(opts.seed)
    for epoch in range(opts.epochs):
        for i in order.permutation(len(paths)):
            model_f = client.submit(partial_fit_partition, model_f, paths[i], norm, opts.seed + epoch, pure=False)
        wait(model_f)
        say(f"bigdata: epoch {epoch + 1}/{opts.epochs} done")
    return model_f


def cluster_memory(client: Client) -> dict[str, dict[str, Any]]:
    """Per worker: current and peak RSS and its memory limit."""
    memory = client.run(worker_memory)
    info = client.scheduler_info(n_workers=-1).get("workers", {})
    return {w: {**m, "memory_limit": info.get(w, {}).get("memory_limit")} for w, m in memory.items()}


def build_summary(
    opts: BigDataOptions,
    stats: list[dict[str, Any]],
    scores: list[tuple[int, float]],
    workers: dict[str, dict[str, Any]],
    timing: dict[str, float],
) -> dict[str, Any]:
    """summary.json of a run: the data's size against the workers' memory, the holdout score, timings."""
    data_bytes = sum(s["bytes_in_memory"] for s in stats)
    holdout_rows = sum(s[0] for s in scores)
    limit = min((w["memory_limit"] for w in workers.values() if w["memory_limit"]), default=None)
    return {
        "job": "bigdata",
        "scale": opts.scale,
        "partitions": len(stats),
        "rows": sum(s["rows"] for s in stats),
        "data_bytes_in_memory": data_bytes,
        "worker_memory_limit_bytes": limit,
        "data_exceeds_worker_limit": bool(limit and data_bytes > limit),
        "peak_worker_rss_bytes": max(w["peak_rss"] for w in workers.values()),
        "workers": workers,
        "holdout_rows": holdout_rows,
        "holdout_rmspe": round(math.sqrt(sum(s[1] for s in scores) / holdout_rows), 6),
        "timing_s": {k: round(v, 2) for k, v in timing.items()},
        "versions": local_versions(),
        "options": asdict(opts),
    }


def format_table(summary: dict) -> str:
    gib = 2**30
    limit = summary["worker_memory_limit_bytes"]
    lines = [
        (
            "data",
            f"{summary['rows']:,} rows in {summary['partitions']} Parquet partitions, "
            f"{summary['data_bytes_in_memory'] / gib:.2f} GiB in memory",
        ),
        ("stored in", summary.get("data_folder", "-")),
        ("worker memory limit", f"{limit / gib:.2f} GiB" if limit else "none"),
        ("peak worker RSS", f"{summary['peak_worker_rss_bytes'] / gib:.2f} GiB"),
        ("holdout RMSPE", f"{summary['holdout_rmspe']:.4f} on {summary['holdout_rows']:,} rows"),
        ("wall time", f"{summary['timing_s']['total']:.1f} s"),
        ("results", summary.get("run_folder", "-")),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in lines)

"""Benchmarks of the Rossmann and bigdata jobs, measured side by side in one run; prints ratios, never asserts.

    .venv/bin/python -m benchmarks.run                  # everything, from the checkout (~10 min on 2 cores)
    .venv/bin/python -m benchmarks.run --only halving   # search, halving, workers, rossmann, bigdata

1. search: the same grid on the same sample and folds, as
   - dask-ml GridSearchCV on the job's embedded cluster (one single-threaded worker process per core, started with
     the platform's Dask configuration, docker/dask.yaml, as the image's workers are),
   - scikit-learn GridSearchCV(n_jobs=<cores>) (joblib's loky processes), the reference.
   Ratio = wall / reference wall. Parallel efficiency = CPU seconds of the worker processes / (wall x cores), and
   the textbook sum(fit + score times) / (wall x cores).
2. rossmann: the README's main job (`submit.py rossmann`, full size, fresh cache) as a subprocess: wall time and
   the peak of the summed RSS of its process tree (client + scheduler + workers).
3. halving: the job's halving search (resumed survivors; synchronous promotion, and ASHA beside it) against scikit-learn
   GridSearchCV(n_jobs=<cores>) on the same candidates and folds, per seed: wall ratio, CPU efficiency, work done
   (epochs, and epochs weighted by each candidate's fit time in the grid: the wall ratio if both searches were
   equally efficient), and quality (same winner, or the winner's 12-epoch CV RMSPE within 0.5 % of the grid's best;
   holdout RMSPE of the winners refit as the job refits them, and against the data's noise floor 0.0749; for sync
   and ASHA each); and an Optuna study with its ASHA pruner on the same candidates, folds and training code
   (benchmarks/optuna_search.py).
4. workers: the same MLP training (12 epochs of the default space's largest network on one fold) in this process,
   in a worker started with the platform's Dask configuration (docker/dask.yaml) and in one started with
   distributed's defaults: time ratios against this process.
5. bigdata: peak worker RSS at data x1 and x10 with a 1 GiB worker memory limit, with the partitions in a local
   folder and in object storage (moto's S3 server on 127.0.0.1, as in tests/test_storage.py), side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil

from benchmarks.optuna_search import optuna_search

ROOT = Path(__file__).resolve().parent.parent


NOISE_FLOOR_RMSPE = 0.0749  # the synthetic data's lognormal noise (sigma 0.075): the best any model can reach


def full_data() -> tuple:
    from jobs.rossmann.data import SyntheticSpec, load_or_generate
    from jobs.rossmann.features import derive, modelling_rows, split_holdout

    with tempfile.TemporaryDirectory() as cache:
        train, store, _ = load_or_generate(SyntheticSpec(), Path(cache))
    return split_holdout(modelling_rows(derive(train.merge(store, on="Store", how="left"))))


def key_of(params: dict) -> str:
    return repr(sorted(params.items()))


def warm_up() -> None:
    """Imports the job's model code (scikit-learn with it): run in each worker process before a search is timed."""
    import jobs.rossmann.model  # noqa: F401


def sklearn_grid(sample, space, seed: int, cores: int) -> tuple[float, dict, dict]:
    """Wall time of scikit-learn's GridSearchCV(n_jobs=cores), its mean CV RMSPE and mean fit seconds per
    candidate. joblib's processes are started and warm before the clock starts, as the Dask workers are."""
    import joblib
    from sklearn.model_selection import GridSearchCV

    from jobs.rossmann.features import FEATURES, TARGET
    from jobs.rossmann.job import candidates_of
    from jobs.rossmann.model import RMSPE_SCORER, build_pipeline, date_block_folds

    folds = date_block_folds(sample["Date"], space.folds)
    grid = [{k: [v] for k, v in c.items()} for c in candidates_of(space, seed)]
    search = GridSearchCV(
        build_pipeline(seed=seed, max_iter=space.max_iter),
        grid,
        scoring=RMSPE_SCORER,
        cv=folds,
        refit=False,
        n_jobs=cores,
    )
    with joblib.parallel_config(backend="loky"):
        joblib.Parallel(n_jobs=cores)(joblib.delayed(warm_up)() for _ in range(cores))
        start = time.perf_counter()
        search.fit(sample[FEATURES], sample[TARGET].to_numpy())
    wall = time.perf_counter() - start
    results = search.cv_results_
    scores = {key_of(p): -float(v) for p, v in zip(results["params"], results["mean_test_score"], strict=True)}
    fit_s = {key_of(p): float(v) for p, v in zip(results["params"], results["mean_fit_time"], strict=True)}
    return wall, scores, fit_s


def cost_weighted_fraction(cv_results, fit_s: dict, max_iter: int) -> float:
    """The halving search's epochs as a fraction of the grid's, each candidate's epochs weighted by its fit time in
    the grid (preprocessing included): a network twice as costly counts twice. The wall ratio if both searches were
    equally efficient."""
    epochs = cv_results.groupby(cv_results["params"].map(key_of))["epochs_trained"].max()
    return sum(epochs[k] * fit_s[k] / max_iter for k in epochs.index) / sum(fit_s.values())


def holdout_rmspe(params: dict, fit_rows, holdout, seed: int, max_iter: int) -> float:
    from jobs.rossmann.features import FEATURES, TARGET
    from jobs.rossmann.job import REFIT_ROWS, fit_and_predict
    from jobs.rossmann.model import rmspe, sales_from_log, sample_rows

    refit = sample_rows(fit_rows, REFIT_ROWS, seed)  # as the job refits
    pred, _ = fit_and_predict(params, seed, max_iter, refit[FEATURES], refit[TARGET].to_numpy(), holdout[FEATURES])
    return rmspe(holdout["Sales"].to_numpy(), sales_from_log(pred))


def halving_benchmark(workers: int, seeds: list[int], spaces: list[str]) -> dict:
    import statistics

    from distributed import Client

    from dask_platform.submit.embedded import embedded_cluster
    from jobs.rossmann.model import BUILTIN_SPACES

    data = full_data()
    out: dict = {"workers": workers, "seeds": seeds}
    with (
        embedded_cluster(workers, 1, "auto") as cluster,
        Client(cluster) as client,
    ):
        client.run(warm_up)
        for name in spaces:
            space = BUILTIN_SPACES[name]
            runs = [halving_against_grid(client, space, seed, data, workers) for seed in seeds]
            out[name] = {
                "candidates": runs[0]["candidates"],
                "schedule": runs[0]["schedule"],
                **{
                    f"median_{k}": statistics.median(r[k] for r in runs)
                    for k in (
                        "ratio",
                        "fraction_of_grid_cost_weighted",
                        "cpu_efficiency",
                        "async_ratio",
                        "async_cpu_efficiency",
                        "optuna_ratio",
                        "optuna_cpu_efficiency",
                    )
                },
                "quality_holds": all(r["quality_holds"] for r in runs),
                "async_quality_holds": all(r["async_quality_holds"] for r in runs),
                "runs": runs,
            }
    return out


def judged(params: dict, prefix: str, name: str, grid_scores: dict, grid_holdout: float, holdout_of) -> dict:
    """A search's winner against the grid's, and the issue's condition: the grid's winner, or one within 0.5 % of
    its CV RMSPE, and a holdout RMSPE no worse than the grid winner's by more than 0.002."""
    grid_best = min(grid_scores, key=grid_scores.get)
    same, gap = key_of(params) == grid_best, round(grid_scores[key_of(params)] / grid_scores[grid_best] - 1, 4)
    holdout = round(holdout_of(params), 5)
    return {
        f"{prefix}same_winner": same,
        f"{prefix}winner_cv_vs_grid_best": gap,
        f"holdout_rmspe_{name}_winner": holdout,
        f"{prefix}quality_holds": (same or gap <= 0.005) and holdout - grid_holdout <= 0.002,
    }


def halving_against_grid(client, space, seed: int, data: tuple, workers: int) -> dict:
    """One seed: scikit-learn's grid, the halving search (sync, then async) and the winners' holdout scores."""
    from jobs.rossmann.job import candidates_of, run_search
    from jobs.rossmann.model import sample_rows

    fit_rows, holdout = data
    sample = sample_rows(fit_rows, space.sample_rows, seed)
    grid_wall, grid_scores, grid_fit_s = sklearn_grid(sample, space, seed, workers)
    start = time.perf_counter()
    outcome = run_search(client, sample, space, "halving", seed, progress=False)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    asha = run_search(client, sample, replace(space, promotion="async"), "halving", seed, progress=False)
    asha_wall = time.perf_counter() - start
    study = optuna_search(client, sample, space, seed)
    grid_best, winner = min(grid_scores, key=grid_scores.get), key_of(outcome.best_params)
    holdouts: dict[str, float] = {}

    def holdout_of(params: dict) -> float:  # each winner refit once
        if key_of(params) not in holdouts:
            holdouts[key_of(params)] = holdout_rmspe(params, fit_rows, holdout, seed, space.max_iter)
        return holdouts[key_of(params)]

    h_grid = round(holdout_of(next(c for c in candidates_of(space, seed) if key_of(c) == grid_best)), 5)
    judge = functools.partial(judged, grid_scores=grid_scores, grid_holdout=h_grid, holdout_of=holdout_of)

    return {
        "seed": seed,
        "candidates": outcome.n_candidates,
        "schedule": outcome.work["schedule"],
        "sklearn_grid_wall_s": round(grid_wall, 1),
        "halving_wall_s": round(wall, 1),
        "ratio": round(wall / grid_wall, 3),
        "cpu_efficiency": round(outcome.efficiency.parallel_efficiency, 3),
        "async_ratio": round(asha_wall / grid_wall, 3),
        "async_cpu_efficiency": round(asha.efficiency.parallel_efficiency, 3),
        "async_same_winner_as_sync": key_of(asha.best_params) == winner,
        **judge(asha.best_params, "async_", "async"),
        "fraction_of_grid_epochs": outcome.work["fraction_of_grid"],
        "fraction_of_grid_cost_weighted": round(
            cost_weighted_fraction(outcome.cv_results, grid_fit_s, space.max_iter), 3
        ),
        **judge(outcome.best_params, "", "halving"),
        "holdout_rmspe_grid_winner": h_grid,
        "holdout_over_noise_floor": round(holdout_of(outcome.best_params) / NOISE_FLOOR_RMSPE, 3),
        "optuna_ratio": round(study["wall_s"] / grid_wall, 3),
        "optuna_cpu_efficiency": round(study["cpu_efficiency"], 3),
        "optuna_fraction_of_grid_epochs": study["fraction_of_grid_epochs"],
        "optuna_pruned": f"{study['pruned']} of {study['trials']}",
        **judge(study["best_params"], "optuna_", "optuna"),
    }


def search_benchmark(cores: int) -> dict:
    import joblib
    from distributed import Client
    from sklearn.model_selection import GridSearchCV

    from dask_platform.submit.embedded import embedded_cluster
    from jobs.rossmann.features import FEATURES, TARGET
    from jobs.rossmann.job import run_search
    from jobs.rossmann.model import BUILTIN_SPACES, RMSPE_SCORER, build_pipeline, date_block_folds, sample_rows

    space = BUILTIN_SPACES["default"]
    fit_rows, _ = full_data()
    sample = sample_rows(fit_rows, space.sample_rows, 0)
    out: dict = {"grid_size": space.grid_size, "folds": space.folds, "rows": len(sample), "cores": cores}

    with (
        embedded_cluster(cores, 1, "auto") as cluster,
        Client(cluster) as client,
    ):
        # halving has its own part (3.): its cv_results hold rungs, not fit and score times
        for strategy in ("grid",):
            start = time.perf_counter()
            outcome = run_search(client, sample, space, strategy, seed=0, progress=False)
            wall = time.perf_counter() - start
            cv = outcome.cv_results
            splits = [c for c in cv.columns if c.startswith("split") and c.endswith("_test_score")]
            fit_score = float(((cv["mean_fit_time"] + cv["mean_score_time"]) * len(splits)).sum())
            out[f"dask_{strategy}"] = {
                "wall_s": round(wall, 2),
                "cpu_efficiency": round(outcome.efficiency.parallel_efficiency, 3),
                "fit_score_efficiency": round(fit_score / (wall * cores), 3),
                "best_params": {k: str(v) for k, v in outcome.best_params.items()},
                "best_cv_rmspe": round(outcome.best_cv_rmspe, 5),
                "fits": int(len(cv) * len(splits)),
            }

    folds = date_block_folds(sample["Date"], space.folds)
    search = GridSearchCV(
        build_pipeline(max_iter=space.max_iter), space.grid, scoring=RMSPE_SCORER, cv=folds, refit=False, n_jobs=cores
    )
    start = time.perf_counter()
    with joblib.parallel_config(backend="loky"):
        search.fit(sample[FEATURES], sample[TARGET].to_numpy())
    wall = time.perf_counter() - start
    cv = search.cv_results_
    fit_score = float(((cv["mean_fit_time"] + cv["mean_score_time"]) * space.folds).sum())
    best = int(cv["rank_test_score"].argmin())
    out["sklearn_grid"] = {
        "wall_s": round(wall, 2),
        "fit_score_efficiency": round(fit_score / (wall * cores), 3),
        "best_params": {k: str(v) for k, v in cv["params"][best].items()},
        "best_cv_rmspe": round(-float(cv["mean_test_score"][best]), 5),
    }
    for strategy in ("grid",):
        out[f"ratio_dask_{strategy}_vs_sklearn"] = round(out[f"dask_{strategy}"]["wall_s"] / wall, 3)
    return out


def _train_seconds(fold, mlp_params: dict) -> float:
    from threadpoolctl import threadpool_limits

    from jobs.rossmann.halving import train_until

    with threadpool_limits(1):  # as in a worker (distributed's OMP_NUM_THREADS=1 and friends)
        start = time.perf_counter()
        train_until(None, fold, mlp_params, 12, 0)
        return time.perf_counter() - start


def workers_benchmark(repeats: int = 3) -> dict:
    """Median seconds of the same training in this process, in an embedded-cluster worker (platform settings)
    and in a LocalCluster worker with distributed's defaults, interleaved."""
    import statistics

    from distributed import Client, LocalCluster

    from dask_platform.submit.embedded import embedded_cluster
    from jobs.rossmann.features import FEATURES, TARGET
    from jobs.rossmann.halving import prepare_fold
    from jobs.rossmann.model import BUILTIN_SPACES, date_block_folds, sample_rows

    space = BUILTIN_SPACES["default"]
    fit_rows, _ = full_data()
    sample = sample_rows(fit_rows, space.sample_rows, 0)
    train_idx, test_idx = date_block_folds(sample["Date"], space.folds)[-1]
    fold = prepare_fold(sample[FEATURES], sample[TARGET].to_numpy(), train_idx, test_idx, {}, 0)
    params = {"mlp__hidden_layer_sizes": max(space.grid["mlp__hidden_layer_sizes"], key=sum)}
    times: dict[str, list[float]] = {"process": [], "platform_worker": [], "dask_default_worker": []}
    with (  # distributed's defaults first (a nanny takes a variable from this process's environment first)
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as default,
        embedded_cluster(1, 1, "auto") as platform,
        Client(platform, set_as_default=False) as on_platform,
        Client(default, set_as_default=False) as on_default,
    ):
        fold_platform, fold_default = on_platform.scatter(fold), on_default.scatter(fold)
        for _ in range(repeats):
            times["process"].append(_train_seconds(fold, params))
            times["platform_worker"].append(
                on_platform.submit(_train_seconds, fold_platform, params, pure=False).result()
            )
            times["dask_default_worker"].append(
                on_default.submit(_train_seconds, fold_default, params, pure=False).result()
            )
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "network": str(params["mlp__hidden_layer_sizes"]),
        "rows": len(train_idx),
        **{f"{k}_s": round(v, 2) for k, v in median.items()},
        "platform_worker_over_process": round(median["platform_worker"] / median["process"], 3),
        "dask_default_worker_over_process": round(median["dask_default_worker"] / median["process"], 3),
    }


class PeakRSS:
    """Samples the summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_submit(args: list[str], tmp: Path, extra_env: dict[str, str] | None = None) -> tuple[float, int, dict]:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"} | (extra_env or {})
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts/submit.py"), *args, "--out", str(tmp / "results"), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with PeakRSS(proc.pid) as peak:
        _, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"submit {args} failed: {err[-2000:]}")
    summary = json.loads(sorted((tmp / "results").glob("*/summary.json"))[-1].read_text())
    return wall, peak.peak, summary


def rossmann_benchmark() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wall, peak, summary = run_submit(["rossmann", "--cache", str(Path(tmp) / "cache")], Path(tmp))
    return {
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(peak / 2**30, 2),
        "job_total_s": summary["timing_s"]["total"],
        "holdout_rmspe": summary["holdout_rmspe"],
        "parallel_efficiency": summary["parallel_efficiency"],
    }


def bigdata_benchmark() -> dict:
    from testbed.storage import moto_s3

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp, moto_s3(Path(tmp) / "moto") as s3:
        for where, storage, env in (("local", str(Path(tmp) / "data"), {}), ("s3", s3.url("bigdata"), s3.env)):
            for scale in (1, 10):
                args = ["bigdata", "--scale", str(scale), "--memory-limit", "1GiB", "--storage", storage]
                wall, _, summary = run_submit(args, Path(tmp) / f"{where}-x{scale}", env)
                out[f"{where}_x{scale}"] = {
                    "rows": summary["rows"],
                    "data_gib": round(summary["data_bytes_in_memory"] / 2**30, 2),
                    "peak_worker_rss_gib": round(summary["peak_worker_rss_bytes"] / 2**30, 3),
                    "wall_s": round(wall, 1),
                }
            growth = out[f"{where}_x10"]["peak_worker_rss_gib"] / out[f"{where}_x1"]["peak_worker_rss_gib"]
            out[f"{where}_peak_growth_x10_over_x1"] = round(growth, 3)
    out["s3_over_local_peak_x10"] = round(
        out["s3_x10"]["peak_worker_rss_gib"] / out["local_x10"]["peak_worker_rss_gib"], 3
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=["search", "halving", "workers", "rossmann", "bigdata"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (and n_jobs)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="halving: seeds")
    parser.add_argument("--spaces", nargs="*", default=["default", "large"], help="halving: search spaces")
    args = parser.parse_args()
    parts = args.only or ["search", "halving", "workers", "rossmann", "bigdata"]
    cores = args.workers
    results: dict = {"cores": cores, "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)}
    if "search" in parts:
        results["search"] = search_benchmark(cores)
    if "halving" in parts:
        results["halving"] = halving_benchmark(cores, args.seeds, args.spaces)
    if "workers" in parts:
        results["workers"] = workers_benchmark()
    if "rossmann" in parts:
        results["rossmann"] = rossmann_benchmark()
    if "bigdata" in parts:
        results["bigdata"] = bigdata_benchmark()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The Rossmann job: data -> dask-dataframe features -> parallel hyperparameter search of an MLP pipeline on the
Dask cluster -> refit of the best candidate -> holdout RMSPE against the median baseline -> run folder.

``run`` takes a connected ``distributed.Client``; it does not care whether the cluster is embedded or deployed.
"""

from __future__ import annotations

import itertools
import operator
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, Future

from jobs.rossmann import data as rdata
from jobs.rossmann import halving
from jobs.rossmann.features import FEATURES, TARGET, build_features, split_holdout
from jobs.rossmann.model import (
    RMSPE_SCORER,
    SearchSpace,
    build_pipeline,
    date_block_folds,
    load_space,
    median_baseline,
    rmspe,
    sales_from_log,
    sample_rows,
)
from jobs.runtime import (
    Efficiency,
    ProgressGet,
    local_versions,
    measure,
    option,
    submit_checked,
    timestamp,
    write_json,
    write_run_folder,
)
from jobs.storage import parse_location, probe_readable

STRATEGIES = ("halving", "grid", "random")
# Rows the winner is refit on. Holdout RMSPE / the synthetic data's noise floor for the default search's winners
# (seeds 0, 1, 2; docs/benchmarks.md): 300,000 rows 1.104, 1.111, 1.096; 600,000 rows 1.076, 1.075, 1.085; all
# 807,185 training rows 1.072, 1.072, 1.066. 600,000 take most of the gain; the full-size job took 26 s with a 2.25 GiB
# peak with 300,000 rows, 36 s and 2.49 GiB with 600,000, 44 s and 2.95 GiB with all.
REFIT_ROWS = 600_000


@dataclass
class RossmannOptions:
    data: str | None = option(
        None,
        "Folder or object-storage URL (s3://, gs://, abfs://) with the Kaggle train.csv and store.csv; "
        "default: synthetic data. A URL is read by the workers, with their credentials.",
    )
    storage_options: str = option("", "Options of --data's storage: key=value,... (endpoint_url, anon, ...).")
    stores: int = option(1115, "Synthetic data: number of stores (1,115 in the real data).")
    days: int = option(942, "Synthetic data: number of days from 2013-01-01 (942 in the real data).")
    scale: int = option(1, "Synthetic data: multiply the number of stores (10 for the big-data case).")
    seed: int = option(0, "Seed of the data, the sampling and the models.")
    search: str = option("default", "Search space: small, default, large, or a YAML file.")
    strategy: str = option(
        "halving",
        "halving (successive halving that resumes its survivors' training; rungs and factor from the search "
        "space; on the default space the grid's winner in 3 of 3 benchmark seeds with 0.46 of its epochs), grid "
        "(dask-ml GridSearchCV, every candidate to the end: the reference) or random (RandomizedSearchCV).",
        choices=STRATEGIES,
    )
    folds: int | None = option(None, "Time-series CV folds (default: the search space's).")
    sample_rows: int | None = option(None, "Rows the search fits on (default: the search space's).")
    refit_rows: int = option(REFIT_ROWS, "Rows the best candidate is refit on (0: all training rows).")
    out: str = option("results/rossmann", "Parent folder of the run folder.")
    cache: str = option(".cache/rossmann", "Where synthetic data is cached as Parquet.")
    progress: bool = option(True, "Show a progress bar during the search.")


@dataclass
class SearchOutcome:
    cv_results: pd.DataFrame
    best_params: dict[str, Any]
    best_cv_rmspe: float
    n_candidates: int
    efficiency: Efficiency
    work: dict[str, Any] | None = None  # halving: epochs trained against the grid's, and the schedule


@dataclass
class TrainingData:
    """train.csv as partitions on the cluster (futures), store.csv on the client, and where they came from."""

    chunks: list[Future]
    meta: pd.DataFrame
    store: pd.DataFrame
    n_rows: int
    source: str


def load_data(client: Client, opts: RossmannOptions) -> TrainingData:
    """Synthetic data or a local folder: read here and scattered. An object-storage URL: read by a worker, with
    the workers' credentials, after a probe that fails in one line (missing file, denied, unreachable)."""
    if opts.data and not (location := parse_location(opts.data, opts.storage_options)).is_local:
        submit_checked(client, probe_readable, location, ["train.csv", "store.csv"])
        pair = submit_checked(client, rdata.load_kaggle, location)
        train_f = client.submit(operator.itemgetter(0), pair, pure=False)
        store, n_rows, meta = client.gather(
            [client.submit(operator.itemgetter(1), pair), client.submit(len, train_f), client.submit(_empty, train_f)]
        )
        bounds = _chunk_bounds(client, n_rows)
        chunks = [client.submit(_rows, train_f, a, b, pure=False) for a, b in bounds]
        return TrainingData(chunks, meta, store, n_rows, f"kaggle:{opts.data}")
    if opts.data:
        train, store = rdata.load_kaggle(Path(opts.data))
        source = f"kaggle:{opts.data}"
    else:
        spec = rdata.SyntheticSpec(stores=opts.stores * opts.scale, days=opts.days, seed=opts.seed)
        train, store, cached = rdata.load_or_generate(spec, Path(opts.cache))
        source = f"synthetic:{spec.key()}{' (cached)' if cached else ''}"
    # Scatter the partitions once rather than embedding the data in the task graph.
    chunks = client.scatter([train.iloc[a:b] for a, b in _chunk_bounds(client, len(train))])
    return TrainingData(chunks, train.iloc[:0], store, len(train), source)


def _chunk_bounds(client: Client, n_rows: int) -> list[tuple[int, int]]:
    workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    parts = max(2, min(64, 2 * workers, n_rows // 50_000 + 1))
    edges = np.linspace(0, n_rows, parts + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _rows(frame: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    return frame.iloc[start:stop]


def _empty(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


def compute_features(client: Client, data: TrainingData) -> pd.DataFrame:
    """Features with dask dataframe on the cluster, gathered as one pandas frame of model rows."""
    ddf = dd.from_delayed(data.chunks, meta=data.meta, verify_meta=False)
    features = build_features(ddf, data.store)
    rows = features[(features["Open"] == 1) & (features["Sales"] > 0)]
    return client.compute(rows).result()


def make_search(space: SearchSpace, strategy: str, folds: list, seed: int, client: Client, progress: bool):
    import dask_ml.model_selection as dms

    pipeline = build_pipeline(seed=seed, max_iter=space.max_iter)
    common = dict(scoring=RMSPE_SCORER, cv=folds, refit=False)
    scheduler = ProgressGet(client, "search", enabled=progress)
    if strategy == "random" or (space.n_candidates and space.n_candidates < space.grid_size):
        # a search file's n_candidates asks for that many random candidates, whatever the strategy's default
        n_iter = space.n_candidates or max(1, space.grid_size // 2)
        return dms.RandomizedSearchCV(
            pipeline, space.grid, n_iter=n_iter, random_state=seed, scheduler=scheduler, **common
        )
    return dms.GridSearchCV(pipeline, space.grid, scheduler=scheduler, **common)


def candidates_of(space: SearchSpace, seed: int) -> list[dict[str, Any]]:
    """The grid, or n_candidates random draws from it (as the dask-ml searches take them)."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    if space.n_candidates and space.n_candidates < space.grid_size:
        return list(ParameterSampler(space.grid, n_iter=space.n_candidates, random_state=seed))
    return list(ParameterGrid(space.grid))


def run_search(
    client: Client, rows: pd.DataFrame, space: SearchSpace, strategy: str, seed: int, progress: bool = True
) -> SearchOutcome:
    """The parallel search on a sample of the training rows, with time-ordered folds."""
    folds = date_block_folds(rows["Date"], space.folds)
    X, y = rows[FEATURES], rows[TARGET].to_numpy()
    if strategy == "halving":
        return run_halving(client, X, y, folds, space, seed, progress)
    search = make_search(space, strategy, folds, seed, client, progress)
    with measure(client) as eff, warnings.catch_warnings():
        # dask-ml puts the search sample into the graph once (it is shared by every fit); that is intended.
        warnings.filterwarnings("ignore", message=".*Sending large graph.*")
        search.fit(X, y)
    cv = pd.DataFrame(search.cv_results_)
    best = cv.loc[cv["mean_test_score"].idxmax()]
    params = {k: _plain(v) for k, v in best["params"].items()}
    return SearchOutcome(cv, params, float(-best["mean_test_score"]), len(cv), eff)


def run_halving(
    client: Client, X: pd.DataFrame, y: np.ndarray, folds: list, space: SearchSpace, seed: int, progress: bool
) -> SearchOutcome:
    from tqdm.auto import tqdm

    candidates = candidates_of(space, seed)
    for c in candidates:  # partial_fit exists for the stochastic solvers only, and refuses early_stopping
        if c.get("mlp__solver", "adam") == "lbfgs" or c.get("mlp__early_stopping"):
            raise ValueError(
                f"search space {space.name}: --strategy halving trains with partial_fit, which solver lbfgs and "
                "early_stopping do not support; use --strategy grid or leave them out"
            )
    schedule = halving_schedule(space, len(candidates))
    bound = schedule.epoch_units(len(candidates)) * len(folds)
    with tqdm(total=bound, desc="search", unit="epoch", disable=not progress) as bar, measure(client) as eff:
        result = halving.search(client, X, y, folds, candidates, schedule, seed, bar.update)
    best = result.cv_results.loc[result.best_index]
    work = {
        "epoch_units": result.epoch_units,
        "grid_epoch_units": result.grid_epoch_units,
        "fraction_of_grid": round(result.epoch_units / result.grid_epoch_units, 3),
        "schedule": {
            "rungs": list(schedule.rungs),
            **({"keep": list(schedule.keep)} if schedule.keep else {"factor": schedule.factor}),
            "survivors": schedule.survivors(len(candidates)),
            "promotion": "async" if schedule.asynchronous else "sync",
        },
    }
    params = {k: _plain(v) for k, v in best["params"].items()}
    return SearchOutcome(result.cv_results, params, float(-best["mean_test_score"]), len(candidates), eff, work)


def halving_schedule(space: SearchSpace, n_candidates: int) -> halving.Schedule:
    asynchronous = space.promotion == "async"
    if space.rungs:  # validated by load_space (increasing, >= 1; factor >= 2; keep decreasing, below n)
        return halving.Schedule(space.rungs, space.factor or 2, asynchronous, space.keep)
    return halving.default_schedule(space.max_iter, n_candidates, space.factor, asynchronous)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def fit_and_predict(
    params: dict[str, Any], seed: int, max_iter: int, X: pd.DataFrame, y: np.ndarray, X_holdout: pd.DataFrame
) -> tuple[np.ndarray, float]:
    """Runs on a worker: fit the pipeline with ``params`` and predict the holdout (log scale). Returns the
    predictions and the fit time."""
    start = time.perf_counter()
    model = build_pipeline(seed=seed, max_iter=max_iter).set_params(**params)
    model.fit(X, y)
    return model.predict(X_holdout), time.perf_counter() - start


def effective_space(opts: RossmannOptions) -> SearchSpace:
    """The search space the options name, with --folds and --sample-rows applied."""
    if opts.strategy not in STRATEGIES:
        raise ValueError(f"--strategy {opts.strategy!r}: expected one of {', '.join(STRATEGIES)}")
    space = load_space(opts.search)
    return replace(space, folds=opts.folds or space.folds, sample_rows=opts.sample_rows or space.sample_rows)


@dataclass(frozen=True)
class Holdout:
    """The best candidate refit on ``rows`` rows and scored on the holdout, next to the median baseline."""

    rows: int
    model_rmspe: float
    baseline_rmspe: float
    refit_cpu_s: float


def refit_and_score(
    client: Client,
    fit_rows: pd.DataFrame,
    holdout: pd.DataFrame,
    best_params: dict,
    opts: RossmannOptions,
    max_iter: int,
) -> Holdout:
    refit = sample_rows(fit_rows, opts.refit_rows or len(fit_rows), opts.seed)
    X_f, y_f, holdout_f = client.scatter([refit[FEATURES], refit[TARGET].to_numpy(), holdout[FEATURES]])
    future = client.submit(fit_and_predict, best_params, opts.seed, max_iter, X_f, y_f, holdout_f, pure=False)
    pred_log, refit_s = future.result()
    model_rmspe = rmspe(holdout["Sales"].to_numpy(), sales_from_log(pred_log))
    baseline_rmspe = rmspe(holdout["Sales"].to_numpy(), median_baseline(fit_rows, holdout))
    return Holdout(len(refit), model_rmspe, baseline_rmspe, refit_s)


def run(client: Client, opts: RossmannOptions, scheduler_address: str = "", code_shipping: str = "") -> dict:
    """Run the whole job; returns the summary (also written to the run folder with the other results)."""
    clock = {"start": time.perf_counter()}
    space = effective_space(opts)
    data = load_data(client, opts)
    clock["data"] = time.perf_counter()
    rows = compute_features(client, data)
    clock["features"] = time.perf_counter()
    fit_rows, holdout = split_holdout(rows)
    search_rows = sample_rows(fit_rows, space.sample_rows, opts.seed)
    outcome = run_search(client, search_rows, space, opts.strategy, opts.seed, opts.progress)
    clock["search"] = time.perf_counter()
    scored = refit_and_score(client, fit_rows, holdout, outcome.best_params, opts, space.max_iter)
    clock["done"] = time.perf_counter()

    counts = {
        "train_csv": data.n_rows,
        "model_rows": len(rows),
        "fit_rows": len(fit_rows),
        "holdout_rows": len(holdout),
        "search_rows": len(search_rows),
        "refit_rows": scored.rows,
    }
    summary = build_summary(opts, space, data.source, counts, holdout, outcome, scored, clock)
    summary.update(scheduler_address=scheduler_address, code_shipping=code_shipping)
    summary["run_folder"] = str(write_results(Path(opts.out) / timestamp(), summary, outcome, scored))
    return summary


def build_summary(
    opts: RossmannOptions,
    space: SearchSpace,
    source: str,
    counts: dict[str, int],
    holdout: pd.DataFrame,
    outcome: SearchOutcome,
    scored: Holdout,
    clock: dict[str, float],
) -> dict[str, Any]:
    """summary.json of a run: what was searched on what, the winner, its holdout score, timings, versions."""
    eff = outcome.efficiency
    return {
        "job": "rossmann",
        "data": source,
        "rows": counts,
        "holdout": {"first_date": str(holdout["Date"].min().date()), "last_date": str(holdout["Date"].max().date())},
        "search": {
            "space": space.name,
            "strategy": opts.strategy,
            "folds": space.folds,
            "grid": {k: [_jsonable(v) for v in vs] for k, vs in space.grid.items()},
            "max_iter": space.max_iter,
            **({"work": outcome.work} if outcome.work else {}),
        },
        "best_params": {k: _jsonable(v) for k, v in outcome.best_params.items()},
        "cv_rmspe": round(outcome.best_cv_rmspe, 6),
        "holdout_rmspe": {"model": round(scored.model_rmspe, 6), "baseline": round(scored.baseline_rmspe, 6)},
        "n_candidates": outcome.n_candidates,
        "timing_s": {
            "data": round(clock["data"] - clock["start"], 2),
            "features": round(clock["features"] - clock["data"], 2),
            "search": round(clock["search"] - clock["features"], 2),
            "refit_and_score": round(clock["done"] - clock["search"], 2),
            "total": round(clock["done"] - clock["start"], 2),
        },
        "search_fit_cpu_s": round(eff.busy_s, 2),
        "refit_cpu_s": round(scored.refit_cpu_s, 2),
        "parallel_efficiency": round(eff.parallel_efficiency, 3),
        "cluster_threads": eff.threads,
        "versions": local_versions(),
        "options": asdict(opts),
    }


def write_results(folder: Path, summary: dict[str, Any], outcome: SearchOutcome, scored: Holdout) -> Path:
    """The run folder, written at once: summary.json, cv_results.csv and search.png."""
    cv_out = outcome.cv_results.drop(columns=["params"]).copy()
    cv_out.insert(0, "cv_rmspe", -cv_out["mean_test_score"])
    write_run_folder(
        folder,
        {
            "summary.json": write_json({**summary, "run_folder": str(folder)}),
            "cv_results.csv": lambda p: cv_out.to_csv(p, index=False),
            "search.png": lambda p: plot_search(cv_out, scored.baseline_rmspe, outcome.best_cv_rmspe, p),
        },
    )
    return folder


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return _plain(value)


def plot_search(cv: pd.DataFrame, baseline_rmspe: float, best: float, path: Path) -> None:
    """CV RMSPE of every candidate by each hyperparameter value, with the baseline's holdout RMSPE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "rung" in cv:  # halving: each candidate where it ended, not its earlier rungs' shorter training
        cv = cv.sort_values("rung").groupby("candidate").tail(1)
    params = [c for c in cv.columns if c.startswith("param_")]
    fig, axes = plt.subplots(1, max(1, len(params)), figsize=(4 * max(1, len(params)), 3.6), squeeze=False)
    for ax, column in zip(axes[0], params, strict=False):
        labels = cv[column].astype(str)
        order = sorted(labels.unique())
        x = labels.map({v: i for i, v in enumerate(order)})
        jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(x))
        ax.scatter(x + jitter, cv["cv_rmspe"], s=18, alpha=0.8)
        ax.axhline(baseline_rmspe, color="tab:red", linestyle="--", label="median baseline (holdout)")
        ax.axhline(best, color="tab:green", linestyle=":", label="best candidate (CV)")
        ax.set_xticks(range(len(order)), order, rotation=20, fontsize=8)
        ax.set_title(column.removeprefix("param_"), fontsize=9)
        ax.set_ylabel("CV RMSPE (lower is better)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def format_table(summary: dict) -> str:
    """The terminal summary of a run."""
    h = summary["holdout_rmspe"]
    t = summary["timing_s"]
    comparison = compare_to_baseline(h["model"], h["baseline"])
    lines = [
        ("data", summary["data"]),
        ("rows (model / holdout)", f"{summary['rows']['model_rows']:,} / {summary['rows']['holdout_rows']:,}"),
        (
            "search",
            f"{summary['search']['strategy']} over {summary['n_candidates']} candidates x "
            f"{summary['search']['folds']} folds on {summary['rows']['search_rows']:,} rows"
            + (f", {w['fraction_of_grid']:.0%} of the grid's epochs" if (w := summary["search"].get("work")) else ""),
        ),
        ("best params", ", ".join(f"{k.split('__')[-1]}={v}" for k, v in summary["best_params"].items())),
        ("CV RMSPE (best)", f"{summary['cv_rmspe']:.4f}"),
        ("holdout RMSPE model", f"{h['model']:.4f}"),
        ("holdout RMSPE baseline", f"{h['baseline']:.4f}  ({comparison})"),
        ("wall time", f"{t['total']:.1f} s (search {t['search']:.1f} s, refit {t['refit_and_score']:.1f} s)"),
        ("parallel efficiency", f"{summary['parallel_efficiency']:.2f} on {summary['cluster_threads']} threads"),
        ("scheduler", summary["scheduler_address"] or "-"),
        ("results", summary.get("run_folder", "-")),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in lines)


def compare_to_baseline(model: float, baseline: float) -> str:
    """How the model's holdout RMSPE compares with the baseline's, in words that stay true either way."""
    if not baseline:
        return "no baseline error to compare with"
    if model <= baseline:
        return f"model error {1 - model / baseline:.1%} lower than the baseline's"
    return f"model is worse: error {model / baseline:.1f}x the baseline's"

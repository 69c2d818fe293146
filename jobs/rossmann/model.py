"""The model (a scikit-learn Pipeline: ColumnTransformer + MLPRegressor), its search spaces, the RMSPE scorer,
the median baseline and time-ordered CV folds. Pure functions and data; no cluster code here."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import make_scorer
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from jobs.rossmann.features import CATEGORICAL, NUMERIC, STORE_KEYS

# --- metric and baseline ------------------------------------------------------------------------------------


def rmspe(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean square percentage error on the original scale, ignoring zero-sales days (Kaggle's metric)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    mask = y_true > 0
    return float(np.sqrt(np.mean(((y_true[mask] - y_pred[mask]) / y_true[mask]) ** 2)))


def sales_from_log(y_log_pred: np.ndarray) -> np.ndarray:
    """Sales from predictions on the log1p scale, clipped to [0, 20] first: no negative sales, and a diverged
    network's output cannot overflow expm1 (e^20 is about 4.9e8, far above any store's day)."""
    return np.expm1(np.clip(y_log_pred, 0, 20))


def rmspe_from_log(y_log_true: np.ndarray, y_log_pred: np.ndarray) -> float:
    """RMSPE of predictions made on the log1p scale, measured on the original scale."""
    return rmspe(np.expm1(y_log_true), sales_from_log(y_log_pred))


# Higher is better for scikit-learn, so the search maximises -RMSPE.
RMSPE_SCORER = make_scorer(rmspe_from_log, greater_is_better=False)


def median_baseline(train: pd.DataFrame, holdout: pd.DataFrame) -> np.ndarray:
    """Predict each holdout row with the median Sales of its store x DayOfWeek x Promo in the training rows
    (falling back to the store's median, then the overall median)."""
    keys = ["Store", "DayOfWeek", "Promo"]
    fine = train.groupby(keys)["Sales"].median().rename("fine")
    coarse = train.groupby("Store")["Sales"].median().rename("coarse")
    out = holdout[keys].join(fine, on=keys).join(coarse, on="Store")
    return out["fine"].fillna(out["coarse"]).fillna(train["Sales"].median()).to_numpy()


# --- the model ----------------------------------------------------------------------------------------------


def build_pipeline(seed: int = 0, max_iter: int = 12) -> Pipeline:
    """Preprocessing (scaled numerics, one-hot calendar/store categories, target-encoded store keys) + an MLP."""
    store_encoder = TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=seed))
    preprocess = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32), CATEGORICAL),
            ("store", make_pipeline(store_encoder, StandardScaler()), STORE_KEYS),
        ],
        verbose_feature_names_out=False,
    )
    mlp = CappedMLPRegressor(
        hidden_layer_sizes=(64, 32),
        batch_size=512,
        max_iter=max_iter,
        learning_rate_init=1e-3,
        alpha=1e-4,
        random_state=seed,
        tol=1e-5,
        n_iter_no_change=3,
    )
    return Pipeline([("pre", preprocess), ("mlp", mlp)])


class CappedMLPRegressor(MLPRegressor):
    """MLPRegressor that learns a standardised target (log sales around 8.5 with a spread of 0.4: unscaled, the
    first epochs chase the mean and small samples diverge) and does not warn when max_iter stops it: the search
    caps epochs on purpose. ``partial_fit`` takes the target's mean and scale from its first call."""

    def fit(self, X, y):
        y = np.asarray(y, dtype=float)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return super().fit(X, (y - self.y_mean_) / self.y_scale_)

    def partial_fit(self, X, y):
        y = np.asarray(y, dtype=float)
        if not hasattr(self, "y_mean_"):
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        return super().partial_fit(X, (y - self.y_mean_) / self.y_scale_)

    def predict(self, X):
        return super().predict(X) * self.y_scale_ + self.y_mean_


# --- search spaces and folds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """What to search: a parameter grid over pipeline step parameters, the CV folds and the sample size."""

    name: str
    grid: dict[str, list[Any]]
    folds: int = 3
    sample_rows: int = 60_000
    max_iter: int = 12
    n_candidates: int | None = None  # None: the whole grid; a number: that many random candidates
    rungs: tuple[int, ...] | None = None  # halving: epochs at which candidates are compared (default: derived)
    factor: int | None = None  # halving: keep the best 1/factor per rung (default 2; 3 above 16 candidates when
    # the rungs are derived)
    keep: tuple[int, ...] | None = None  # halving, instead of factor: how many go on after each rung but the last
    promotion: str = "sync"  # halving: "sync" (when a rung has finished) or "async" (ASHA)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_size(self) -> int:
        return int(np.prod([len(v) for v in self.grid.values()]))


BUILTIN_SPACES: dict[str, SearchSpace] = {
    "small": SearchSpace(
        "small",
        {"mlp__hidden_layer_sizes": [(32,), (64, 32)], "mlp__alpha": [1e-4, 1e-2]},
        folds=2,
        sample_rows=30_000,
        max_iter=40,
    ),
    # One rate: a larger one leads early and loses by epoch 12. Why these rungs: docs/benchmarks.md#search-spaces
    "default": SearchSpace(
        "default",
        {
            "mlp__hidden_layer_sizes": [(32,), (64,), (64, 32), (128, 64)],
            "mlp__alpha": [1e-4, 1e-2],
        },
        folds=3,
        sample_rows=60_000,
        max_iter=12,
        rungs=(1, 7, 12),
        keep=(3, 1),
    ),
    # One rate, for the same reason. Why these rungs: docs/benchmarks.md#search-spaces
    "large": SearchSpace(
        "large",
        {
            "pre__store__targetencoder__smooth": ["auto", 10.0, 50.0],
            "mlp__hidden_layer_sizes": [(64,), (64, 32), (128, 64)],
            "mlp__alpha": [1e-5, 1e-4, 1e-3, 1e-2],
        },
        folds=3,
        sample_rows=150_000,
        max_iter=20,
        rungs=(2, 5, 12, 16, 20),
        factor=2,
    ),
}

SPACE_KEYS = {"grid", "folds", "sample_rows", "max_iter", "n_candidates", "rungs", "factor", "keep", "promotion"}
INT_KEYS = ("folds", "sample_rows", "max_iter", "n_candidates", "factor")


def load_space(spec: str) -> SearchSpace:
    """A built-in space by name, or a YAML file with ``grid`` (required) and optional folds, sample_rows,
    max_iter, n_candidates, rungs, factor or keep, and promotion (halving). Lists of hidden_layer_sizes become
    tuples."""
    if spec in BUILTIN_SPACES:
        return BUILTIN_SPACES[spec]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--search {spec!r}: expected one of {', '.join(BUILTIN_SPACES)} or a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: YAML syntax error: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("grid"), dict) or not data["grid"]:
        raise ValueError(f"{path}: key grid: expected a mapping of pipeline parameter -> list of values")
    unknown = set(data) - SPACE_KEYS
    if unknown:
        raise ValueError(f"{path}: key {sorted(unknown)[0]}: unknown (expected {', '.join(sorted(SPACE_KEYS))})")
    valid = build_pipeline().get_params()
    grid: dict[str, list[Any]] = {}
    for key, values in data["grid"].items():
        if key not in valid:
            raise ValueError(f"{path}: key grid.{key}: not a parameter of the pipeline")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: key grid.{key}: expected a non-empty list")
        grid[key] = [tuple(v) if isinstance(v, list) else v for v in values]
    for key in INT_KEYS:
        if key in data and (not isinstance(data[key], int) or data[key] < (2 if key in ("folds", "factor") else 1)):
            raise ValueError(f"{path}: key {key}: expected an integer >= {2 if key in ('folds', 'factor') else 1}")
    extra: dict[str, Any] = {k: data[k] for k in INT_KEYS if k in data}
    if "rungs" in data:
        rungs = data["rungs"]
        if not isinstance(rungs, list) or not rungs or not all(isinstance(r, int) and r >= 1 for r in rungs):
            raise ValueError(f"{path}: key rungs: expected a list of epoch counts >= 1, e.g. [3, 6, 12]")
        if rungs != sorted(set(rungs)):
            raise ValueError(f"{path}: key rungs: expected increasing epoch counts, got {rungs}")
        extra["rungs"] = tuple(rungs)
        extra["max_iter"] = rungs[-1]  # the last rung is the full budget
    if "keep" in data:
        size = SearchSpace(path.stem, grid).grid_size
        extra["keep"] = _keep(path, data, min(data.get("n_candidates") or size, size))  # candidates_of caps at the grid
    if "promotion" in data:
        if data["promotion"] not in ("sync", "async"):
            raise ValueError(f"{path}: key promotion: expected sync or async, got {data['promotion']!r}")
        extra["promotion"] = data["promotion"]
    return SearchSpace(path.stem, grid, **extra)


def _keep(path: Path, data: dict, n_candidates: int) -> tuple[int, ...]:
    """A search file's ``keep``: one count per rung but the last, each below the one before (the first below the
    number of candidates), and not together with ``factor``."""
    keep, rungs = data["keep"], data.get("rungs")
    if "factor" in data:
        raise ValueError(f"{path}: key keep: give keep or factor, not both")
    if not isinstance(rungs, list) or not isinstance(keep, list) or len(keep) != len(rungs) - 1:
        raise ValueError(f"{path}: key keep: expected one count per rung but the last (rungs [1, 6, 12]: keep [3, 1])")
    counts = [n_candidates, *keep]
    if not all(type(k) is int and 1 <= k < before for before, k in zip(counts, keep, strict=False)):
        raise ValueError(
            f"{path}: key keep: expected decreasing counts >= 1 below the {n_candidates} candidates, got {keep}"
        )
    return tuple(keep)


def date_block_folds(dates: pd.Series, n_folds: int, block_days: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-series CV: fold k validates on a block of ``block_days`` days and trains on everything before it;
    blocks are the last ``n_folds`` blocks before the end of ``dates`` (which must exclude the holdout)."""
    dates = pd.Series(pd.to_datetime(dates)).reset_index(drop=True)
    end = dates.max()
    folds = []
    for k in range(n_folds, 0, -1):
        start = end - pd.Timedelta(days=block_days * k)
        stop = start + pd.Timedelta(days=block_days)
        train_idx = np.flatnonzero((dates <= start).to_numpy())
        test_idx = np.flatnonzero(((dates > start) & (dates <= stop)).to_numpy())
        if len(train_idx) and len(test_idx):
            folds.append((train_idx, test_idx))
    if len(folds) < min(2, n_folds):
        raise ValueError(f"not enough history for {n_folds} folds of {block_days} days")
    return folds


def sample_rows(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded random sample of ``n`` rows (all rows if fewer), in date order."""
    if len(rows) > n:
        rows = rows.sample(n=n, random_state=seed)
    return rows.sort_values(["Date", "Store"], kind="stable").reset_index(drop=True)

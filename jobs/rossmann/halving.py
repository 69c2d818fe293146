"""Successive halving that resumes its survivors, on Dask futures (``--strategy halving``).

Every candidate trains for the first rung's epochs on every fold; the best 1/factor by mean fold RMSPE go on to the
next rung, where they *continue* training (``MLPRegressor.partial_fit``: one epoch a call, weights and Adam state
kept) instead of starting again. Preprocessing is fitted once per fold (and per value of its own parameters) on
the workers and kept there; each candidate x fold model stays on the worker that trained it between rungs.

Promotion is synchronous by default (a rung's best go on once all of it has finished: reproducible, and measured to
leave the cores idle ~1 % of the time, docs/benchmarks.md), or asynchronous with ``promotion: async`` in the search
space (ASHA, Li et al. 2018, "A System for Massively Parallel Hyperparameter Tuning": a candidate goes on as soon as
it is in the top 1/factor of those that finished its rung, never more than that share; the choice then depends on
the order in which candidates finish). The final rung's best mean RMSPE wins.

The pure parts (schedule, promotion, work accounting) are plain functions; ``search`` drives the futures.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, Future, as_completed

from jobs.rossmann.model import build_pipeline, rmspe_from_log

# --- the schedule ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Epochs at which candidates are compared (the last is the full budget) and the fraction kept (1/factor)."""

    rungs: tuple[int, ...]
    factor: int
    asynchronous: bool = False  # True: ASHA; False: promote when every candidate of the rung has finished

    def survivors(self, n_candidates: int) -> list[int]:
        """How many candidates may reach each rung."""
        out = [n_candidates]
        for _ in self.rungs[1:]:
            out.append(max(1, out[-1] // self.factor))
        return out

    def epoch_units(self, n_candidates: int) -> int:
        """Epochs trained per fold when every allowed promotion happens (the work bound)."""
        steps = np.diff((0, *self.rungs))
        return int(sum(n * int(s) for n, s in zip(self.survivors(n_candidates), steps, strict=True)))


def default_schedule(
    max_iter: int, n_candidates: int, factor: int | None = None, asynchronous: bool = False
) -> Schedule:
    """Rungs at max_iter / factor^k (k = levels-1 .. 0), enough levels that about ``factor`` candidates reach the
    last one: factor 2 for up to 16 candidates (8 x 12 epochs: 3, 6, 12), else 3."""
    factor = factor or (2 if n_candidates <= 16 else 3)
    levels = max(1, min(int(math.log(max(n_candidates, 1), factor)), 4))
    rungs = sorted({max(1, round(max_iter / factor**k)) for k in range(levels)})
    return Schedule(tuple(rungs), factor, asynchronous)


def check_schedule(schedule: Schedule, source: str) -> Schedule:
    if not schedule.rungs or any(b <= a for a, b in zip(schedule.rungs, schedule.rungs[1:], strict=False)):
        raise ValueError(f"{source}: key rungs: expected increasing epoch counts, got {list(schedule.rungs)}")
    if schedule.rungs[0] < 1 or schedule.factor < 2:
        raise ValueError(f"{source}: expected rungs >= 1 epoch and factor >= 2")
    return schedule


# --- promotion (pure) -----------------------------------------------------------------------------------------------


def promotable(finished: dict[int, float], promoted: set[int], factor: int) -> list[int]:
    """Candidates of one rung to promote now: those in the top floor(len(finished) / factor) by score (lower
    is better) that are not promoted yet. Never more than floor(finished / factor) in all."""
    quota = len(finished) // factor
    top = sorted(finished, key=lambda c: (finished[c], c))[:quota]
    return [c for c in top if c not in promoted][: max(0, quota - len(promoted))]


# --- tasks (run on the workers) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldData:
    """One fold's preprocessed arrays (float32) and targets (log sales)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def prepare_fold(
    X: pd.DataFrame, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, pre_params: dict, seed: int
) -> FoldData:
    """Fit the pipeline's preprocessing on the fold's training rows, transform both parts."""
    pre = build_pipeline(seed=seed).named_steps["pre"]
    pre.set_params(**{k.removeprefix("pre__"): v for k, v in pre_params.items()})
    y_train = y[train_idx]
    X_train = np.asarray(pre.fit_transform(X.iloc[train_idx], y_train), dtype=np.float32)
    X_test = np.asarray(pre.transform(X.iloc[test_idx]), dtype=np.float32)
    return FoldData(X_train, y_train, X_test, y[test_idx])


@dataclass
class Trainee:
    """A candidate's model on one fold, between rungs: the MLP (weights and Adam state), its epochs, the
    training-loss stopping rule's state, and its validation RMSPE after each rung."""

    model: Any
    epochs: int = 0
    best_loss: float = math.inf
    no_improvement: int = 0
    stopped: bool = False
    scores: list[float] = field(default_factory=list)

    @property
    def adam_steps(self) -> int:
        return int(self.model._optimizer.t) if hasattr(self.model, "_optimizer") else 0


def train_until(trainee: Trainee | None, fold: FoldData, mlp_params: dict, epochs: int, seed: int) -> Trainee:
    """Continue (or start) training to ``epochs`` epochs with partial_fit, one epoch a call, applying the MLP's
    n_iter_no_change / tol rule between calls (partial_fit does not stop by itself); then score the fold."""
    from sklearn.exceptions import ConvergenceWarning

    if trainee is not None:
        trainee = copy.deepcopy(trainee)  # the input stays what it was: a recomputation after a worker loss needs it
    else:
        mlp = build_pipeline(seed=seed).named_steps["mlp"]
        mlp.set_params(**{k.removeprefix("mlp__"): v for k, v in mlp_params.items()})
        trainee = Trainee(mlp)
    mlp = trainee.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while trainee.epochs < epochs and not trainee.stopped:
            mlp.partial_fit(fold.X_train, fold.y_train)
            trainee.epochs += 1
            if mlp.loss_ > trainee.best_loss - mlp.tol:
                trainee.no_improvement += 1
            else:
                trainee.no_improvement = 0
            trainee.best_loss = min(trainee.best_loss, mlp.loss_)
            trainee.stopped = trainee.no_improvement >= mlp.n_iter_no_change
    trainee.scores.append(rmspe_from_log(fold.y_test, mlp.predict(fold.X_test)))
    return trainee


def _same(value: Any) -> Any:
    return value


def last_score(trainee: Trainee) -> tuple[float, int]:
    return trainee.scores[-1], trainee.epochs


# --- the driver (runs on the client) --------------------------------------------------------------------------------


@dataclass
class HalvingResult:
    cv_results: pd.DataFrame  # one row per candidate x rung reached
    best_index: int  # row of the winner in cv_results
    epoch_units: int  # epochs trained, summed over candidates and folds
    grid_epoch_units: int  # what the full grid would train
    schedule: Schedule


def split_params(params: dict) -> tuple[dict, dict]:
    pre = {k: v for k, v in params.items() if k.startswith("pre__")}
    return pre, {k: v for k, v in params.items() if not k.startswith("pre__")}


def search(
    client: Client,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    candidates: list[dict],
    schedule: Schedule,
    seed: int,
    on_epochs: Callable[[int], None] = lambda n: None,
) -> HalvingResult:
    """Run the asynchronous successive halving; ``on_epochs`` is told of each finished task's epochs."""
    # As tasks, not scattered: scattered data has no lineage (and the active memory manager keeps one replica), so
    # it would be lost with its worker; a task's data is recomputed from the scheduler's copy of its arguments.
    with warnings.catch_warnings():  # the search sample goes into the graph once, on purpose (above)
        warnings.filterwarnings("ignore", message=".*Sending large graph.*")
        X_f, y_f = client.submit(_same, X, pure=False), client.submit(_same, y, pure=False)
    prepared: dict[tuple[int, str], Future] = {}
    for c in candidates:
        pre, _ = split_params(c)
        for k, (tr, te) in enumerate(folds):
            key = (k, repr(sorted(pre.items())))
            if key not in prepared:
                prepared[key] = client.submit(prepare_fold, X_f, y_f, tr, te, pre, seed, pure=False)

    def fold_of(c: int, k: int) -> Future:
        return prepared[(k, repr(sorted(split_params(candidates[c])[0].items())))]

    trainees: dict[tuple[int, int], Future] = {}
    pending: dict[tuple[int, int], dict[int, float]] = {}  # (candidate, rung) -> fold -> score
    finished: list[dict[int, float]] = [{} for _ in schedule.rungs]  # rung -> candidate -> mean score
    promoted: list[set[int]] = [set() for _ in schedule.rungs]
    rows: list[dict[str, Any]] = []
    tasks = as_completed()
    where: dict[str, tuple[int, int, int]] = {}
    epochs_done = 0

    launched = [0 for _ in schedule.rungs]

    def launch(c: int, rung: int) -> None:
        launched[rung] += 1
        target = schedule.rungs[rung]
        for k in range(len(folds)):
            previous = trainees.get((c, k))
            trainee = client.submit(
                train_until, previous, fold_of(c, k), split_params(candidates[c])[1], target, seed, pure=False
            )
            trainees[(c, k)] = trainee
            score = client.submit(last_score, trainee, pure=False)
            where[score.key] = (c, k, rung)
            tasks.add(score)

    for c in range(len(candidates)):
        launch(c, 0)
    for score_future in tasks:
        c, k, rung = where.pop(score_future.key)
        score, epochs = score_future.result()
        step = schedule.rungs[rung] - (schedule.rungs[rung - 1] if rung else 0)
        epochs_done += step
        on_epochs(step)
        pending.setdefault((c, rung), {})[k] = score
        if len(pending[(c, rung)]) < len(folds):
            continue
        fold_scores = pending.pop((c, rung))
        finished[rung][c] = float(np.mean(list(fold_scores.values())))
        rows.append(_row(candidates[c], c, rung, schedule.rungs[rung], fold_scores, epochs))
        rung_done = len(finished[rung]) == launched[rung]
        if rung + 1 < len(schedule.rungs) and (schedule.asynchronous or rung_done):
            for winner in promotable(finished[rung], promoted[rung], schedule.factor):
                promoted[rung].add(winner)
                launch(winner, rung + 1)
    cv = pd.DataFrame(rows)
    top = cv[cv["rung"] == cv["rung"].max()]
    best = int(top["mean_test_score"].idxmax())
    cv["promoted"] = [r.candidate in promoted[r.rung] for r in cv.itertuples()]
    grid_units = len(candidates) * schedule.rungs[-1] * len(folds)
    return HalvingResult(cv, best, epochs_done, grid_units, schedule)


def _row(params: dict, c: int, rung: int, epochs: int, fold_scores: dict[int, float], trained: int) -> dict:
    row: dict[str, Any] = {"candidate": c, "rung": rung, "epochs": epochs, "epochs_trained": trained}
    row |= {f"param_{k}": str(v) if isinstance(v, tuple) else v for k, v in params.items()}
    row["params"] = params
    row |= {f"split{k}_test_score": -s for k, s in sorted(fold_scores.items())}
    row["mean_test_score"] = -float(np.mean(list(fold_scores.values())))
    return row

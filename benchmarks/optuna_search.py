"""Optuna measured against the job's halving search: the same candidates, folds, rungs and training code.

The study follows Optuna's documented Dask pattern: its storage lives on the scheduler
(``optuna_integration.DaskStorage``) and every worker runs ``study.optimize`` on it. ``GridSampler`` over the
candidates' indices makes the trials the grid's candidates; ``SuccessiveHalvingPruner`` (Optuna's ASHA) stops a
trial at a rung unless its mean fold RMSPE is in the top 1/factor of the trials that reported that rung. A trial
trains its folds with the job's own resumed training (``jobs.rossmann.halving.train_until``: partial_fit, fit's
updates) and fits each fold's preprocessing once per worker, so the two searches differ in how work is scheduled and
pruned: a trial reports at the halving schedule's rungs and the pruner judges a report once it reaches the next
min_resource x factor^k (large space, factor 2: 2, 4, 8, 16, every rung before the last; default space, rungs 1, 7,
12 keeping 3 then 1: factor 3, judged at 1, 3 and 9), and a trial trains all its folds in one task.
Benchmark code: it is not in the image, and the job does not import it.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

_FOLDS: dict[tuple, Any] = {}  # per worker process: (study, fold, preprocessing parameters) -> FoldData


def _objective(trial: Any, X, y, folds: list, candidates: list[dict], rungs: tuple[int, ...], seed: int) -> float:
    import optuna

    from jobs.rossmann import halving

    if trial.number >= len(candidates):
        # GridSampler hands a still-running candidate out again once every one has started (Optuna 5.0.0): the
        # grid is covered, so this worker stops instead of training a copy.
        trial.set_user_attr("duplicate", True)
        trial.study.stop()
        raise optuna.TrialPruned()
    index = trial.suggest_categorical("candidate", list(range(len(candidates))))
    pre, mlp = halving.split_params(candidates[index])
    data = []
    for i, (tr, te) in enumerate(folds):  # preprocessing fitted once per fold on each worker, as halving does
        key = (trial.study.study_name, i, halving.preprocessing_key(candidates[index]))
        if key not in _FOLDS:
            _FOLDS[key] = halving.prepare_fold(X, y, tr, te, pre, seed)
        data.append(_FOLDS[key])
    trainees: list = [None] * len(data)
    for rung in rungs:
        trainees = [halving.train_until(t, fold, mlp, rung, seed) for t, fold in zip(trainees, data, strict=True)]
        value = statistics.fmean(t.scores[-1] for t in trainees)
        trial.set_user_attr("epoch_units", sum(t.epochs for t in trainees))  # trained, over the folds
        trial.report(value, rung)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def _optimize(study: Any, X, y, folds: list, candidates: list[dict], rungs: tuple[int, ...], seed: int) -> int:
    """One worker's share: trials until the grid sampler has handed out every candidate."""
    study.optimize(lambda trial: _objective(trial, X, y, folds, candidates, rungs, seed))
    return len(study.trials)


def _quiet() -> None:
    """DaskStorage warns that it is experimental each time it is unpickled; Optuna logs every trial."""
    import optuna

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def reduction_factor(schedule: Any, n_candidates: int) -> int:
    """Optuna's pruner keeps 1/factor at each rung: the schedule's factor, or for ``keep`` counts the nearest whole
    ratio of its first cut (8 candidates keeping 3: 3)."""
    if not schedule.keep:
        return schedule.factor
    reaching = schedule.survivors(n_candidates)
    return max(2, round(reaching[0] / reaching[1]))


def optuna_search(client, sample, space, seed: int) -> dict:
    """Run the study on the client's workers; wall time, worker CPU efficiency, epochs trained and the winner."""
    import optuna
    from optuna_integration.dask import DaskStorage

    from jobs.rossmann.features import FEATURES, TARGET
    from jobs.rossmann.job import candidates_of, halving_schedule
    from jobs.rossmann.model import date_block_folds
    from jobs.runtime import measure

    folds = date_block_folds(sample["Date"], space.folds)
    candidates = candidates_of(space, seed)
    schedule = halving_schedule(space, len(candidates))
    _quiet()
    client.run(_quiet)
    study = optuna.create_study(
        storage=DaskStorage(client=client),
        sampler=optuna.samplers.GridSampler({"candidate": list(range(len(candidates)))}, seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=schedule.rungs[0], reduction_factor=reduction_factor(schedule, len(candidates))
        ),
        direction="minimize",
    )
    workers = list(client.nthreads())
    with measure(client) as eff:
        start = time.perf_counter()
        X, y = client.scatter([sample[FEATURES], sample[TARGET].to_numpy()], broadcast=True)
        futures = [
            client.submit(_optimize, study, X, y, folds, candidates, schedule.rungs, seed, pure=False, workers=[w])
            for w in workers
        ]
        client.gather(futures)
        wall = time.perf_counter() - start
    client.run(_FOLDS.clear)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = [t for t in study.trials if t.state in finished and not t.user_attrs.get("duplicate")]
    epochs = sum(int(t.user_attrs.get("epoch_units", 0)) for t in done)
    best = study.best_trial
    return {
        "wall_s": wall,
        "cpu_efficiency": eff.parallel_efficiency,
        "trials": len(done),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in done),
        "fraction_of_grid_epochs": round(epochs / (len(candidates) * space.max_iter * len(folds)), 3),
        "best_params": candidates[best.params["candidate"]],
    }

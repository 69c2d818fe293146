"""Successive halving that resumes its survivors, on Dask futures (``--strategy halving``).

Every candidate trains for the first rung's epochs on every fold; the best by mean fold RMSPE (1/factor of them, or
the counts a search file's ``keep`` names) go on to the next rung, where they *continue* training
(``MLPRegressor.partial_fit``: one epoch a call, weights and Adam state kept) instead of starting again.
Preprocessing is fitted once per fold (and per value of its own parameters) on the workers and kept there; each
candidate x fold model stays on the worker that trained it between rungs.

Promotion is synchronous by default: the choice a barrier at the end of each rung makes (reproducible), made as
early as it is certain (``decided``: a finished candidate goes on once no unfinished one can push it out), so cores
do not wait for a rung's last tasks when there is next-rung work. A lone finalist's folds are laid out over the
cores by McNaughton's wrap-around rule (``wrap_around``) when they outnumber them. Or asynchronous with
``promotion: async`` in the search space (ASHA, Li et al. 2018, "A System for Massively Parallel Hyperparameter
Tuning": a candidate goes on as soon as it is in the top share of those that finished its rung, never more than
that share; the choice then depends on the order in which candidates finish). The final rung's best mean RMSPE wins.

The pure parts (schedule, promotion, the wrap-around plan, work accounting) are plain functions; ``search`` drives
the futures.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client, Future, as_completed

from jobs.rossmann.model import build_pipeline, rmspe_from_log

# --- the schedule ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Epochs at which candidates are compared (the last is the full budget) and how many go on after each rung:
    the best 1/factor, or the counts in ``keep`` (one per rung but the last) when given."""

    rungs: tuple[int, ...]
    factor: int
    asynchronous: bool = False  # True: ASHA; False: the rung barrier's choice (made as soon as it is certain)
    keep: tuple[int, ...] | None = None

    def survivors(self, n_candidates: int) -> list[int]:
        """How many candidates may reach each rung."""
        out = [n_candidates]
        for rung in range(1, len(self.rungs)):
            out.append(max(1, min(self.keep[rung - 1], out[-1]) if self.keep else out[-1] // self.factor))
        return out

    def share(self, rung: int, n_candidates: int) -> Fraction:
        """The fraction of a rung's candidates that go on to the next."""
        if not self.keep:
            return Fraction(1, self.factor)
        reaching = self.survivors(n_candidates)
        return Fraction(reaching[rung + 1], reaching[rung])

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
    levels = 1  # the largest k with factor^k <= n_candidates (at least 1, at most 4 rungs)
    while levels < 4 and factor ** (levels + 1) <= n_candidates:
        levels += 1
    rungs = sorted({max(1, round(max_iter / factor**k)) for k in range(levels)})
    return Schedule(tuple(rungs), factor, asynchronous)


# --- promotion (pure) -----------------------------------------------------------------------------------------------


def promotable(finished: dict[int, float], promoted: set[int], share: Fraction, complete: bool = False) -> list[int]:
    """Candidates of one rung to promote now: those in the top floor(len(finished) x share) by score (lower is
    better) that are not promoted yet, never more than that many in all. Once the rung is ``complete`` at least
    one goes on (as Schedule.survivors counts), so the last rung is always reached."""
    quota = int(len(finished) * share)
    quota = max(1, quota) if complete else quota
    top = ranked(finished)[:quota]
    return [c for c in top if c not in promoted][: max(0, quota - len(promoted))]


def decided(finished: dict[int, float], promoted: set[int], quota: int, unfinished: int) -> list[int]:
    """The synchronous rule, applied as early as its choice is certain: of a rung's ``quota`` places, the best
    ``quota - unfinished`` of those finished keep theirs whatever the ``unfinished`` candidates score, so they go on
    now instead of at the rung's end (then unfinished = 0: the top ``quota``). The choice is the one a barrier makes;
    only the cores waiting for the rung's last tasks get work sooner."""
    top = ranked(finished)[: max(0, quota - unfinished)]
    return [c for c in top if c not in promoted]


def ranked(finished: dict[int, float]) -> list[int]:
    """Candidates best first (lower score), ties by index: one order for both promotion rules."""
    return sorted(finished, key=lambda c: (finished[c], c))


def wrap_around(chains: int, length: int, slots: int) -> list[list[tuple[int, int, int]]]:
    """McNaughton's wrap-around rule (1959) for ``chains`` equal sequences of ``length`` steps on ``slots`` cores:
    fill each core up to ceil(chains x length / slots) steps; a chain that does not fit gives its last steps to the
    end of this core and its first ones to the start of the next, which runs them before this core reaches them
    (length <= the bound, as chains >= slots). Each core's pieces in the order it runs them: (chain, first step, end
    step)."""
    if chains < slots:
        raise ValueError(f"wrap_around: {chains} chains on {slots} cores: fewer chains than cores need no split")
    bound = -(-chains * length // slots)
    plan: list[list[tuple[int, int, int]]] = [[] for _ in range(slots)]
    slot, used = 0, 0
    for chain in range(chains):
        if used + length > bound:
            head = length - (bound - used)
            if head < length:
                plan[slot].append((chain, head, length))
            slot, used = slot + 1, 0
            plan[slot].append((chain, 0, head))
            used = head
        else:
            plan[slot].append((chain, 0, length))
            used += length
    return plan


# --- tasks (run on the workers) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldData:
    """One fold's preprocessed arrays and targets (log sales). float64, as the grid's Pipeline hands them to the
    MLP, so a candidate trained rung by rung computes what ``fit`` computes."""

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
    X_train = np.asarray(pre.fit_transform(X.iloc[train_idx], y_train), dtype=np.float64)
    X_test = np.asarray(pre.transform(X.iloc[test_idx]), dtype=np.float64)
    return FoldData(X_train, y_train, X_test, y[test_idx])


@dataclass
class Trainee:
    """A candidate's model on one fold, between rungs: the MLP (weights, Adam state, the stopping rule's count, its
    generator with fit's row order), its epochs, whether fit would have stopped, and its validation RMSPE after
    each task (each rung, and the first piece of a lone finalist's fold that ``wrap_around`` split)."""

    model: Any
    epochs: int = 0
    stopped: bool = False
    scores: list[float] = field(default_factory=list)

    @property
    def adam_steps(self) -> int:
        return int(self.model._optimizer.t) if hasattr(self.model, "_optimizer") else 0


class FitOrderRandomState(np.random.RandomState):
    """The generator of a trainee's MLP: partial_fit, one epoch a call, then visits the rows in the order fit would.

    scikit-learn 1.9.1's MLP draws its initial weights and every epoch's shuffle from one generator. fit shuffles
    its index array again each epoch, so the permutations compose; partial_fit shuffles ``arange(n)`` afresh on
    every call (utils.resample: ``indices = arange(n); random_state.shuffle(indices)``). This generator draws the
    same permutation from the same stream and hands back its composition with the previous epoch's order. Pickled
    with its order (trainees move between workers)."""

    def __init__(self, seed: int | None = None, order: np.ndarray | None = None):
        super().__init__(seed)
        self.order = order

    def shuffle(self, x) -> None:
        if self.order is not None and len(self.order) != len(x):
            raise ValueError(f"a trainee's rows changed: {len(self.order)} rows, then {len(x)}")
        super().shuffle(x)
        if self.order is not None:
            x[:] = self.order[x]
        self.order = np.array(x)

    def __reduce__(self):
        return (_fit_order_random_state, (self.get_state(), self.order))


def _fit_order_random_state(state: tuple, order: np.ndarray | None) -> FitOrderRandomState:
    generator = FitOrderRandomState(order=order)
    generator.set_state(state)
    return generator


def train_until(trainee: Trainee | None, fold: FoldData, mlp_params: dict, epochs: int, seed: int) -> Trainee:
    """Continue (or start) training to ``epochs`` epochs with partial_fit, one epoch a call, applying the MLP's
    n_iter_no_change / tol rule between calls (partial_fit does not stop by itself); then score the fold. The
    updates are those of ``fit(max_iter=epochs)``: same initial weights, same rows in the same order, same Adam
    state, same stopping rule (tests/test_rossmann_halving.py compares the weights)."""
    from sklearn.exceptions import ConvergenceWarning

    if trainee is not None:
        trainee = copy.deepcopy(trainee)  # the input stays what it was: a recomputation after a worker loss needs it
    else:
        mlp = build_pipeline(seed=seed).named_steps["mlp"]
        mlp.set_params(**{k.removeprefix("mlp__"): v for k, v in mlp_params.items()})
        # partial_fit re-seeds its generator from an int random_state on every call (every epoch would draw the
        # same permutation); a RandomState object is used as it is, so the stream goes on across calls as in fit.
        mlp.set_params(random_state=FitOrderRandomState(mlp.random_state))
        trainee = Trainee(mlp)
    mlp = trainee.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while trainee.epochs < epochs and not trainee.stopped:
            mlp.partial_fit(fold.X_train, fold.y_train)
            trainee.epochs += 1
            # partial_fit keeps fit's no-improvement count (reset only on a first call) and asks the optimizer, as
            # fit does; it cannot stop a one-epoch call, so the answer is read here. The count stays above
            # n_iter_no_change exactly when the optimizer said stop (Adam always; adaptive SGD divides its rate by 5
            # and resets the count until the rate is 1e-6): scikit-learn 1.9.1, _fit_stochastic.
            trainee.stopped = mlp._no_improvement_count > mlp.n_iter_no_change
    trainee.scores.append(rmspe_from_log(fold.y_test, mlp.predict(fold.X_test)))
    return trainee


def train_after(_before: Trainee, *args: Any) -> Trainee:
    """``train_until`` once the piece planned before it on the same core has run (an argument, so Dask orders
    them; its value is not used). Without it a worker would start a later piece whose data is already there."""
    return train_until(*args)


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


def split_params(params: dict) -> tuple[dict, dict]:
    pre = {k: v for k, v in params.items() if k.startswith("pre__")}
    return pre, {k: v for k, v in params.items() if not k.startswith("pre__")}


def preprocessing_key(params: dict) -> str:
    """Candidates with the same key share each fold's fitted preprocessing."""
    return repr(sorted(split_params(params)[0].items()))


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
    """Run the successive halving; ``on_epochs`` is told of each finished task's epochs."""
    run = _Run(client, folds, candidates, schedule, seed)
    run.prepare(X, y)
    for c in range(len(candidates)):
        run.launch(c, 0)
    for score_future in run.tasks:
        step = run.finished_task(score_future)
        on_epochs(step)
    return run.result()


class _Run:
    """The state of one search on the client: futures of the folds' data and of each candidate x fold model,
    the scores that came back, and who was promoted."""

    def __init__(self, client: Client, folds: list, candidates: list[dict], schedule: Schedule, seed: int):
        self.client, self.folds, self.candidates, self.schedule, self.seed = client, folds, candidates, schedule, seed
        self.prepared: dict[tuple[int, str], Future] = {}
        self.trainees: dict[tuple[int, int], Future] = {}  # (candidate, fold) -> its model, on a worker
        self.pending: dict[
            tuple[int, int], dict[int, tuple[float, int]]
        ] = {}  # (candidate, rung) -> fold -> score, epochs
        self.epochs_of: dict[tuple[int, int], int] = {}  # (candidate, fold) -> epochs trained so far
        self.finished: list[dict[int, float]] = [{} for _ in schedule.rungs]  # rung -> candidate -> mean score
        self.promoted: list[set[int]] = [set() for _ in schedule.rungs]
        self.launched = [0 for _ in schedule.rungs]
        self.where: dict[str, tuple[int, int, int]] = {}  # score future -> (candidate, fold, rung)
        self.rows: list[dict[str, Any]] = []
        self.tasks = as_completed()
        self.epochs_done = 0

    def prepare(self, X: pd.DataFrame, y: np.ndarray) -> None:
        """Preprocessing per fold and per value of the preprocessing parameters, on the workers."""
        # As tasks, not scattered: scattered data has no lineage (and the active memory manager keeps one replica),
        # so it would be lost with its worker; a task's data is recomputed from the scheduler's copy of its inputs.
        with warnings.catch_warnings():  # the search sample goes into the graph once, on purpose
            warnings.filterwarnings("ignore", message=".*Sending large graph.*")
            X_f, y_f = self.client.submit(_same, X, pure=False), self.client.submit(_same, y, pure=False)
        for c in range(len(self.candidates)):
            pre = split_params(self.candidates[c])[0]
            for k, (tr, te) in enumerate(self.folds):
                if (key := self.fold_key(c, k)) not in self.prepared:
                    self.prepared[key] = self.client.submit(prepare_fold, X_f, y_f, tr, te, pre, self.seed, pure=False)

    def fold_key(self, c: int, k: int) -> tuple[int, str]:
        return (k, preprocessing_key(self.candidates[c]))

    def launch(self, c: int, rung: int) -> None:
        """Candidate ``c`` trains on (or continues to) the rung's epochs on every fold. Alone in the last rung with
        more folds than cores (3 folds, 2 cores: one core would wait for the third fold's whole rung), its folds'
        epochs are laid out by ``wrap_around``: a fold trains its first epochs on one worker and its last on another
        (the model moves once), and no core waits longer than one epoch's difference."""
        self.launched[rung] += 1
        mlp_params = split_params(self.candidates[c])[1]
        start, end = (self.schedule.rungs[rung - 1] if rung else 0), self.schedule.rungs[rung]
        pieces = [(0, k, 0, end - start, None) for k in range(len(self.folds))]  # (position, fold, first, end, core)
        alone = not self.schedule.asynchronous and self.schedule.survivors(len(self.candidates))[rung] == 1
        slots = (
            [w for w, n in self.client.nthreads().items() for _ in range(n)]
            if alone and rung == len(self.schedule.rungs) - 1
            else []
        )
        if 1 < len(slots) < len(self.folds) and len(self.folds) % len(slots):
            plan = wrap_around(len(self.folds), end - start, len(slots))
            pieces = [(position, *piece, slot) for slot, core in enumerate(plan) for position, piece in enumerate(core)]
        ran: dict[tuple[int | None, int], Future] = {}  # (core, position) -> the piece planned there
        for position, k, _, stop, slot in sorted(pieces, key=lambda p: (p[2], p[0])):
            # heads before tails (a tail continues its head's model), each core's pieces in their order
            before = (train_after, ran[(slot, position - 1)]) if position else (train_until,)
            worker = None if slot is None else slots[slot]
            ran[(slot, position)] = self.trainees[(c, k)] = self.client.submit(
                *before,
                self.trainees.get((c, k)),
                self.prepared[self.fold_key(c, k)],
                mlp_params,
                start + stop,
                self.seed,
                pure=False,
                workers=worker and [worker],
                allow_other_workers=bool(worker),  # a lost worker's pieces run elsewhere
            )
        for k in range(len(self.folds)):
            score = self.client.submit(last_score, self.trainees[(c, k)], pure=False)
            self.where[score.key] = (c, k, rung)
            self.tasks.add(score)

    def finished_task(self, score_future: Future) -> int:
        """Book a fold's score and epochs; when a candidate has all its folds, promote who may go on. Returns the
        rung's step in epochs (what the progress bar counts; a stopped model trains fewer)."""
        c, k, rung = self.where.pop(score_future.key)
        score, epochs = score_future.result()
        rungs = self.schedule.rungs
        self.epochs_done += epochs - self.epochs_of.get((c, k), 0)
        self.epochs_of[(c, k)] = epochs
        self.pending.setdefault((c, rung), {})[k] = (score, epochs)
        if len(self.pending[(c, rung)]) == len(self.folds):
            folds = self.pending.pop((c, rung))
            self.finished[rung][c] = float(np.mean([score for score, _ in folds.values()]))
            self.rows.append(_row(self.candidates[c], c, rung, rungs[rung], folds))
            if rung + 1 < len(rungs):
                for winner in self.chosen(rung):
                    self.promoted[rung].add(winner)
                    self.launch(winner, rung + 1)
        return rungs[rung] - (rungs[rung - 1] if rung else 0)

    def chosen(self, rung: int) -> list[int]:
        """Who goes on from ``rung`` now that one more candidate has finished it."""
        finished, promoted = self.finished[rung], self.promoted[rung]
        if self.schedule.asynchronous:
            share = self.schedule.share(rung, len(self.candidates))
            return promotable(finished, promoted, share, complete=len(finished) == self.launched[rung])
        reaching = self.schedule.survivors(len(self.candidates))
        return decided(finished, promoted, reaching[rung + 1], reaching[rung] - len(finished))

    def result(self) -> HalvingResult:
        cv = pd.DataFrame(self.rows)
        top = cv[cv["rung"] == cv["rung"].max()]
        best = int(top["mean_test_score"].idxmax())
        cv["promoted"] = [r.candidate in self.promoted[r.rung] for r in cv.itertuples()]
        grid_units = len(self.candidates) * self.schedule.rungs[-1] * len(self.folds)
        return HalvingResult(cv, best, self.epochs_done, grid_units)


def _row(params: dict, c: int, rung: int, epochs: int, folds: dict[int, tuple[float, int]]) -> dict:
    """A cv_results row: the candidate's parameters, its rung, and each fold's score (negated, as scikit-learn's);
    epochs_trained is the most any fold trained (the stopping rule may end a fold earlier)."""
    row: dict[str, Any] = {"candidate": c, "rung": rung, "epochs": epochs}
    row["epochs_trained"] = max(trained for _, trained in folds.values())
    row |= {f"param_{k}": str(v) if isinstance(v, tuple) else v for k, v in params.items()}
    row["params"] = params
    row |= {f"split{k}_test_score": -score for k, (score, _) in sorted(folds.items())}
    row["mean_test_score"] = -float(np.mean([score for score, _ in folds.values()]))
    return row

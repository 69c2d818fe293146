"""jobs/rossmann/halving.py: the schedule, the asynchronous promotion rule, resumed training (weights and Adam state
kept across rungs), the stopping rule between calls, and a worker lost during a rung (real Dask processes)."""

from __future__ import annotations

import itertools
import pickle
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from jobs.rossmann import halving
from jobs.rossmann.data import SyntheticSpec, generate
from jobs.rossmann.features import FEATURES, TARGET, derive, modelling_rows, split_holdout
from jobs.rossmann.job import candidates_of, halving_schedule
from jobs.rossmann.model import BUILTIN_SPACES, SearchSpace, date_block_folds, load_space, rmspe_from_log, sample_rows
from testbed.daskproc import local_dask

# --- schedule and promotion ------------------------------------------------------------------------------------------


def test_default_schedules_and_their_work():
    """8 candidates x 12 epochs: rungs 3, 6, 12 keeping 2 to the end do half the grid's epochs (the issue's model)."""
    s = halving.default_schedule(12, 8)
    assert s == halving.Schedule((3, 6, 12), 2)
    assert s.survivors(8) == [8, 4, 2]
    assert s.epoch_units(8) == 8 * 3 + 4 * 3 + 2 * 6 == 48  # 0.50 of 8 x 12
    large = halving.default_schedule(20, 36)
    assert large == halving.Schedule((2, 7, 20), 3) and large.survivors(36) == [36, 12, 4]
    assert large.epoch_units(36) / (36 * 20) < 0.3


def test_the_default_space_keeps_three_after_one_epoch_and_one_after_seven():
    """1, 7, 12 keeping 3, then 1, kept the grid's winner (or one within 0.5 %) on the exact learning curves of as
    many of 36 seeds as 2, 6, 7, 12 with factor 2, and of more of 16 held-out ones, with fewer epochs
    (docs/benchmarks.md)."""
    space = BUILTIN_SPACES["default"]
    n = space.grid_size
    s = halving_schedule(space, n)
    assert n == 8 and s == halving.Schedule((1, 7, 12), 2, keep=(3, 1)) and s.rungs[-1] == space.max_iter
    assert dict(zip(s.rungs, s.survivors(n), strict=True)) == {1: 8, 7: 3, 12: 1}
    assert s.epoch_units(n) == 8 * 1 + 3 * 6 + 1 * 5 == 31  # 0.323 of 8 x 12
    assert s.epoch_units(n) < halving.Schedule((2, 6, 7, 12), 2).epoch_units(n) == 39  # 0.406


def test_the_large_space_keeps_a_quarter_of_its_candidates_to_epoch_12():
    """The derived (2, 7, 20) schedule and (2, 5, 10, 15, 20) dropped 20-epoch leaders that 2, 5, 12, 16, 20 kept:
    9 of 36 candidates train to epoch 12, and the search trains 0.296 of the grid's epochs
    (docs/benchmarks.md)."""
    space = BUILTIN_SPACES["large"]
    n = space.grid_size
    s = halving_schedule(space, n)
    assert n == 36 and s == halving.Schedule((2, 5, 12, 16, 20), 2) and s.rungs[-1] == space.max_iter
    assert dict(zip(s.rungs, s.survivors(n), strict=True)) == {2: 36, 5: 18, 12: 9, 16: 4, 20: 2}
    assert s.epoch_units(n) == 36 * 2 + 18 * 3 + 9 * 7 + 4 * 4 + 2 * 4 == 213  # 0.296 of 36 x 20


def test_promotion_is_never_more_than_the_top_share_of_those_finished():
    """The asynchronous rule (ASHA); the synchronous one applies it once, to a finished rung."""
    finished, half = {0: 0.30, 1: 0.10}, Fraction(1, 2)
    assert halving.promotable(finished, set(), half) == [1]  # 2 finished: 1 may go on, the better one
    assert halving.promotable({**finished, 2: 0.20}, {1}, half) == []  # 3 finished: still 1
    assert halving.promotable({**finished, 2: 0.20, 3: 0.05}, {1}, half) == [3]  # 4 finished: top 2 are 3 and 1
    assert halving.promotable({**finished, 2: 0.20, 3: 0.05}, {1}, Fraction(1, 3)) == []  # a third: 1 of 4 went on
    assert halving.promotable({0: 0.3}, set(), half) == []  # 1 of 1 is less than a half...
    assert halving.promotable({0: 0.3}, set(), half, complete=True) == [0]  # ...but a finished rung sends one on


def test_the_synchronous_rule_promotes_early_only_what_the_rung_barrier_would_promote():
    """keep 4 of 8: once 5 have finished, the best of them is among the 4 whatever the other 3 score."""
    assert halving.decided({0: 0.3, 1: 0.1, 2: 0.2, 3: 0.4}, set(), quota=4, unfinished=4) == []
    assert halving.decided({0: 0.3, 1: 0.1, 2: 0.2, 3: 0.4, 4: 0.5}, set(), quota=4, unfinished=3) == [1]
    assert halving.decided({0: 0.3, 1: 0.1, 2: 0.2, 3: 0.4, 4: 0.5, 5: 0.05}, {1}, 4, 2) == [5]  # top 2: 5, 1
    rng = np.random.default_rng(0)
    for _ in range(200):  # any scores, any order of finishing: the union is the barrier's top quota
        n = int(rng.integers(2, 12))
        quota = int(rng.integers(1, n))
        scores = dict(enumerate(rng.random(n).round(1)))  # ties included
        finished: dict[int, float] = {}
        promoted: list[int] = []
        for c in rng.permutation(n):
            finished[int(c)] = scores[int(c)]
            promoted += halving.decided(finished, set(promoted), quota, n - len(finished))
        assert sorted(promoted) == sorted(sorted(scores, key=lambda c: (scores[c], c))[:quota])


@pytest.mark.parametrize(
    ("chains", "length", "slots"), [(3, 5, 2), (3, 6, 2), (5, 4, 3), (2, 5, 2), (3, 1, 2), (7, 3, 4)]
)
def test_wrap_around_fills_every_core_to_the_bound_and_keeps_each_chain_in_order(chains, length, slots):
    """One finalist's 3 folds x 5 epochs on 2 cores: 8 epochs' time instead of 10 (5, then the third fold's 5)."""
    plan = halving.wrap_around(chains, length, slots)
    bound = -(-chains * length // slots)
    when: dict[int, list[tuple[int, int, int, int]]] = {}  # chain -> (first step, end step, start time, end time)
    for pieces in plan:
        clock = 0
        for chain, first, stop in pieces:
            when.setdefault(chain, []).append((first, stop, clock, clock + stop - first))
            clock += stop - first
        assert clock <= bound
    for chain in range(chains):  # every step once, in order: a later piece starts after the earlier one ends
        parts = sorted(when[chain])
        assert parts[0][0] == 0 and parts[-1][1] == length and len(parts) <= 2
        assert all(p[1] == q[0] and p[3] <= q[2] for p, q in itertools.pairwise(parts))
    assert halving.wrap_around(3, 5, 2) == [[(0, 0, 5), (1, 2, 5)], [(1, 0, 2), (2, 0, 5)]]


def test_wrap_around_refuses_fewer_chains_than_cores():
    """3 folds on 6 cores: each fold has a core of its own, and a split would train a fold past its rung."""
    with pytest.raises(ValueError, match="3 chains on 6 cores"):
        halving.wrap_around(3, 5, 6)


def test_keep_counts_set_how_many_go_on_after_each_rung():
    """``keep`` instead of a factor: 8 candidates, rungs 1, 6, 12 keeping 3 then 1. The asynchronous rule promotes
    the same share of those finished (3 of 8), the synchronous one exactly the counts."""
    s = halving.Schedule((1, 6, 12), 2, keep=(3, 1))
    assert s.survivors(8) == [8, 3, 1] and s.epoch_units(8) == 8 * 1 + 3 * 5 + 1 * 6 == 29
    assert s.share(0, 8) == Fraction(3, 8) and s.share(1, 8) == Fraction(1, 3)
    assert s.survivors(2) == [2, 2, 1]  # never more than there are
    scores = {c: 0.1 + c / 100 for c in range(8)}
    assert halving.promotable(dict(list(scores.items())[:2]), set(), s.share(0, 8)) == []  # 2 x 3/8 < 1
    assert halving.promotable(dict(list(scores.items())[:3]), set(), s.share(0, 8)) == [0]  # 3 x 3/8 = 1.125
    assert halving.promotable(scores, {0}, s.share(0, 8), complete=True) == [1, 2]  # 3 in all


def test_a_search_file_sets_the_rungs_and_factor(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("grid: {mlp__alpha: [0.0001, 0.001]}\nrungs: [2, 4, 8]\nfactor: 3\n")
    space = load_space(str(path))
    assert space.rungs == (2, 4, 8) and space.factor == 3 and space.max_iter == 8
    path.write_text("grid: {mlp__alpha: [0.0001]}\nrungs: [4, 2]\n")
    with pytest.raises(ValueError, match=r"space.yaml: key rungs: expected increasing epoch counts, got \[4, 2\]"):
        load_space(str(path))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("rungs: [1, 6, 12]\nkeep: [3, 1]\nfactor: 2\n", "key keep: give keep or factor, not both"),
        ("keep: [3, 1]\n", "key keep: expected one count per rung but the last"),
        ("rungs: [1, 6, 12]\nkeep: [3]\n", "key keep: expected one count per rung but the last"),
        ("rungs: [1, 6, 12]\nkeep: [1, 3]\n", r"expected decreasing counts >= 1 below the 4 candidates, got \[1, 3\]"),
        ("rungs: [1, 12]\nkeep: [4]\n", r"below the 4 candidates, got \[4\]"),
        ("rungs: [1, 12]\nkeep: [true]\n", r"below the 4 candidates, got \[True\]"),
        ("n_candidates: 10\nrungs: [1, 12]\nkeep: [6]\n", r"below the 4 candidates, got \[6\]"),  # the grid caps
    ],
)
def test_a_search_file_sets_keep_counts_or_says_what_is_wrong(tmp_path: Path, text: str, error: str):
    path = tmp_path / "space.yaml"
    path.write_text(
        "grid: {mlp__alpha: [0.0001, 0.001], mlp__hidden_layer_sizes: [[32], [64]]}\nrungs: [1, 6, 12]\nkeep: [3, 1]\n"
    )
    space = load_space(str(path))
    assert space.keep == (3, 1) and halving_schedule(space, 4).survivors(4) == [4, 3, 1]
    path.write_text("grid: {mlp__alpha: [0.0001, 0.001], mlp__hidden_layer_sizes: [[32], [64]]}\n" + text)
    with pytest.raises(ValueError, match=f"space.yaml: {error}" if error.startswith("key") else error):
        load_space(str(path))


# --- resumed training (pure functions, no cluster) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def rows():
    train, store = generate(SyntheticSpec(stores=40, days=500, seed=3))
    fit_rows, _ = split_holdout(modelling_rows(derive(train.merge(store, on="Store", how="left"))))
    return sample_rows(fit_rows, 8_000, 0)


@pytest.fixture(scope="module")
def fold(rows) -> halving.FoldData:
    tr, te = date_block_folds(rows["Date"], 2)[0]
    return halving.prepare_fold(rows[FEATURES], rows[TARGET].to_numpy(), tr, te, {}, seed=0)


def test_a_survivor_continues_its_training_with_its_adam_state(fold):
    params = {"mlp__hidden_layer_sizes": (32,)}
    first = halving.train_until(None, fold, params, 3, seed=0)
    resumed = halving.train_until(first, fold, params, 6, seed=0)
    batches = -(-len(fold.X_train) // 512)
    assert first.epochs == 3 and first.adam_steps == 3 * batches  # one Adam step per mini-batch
    assert resumed.epochs == 6 and resumed.adam_steps == 6 * batches  # kept and grown, not restarted
    assert first.adam_steps == 3 * batches  # the rung-0 result is left as it was (recomputable)
    straight = halving.train_until(None, fold, params, 6, seed=0)
    for a, b in zip(resumed.model.coefs_, straight.model.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)  # 3 + 3 epochs resumed == 6 epochs at once
    assert len(resumed.scores) == 2 and resumed.scores[1] == straight.scores[0]


def test_training_rung_by_rung_computes_what_fit_computes(fold):
    """partial_fit re-seeds from an int random_state on every call and shuffles ``arange`` afresh, where fit
    composes a new shuffle with the last one each epoch. The trainee's generator goes on across calls and hands
    back fit's order, also after a pickle round trip (a trainee moving to another worker): 1 + 2 + 3 epochs in
    three calls make fit(max_iter=6)'s updates exactly, so a survivor's last-rung score is the grid's score."""
    from jobs.rossmann.model import build_pipeline

    params = {"mlp__hidden_layer_sizes": (32,)}
    mlp = build_pipeline(seed=0, max_iter=6).named_steps["mlp"].set_params(hidden_layer_sizes=(32,))
    mlp.fit(fold.X_train, fold.y_train)
    trainee = halving.train_until(halving.train_until(None, fold, params, 1, seed=0), fold, params, 3, seed=0)
    trainee = halving.train_until(pickle.loads(pickle.dumps(trainee)), fold, params, 6, seed=0)
    for a, b in zip(trainee.model.coefs_ + trainee.model.intercepts_, mlp.coefs_ + mlp.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert trainee.scores[-1] == rmspe_from_log(fold.y_test, mlp.predict(fold.X_test))
    order = trainee.model.random_state.order
    assert sorted(order) == list(range(len(fold.y_train))) and not np.array_equal(order, np.sort(order))


@pytest.mark.parametrize(
    "params",
    [
        {"mlp__tol": 100.0, "mlp__n_iter_no_change": 2},  # Adam: stops once the count exceeds n_iter_no_change
        {"mlp__tol": 100.0, "mlp__n_iter_no_change": 2, "mlp__solver": "sgd", "mlp__learning_rate": "adaptive"},
    ],
    ids=["adam", "adaptive-sgd"],
)
def test_the_stopping_rule_is_applied_between_calls(fold, params):
    """partial_fit never stops by itself; the trainee stops where fit stops (Adam: after 4 epochs here; adaptive
    SGD divides its rate by 5 instead and stops only once the rate is 1e-6), and stays stopped."""
    from jobs.rossmann.model import build_pipeline

    mlp = build_pipeline(seed=0, max_iter=40).named_steps["mlp"]
    mlp.set_params(**{k.removeprefix("mlp__"): v for k, v in params.items()}).fit(fold.X_train, fold.y_train)
    trainee = halving.train_until(halving.train_until(None, fold, params, 3, seed=0), fold, params, 40, seed=0)
    assert trainee.stopped and trainee.epochs == mlp.n_iter_ < 40
    assert trainee.epochs == (4 if "mlp__solver" not in params else 19)
    assert halving.train_until(trainee, fold, params, 60, seed=0).epochs == trainee.epochs


# --- on Dask worker processes --------------------------------------------------------------------------------------

SPACE = SearchSpace(
    "test",
    {"mlp__hidden_layer_sizes": [(16,), (32,)], "mlp__alpha": [1e-4, 1e-2]},
    folds=2,
    max_iter=8,
    rungs=(2, 4, 8),
    factor=2,
)


def run(client: Client, rows, on_epochs=lambda n: None) -> halving.HalvingResult:
    folds = date_block_folds(rows["Date"], SPACE.folds)
    schedule = halving.Schedule(SPACE.rungs, SPACE.factor)
    X, y = rows[FEATURES], rows[TARGET].to_numpy()
    return halving.search(client, X, y, folds, candidates_of(SPACE, 0), schedule, 0, on_epochs)


@pytest.mark.dask
@pytest.mark.slow
def test_a_worker_lost_during_a_rung_changes_nothing(rows, tmp_path: Path):
    with local_dask(tmp_path / "cluster", n_workers=2) as cluster, Client(cluster.address) as client:
        calm = run(client, rows)
        killed = threading.Event()
        done: list[int] = []

        def kill_after_first_promotion(epochs: int) -> None:
            done.append(epochs)
            if len(done) == 6 and not killed.is_set():  # 6 of rung 0's 8 fold tasks are done, the rest running
                killed.set()
                cluster.kill_worker(0)
                cluster.start_worker()

        disturbed = run(client, rows, kill_after_first_promotion)
    assert killed.is_set()
    # Training is deterministic and promotion synchronous: the lost work is recomputed and every candidate x rung
    # ends with the same scores, so the same candidates go on and the same one wins.
    assert scores_of(disturbed) == scores_of(calm)
    assert len(scores_of(calm)) == 4 + 2 + 1
    for rung, quota in ((0, 2), (1, 1)):  # promoted early or not, each rung sent on its best by mean score
        at = calm.cv_results[calm.cv_results["rung"] == rung]
        assert set(at[at["promoted"]]["candidate"]) == set(at.nlargest(quota, "mean_test_score")["candidate"])
    assert disturbed.epoch_units == calm.epoch_units == SPACE.folds * (4 * 2 + 2 * 2 + 1 * 4)


@pytest.mark.dask
@pytest.mark.slow
def test_a_lone_finalists_folds_split_across_the_cores_train_as_they_would_in_one_piece(rows, tmp_path: Path):
    """3 folds on 2 workers: the last rung's folds are laid out by wrap_around (a fold's model moves once between
    workers) and score exactly what one uninterrupted training of each fold scores."""
    from distributed import get_task_stream

    space = SearchSpace("split", SPACE.grid, folds=3, max_iter=9, rungs=(2, 4, 9), factor=2)
    folds = date_block_folds(rows["Date"], space.folds)
    X, y, candidates = rows[FEATURES], rows[TARGET].to_numpy(), candidates_of(space, 0)
    with (
        local_dask(tmp_path / "cluster", n_workers=2) as cluster,
        Client(cluster.address) as client,
        get_task_stream(client) as stream,
    ):
        result = halving.search(client, X, y, folds, candidates, halving.Schedule(space.rungs, 2), 0)
    last = result.cv_results.loc[result.best_index]
    assert last["rung"] == 2 and last["epochs_trained"] == 9
    after = [t["worker"] for t in stream.data if t["key"].startswith("train_after")]
    assert len(after) == len(set(after)) == 2  # each core's second piece: the moved fold's tail, and a whole fold
    params = halving.split_params(last["params"])[1]
    for k, (tr, te) in enumerate(folds):
        whole = halving.train_until(None, halving.prepare_fold(X, y, tr, te, {}, 0), params, 9, seed=0)
        assert -last[f"split{k}_test_score"] == whole.scores[-1]


def scores_of(result: halving.HalvingResult) -> dict[tuple[int, int], float]:
    cv = result.cv_results
    return {(int(r.candidate), int(r.rung)): float(r.mean_test_score) for r in cv.itertuples()}

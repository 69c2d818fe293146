"""Metric, baseline, folds, search spaces and features: pure functions on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.rossmann.data import SyntheticSpec, generate
from jobs.rossmann.features import FEATURES, TARGET, derive, modelling_rows, split_holdout
from jobs.rossmann.model import (
    BUILTIN_SPACES,
    build_pipeline,
    date_block_folds,
    load_space,
    median_baseline,
    rmspe,
    rmspe_from_log,
    sales_from_log,
)


def test_rmspe_ignores_zero_sales_and_uses_the_original_scale():
    assert rmspe(np.array([100, 0, 200]), np.array([110, 50, 180])) == pytest.approx(np.sqrt((0.01 + 0.01) / 2))
    assert rmspe_from_log(np.log1p([100.0]), np.log1p([90.0])) == pytest.approx(0.1)


def test_sales_from_log_clips_before_it_exponentiates():
    with np.errstate(over="raise"):  # a diverged network's 800 would overflow expm1
        sales = sales_from_log(np.array([-3.0, np.log1p(5000.0), 800.0]))
    assert sales[0] == 0.0 and sales[1] == pytest.approx(5000.0) and sales[2] == pytest.approx(np.expm1(20.0))


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    train, store = generate(SyntheticSpec(stores=40, days=942, seed=2))
    return modelling_rows(derive(train.merge(store, on="Store")))


def test_features_are_complete_and_the_target_is_log_sales(rows):
    assert not rows[FEATURES].isna().any().any()
    np.testing.assert_allclose(rows[TARGET], np.log1p(rows["Sales"]))
    assert (rows["Sales"] > 0).all() and (rows["Open"] == 1).all()
    assert set(rows["Promo2Active"].unique()) <= {0.0, 1.0}


def test_holdout_is_the_last_six_weeks(rows):
    fit, holdout = split_holdout(rows)
    assert 35 <= holdout["Date"].nunique() <= 42  # Sundays are mostly closed
    assert fit["Date"].max() < holdout["Date"].min()
    assert (holdout["Date"].max() - holdout["Date"].min()).days == 41


def test_time_series_folds_train_on_the_past_only(rows):
    fit, _ = split_holdout(rows)
    fit = fit.sort_values("Date").reset_index(drop=True)
    folds = date_block_folds(fit["Date"], 3)
    assert len(folds) == 3
    for train_idx, test_idx in folds:
        assert fit["Date"].iloc[train_idx].max() < fit["Date"].iloc[test_idx].min()
        assert (fit["Date"].iloc[test_idx].max() - fit["Date"].iloc[test_idx].min()).days <= 42
    assert [len(f[0]) for f in folds] == sorted(len(f[0]) for f in folds)  # expanding window


def test_baseline_predicts_store_weekday_promo_medians():
    train = pd.DataFrame(
        {"Store": [1, 1, 1, 2], "DayOfWeek": [1, 1, 2, 1], "Promo": [0, 0, 0, 1], "Sales": [10, 20, 99, 7]}
    )
    holdout = pd.DataFrame({"Store": [1, 1, 2, 3], "DayOfWeek": [1, 3, 1, 1], "Promo": [0, 0, 1, 0]})
    np.testing.assert_allclose(median_baseline(train, holdout), [15, 20, 7, 15])


def test_model_beats_baseline_on_small_data(rows):
    fit, holdout = split_holdout(rows)
    model = build_pipeline(max_iter=40).fit(fit[FEATURES], fit[TARGET])
    model_score = rmspe_from_log(holdout[TARGET], model.predict(holdout[FEATURES]))
    baseline = rmspe(holdout["Sales"].to_numpy(), median_baseline(fit, holdout))
    assert model_score < baseline


def test_builtin_spaces_name_real_pipeline_parameters():
    params = build_pipeline().get_params()
    for space in BUILTIN_SPACES.values():
        assert set(space.grid) <= set(params), space.name
    assert BUILTIN_SPACES["default"].grid_size == 8


def test_search_space_from_yaml(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("grid:\n  mlp__hidden_layer_sizes: [[16], [16, 8]]\n  mlp__alpha: [0.001]\nfolds: 2\n")
    space = load_space(str(path))
    assert space.grid["mlp__hidden_layer_sizes"] == [(16,), (16, 8)] and space.folds == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grid: {mlp__nope: [1]}\n", "key grid.mlp__nope: not a parameter"),
        ("grid: {mlp__alpha: 1}\n", "key grid.mlp__alpha: expected a non-empty list"),
        ("grid: {mlp__alpha: [1]}\nfolds: 1\n", "key folds: expected an integer >= 2"),
        ("grid: {mlp__alpha: [1]}\nfoldz: 3\n", "key foldz: unknown"),
        ("nogrid: 1\n", "key grid: expected a mapping"),
        ("grid: [\n", "YAML syntax error"),
    ],
)
def test_bad_search_files_name_the_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_space(str(path))


def test_unknown_space_name():
    with pytest.raises(ValueError, match="expected one of small, default, large"):
        load_space("huge")


def test_a_candidate_budget_makes_any_strategy_sample(tmp_path: Path):
    """n_candidates in a search file is honoured by the grid strategy too."""
    import dask_ml.model_selection as dms

    from jobs.rossmann.job import make_search

    path = tmp_path / "space.yaml"
    path.write_text("grid:\n  mlp__alpha: [0.1, 0.01, 0.001, 0.0001]\nn_candidates: 2\n")
    search = make_search(load_space(str(path)), "grid", folds=[], seed=0, client=None, progress=False)
    assert isinstance(search, dms.RandomizedSearchCV) and search.n_iter == 2
    full = make_search(BUILTIN_SPACES["small"], "grid", folds=[], seed=0, client=None, progress=False)
    assert isinstance(full, dms.GridSearchCV)

"""The Rossmann loader (real-format CSV written here) and the synthetic generator's fidelity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.rossmann import data
from jobs.rossmann.data import DataError, SyntheticSpec, generate, load_kaggle, load_or_generate, write_kaggle_csv

SMALL = SyntheticSpec(stores=30, days=400, seed=3)


@pytest.fixture(scope="module")
def full() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(SyntheticSpec())


def test_full_size_panel_matches_the_real_file(full):
    train, store = full
    assert len(train) == 1_017_209
    assert list(train.columns) == list(data.TRAIN_DTYPES)
    assert list(store.columns) == list(data.STORE_DTYPES)
    assert train["Date"].nunique() == 942
    assert str(train["Date"].min().date()) == "2013-01-01" and str(train["Date"].max().date()) == "2015-07-31"
    days = train.groupby("Store").size()
    assert (days == 758).sum() == 180 and (days >= 941).sum() == 935
    gap = train[(train["Date"] >= "2014-07-01") & (train["Date"] <= "2014-12-31")]
    assert gap["Store"].nunique() == 935
    assert not train.isna().any().any()


def test_full_size_statistics_are_close_to_the_real_ones(full):
    train, store = full
    assert train["Open"].mean() == pytest.approx(0.830, abs=0.01)
    assert train["Promo"].mean() == pytest.approx(0.3815, abs=0.01)
    assert train["SchoolHoliday"].mean() == pytest.approx(0.1786, abs=0.02)
    assert train["Sales"].mean() == pytest.approx(5773.8, rel=0.05)
    assert train["Sales"].median() == pytest.approx(5744, rel=0.05)
    assert train["Sales"].std() == pytest.approx(3849.9, rel=0.1)
    assert train["Customers"].mean() == pytest.approx(633, rel=0.1)
    assert np.corrcoef(train["Sales"], train["Customers"])[0, 1] > 0.85
    assert ((train["Sales"] == 0) & (train["Open"] == 1)).sum() == 54
    assert set(train["StateHoliday"].unique()) == {"0", "a", "b", "c"}
    # weekday shape: Monday highest among open days, Sundays mostly closed; December peak, January dip
    open_days = train[train["Open"] == 1]
    by_dow = open_days.groupby("DayOfWeek")["Sales"].mean()
    assert by_dow.idxmax() == 1
    assert train[train["DayOfWeek"] == 7]["Open"].mean() < 0.05
    by_month = open_days.groupby(open_days["Date"].dt.month)["Sales"].mean()
    assert by_month.idxmax() == 12 and by_month.idxmin() == 1
    # promo weekdays only, in runs
    assert train[train["DayOfWeek"] >= 6]["Promo"].sum() == 0
    assert len(store) == 1115
    assert store["StoreType"].value_counts()["a"] > store["StoreType"].value_counts()["d"] > 100
    assert store["CompetitionDistance"].isna().sum() == 3
    assert store["CompetitionOpenSinceYear"].isna().sum() == 354
    assert store["Promo2"].sum() == pytest.approx(571, abs=40)
    assert (store["Promo2SinceWeek"].isna() == (store["Promo2"] == 0)).all()
    assert set(store["PromoInterval"]) == {"", *data.PROMO_INTERVALS}


def test_generation_is_deterministic_and_seeded():
    a, _ = generate(SMALL)
    b, _ = generate(SMALL)
    c, _ = generate(SyntheticSpec(stores=30, days=400, seed=4))
    pd.testing.assert_frame_equal(a, b)
    assert not a["Sales"].equals(c["Sales"])


def test_parquet_cache_is_keyed_by_parameters(tmp_path: Path):
    first = load_or_generate(SMALL, tmp_path)
    second = load_or_generate(SMALL, tmp_path)
    other = load_or_generate(SyntheticSpec(stores=31, days=400, seed=3), tmp_path)
    assert (first[2], second[2], other[2]) == (False, True, False)
    pd.testing.assert_frame_equal(first[0], second[0], check_dtype=False)
    assert len(list(tmp_path.glob("synthetic-*"))) == 2


def test_loader_reads_real_format_csv_with_mixed_state_holiday(tmp_path: Path):
    train, store = generate(SMALL)
    write_kaggle_csv(train, store, tmp_path)
    lines = (tmp_path / "train.csv").read_text().splitlines()
    assert lines[0] == ",".join(data.TRAIN_DTYPES)
    tokens = [line.split(",")[7] for line in lines[1:]]
    assert {'"0"', "0"} <= set(tokens)  # quoted "0" and bare 0, as in the real file
    assert {"a", "b", "c"} & set(tokens)
    loaded_train, loaded_store = load_kaggle(tmp_path)
    assert set(loaded_train["StateHoliday"].unique()) <= {"0", "a", "b", "c"}
    assert (loaded_train["StateHoliday"] == "0").sum() == (train["StateHoliday"] == "0").sum()
    assert loaded_train["Sales"].sum() == train["Sales"].sum()
    assert loaded_train["Date"].dtype.kind == "M"
    assert loaded_store["CompetitionDistance"].isna().sum() == store["CompetitionDistance"].isna().sum()
    assert (loaded_store["PromoInterval"] == "").sum() == (store["PromoInterval"] == "").sum()


@pytest.fixture
def kaggle_dir(tmp_path: Path) -> Path:
    train, store = generate(SyntheticSpec(stores=5, days=60, seed=1))
    write_kaggle_csv(train, store, tmp_path)
    return tmp_path


def test_missing_file_is_named(kaggle_dir: Path):
    (kaggle_dir / "store.csv").unlink()
    with pytest.raises(DataError, match=r"store\.csv: file not found"):
        load_kaggle(kaggle_dir)


def edit_csv(path: Path, change) -> None:
    """Rewrite a CSV after ``change(df)`` edits it (values kept as text, as the real files are)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = change(df) if callable(change) else df
    df.to_csv(path, index=False)


def set_cell(row: int, column: str, value: str):
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df

    return change


def test_missing_column_is_named(kaggle_dir: Path):
    edit_csv(kaggle_dir / "train.csv", lambda df: df.drop(columns=["Promo"]))
    with pytest.raises(DataError, match=r"train\.csv: missing column 'Promo'"):
        load_kaggle(kaggle_dir)


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "Sales", "lots", r"train\.csv: column 'Sales': expected int64 values, found 'lots'"),
        (0, "StateHoliday", "x", "column 'StateHoliday': expected 0, a, b or c, found 'x'"),
        (1, "Date", "31/07/2015", r"column 'Date'.*31/07/2015"),
        (2, "Open", "2", "column 'Open': expected 0 or 1"),
    ],
)
def test_bad_value_names_file_and_column(kaggle_dir: Path, row: int, column: str, value: str, message: str):
    edit_csv(kaggle_dir / "train.csv", set_cell(row, column, value))
    with pytest.raises(DataError, match=message):
        load_kaggle(kaggle_dir)


def test_store_missing_from_store_csv(kaggle_dir: Path):
    edit_csv(kaggle_dir / "store.csv", lambda df: df.iloc[1:])
    with pytest.raises(DataError, match="no row for store 1"):
        load_kaggle(kaggle_dir)

"""Rossmann store-sales data: the real Kaggle files when given, otherwise a faithful synthetic twin.

Both paths return the same two pandas DataFrames with the Kaggle columns and dtypes, so everything downstream
runs unchanged on either:

- ``train``: Store, DayOfWeek, Date, Sales, Customers, Open, Promo, StateHoliday, SchoolHoliday
- ``store``: Store, StoreType, Assortment, CompetitionDistance, CompetitionOpenSinceMonth,
  CompetitionOpenSinceYear, Promo2, Promo2SinceWeek, Promo2SinceYear, PromoInterval

The synthetic generator reproduces the published statistics of the real data (see docs in README): the
1,115 x 942 panel with 180 stores missing the second half of 2014, Sunday closures, holidays, promo runs,
Promo2 cycles, school-holiday clusters, competition openings, the weekday/December/January shape, and the
mixed-type StateHoliday column when written as CSV.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.storage import Location, storage_errors

TRAIN_DTYPES: dict[str, str] = {
    "Store": "int64",
    "DayOfWeek": "int64",
    "Date": "datetime64[ns]",
    "Sales": "int64",
    "Customers": "int64",
    "Open": "int64",
    "Promo": "int64",
    "StateHoliday": "str",
    "SchoolHoliday": "int64",
}
STORE_DTYPES: dict[str, str] = {
    "Store": "int64",
    "StoreType": "str",
    "Assortment": "str",
    "CompetitionDistance": "float64",
    "CompetitionOpenSinceMonth": "float64",
    "CompetitionOpenSinceYear": "float64",
    "Promo2": "int64",
    "Promo2SinceWeek": "float64",
    "Promo2SinceYear": "float64",
    "PromoInterval": "str",
}
PROMO_INTERVALS = ["Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec"]
MONTH_ABBR = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec"]


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the column."""


# --- the real files ---------------------------------------------------------------------------------------------


def _read_csv(location: Location, dtypes: dict[str, str]) -> pd.DataFrame:
    path = location.url
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    with storage_errors(location):
        fs, fs_path = location.filesystem()
        found = fs.isfile(fs_path)
    if not found:
        raise DataError(f"{path}: file not found (expected the Kaggle Rossmann file {name})")
    content = location.read_bytes()
    try:
        header = pd.read_csv(io.BytesIO(content), nrows=0).columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    missing = [c for c in dtypes if c not in header]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (expected columns: {', '.join(dtypes)})")
    # Read every column as text first: the real StateHoliday mixes 0 and "0", and a bad value must be reported
    # with its column rather than as a parser error.
    raw = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, usecols=list(dtypes))
    out = {}
    for column, dtype in dtypes.items():
        values = raw[column].str.strip()
        try:
            if dtype == "int64":
                out[column] = pd.to_numeric(values, errors="raise").astype("int64")
            elif dtype == "float64":
                out[column] = pd.to_numeric(values.replace("", np.nan), errors="raise").astype("float64")
            elif dtype.startswith("datetime"):
                out[column] = pd.to_datetime(values, format="%Y-%m-%d", errors="raise")
            else:
                out[column] = values.astype("str")
        except (ValueError, TypeError) as exc:
            bad = _first_bad(values, dtype)
            raise DataError(f"{path}: column {column!r}: expected {dtype} values, found {bad!r} ({exc})") from None
    return pd.DataFrame(out)


def _first_bad(values: pd.Series, dtype: str) -> str:
    for value in values:
        try:
            if dtype.startswith("datetime"):
                pd.to_datetime(value, format="%Y-%m-%d")
            elif value != "" or dtype == "int64":
                float(value)
        except (ValueError, TypeError):
            return value
    return "?"


def load_kaggle(folder: Path | str | Location) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read train.csv and store.csv from ``folder`` (a local folder or an object-storage Location) and check
    their columns and values."""
    folder = folder if isinstance(folder, Location) else Location(str(folder))
    train_file, store_file = folder.child("train.csv"), folder.child("store.csv")
    train = _read_csv(train_file, TRAIN_DTYPES)
    store = _read_csv(store_file, STORE_DTYPES)
    state = train["StateHoliday"]
    bad = sorted(set(state.unique()) - {"0", "a", "b", "c"})
    if bad:
        raise DataError(f"{train_file.url}: column 'StateHoliday': expected 0, a, b or c, found {bad[0]!r}")
    for column in ("Open", "Promo", "SchoolHoliday"):
        if not train[column].isin([0, 1]).all():
            raise DataError(f"{train_file.url}: column {column!r}: expected 0 or 1")
    unknown = set(train["Store"].unique()) - set(store["Store"])
    if unknown:
        raise DataError(f"{store_file.url}: column 'Store': no row for store {min(unknown)} seen in train.csv")
    return train, store


# --- the synthetic twin -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic data set; the cache key is derived from them."""

    stores: int = 1115
    start: str = "2013-01-01"
    days: int = 942
    gap_stores: int | None = None  # default: 180 of 1115, scaled with the store count
    seed: int = 0
    version: int = 1  # bump when the generator changes, so caches are not reused

    @property
    def n_gap_stores(self) -> int:
        return self.gap_stores if self.gap_stores is not None else round(self.stores * 180 / 1115)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def _holidays(dates: pd.DatetimeIndex, rng: np.random.Generator, n_states: int) -> np.ndarray:
    """StateHoliday code per (state, date): 0 none, 1 'a' public, 2 'b' Easter, 3 'c' Christmas."""
    codes = np.zeros((n_states, len(dates)), dtype=np.int8)
    easter = {2013: "2013-03-31", 2014: "2014-04-20", 2015: "2015-04-05", 2016: "2016-03-27", 2012: "2012-04-08"}
    index = {d: i for i, d in enumerate(dates.normalize())}

    def mark(day: pd.Timestamp, code: int, states: np.ndarray | slice = slice(None)) -> None:
        i = index.get(day)
        if i is not None:
            codes[states, i] = code

    regional = rng.random((4, n_states)) < np.array([[0.25], [0.5], [0.4], [0.2]])
    for year in range(dates[0].year, dates[-1].year + 1):
        e = pd.Timestamp(easter.get(year, f"{year}-04-10"))
        for day in (f"{year}-01-01", f"{year}-05-01", f"{year}-10-03"):
            mark(pd.Timestamp(day), 1)
        mark(e + pd.Timedelta(days=39), 1)  # Ascension
        mark(e + pd.Timedelta(days=50), 1)  # Whit Monday
        mark(e - pd.Timedelta(days=2), 2)  # Good Friday
        mark(e + pd.Timedelta(days=1), 2)  # Easter Monday
        mark(pd.Timestamp(f"{year}-12-25"), 3)
        mark(pd.Timestamp(f"{year}-12-26"), 3)
        mark(pd.Timestamp(f"{year}-01-06"), 1, regional[0])  # Epiphany
        mark(e + pd.Timedelta(days=60), 1, regional[1])  # Corpus Christi
        mark(pd.Timestamp(f"{year}-11-01"), 1, regional[2])  # All Saints
        mark(pd.Timestamp(f"{year}-08-15"), 1, regional[3])  # Assumption
    return codes


def _school_holidays(dates: pd.DatetimeIndex, rng: np.random.Generator, n_states: int) -> np.ndarray:
    """School-holiday flag per (state, date): blocks at Easter, summer, autumn and Christmas (~18 % of days)."""
    flags = np.zeros((n_states, len(dates)), dtype=np.int8)
    doy = dates.day_of_year.to_numpy()
    years = dates.year.to_numpy()
    for s in range(n_states):
        summer_start = 170 + int(rng.integers(0, 45))  # states rotate their summer break
        blocks = [
            (summer_start, 33),
            (80 + int(rng.integers(0, 20)), 11),
            (280 + int(rng.integers(0, 25)), 7),
            (358, 8),
            (1, 5),
        ]
        for year in np.unique(years):
            shift = int(rng.integers(-3, 4))
            for first, length in blocks:
                sel = (years == year) & (doy >= first + shift) & (doy < first + shift + length)
                flags[s, sel] = 1
    return flags


def synthetic_store_table(spec: SyntheticSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.stores
    store_type = rng.choice(["a", "d", "c", "b"], size=n, p=[602 / 1115, 348 / 1115, 148 / 1115, 17 / 1115])
    assortment = rng.choice(["a", "c"], size=n, p=[593 / 1106, 513 / 1106])
    b_stores = np.flatnonzero(store_type == "b")
    assortment[b_stores[: max(1, round(n * 9 / 1115))]] = "b"
    distance = np.round(np.exp(rng.normal(7.9, 1.25, size=n)) / 10) * 10
    distance = np.clip(distance, 20, 75860).astype(float)
    distance[rng.choice(n, size=max(0, round(n * 3 / 1115)), replace=False)] = np.nan
    comp_unknown = rng.random(n) < 354 / 1115
    comp_year = np.where(rng.random(n) < 0.03, rng.integers(1961, 2000, size=n), rng.integers(2000, 2016, size=n))
    comp_month = rng.integers(1, 13, size=n).astype(float)
    comp_year = comp_year.astype(float)
    comp_month[comp_unknown] = np.nan
    comp_year[comp_unknown] = np.nan
    promo2 = (rng.random(n) < 571 / 1115).astype("int64")
    p2_week = np.where(promo2 == 1, rng.integers(1, 51, size=n), np.nan)
    p2_year = np.where(promo2 == 1, rng.integers(2009, 2016, size=n), np.nan)
    interval = np.where(promo2 == 1, rng.choice(PROMO_INTERVALS, size=n, p=[335 / 571, 130 / 571, 106 / 571]), "")
    return pd.DataFrame(
        {
            "Store": np.arange(1, n + 1, dtype="int64"),
            "StoreType": store_type.astype(str),
            "Assortment": assortment.astype(str),
            "CompetitionDistance": distance,
            "CompetitionOpenSinceMonth": comp_month,
            "CompetitionOpenSinceYear": comp_year,
            "Promo2": promo2,
            "Promo2SinceWeek": p2_week.astype(float),
            "Promo2SinceYear": p2_year.astype(float),
            "PromoInterval": interval.astype(str),
        }
    )


def generate(spec: SyntheticSpec = SyntheticSpec()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A synthetic (train, store) pair with the real files' columns, dtypes and statistics. Deterministic."""
    rng = np.random.default_rng(spec.seed)
    store = synthetic_store_table(spec, rng)
    n, dates = spec.stores, pd.date_range(spec.start, periods=spec.days, freq="D")
    t = len(dates)
    n_states = 12
    state_of_store = rng.integers(0, n_states, size=n)
    holidays = _holidays(dates, rng, n_states)[state_of_store]  # (n, t)
    school = _school_holidays(dates, rng, n_states)[state_of_store]
    dow = dates.day_of_week.to_numpy() + 1  # Monday = 1
    month = dates.month.to_numpy()
    dom = dates.day.to_numpy()

    # Chain-wide promo: Monday-Friday of every other week, plus some single-week runs (~38 % of rows).
    week = (dates - dates[0]).days.to_numpy() // 7
    promo_week = (week % 2 == 0) | (rng.random(week.max() + 1)[week] < 0.07)
    promo = (promo_week & (dow <= 5)).astype(np.int8)

    # Opening: closed on Sundays (a few stores open), mostly closed on holidays, rare refurbishments.
    sunday_open = rng.random(n) < 0.03
    open_ = np.ones((n, t), dtype=np.int8)
    open_[:, dow == 7] = sunday_open[:, None].astype(np.int8)
    closed_holiday = (holidays > 0) & (rng.random((n, t)) < 0.95)
    open_[closed_holiday] = 0
    for s in np.flatnonzero(rng.random(n) < 0.08):  # refurbishment closures of 1-3 weeks
        first = int(rng.integers(0, t - 21))
        open_[s, first : first + int(rng.integers(5, 21))] = 0
    open_[rng.random((n, t)) < 0.001] = 0

    # Sales level: lognormal per store, store-type and assortment effects.
    type_factor = pd.Series(store["StoreType"]).map({"a": 1.0, "b": 1.75, "c": 1.02, "d": 0.98}).to_numpy()
    assort_factor = pd.Series(store["Assortment"]).map({"a": 0.95, "b": 1.1, "c": 1.08}).to_numpy()
    base = np.exp(rng.normal(np.log(5850), 0.30, size=n)) * type_factor * assort_factor
    trend = 1 + rng.normal(0.03, 0.015, size=n)[:, None] * ((np.arange(t) / 365.0)[None, :])
    dow_factor = np.array([0, 1.22, 1.02, 0.98, 0.97, 1.02, 0.88, 1.05])[dow]
    month_factor = np.array([0, 0.86, 0.92, 0.97, 1.0, 0.98, 1.04, 1.08, 0.95, 0.96, 0.98, 1.06, 1.28])[month]
    dom_factor = np.where(dom <= 3, 1.12, np.where(dom >= 29, 1.06, np.where((dom >= 15) & (dom <= 20), 0.93, 1.0)))
    december_run_up = np.where((month == 12) & (dom >= 15) & (dom <= 23), 1.15, 1.0)
    promo_uplift = 1 + promo[None, :] * rng.uniform(0.2, 0.3, size=n)[:, None]

    # Promo2: from its start week on, in the months of its interval; a small dip (as in the real data).
    p2_start = pd.to_datetime(
        store["Promo2SinceYear"].fillna(2100).astype(int).astype(str)
        + "-W"
        + store["Promo2SinceWeek"].fillna(1).astype(int).astype(str).str.zfill(2)
        + "-1",
        format="%G-W%V-%u",
    ).to_numpy()
    interval_months = np.zeros((n, 13), dtype=bool)
    for i, text in enumerate(store["PromoInterval"]):
        for name in filter(None, text.split(",")):
            interval_months[i, MONTH_ABBR.index(name) + 1] = True
    promo2_active = (dates.to_numpy()[None, :] >= p2_start[:, None]) & interval_months[:, month]
    promo2_factor = np.where(promo2_active, 1.06, 1.0) * np.where(store["Promo2"].to_numpy() == 1, 0.93, 1.0)[:, None]

    # Competition: a dip after a competitor opens nearby, stronger when closer.
    comp_open = pd.to_datetime(
        dict(
            year=store["CompetitionOpenSinceYear"].fillna(1900).astype(int),
            month=store["CompetitionOpenSinceMonth"].fillna(1).astype(int),
            day=1,
        )
    ).to_numpy()
    distance = store["CompetitionDistance"].fillna(100000).to_numpy()
    dip = 1 - 0.2 * np.exp(-distance / 2500.0)
    competition = np.where(dates.to_numpy()[None, :] >= comp_open[:, None], dip[:, None], 1.0)

    # Holidays: shopping before, a dip after; school holidays a small lift.
    before_holiday = np.zeros((n, t), dtype=bool)
    before_holiday[:, :-1] = holidays[:, 1:] > 0
    after_holiday = np.zeros((n, t), dtype=bool)
    after_holiday[:, 1:] = holidays[:, :-1] > 0
    holiday_factor = np.where(before_holiday, 1.12, 1.0) * np.where(after_holiday, 0.92, 1.0)
    school_factor = np.where(school == 1, 1.07, 1.0)

    expected = (
        base[:, None]
        * trend
        * (dow_factor * month_factor * dom_factor * december_run_up)[None, :]
        * promo_uplift
        * promo2_factor
        * competition
        * holiday_factor
        * school_factor
    )
    expected = np.where(holidays > 0, expected * 0.8, expected)
    noise = np.exp(rng.normal(0, 0.075, size=(n, t)))
    sales = np.rint(expected * noise).astype("int64")
    sales[open_ == 0] = 0
    basket = np.where(store["StoreType"].to_numpy() == "b", 5.2, 9.4)[:, None] * np.exp(rng.normal(0, 0.12, (n, 1)))
    customers = np.rint(sales / basket * np.exp(rng.normal(0, 0.06, size=(n, t)))).astype("int64")
    customers[open_ == 0] = 0

    # The coverage gap: some stores miss the second half of 2014.
    present = np.ones((n, t), dtype=bool)
    gap = (dates >= "2014-07-01") & (dates <= "2014-12-31")
    present[np.ix_(rng.choice(n, size=min(n, spec.n_gap_stores), replace=False), np.flatnonzero(gap))] = False

    # The real file lacks one more row than the gap explains (1,017,209 = 935 x 942 + 180 x 758 - 1).
    full = np.flatnonzero(present.all(axis=1))
    if len(full) and spec.n_gap_stores:
        present[rng.choice(full), 0] = False

    # A few open days with zero sales, as in the real file (54 of 1,017,209 rows).
    open_rows = np.flatnonzero((open_ == 1).ravel() & present.ravel())
    zero_open = rng.choice(open_rows, size=min(len(open_rows), round(54 * n * t / 1_050_330)), replace=False)
    sales.ravel()[zero_open] = 0
    customers.ravel()[zero_open] = 0

    code_to_letter = np.array(["0", "a", "b", "c"])
    store_idx, date_idx = np.nonzero(present)
    train = pd.DataFrame(
        {
            "Store": (store_idx + 1).astype("int64"),
            "DayOfWeek": dow[date_idx].astype("int64"),
            "Date": dates.to_numpy()[date_idx],
            "Sales": sales[store_idx, date_idx],
            "Customers": customers[store_idx, date_idx],
            "Open": open_[store_idx, date_idx].astype("int64"),
            "Promo": promo[date_idx].astype("int64"),
            "StateHoliday": code_to_letter[holidays[store_idx, date_idx]],
            "SchoolHoliday": school[store_idx, date_idx].astype("int64"),
        }
    )
    train["StateHoliday"] = train["StateHoliday"].astype("str")
    # The real file's order: newest date first, then by store.
    train = train.sort_values(["Date", "Store"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return train, store


def write_kaggle_csv(train: pd.DataFrame, store: pd.DataFrame, folder: Path) -> None:
    """Write (train, store) as the Kaggle CSV files, including the real train.csv's mixed StateHoliday:
    quoted "0" in the first rows, bare 0 later, letters on holidays."""
    folder.mkdir(parents=True, exist_ok=True)
    out = train.copy()
    out["Date"] = out["Date"].dt.strftime("%Y-%m-%d")
    state = out["StateHoliday"].astype(object)
    half = len(out) // 2
    quoted = pd.Series(np.arange(len(out)) < half, index=out.index)
    out["StateHoliday"] = np.where((state == "0") & quoted, '"0"', state)
    text = out.to_csv(index=False, quoting=3)  # QUOTE_NONE: our own quotes stay as written
    (folder / "train.csv").write_text(text)
    store.to_csv(folder / "store.csv", index=False)


def load_or_generate(spec: SyntheticSpec, cache_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """The synthetic data for ``spec``, from the Parquet cache when present. Returns (train, store, cached)."""
    folder = Path(cache_dir) / f"synthetic-{spec.key()}"
    train_path, store_path = folder / "train.parquet", folder / "store.parquet"
    if train_path.exists() and store_path.exists():
        train = pd.read_parquet(train_path)
        store = pd.read_parquet(store_path)
        return _restore_dtypes(train, TRAIN_DTYPES), _restore_dtypes(store, STORE_DTYPES), True
    train, store = generate(spec)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    train.to_parquet(staging / "train.parquet", index=False)
    store.to_parquet(staging / "store.parquet", index=False)
    (staging / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
    for name in ("spec.json", "store.parquet", "train.parquet"):  # train last: its presence marks completion
        os.replace(staging / name, folder / name)
    staging.rmdir()
    return train, store, False


def _restore_dtypes(df: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    for column, dtype in dtypes.items():
        if dtype == "str":
            df[column] = df[column].astype("str")
    return df

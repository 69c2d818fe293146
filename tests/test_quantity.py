"""Kubernetes quantities as exact numbers (the suffixes of apimachinery's quantity.go)."""

from decimal import Decimal

import pytest

from dask_platform.quantity import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3500m", Decimal("3.5")),
        ("4", Decimal(4)),
        (2, Decimal(2)),
        ("0.5", Decimal("0.5")),
        ("12Gi", Decimal(12 * 2**30)),
        ("300Mi", Decimal(300 * 2**20)),
        ("129M", Decimal(129 * 10**6)),
        ("1e3", Decimal(1000)),
        ("1k", Decimal(1000)),
    ],
)
def test_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "4 Gi", "4GB", "", True])
def test_not_a_quantity_says_what_was_expected(text):
    with pytest.raises(ValueError, match="expected a Kubernetes quantity such as 500m or 4Gi"):
        parse_quantity(text)

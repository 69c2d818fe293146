"""Kubernetes resource quantities ("3500m", "12Gi", "1e3", 2) as exact numbers, for comparing requests, limits
and node allocatable. The suffixes are those of k8s.io/apimachinery pkg/api/resource/quantity.go."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores, bytes, devices). ValueError names what was expected."""
    if isinstance(value, bool):
        raise ValueError(f"expected a Kubernetes quantity such as 500m or 4Gi, got {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"expected a Kubernetes quantity such as 500m or 4Gi, got {value!r}")
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"expected a Kubernetes quantity such as 500m or 4Gi, got {value!r}") from None
    return base * (BINARY[suffix] if suffix in BINARY else DECIMAL[suffix])


def format_bytes(n: Decimal | int) -> str:
    """Bytes as GiB with two decimals (what the allocatable tables and messages show)."""
    return f"{Decimal(n) / BINARY['Gi']:.2f} GiB"

"""Exact money: Decimal built from text, never from float; one high-precision context.

Divisions (ratios, a fraction of the month) run in ``EXACT`` (50 significant digits) so
that only ``round_cny`` ever rounds to the cent.
"""

from __future__ import annotations

from decimal import Context, Decimal

from topics.charges import CENT, decimal_text, round_cny

EXACT = Context(prec=50)
#: sums that must not round at all (package balances: many 50-digit draws)
WIDE = Context(prec=200)
ZERO = Decimal(0)
GB = 10**9
MBPS = 10**6


def D(value: str | int | Decimal) -> Decimal:
    """A Decimal from text or an int; a float is a bug and raises ``TypeError``."""
    if isinstance(value, float):
        raise TypeError("money and volumes are never float")
    return value if isinstance(value, Decimal) else Decimal(value)


def div(a: Decimal | int, b: Decimal | int) -> Decimal:
    return EXACT.divide(D(a), D(b))


def mul(*values: Decimal | int) -> Decimal:
    out = Decimal(1)
    for value in values:
        out = EXACT.multiply(out, D(value))
    return out


def gb(num_bytes: int) -> Decimal:
    """Bytes to GB, base 1000, exact."""
    return Decimal(num_bytes).scaleb(-9)


def mbps_of_bucket(num_bytes: int, seconds: int = 300) -> Decimal:
    """Bandwidth of a bucket: bytes × 8 / seconds, in Mbps (base 1000)."""
    return div(num_bytes * 8, seconds * MBPS)


__all__ = [
    "CENT", "D", "EXACT", "GB", "MBPS", "ZERO", "decimal_text", "div", "gb", "mbps_of_bucket", "mul", "round_cny",
]

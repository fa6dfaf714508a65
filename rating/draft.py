"""A rated charge before it gets its id, revision and emission time."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from rating.money import EXACT
from topics.charges import ChargeLine


@dataclass(frozen=True, slots=True)
class ChargeDraft:
    product: str
    item: str
    lines: tuple[ChargeLine, ...]
    usage_by_app: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def amount(self) -> Decimal:
        """Sum of the line amounts in ``EXACT`` (50 digits), not the default 28: the charge
        total is the sum of its lines as written."""
        total = Decimal(0)
        for item in self.lines:
            total = EXACT.add(total, item.amount)
        return total

    @property
    def empty(self) -> bool:
        """Zero amount and zero usage: SPEC §7 emits nothing for it."""
        if self.amount != 0:
            return False
        if any(line.quantity != 0 for line in self.lines):
            return False
        return all(Decimal(v) == 0 for usage in self.usage_by_app.values() for v in usage.values())


def line(
    dims: dict[str, str],
    quantity: Decimal,
    unit: str,
    unit_price: Decimal,
    amount: Decimal,
    **extra: object,
) -> ChargeLine:
    return ChargeLine(dims, quantity, unit, unit_price, amount, **extra)  # type: ignore[arg-type]

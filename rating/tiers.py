"""Tier tables and reach-tier pricing (the whole volume at the price of the tier it reaches).

A table is ``bounds`` (ascending breakpoints) and ``prices`` (one more than bounds). CSS
tiers include their lower bound ("2TB(含)–10TB": 2000 GB is tier 2); VOD tiers include
their upper bound ("≤500GB": 500 GB is tier 1). The flag says which.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class TierTable:
    bounds: tuple[Decimal, ...]
    prices: tuple[Decimal, ...]
    upper_inclusive: bool = False

    def problems(self, where: str) -> list[str]:
        out = []
        if len(self.prices) != len(self.bounds) + 1:
            out.append(f"{where}: needs exactly one more price than bounds")
        if any(b <= 0 for b in self.bounds):
            out.append(f"{where}: bounds must be positive")
        if any(a >= b for a, b in zip(self.bounds, self.bounds[1:], strict=False)):
            out.append(f"{where}: bounds must be strictly ascending")
        if any(p < 0 for p in self.prices):
            out.append(f"{where}: prices must not be negative")
        return out

    def tier_index(self, quantity: Decimal) -> int:
        if self.upper_inclusive:
            return bisect_left(self.bounds, quantity)
        return bisect_right(self.bounds, quantity)

    def unit_price(self, quantity: Decimal) -> Decimal:
        """Unit price of the tier ``quantity`` reaches."""
        return self.prices[self.tier_index(quantity)]

"""Resource package balances (SPEC §8) as a ledger of draws, and the draining rule.

A package's balance is its size minus every draw recorded against it. Draws are recorded
per rating unit (account, item family, period); re-rating a unit replaces its own draws
and leaves every other unit's alone, so nothing already billed changes and the result is
the same however often a unit is re-rated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from rating.money import EXACT, WIDE
from topics.appconfig import PackageSpec

ZERO = Decimal(0)


@dataclass
class PackageLedger:
    """Draws of one account: package_id -> {unit key -> amount in the package's unit}."""

    draws: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def balance(self, package: PackageSpec, *, excluding: str | None = None) -> Decimal:
        """What is left of ``package``, exactly: the draws are added in a wide context and in
        the order of their unit keys, so the balance never depends on the order the draws
        were recorded in (a ledger read back from the worker's table has another order than
        ``rate``'s; the default 28 digits rounded their sum differently in the last digit)."""
        draws = self.draws.get(package.package_id, {})
        used = ZERO
        for unit in sorted(draws):
            if unit != excluding:
                used = WIDE.add(used, draws[unit])
        return max(WIDE.subtract(package.size, used), ZERO)

    def record(self, unit: str, packages: Sequence[PackageSpec], taken: dict[str, Decimal]) -> None:
        """Replace ``unit``'s draws on ``packages`` by ``taken``."""
        for package in packages:
            per_unit = self.draws.setdefault(package.package_id, {})
            per_unit.pop(unit, None)
            amount = taken.get(package.package_id, ZERO)
            if amount > 0:
                per_unit[unit] = amount

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {p: {u: str(a) for u, a in units.items()} for p, units in self.draws.items()}

    @classmethod
    def from_dict(cls, doc: dict[str, dict[str, str]]) -> PackageLedger:
        return cls({p: {u: Decimal(a) for u, a in units.items()} for p, units in doc.items()})


def drain(
    ledger: PackageLedger,
    unit: str,
    packages: Sequence[PackageSpec],
    needs: Sequence[tuple[str, Decimal]],
) -> dict[str, dict[str, Decimal]]:
    """Cover ``needs`` (line key, package units wanted) in order from ``packages`` in order.

    Returns, per line key, what each package gave; records the unit's draws.
    """
    left = {p.package_id: ledger.balance(p, excluding=unit) for p in packages}
    taken: dict[str, Decimal] = {}
    out: dict[str, dict[str, Decimal]] = {}
    for key, need in needs:
        given: dict[str, Decimal] = {}
        for package in packages:
            if need <= 0:
                break
            amount = min(left[package.package_id], need)
            if amount > 0:
                given[package.package_id] = amount
                # exact (50 digits): a need split over packages adds back up to itself
                left[package.package_id] = EXACT.subtract(left[package.package_id], amount)
                taken[package.package_id] = EXACT.add(taken.get(package.package_id, ZERO), amount)
                need = EXACT.subtract(need, amount)
        out[key] = given
    ledger.record(unit, packages, taken)
    return out


def capacity_cover(
    packages: Sequence[PackageSpec], peak: Decimal
) -> dict[str, Decimal]:
    """Capacity packages (VOD storage): cover up to their total size, earliest expiry first."""
    given: dict[str, Decimal] = {}
    for package in packages:
        if peak <= 0:
            break
        amount = min(package.size, peak)
        given[package.package_id] = amount
        peak -= amount
    return given

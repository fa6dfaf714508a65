"""Charge events of SPEC §7 with exact JSON round-trips.

Decimals travel as strings in plain notation with no trailing zeros ("72", "0.2"); the
only rounded figure is ``amount_rounded`` (half-up to 0.01 CNY).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

CENT = Decimal("0.01")
_WIDE = Context(prec=200)  # wide enough that adding or subtracting two amounts never rounds


def decimal_text(value: Decimal) -> str:
    """Plain-notation text of a Decimal, trailing zeros removed ("1E+3" never appears)."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def round_cny(value: Decimal) -> Decimal:
    """Half-up to the cent, the one rounding a charge gets."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class ChargeLine:
    dimensions: Mapping[str, str]
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    factor: Decimal = Decimal(1)
    package_deducted: Decimal = Decimal(0)
    packages: Mapping[str, Decimal] = field(default_factory=dict)
    excluded: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dimensions": dict(self.dimensions),
            "quantity": decimal_text(self.quantity),
            "unit": self.unit,
            "unit_price": decimal_text(self.unit_price),
            "factor": decimal_text(self.factor),
            "package_deducted": decimal_text(self.package_deducted),
            "amount": decimal_text(self.amount),
        }
        if self.packages:
            out["packages"] = {k: decimal_text(v) for k, v in self.packages.items()}
        if self.excluded:
            out["excluded"] = self.excluded
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ChargeLine:
        return cls(
            dimensions=dict(doc["dimensions"]),
            quantity=Decimal(doc["quantity"]),
            unit=doc["unit"],
            unit_price=Decimal(doc["unit_price"]),
            amount=Decimal(doc["amount"]),
            factor=Decimal(doc.get("factor", "1")),
            package_deducted=Decimal(doc.get("package_deducted", "0")),
            packages={k: Decimal(v) for k, v in doc.get("packages", {}).items()},
            excluded=doc.get("excluded"),
        )


@dataclass(frozen=True, slots=True)
class Charge:
    """One revision of the charge of an (product, item, account, period)."""

    charge_id: str
    revision: int
    account_id: str
    product: str
    item: str
    period_start: str
    period_end: str
    catalog: str
    lines: tuple[ChargeLine, ...]
    amount: Decimal
    previous_amount: Decimal
    usage_by_app: Mapping[str, Mapping[str, str]]
    emitted_at: str
    currency: str = "CNY"

    @property
    def amount_rounded(self) -> Decimal:
        return round_cny(self.amount)

    @property
    def delta(self) -> Decimal:
        """Exact: amounts carry up to 50 significant digits, more than the default context."""
        return _WIDE.subtract(self.amount, self.previous_amount)

    def content(self) -> dict[str, Any]:
        """What a revision states about the period, without revision bookkeeping."""
        doc = self.to_dict()
        for key in ("revision", "previous_amount", "delta", "emitted_at"):
            doc.pop(key)
        return doc

    def next_revision(self, previous: Charge | None, emitted_at: str) -> Charge:
        """This rating as revision n+1 of ``previous`` (or revision 1)."""
        if previous is None:
            return replace(self, revision=1, previous_amount=Decimal(0), emitted_at=emitted_at)
        return replace(
            self,
            revision=previous.revision + 1,
            previous_amount=previous.amount,
            emitted_at=emitted_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "charge_id": self.charge_id,
            "revision": self.revision,
            "account_id": self.account_id,
            "product": self.product,
            "item": self.item,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "catalog": self.catalog,
            "currency": self.currency,
            "lines": [line.to_dict() for line in self.lines],
            "amount": decimal_text(self.amount),
            "amount_rounded": str(self.amount_rounded),
            "previous_amount": decimal_text(self.previous_amount),
            "delta": decimal_text(self.delta),
            "usage_by_app": {app: dict(usage) for app, usage in self.usage_by_app.items()},
            "emitted_at": self.emitted_at,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Charge:
        return cls(
            charge_id=doc["charge_id"],
            revision=int(doc["revision"]),
            account_id=doc["account_id"],
            product=doc["product"],
            item=doc["item"],
            period_start=doc["period_start"],
            period_end=doc["period_end"],
            catalog=doc["catalog"],
            currency=doc.get("currency", "CNY"),
            lines=tuple(ChargeLine.from_dict(line) for line in doc["lines"]),
            amount=Decimal(doc["amount"]),
            previous_amount=Decimal(doc.get("previous_amount", "0")),
            usage_by_app={k: dict(v) for k, v in doc.get("usage_by_app", {}).items()},
            emitted_at=doc.get("emitted_at", ""),
        )

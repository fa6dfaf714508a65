"""A month's statement for one account: the latest revision of every charge in the month.

Day charges of the month and the month's own charges are grouped by product and item.
Each charge counts with its ``amount_rounded`` (the figure a finance system books); the
exact sum is shown next to it so a difference in the last cent is visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from topics.charges import Charge, decimal_text

PRODUCT_NAMES = {"css": "CSS (云直播)", "vod": "VOD (云点播)", "im": "IM (即时通信)"}


@dataclass
class ItemRow:
    product: str
    item: str
    charges: int = 0
    revisions: int = 0
    amount: Decimal = Decimal(0)
    amount_rounded: Decimal = Decimal(0)


@dataclass
class Statement:
    account_id: str
    month: str
    rows: list[ItemRow] = field(default_factory=list)

    @property
    def total_rounded(self) -> Decimal:
        return sum((r.amount_rounded for r in self.rows), Decimal(0))

    @property
    def total(self) -> Decimal:
        return sum((r.amount for r in self.rows), Decimal(0))

    def to_dict(self) -> dict[str, object]:
        return {
            "account_id": self.account_id,
            "month": self.month,
            "items": [
                {"product": r.product, "item": r.item, "charges": r.charges, "revisions": r.revisions,
                 "amount": decimal_text(r.amount), "amount_rounded": str(r.amount_rounded)}
                for r in self.rows
            ],
            "total": decimal_text(self.total),
            "total_rounded": str(self.total_rounded),
        }


def build_statement(charges: Iterable[Charge], account_id: str, month: str) -> Statement:
    latest: dict[str, Charge] = {}
    for charge in charges:
        if charge.account_id != account_id:
            continue
        period = charge.charge_id.rsplit("/", 1)[1]
        if not period.startswith(month):
            continue
        known = latest.get(charge.charge_id)
        if known is None or charge.revision > known.revision:
            latest[charge.charge_id] = charge
    rows: dict[tuple[str, str], ItemRow] = {}
    for charge in latest.values():
        row = rows.setdefault((charge.product, charge.item), ItemRow(charge.product, charge.item))
        row.charges += 1
        row.revisions += charge.revision - 1
        row.amount += charge.amount
        row.amount_rounded += charge.amount_rounded
    order = list(PRODUCT_NAMES)
    ordered = sorted(rows.values(), key=lambda r: (order.index(r.product) if r.product in order else 9, r.item))
    return Statement(account_id, month, ordered)


def render(statement: Statement, console: Console) -> None:
    table = Table(title=f"Statement {statement.account_id} — {statement.month} (CNY)", show_lines=False)
    table.add_column("product")
    table.add_column("item")
    table.add_column("charges", justify="right")
    table.add_column("revised", justify="right")
    table.add_column("amount", justify="right")
    product = None
    for row in statement.rows:
        name = PRODUCT_NAMES.get(row.product, row.product) if row.product != product else ""
        product = row.product
        table.add_row(name, row.item, str(row.charges), str(row.revisions), f"{row.amount_rounded:,.2f}")
    table.add_section()
    table.add_row("total", "", "", "", f"[bold]{statement.total_rounded:,.2f}[/bold]")
    console.print(table)
    if not statement.rows:
        console.print(f"no charges for {statement.account_id} in {statement.month}")

"""``snapshot`` and ``moderation``: free allowance, then a price per started block."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rating.account import AccountView
from rating.catalog import BlockPrice
from rating.draft import ChargeDraft, line
from rating.packages import PackageLedger
from rating.periods import Period


def started_blocks(count: int, free: int, block: int) -> int:
    """ceil(max(0, count − free) / block), in integers."""
    return -(-max(0, count - free) // block)


def _price(item: str, rule: BlockPrice, summaries: Mapping[int, Any]) -> list[ChargeDraft]:
    counts = {app: s["sums"].get("images", 0) for app, s in sorted(summaries.items())}
    blocks = started_blocks(sum(counts.values()), rule.free, rule.block)
    amount = rule.block_price * blocks
    unit = f"{rule.block} images"
    lines = (line({}, Decimal(blocks), unit, rule.block_price, amount),)
    usage = {str(app): {"images": str(n)} for app, n in counts.items()}
    return [ChargeDraft("css", item, lines, usage)]


def price_snapshot(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    return _price("snapshot", view.catalog(period).snapshot, summaries)


def price_moderation(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    return _price("moderation", view.catalog(period).moderation, summaries)

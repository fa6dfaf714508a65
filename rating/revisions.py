"""Re-rate a unit from its cumulative state and emit only what changed (Kill Bill style).

A rating unit is (account, unit kind, period). Rating it always starts from the whole
period's usage; the result is compared with the last revision of each charge the unit
emitted: a changed charge becomes revision n+1 with ``previous_amount`` and ``delta``,
an unchanged one emits nothing, and a charge that no longer arises gets a revision with no
lines and amount 0. Nothing already emitted is ever changed. The offline ``Biller`` and the
worker's stage 2 both call ``rate_unit``, so they emit the same charges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from rating.account import AccountView
from rating.packages import PackageLedger
from rating.periods import Period
from rating.pricers import UNITS
from topics.charges import Charge
from topics.timefmt import format_time


def charge_id(product: str, item: str, account: str, period: Period) -> str:
    return f"{product}/{item}/{account}/{period.key}"


def unit_id(account: str, kind: str, period: Period) -> str:
    return f"{kind}/{account}/{period.key}"


def rate_unit(
    account: str,
    kind: str,
    period: Period,
    summaries: Mapping[int, Any],
    view: AccountView,
    ledger: PackageLedger,
    previous: Mapping[str, Charge],
    clock_ms: int,
) -> list[Charge]:
    """New revisions of the unit's charges; ``previous`` is the last revision of each
    charge this unit emitted so far (updated by the caller with the result)."""
    unit = unit_id(account, kind, period)
    drafts = UNITS[kind].price(view, period, summaries, ledger, unit) if summaries else []
    catalog = view.catalog(period).name
    start, end = period.describe()
    emitted_at = format_time(clock_ms)
    out: list[Charge] = []
    current: set[str] = set()
    for draft in drafts:
        cid = charge_id(draft.product, draft.item, account, period)
        current.add(cid)
        before = previous.get(cid)
        if draft.empty and before is None:
            continue
        charge = Charge(
            cid, 0, account, draft.product, draft.item, start, end, catalog,
            draft.lines, draft.amount, Decimal(0), draft.usage_by_app, emitted_at,
        )
        if before is None or before.content() != charge.content():
            out.append(charge.next_revision(before, emitted_at))
    for cid in sorted(set(previous) - current):
        before = previous[cid]
        gone = replace(before, lines=(), amount=Decimal(0), usage_by_app={})
        if before.content() != gone.content():
            out.append(gone.next_revision(before, emitted_at))
    return out

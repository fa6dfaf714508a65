"""``transcode.standard``, ``.top_speed`` and ``.audio``: minutes by codec and tier.

A day's seconds per (kind, codec, billed tier), summed over the account's apps, round up
to whole minutes. Transcoding packages hold hours of the base tier (480P H.264 of their
kind); a minute of a line drains price / base price package minutes, so the leftover
amount is exactly minutes × price − drained package minutes × base price.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import reduce
from typing import Any

from rating.account import AccountView
from rating.catalog import Catalog
from rating.draft import ChargeDraft, line
from rating.meters.sums import TRANSCODE
from rating.money import EXACT, ZERO, div, mul
from rating.packages import PackageLedger, drain
from rating.periods import Period

KINDS = ("standard", "top_speed", "audio")
PACKAGE_KINDS = ("transcode_standard", "transcode_top_speed")


def _billed_key(catalog: Catalog, key: str) -> tuple[str, str, str]:
    kind, codec, long_edge, short_edge = key.split("|")
    if kind == "audio":
        return "audio", "", ""
    tier = catalog.resolution_tier(int(long_edge), int(short_edge))
    billed, _ = catalog.transcode_price(kind, codec, tier)
    return kind, codec, billed


def _base_price(catalog: Catalog, package_kind: str) -> Decimal:
    base_kind = catalog.packages[package_kind]["base_kind"]
    first_tier = catalog.transcode_tiers[0].name
    return catalog.transcode_prices[base_kind]["h264"][first_tier]


def price_transcode(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    catalog = view.catalog(period)
    merged = reduce(TRANSCODE.merge, summaries.values())["sums"]
    seconds: dict[tuple[str, str, str], int] = {}
    for key, value in merged.items():
        billed = _billed_key(catalog, key)
        seconds[billed] = seconds.get(billed, 0) + value
    tier_rank = {t.name: i for i, t in enumerate(catalog.transcode_tiers)}
    keys = sorted(seconds, key=lambda k: (KINDS.index(k[0]), k[1], tier_rank.get(k[2], -1)))
    minute_s = catalog.transcode_minute_seconds
    minutes = {k: -(-seconds[k] // minute_s) for k in keys}
    prices = {k: catalog.transcode_price(k[0], k[1] or None, k[2] or None)[1] for k in keys}
    given: dict[tuple[str, str, str], dict[str, Decimal]] = {}
    need_of: dict[tuple[str, str, str], Decimal] = {}  # package hours that cover a line fully
    for package_kind in PACKAGE_KINDS:
        packages = view.packages(package_kind, period)
        if not packages:
            continue
        base = _base_price(catalog, package_kind)
        drains = catalog.packages[package_kind]["drains"]
        lines_here = [k for k in keys if k[0] in drains and minutes[k]]
        needs = [("|".join(k), div(mul(minutes[k], prices[k]), mul(base, 60))) for k in lines_here]
        drained = drain(ledger, f"{unit}/{package_kind}", packages, needs)
        for k, (_, need) in zip(lines_here, needs, strict=True):
            given[k] = drained["|".join(k)]
            need_of[k] = need
    drafts = []
    for kind in KINDS:
        lines = []
        for k in (k for k in keys if k[0] == kind):
            taken = given.get(k, {})
            hours = ZERO
            for drawn in taken.values():
                hours = EXACT.add(hours, drawn)  # exact: 50 digits, not the default 28
            amount = minutes[k] * prices[k]
            if hours and hours == need_of[k]:
                amount = ZERO  # fully covered: no residue of the 50-digit ratio
            elif hours:
                base = _base_price(catalog, "transcode_top_speed" if kind == "top_speed" else "transcode_standard")
                amount = max(amount - mul(hours, 60, base), ZERO)
            dims = {} if kind == "audio" else {"codec": k[1], "tier": k[2]}
            lines.append(line(dims, Decimal(minutes[k]), "minute", prices[k], amount,
                              package_deducted=hours, packages=taken))
        if lines:
            usage = {
                str(app): {"seconds": str(sum(v for key, v in s["sums"].items() if key.startswith(kind + "|")))}
                for app, s in sorted(summaries.items())
            }
            drafts.append(ChargeDraft("css", f"transcode.{kind}", tuple(lines), usage))
    return drafts

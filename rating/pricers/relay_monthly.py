"""Monthly contract bandwidth: ``relay.bandwidth.monthly_95`` and
``relay.bandwidth.monthly_avg_daily_peak``.

Per zone, over the days an app billed in that mode (the account's download viewer
buckets summed): effective days are those whose peak exceeds the catalog's minimum
(1000 bit/s). Month-95: all 288 samples of every effective day, sorted, the top
floor(5 % × n) dropped, the largest remaining sample. Average daily peak: mean of the
effective days' peaks. Fee = bandwidth × contract price × effective days / days in month.
Our readings: upload is not billed in these contract modes (reported in usage); a zone
without a contract price gets an excluded line with no amount.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from rating.account import AccountView
from rating.catalog import Catalog
from rating.draft import ChargeDraft, line
from rating.meters.bandwidth import combined
from rating.money import ZERO, decimal_text, div, mbps_of_bucket, mul
from rating.packages import PackageLedger
from rating.periods import SAMPLE_MS, Period
from rating.pricers.relay import app_usage
from topics.appconfig import MONTHLY_RELAY_MODES
from topics.events import ZONES

ITEM_OF_MODE = {
    "bandwidth_monthly_95": "relay.bandwidth.monthly_95",
    "bandwidth_monthly_avg_daily_peak": "relay.bandwidth.monthly_avg_daily_peak",
}
BUCKET_S = SAMPLE_MS // 1000


def drop_count(n: int, fraction: Decimal) -> int:
    """floor(fraction × n): the samples dropped from the top."""
    return int((fraction * n).to_integral_value(rounding=ROUND_FLOOR))


def percentile_sample(samples: list[int], fraction: Decimal) -> int:
    """The largest sample left after dropping the top floor(fraction × n)."""
    ordered = sorted(samples, reverse=True)
    k = drop_count(len(ordered), fraction)
    return ordered[k] if k < len(ordered) else 0


def price_relay_month(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    catalog = view.catalog(period)
    drafts = []
    for mode in MONTHLY_RELAY_MODES:
        per_day: dict[str, dict[int, Any]] = {}
        for app, days in summaries.items():
            for day in period.days():
                if day.key in days and view.relay_mode(app, day) == mode:
                    per_day.setdefault(day.key, {})[app] = days[day.key]
        if per_day:
            drafts.append(_price_mode(view, catalog, period, mode, per_day))
    return drafts


def _price_mode(
    view: AccountView,
    catalog: Catalog,
    period: Period,
    mode: str,
    per_day: dict[str, dict[int, Any]],
) -> ChargeDraft:
    min_bytes_x8 = catalog.effective_day_min_bps * BUCKET_S  # peak × 8 must exceed this
    lines = []
    for zone in ZONES:
        days = []
        for apps in per_day.values():
            array = [0] * (86_400 // BUCKET_S)
            for summary in apps.values():
                part = combined(summary["buckets"], zone=zone, direction="down", source="viewer")
                array = [a + b for a, b in zip(array, part, strict=True)]
            if max(array) * 8 > min_bytes_x8:
                days.append(array)
        if not days:
            continue
        effective = len(days)
        if mode == "bandwidth_monthly_95":
            samples = [v for day in days for v in day]
            bandwidth = mbps_of_bucket(percentile_sample(samples, catalog.p95_drop_fraction))
        else:
            bandwidth = div(mbps_of_bucket(sum(max(day) for day in days)), effective)
        factor = div(effective, period.days_in)
        dims = {"zone": zone}
        price = view.contract_price(zone, period)
        if price is None:
            lines.append(line(dims, bandwidth, "Mbps", ZERO, ZERO, factor=factor,
                              excluded="no_contract_price"))
            continue
        amount = div(mul(bandwidth, price, effective), period.days_in)
        lines.append(line(dims, bandwidth, "Mbps", price, amount, factor=factor))
    usage: dict[str, dict[str, str]] = {}
    for apps in per_day.values():
        for app, summary in apps.items():
            mine = app_usage(summary)
            acc = usage.setdefault(str(app), {k: "0" for k in mine})
            for k, v in mine.items():
                acc[k] = decimal_text(Decimal(acc[k]) + Decimal(v))
    return ChargeDraft("css", ITEM_OF_MODE[mode], tuple(lines), dict(sorted(usage.items())))

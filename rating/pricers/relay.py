"""Daily relay charges: ``relay.traffic`` and ``relay.bandwidth.daily_peak``.

Each app bills the day in its own mode (SPEC §4 next-day rule); apps of one account in the
same mode are tiered on their total. Each zone, direction and product is tiered on its own.
Recording pulls (``source: recording``) are never billed and appear as excluded lines.
Upload is billed only when the upload rule holds for the day (``push_billed``); otherwise
it appears as an excluded line. ``css_traffic`` packages drain only in traffic mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import reduce
from typing import Any

from rating.account import AccountView
from rating.catalog import Catalog
from rating.draft import ChargeDraft, line
from rating.meters import RELAY
from rating.meters.bandwidth import combined, total
from rating.money import ZERO, decimal_text, div, gb, mbps_of_bucket, mul
from rating.packages import PackageLedger, drain
from rating.periods import Period
from topics.charges import ChargeLine
from topics.events import ZONES

PRODUCTS = ("leb", "standard")


def push_billed(catalog: Catalog, buckets: dict[str, list[int]]) -> bool:
    """Download : upload < 1 : 10 and the push daily peak above the catalog's minimum."""
    down = total(buckets, direction="down", source="viewer")
    up = total(buckets, direction="up", source="viewer")
    if up == 0 or not down < catalog.upload_max_down_up_ratio * up:
        return False
    push_peak = max(combined(buckets, direction="up", source="viewer"))
    return mbps_of_bucket(push_peak) > catalog.upload_min_peak_mbps


def app_usage(summary: Mapping[str, Any]) -> dict[str, str]:
    b = summary["buckets"]
    return {
        "download_gb": decimal_text(gb(total(b, direction="down", source="viewer"))),
        "upload_gb": decimal_text(gb(total(b, direction="up", source="viewer"))),
        "recording_pull_gb": decimal_text(gb(total(b, source="recording"))),
    }


def excluded_recording(buckets: dict[str, list[int]]) -> list[ChargeLine]:
    out = []
    for zone in ZONES:
        for direction in ("down", "up"):
            for product in PRODUCTS:
                n = total(buckets, zone=zone, direction=direction, product=product, source="recording")
                if n:
                    dims = {"zone": zone, "direction": direction, "product": product,
                            "source": "recording"}
                    out.append(line(dims, gb(n), "GB", ZERO, ZERO, excluded="recording_pull"))
    return out


def price_relay_day(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    by_mode: dict[str, dict[int, Any]] = {}
    for app, summary in summaries.items():
        by_mode.setdefault(view.relay_mode(app, period), {})[app] = summary
    catalog = view.catalog(period)
    drafts = []
    if "traffic" in by_mode:
        drafts.append(_traffic(view, catalog, period, by_mode["traffic"], ledger, unit))
    if "bandwidth_daily_peak" in by_mode:
        drafts.append(_daily_peak(catalog, by_mode["bandwidth_daily_peak"]))
    return drafts


def _usage(apps: Mapping[int, Any]) -> dict[str, dict[str, str]]:
    return {str(app): app_usage(s) for app, s in sorted(apps.items())}


def _traffic(
    view: AccountView,
    catalog: Catalog,
    period: Period,
    apps: Mapping[int, Any],
    ledger: PackageLedger,
    unit: str,
) -> ChargeDraft:
    buckets = reduce(RELAY.merge, apps.values())["buckets"]
    billed_push = push_billed(catalog, buckets)
    volumes: list[tuple[str, dict[str, str], Decimal]] = []  # (package key, dims, GB)
    excluded: list[ChargeLine] = []
    for direction in ("down", "up"):
        for product in PRODUCTS:
            for zone in ZONES:
                n = total(buckets, zone=zone, direction=direction, product=product, source="viewer")
                if not n:
                    continue
                dims = {"zone": zone, "direction": direction, "product": product}
                if direction == "up" and not billed_push:
                    excluded.append(line(dims, gb(n), "GB", ZERO, ZERO, excluded="upload_not_billed"))
                    continue
                key = f"push:{zone}" if direction == "up" else f"{product}:{zone}"
                volumes.append((key, dims, gb(n)))
    order = {k: i for i, k in enumerate(catalog.packages["css_traffic"]["order"])}
    volumes.sort(key=lambda v: order.get(v[0], len(order)))
    packages = view.packages("css_traffic", period)
    needs = [
        (f"{i}", mul(volume, catalog.package_ratio("css_traffic", key)))
        for i, (key, _, volume) in enumerate(volumes)
    ]
    given = drain(ledger, unit, packages, needs) if packages else {}
    lines = []
    for i, (key, dims, volume) in enumerate(volumes):
        taken = given.get(str(i), {})
        deducted = sum(taken.values(), ZERO)
        leftover = volume
        if deducted:
            need = needs[i][1]
            leftover = ZERO if deducted == need else volume - div(deducted, catalog.package_ratio("css_traffic", key))
        product = "standard" if dims["direction"] == "up" else dims["product"]
        price = catalog.relay_traffic_price(product, dims["zone"], leftover)
        lines.append(line(dims, volume, "GB", price, mul(leftover, price),
                          package_deducted=deducted, packages=taken))
    lines += excluded + excluded_recording(buckets)
    return ChargeDraft("css", "relay.traffic", tuple(lines), _usage(apps))


def _daily_peak(catalog: Catalog, apps: Mapping[int, Any]) -> ChargeDraft:
    buckets = reduce(RELAY.merge, apps.values())["buckets"]
    billed_push = push_billed(catalog, buckets)
    lines = []
    for direction in ("down", "up"):
        for zone in ZONES:
            array = combined(buckets, zone=zone, direction=direction, source="viewer")
            top = max(array)
            if not top:
                continue
            peak = mbps_of_bucket(top)
            dims = {"zone": zone, "direction": direction}
            if direction == "up" and not billed_push:
                lines.append(line(dims, peak, "Mbps", ZERO, ZERO, excluded="upload_not_billed"))
                continue
            price = catalog.relay_bandwidth[zone].unit_price(peak)
            lines.append(line(dims, peak, "Mbps", price, mul(peak, price)))
    lines += excluded_recording(buckets)
    return ChargeDraft("css", "relay.bandwidth.daily_peak", tuple(lines), _usage(apps))

"""``vod.storage`` (daily peak per class and area; capacity packages) and ``vod.traffic``
(daily reach tier per zone, upper bound inclusive; draining packages, earliest purchase
first, in the catalog's package zones)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import reduce
from typing import Any

from rating.account import AccountView
from rating.draft import ChargeDraft, line
from rating.meters import VOD_STORAGE
from rating.meters.storage import peak
from rating.meters.sums import VOD_TRAFFIC
from rating.money import ZERO, decimal_text, gb, mul
from rating.packages import PackageLedger, capacity_cover, drain
from rating.periods import Period
from topics.events import AREAS, STORAGE_CLASSES, ZONES


def price_vod_storage(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    catalog = view.catalog(period)
    merged = reduce(VOD_STORAGE.merge, summaries.values())["steps"]
    covered_by = catalog.packages["vod_storage"]
    lines = []
    for area in AREAS:
        for cls in STORAGE_CLASSES:
            steps = merged.get(f"{cls}|{area}")
            if not steps:
                continue
            volume = gb(peak(steps))
            price = catalog.vod_storage[area][cls]
            taken: dict[str, Decimal] = {}
            if cls == covered_by["storage_class"] and area == covered_by["area"]:
                taken = capacity_cover(view.packages("vod_storage", period), volume)
            covered = sum(taken.values(), ZERO)
            lines.append(line({"storage_class": cls, "area": area}, volume, "GB", price,
                              mul(volume - covered, price), package_deducted=covered, packages=taken))
    usage = {
        str(app): {k.replace("|", "."): decimal_text(gb(peak(v))) for k, v in sorted(s["steps"].items())}
        for app, s in sorted(summaries.items())
    }
    return [ChargeDraft("vod", "vod.storage", tuple(lines), usage)]


def price_vod_traffic(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    catalog = view.catalog(period)
    merged = reduce(VOD_TRAFFIC.merge, summaries.values())["sums"]
    zones = [z for z in ZONES if merged.get(z)]
    package_zones = catalog.packages["vod_traffic"]["zones"]
    packages = sorted(view.packages("vod_traffic", period), key=lambda p: (p.purchased_at, p.package_id))
    needs = [(z, gb(merged[z])) for z in zones if z in package_zones]
    given = drain(ledger, unit, packages, needs) if packages else {}
    lines = []
    for zone in zones:
        volume = gb(merged[zone])
        taken = given.get(zone, {})
        covered = sum(taken.values(), ZERO)
        leftover = volume - covered
        price = catalog.vod_traffic[zone].unit_price(leftover)
        lines.append(line({"zone": zone}, volume, "GB", price, mul(leftover, price),
                          package_deducted=covered, packages=taken))
    usage = {
        str(app): {"traffic_gb": decimal_text(gb(sum(s["sums"].values())))}
        for app, s in sorted(summaries.items())
    }
    return [ChargeDraft("vod", "vod.traffic", tuple(lines), usage)]

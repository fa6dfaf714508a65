"""``recording.peak_channels``: the month's peak of concurrent recording channels."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import reduce
from typing import Any

from rating.account import AccountView
from rating.draft import ChargeDraft, line
from rating.meters import RECORDING
from rating.meters.concurrency import peak
from rating.money import div, mul
from rating.packages import PackageLedger
from rating.periods import Period


def price_recording(
    view: AccountView, period: Period, summaries: Mapping[int, Any], ledger: PackageLedger, unit: str
) -> list[ChargeDraft]:
    catalog = view.catalog(period)
    merged = reduce(RECORDING.merge, summaries.values())
    channels = peak(merged["points"])
    price = catalog.recording_price
    if catalog.recording_formula == "peak":
        factor = Decimal(1)
        amount = mul(channels, price)
    else:  # peak × (days with any recording / days in month) × price
        days = len(merged["days"])
        factor = div(days, period.days_in)
        amount = div(mul(channels, days, price), period.days_in)
    usage = {
        str(app): {"peak_channels": str(peak(s["points"])), "recording_days": str(len(s["days"]))}
        for app, s in sorted(summaries.items())
    }
    lines = (line({}, Decimal(channels), "channel", price, amount, factor=factor),)
    return [ChargeDraft("css", "recording.peak_channels", lines, usage)]

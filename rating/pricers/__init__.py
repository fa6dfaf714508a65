"""Account-level pricing, one module per price type.

A rating unit is (account, unit kind, period). Its pricer takes the apps' summaries of
that period (``{sdk_app_id: summary}``; for ``relay_monthly`` ``{sdk_app_id: {day: summary}}``)
and returns charge drafts. ``UNITS`` maps each unit kind to its pricer, the meter family
it reads and its period kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rating.account import AccountView
from rating.draft import ChargeDraft
from rating.packages import PackageLedger
from rating.periods import Period
from rating.pricers.im import price_im
from rating.pricers.images import price_moderation, price_snapshot
from rating.pricers.recording import price_recording
from rating.pricers.relay import price_relay_day
from rating.pricers.relay_monthly import price_relay_month
from rating.pricers.transcode import price_transcode
from rating.pricers.vod import price_vod_storage, price_vod_traffic

Pricer = Callable[[AccountView, Period, Mapping[int, Any], PackageLedger, str], list[ChargeDraft]]


@dataclass(frozen=True, slots=True)
class UnitKind:
    name: str
    family: str  # the meter family whose states it reads
    period_kind: str
    price: Pricer


UNITS: Mapping[str, UnitKind] = {
    u.name: u
    for u in (
        UnitKind("relay", "relay", "day", price_relay_day),
        UnitKind("transcode", "transcode", "day", price_transcode),
        UnitKind("vod_storage", "vod_storage", "day", price_vod_storage),
        UnitKind("vod_traffic", "vod_traffic", "day", price_vod_traffic),
        UnitKind("recording", "recording", "month", price_recording),
        UnitKind("relay_monthly", "relay", "month", price_relay_month),
        UnitKind("snapshot", "snapshot", "month", price_snapshot),
        UnitKind("moderation", "moderation", "month", price_moderation),
        UnitKind("im", "im", "month", price_im),
    )
}
UNIT_ORDER = {name: i for i, name in enumerate(UNITS)}


def units_of(family: str, period: Period) -> list[tuple[str, Period]]:
    """Rating units a change of ``family`` state in ``period`` affects."""
    if family == "relay":
        return [("relay", period), ("relay_monthly", period.month())]
    return [(family, period)]

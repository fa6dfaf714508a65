"""Transcoding: day-cumulative minutes per account, kind, codec and tier (SPEC §5, pricing §3)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fixtures.factories import directory, make_app

from rating.biller import rate_lines
from rating.catalog import catalog_named
from rating.meters.sums import TRANSCODE
from topics.appconfig import SERVICES
from topics.events import parse_event

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-tc"
APP = 1400000001
APP2 = 1400000002
DAY = "2026-08-03"
_ids = itertools.count()


def app_doc(sdk_app_id: int = APP, **extra: Any) -> dict[str, Any]:
    return make_app(sdk_app_id, ACCOUNT, SERVICES, **extra)


def tc(time: str, seconds: int, width: int = 640, height: int = 480, kind: str = "standard",
       codec: str = "h264", app: int = APP, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": f"tc-{next(_ids)}", "sdk_app_id": app, "type": "transcode.usage",
                             "time": time, "task_id": "task", "kind": kind, "seconds": seconds, **fields}
    if kind != "audio":
        event.update(codec=codec, width=width, height=height)
    return event


def at(day: str = DAY, clock: str = "10:00") -> str:
    return f"{day}T{clock}:00+08:00"


def rate(events: list[dict[str, Any]], *docs: dict[str, Any]) -> list[Any]:
    apps = directory(*(docs or (app_doc(),)))
    charges, rejections, _ = rate_lines(apps, [orjson.dumps(e) for e in events], None, now=lambda: NOW)
    assert rejections == []
    return charges


def only(charges: list[Any]) -> Any:
    assert len(charges) == 1, [c.charge_id for c in charges]
    return charges[0]


# -- day-cumulative rounding ---------------------------------------------------------------


def test_seconds_of_a_day_add_up_before_rounding() -> None:
    charge = only(rate([tc(at(clock="10:00"), 30), tc(at(clock="11:00"), 20), tc(at(clock="12:00"), 40)]))
    assert charge.charge_id == f"css/transcode.standard/{ACCOUNT}/{DAY}"
    [line] = charge.lines
    assert line.quantity == 2  # 90 s → 2 minutes, not 1 + 1 + 1
    assert line.unit_price == Decimal("0.016")
    assert charge.amount == Decimal("0.032")


def test_each_day_rounds_on_its_own() -> None:
    charges = rate([tc(at("2026-08-03"), 50), tc(at("2026-08-04"), 40)])
    assert [c.charge_id for c in charges] == [
        f"css/transcode.standard/{ACCOUNT}/2026-08-03",
        f"css/transcode.standard/{ACCOUNT}/2026-08-04",
    ]
    assert [c.lines[0].quantity for c in charges] == [1, 1]
    assert [c.amount for c in charges] == [Decimal("0.016")] * 2


def test_beijing_midnight_splits_days() -> None:
    charges = rate([tc("2026-08-03T15:59:00Z", 30), tc("2026-08-03T16:00:00Z", 30)])
    assert [c.charge_id.rsplit("/", 1)[1] for c in charges] == ["2026-08-03", "2026-08-04"]


def test_exact_minutes_and_one_second_over() -> None:
    assert only(rate([tc(at(), 120)])).lines[0].quantity == 2
    assert only(rate([tc(at(), 121)])).lines[0].quantity == 3
    assert only(rate([tc(at(), 1)])).lines[0].quantity == 1


def test_zero_seconds_emit_nothing() -> None:
    assert rate([tc(at(), 0)]) == []


def test_apps_of_an_account_round_together() -> None:
    charge = only(rate([tc(at(), 30), tc(at(), 40, app=APP2)], app_doc(APP), app_doc(APP2)))
    assert charge.lines[0].quantity == 2  # 70 s of the account
    assert charge.usage_by_app == {str(APP): {"seconds": "30"}, str(APP2): {"seconds": "40"}}


def test_tiers_round_separately() -> None:
    charge = only(rate([tc(at(), 30), tc(at(), 30, 1280, 720)]))
    assert [(ln.dimensions["tier"], ln.quantity) for ln in charge.lines] == [("480P", 1), ("720P", 1)]
    assert charge.amount == Decimal("0.0485")


def test_meter_keeps_pixels_not_tiers() -> None:
    state = TRANSCODE.initial()
    TRANSCODE.fold(state, parse_event(tc(at(), 30, 480, 1280)))
    TRANSCODE.fold(state, parse_event(tc(at(), 20, 1280, 480)))
    TRANSCODE.fold(state, parse_event(tc(at(), 5, kind="audio")))
    assert state == {"sums": {"standard|h264|1280|480": 50, "audio|||": 5}}


# -- resolution tiers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "tier_2022", "tier_2019"),
    [
        (640, 480, "480P", "480P"),
        (480, 640, "480P", "480P"),
        (640, 481, "720P", "720P"),
        (641, 360, "720P", "720P"),
        (1280, 480, "720P", "720P"),  # Tencent's example
        (480, 1280, "720P", "720P"),  # portrait: long edge is the height
        (1280, 720, "720P", "720P"),
        (1280, 721, "1080P", "1080P"),
        (1920, 1080, "1080P", "1080P"),
        (1936, 1088, "1080P", "2K"),  # 2022 widened the 1080P bound
        (1921, 1080, "1080P", "2K"),
        (1920, 1081, "1080P", "2K"),
        (2560, 1440, "2K", "2K"),
        (2561, 1440, "4K", "4K"),
        (3840, 2160, "4K", "4K"),
    ],
)
def test_resolution_tier(width: int, height: int, tier_2022: str, tier_2019: str) -> None:
    assert catalog_named("tencent-2022").resolution_tier(width, height) == tier_2022
    assert catalog_named("tencent-2019").resolution_tier(width, height) == tier_2019


def test_1936x1088_is_1080p_in_2022_and_2k_in_2019() -> None:
    new = only(rate([tc(at("2026-08-03"), 60, 1936, 1088)]))
    old = only(rate([tc(at("2021-06-03"), 60, 1936, 1088)]))
    assert new.catalog == "tencent-2022" and old.catalog == "tencent-2019"
    assert new.lines[0].dimensions == {"codec": "h264", "tier": "1080P"}
    assert new.amount == Decimal("0.063")
    assert old.lines[0].dimensions == {"codec": "h264", "tier": "2K"}
    assert old.amount == Decimal("0.136")


def test_2019_top_speed_above_1080p_bills_at_1080p() -> None:
    old = only(rate([tc(at("2021-06-03"), 600, 3840, 2160, kind="top_speed")]))
    assert old.charge_id == f"css/transcode.top_speed/{ACCOUNT}/2021-06-03"
    assert old.lines[0].dimensions == {"codec": "h264", "tier": "1080P"}
    assert old.lines[0].unit_price == Decimal("0.2511")
    assert old.amount == Decimal("2.511")
    old265 = only(rate([tc(at("2021-06-03"), 60, 2560, 1440, kind="top_speed", codec="h265")]))
    assert old265.lines[0].dimensions["tier"] == "1080P"
    assert old265.amount == Decimal("0.7533")
    # 2022 has a top-speed 4K price
    new = only(rate([tc(at("2026-08-03"), 600, 3840, 2160, kind="top_speed")]))
    assert new.lines[0].dimensions["tier"] == "4K"
    assert new.amount == Decimal("10.044")


def test_2019_top_speed_2k_and_4k_share_the_1080p_minute_rounding() -> None:
    old = only(rate([tc(at("2021-06-03"), 30, 2560, 1440, kind="top_speed"),
                     tc(at("2021-06-03"), 30, 3840, 2160, kind="top_speed")]))
    [line] = old.lines
    assert line.quantity == 1  # both bill as 1080P: one line, 60 s
    assert old.amount == Decimal("0.2511")


@pytest.mark.parametrize(
    ("kind", "width", "height", "price"),
    [
        ("standard", 640, 480, "0.080"),
        ("standard", 1280, 720, "0.156"),
        ("standard", 1920, 1080, "0.3112"),
        ("standard", 2560, 1440, "0.6703"),
        ("standard", 3840, 2160, "1.3406"),
        ("top_speed", 640, 480, "0.198"),
        ("top_speed", 1280, 720, "0.3768"),
        ("top_speed", 1920, 1080, "0.7533"),
        ("top_speed", 2560, 1440, "1.5066"),
        ("top_speed", 3840, 2160, "3.0132"),
    ],
)
def test_h265_prices(kind: str, width: int, height: int, price: str) -> None:
    charge = only(rate([tc(at(), 3600, width, height, kind=kind, codec="h265")]))
    [line] = charge.lines
    assert line.dimensions["codec"] == "h265"
    assert line.quantity == 60
    assert line.unit_price == Decimal(price)
    assert charge.amount == Decimal(price) * 60


def test_codecs_are_separate_lines() -> None:
    charge = only(rate([tc(at(), 30, 1280, 720), tc(at(), 30, 1280, 720, codec="h265")]))
    assert [(ln.dimensions["codec"], ln.quantity) for ln in charge.lines] == [("h264", 1), ("h265", 1)]
    assert charge.amount == Decimal("0.1885")


# -- Tencent's examples --------------------------------------------------------------------


def test_example_standard_with_watermark() -> None:
    charge = only(rate([tc(at(), 3600, 1280, 720), tc(at(), 1800, 640, 480, trigger="watermark")]))
    assert charge.amount == Decimal("2.43")


def test_example_top_speed() -> None:
    charge = only(rate([tc(at(), 3600, 1280, 720, kind="top_speed"),
                        tc(at(), 1800, 640, 480, kind="top_speed")]))
    assert charge.amount == Decimal("9.516")


def test_example_audio() -> None:
    charge = only(rate([tc(at(), 300 * 60, kind="audio")]))
    assert charge.charge_id == f"css/transcode.audio/{ACCOUNT}/{DAY}"
    [line] = charge.lines
    assert line.dimensions == {}
    assert line.quantity == 300
    assert line.unit_price == Decimal("0.0056")
    assert charge.amount == Decimal("1.68")


def test_mix_bills_as_standard() -> None:
    charges = rate([tc(at(), 60, 1920, 1080, trigger="mix")])
    assert [c.item for c in charges] == ["transcode.standard"]
    assert charges[0].amount == Decimal("0.063")


def test_kinds_are_separate_charges() -> None:
    charges = rate([tc(at(), 61), tc(at(), 61, kind="top_speed"), tc(at(), 61, kind="audio")])
    assert sorted(c.item for c in charges) == ["transcode.audio", "transcode.standard", "transcode.top_speed"]
    amounts = {c.item: c.amount for c in charges}
    assert amounts == {
        "transcode.standard": Decimal("0.032"),
        "transcode.top_speed": Decimal("0.132"),
        "transcode.audio": Decimal("0.0112"),
    }

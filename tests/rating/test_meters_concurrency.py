"""Recording channels: 5-minute sample points, stale tasks, months, late stops (SPEC §5)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Context, Decimal
from functools import reduce
from typing import Any

import orjson
from fixtures.factories import directory, make_app

from rating.biller import BillingSettings, rate_lines
from rating.meters import RECORDING
from rating.meters.concurrency import months_between, peak
from rating.money import div
from rating.periods import Period
from topics.appconfig import SERVICES, AppDirectory
from topics.events import parse_event
from topics.timefmt import parse_time, to_ms

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-rec"
APP = 1400000001
APP2 = 1400000002
_ids = itertools.count()
AUG = Period("month", "2026-08")


def app_doc(sdk_app_id: int = APP, **extra: Any) -> dict[str, Any]:
    return make_app(sdk_app_id, ACCOUNT, SERVICES, **extra)


def rec(action: str, task: str, time: str, app: int = APP, fmt: str = "mp4",
        stream: str | None = None) -> dict[str, Any]:
    return {"event_id": f"r-{next(_ids)}", "sdk_app_id": app, "type": f"recording.{action}",
            "time": time, "task_id": task, "stream_id": stream or f"s-{task}", "format": fmt}


def rate(apps: AppDirectory, events: list[dict[str, Any]], settings: BillingSettings | None = None):
    charges, rejections, biller = rate_lines(apps, [orjson.dumps(e) for e in events], settings,
                                             now=lambda: NOW)
    assert rejections == []
    return charges, biller


def by_id(charges: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for c in charges:
        out.setdefault(c.charge_id, []).append(c)
    return out


WIDE = Context(prec=200)  # wide enough that no subtraction of two amounts rounds


def fold(events: list[dict[str, Any]]) -> dict[str, Any]:
    state = RECORDING.initial()
    for e in events:
        RECORDING.fold(state, parse_event(e))
    return state


def point(time: str, month: Period = AUG) -> str:
    """The summary's index of the sample point at ``time``."""
    return str((to_ms(parse_time(time)) - month.start_ms) // 300_000)


def summary(events: list[dict[str, Any]], month: Period = AUG) -> dict[str, Any]:
    return RECORDING.summary(fold(events), month)


# -- sample points -------------------------------------------------------------------------


def test_point_index_of_1005() -> None:
    # 2 full days (576 points) + 10 h (120) + 1 = 697
    assert point("2026-08-03T10:05:00+08:00") == "697"
    assert point("2026-08-01T00:00:00+08:00") == "0"


def test_task_between_points_counts_at_the_one_point_inside() -> None:
    s = summary([rec("start", "t", "2026-08-03T10:02:00+08:00"),
                 rec("stop", "t", "2026-08-03T10:08:00+08:00")])
    assert s["points"] == {point("2026-08-03T10:05:00+08:00"): 1}
    assert s["days"] == ["2026-08-03"]
    assert s["stale"] == 0


def test_start_inclusive_stop_exclusive() -> None:
    s = summary([rec("start", "t", "2026-08-03T10:00:00+08:00"),
                 rec("stop", "t", "2026-08-03T10:05:00+08:00")])
    # active at 10:00 (start <= t) but not at 10:05 (t < stop fails)
    assert s["points"] == {point("2026-08-03T10:00:00+08:00"): 1}
    s = summary([rec("start", "t", "2026-08-03T10:05:00+08:00"),
                 rec("stop", "t", "2026-08-03T10:05:00.001+08:00")])
    assert s["points"] == {point("2026-08-03T10:05:00+08:00"): 1}


def test_task_between_two_points_has_no_sample_but_a_recording_day() -> None:
    s = summary([rec("start", "t", "2026-08-03T10:01:00+08:00"),
                 rec("stop", "t", "2026-08-03T10:04:59+08:00")])
    assert s["points"] == {}
    assert peak(s["points"]) == 0
    assert s["days"] == ["2026-08-03"]


def test_formats_count_separately() -> None:
    events = [
        rec("start", "t-mp4", "2026-08-03T10:00:00+08:00", fmt="mp4", stream="s1"),
        rec("start", "t-hls", "2026-08-03T10:00:00+08:00", fmt="hls", stream="s1"),
        rec("stop", "t-mp4", "2026-08-03T11:00:00+08:00", fmt="mp4", stream="s1"),
        rec("stop", "t-hls", "2026-08-03T11:00:00+08:00", fmt="hls", stream="s1"),
    ]
    s = summary(events)
    assert peak(s["points"]) == 2
    assert len(s["points"]) == 12
    # through the biller, 2019 formula: peak 2 → 60 (Tencent's example)
    charges, _ = rate(directory(app_doc(catalog="tencent-2019")), events)
    [charge] = charges
    assert charge.charge_id == f"css/recording.peak_channels/{ACCOUNT}/2026-08"
    assert charge.lines[0].quantity == 2
    assert charge.amount == Decimal(60)


def test_heartbeats_do_not_matter_when_stopped() -> None:
    s = summary([
        rec("start", "t", "2026-08-03T10:00:00+08:00"),
        rec("heartbeat", "t", "2026-08-03T10:01:00+08:00"),
        rec("stop", "t", "2026-08-03T12:00:00+08:00"),
    ])
    assert len(s["points"]) == 24  # 10:00 .. 11:55
    assert s["stale"] == 0


# -- stale tasks ---------------------------------------------------------------------------


def test_stale_task_ends_at_last_heartbeat_plus_15_minutes() -> None:
    s = summary([
        rec("start", "t", "2026-08-03T10:00:00+08:00"),
        rec("heartbeat", "t", "2026-08-03T10:20:00+08:00"),
    ])
    # active [10:00, 10:35): points 10:00 .. 10:30
    expected = {point(f"2026-08-03T10:{m:02d}:00+08:00"): 1 for m in range(0, 35, 5)}
    assert s["points"] == expected
    assert s["stale"] == 1


def test_stale_task_without_heartbeat() -> None:
    s = summary([rec("start", "t", "2026-08-03T10:00:00+08:00")])
    # [10:00, 10:15): 10:00, 10:05, 10:10
    assert sorted(s["points"]) == sorted(point(f"2026-08-03T10:{m:02d}:00+08:00") for m in (0, 5, 10))
    assert s["stale"] == 1


def test_stale_end_exactly_on_a_point_is_exclusive() -> None:
    s = summary([rec("start", "t", "2026-08-03T10:00:00+08:00"),
                 rec("heartbeat", "t", "2026-08-03T10:05:00+08:00")])
    # ends 10:20 exactly: 10:20 is not counted
    assert point("2026-08-03T10:20:00+08:00") not in s["points"]
    assert len(s["points"]) == 4


# -- months --------------------------------------------------------------------------------


CROSS = [
    rec("start", "x", "2026-07-31T23:00:00+08:00"),
    rec("stop", "x", "2026-08-01T02:00:00+08:00"),
]


def test_task_across_month_end_counts_in_both_months() -> None:
    july = summary(CROSS, Period("month", "2026-07"))
    aug = summary(CROSS, AUG)
    assert len(july["points"]) == 12  # 23:00 .. 23:55
    assert july["days"] == ["2026-07-31"]
    assert len(aug["points"]) == 24  # 00:00 .. 01:55
    assert aug["days"] == ["2026-08-01"]
    assert aug["points"]["0"] == 1


def test_task_across_month_end_is_billed_in_both_months() -> None:
    charges, _ = rate(directory(app_doc()), CROSS)
    got = {c.charge_id: c for c in charges}
    july = got[f"css/recording.peak_channels/{ACCOUNT}/2026-07"]
    aug = got[f"css/recording.peak_channels/{ACCOUNT}/2026-08"]
    assert july.catalog == aug.catalog == "tencent-2022"
    # 2022: peak 1 × (1 recording day / 31) × 30
    assert july.lines[0].amount == div(30, 31)
    assert aug.lines[0].amount == div(30, 31)
    assert july.amount == aug.amount == div(30, 31)  # the charge total is its line, exactly
    assert july.lines[0].factor == div(1, 31)
    assert aug.amount_rounded == Decimal("0.97")


def test_months_between() -> None:
    start = to_ms(parse_time("2026-07-31T23:00:00+08:00"))
    end = to_ms(parse_time("2026-08-01T02:00:00+08:00"))
    assert months_between(start, end) == [Period("month", "2026-07"), AUG]
    assert months_between(start, start) == [Period("month", "2026-07")]


# -- the 2022 formula's recording days ------------------------------------------------------


def test_recording_days_factor_2022() -> None:
    events = [
        # day 3: two channels at once
        rec("start", "a", "2026-08-03T10:00:00+08:00"),
        rec("start", "b", "2026-08-03T10:00:00+08:00"),
        rec("stop", "a", "2026-08-03T11:00:00+08:00"),
        rec("stop", "b", "2026-08-03T11:00:00+08:00"),
        # day 10: one short task (counts as a recording day)
        rec("start", "c", "2026-08-10T08:00:00+08:00"),
        rec("stop", "c", "2026-08-10T08:30:00+08:00"),
        # day 20 to day 21 across midnight: two recording days
        rec("start", "d", "2026-08-20T23:50:00+08:00"),
        rec("stop", "d", "2026-08-21T00:10:00+08:00"),
    ]
    s = summary(events)
    assert s["days"] == ["2026-08-03", "2026-08-10", "2026-08-20", "2026-08-21"]
    charges, _ = rate(directory(app_doc()), events)
    [charge] = charges
    [line] = charge.lines
    assert line.quantity == 2
    assert line.unit_price == 30
    assert line.factor == div(4, 31)
    assert line.amount == div(2 * 4 * 30, 31)  # 240/31
    assert charge.amount == line.amount
    assert charge.amount_rounded == Decimal("7.74")
    assert charge.usage_by_app == {str(APP): {"peak_channels": "2", "recording_days": "4"}}


def test_recording_days_in_february_2026() -> None:
    events = [rec("start", "a", "2026-02-14T10:00:00+08:00"),
              rec("stop", "a", "2026-02-14T11:00:00+08:00")]
    [charge] = rate(directory(app_doc()), events)[0]
    assert charge.charge_id.endswith("/2026-02")
    assert charge.lines[0].amount == div(30, 28)
    assert charge.amount_rounded == Decimal("1.07")


def test_2019_catalog_by_date_ignores_days() -> None:
    events = [rec("start", f"t{i}", "2021-06-03T10:00:00+08:00") for i in range(10)]
    events += [rec("stop", f"t{i}", "2021-06-03T10:30:00+08:00") for i in range(10)]
    [charge] = rate(directory(app_doc()), events)[0]
    assert charge.catalog == "tencent-2019"
    assert charge.lines[0].quantity == 10
    assert charge.lines[0].factor == 1
    assert charge.amount == Decimal(300)  # Tencent's example: peak 10 → 300


# -- late stop after the month closed ------------------------------------------------------


def test_late_stop_after_close_emits_revision_2() -> None:
    apps = directory(app_doc(catalog="tencent-2019"))
    events = [
        rec("start", "a", "2026-08-10T10:00:00+08:00"),  # never stopped in time: stale at 10:15
        rec("start", "b", "2026-08-10T11:00:00+08:00"),
        rec("stop", "b", "2026-08-10T12:00:00+08:00"),
        # another task moves the clock past 1 Sep + 1 day grace: August closes
        rec("start", "z", "2026-09-02T01:00:00+08:00"),
        rec("stop", "z", "2026-09-02T01:01:00+08:00"),
        # a's stop arrives late (inside the 40-day horizon): a overlaps b → peak 2
        rec("stop", "a", "2026-08-10T11:30:00+08:00"),
    ]
    charges, biller = rate(apps, events)
    aug = by_id(charges)[f"css/recording.peak_channels/{ACCOUNT}/2026-08"]
    assert [c.revision for c in aug] == [1, 2]
    first, second = aug
    assert first.amount == 30 and first.lines[0].quantity == 1
    assert first.previous_amount == 0 and first.delta == 30
    assert second.amount == 60 and second.lines[0].quantity == 2
    assert second.previous_amount == 30
    assert second.delta == 30
    # revision 1 was emitted when the month closed, before the late stop
    assert charges.index(first) < charges.index(second)
    assert biller.stats.late_events == 1
    assert biller.stats.revisions == 1


def test_late_stop_in_2022_revision_delta() -> None:
    apps = directory(app_doc())
    events = [
        rec("start", "a", "2026-08-10T10:00:00+08:00"),
        rec("start", "b", "2026-08-10T11:00:00+08:00"),
        rec("stop", "b", "2026-08-10T12:00:00+08:00"),
        rec("start", "z", "2026-09-02T01:00:00+08:00"),
        rec("stop", "z", "2026-09-02T01:01:00+08:00"),
        rec("stop", "a", "2026-08-10T11:30:00+08:00"),
    ]
    aug = by_id(rate(apps, events)[0])[f"css/recording.peak_channels/{ACCOUNT}/2026-08"]
    assert [c.revision for c in aug] == [1, 2]
    assert aug[0].lines[0].amount == div(30, 31)
    assert aug[1].lines[0].amount == div(60, 31)
    assert (aug[0].amount, aug[1].amount) == (div(30, 31), div(60, 31))
    assert (aug[0].amount_rounded, aug[1].amount_rounded) == (Decimal("0.97"), Decimal("1.94"))
    assert aug[1].delta == WIDE.subtract(aug[1].amount, aug[0].amount)  # exact, not 28 digits
    assert WIDE.add(aug[1].previous_amount, aug[1].delta) == aug[1].amount
    assert aug[1].previous_amount == aug[0].amount


def test_stop_before_close_gives_one_revision() -> None:
    events = [
        rec("start", "a", "2026-08-10T10:00:00+08:00"),
        rec("stop", "a", "2026-08-10T11:30:00+08:00"),
        rec("start", "z", "2026-09-02T01:00:00+08:00"),
    ]
    aug = by_id(rate(directory(app_doc(catalog="tencent-2019")), events)[0])[
        f"css/recording.peak_channels/{ACCOUNT}/2026-08"]
    assert [c.revision for c in aug] == [1]


# -- account merge -------------------------------------------------------------------------


def test_merge_adds_point_wise_account_peak_is_max_of_sum() -> None:
    one = summary([
        rec("start", "a1", "2026-08-03T10:00:00+08:00"), rec("stop", "a1", "2026-08-03T10:10:00+08:00"),
        rec("start", "a2", "2026-08-03T10:00:00+08:00"), rec("stop", "a2", "2026-08-03T10:10:00+08:00"),
    ])
    two = summary([
        rec("start", "b1", "2026-08-03T11:00:00+08:00", app=APP2),
        rec("stop", "b1", "2026-08-03T11:10:00+08:00", app=APP2),
    ])
    merged = RECORDING.merge(one, two)
    assert peak(one["points"]) == 2 and peak(two["points"]) == 1
    assert peak(merged["points"]) == 2  # not 2 + 1
    assert sum(merged["points"].values()) == 2 * 2 + 2
    assert merged["days"] == ["2026-08-03"]


def test_merge_adds_overlapping_points() -> None:
    one = summary([rec("start", "a", "2026-08-03T10:00:00+08:00"),
                   rec("stop", "a", "2026-08-03T10:30:00+08:00")])
    two = summary([rec("start", "b", "2026-08-03T10:20:00+08:00", app=APP2),
                   rec("stop", "b", "2026-08-03T10:50:00+08:00", app=APP2),
                   rec("start", "c", "2026-08-04T10:20:00+08:00", app=APP2)])
    merged = reduce(RECORDING.merge, [one, two])
    assert merged["points"][point("2026-08-03T10:20:00+08:00")] == 2
    assert merged["points"][point("2026-08-03T10:25:00+08:00")] == 2
    assert merged["points"][point("2026-08-03T10:30:00+08:00")] == 1
    assert merged["days"] == ["2026-08-03", "2026-08-04"]
    assert merged["stale"] == 1
    assert RECORDING.merge(two, one) == merged


def test_account_peak_through_biller_with_two_apps() -> None:
    apps = directory(app_doc(APP, catalog="tencent-2019"), app_doc(APP2))
    events = [
        rec("start", "a1", "2026-08-03T10:00:00+08:00"), rec("stop", "a1", "2026-08-03T10:10:00+08:00"),
        rec("start", "a2", "2026-08-03T10:00:00+08:00"), rec("stop", "a2", "2026-08-03T10:10:00+08:00"),
        rec("start", "b1", "2026-08-03T11:00:00+08:00", app=APP2),
        rec("stop", "b1", "2026-08-03T11:10:00+08:00", app=APP2),
        rec("start", "b2", "2026-08-03T10:05:00+08:00", app=APP2),
        rec("stop", "b2", "2026-08-03T10:06:00+08:00", app=APP2),
    ]
    [charge] = rate(apps, events)[0]
    # at 10:05: a1, a2 (app 1) + b2 (app 2) = 3; sum of app peaks would be 2 + 1 = 3 too,
    # but the point-wise sum is what counts: check the per-app breakdown separately
    assert charge.lines[0].quantity == 3
    assert charge.amount == 90
    assert charge.usage_by_app[str(APP)]["peak_channels"] == "2"
    assert charge.usage_by_app[str(APP2)]["peak_channels"] == "1"


def test_account_peak_not_sum_of_app_peaks_through_biller() -> None:
    apps = directory(app_doc(APP, catalog="tencent-2019"), app_doc(APP2))
    events = [
        rec("start", "a1", "2026-08-03T10:00:00+08:00"), rec("stop", "a1", "2026-08-03T10:10:00+08:00"),
        rec("start", "a2", "2026-08-03T10:00:00+08:00"), rec("stop", "a2", "2026-08-03T10:10:00+08:00"),
        rec("start", "b1", "2026-08-03T11:00:00+08:00", app=APP2),
        rec("stop", "b1", "2026-08-03T11:10:00+08:00", app=APP2),
    ]
    [charge] = rate(apps, events)[0]
    assert charge.lines[0].quantity == 2
    assert charge.amount == 60

"""Periods close, late events re-rate them as new revisions, duplicates change nothing (SPEC §6, §7)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

from rating.biller import BillingSettings, rate_lines
from topics.appconfig import SERVICES, AppConfig, AppDirectory
from topics.charges import Charge
from topics.reasons import QuarantineReason

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-rev"
APP = 1400000001
GB = 10**9
_ids = itertools.count()
DAY_ID = f"css/relay.traffic/{ACCOUNT}/2026-08-03"


def apps(**extra: Any) -> AppDirectory:
    doc = {"sdk_app_id": APP, "account_id": ACCOUNT, "services": {s: True for s in SERVICES}, **extra}
    return AppDirectory([AppConfig.from_dict(doc)])


def relay(time: str, gb: int, event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"rv-{next(_ids)}", "sdk_app_id": APP, "type": "relay.traffic",
            "time": time, "stream_id": "s", "zone": "mainland", "bytes": gb * GB}


def rate(events: list[dict[str, Any]], settings: BillingSettings | None = None, **extra: Any):
    return rate_lines(apps(**extra), [orjson.dumps(e) for e in events], settings, now=lambda: NOW)


def of(charges: list[Charge], charge_id: str) -> list[Charge]:
    return [c for c in charges if c.charge_id == charge_id]


def test_late_event_after_close_emits_revision_2() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-08-04T03:00:00+08:00", 1),  # clock past 4 Aug 00:00 + 2 h grace: the 3rd closes
        relay("2026-08-03T12:00:00+08:00", 50),  # late, inside the 40-day horizon
    ]
    charges, rejections, biller = rate(events)
    assert rejections == []
    first, second = of(charges, DAY_ID)
    assert (first.revision, first.amount, first.previous_amount, first.delta) == (1, 26, 0, 26)
    assert first.lines[0].quantity == 100  # revision 1 is unchanged
    assert (second.revision, second.amount, second.previous_amount, second.delta) == (2, 39, 26, 13)
    assert second.lines[0].quantity == 150
    assert first.emitted_at == "2026-08-04T03:00:00+08:00"
    assert second.emitted_at == "2026-08-04T03:00:00+08:00"  # the clock did not move back
    # emission order: revision 1 when the day closed, revision 2 on the late event
    assert charges.index(first) < charges.index(second)
    assert biller.stats.late_events == 1 and biller.stats.revisions == 1
    doc = second.to_dict()
    assert (doc["amount"], doc["previous_amount"], doc["delta"], doc["amount_rounded"]) == ("39", "26", "13", "39.00")


def test_event_inside_grace_is_not_late() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-08-04T01:59:00+08:00", 1),  # inside the 2 h grace: the 3rd is still open
        relay("2026-08-03T12:00:00+08:00", 50),
    ]
    charges, _, biller = rate(events)
    [only] = of(charges, DAY_ID)
    assert (only.revision, only.amount) == (1, 39)
    assert biller.stats.late_events == 0


def test_grace_is_configurable() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-08-04T00:30:00+08:00", 1),
        relay("2026-08-03T12:00:00+08:00", 50),
    ]
    charges, _, _ = rate(events, BillingSettings(grace_day_s=600))
    assert [c.revision for c in of(charges, DAY_ID)] == [1, 2]


def test_identical_duplicate_resend_produces_no_revision() -> None:
    first = relay("2026-08-03T10:00:00+08:00", 100)
    events = [first, relay("2026-08-04T03:00:00+08:00", 1), dict(first)]
    charges, rejections, biller = rate(events)
    assert rejections == []
    [only] = of(charges, DAY_ID)
    assert (only.revision, only.amount) == (1, 26)
    assert biller.stats.events["duplicate"] == 1
    assert biller.stats.late_events == 0


def test_duplicate_with_other_content_still_deduped() -> None:
    first = relay("2026-08-03T10:00:00+08:00", 100, event_id="same")
    again = relay("2026-08-03T11:00:00+08:00", 500, event_id="same")
    charges, _, biller = rate([first, again])
    [only] = of(charges, DAY_ID)
    assert only.amount == 26
    assert biller.stats.events == {"accepted": 1, "duplicate": 1}


def test_late_event_that_changes_nothing_emits_nothing() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-08-04T03:00:00+08:00", 1),
        relay("2026-08-03T12:00:00+08:00", 0),  # new event id, zero bytes
    ]
    charges, _, biller = rate(events)
    assert [c.revision for c in of(charges, DAY_ID)] == [1]
    assert biller.stats.late_events == 1
    assert biller.stats.revisions == 0


def test_previous_amount_chain_over_three_revisions() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-08-04T03:00:00+08:00", 1),
        relay("2026-08-03T12:00:00+08:00", 50),
        relay("2026-08-06T00:00:00+08:00", 1),
        relay("2026-08-03T13:00:00+08:00", 1900),  # 2050 GB: reaches the 0.25 tier
    ]
    charges, _, _ = rate(events)
    revs = of(charges, DAY_ID)
    assert [c.revision for c in revs] == [1, 2, 3]
    assert [c.amount for c in revs] == [Decimal(26), Decimal(39), Decimal("512.5")]
    assert [c.previous_amount for c in revs] == [Decimal(0), Decimal(26), Decimal(39)]
    assert [c.delta for c in revs] == [Decimal(26), Decimal(13), Decimal("473.5")]
    for before, after in zip(revs, revs[1:], strict=False):
        assert after.previous_amount == before.amount
        assert after.delta == after.amount - before.amount
    assert sum(c.delta for c in revs) == revs[-1].amount
    assert revs[2].lines[0].unit_price == Decimal("0.25")


def test_late_event_beyond_horizon_is_too_late() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-09-20T00:00:00+08:00", 1),
        relay("2026-08-03T12:00:00+08:00", 50),  # 47 days before the clock
    ]
    charges, rejections, _ = rate(events)
    assert [c.revision for c in of(charges, DAY_ID)] == [1]
    assert [r.reason for r in rejections] == [QuarantineReason.TOO_LATE]


def test_late_event_within_horizon_of_40_days() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-09-11T12:00:00+08:00", 1),
        relay("2026-08-03T12:00:00+08:00", 50),  # 39 days before the clock
    ]
    charges, rejections, _ = rate(events)
    assert rejections == []
    assert [c.revision for c in of(charges, DAY_ID)] == [1, 2]


def test_late_event_revises_a_month_charge() -> None:
    def rec(action: str, task: str, time: str) -> dict[str, Any]:
        return {"event_id": f"rv-{next(_ids)}", "sdk_app_id": APP, "type": f"recording.{action}", "time": time,
                "task_id": task, "stream_id": task, "format": "mp4"}

    events = [
        rec("start", "a", "2026-08-10T10:00:00+08:00"), rec("stop", "a", "2026-08-10T11:00:00+08:00"),
        relay("2026-09-01T23:00:00+08:00", 1),  # not yet past 1 Sep + 1 day grace
        rec("start", "b", "2026-08-10T10:30:00+08:00"), rec("stop", "b", "2026-08-10T10:40:00+08:00"),
        relay("2026-09-02T01:00:00+08:00", 1),  # August closes: peak 2
        rec("start", "c", "2026-08-10T10:30:00+08:00"), rec("stop", "c", "2026-08-10T10:40:00+08:00"),
    ]
    charges, rejections, _ = rate(events, catalog="tencent-2019")
    assert rejections == []
    revs = of(charges, f"css/recording.peak_channels/{ACCOUNT}/2026-08")
    assert [(c.revision, c.amount, c.previous_amount, c.delta) for c in revs] == [(1, 60, 0, 60), (2, 90, 60, 30)]


# -- charge ids and empty periods ----------------------------------------------------------


def test_charge_id_format() -> None:
    def ev(type_: str, time: str, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"rv-{next(_ids)}", "sdk_app_id": APP, "type": type_, "time": time, **fields}

    events = [
        relay("2026-08-03T10:00:00+08:00", 1),
        ev("recording.start", "2026-08-03T10:00:00+08:00", task_id="t", stream_id="s", format="mp4"),
        ev("recording.stop", "2026-08-03T11:00:00+08:00", task_id="t", stream_id="s", format="mp4"),
        ev("transcode.usage", "2026-08-03T10:00:00+08:00", task_id="t", kind="audio", seconds=60),
        ev("snapshot.count", "2026-08-03T10:00:00+08:00", count=5000),
        ev("moderation.count", "2026-08-03T10:00:00+08:00", count=5000),
        ev("vod.storage", "2026-08-03T10:00:00+08:00", bytes=GB),
        ev("vod.traffic", "2026-08-03T10:00:00+08:00", bytes=GB),
        ev("im.dau", "2026-08-03T10:00:00+08:00", date="2026-08-03", dau=5),
    ]
    charges, rejections, _ = rate(events)
    assert rejections == []
    ids = sorted(c.charge_id for c in charges)
    assert ids == sorted([
        f"css/relay.traffic/{ACCOUNT}/2026-08-03",
        f"css/recording.peak_channels/{ACCOUNT}/2026-08",
        f"css/transcode.audio/{ACCOUNT}/2026-08-03",
        f"css/snapshot/{ACCOUNT}/2026-08",
        f"css/moderation/{ACCOUNT}/2026-08",
        f"vod/vod.storage/{ACCOUNT}/2026-08-03",
        f"vod/vod.traffic/{ACCOUNT}/2026-08-03",
        f"im/im.dau_overage/{ACCOUNT}/2026-08",
    ])
    for c in charges:
        product, item, account, period = c.charge_id.split("/")
        assert (product, item, account) == (c.product, c.item, c.account_id)
        assert c.period_start.startswith(period)
        assert c.revision == 1
        assert c.currency == "CNY"
    amounts = {c.item: c.amount for c in charges}
    assert amounts["snapshot"] == Decimal("0.4")
    assert amounts["moderation"] == Decimal("5.2")


def test_nothing_emitted_for_zero_usage_and_zero_amount() -> None:
    def ev(type_: str, **fields: Any) -> dict[str, Any]:
        return {"event_id": f"rv-{next(_ids)}", "sdk_app_id": APP, "type": type_,
                "time": "2026-08-03T10:00:00+08:00", **fields}

    events = [
        relay("2026-08-03T10:00:00+08:00", 0),
        ev("transcode.usage", task_id="t", kind="audio", seconds=0),
        ev("snapshot.count", count=0),
        ev("vod.traffic", bytes=0),
        ev("im.dau", date="2026-08-03", dau=0),
        ev("im.groups", count=0),
    ]
    charges, rejections, biller = rate(events)
    assert rejections == []
    assert charges == []
    assert biller.stats.events["accepted"] == len(events)


def test_usage_under_the_free_allowance_is_reported_with_zero_amount() -> None:
    event = {"event_id": "snap", "sdk_app_id": APP, "type": "snapshot.count",
             "time": "2026-08-03T10:00:00+08:00", "count": 500}
    charges, _, _ = rate([event])
    [charge] = charges
    assert charge.amount == 0
    assert charge.usage_by_app == {str(APP): {"images": "500"}}


def test_replay_is_byte_for_byte_identical() -> None:
    events = [
        relay("2026-08-03T10:00:00+08:00", 100),
        relay("2026-08-04T03:00:00+08:00", 1),
        relay("2026-08-03T12:00:00+08:00", 50),
    ]
    one = [orjson.dumps(c.to_dict()) for c in rate(events)[0]]
    two = [orjson.dumps(c.to_dict()) for c in rate(events)[0]]
    assert one == two
    assert [Charge.from_dict(orjson.loads(b)).to_dict() for b in one] == [orjson.loads(b) for b in one]

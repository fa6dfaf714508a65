"""``topics.clockstamp.ReplayClock``: the clock ``vasbill produce`` stamps before each line is
exactly the clock ``vasbill rate`` has before it: duplicates move no clock, hostile ticks
are ignored, and its dedupe memory holds what rate's ``Deduper`` holds."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from fixtures.factories import bj, directory, event, im_dau, make_app, relay

from rating.biller import Biller, BillingSettings
from topics.clockstamp import ReplayClock
from topics.timefmt import parse_time, to_ms

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def ms(text: str) -> int:
    return to_ms(parse_time(text))


def clocks(lines: list[Any]) -> tuple[list[int | None], list[int | None], Biller, ReplayClock]:
    """(rate's clock before each line, the replay clock's stamp before it, both objects)."""
    apps = directory(make_app(services=["relay"]))
    biller = Biller(apps, BillingSettings(), now=lambda: NOW)
    replay = ReplayClock(apps, NOW)
    rated, stamped = [], []
    for line in lines:
        raw = line if isinstance(line, bytes) else orjson.dumps(line)
        rated.append(biller.clock_ms)
        biller.process(raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        stamped.append(replay.before(obj, raw))
    return rated, stamped, biller, replay


def test_a_resent_event_with_a_later_time_moves_no_clock() -> None:
    first = relay(bj("2026-08-01 10:00"), 1, event_id="e-1")
    resent = relay(bj("2026-08-03 10:00"), 1, event_id="e-1")  # same id, later time: a duplicate
    lines = [first, relay(bj("2026-08-01 11:00"), 1), resent, relay(bj("2026-08-01 12:00"), 1)]
    rated, stamped, _biller, _replay = clocks(lines)
    assert rated[-1] == ms(bj("2026-08-01 11:00"))
    assert stamped == rated


def test_hostile_ticks_are_ignored_like_rate_does() -> None:
    lines: list[Any] = [
        relay(bj("2026-08-01 10:00"), 1),
        {"type": "clock.tick", "time": "9999-12-31T23:59:59-12:00"},
        {"type": "clock.tick", "time": "0001-01-01T00:00:00+08:00"},
        {"type": "clock.tick", "time": "1969-12-31T23:59:59Z", "final": True},
        {"type": "clock.tick", "time": "2026-W31-6T10:00:00+0800"},
        {"type": "clock.tick", "time": bj("2026-08-02 10:00"), "final": "yes"},  # rate rejects the whole tick
        {"type": "clock.tick", "time": "", "final": True},
        {"type": "clock.tick", "time": 0, "final": True},
        {"type": "clock.tick", "time": ["x"]},
        relay(bj("2026-08-01 11:00"), 1),
        {"type": "clock.tick", "time": bj("2026-08-01 12:00")},
        relay(bj("2026-08-01 12:30"), 1),
    ]
    rated, stamped, biller, replay = clocks(lines)
    assert stamped == rated
    assert replay.final_ms == biller.final_ms is None


def test_the_dedupe_memory_equals_rates_after_pruning() -> None:
    lines: list[Any] = []
    for day in range(1, 32):
        lines.append(relay(bj(f"2026-08-{day:02d} 10:00"), 1, event_id=f"aug-{day}"))
    for day in range(1, 31):
        lines.append(relay(bj(f"2026-09-{day:02d} 10:00"), 1, event_id=f"sep-{day}"))
        lines.append(relay(bj(f"2026-09-{day:02d} 11:00"), 1, event_id=f"aug-{day}"))  # a reused id
    lines.append({"type": "clock.tick", "time": "2026-09-30T23:00:00+08:00"})
    lines.append(relay(bj("2026-08-20 10:00"), 1, event_id="late"))
    half_way = len(lines)
    for day in range(1, 16):
        lines.append(relay(bj(f"2026-10-{day:02d} 10:00"), 1, event_id=f"oct-{day}"))
    lines.append(relay(bj("2026-10-15 11:00"), 1, event_id="aug-31"))  # forgotten: accepted again
    rated, stamped, biller, replay = clocks(lines[:half_way])
    assert stamped == rated and replay.seen == biller.dedupe.seen and len(replay.seen) == 31 + 30  # "late" is too_late
    rated, stamped, biller, replay = clocks(lines)
    assert stamped == rated
    assert replay.seen == biller.dedupe.seen
    assert not any(k[1].startswith("aug-") and t < ms(bj("2026-09-01 00:00")) for k, t in replay.seen.items())
    assert replay.seen[(1400000001, "aug-31")] == ms(bj("2026-10-15 11:00"))


def test_im_dau_dates_and_other_events_keep_the_clocks_equal() -> None:
    lines: list[Any] = [
        relay(bj("2026-08-10 10:00"), 1),
        im_dau("2026-08-10", 5),
        im_dau("2026-06-01", 5, time=bj("2026-08-10 10:00")),  # too_late by its date
        event("relay.traffic", "9999-12-31T23:59:59-12:00", stream_id="s", zone="mainland", bytes=1),
        [relay(bj("2026-08-11 10:00"), 1)],
        b"{broken",
        relay(bj("2026-08-12 10:00"), 1, type=["relay.traffic"]),
        relay(bj("2026-08-12 11:00"), 1),
        [relay(bj("2026-08-13 10:00"), 1) for _ in range(1001)],  # too_large in rate: no clock
        relay(bj("2026-08-13 11:00"), 1, padding="x" * 70_000),  # too_large
        [relay(bj("2026-08-13 12:00"), 1, padding="x" * 70_000), relay(bj("2026-08-12 12:00"), 1)],
        [{"type": "clock.tick", "time": bj("2026-08-12 13:00")}, relay(bj("2026-08-12 12:30"), 1)],
        relay(bj("2026-08-12 14:00"), 1),
    ]
    rated, stamped, _biller, _replay = clocks(lines)
    assert rated[-1] == ms(bj("2026-08-12 13:00"))
    assert stamped == rated

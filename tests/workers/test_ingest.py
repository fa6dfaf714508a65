"""Stage 0's router without a broker (``workers.ingest``): where events go, how they are
packed, what it quarantines itself, ticks through fan-out markers, and the replay clock it
stamps events with."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

from rating.biller import Biller
from topics import clockstamp
from topics.appconfig import AppConfig, AppDirectory
from topics.clockstamp import ReplayClock
from topics.names import USAGE_TOPICS
from workers.ingest import LANE_HEADER, OWN_HEADER, Router, Tick, fanout_marker

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
APPS = AppDirectory(AppConfig.from_dict({
    "sdk_app_id": app, "account_id": f"acct-{app % 2}", "effective_from": "2026-07-01T00:00:00+08:00",
    "services": {"relay": True, "vod": True, "im": True}}) for app in (1, 2, 3))
HOME = {1: 0, 2: 1, 3: 0}


def relay(event_id: str, app: int, when: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "sdk_app_id": app, "type": "relay.traffic", "time": when, "stream_id": "s",
            "zone": "mainland", "bytes": 10**9, **extra}


def router(ticks: dict[int, Tick] | None = None, clock: bool = True) -> Router:
    return Router(2, HOME.__getitem__, (ticks or {}).get, clock=ReplayClock(APPS, NOW) if clock else None,
                  lanes=USAGE_TOPICS)


def events_of(forward: Any) -> list[dict[str, Any]]:
    return list(orjson.loads(forward.value))


def test_events_of_one_app_from_any_partition_go_to_its_home_packed_in_order() -> None:
    r = router(clock=False)
    sent = [relay(f"e{i}", 1 + i % 3, f"2026-08-01T10:{i:02d}:00+08:00") for i in range(12)]
    for i, event in enumerate(sent):
        r.add("usage.relay", i % 2, orjson.dumps(event))  # keyed by stream_id: any partition
    forwards, rejected = r.flush()
    assert rejected == []
    by_partition = {f.partition: events_of(f) for f in forwards}
    assert by_partition[0] == [e for e in sent if HOME[e["sdk_app_id"]] == 0]
    assert by_partition[1] == [e for e in sent if HOME[e["sdk_app_id"]] == 1]
    assert all(dict(f.headers)[LANE_HEADER] == b"usage.relay" for f in forwards)


def test_an_array_of_one_home_is_forwarded_with_its_bytes_and_its_stamps() -> None:
    r = router(clock=False)
    raw = b'[{"event_id":"a","sdk_app_id":1,"type":"relay.traffic","time":"2026-08-01T10:00:00+08:00",' \
          b'"stream_id":"s","zone":"mainland","bytes":1},  {"event_id":"b","sdk_app_id":3,' \
          b'"type":"relay.traffic","time":"2026-08-01T10:05:00+08:00","stream_id":"s","zone":"mainland","bytes":2}]'
    stamp = clockstamp.encode([1_785_000_000_000, 1_785_000_300_000], None)
    r.add("usage.relay", 0, raw, [(clockstamp.HEADER, stamp)])
    (forward,), _ = r.flush()
    assert raw[1:-1].strip() in forward.value  # not re-serialised
    assert clockstamp.decode(dict(forward.headers)[clockstamp.HEADER]) == ([1_785_000_000_000, 1_785_000_300_000],
                                                                          None)


def test_tombstones_are_counted_and_bad_json_and_oversize_go_to_quarantine() -> None:
    r = router()
    r.add("usage.relay", 0, None)
    r.add("usage.relay", 0, b'{"event_id": "x", ')
    r.add("usage.relay", 0, b"[" + b",".join([b"{}"] * 1001) + b"]")
    forwards, rejected = r.flush()
    assert forwards == [] and r.stats.tombstones == 1
    assert [q.reason.value for q in rejected] == ["malformed_json", "too_large"]


def test_a_forged_fanout_marker_is_quarantined_and_a_real_one_ticks_every_lane_once() -> None:
    r = router(ticks={7: Tick(1_786_000_000_000, True)})
    r.add("usage.relay", 0, orjson.dumps(relay("a", 1, "2026-08-01T10:00:00+08:00")))
    r.add("usage.relay", 0, fanout_marker(99))  # names no tick of control.clock
    r.add("usage.relay", 1, fanout_marker(7))
    r.add("usage.vod", 0, fanout_marker(7))  # the same tick through another partition: nothing more
    forwards, rejected = r.flush()
    assert [q.reason.value for q in rejected] == ["schema"] and "no clock.tick" in rejected[0].detail
    assert b"sdk_app_id" in forwards[0].value  # the event before the tick goes first
    ticks = forwards[1:]
    assert len(ticks) == len(USAGE_TOPICS) * 2
    assert all(dict(f.headers).get(OWN_HEADER) == b"tick" for f in ticks)
    assert {(dict(f.headers)[LANE_HEADER], f.partition) for f in ticks} == {
        (lane.encode(), p) for lane in USAGE_TOPICS for p in range(2)}
    assert orjson.loads(ticks[0].value) == {"type": "clock.tick", "ms": 1_786_000_000_000, "final": True}


def test_a_tick_written_by_a_producer_is_forwarded_as_an_event_and_moves_no_clock() -> None:
    """Stage 1 quarantines it (``wrong_topic``); the replay clock must not take it either."""
    r = router()
    r.add("usage.relay", 0, orjson.dumps({"type": "clock.tick", "ms": 10**17, "final": True}))
    r.add("usage.relay", 0, orjson.dumps(relay("a", 1, "2026-08-01T10:00:00+08:00")))
    (forward,), _ = r.flush()
    assert dict(forward.headers).get(OWN_HEADER) is None
    assert clockstamp.decode(dict(forward.headers)[clockstamp.HEADER]) == ([None, None], None)


def test_events_without_stamps_get_the_clock_rate_had_before_them() -> None:
    lines = [relay("a", 1, "2026-08-01T10:00:00+08:00"), relay("b", 2, "2026-08-03T10:00:00+08:00"),
             relay("a", 1, "2026-08-09T10:00:00+08:00"),  # a resend, time moved: moves no clock
             relay("c", 3, "2026-08-02T10:00:00+08:00"), {"type": "relay.traffic", "sdk_app_id": 1}]
    r = router()
    for line in lines:
        r.add("usage.relay", 0, orjson.dumps(line))
    forwards, _ = r.flush()
    stamps = [c for f in forwards for c in clockstamp.decode(dict(f.headers)[clockstamp.HEADER])[0]]
    biller, expected = Biller(APPS, now=lambda: NOW), []
    for line in lines:
        expected.append(biller.clock_ms)
        biller.process(orjson.dumps(line))
    # forwards are per home partition; compare as sets of (event, clock before it)
    order = [e["event_id"] if "event_id" in e else None for f in forwards for e in events_of(f)]
    assert sorted(zip(order, stamps, strict=True), key=str) == sorted(
        zip([line.get("event_id") for line in lines], expected, strict=True), key=str)


def test_control_clock_records_that_are_not_usable_ticks_are_ignored() -> None:
    from workers.ingest import parse_tick

    assert parse_tick(b'{"type": "clock.tick", "ms": 100000000000000000, "final": true}') is None  # year 3170
    assert parse_tick(b'{"type": "clock.tick", "time": "0001-01-01T00:00:00Z"}') is None
    assert parse_tick(b'{"type": "clock.tick", "final": "yes"}') is None
    assert parse_tick(b"[1, 2]") is None and parse_tick(None) is None
    assert parse_tick(b'{"type": "clock.tick", "time": "2026-09-01T00:00:00+08:00", "final": true}') == Tick(
        1_788_192_000_000, True)

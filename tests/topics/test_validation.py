"""Quarantine reasons of SPEC §3, one case each, through ``topics.validation.validate`` and
through ``vasbill rate --quarantine``; duplicates are counted, never quarantined; a batch
message is validated event by event."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fixtures.factories import (
    ACCOUNT,
    APP,
    GB,
    bj,
    event,
    im_dau,
    make_app,
    relay,
    transcode,
)

from rating.biller import BillingSettings, rate_lines
from topics import AppConfig, AppDirectory, QuarantineReason, Rejection, RelayTraffic, validate
from topics.timefmt import to_ms
from topics.validation import MAX_EVENT_BYTES, MAX_MESSAGE_BYTES

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
GOOD_TIME = bj("2024-03-01 10:00")


def directory(*docs: dict[str, Any]) -> AppDirectory:
    return AppDirectory(AppConfig.from_dict(d) for d in docs)


APPS = directory(make_app(services=["relay"]))


def good(**changes: Any) -> dict[str, Any]:
    """A valid relay.traffic event; ``changes`` replace fields, a value of ``...`` removes one."""
    doc = relay(GOOD_TIME, GB)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def outcome(raw: bytes | dict[str, Any] | list[Any], **kw: Any) -> Any:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    kw.setdefault("apps", APPS)
    (result,) = validate(data, NOW, **kw)
    return result


def reason(raw: Any, **kw: Any) -> str | None:
    result = outcome(raw, **kw)
    return result.reason.value if isinstance(result, Rejection) else None


def test_a_good_event_parses() -> None:
    result = outcome(good(interval_s=60, direction="up", product="leb", extra_field={"kept": True}))
    assert isinstance(result, RelayTraffic)
    assert (result.sdk_app_id, result.zone, result.bytes, result.interval_s) == (APP, "mainland", GB, 60)
    assert (result.direction, result.product, result.source) == ("up", "leb", "viewer")
    assert result.ms == to_ms(datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc))


def test_defaults_of_relay_traffic() -> None:
    result = outcome(good())
    assert (result.interval_s, result.direction, result.product, result.source) == (300, "down", "standard", "viewer")


# -- malformed_json -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"event_id": "e1",', b"not json", b"", b"\xff\xfe{}", b"{'single': 'quotes'}"],
                         ids=["truncated", "text", "empty", "bad-utf8", "single-quotes"])
def test_malformed_json(raw: bytes) -> None:
    result = outcome(raw)
    assert isinstance(result, Rejection)
    assert result.reason is QuarantineReason.MALFORMED_JSON
    assert result.sdk_app_id is None and result.event_id is None


# -- schema ---------------------------------------------------------------------------------

SCHEMA_CASES = [
    ("missing-event_id", good(event_id=...), "missing field event_id"),
    ("missing-sdk_app_id", good(sdk_app_id=...), "missing field sdk_app_id"),
    ("missing-time", good(time=...), "missing field time"),
    ("missing-zone", good(zone=...), "missing field zone"),
    ("missing-bytes", good(bytes=...), "missing field bytes"),
    ("missing-type", good(type=...), "unknown event type"),
    ("unknown-type", good(type="relay.teleport"), "unknown event type"),
    ("bytes-as-string", good(bytes="1000"), "bytes: expected an integer"),
    ("bytes-as-float", good(bytes=1.5), "bytes: expected an integer"),
    ("bytes-as-bool", good(bytes=True), "bytes: expected an integer"),
    ("app-id-as-bool", good(sdk_app_id=True), "sdk_app_id: expected an integer"),
    ("app-id-as-string", good(sdk_app_id="1400000001"), "sdk_app_id: expected an integer"),
    ("app-id-zero", good(sdk_app_id=0), "sdk_app_id: expected an integer in 1.."),
    ("app-id-2^32", good(sdk_app_id=2**32), "sdk_app_id: expected an integer in 1.."),
    ("negative-bytes", good(bytes=-1), "bytes: expected an integer in 0.."),
    ("absurd-bytes", good(bytes=10**16), "bytes: expected an integer in 0.."),
    ("interval-0", good(interval_s=0), "interval_s: expected an integer in 1..300"),
    ("interval-301", good(interval_s=301), "interval_s: expected an integer in 1..300"),
    ("bad-zone", good(zone="mars"), "zone: expected one of"),
    ("bad-direction", good(direction="sideways"), "direction: expected one of"),
    ("bad-product", good(product="slow"), "product: expected one of"),
    ("bad-source", good(source="robot"), "source: expected one of"),
    ("time-without-offset", good(time="2024-03-01T10:00:00"), "time:"),
    ("time-date-only", good(time="2024-03-01"), "time:"),
    ("time-as-number", good(time=1709258400), "time:"),
    ("time-nonsense", good(time="yesterday at noon"), "time:"),
    ("event-id-empty", good(event_id=""), "event_id: expected a string of 1..128"),
    ("event-id-129", good(event_id="x" * 129), "event_id: expected a string of 1..128"),
    ("event-id-number", good(event_id=7), "event_id: expected a string"),
    ("recording-bad-format", event("recording.start", GOOD_TIME, task_id="t", stream_id="s", format="mkv"),
     "format: expected one of"),
    ("transcode-video-without-codec", transcode(GOOD_TIME, 60, codec=None), "needs codec, width and height"),
    ("transcode-negative-seconds", transcode(GOOD_TIME, -60), "seconds: expected an integer in 0.."),
    ("transcode-bad-kind", transcode(GOOD_TIME, 60, kind="turbo"), "kind: expected one of"),
    ("storage-bad-class", event("vod.storage", GOOD_TIME, storage_class="cold", bytes=1), "storage_class"),
    ("im-dau-impossible-date", im_dau("2024-02-30", 10, time=GOOD_TIME), "date: expected a valid date"),
    ("im-dau-bad-date-format", im_dau("2024-2-3", 10, time=GOOD_TIME), "date: expected a date"),
    ("snapshot-negative-count", event("snapshot.count", GOOD_TIME, count=-1), "count: expected an integer in 0.."),
]


@pytest.mark.parametrize(("doc", "detail"), [pytest.param(d, m, id=i) for i, d, m in SCHEMA_CASES])
def test_schema(doc: dict[str, Any], detail: str) -> None:
    result = outcome(doc, apps=directory(make_app(services=list(("relay", "recording", "transcode", "vod",
                                                                    "snapshot")))))
    assert isinstance(result, Rejection), result
    assert result.reason is QuarantineReason.SCHEMA
    assert detail in result.detail
    assert orjson.loads(result.payload) == doc  # the original payload travels with it


@pytest.mark.parametrize("raw", [b"42", b'"an event"', b"null", b"true", b"[1, 2]"])
def test_schema_not_an_object(raw: bytes) -> None:
    results = validate(raw, NOW, apps=APPS)
    assert results and all(isinstance(r, Rejection) and r.reason is QuarantineReason.SCHEMA for r in results)


def test_schema_rejection_keeps_ids_it_can_read() -> None:
    result = outcome(good(event_id="e-77", zone="mars"))
    assert (result.sdk_app_id, result.event_id) == (APP, "e-77")
    result = outcome(good(event_id=7, sdk_app_id="x", zone="mars"))
    assert (result.sdk_app_id, result.event_id) == (None, None)


# -- too_large ------------------------------------------------------------------------------


def test_too_large_single_event() -> None:
    doc = good(padding="x" * MAX_EVENT_BYTES)
    result = outcome(doc)
    assert result.reason is QuarantineReason.TOO_LARGE
    assert orjson.loads(result.payload) == doc


def test_just_under_64_kib_is_fine() -> None:
    doc = good(padding="")
    doc["padding"] = "x" * (MAX_EVENT_BYTES - len(orjson.dumps(doc)))
    assert len(orjson.dumps(doc)) == MAX_EVENT_BYTES
    assert isinstance(outcome(doc), RelayTraffic)


def test_too_large_malformed_payload_is_too_large() -> None:
    assert reason(b"{" + b"x" * MAX_EVENT_BYTES) == "too_large"


def test_too_large_batch_message_over_1_mib() -> None:
    """Every event is under 64 KiB, but the message is over 1 MiB: one rejection for it."""
    batch = [good(padding="x" * 60_000) for _ in range(20)]
    raw = orjson.dumps(batch)
    assert len(raw) > MAX_MESSAGE_BYTES
    (result,) = validate(raw, NOW, apps=APPS)
    assert result.reason is QuarantineReason.TOO_LARGE


def test_too_large_batch_of_over_1000_events() -> None:
    (result,) = validate(orjson.dumps([good() for _ in range(1001)]), NOW, apps=APPS)
    assert result.reason is QuarantineReason.TOO_LARGE
    assert len(validate(orjson.dumps([good() for _ in range(1000)]), NOW, apps=APPS)) == 1000


def test_too_large_event_inside_a_batch_alone() -> None:
    batch = [good(), good(padding="x" * MAX_EVENT_BYTES), good()]
    results = validate(orjson.dumps(batch), NOW, apps=APPS)
    assert [r.reason.value if isinstance(r, Rejection) else r.event_id for r in results] == [
        batch[0]["event_id"], "too_large", batch[2]["event_id"]]


# -- future ---------------------------------------------------------------------------------


def _at(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


def test_future_more_than_10_min_ahead() -> None:
    assert reason(good(time=_at(NOW + timedelta(minutes=11)))) == "future"
    assert reason(good(time=_at(NOW + timedelta(minutes=10, milliseconds=1)))) == "future"


def test_up_to_10_min_ahead_is_accepted() -> None:
    assert reason(good(time=_at(NOW + timedelta(minutes=10)))) is None
    assert reason(good(time=_at(NOW + timedelta(minutes=9)))) is None


def test_future_in_another_offset() -> None:
    later = (NOW + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5)))
    assert reason(good(time=later.isoformat())) == "future"


# -- unknown_app, service_disabled, too_late ------------------------------------------------


def test_unknown_app() -> None:
    result = outcome(good(sdk_app_id=999))
    assert (result.reason, result.sdk_app_id) == (QuarantineReason.UNKNOWN_APP, 999)


def test_unknown_app_needs_a_directory() -> None:
    assert reason(good(sdk_app_id=999), apps=None) is None


@pytest.mark.parametrize(("doc", "service"), [
    (transcode(GOOD_TIME, 60), "transcode"),
    (event("recording.start", GOOD_TIME, task_id="t", stream_id="s", format="mp4"), "recording"),
    (event("snapshot.count", GOOD_TIME, count=1), "snapshot"),
    (event("moderation.count", GOOD_TIME, count=1), "moderation"),
    (event("vod.traffic", GOOD_TIME, zone="mainland", bytes=1), "vod"),
])
def test_service_disabled(doc: dict[str, Any], service: str) -> None:
    result = outcome(doc)  # APPS enables relay only
    assert result.reason is QuarantineReason.SERVICE_DISABLED
    assert service in result.detail


def test_im_is_on_by_default_and_can_be_switched_off() -> None:
    assert reason(im_dau("2024-03-01", 5)) is None
    off = directory(make_app(services={"im": False}))
    assert reason(im_dau("2024-03-01", 5), apps=off) == "service_disabled"


def test_relay_disabled_by_default() -> None:
    assert reason(good(), apps=directory(make_app())) == "service_disabled"


def test_too_late() -> None:
    floor = to_ms(datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc))  # GOOD_TIME
    assert reason(good(), not_before_ms=floor + 1) == "too_late"
    assert reason(good(), not_before_ms=floor) is None


def test_first_failure_wins() -> None:
    """Order: too_large, malformed_json, schema, future, unknown_app, service_disabled, too_late."""
    future = _at(NOW + timedelta(hours=1))
    assert reason(good(sdk_app_id=999, zone="mars")) == "schema"
    assert reason(good(sdk_app_id=999, time=future)) == "future"
    assert reason(good(sdk_app_id=999), not_before_ms=to_ms(NOW)) == "unknown_app"
    assert reason(transcode(GOOD_TIME, 60), not_before_ms=to_ms(NOW)) == "service_disabled"


# -- through `vasbill rate --quarantine` ----------------------------------------------------


def _wall_clock_future() -> str:
    return _at(datetime.now(timezone.utc) + timedelta(hours=1))


def test_every_reason_through_the_cli(rate: Any) -> None:
    apps = [make_app(services=["relay"])]
    ok = relay(bj("2024-03-01 10:00"), 10 * GB)
    bad = {
        "schema": good(zone="mars", event_id="bad-schema"),
        "too_large": good(padding="x" * MAX_EVENT_BYTES, event_id="bad-large"),
        "future": good(time=_wall_clock_future(), event_id="bad-future"),
        "unknown_app": good(sdk_app_id=999, event_id="bad-app"),
        "service_disabled": transcode(bj("2024-03-01 10:00"), 60, event_id="bad-service"),
    }
    malformed = b'{"event_id": "bad-json", "sdk_app_id": 1400000001,'
    late_clock = relay(bj("2024-04-20 10:00"), GB)  # the clock moves to 04-20
    too_late = relay(bj("2024-03-01 11:00"), GB, event_id="bad-late")  # 50 days behind: > 40
    in_time = relay(bj("2024-03-15 10:00"), GB)  # 36 days behind: accepted (and re-rates nothing)
    run = rate(apps, [ok, malformed, *bad.values(), late_clock, too_late, in_time])
    assert run.exit_code == 0, run.stderr
    assert run.reasons() == ["malformed_json", *bad, "too_late"]
    by_reason = {q["reason"]: q for q in run.quarantine}
    assert by_reason["malformed_json"]["payload"] == malformed.decode()
    assert by_reason["too_late"]["event_id"] == "bad-late"
    for name, doc in bad.items():
        assert orjson.loads(by_reason[name]["payload"]) == doc
        if name != "too_large":  # too_large is decided before parsing: no ids
            assert by_reason[name]["event_id"] == doc["event_id"]
            assert by_reason[name]["sdk_app_id"] == doc["sdk_app_id"]
        assert by_reason[name]["detail"]
    latest = run.latest()
    assert latest[f"css/relay.traffic/{ACCOUNT}/2024-03-01"]["amount"] == "2.6"  # the late GB not added
    assert latest[f"css/relay.traffic/{ACCOUNT}/2024-03-15"]["amount"] == "0.26"
    assert "3 accepted, 0 duplicate, 7 quarantined" in run.stderr


@pytest.mark.parametrize(("doc", "expected"), [
    (good(zone="mars"), "schema"),
    (good(bytes=-5), "schema"),
    (good(bytes=True), "schema"),
    (good(time="2024-03-01T10:00:00"), "schema"),
    (good(event_id=...), "schema"),
    (good(bytes="12"), "schema"),
])
def test_schema_cases_through_the_cli(rate: Any, doc: dict[str, Any], expected: str) -> None:
    run = rate(make_app(services=["relay"]), [doc])
    assert run.reasons() == [expected]
    assert run.charges == []


def test_line_terminator_is_not_part_of_the_message(rate: Any) -> None:
    """An event of exactly 64 KiB is accepted from a file line as from a Kafka message (the
    newline does not count), and a quarantined line's payload is the line without it."""
    doc = relay(bj("2024-03-01 10:00"), GB, padding="")
    doc["padding"] = "x" * (MAX_EVENT_BYTES - len(orjson.dumps(doc)))
    run = rate(make_app(services=["relay"]), [doc, b"{broken", b'{"crlf": 1\r'])
    assert run.reasons() == ["malformed_json", "malformed_json"]
    assert [q["payload"] for q in run.quarantine] == ["{broken", '{"crlf": 1']
    assert run.one("relay.traffic")["amount"] == "0.26"


def test_batch_message_over_1_mib_through_the_cli(rate: Any) -> None:
    batch = [good(padding="x" * 60_000) for _ in range(20)]
    run = rate(make_app(services=["relay"]), [batch, relay(bj("2024-03-01 10:00"), GB)])
    assert run.reasons() == ["too_large"]
    assert run.one("relay.traffic")["amount"] == "0.26"


def test_duplicates_are_counted_not_quarantined(rate: Any) -> None:
    first = relay(bj("2024-03-01 10:00"), 10 * GB, event_id="same-id")
    again = dict(first, bytes=99 * GB)  # same (sdk_app_id, event_id): a duplicate, whatever it says
    other_app = dict(first, sdk_app_id=APP + 1)  # the dedupe key includes the app: not a duplicate
    apps = [make_app(services=["relay"]), make_app(APP + 1, services=["relay"])]
    run = rate(apps, [first, again, first, other_app])
    assert run.quarantine == []
    assert run.one("relay.traffic")["amount"] == "5.2"  # 2 × 10 GB × 0.26
    assert "2 accepted, 2 duplicate, 0 quarantined" in run.stderr


def test_stats_count_outcomes_and_reasons() -> None:
    apps = directory(make_app(services=["relay"]))
    first = relay(bj("2024-03-01 10:00"), GB)
    lines = [orjson.dumps(x) for x in (first, first, good(zone="mars"), good(sdk_app_id=5), good(bytes=-1))]
    charges, rejections, biller = rate_lines(apps, [*lines, b"{oops"], BillingSettings())
    assert biller.stats.events == Counter({"accepted": 1, "duplicate": 1, "quarantined": 4})
    assert biller.stats.quarantined == Counter({"schema": 2, "unknown_app": 1, "malformed_json": 1})
    assert [r.reason.value for r in rejections] == ["schema", "unknown_app", "schema", "malformed_json"]
    assert [c.item for c in charges] == ["relay.traffic"]


def test_batch_with_one_bad_event(rate: Any) -> None:
    batch = [relay(bj("2024-03-01 10:00"), 10 * GB), good(zone="mars", event_id="the-bad-one"),
             relay(bj("2024-03-01 10:05"), 5 * GB)]
    run = rate(make_app(services=["relay"]), [batch])
    assert run.reasons() == ["schema"]
    assert run.quarantine[0]["event_id"] == "the-bad-one"
    assert orjson.loads(run.quarantine[0]["payload"]) == batch[1]
    assert Decimal(run.one("relay.traffic")["amount"]) == Decimal("3.9")  # 15 GB × 0.26
    assert "2 accepted, 0 duplicate, 1 quarantined" in run.stderr


def test_batch_is_deduplicated_per_event(rate: Any) -> None:
    a = relay(bj("2024-03-01 10:00"), 10 * GB)
    run = rate(make_app(services=["relay"]), [[a, a], [a]])
    assert run.quarantine == []
    assert run.one("relay.traffic")["amount"] == "2.6"
    assert "1 accepted, 2 duplicate" in run.stderr


def test_future_through_the_cli_uses_wall_clock(rate: Any) -> None:
    run = rate(make_app(services=["relay"]), [good(time=_wall_clock_future())])
    assert run.reasons() == ["future"]
    near = _at(datetime.now(timezone.utc) - timedelta(minutes=1))
    assert rate(make_app(services=["relay"]), [good(time=near)]).quarantine == []


# -- hostile input: wrong_topic, odd types, the 2000–2099 range, im.dau's date ---------------


@pytest.mark.parametrize("code", ["wrong_topic", "unprocessable"])
def test_spec_reason_codes_exist(code: str) -> None:
    assert QuarantineReason(code).value == code


@pytest.mark.parametrize(("doc", "topic", "belongs"), [
    (good(), "usage.vod", "usage.relay"),
    (event("vod.storage", GOOD_TIME, bytes=1), "usage.relay", "usage.vod"),
    (im_dau("2024-03-01", 5), "usage.snapshot", "usage.im"),
    (event("clock.tick", GOOD_TIME, final=True), "usage.relay", "control.clock"),
    (event("clock.tick", GOOD_TIME), "usage.im", "control.clock"),
])
def test_wrong_topic(doc: dict[str, Any], topic: str, belongs: str) -> None:
    result = outcome(doc, topic=topic)
    assert isinstance(result, Rejection)
    assert result.reason is QuarantineReason.WRONG_TOPIC
    assert doc["type"] in result.detail and belongs in result.detail and topic in result.detail
    assert (result.sdk_app_id, result.event_id) == (doc["sdk_app_id"], doc["event_id"])


def test_wrong_topic_comes_before_schema_and_the_right_topic_changes_nothing() -> None:
    assert reason(good(zone="mars"), topic="usage.vod") == "wrong_topic"
    assert reason(good(zone="mars"), topic="usage.relay") == "schema"
    assert reason(good(type="relay.teleport"), topic="usage.relay") == "schema"  # unknown: schema
    assert reason(good(), topic="usage.relay") is None
    assert reason(good()) is None  # no topic (vasbill rate reading a file)
    assert reason(event("clock.tick", GOOD_TIME)) == "schema"  # not a usage event


@pytest.mark.parametrize("kind", [["relay.traffic"], {"relay.traffic": 1}, 7, 1.5, True, None, [], {}])
def test_a_type_of_any_json_kind_is_schema_never_an_exception(kind: Any) -> None:
    for topic in (None, "usage.relay"):
        assert reason(good(type=kind), topic=topic) == "schema"
    first, second = validate(orjson.dumps([good(type=kind), good()]), NOW, apps=APPS, topic="usage.relay")
    assert isinstance(first, Rejection) and first.reason is QuarantineReason.SCHEMA
    assert isinstance(second, RelayTraffic)


def test_event_type_tables_answer_membership_for_unhashable_values() -> None:
    from topics.events import SCHEMAS, SERVICE_OF_TYPE
    from topics.names import USAGE_TOPIC_OF_TYPE

    for table in (SCHEMAS, SERVICE_OF_TYPE, USAGE_TOPIC_OF_TYPE):
        assert ["relay.traffic"] not in table and {"a": 1} not in table and 7 not in table
        assert table.get(["relay.traffic"]) is None and "relay.traffic" in table


@pytest.mark.parametrize("time", [
    "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-12:00", "1969-12-31T23:59:59Z",
    "1999-12-31T23:59:59+08:00", "2100-01-01T00:00:00+08:00", "2026-W31-6T10:00:00+0800",
    "2024-03-01T10:00:00+08", "2024-03-01 10:00:00+08:00", "2024-03-01T10:00+08:00",
])
def test_event_times_outside_rfc_3339_or_2000_to_2099_are_schema(time: str) -> None:
    result = outcome(good(time=time), not_before_ms=to_ms(NOW) - 40 * 86_400_000)
    assert isinstance(result, Rejection) and result.reason is QuarantineReason.SCHEMA, result
    assert result.detail.startswith("time:")


@pytest.mark.parametrize("date", ["1999-12-31", "2100-01-01", "0001-01-01", "9999-12-31", "1970-01-01"])
def test_im_dau_date_outside_2000_to_2099_is_schema(date: str) -> None:
    result = outcome(im_dau(date, 5, time=GOOD_TIME))
    assert isinstance(result, Rejection) and result.reason is QuarantineReason.SCHEMA
    assert "date" in result.detail


def test_im_dau_date_obeys_future() -> None:
    # NOW is 2024-03-10T20:00 Beijing: the 11th begins 4 h ahead, more than 10 min
    assert reason(im_dau("2024-03-11", 5, time=GOOD_TIME)) == "future"
    assert reason(im_dau("2024-03-10", 5, time=GOOD_TIME)) is None
    near = datetime(2024, 3, 10, 15, 51, tzinfo=timezone.utc)  # 23:51 Beijing: the 11th is 9 min ahead
    (accepted,) = validate(orjson.dumps(im_dau("2024-03-11", 5, time=GOOD_TIME)), near, apps=APPS)
    assert not isinstance(accepted, Rejection) and accepted.date == "2024-03-11"


def test_im_dau_date_obeys_too_late() -> None:
    start_of_the_1st = to_ms(datetime(2024, 3, 1, tzinfo=timezone(timedelta(hours=8))))
    doc = im_dau("2024-03-01", 5, time=bj("2024-03-05 10:00"))  # sent late: its time is in the horizon
    assert reason(doc, not_before_ms=start_of_the_1st + 1) == "too_late"
    assert reason(doc, not_before_ms=start_of_the_1st) is None


def test_storage_of_2_to_the_63_bytes_is_schema() -> None:
    apps = directory(make_app(services=["vod"]))
    assert reason(event("vod.storage", GOOD_TIME, bytes=2**63), apps=apps) == "schema"
    assert reason(event("vod.storage", GOOD_TIME, bytes=2**63 - 1), apps=apps) == "schema"
    assert reason(event("vod.storage", GOOD_TIME, bytes=10**18), apps=apps) is None


def test_hostile_times_through_the_cli(rate: Any) -> None:
    apps = [make_app(services=["relay"])]
    docs = [good(time=t) for t in ("0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-12:00", "1969-12-31T23:59:59Z",
                                   "2026-W31-6T10:00:00+0800")]
    docs.append(im_dau("9999-12-31", 1, time=GOOD_TIME))
    docs.append(event("vod.storage", GOOD_TIME, bytes=2**63))
    run = rate(apps, [*docs, good()])
    assert run.exit_code == 0, run.stderr
    assert run.reasons() == ["schema"] * len(docs)

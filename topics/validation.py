"""Turn raw bytes into usage events or rejections (SPEC §3); never raise on bad input.

Order of checks, first failure wins: ``too_large`` (before parsing), ``malformed_json``,
then, once it is a JSON object and the topic it came from is given, ``wrong_topic`` (its
``type`` is an event type of another usage topic, or ``clock.tick``: only
``control.clock`` carries ticks), then ``schema``, ``future``, with an app directory
``unknown_app`` and ``service_disabled``, then with a lateness floor ``too_late``.
``im.dau``'s ``date`` obeys ``future`` and ``too_late`` too, judged at the Beijing start
of that date (``topics.events.date_ms``). Duplicates are not decided here: dedupe needs
state (``rating.dedupe``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from topics.appconfig import AppDirectory
from topics.events import SERVICE_OF_TYPE, ImDau, SchemaError, UsageEvent, date_ms, parse_event
from topics.names import CLOCK_TOPIC, USAGE_TOPIC_OF_TYPE
from topics.reasons import QuarantineReason, Rejection
from topics.timefmt import to_ms

MAX_EVENT_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 1000
FUTURE_TOLERANCE_MS = 10 * 60 * 1000

Outcome = UsageEvent | Rejection


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


#: the quarantine payload of an event that no JSON writer can write out (nesting past Python's limits)
NESTED_TOO_DEEPLY = "(an event nested too deeply to be written out)"


def decode_json(raw: bytes) -> Any:
    """``orjson.loads``, except for numbers orjson cannot hold (``10^400``, ``1e400``): they
    are valid JSON, so the schema judges them (an absurd number), not ``malformed_json``.
    Raises ``orjson.JSONDecodeError`` for text that is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "number" not in str(exc):
            raise
        try:
            return json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise exc from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def item_text(item: Any) -> str | None:
    """The text of one decoded event of a batch (its quarantine payload and what stage 1
    reads). orjson stops at 254 levels of nesting and at 64-bit integers; then an iterative
    writer takes over (no recursion, so the answer never depends on how deep the caller's
    stack is); None if even that cannot (an integer of over 4,300 digits)."""
    try:
        return orjson.dumps(item).decode()
    except TypeError:
        try:
            return _write(item)
        except ValueError:
            return None


def _write(item: Any) -> str:
    """Compact JSON of ``item`` without recursion (dicts, lists, strings, numbers, literals)."""
    out: list[str] = []
    todo: list[Any] = [item]
    close = object()
    while todo:
        node = todo.pop()
        if node is close:
            out.append(todo.pop())
        elif type(node) is tuple:  # (text,): already written
            out.append(node[0])
        elif isinstance(node, dict):
            todo += ["}", close]
            for n, (key, value) in enumerate(reversed(list(node.items()))):
                todo.append(value)
                todo.append((json.dumps(str(key), ensure_ascii=False) + ":",))
                if n < len(node) - 1:
                    todo.append((",",))
            out.append("{")
        elif isinstance(node, list):
            todo += ["]", close]
            for n, value in enumerate(reversed(node)):
                todo.append(value)
                if n < len(node) - 1:
                    todo.append((",",))
            out.append("[")
        else:
            out.append(json.dumps(node, ensure_ascii=False))
    return "".join(out)


def split_message(raw: bytes) -> list[tuple[str, Any] | Rejection]:
    """Decode one Kafka message (or file line): an event object or a batch array.

    Returns, per event, ``(original text, decoded object)`` or a ``Rejection``.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        return [Rejection(QuarantineReason.TOO_LARGE, f"message of {len(raw)} bytes", _text(raw))]
    try:
        decoded = decode_json(raw)
    except orjson.JSONDecodeError as exc:
        if len(raw) > MAX_EVENT_BYTES:
            detail = f"payload of {len(raw)} bytes"
            return [Rejection(QuarantineReason.TOO_LARGE, detail, _text(raw))]
        return [Rejection(QuarantineReason.MALFORMED_JSON, str(exc), _text(raw))]
    if isinstance(decoded, list):
        if len(decoded) > MAX_BATCH_EVENTS:
            detail = f"batch of {len(decoded)} events (max {MAX_BATCH_EVENTS})"
            return [Rejection(QuarantineReason.TOO_LARGE, detail, _text(raw))]
        out: list[tuple[str, Any] | Rejection] = []
        for item in decoded:
            text = item_text(item)
            if text is None:
                out.append(Rejection(QuarantineReason.SCHEMA, "an event nested too deeply to be written out",
                                     NESTED_TOO_DEEPLY))
            elif len(text) > MAX_EVENT_BYTES:
                out.append(Rejection(QuarantineReason.TOO_LARGE, "event over 64 KiB", text))
            else:
                out.append((text, item))
        return out
    if len(raw) > MAX_EVENT_BYTES:
        return [Rejection(QuarantineReason.TOO_LARGE, f"payload of {len(raw)} bytes", _text(raw))]
    return [(_text(raw), decoded)]


def check_event(
    text: str,
    obj: Any,
    now: datetime | int,
    *,
    apps: AppDirectory | None = None,
    not_before_ms: int | None = None,
    topic: str | None = None,
) -> Outcome:
    """Validate one decoded event object (see the module docstring for the order).
    ``now`` is the wall clock, as a datetime or epoch milliseconds; ``topic`` is the usage
    topic the object came from, by its base name (``usage.relay``), or None (a file)."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        return _reject(QuarantineReason.SCHEMA, "an event must be a JSON object", text, obj)
    if topic is not None:
        kind = obj.get("type")
        if type(kind) is str:
            home = USAGE_TOPIC_OF_TYPE.get(kind) or (CLOCK_TOPIC if kind == "clock.tick" else None)
            if home is not None and home != topic:
                return _reject(QuarantineReason.WRONG_TOPIC, f"type {kind} belongs to {home}, not {topic}", text, obj)
    try:
        event = parse_event(obj)
    except SchemaError as exc:
        return _reject(QuarantineReason.SCHEMA, str(exc), text, obj)
    wall = (now if isinstance(now, int) else to_ms(now)) + FUTURE_TOLERANCE_MS
    if event.ms > wall:
        return _reject(QuarantineReason.FUTURE, "event time over 10 min ahead of wall-clock time", text, obj)
    day_ms = None
    if type(event) is ImDau:
        day_ms = date_ms(event.date)
        if day_ms > wall:
            return _reject(QuarantineReason.FUTURE, f"date {event.date} begins over 10 min ahead of wall-clock time",
                           text, obj)
    if apps is not None:
        config = apps.at(event.sdk_app_id, event.ms)
        if config is None:
            return _reject(QuarantineReason.UNKNOWN_APP, "no config for sdk_app_id", text, obj)
        service = SERVICE_OF_TYPE[event.type]
        if not config.enabled(service):
            return _reject(QuarantineReason.SERVICE_DISABLED, f"service {service} not enabled", text, obj)
    if not_before_ms is not None:
        if event.ms < not_before_ms:
            return _reject(QuarantineReason.TOO_LATE, "event older than the lateness horizon", text, obj)
        if day_ms is not None and day_ms < not_before_ms:
            return _reject(QuarantineReason.TOO_LATE, "date begins before the lateness horizon", text, obj)
    return event


def _reject(reason: QuarantineReason, detail: str, text: str, obj: Any) -> Rejection:
    """A rejection naming the event's app and id where the object has usable ones."""
    app_id = obj.get("sdk_app_id") if isinstance(obj, Mapping) else None
    event_id = obj.get("event_id") if isinstance(obj, Mapping) else None
    return Rejection(
        reason,
        detail,
        text,
        app_id if type(app_id) is int and 1 <= app_id <= 2**32 - 1 else None,
        event_id if type(event_id) is str and len(event_id) <= 128 else None,
    )


def validate(
    raw: bytes,
    now: datetime,
    *,
    apps: AppDirectory | None = None,
    not_before_ms: int | None = None,
    topic: str | None = None,
) -> list[Outcome]:
    """Validate a message holding one event or a batch; one outcome per event."""
    outcomes: list[Outcome] = []
    for part in split_message(raw):
        if isinstance(part, Rejection):
            outcomes.append(part)
        else:
            outcomes.append(check_event(*part, now, apps=apps, not_before_ms=not_before_ms, topic=topic))
    return outcomes

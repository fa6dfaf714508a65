"""Turn raw bytes into usage events or rejections (SPEC §3); never raise on bad input.

Order of checks, first failure wins: ``too_large`` (before parsing), ``malformed_json``,
``schema``, ``future``, then with an app directory ``unknown_app`` and
``service_disabled``, then with a lateness floor ``too_late``. Duplicates are not decided
here: dedupe needs state (``rating.dedupe``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from topics.appconfig import AppDirectory
from topics.events import SERVICE_OF_TYPE, SchemaError, UsageEvent, parse_event
from topics.reasons import QuarantineReason, Rejection
from topics.timefmt import to_ms

MAX_EVENT_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_BATCH_EVENTS = 1000
FUTURE_TOLERANCE_MS = 10 * 60 * 1000

Outcome = UsageEvent | Rejection


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def split_message(raw: bytes) -> list[tuple[str, Any] | Rejection]:
    """Decode one Kafka message (or file line): an event object or a batch array.

    Returns, per event, ``(original text, decoded object)`` or a ``Rejection``.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        return [Rejection(QuarantineReason.TOO_LARGE, f"message of {len(raw)} bytes", _text(raw))]
    try:
        decoded = orjson.loads(raw)
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
            text = orjson.dumps(item).decode()
            if len(text) > MAX_EVENT_BYTES:
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
) -> Outcome:
    """Validate one decoded event object (see the module docstring for the order).
    ``now`` is the wall clock, as a datetime or epoch milliseconds."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        return _reject(QuarantineReason.SCHEMA, "an event must be a JSON object", text, obj)
    try:
        event = parse_event(obj)
    except SchemaError as exc:
        return _reject(QuarantineReason.SCHEMA, str(exc), text, obj)
    if event.ms > (now if isinstance(now, int) else to_ms(now)) + FUTURE_TOLERANCE_MS:
        return _reject(QuarantineReason.FUTURE, "event time over 10 min ahead of wall-clock time", text, obj)
    if apps is not None:
        config = apps.at(event.sdk_app_id, event.ms)
        if config is None:
            return _reject(QuarantineReason.UNKNOWN_APP, "no config for sdk_app_id", text, obj)
        service = SERVICE_OF_TYPE[event.type]
        if not config.enabled(service):
            return _reject(QuarantineReason.SERVICE_DISABLED, f"service {service} not enabled", text, obj)
    if not_before_ms is not None and event.ms < not_before_ms:
        return _reject(QuarantineReason.TOO_LATE, "event older than the lateness horizon", text, obj)
    return event


def _reject(reason: QuarantineReason, detail: str, text: str, obj: Any) -> Rejection:
    """A rejection naming the event's app and id where the object has usable ones."""
    app_id = obj.get("sdk_app_id") if isinstance(obj, Mapping) else None
    event_id = obj.get("event_id") if isinstance(obj, Mapping) else None
    return Rejection(
        reason,
        detail,
        text,
        app_id if isinstance(app_id, int) and not isinstance(app_id, bool) else None,
        event_id if isinstance(event_id, str) else None,
    )


def validate(
    raw: bytes,
    now: datetime,
    *,
    apps: AppDirectory | None = None,
    not_before_ms: int | None = None,
) -> list[Outcome]:
    """Validate a message holding one event or a batch; one outcome per event."""
    outcomes: list[Outcome] = []
    for part in split_message(raw):
        if isinstance(part, Rejection):
            outcomes.append(part)
        else:
            outcomes.append(check_event(*part, now, apps=apps, not_before_ms=not_before_ms))
    return outcomes

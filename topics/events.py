"""Usage events of SPEC §3 as frozen dataclasses, parsed from JSON objects by a field table.

Parsing is table driven (``SCHEMAS``): each event type lists its fields with type,
default and bounds, so a new field is a line of data. ``parse_event`` raises
``SchemaError`` with one message; ``topics.validation`` turns it into a rejection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from topics.timefmt import parse_time, to_ms

ZONES = ("mainland", "ap1", "ap2", "ap3", "na", "eu", "me", "af", "sa")
RECORDING_FORMATS = ("mp4", "hls", "flv", "aac")
STORAGE_CLASSES = ("standard", "infrequent", "archive", "deep_archive")
AREAS = ("mainland", "overseas")

MAX_BYTES = 10**15  # a petabyte in one record is absurd
MAX_STORED_BYTES = 10**19  # ten exabytes held by one app is absurd
MAX_COUNT = 10**10
MAX_SECONDS = 31 * 86_400
MAX_PIXELS = 16_384


class SchemaError(ValueError):
    """A field is missing, wrongly typed or out of range."""


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every usage event has; ``ms`` is the event time in epoch milliseconds."""

    type: str
    event_id: str
    sdk_app_id: int
    time: datetime
    ms: int


@dataclass(frozen=True, slots=True)
class RelayTraffic(Event):
    stream_id: str
    zone: str
    bytes: int
    interval_s: int
    direction: str
    product: str
    source: str


@dataclass(frozen=True, slots=True)
class RecordingEvent(Event):
    """``recording.start``, ``.heartbeat`` or ``.stop`` of one task (one channel)."""

    task_id: str
    stream_id: str
    format: str

    @property
    def action(self) -> str:
        return self.type.rsplit(".", 1)[1]


@dataclass(frozen=True, slots=True)
class TranscodeUsage(Event):
    task_id: str
    kind: str
    codec: str | None
    width: int | None
    height: int | None
    seconds: int
    trigger: str


@dataclass(frozen=True, slots=True)
class ImageCount(Event):
    """``snapshot.count`` or ``moderation.count``."""

    count: int


@dataclass(frozen=True, slots=True)
class VodStorage(Event):
    storage_class: str
    area: str
    bytes: int


@dataclass(frozen=True, slots=True)
class VodTraffic(Event):
    zone: str
    bytes: int
    interval_s: int


@dataclass(frozen=True, slots=True)
class ImDau(Event):
    date: str
    dau: int


@dataclass(frozen=True, slots=True)
class ImGroups(Event):
    count: int


UsageEvent = (
    RelayTraffic
    | RecordingEvent
    | TranscodeUsage
    | ImageCount
    | VodStorage
    | VodTraffic
    | ImDau
    | ImGroups
)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event type: how to check it and its default (``REQUIRED`` if none)."""

    check: Callable[[Any], Any]
    default: Any = ...


REQUIRED = ...


def _text(max_len: int = 256) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= max_len:
            raise SchemaError(f"expected a string of 1..{max_len} characters")
        return value

    return check


def _int(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError("expected an integer")
        if not low <= value <= high:
            raise SchemaError(f"expected an integer in {low}..{high}")
        return value

    return check


def _enum(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise SchemaError(f"expected one of {', '.join(choices)}")
        return str(value)

    return check


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: Any) -> str:
    if not isinstance(value, str) or not _DATE.match(value):
        raise SchemaError("expected a date YYYY-MM-DD")
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError as exc:
        raise SchemaError("expected a valid date YYYY-MM-DD") from exc
    return value


_RECORDING = {
    "task_id": Field(_text()),
    "stream_id": Field(_text()),
    "format": Field(_enum(*RECORDING_FORMATS)),
}
_IMAGES = {"count": Field(_int(0, MAX_COUNT))}

# type -> (class, fields beyond the common ones)
SCHEMAS: Mapping[str, tuple[type[Event], Mapping[str, Field]]] = {
    "relay.traffic": (
        RelayTraffic,
        {
            "stream_id": Field(_text()),
            "zone": Field(_enum(*ZONES)),
            "bytes": Field(_int(0, MAX_BYTES)),
            "interval_s": Field(_int(1, 300), 300),
            "direction": Field(_enum("down", "up"), "down"),
            "product": Field(_enum("standard", "leb"), "standard"),
            "source": Field(_enum("viewer", "recording"), "viewer"),
        },
    ),
    "recording.start": (RecordingEvent, _RECORDING),
    "recording.heartbeat": (RecordingEvent, _RECORDING),
    "recording.stop": (RecordingEvent, _RECORDING),
    "transcode.usage": (
        TranscodeUsage,
        {
            "task_id": Field(_text()),
            "kind": Field(_enum("standard", "top_speed", "audio")),
            "codec": Field(_enum("h264", "h265"), None),
            "width": Field(_int(1, MAX_PIXELS), None),
            "height": Field(_int(1, MAX_PIXELS), None),
            "seconds": Field(_int(0, MAX_SECONDS)),
            "trigger": Field(_enum("transcode", "watermark", "mix"), "transcode"),
        },
    ),
    "snapshot.count": (ImageCount, _IMAGES),
    "moderation.count": (ImageCount, _IMAGES),
    "vod.storage": (
        VodStorage,
        {
            "storage_class": Field(_enum(*STORAGE_CLASSES), "standard"),
            "area": Field(_enum(*AREAS), "mainland"),
            "bytes": Field(_int(0, MAX_STORED_BYTES)),
        },
    ),
    "vod.traffic": (
        VodTraffic,
        {
            "zone": Field(_enum(*ZONES), "mainland"),
            "bytes": Field(_int(0, MAX_BYTES)),
            "interval_s": Field(_int(1, 300), 300),
        },
    ),
    "im.dau": (ImDau, {"date": Field(_date), "dau": Field(_int(0, MAX_COUNT))}),
    "im.groups": (ImGroups, {"count": Field(_int(0, MAX_COUNT))}),
}

SERVICE_OF_TYPE: Mapping[str, str] = {
    "relay.traffic": "relay",
    "recording.start": "recording",
    "recording.heartbeat": "recording",
    "recording.stop": "recording",
    "transcode.usage": "transcode",
    "snapshot.count": "snapshot",
    "moderation.count": "moderation",
    "vod.storage": "vod",
    "vod.traffic": "vod",
    "im.dau": "im",
    "im.groups": "im",
}

_EVENT_ID = _text(128)
_APP_ID = _int(1, 2**32 - 1)


def parse_event(obj: Mapping[str, Any]) -> UsageEvent:
    """Build the typed event of a decoded JSON object or raise ``SchemaError``."""
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise SchemaError(f"unknown event type {kind!r}")
    cls, fields = SCHEMAS[kind]
    values: dict[str, Any] = {"type": kind}
    for name, check in (("event_id", _EVENT_ID), ("sdk_app_id", _APP_ID)):
        if name not in obj:
            raise SchemaError(f"missing field {name}")
        try:
            values[name] = check(obj[name])
        except SchemaError as exc:
            raise SchemaError(f"{name}: {exc}") from None
    if "time" not in obj:
        raise SchemaError("missing field time")
    try:
        values["time"] = parse_time(obj["time"])
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"time: {exc}") from None
    values["ms"] = to_ms(values["time"])
    for name, field in fields.items():
        raw = obj.get(name)
        if raw is None:
            if field.default is REQUIRED:
                raise SchemaError(f"missing field {name}")
            values[name] = field.default
            continue
        try:
            values[name] = field.check(raw)
        except SchemaError as exc:
            raise SchemaError(f"{name}: {exc}") from None
    event = cls(**values)
    if isinstance(event, TranscodeUsage):
        _check_transcode(event)
    return event  # type: ignore[return-value]


def _check_transcode(event: TranscodeUsage) -> None:
    video = event.kind != "audio"
    if video and (event.codec is None or event.width is None or event.height is None):
        raise SchemaError("video transcoding needs codec, width and height")

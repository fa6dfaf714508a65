"""Usage events of SPEC §3 as frozen dataclasses, parsed from JSON objects by a field table.

Parsing is table driven (``SCHEMAS``): each event type lists its fields with type,
default and bounds, so a new field is a line of data. ``parse_event`` raises
``SchemaError`` with one message; ``topics.validation`` turns it into a rejection.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, TypeVar, dataclass_transform

from topics.names import TypeTable
from topics.timefmt import FIRST_DATE, LAST_DATE, date_start_ms, parse_time, to_ms

ZONES = ("mainland", "ap1", "ap2", "ap3", "na", "eu", "me", "af", "sa")
RECORDING_FORMATS = ("mp4", "hls", "flv", "aac")
STORAGE_CLASSES = ("standard", "infrequent", "archive", "deep_archive")
AREAS = ("mainland", "overseas")

# Bounds of "absurd" numbers (SPEC §3 schema). Sums of them stay exact: Python integers
# are unbounded, and stored state round-trips integers of any size (topics.codec).
MAX_BYTES = 10**15  # a petabyte in one record (at most 5 minutes) is absurd
MAX_STORED_BYTES = 10**18  # an exabyte held by one app is absurd (and 2^63 must be rejected)
MAX_COUNT = 10**10  # images, groups or daily active users in one record
MAX_SECONDS = 31 * 86_400
MAX_PIXELS = 16_384


class SchemaError(ValueError):
    """A field is missing, wrongly typed or out of range."""


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def event_class(cls: type[_T]) -> type[_T]:
    """Frozen for the type checker, a plain slotted dataclass at run time: a frozen
    dataclass's __init__ sets each field through object.__setattr__, about 1 µs per event
    here (5 % of the worker's budget at 50,000 events/s). Nothing assigns to an event; mypy
    checks that."""
    return dataclass(slots=True)(cls)


@event_class
class Event:
    """Fields every usage event has; ``ms`` is the event time in epoch milliseconds."""

    type: str
    event_id: str
    sdk_app_id: int
    time: datetime
    ms: int


@event_class
class RelayTraffic(Event):
    stream_id: str
    zone: str
    bytes: int
    interval_s: int
    direction: str
    product: str
    source: str


@event_class
class RecordingEvent(Event):
    """``recording.start``, ``.heartbeat`` or ``.stop`` of one task (one channel)."""

    task_id: str
    stream_id: str
    format: str

    @property
    def action(self) -> str:
        return self.type.rsplit(".", 1)[1]


@event_class
class TranscodeUsage(Event):
    task_id: str
    kind: str
    codec: str | None
    width: int | None
    height: int | None
    seconds: int
    trigger: str


@event_class
class ImageCount(Event):
    """``snapshot.count`` or ``moderation.count``."""

    count: int


@event_class
class VodStorage(Event):
    storage_class: str
    area: str
    bytes: int


@event_class
class VodTraffic(Event):
    zone: str
    bytes: int
    interval_s: int


@event_class
class ImDau(Event):
    date: str
    dau: int


@event_class
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
class Text:
    """A string of 1..``max_len`` characters."""

    max_len: int = 256

    def check(self, value: Any) -> str:
        if type(value) is not str or not 1 <= len(value) <= self.max_len:
            raise SchemaError(f"expected a string of 1..{self.max_len} characters")
        return value


@dataclass(frozen=True, slots=True)
class Int:
    """An integer (not a boolean) in ``low..high``."""

    low: int
    high: int

    def check(self, value: Any) -> int:
        if type(value) is not int:
            raise SchemaError("expected an integer")
        if not self.low <= value <= self.high:
            raise SchemaError(f"expected an integer in {self.low}..{self.high}")
        return value


@dataclass(frozen=True, slots=True)
class Enum:
    """One of a few strings."""

    choices: frozenset[str]
    order: tuple[str, ...]  # for the error message

    def check(self, value: Any) -> str:
        if type(value) is not str or value not in self.choices:
            raise SchemaError(f"expected one of {', '.join(self.order)}")
        return value


@dataclass(frozen=True, slots=True)
class Date:
    """A calendar date YYYY-MM-DD (ASCII digits) in 2000-01-01 … 2099-12-31."""

    def check(self, value: Any) -> str:
        if type(value) is not str or not _DATE.fullmatch(value):
            raise SchemaError("expected a date YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise SchemaError("expected a valid date YYYY-MM-DD") from exc
        if not FIRST_DATE <= day <= LAST_DATE:
            raise SchemaError(f"date {value} is outside {FIRST_DATE} … {LAST_DATE}")
        return value


Check = Text | Int | Enum | Date


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an event type: how to check it and its default (``REQUIRED`` if none)."""

    check: Check
    default: Any = ...


REQUIRED = ...


def _enum(*choices: str) -> Enum:
    return Enum(frozenset(choices), choices)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_date = Date()


_RECORDING = {
    "task_id": Field(Text()),
    "stream_id": Field(Text()),
    "format": Field(_enum(*RECORDING_FORMATS)),
}
_IMAGES = {"count": Field(Int(0, MAX_COUNT))}

# type -> (class, fields beyond the common ones)
SCHEMAS: Mapping[str, tuple[type[Event], Mapping[str, Field]]] = TypeTable({
    "relay.traffic": (
        RelayTraffic,
        {
            "stream_id": Field(Text()),
            "zone": Field(_enum(*ZONES)),
            "bytes": Field(Int(0, MAX_BYTES)),
            "interval_s": Field(Int(1, 300), 300),
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
            "task_id": Field(Text()),
            "kind": Field(_enum("standard", "top_speed", "audio")),
            "codec": Field(_enum("h264", "h265"), None),
            "width": Field(Int(1, MAX_PIXELS), None),
            "height": Field(Int(1, MAX_PIXELS), None),
            "seconds": Field(Int(0, MAX_SECONDS)),
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
            "bytes": Field(Int(0, MAX_STORED_BYTES)),
        },
    ),
    "vod.traffic": (
        VodTraffic,
        {
            "zone": Field(_enum(*ZONES), "mainland"),
            "bytes": Field(Int(0, MAX_BYTES)),
            "interval_s": Field(Int(1, 300), 300),
        },
    ),
    "im.dau": (ImDau, {"date": Field(_date), "dau": Field(Int(0, MAX_COUNT))}),
    "im.groups": (ImGroups, {"count": Field(Int(0, MAX_COUNT))}),
})

SERVICE_OF_TYPE: Mapping[str, str] = TypeTable({
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
})

_EVENT_ID = Text(128)
_APP_ID = Int(1, 2**32 - 1)


def _compile(cls: type[Event], fields: Mapping[str, Field]) -> tuple[type[Event], tuple[tuple[str, Check, Any], ...]]:
    """A type's fields as (name, check, default) in the order of the dataclass's own fields
    after the common ones, so ``parse_event`` can build the event positionally."""
    own = tuple(f.name for f in dataclasses.fields(cls))[len(dataclasses.fields(Event)):]
    if own != tuple(fields):
        raise TypeError(f"{cls.__name__}: schema fields {tuple(fields)} differ from the class's {own}")
    return cls, tuple((name, field.check, field.default) for name, field in fields.items())


_COMPILED = {kind: _compile(cls, fields) for kind, (cls, fields) in SCHEMAS.items()}


@lru_cache(maxsize=1 << 14)
def _event_time(text: str) -> tuple[datetime, int]:
    """Parsed once per distinct text: event times repeat (every record of a 5-minute bucket)."""
    value = parse_time(text)
    return value, to_ms(value)


@lru_cache(maxsize=1 << 12)
def date_ms(text: str) -> int:
    """The Beijing start (00:00+08:00) of an ``im.dau`` date, in epoch milliseconds: the
    instant its ``future`` and ``too_late`` rules judge (SPEC §3). Our reading: a day's
    report may come once the day has begun (not more than 10 minutes before its Beijing
    midnight), and is too late once that midnight is behind the lateness horizon, like any
    event whose ``time`` is that midnight."""
    return date_start_ms(date.fromisoformat(text))


def parse_event(obj: Mapping[str, Any]) -> UsageEvent:
    """Build the typed event of a decoded JSON object or raise ``SchemaError``.

    The hot path of both ``vasbill rate`` and the worker: the checks of ``Int``, ``Enum``
    and ``Text`` are applied inline (same rules as their ``check``), others are called."""
    kind = obj.get("type")
    if type(kind) is not str or kind not in _COMPILED:
        raise SchemaError(f"unknown event type {kind!r}")
    cls, fields = _COMPILED[kind]
    if "event_id" not in obj:
        raise SchemaError("missing field event_id")
    if "sdk_app_id" not in obj:
        raise SchemaError("missing field sdk_app_id")
    event_id, app_id = obj["event_id"], obj["sdk_app_id"]
    if type(event_id) is not str or not 1 <= len(event_id) <= _EVENT_ID.max_len:
        _field_error("event_id", _EVENT_ID, event_id)
    if type(app_id) is not int or not _APP_ID.low <= app_id <= _APP_ID.high:
        _field_error("sdk_app_id", _APP_ID, app_id)
    if "time" not in obj:
        raise SchemaError("missing field time")
    text = obj["time"]
    try:
        when, ms = _event_time(text) if type(text) is str else _event_time.__wrapped__(text)
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"time: {exc}") from None
    values: list[Any] = [kind, event_id, app_id, when, ms]
    append = values.append
    for name, check, default in fields:
        raw = obj.get(name)
        if raw is None:
            if default is REQUIRED:
                raise SchemaError(f"missing field {name}")
            append(default)
            continue
        rule = type(check)
        if rule is Enum:
            if type(raw) is not str or raw not in check.choices:  # type: ignore[union-attr]
                _field_error(name, check, raw)
        elif rule is Int:
            if type(raw) is not int or not check.low <= raw <= check.high:  # type: ignore[union-attr]
                _field_error(name, check, raw)
        elif rule is Text:
            if type(raw) is not str or not 1 <= len(raw) <= check.max_len:  # type: ignore[union-attr]
                _field_error(name, check, raw)
        else:
            try:
                raw = check.check(raw)
            except SchemaError as exc:
                raise SchemaError(f"{name}: {exc}") from None
        append(raw)
    event = cls(*values)
    if kind == "transcode.usage":
        _check_transcode(event)  # type: ignore[arg-type]
    return event  # type: ignore[return-value]


def _field_error(name: str, check: Check, value: Any) -> None:
    """Raise the field's own error message, prefixed with its name."""
    try:
        check.check(value)
    except SchemaError as exc:
        raise SchemaError(f"{name}: {exc}") from None
    raise AssertionError(f"{name}: the inline check and {type(check).__name__}.check disagree on {value!r}")


def _check_transcode(event: TranscodeUsage) -> None:
    video = event.kind != "audio"
    if video and (event.codec is None or event.width is None or event.height is None):
        raise SchemaError("video transcoding needs codec, width and height")

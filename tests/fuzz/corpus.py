"""A deterministic corpus of hostile inputs for vasbill's input path (SPEC §2–§4, §6).

``build_corpus(seed)`` returns a ``Corpus``: a few app configs for three accounts in one
month (2026-08), a few hundred valid usage events of those apps, and over 2,000 hostile
``Item`` s, each a Kafka message (topic, value, key) with the outcome SPEC §3 requires of
it, known by construction: a valid event with exactly one thing broken, or a hand-written
case with a note. The same seed gives byte-identical output (``Corpus.fingerprint``):
everything is drawn from one ``random.Random(seed)``, nothing iterates a set, and no
value depends on the wall clock (unless ``now`` is passed, see below).

Why not hypothesis: a strategy's ``.example()`` is not deterministic and ``@given`` drives
tests, not corpora; the generators here are small and seeded, and hypothesis-style
"valid, then break one field" is what they do.

Shapes
------
``Item.expected`` is
- a ``str`` when the message has exactly one outcome: a SPEC §3 reason code
  (``malformed_json``, ``schema``, ``too_large``, ``future``, ``unknown_app``,
  ``service_disabled``, ``too_late``, ``wrong_topic``), ``"duplicate"`` (counted, not
  quarantined), ``"tombstone"`` (``value`` is None: counted and skipped) or
  ``"accepted"`` (a valid event, hostile only in its looks: NUL or RTL characters in ids,
  unicode escapes, boundary values; it must be billed). A whole-message rejection of a
  JSON array (over 1 MiB, more than 1000 events) is one outcome: a ``str``.
- a ``tuple[str, ...]`` for a JSON array message that is split: one outcome per element,
  in order (an empty array has none).
``Item.expectations`` always gives the tuple form.

``Item.after`` (default 0): the item may be sent only once ``corpus.valid[:after]`` have
been (a duplicate of ``valid[i]`` has ``after = i + 1``; a ``too_late`` event needs a
clock that valid events established: ``valid`` is sorted by event time, and the clock of
``valid[:after]`` is past the event's time plus the 40-day horizon).
``Corpus.interleave(seed)`` merges valid events and hostile items respecting it.

No value contains ``\\n`` or ``\\r``, so values can be written one per line for
``vasbill rate --events`` (rate skips blank lines: the two whitespace-only values
``b""`` and ``b" \\t "`` are ``malformed_json`` on Kafka but not lines of a file).

``future`` items lie days ahead of 2090-01-01 (ahead of any plausible wall clock, and
deterministic); ``build_corpus(seed, now=...)`` puts them days ahead of ``now`` instead.
``too_late`` items are older than the horizon relative to the event clock of the valid
events (``Corpus.not_before_ms``), which validation receives as ``not_before_ms``.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

# -- the contract of SPEC §2-§4, written out (not imported: the corpus is the expectation) --

TOPIC_OF_TYPE: dict[str, str] = {
    "relay.traffic": "usage.relay",
    "recording.start": "usage.recording",
    "recording.heartbeat": "usage.recording",
    "recording.stop": "usage.recording",
    "transcode.usage": "usage.transcode",
    "snapshot.count": "usage.snapshot",
    "moderation.count": "usage.snapshot",
    "vod.storage": "usage.vod",
    "vod.traffic": "usage.vod",
    "im.dau": "usage.im",
    "im.groups": "usage.im",
}
TYPES = tuple(TOPIC_OF_TYPE)
USAGE_TOPICS = tuple(dict.fromkeys(TOPIC_OF_TYPE.values()))
TYPES_OF_TOPIC = {t: tuple(k for k in TYPES if TOPIC_OF_TYPE[k] == t) for t in USAGE_TOPICS}
SERVICE_OF_TYPE = {
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
SERVICES = ("relay", "recording", "transcode", "snapshot", "moderation", "vod", "im")
ZONES = ("mainland", "ap1", "ap2", "ap3", "na", "eu", "me", "af", "sa")
FORMATS = ("mp4", "hls", "flv", "aac")
STORAGE_CLASSES = ("standard", "infrequent", "archive", "deep_archive")
AREAS = ("mainland", "overseas")
TRIGGERS = ("transcode", "watermark", "mix")

#: SPEC §3 reason codes of inputs (``unprocessable`` is the worker's own: no input is
#: constructed to be unprocessable, that would be a bug to fix).
REASONS = ("malformed_json", "schema", "too_large", "future", "unknown_app", "service_disabled",
           "too_late", "wrong_topic")
OUTCOMES = (*REASONS, "duplicate", "tombstone", "accepted")

BJ = timezone(timedelta(hours=8))
UTC = timezone.utc
MONTH = "2026-08"
MONTH_START = datetime(2026, 8, 1, tzinfo=BJ)
MONTH_DAYS = 31
HORIZON_MS = 40 * 86_400_000
MAX_EVENT_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_BATCH = 1000
FUTURE_ANCHOR = datetime(2090, 1, 1, tzinfo=UTC)

APP_A1, APP_A2, APP_B1, APP_C1 = 1400100001, 1400100002, 1400200001, 1400300001
FULL_APPS = (APP_A1, APP_A2, APP_B1)  # every service enabled
PARTIAL_APP = APP_C1  # relay, snapshot and IM only
C1_SERVICES = {"relay": True, "recording": False, "transcode": False, "snapshot": True,
               "moderation": False, "vod": False, "im": True}
DISABLED_TYPES_C1 = tuple(k for k in TYPES if not C1_SERVICES[SERVICE_OF_TYPE[k]])
ENABLED_TYPES_C1 = tuple(k for k in TYPES if C1_SERVICES[SERVICE_OF_TYPE[k]])
UNKNOWN_APPS = (1400999999, 1, 2**32 - 1, 1400100003, 1400300002, 777)


def _ms(value: datetime) -> int:
    return int((value - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


# -- the API -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One Kafka message and its expected outcome(s); see the module docstring."""

    topic: str  # usage topic base name, e.g. "usage.relay"
    value: bytes | None  # None: a tombstone
    key: bytes | None
    expected: str | tuple[str, ...]
    note: str
    after: int = 0

    @property
    def expectations(self) -> tuple[str, ...]:
        return (self.expected,) if isinstance(self.expected, str) else self.expected

    @property
    def is_split_batch(self) -> bool:
        return not isinstance(self.expected, str)

    @property
    def topic_dependent(self) -> bool:
        """Its outcome depends on the topic it is sent to (``vasbill rate`` has no topics)."""
        return "wrong_topic" in self.expectations


@dataclass(frozen=True, repr=False)
class Corpus:
    seed: int
    month: str
    apps: list[dict[str, Any]]
    valid: list[bytes]  # sorted by event time; unique event_ids
    hostile: list[Item]
    hostile_apps: list[tuple[dict[str, Any], str]]  # (document, substring naming the bad field)
    clock_ms: int  # the event clock after ``valid``: its largest event time
    not_before_ms: int  # clock_ms - the 40-day horizon: what validation gets as not_before_ms

    def __repr__(self) -> str:  # the default would print megabytes
        return (f"Corpus(seed={self.seed}, month={self.month!r}, {len(self.apps)} apps, {len(self.valid)} valid, "
                f"{len(self.hostile)} hostile, {len(self.hostile_apps)} hostile apps)")

    def valid_items(self) -> list[Item]:
        """The valid events as Items (expected "accepted"), keyed by sdk_app_id."""
        out = []
        for i, raw in enumerate(self.valid):
            doc = orjson.loads(raw)
            out.append(Item(TOPIC_OF_TYPE[doc["type"]], raw, str(doc["sdk_app_id"]).encode(), "accepted",
                            f"valid[{i}]"))
        return out

    def counts(self) -> Counter[str]:
        """Expected outcomes of the hostile items, per event (a split batch counts each)."""
        return Counter(e for item in self.hostile for e in item.expectations)

    def interleave(self, seed: int = 0, keep: Callable[[Item], bool] | None = None) -> list[Item]:
        """Valid events in order with the hostile items (those ``keep`` selects) spread
        among them at positions drawn from ``random.Random(seed)``, each after its
        ``after`` valid events."""
        rng = random.Random(seed)
        valid = self.valid_items()
        slots: list[tuple[int, int, Item]] = []
        for index, item in enumerate(self.hostile):
            if keep is None or keep(item):
                slots.append((rng.randint(item.after, len(valid)), index, item))
        slots.sort(key=lambda s: (s[0], s[1]))
        out: list[Item] = []
        pos = 0
        for slot, _index, item in slots:
            out += valid[pos:slot]
            pos = max(pos, slot)
            out.append(item)
        out += valid[pos:]
        return out

    def fingerprint(self) -> str:
        """SHA-256 over every byte of the corpus (for determinism checks)."""
        digest = hashlib.sha256()

        def put(data: bytes | None) -> None:
            if data is None:
                digest.update(b"\xff" * 8)
            else:
                digest.update(len(data).to_bytes(8, "big"))
                digest.update(data)

        put(orjson.dumps(self.apps))
        for raw in self.valid:
            put(raw)
        for item in self.hostile:
            put(item.topic.encode())
            put(item.value)
            put(item.key)
            put(orjson.dumps(item.expected))
            put(item.note.encode())
            put(str(item.after).encode())
        put(repr(self.hostile_apps).encode())
        put(f"{self.clock_ms}/{self.not_before_ms}".encode())
        return digest.hexdigest()


def build_corpus(seed: int = 7, *, now: datetime | None = None) -> Corpus:
    """The corpus for ``seed`` (byte-identical for a seed when ``now`` is None)."""
    return _Builder(seed, now).build()


# -- serialisation helpers -----------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A field value written as raw JSON text (``10**400``, ``1e400``, deep nesting...)."""

    text: str


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact JSON of an event dict; top-level ``Raw`` values go in as written, and so do
    integers beyond 64 bits (which orjson cannot write)."""
    doc = {k: (Raw(str(v)) if type(v) is int and not -(2**63) <= v < 2**64 else v) for k, v in doc.items()}
    raws = {k: v for k, v in doc.items() if isinstance(v, Raw)}
    if not raws:
        return orjson.dumps(doc)
    stand_in = {k: (f"@@RAW:{k}@@" if k in raws else v) for k, v in doc.items()}
    out = orjson.dumps(stand_in)
    for k, v in raws.items():
        out = out.replace(orjson.dumps(f"@@RAW:{k}@@"), v.text.encode(), 1)
    return out


def _fmt(value: datetime, offset: timedelta | None = timedelta(hours=8), *, millis: bool = True) -> str:
    """RFC 3339 text in the given offset (None: ``Z``)."""
    local = value.astimezone(UTC if offset is None else timezone(offset))
    frac = f".{local.microsecond // 1000:03d}" if millis and local.microsecond else ""
    if offset is None:
        suffix = "Z"
    else:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        suffix = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{local:%Y-%m-%dT%H:%M:%S}{frac}{suffix}"


def _bj(value: datetime) -> datetime:
    return value.astimezone(BJ)


BIG = Raw("1" + "0" * 400)  # 10**400: valid JSON, no integer type holds it
NEG_BIG = Raw("-1" + "0" * 400)
BIG_EXP = Raw("1e400")
INT_WRONG_TYPES: tuple[Any, ...] = ("100", 1.5, 1.0, True, False, [1], {"value": 1})
TEXT_WRONG_TYPES: tuple[Any, ...] = (7, 0, True, ["x"], {"id": "x"}, "")


def _enum_bad(choices: Iterable[str]) -> list[Any]:
    first = next(iter(choices))
    return [first.upper(), f" {first}", f"{first} ", "mars", "", 1, True, [first]]


DROP = object()  # a mutation value: remove the field


# (field, bad values) per event type: each applied to a fresh valid event of that type
KIND_MUTATIONS: dict[str, list[tuple[str, list[Any]]]] = {
    "relay.traffic": [
        ("stream_id", [DROP, *TEXT_WRONG_TYPES]),
        ("zone", [DROP, *_enum_bad(ZONES), "cn", "MainLand"]),
        ("bytes", [DROP, -1, -10**12, 10**16, 10**18, BIG, NEG_BIG, BIG_EXP, 2**64, *INT_WRONG_TYPES]),
        ("interval_s", [0, 301, -300, 86_400, "300", 300.0, True]),
        ("direction", ["sideways", "DOWN", "", 0]),
        ("product", ["slow", "LEB", 1]),
        ("source", ["robot", "Viewer", []]),
    ],
    "recording": [
        ("task_id", [DROP, *TEXT_WRONG_TYPES]),
        ("stream_id", [DROP, 12, ""]),
        ("format", [DROP, "mkv", "MP4", "", 4, ["mp4"]]),
    ],
    "transcode.usage": [
        ("task_id", [DROP, 5, ""]),
        ("kind", [DROP, "turbo", "Standard", "", 0]),
        ("codec", [DROP, "vp9", "H264", 264]),
        ("width", [DROP, 0, -1, 10**6, "1280", 1280.0]),
        ("height", [DROP, 0, -720, 10**7, "720"]),
        ("seconds", [DROP, -1, -3600, 10**9, BIG, "60", 60.5, True]),
        ("trigger", ["magic", "", 1]),
    ],
    "images": [
        ("count", [DROP, -1, 10**12, BIG, "5", 5.0, True]),
    ],
    "vod.storage": [
        ("storage_class", ["cold", "STANDARD", 1]),
        ("area", ["moon", "cn", 0]),
        ("bytes", [DROP, -1, 2**63, 10**19, 10**20, 2**64, BIG, "1000"]),
    ],
    "vod.traffic": [
        ("zone", ["mars", 1]),
        ("bytes", [DROP, -1, 10**16, BIG_EXP]),
        ("interval_s", [0, 301]),
    ],
    "im.dau": [
        ("date", [DROP, "2026-8-1", "2026-08-32", "2026-02-30", "9999-12-31", "0001-01-01", "1999-12-31",
                  "2100-01-01", "2026-08-01T00:00:00+08:00", "20260801", 20260801, "\uff12\uff10\uff12\uff16-08-01",
                  "2026-08-01 ", ["2026-08-01"]]),
        ("dau", [DROP, -1, 10**12, "5", 1.5, BIG]),
    ],
    "im.groups": [
        ("count", [DROP, -1, 10**12, "3", True]),
    ],
}


def _kind_group(kind: str) -> str:
    if kind.startswith("recording."):
        return "recording"
    if kind in ("snapshot.count", "moderation.count"):
        return "images"
    return kind


def _kinds_of_group(group: str) -> tuple[str, ...]:
    return tuple(k for k in TYPES if _kind_group(k) == group)


def _time_mutations(when: datetime) -> list[tuple[str, Any]]:
    """Times that are not SPEC §3's RFC 3339, or outside 2000-01-01 … 2099-12-31."""
    local = _bj(when).replace(microsecond=0)
    year, week, weekday = local.isocalendar()
    hms = f"{local:%H:%M:%S}"
    d = f"{local:%Y-%m-%d}"
    return [
        ("offset +08", f"{d}T{hms}+08"),
        ("offset +0800", f"{d}T{hms}+0800"),
        ("no seconds", f"{d}T{local:%H:%M}+08:00"),
        ("ISO week date", f"{year}-W{week:02d}-{weekday}T{hms}+0800"),
        ("ISO week date, extended offset", f"{year}-W{week:02d}-{weekday}T{hms}+08:00"),
        ("space separator", f"{d} {hms}+08:00"),
        ("no offset", f"{d}T{hms}"),
        ("date only", d),
        ("time only", f"T{hms}+08:00"),
        ("comma fraction", f"{d}T{hms},5+08:00"),
        ("empty fraction", f"{d}T{hms}.+08:00"),
        ("two fractions", f"{d}T{hms}.5.5+08:00"),
        ("offset with seconds", f"{d}T{hms}+08:00:00"),
        ("offset +24:00", f"{d}T{hms}+24:00"),
        ("offset minutes 60", f"{d}T{hms}+08:60"),
        ("offset one-digit hour", f"{d}T{hms}+8:00"),
        ("space before offset", f"{d}T{hms} +08:00"),
        ("UTC suffix", f"{d}T{hms}UTC"),
        ("Z and an offset", f"{d}T{hms}+08:00Z"),
        ("trailing space", f"{d}T{hms}+08:00 "),
        ("leading space", f" {d}T{hms}+08:00"),
        ("trailing NUL", f"{d}T{hms}+08:00\u0000"),
        ("trailing RTL override", f"{d}T{hms}+08:00\u202e"),
        ("fullwidth digits in the year", f"\uff12\uff10\uff12\uff16{d[4:]}T{hms}+08:00"),
        ("basic format", f"{local:%Y%m%dT%H%M%S}+0800"),
        ("hour 24", f"{d}T24:00:00+08:00"),
        ("second 60 (not a leap second)", f"{d}T{local:%H:%M}:60+08:00"),
        ("month 13", f"2026-13-{local:%d}T{hms}+08:00"),
        ("day 32", f"2026-08-32T{hms}+08:00"),
        ("30 February", f"2026-02-30T{hms}+08:00"),
        ("RFC 2822", f"{local:%a, %d %b %Y %H:%M:%S} +0800"),
        ("year 0001", "0001-01-01T00:00:00Z"),
        ("year 0001 at +14:00", "0001-01-01T00:00:00+14:00"),
        ("year 9999", "9999-12-31T23:59:59Z"),
        ("year 9999 at -12:00", "9999-12-31T23:59:59-12:00"),
        ("year 1969", "1969-12-31T23:59:59Z"),
        ("the epoch", "1970-01-01T00:00:00Z"),
        ("1999", "1999-06-01T00:00:00+08:00"),
        ("2100 (Beijing)", "2100-01-01T00:00:00+08:00"),
        ("2150", "2150-06-01T12:00:00Z"),
        ("empty", ""),
        ("words", "yesterday at noon"),
        ("epoch seconds number", _ms(when) // 1000),
        ("epoch milliseconds number", _ms(when)),
        ("null", None),
        ("list", [_fmt(when)]),
        ("object", {"time": _fmt(when)}),
        ("true", True),
    ]


COMMON_MUTATIONS: list[tuple[str, list[Any]]] = [
    ("event_id", [DROP, "", 0, 7, None, True, ["e"], {"id": "e"}, "x" * 129, "\u00e9" * 129,
                  "\U0001f600" * 129, "x" * 5000]),
    ("sdk_app_id", [DROP, 0, -1, 2**32, 2**40, 2**64, True, False, "1400100001", 1400100001.0, None,
                    [1400100001], {"id": 1400100001}, BIG, NEG_BIG, Raw("1.400100001e9")]),
    ("type", [DROP, "@list", "@object", 1, 0, None, True, "", "@upper", "@trailing-space", "@leading-space",
              "@underscore", "@family", "@v2", "relay.Traffic", "usage.relay", "clock", "clock.tock",
              "r\u0435lay.traffic"]),
]


class _Builder:
    def __init__(self, seed: int, now: datetime | None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.future_base = now.astimezone(UTC) if now is not None else FUTURE_ANCHOR
        self.hostile: list[Item] = []
        self._ids = 0
        self.valid_docs: list[dict[str, Any]] = []
        self.valid_ms: list[int] = []

    # -- basics ----------------------------------------------------------------------------

    def next_id(self, prefix: str = "h") -> str:
        self._ids += 1
        return f"{prefix}-{self.seed}-{self._ids:05d}"

    def month_time(self, first_day: int = 1, last_day: int = MONTH_DAYS, *, aligned: bool = True) -> datetime:
        r = self.rng
        day = r.randint(first_day, last_day)
        when = MONTH_START + timedelta(days=day - 1, seconds=r.randrange(288) * 300)
        if not aligned:
            when += timedelta(seconds=r.randrange(300), milliseconds=r.randrange(1000) if r.random() < 0.3 else 0)
        return when

    def fmt(self, when: datetime) -> str:
        roll = self.rng.random()
        if roll < 0.15:
            return _fmt(when, None)
        if roll < 0.2:
            return _fmt(when, timedelta(hours=-5))
        return _fmt(when)

    def key(self, doc: Any) -> bytes | None:
        r = self.rng
        roll = r.random()
        app = doc.get("sdk_app_id") if isinstance(doc, dict) else None
        if roll < 0.6 and isinstance(app, int) and not isinstance(app, bool):
            return str(app).encode()
        if roll < 0.75:
            return None
        if roll < 0.85:
            return b""
        if roll < 0.95:
            return f"stream-{r.randrange(100)}".encode()
        return bytes(r.randrange(256) for _ in range(r.randint(1, 40)))

    def add(self, topic: str, value: bytes | None, expected: str | tuple[str, ...], note: str, *,
            key: bytes | None | str = "auto", doc: Any = None, after: int = 0) -> None:
        if key == "auto":
            key = self.key(doc)
        assert value is None or (b"\n" not in value and b"\r" not in value), note
        self.hostile.append(Item(topic, value, key, expected, note, after))  # type: ignore[arg-type]

    # -- events ----------------------------------------------------------------------------

    def event(self, kind: str, app: int, when: datetime, event_id: str | None = None) -> dict[str, Any]:
        r = self.rng
        doc: dict[str, Any] = {"event_id": event_id or self.next_id(), "sdk_app_id": app, "type": kind,
                               "time": self.fmt(when)}
        short = app % 1000
        if kind == "relay.traffic":
            doc["stream_id"] = f"live-{short}-{r.randrange(12)}"
            doc["zone"] = r.choice(("mainland",) * 6 + ZONES[1:])
            doc["bytes"] = r.randrange(10**6, 3 * 10**9)
            roll = r.random()
            if roll < 0.1:
                doc["direction"] = "up"
            elif roll < 0.2:
                doc["product"] = "leb"
            elif roll < 0.25:
                doc["source"] = "recording"
            elif roll < 0.3:
                doc.update(direction="down", product="standard", source="viewer")
            if r.random() < 0.2:
                doc["interval_s"] = r.choice((60, 300))
        elif kind.startswith("recording."):
            doc.update(task_id=f"rec-{short}-{r.randrange(1000):03d}", stream_id=f"live-{short}-{r.randrange(12)}",
                       format=r.choice(FORMATS))
        elif kind == "transcode.usage":
            tkind = r.choice(("standard", "standard", "top_speed", "audio"))
            doc.update(task_id=f"tc-{short}-{r.randrange(100):02d}", kind=tkind)
            if tkind != "audio":
                width, height = r.choice(((1280, 720), (1920, 1080), (640, 480), (3840, 2160), (720, 1280),
                                          (2560, 1440)))
                doc.update(codec=r.choice(("h264", "h264", "h265")), width=width, height=height)
            doc["seconds"] = r.randrange(1, 3600)
            doc["trigger"] = r.choice(TRIGGERS)
        elif kind in ("snapshot.count", "moderation.count", "im.groups"):
            doc["count"] = r.randrange(1, 4000)
        elif kind == "vod.storage":
            doc.update(storage_class=r.choice(STORAGE_CLASSES), area=r.choice(("mainland", "mainland", "overseas")),
                       bytes=r.randrange(10**9, 5 * 10**12))
        elif kind == "vod.traffic":
            doc.update(zone=r.choice(("mainland",) * 4 + ZONES[1:]), bytes=r.randrange(10**6, 10**10),
                       interval_s=300)
        elif kind == "im.dau":
            doc.update(date=_bj(when).date().isoformat(), dau=r.randrange(0, 20_000))
        else:  # pragma: no cover
            raise AssertionError(kind)
        return doc

    def base(self, kind: str | None = None, app: int | None = None, when: datetime | None = None) -> dict[str, Any]:
        """A fresh valid event (of an app with every service enabled unless ``app`` is given)."""
        r = self.rng
        kind = kind or r.choice(TYPES)
        app = app or r.choice(FULL_APPS)
        when = when or self.month_time(2, 30, aligned=kind == "relay.traffic")
        return self.event(kind, app, when)

    # -- apps and valid events ---------------------------------------------------------------

    def apps(self) -> list[dict[str, Any]]:
        everything = {s: True for s in SERVICES}
        start = "2026-08-01T00:00:00+08:00"
        return [
            {"sdk_app_id": APP_A1, "account_id": "acct-fuzz-a", "effective_from": start, "services": everything,
             "relay_billing": "traffic", "contract_prices": {}, "im_plan": "pro", "catalog": None,
             "packages": [{"package_id": "pkg-a1-css", "kind": "css_traffic", "size": "500",
                           "purchased_at": "2026-08-03T09:00:00+08:00", "expires_at": None}]},
            {"sdk_app_id": APP_A2, "account_id": "acct-fuzz-a", "effective_from": start, "services": everything,
             "relay_billing": "traffic", "im_plan": "trtc_trial", "catalog": None, "packages": []},
            {"sdk_app_id": APP_B1, "account_id": "acct-fuzz-b", "effective_from": start, "services": everything,
             "relay_billing": "bandwidth_daily_peak", "im_plan": "flagship", "catalog": "tencent-2022",
             "packages": [{"package_id": "pkg-b1-vod", "kind": "vod_storage", "size": "200",
                           "purchased_at": "2026-07-20T00:00:00+08:00", "expires_at": "2027-07-20T00:00:00+08:00"}]},
            {"sdk_app_id": APP_C1, "account_id": "acct-fuzz-c", "effective_from": start,
             "services": dict(C1_SERVICES), "relay_billing": "bandwidth_monthly_95",
             "contract_prices": {"mainland": "28.00", "ap1": "45.5"}, "im_plan": "trtc_trial", "catalog": None},
        ]

    def valid_events(self) -> None:
        r = self.rng
        plan = (("relay.traffic", 30), ("transcode.usage", 12), ("snapshot.count", 6), ("moderation.count", 6),
                ("vod.storage", 8), ("vod.traffic", 8), ("im.dau", 8), ("im.groups", 4))
        timed: list[tuple[datetime, dict[str, Any]]] = []
        for app in (*FULL_APPS, PARTIAL_APP):
            enabled = C1_SERVICES if app == PARTIAL_APP else {s: True for s in SERVICES}
            for kind, n in plan:
                if not enabled[SERVICE_OF_TYPE[kind]]:
                    continue
                for _ in range(n):
                    if kind == "im.dau":
                        day = MONTH_START + timedelta(days=r.randrange(MONTH_DAYS))
                        when = day + timedelta(hours=23, seconds=r.randrange(3300))
                    else:
                        when = self.month_time(aligned=kind == "relay.traffic")
                    timed.append((when, self.event(kind, app, when, self.next_id("v"))))
            if enabled["recording"]:
                for task in range(3):
                    start = self.month_time(1, 29, aligned=False)
                    task_id, fmt = f"rec-{app % 1000}-t{task}", r.choice(FORMATS)
                    steps = [("start", start)]
                    steps += [("heartbeat", start + timedelta(minutes=5 * (k + 1))) for k in range(r.randint(1, 3))]
                    if task != 2:  # the third task never stops (stale at close)
                        steps.append(("stop", start + timedelta(minutes=r.randint(25, 300))))
                    for action, when in steps:
                        doc = self.event(f"recording.{action}", app, when, self.next_id("v"))
                        doc.update(task_id=task_id, stream_id=f"live-{app % 1000}-{task}", format=fmt)
                        timed.append((when, doc))
        timed.sort(key=lambda pair: (pair[0], pair[1]["event_id"]))
        self.valid_docs = [doc for _, doc in timed]
        self.valid_ms = [_ms(when) for when, _ in timed]

    def after_for(self, ms: int) -> int:
        """How many valid events must come first so their clock is past ``ms`` + horizon."""
        need = ms + HORIZON_MS + 3_600_000
        clock = None
        for i, v in enumerate(self.valid_ms):
            clock = v if clock is None else max(clock, v)
            if clock >= need:
                return i + 1
        raise AssertionError("valid events never reach that clock")

    # -- hostile families ----------------------------------------------------------------------

    def schema_items(self, rounds: int) -> None:
        r = self.rng
        for round_ in range(rounds):
            for field, values in COMMON_MUTATIONS:
                for bad in values:
                    doc = self.base()
                    note = self._mutate(doc, field, bad)
                    self.add(TOPIC_OF_TYPE[_original_type(doc, note)], dumps(doc), "schema", note, doc=doc)
            for label, bad in _time_mutations(self.month_time()):
                doc = self.base(r.choice(TYPES))
                doc["time"] = bad
                self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "schema", f"{doc['type']}: time {label}: {bad!r}",
                         doc=doc)
            for group, mutations in KIND_MUTATIONS.items():
                for field, values in mutations:
                    for bad in values:
                        kind = r.choice(_kinds_of_group(group))
                        if group == "transcode.usage" and field in ("codec", "width", "height"):
                            doc = self._video_transcode()
                        else:
                            doc = self.base(kind)
                        note = self._mutate(doc, field, bad)
                        self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "schema", note, doc=doc)
            # cross-field: video without codec/size, by omission of all three
            doc = self._video_transcode()
            for f in ("codec", "width", "height"):
                doc.pop(f)
            self.add("usage.transcode", dumps(doc), "schema", f"round {round_}: video transcode without codec, "
                     "width and height", doc=doc)

    def _video_transcode(self) -> dict[str, Any]:
        while True:
            doc = self.base("transcode.usage")
            if doc["kind"] != "audio":
                return doc

    def _mutate(self, doc: dict[str, Any], field: str, bad: Any) -> str:
        kind = doc["type"]
        if bad is DROP:
            doc.pop(field, None)
            return f"{kind}: missing {field}"
        if field == "type" and isinstance(bad, str) and bad.startswith("@"):
            bad = {
                "@list": [kind], "@object": {"name": kind}, "@upper": kind.upper(), "@trailing-space": f"{kind} ",
                "@leading-space": f" {kind}", "@underscore": kind.replace(".", "_"), "@family": kind.split(".")[0],
                "@v2": f"{kind}.v2",
            }[bad]
        doc[field] = bad
        shown = f"Raw({bad.text[:12]}{'…' if len(bad.text) > 12 else ''})" if isinstance(bad, Raw) else repr(bad)
        return f"{kind}: {field} = {shown[:60]}"

    def malformed_items(self) -> None:
        r = self.rng
        for _ in range(90):  # truncated at a random byte (a proper prefix of an object is never JSON)
            doc = self.base()
            raw = dumps(doc)
            cut = r.randrange(1, len(raw))
            self.add(TOPIC_OF_TYPE[doc["type"]], raw[:cut], "malformed_json", f"truncated at {cut}/{len(raw)}",
                     doc=doc)
        non_json_first = [*range(0x80, 0x100), *range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20),
                          *b"#%&')*,/:;<=>?@\\^`|~"]
        for _ in range(40):
            garbage = bytes([r.choice(non_json_first)]) + _no_newlines(r.randbytes(r.randint(0, 300)))
            self.add(r.choice(USAGE_TOPICS), garbage, "malformed_json", f"binary garbage ({len(garbage)} bytes)")
        for bad in (b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80",
                    b"\xf8\x88\x80\x80\x80", b"\xc3"):
            doc = self.base()
            doc["event_id"] = "@@BAD@@"
            raw = dumps(doc).replace(b"@@BAD@@", b"ev" + bad + b"x")
            self.add(TOPIC_OF_TYPE[doc["type"]], raw, "malformed_json", f"invalid UTF-8 {bad!r} in event_id", doc=doc)
        for literal in ("NaN", "Infinity", "-Infinity", "nan", "inf", "+1", "01", ".5", "1.", "0x10", "1e", "--1",
                        "undefined"):
            doc = self.base(r.choice(("relay.traffic", "vod.traffic", "snapshot.count", "im.groups")))
            field = "bytes" if "bytes" in doc else "count"
            doc[field] = Raw(literal)
            self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "malformed_json", f"{field} = {literal} (not JSON)",
                     doc=doc)
        base = dumps(self.base("relay.traffic"))
        body = base[1:-1]
        structural = [
            ("single quotes", base.replace(b'"', b"'")),
            ("trailing comma", b"{" + body + b",}"),
            ("comment", b"{/* hi */" + body + b"}"),
            ("unquoted key", base.replace(b'"zone"', b"zone", 1)),
            ("missing colon", base.replace(b'"zone":', b'"zone" ', 1)),
            ("missing comma", base.replace(b',"zone"', b' "zone"', 1)),
            ("two objects", base + base),
            ("object then text", base + b" x"),
            ("object then ]", base + b"]"),
            ("unterminated string", base[:-1] + b',"x":"abc'),
            ("raw tab in a string", base.replace(b'"live-', b'"live\t-', 1)),
            ("raw NUL in a string", base.replace(b'"live-', b'"live\x00-', 1)),
            ("raw 0x1f in a string", base.replace(b'"live-', b'"live\x1f-', 1)),
            ("invalid escape \\x41", base.replace(b'"live-', b'"live\\x41-', 1)),
            ("short unicode escape", base.replace(b'"live-', b'"live\\u12-', 1)),
            ("lone high surrogate escape (not I-JSON, RFC 7493)", base.replace(b'"live-', b'"live\\ud800-', 1)),
            ("lone low surrogate escape (not I-JSON, RFC 7493)", base.replace(b'"live-', b'"live\\udc00-', 1)),
            ("only [", b"["),
            ("only {", b"{"),
            ("only }", b"}"),
            ("only :", b":"),
            ("null null", b"null null"),
            ("array trailing comma", b"[" + base + b",]"),
            ("unclosed array", b"[" + base),
            ("nesting 2000 deep (beyond any parser's limit, RFC 8259 §9)", b"[" * 2000 + b"]" * 2000),
            ("object nesting 1500 deep", b'{"a":' * 1500 + b"1" + b"}" * 1500),
            ("empty value (not a tombstone)", b""),
            ("whitespace only", b" \t "),
        ]
        for note, raw in structural:
            self.add("usage.relay", raw, "malformed_json", note, key=str(APP_A1).encode())

    def too_large_items(self) -> None:
        r = self.rng
        for target in (MAX_EVENT_BYTES + 1, MAX_EVENT_BYTES + 2, 70_000, 100_000, 500_000, 1_000_000):
            for _ in range(2):
                doc = self.base()
                self._pad(doc, target)
                self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "too_large", f"one event of {target} bytes",
                         doc=doc)
        doc = self.base("relay.traffic")
        doc["pad"] = "\u00e9" * 40_000  # 40,000 characters, 80,000 bytes
        self.add("usage.relay", dumps(doc), "too_large", "event of 40,000 characters but 80,000 bytes", doc=doc)
        doc = self.base("vod.storage")
        doc["pad"] = "@@ESC@@"
        raw = dumps(doc).replace(b"@@ESC@@", b"\\u0041" * 12_000)
        self.add("usage.vod", raw, "too_large", "event of 72,000 bytes that decodes to 12,000 characters", doc=doc)
        for _ in range(3):  # over 64 KiB and not JSON: the size is checked first
            doc = self.base()
            self._pad(doc, 80_000)
            raw = dumps(doc)[:-3]
            self.add(TOPIC_OF_TYPE[doc["type"]], raw, "too_large", "truncated event of 80,000 bytes", doc=doc)
        for n in (1001, 1001, 1500, 5000):  # batches of more than 1000 events
            topic = r.choice(USAGE_TOPICS)
            events = [self.base(r.choice(TYPES_OF_TOPIC[topic])) for _ in range(n)]
            self.add(topic, orjson.dumps(events), "too_large", f"batch of {n} events")
        self.add("usage.im", orjson.dumps([{}] * 1001), "too_large", "batch of 1001 empty objects")
        # messages over 1 MiB
        events = []
        for _ in range(700):
            doc = self.base("relay.traffic")
            self._pad(doc, 1600)
            events.append(doc)
        self.add("usage.relay", orjson.dumps(events), "too_large", "batch of 700 events, 1.1 MB")
        events = [self.base("im.groups") for _ in range(1000)]
        for doc in events:
            self._pad(doc, 1100)
        self.add("usage.im", orjson.dumps(events), "too_large", "batch of exactly 1000 events, 1.1 MB")
        garbage = b"\xff" + _no_newlines(r.randbytes(MAX_MESSAGE_BYTES + 10))
        self.add("usage.vod", garbage, "too_large", "1 MiB + 11 bytes of garbage (size first)")
        doc = self.base("snapshot.count")
        raw = dumps(doc) + b" " * (MAX_MESSAGE_BYTES + 1 - len(dumps(doc)))
        self.add("usage.snapshot", raw, "too_large", "valid event padded with spaces to 1 MiB + 1", doc=doc)

    def _pad(self, doc: dict[str, Any], total: int) -> None:
        doc["pad"] = ""
        doc["pad"] = "x" * (total - len(dumps(doc)))
        assert len(dumps(doc)) == total

    def future_items(self) -> None:
        r = self.rng
        for i in range(45):
            when = self.future_base + timedelta(days=r.randint(1, 3000), seconds=r.randrange(86_400))
            doc = self.base(when=when)
            if doc["type"] == "im.dau":
                doc["date"] = self.event("im.dau", APP_A1, self.month_time())["date"]  # a past date: time decides
            self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "future", f"{doc['type']} {doc['time']} (days ahead)",
                     doc=doc)
        for i in range(10):
            doc = self.base("im.dau")
            future_day = (self.future_base + timedelta(days=r.randint(2, 2000))).astimezone(BJ).date()
            doc["date"] = future_day.isoformat()
            self.add("usage.im", dumps(doc), "future", f"im.dau date {doc['date']} ahead, time in the month", doc=doc)
        doc = self.base("relay.traffic")
        doc["time"] = "2099-12-31T23:55:00+08:00"
        self.add("usage.relay", dumps(doc), "future", "last 5 minutes of the range", doc=doc)
        doc = self.base("im.dau")
        doc["date"] = "2099-12-31"
        self.add("usage.im", dumps(doc), "future", "im.dau date 2099-12-31 (last day of the range)", doc=doc)

    def unknown_app_items(self) -> None:
        r = self.rng
        for i in range(50):
            app = UNKNOWN_APPS[i % len(UNKNOWN_APPS)]
            doc = self.base(app=app)
            self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "unknown_app", f"{doc['type']} of sdk_app_id {app}",
                     doc=doc)
        del r

    def service_disabled_items(self) -> None:
        for i in range(50):
            kind = DISABLED_TYPES_C1[i % len(DISABLED_TYPES_C1)]
            doc = self.base(kind, APP_C1)
            self.add(TOPIC_OF_TYPE[kind], dumps(doc), "service_disabled", f"{kind} of {APP_C1} (service off)",
                     doc=doc)

    def too_late_items(self) -> None:
        r = self.rng
        old_start = datetime(2026, 4, 1, tzinfo=BJ)
        for i in range(45):
            when = old_start + timedelta(days=r.randrange(80), seconds=r.randrange(288) * 300)  # ≤ 2026-06-20
            doc = self.base(when=when)
            self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "too_late", f"{doc['type']} {doc['time']}", doc=doc,
                     after=self.after_for(_ms(when)))
        for text in ("2020-01-01", "2026-05-31", "2026-06-15", "2000-01-01", "2025-08-01"):
            doc = self.base("im.dau")
            doc["date"] = text
            day_ms = _ms(datetime.fromisoformat(text).replace(tzinfo=BJ))
            self.add("usage.im", dumps(doc), "too_late",
                     f"im.dau date {text} behind the horizon, time in the month (needs the month's clock)",
                     doc=doc, after=self.after_for(day_ms))
        doc = self.base("relay.traffic")
        doc["time"] = "2000-01-01T00:00:00+08:00"
        self.add("usage.relay", dumps(doc), "too_late", "first instant of the range (in range, so too_late)",
                 doc=doc, after=self.after_for(_ms(datetime(2000, 1, 1, tzinfo=BJ))))

    def wrong_topic_items(self) -> None:
        r = self.rng
        for i in range(60):
            doc = self.base()
            home = TOPIC_OF_TYPE[doc["type"]]
            topic = r.choice([t for t in USAGE_TOPICS if t != home])
            self.add(topic, dumps(doc), "wrong_topic", f"{doc['type']} sent to {topic}", doc=doc)
        ticks: list[tuple[str, dict[str, Any]]] = [
            ("clock.tick", {"type": "clock.tick", "time": "2026-08-10T00:00:00+08:00", "final": False}),
            ("final clock.tick with ms 10^17", {"type": "clock.tick", "final": True, "ms": 10**17}),
            ("final clock.tick, no time", {"type": "clock.tick", "final": True}),
            ("final clock.tick at the end of the range", {"type": "clock.tick", "time": "2099-12-31T23:59:59+08:00",
                                                          "final": True}),
            ("clock.tick with garbage time", {"type": "clock.tick", "time": "soon", "final": "yes"}),
            ("clock.tick dressed as an event", {"event_id": "tick-1", "sdk_app_id": APP_A1, "type": "clock.tick",
                                                "time": "2026-08-31T23:00:00+08:00", "final": True}),
        ]
        for i, (note, tick) in enumerate(ticks * 3):
            topic = USAGE_TOPICS[i % len(USAGE_TOPICS)]
            self.add(topic, orjson.dumps(tick), "wrong_topic", f"{note} on {topic}", key=b"clock")

    def duplicate_items(self) -> None:
        r = self.rng
        n = len(self.valid_docs)
        picks = [r.randrange(n) for _ in range(70)]
        for j, i in enumerate(picks):
            doc = dict(self.valid_docs[i])
            topic, after = TOPIC_OF_TYPE[doc["type"]], i + 1
            style = j % 7
            if style in (0, 1, 2):
                raw, note = dumps(doc), "byte-identical resend"
            elif style == 3:
                parts = [orjson.dumps(k) + b" : " + orjson.dumps(v) for k, v in reversed(doc.items())]
                raw, note = b"{ " + b" , ".join(parts) + b" }", "resend, keys reversed, spaces"
            elif style == 4:
                when = datetime.fromisoformat(doc["time"].replace("Z", "+00:00"))
                doc["time"] = _fmt(when, None)
                raw, note = dumps(doc), "resend, same instant written in UTC"
            elif style == 5:
                when = datetime.fromisoformat(doc["time"].replace("Z", "+00:00"))
                day = _bj(when).day
                other = r.choice([d for d in range(2, 30) if d != day])
                moved = when + timedelta(days=other - day)
                doc["time"] = _fmt(moved)
                raw, note = dumps(doc), f"resend with the time moved from day {day} to day {other}"
            else:
                eid = doc["event_id"]
                escaped = "".join(f"\\u{ord(c):04x}" for c in eid).encode()
                raw = dumps(doc).replace(b'"event_id":' + orjson.dumps(eid), b'"event_id":"' + escaped + b'"', 1)
                note = "resend with event_id written as unicode escapes"
            self.add(topic, raw, "duplicate", f"{note} of valid[{i}] ({doc['event_id']})", doc=doc, after=after)
        for i in (r.randrange(n) for _ in range(10)):  # another payload under a used (app, event_id)
            original = self.valid_docs[i]
            doc = self.base(original["type"], original["sdk_app_id"])
            doc["event_id"] = original["event_id"]
            self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "duplicate",
                     f"a different {doc['type']} reusing the event_id of valid[{i}]", doc=doc, after=i + 1)

    def tombstone_items(self) -> None:
        r = self.rng
        for i in range(40):
            topic = USAGE_TOPICS[i % len(USAGE_TOPICS)]
            key = r.choice([str(r.choice(FULL_APPS)).encode(), None, b"", b"\x00\xff", b"clock"])
            self.add(topic, None, "tombstone", f"tombstone on {topic}", key=key)

    def accepted_items(self) -> None:
        """Valid events that look hostile: they must be billed like any other."""
        r = self.rng
        cases: list[tuple[str, Callable[[dict[str, Any]], None]]] = []

        def ident(suffix: str) -> Callable[[dict[str, Any]], None]:
            return lambda d: d.update(event_id=d["event_id"] + suffix)

        cases += [
            ("NUL in event_id", ident("\u0000nul")),
            ("RTL override in event_id", ident("\u202egnp.exe")),
            ("bidi isolates in event_id", ident("\u2066x\u2069")),
            ("zero-width joiner and BOM in event_id", ident("\u200d\ufeff")),
            ("C1 control in event_id", ident("\u0085")),
            ("ESC sequence in event_id", ident("\u001b[31m")),
            ("event_id of 128 emoji", lambda d: d.update(event_id="\U0001f600" * 127 + chr(0x1F300 + r.randrange(90)))),
            ("event_id of 128 'é'", lambda d: d.update(event_id=d["event_id"][-8:] + "\u00e9" * 120)),
            ("event_id of exactly 128 ASCII", lambda d: d.update(event_id=(d["event_id"] + "-" * 128)[:128])),
            ("event_id with a trailing space", ident(" ")),
            ("event_id upper-cased", lambda d: d.update(event_id=d["event_id"].upper())),
            ("NUL and RTL in stream_id", lambda d: d.update(stream_id="live\u0000\u202e-1")),
            ("time with lower-case t and z (RFC 3339 §5.6)",
             lambda d: d.update(time=_fmt(self.month_time(2, 30), None).replace("T", "t").replace("Z", "z"))),
            ("time with a 9-digit fraction",
             lambda d: d.update(time=_fmt(self.month_time(2, 30)).replace("+08:00", ".123456789+08:00"))),
            ("time at -00:00", lambda d: d.update(time=_fmt(self.month_time(2, 30), None).replace("Z", "-00:00"))),
            ("time at +05:45", lambda d: d.update(time=_fmt(self.month_time(2, 30), timedelta(hours=5, minutes=45)))),
            ("time at -12:00", lambda d: d.update(time=_fmt(self.month_time(2, 30), timedelta(hours=-12)))),
            ("time at +14:00", lambda d: d.update(time=_fmt(self.month_time(2, 30), timedelta(hours=14)))),
            ("unknown extra fields", lambda d: d.update(Type="other", extra={"a": [1, None, "\u202e"]}, note=None)),
            ("4,000 extra fields", lambda d: d.update({f"k{i}": i for i in range(4000)})),
            ("extra field nested 300 deep", lambda d: d.update(deep=Raw("[" * 300 + "0" + "]" * 300))),
            ("extra field nested 1000 deep", lambda d: d.update(deep=Raw('{"a":' * 1000 + "1" + "}" * 1000))),
            ("extra field holding 2^64 - 1", lambda d: d.update(extra=2**64 - 1)),
            ("extra field holding 10^30 (a float to the parser)", lambda d: d.update(extra=Raw("1" + "0" * 30))),
        ]
        for note, change in cases:
            for _ in range(2):
                doc = self.base(r.choice(("relay.traffic", "snapshot.count", "vod.traffic", "im.groups")))
                change(doc)
                self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "accepted", note, doc=doc)
        # boundary values inside the rules
        for kind, field, value in (("relay.traffic", "bytes", 0), ("relay.traffic", "interval_s", 1),
                                   ("relay.traffic", "interval_s", 300), ("vod.traffic", "interval_s", 1),
                                   ("transcode.usage", "seconds", 0), ("snapshot.count", "count", 0),
                                   ("moderation.count", "count", 0), ("im.dau", "dau", 0),
                                   ("im.groups", "count", 0), ("vod.storage", "bytes", 0)):
            doc = self.base(kind)
            doc[field] = value
            self.add(TOPIC_OF_TYPE[kind], dumps(doc), "accepted", f"{kind}: {field} = {value} (boundary)", doc=doc)
        for kind in ("relay.traffic", "snapshot.count"):
            doc = self.base(kind)
            self._pad(doc, MAX_EVENT_BYTES)
            self.add(TOPIC_OF_TYPE[kind], dumps(doc), "accepted", "event of exactly 64 KiB", doc=doc)
        doc = self.base("relay.traffic")
        raw = dumps(doc).replace(b'"type":"relay.traffic"', b'"type":"\\u0072elay\\u002etraffic"', 1)
        raw = raw.replace(b'"zone":"', b'"\\u007aone":"', 1)
        self.add("usage.relay", raw, "accepted", "type and a field name written with unicode escapes", doc=doc)
        doc = self.base("relay.traffic")
        raw = dumps(doc).replace(b"/", b"\\/")
        self.add("usage.relay", raw.replace(b'"stream_id":"live', b'"stream_id":"li\\/ve', 1), "accepted",
                 "escaped solidus in stream_id", doc=doc)
        # ids differing only by Unicode normalisation are different ids (no normalisation)
        nfc = f"h-{self.seed}-caf\u00e9"
        for form in ("NFC", "NFD"):
            doc = self.base("relay.traffic", APP_A1)
            doc["event_id"] = unicodedata.normalize(form, nfc)
            self.add("usage.relay", dumps(doc), "accepted", f"event_id café in {form}", doc=doc)
        # dedupe is per sdk_app_id: a valid event's id under another app of the account is new
        for i in (r.randrange(len(self.valid_docs)) for _ in range(5)):
            original = self.valid_docs[i]
            other = {APP_A1: APP_A2, APP_A2: APP_A1, APP_B1: APP_A1, APP_C1: APP_A2}[original["sdk_app_id"]]
            doc = self.base(original["type"], other)
            doc["event_id"] = original["event_id"]
            self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "accepted",
                     f"event_id of valid[{i}] under sdk_app_id {other}", doc=doc)
        # a Cyrillic homoglyph of a valid event's id is another id
        original = self.valid_docs[r.randrange(len(self.valid_docs))]
        doc = self.base(original["type"], original["sdk_app_id"])
        doc["event_id"] = original["event_id"].replace("v", "\u0432", 1)
        self.add(TOPIC_OF_TYPE[doc["type"]], dumps(doc), "accepted", "homoglyph of a valid event_id", doc=doc)

    def batch_items(self, n: int) -> None:
        r = self.rng
        roles = ("accepted", "accepted", "accepted", "schema", "unknown_app", "service_disabled", "future",
                 "too_late", "dup_prev", "dup_valid", "non_object", "wrong_topic", "tick", "too_large")
        for _ in range(n):
            topic = r.choice(USAGE_TOPICS)
            kinds = TYPES_OF_TOPIC[topic]
            parts: list[bytes] = []
            expected: list[str] = []
            accepted: list[dict[str, Any]] = []
            after = 0
            for _ in range(r.randint(2, 9)):
                role = r.choice(roles)
                doc: Any
                if role == "service_disabled" and not set(kinds) & set(DISABLED_TYPES_C1):
                    role = "unknown_app"
                if role == "dup_prev" and not accepted:
                    role = "accepted"
                valid_here = [i for i, d in enumerate(self.valid_docs) if d["type"] in kinds]
                if role == "accepted":
                    doc = self.base(r.choice(kinds))
                    accepted.append(doc)
                elif role == "schema":
                    doc = self.base(r.choice(kinds))
                    doc.pop(r.choice(("event_id", "sdk_app_id", "time")))
                elif role == "unknown_app":
                    doc = self.base(r.choice(kinds), r.choice(UNKNOWN_APPS))
                elif role == "service_disabled":
                    doc = self.base(r.choice([k for k in kinds if k in DISABLED_TYPES_C1]), APP_C1)
                elif role == "future":
                    doc = self.base(r.choice(kinds), when=self.future_base + timedelta(days=r.randint(1, 900)))
                    if doc["type"] == "im.dau":
                        doc["date"] = "2026-08-15"
                elif role == "too_late":
                    when = datetime(2026, 5, 1, tzinfo=BJ) + timedelta(days=r.randrange(40))
                    doc = self.base(r.choice(kinds), when=when)
                    after = max(after, self.after_for(_ms(when)))
                elif role == "dup_prev":
                    doc = r.choice(accepted)
                    role = "duplicate"
                elif role == "dup_valid":
                    i = r.choice(valid_here)
                    doc, role = self.valid_docs[i], "duplicate"
                    after = max(after, i + 1)
                elif role == "non_object":
                    doc, role = r.choice((1, "an event", None, True, [], [self.base(r.choice(kinds))],
                                          dumps(self.base(r.choice(kinds))).decode())), "schema"
                elif role == "wrong_topic":
                    doc = self.base(r.choice([k for k in TYPES if TOPIC_OF_TYPE[k] != topic]))
                elif role == "tick":
                    doc = {"type": "clock.tick", "time": "2026-08-20T00:00:00+08:00", "final": r.random() < 0.5}
                    role = "wrong_topic"
                else:  # too_large
                    doc = self.base(r.choice(kinds))
                    self._pad(doc, r.choice((MAX_EVENT_BYTES + 1, 80_000)))
                parts.append(dumps(doc) if isinstance(doc, dict) else orjson.dumps(doc))
                expected.append(role)
            self.add(topic, b"[" + b",".join(parts) + b"]", tuple(expected), "batch: " + ", ".join(expected),
                     after=after)
        # hand-written batches
        self.add("usage.relay", b"[]", (), "empty batch: no event, nothing to quarantine")
        doc = self.base("relay.traffic")
        self.add("usage.relay", orjson.dumps([[doc, self.base("relay.traffic")]]), ("schema",),
                 "nested batch: an array is not an event")
        doc = self.base("relay.traffic")
        self.add("usage.relay", orjson.dumps([doc, doc]), ("accepted", "duplicate"), "one event twice in a batch")
        doc = self.base("snapshot.count")
        doc["deep"] = Raw("[" * 300 + "0" + "]" * 300)
        self.add("usage.snapshot", b"[" + dumps(doc) + b"]", ("accepted",),
                 "batch of one event with an extra field nested 300 deep")
        self.add("usage.snapshot", b"[" + b"[" * 300 + b"0" + b"]" * 300 + b"]", ("schema",),
                 "batch holding a list nested 300 deep")
        doc = self.base("im.groups")
        doc["deep"] = Raw('{"a":' * 600 + "1" + "}" * 600)
        self.add("usage.im", b"[" + dumps(doc) + b"," + dumps(self.base("im.groups")) + b"]",
                 ("accepted", "accepted"), "batch: an event with an object nested 600 deep, then a plain one")
        events = [self.base(r.choice(TYPES_OF_TOPIC["usage.vod"]), r.choice(UNKNOWN_APPS)) for _ in range(MAX_BATCH)]
        self.add("usage.vod", orjson.dumps(events), ("unknown_app",) * MAX_BATCH,
                 "batch of exactly 1000 events (the limit), all of unknown apps")
        relay = [i for i, d in enumerate(self.valid_docs) if d["type"] == "relay.traffic"]
        self.add("usage.relay", orjson.dumps([self.valid_docs[i] for i in relay]), ("duplicate",) * len(relay),
                 "every valid relay event again, in one batch", after=relay[-1] + 1)

    # -- configs ---------------------------------------------------------------------------------

    def hostile_apps(self, apps: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        base = apps[0]
        out: list[tuple[dict[str, Any], str]] = []

        def variant(expected: str, **changes: Any) -> None:
            doc = orjson.loads(orjson.dumps(base))
            for path, value in changes.items():
                target, keys = doc, path.split("__")
                for k in keys[:-1]:
                    target = target[int(k)] if isinstance(target, list) else target[k]
                last = keys[-1]
                if value is DROP:
                    target.pop(last, None)
                elif isinstance(target, list):
                    target[int(last)] = value
                else:
                    target[last] = value
            out.append((doc, expected))

        for bad in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "1999-12-31T23:59:59+08:00",
                    "2100-01-01T00:00:00+08:00", "2026-08-03 09:00:00+08:00", "2026-08-03T09:00:00", "2026-08-03",
                    "2026-W32-1T09:00:00+0800", 1785718800, DROP, None):
            variant("purchased_at", packages__0__purchased_at=bad)
        for bad in ("2100-01-01T00:00:00+08:00", "9999-12-31T23:59:59-12:00", "never", "2027-08-03T09:00+08:00", 0):
            variant("expires_at", packages__0__expires_at=bad)
        variant("expires_at", packages__0__expires_at="2026-08-01T00:00:00+08:00")  # before its purchase
        for bad in ("1E+999999", "1e400", "NaN", "sNaN", "-NaN", "Infinity", "-Infinity", "-1", "-0.01", "", "abc",
                    "28,00", "\u00a528", " 28", "\uff12\uff18", "0x1C", "1" + "0" * 40, 28.5, True, None, [28]):
            variant("contract_prices", contract_prices={"mainland": bad})
        variant("contract_prices", contract_prices={"mars": "1"})
        variant("contract_prices", contract_prices=["mainland", "28"])
        variant("contract_prices", contract_prices="28.00")
        for bad in ("tencent-1999", "tencent-2022 ", "TENCENT-2022", "", "tencent-2022\n", "../../etc/passwd", 2022,
                    True, ["tencent-2022"]):
            variant("catalog", catalog=bad)
        for bad in ("2026-08-01 00:00:00+08:00", "2026-08-01T00:00:00", "2026-08-01", "2026-W31-6T10:00:00+0800",
                    "2026-08-01T00:00+08:00", "2026-08-01T00:00:00+08", "2026-08-01T00:00:00+0800",
                    "9999-12-31T23:59:59-12:00", "1970-01-01T00:00:00Z", "2100-06-01T00:00:00Z", "yesterday",
                    1785513600, True, ["2026-08-01T00:00:00+08:00"]):
            variant("effective_from", effective_from=bad)
        for bad in ("acct\n1", "acct\r1", "acct\x1b[31m", "acct\u202egnp.exe", "acct\u2066x\u2069", "acct\x00",
                    "acct\x7f", "acct\u0085", "acct\u200e", "", "a" * 129, 42, None, ["acct-1"], DROP):
            variant("account_id", account_id=bad)
        for bad in (0, -5, 2**32, 2**64, True, "1400100001", 1400100001.0, None, DROP):
            variant("sdk_app_id", sdk_app_id=bad)
        for bad in ({"relay": "yes"}, {"relay": 1}, {"relay": None}, {"teleport": True}, ["relay"], "all"):
            variant("services", services=bad)
        for bad in ("bandwidth_monthly_99", "Traffic", 1, ["traffic"]):
            variant("relay_billing", relay_billing=bad)
        for bad in ("platinum", "PRO", 2, ["pro"]):
            variant("im_plan", im_plan=bad)
        for bad in ("gold", "", None, 1):
            variant("kind", packages__0__kind=bad)
        for bad in ("0", "-5", "NaN", "Infinity", "1E+999999", 1.5, "", "1 GB", None, True):
            variant("size", packages__0__size=bad)
        for bad in ("", None, 7, "p\u202e1", "p\n1", "p" * 129):
            variant("package_id", packages__0__package_id=bad)
        variant("packages", packages={"package_id": "p"})
        variant("packages", packages="pkg-1")
        variant("packages[0]", packages=["pkg-1"])
        return out

    # -- all -------------------------------------------------------------------------------------

    def build(self) -> Corpus:
        apps = self.apps()
        self.valid_events()
        self.schema_items(rounds=6)
        self.malformed_items()
        self.too_large_items()
        self.future_items()
        self.unknown_app_items()
        self.service_disabled_items()
        self.too_late_items()
        self.wrong_topic_items()
        self.duplicate_items()
        self.tombstone_items()
        self.accepted_items()
        self.batch_items(60)
        # a deterministic shuffle, so that no family comes in one block
        order = list(range(len(self.hostile)))
        self.rng.shuffle(order)
        hostile = [self.hostile[i] for i in order]
        clock = max(self.valid_ms)
        return Corpus(
            seed=self.seed,
            month=MONTH,
            apps=apps,
            valid=[orjson.dumps(doc) for doc in self.valid_docs],
            hostile=hostile,
            hostile_apps=self.hostile_apps(apps),
            clock_ms=clock,
            not_before_ms=clock - HORIZON_MS,
        )


def _no_newlines(data: bytes) -> bytes:
    return data.replace(b"\n", b"\x0b").replace(b"\r", b"\x0c")


def _original_type(doc: dict[str, Any], note: str) -> str:
    """The type an event had before its ``type`` was broken (the note starts with it)."""
    kind = doc.get("type")
    if isinstance(kind, str) and kind in TOPIC_OF_TYPE:
        return kind
    return note.split(":", 1)[0]


__all__ = ["Corpus", "Item", "Raw", "build_corpus", "dumps", "OUTCOMES", "REASONS", "TOPIC_OF_TYPE", "USAGE_TOPICS",
           "HORIZON_MS", "MONTH"]

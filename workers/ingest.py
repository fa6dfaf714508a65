"""Stage 0: bring every app's events together, whatever the producer did (SPEC §2, §3).

Upstream producers key usage messages as they like (by stream_id, task_id, round-robin,
several shippers at once) and send one event per message or JSON arrays. The stateful
stages need all of an app's events on one partition, so this first hop reads the usage
topics in bulk and forwards every event to the partition of its *home* on the internal
events topic (``<group>.events``), packed into JSON arrays per (lane, partition) as
``vasbill produce`` packs them. A lane is the usage topic an event came from; stage 1 keeps
one clock per lane and partition, as before.

The home of an app is the partition of its account (murmur2 of the account_id of the app's
first config version), the partition ``vasbill produce`` picks, so a produced replay passes
through in the same order, partition for partition, and stays exact revision for revision.
An app without a config goes to the partition of its sdk_app_id (stage 1 quarantines it).

The router is pure (no Kafka): ``workers.ingest_consumer`` feeds it records and sends what
it returns. Messages it can judge on its own (tombstones, malformed JSON, over-size) go to
quarantine or are counted here; everything else is validated by stage 1 with the one
validation ``vasbill rate`` uses.

Order and the clock: ``vasbill rate`` decides lateness by the clock before each event in
file order. Kafka keeps no order across partitions, so stage 0 is a *sequencer*: one
process reads every usage partition (``workers.ingest_consumer`` assigns them all to one
member of its group), merges the records by their Kafka timestamp (the producer's send
time: file order for a producer sending a file), and computes, event by event, the clock
``rate`` would have had (``topics.clockstamp.ReplayClock``: accepted, not duplicate,
largest event time). Each forwarded event carries it in the ``vasbill-clock`` header, as
``vasbill produce`` stamps its own messages (those keep their stamps). Stage 1 then
classifies every event as ``rate`` does, whatever the keys and partitions were.

Ticks: producers cannot move the clock (SPEC §2). The worker's clock agent writes a
fan-out marker ``{"type": "clock.fanout", "offset": N}`` onto every usage partition for the
tick at offset N of ``control.clock``. The first marker of N in merged order comes after
every event stored before the tick; the router looks the tick up in ``control.clock``
itself (``ticks``), applies it to the replay clock and forwards it, alone in its message,
to every partition of every lane, after the events before it. A marker that names no tick
is quarantined; one that repeats a tick changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from topics import clockstamp, configstamp
from topics.clockstamp import ReplayClock
from topics.names import USAGE_TOPIC_OF_TYPE
from topics.reasons import QuarantineReason, Rejection
from topics.validation import (
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    NESTED_TOO_DEEPLY,
    decode_json,
    item_text,
)

LANE_HEADER = "vasbill-lane"
FANOUT_TYPE = "clock.fanout"
#: on the worker's own ticks in the events topic: only those move a lane's clock
OWN_HEADER = "vasbill-own"
#: brackets in a single-event message past which it is forwarded alone, not packed (orjson
#: reads 1,024 levels; a pack adds one)
DEEP = 900
#: a packed message stays under one Kafka message (Kafka's default 1 MiB limits)
PACK_MAX_BYTES = 1_000_000

Headers = Iterable[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Tick:
    """A ``clock.tick`` read from ``control.clock``: epoch ms (None: at the watermark), final."""

    ms: int | None
    final: bool


@dataclass(frozen=True, slots=True)
class Forward:
    """One message for the internal events topic."""

    partition: int
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    events: int
    timestamp_ms: int | None = None  # the oldest source record's: latency is from the producer


@dataclass
class _Pack:
    lane: str
    parts: list[bytes] = field(default_factory=list)  # event texts (or array insides)
    events: int = 0
    size: int = 1
    clocks: list[int | None] = field(default_factory=list)
    stamped: bool = False
    final: int | None = None
    configs: dict[int, int] = field(default_factory=dict)
    timestamp_ms: int | None = None


@dataclass
class RouteStats:
    tombstones: int = 0
    forwarded: int = 0  # events
    ticks: int = 0  # genuine fan-out markers


def header_value(headers: Headers | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return bytes(value) if value is not None else None
    return None


def parse_tick(value: bytes | None) -> Tick | None:
    """A ``control.clock`` record as a tick, or None if it is not a usable one (bad JSON, not a
    ``clock.tick``, a time outside 2000-01-01 … 2099-12-31): such records are ignored."""
    from topics.timefmt import parse_time, to_ms

    try:
        doc = orjson.loads(value or b"")
        if type(doc) is not dict or doc.get("type") != "clock.tick":
            return None
        ms = doc.get("ms")
        if ms is None and doc.get("time") is not None:
            ms = to_ms(parse_time(doc["time"]))
        final = doc.get("final", False)
        if ms is not None and (type(ms) is not int or not TICK_MIN_MS <= ms < TICK_MAX_MS):
            return None
        if type(final) is not bool:
            return None
    except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        return None
    return Tick(ms, final)


TICK_MIN_MS = 946_656_000_000   # 2000-01-01T00:00:00+08:00
TICK_MAX_MS = 4_102_416_000_000  # 2100-01-01T00:00:00+08:00


def fanout_marker(offset: int) -> bytes:
    return orjson.dumps({"type": FANOUT_TYPE, "offset": offset})


def tick_message(tick: Tick) -> bytes:
    """A tick as stage 1 reads it, sent with the ``vasbill-own`` header (only those move a
    lane's clock; a ``clock.tick`` object from a producer is an event, ``wrong_topic``)."""
    return orjson.dumps({"type": "clock.tick", "ms": tick.ms, "final": tick.final})


class Router:
    """Routes records of the usage topics to the internal events topic.

    ``home(sdk_app_id)`` gives an app's partition; ``ticks(offset)`` the ``control.clock``
    tick at that offset, or None. ``add`` one record at a time, in each partition's order;
    ``flush`` returns the packed forwards (in an order that keeps every (lane, partition)'s
    events and ticks in the order they were added)."""

    def __init__(self, partitions: int, home: Callable[[int], int], ticks: Callable[[int], Tick | None],
                 clock: ReplayClock | None = None, lanes: Iterable[str] = (),
                 applied: set[int] | None = None) -> None:
        self.partitions = partitions
        self.clock = clock  # the replay clock of the merged stream (None: stamps from producers only)
        self.lanes = tuple(lanes)  # every lane a tick goes to
        self.applied = applied if applied is not None else set()  # control.clock offsets applied
        self.home = home
        self.ticks = ticks
        self.stats = RouteStats()
        self.quarantine: list[Rejection] = []
        self._pending: dict[tuple[str, int], _Pack] = {}
        self._out: list[Forward] = []

    # -- input -------------------------------------------------------------------------------

    def add(self, lane: str, source: int, value: bytes | None, headers: Headers | None = None,
            timestamp_ms: int | None = None) -> None:
        if value is None:
            self.stats.tombstones += 1
            return
        if len(value) > MAX_MESSAGE_BYTES:
            self._reject(QuarantineReason.TOO_LARGE, f"message of {len(value)} bytes", value)
            return
        alone = False
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            try:
                decoded = decode_json(value)  # numbers orjson cannot hold: valid JSON all the same
            except orjson.JSONDecodeError as exc:
                if len(value) > MAX_EVENT_BYTES:
                    self._reject(QuarantineReason.TOO_LARGE, f"payload of {len(value)} bytes", value)
                else:
                    self._reject(QuarantineReason.MALFORMED_JSON, str(exc), value)
                return
            alone = True  # packed with others, it would make their pack undecodable by orjson
        stamp = clockstamp.decode(header_value(headers, clockstamp.HEADER))
        configs = configstamp.decode(header_value(headers, configstamp.HEADER))
        if type(decoded) is list:
            if alone:
                if stamp is None:
                    stamp = self._stamp([self._before(lane, item) for item in decoded])
                else:
                    self._follow(stamp)
                self._alone(lane, self._target(decoded[0] if decoded else None, source), value,
                            stamp, configs, len(decoded), timestamp_ms)
                return
            self._array(lane, source, value, decoded, stamp, configs, timestamp_ms)
            return
        if len(value) > MAX_EVENT_BYTES:
            self._reject(QuarantineReason.TOO_LARGE, f"payload of {len(value)} bytes", value, decoded)
            return
        if type(decoded) is dict and decoded.get("type") == FANOUT_TYPE:
            self._marker(lane, source, value, decoded)
            return
        if stamp is None:
            stamp = self._stamp([self._before(lane, decoded)])
        else:
            self._follow(stamp)
        if alone or (value.count(b"{") + value.count(b"[") > DEEP):  # in a pack it could pass orjson's depth
            self._alone(lane, self._target(decoded, source), value, stamp, configs, 1, timestamp_ms)
            return
        clocks: list[int | None] = stamp[0][:1] if stamp else [None]
        self._append(lane, self._target(decoded, source), value.strip(), 1, clocks, stamp, configs, timestamp_ms)

    def _array(self, lane: str, source: int, value: bytes, items: list[Any],
               stamp: tuple[list[int | None], int | None] | None, configs: dict[int, int],
               timestamp_ms: int | None) -> None:
        if len(items) > MAX_BATCH_EVENTS:
            self._reject(QuarantineReason.TOO_LARGE, f"batch of {len(items)} events (max {MAX_BATCH_EVENTS})", value)
            return
        if not items:
            return
        header = stamp
        final = self.clock.final_ms if self.clock is not None else None
        targets = [self._target(item, source) for item in items]
        if header is not None:
            self._follow(header)
        if all(t == targets[0] for t in targets):  # the common case: keep the bytes (an event over
            # 64 KiB in it is rejected by stage 1's ``split_message``, as ``rate`` rejects it)
            if header is None and self.clock is not None:
                stamp = ([self._before(lane, item) for item in items], final)
            clocks = list(stamp[0]) if stamp else []
            clocks = (clocks + [None] * len(items))[:len(items)]
            inside = value.strip()[1:-1].strip()
            self._append(lane, targets[0], inside, len(items), clocks, stamp, configs, timestamp_ms)
            return
        given = (list(header[0]) + [None] * len(items))[:len(items)] if header else [None] * len(items)
        for item, target, clock in zip(items, targets, given, strict=True):
            written = item_text(item)
            if written is None:
                self._reject(QuarantineReason.SCHEMA, "an event nested too deeply to be written out",
                             NESTED_TOO_DEEPLY.encode(), item)
                continue
            text = written.encode()
            if len(written) > MAX_EVENT_BYTES:  # measured as ``split_message`` measures it
                self._reject(QuarantineReason.TOO_LARGE, "event over 64 KiB", text, item)
                continue
            if header is not None:
                self._append(lane, target, text, 1, [clock], header, configs, timestamp_ms)
            else:
                before = self._before(lane, item)
                self._append(lane, target, text, 1, [before], self._stamp([before]), configs, timestamp_ms)

    def _alone(self, lane: str, target: int, value: bytes, stamp: tuple[list[int | None], int | None] | None,
               configs: dict[int, int], events: int, timestamp_ms: int | None) -> None:
        """Forward a message as it is, in its own message (after what is pending there)."""
        pack = self._pending.pop((lane, target), None)
        if pack is not None:
            self._emit(target, pack)
        headers: list[tuple[str, bytes]] = [(LANE_HEADER, lane.encode())]
        if stamp is not None:
            headers.append((clockstamp.HEADER, clockstamp.encode(list(stamp[0]), stamp[1])))
        if configs:
            headers.append((configstamp.HEADER, configstamp.encode(configs)))
        self._out.append(Forward(target, value, tuple(headers), events, timestamp_ms))
        self.stats.forwarded += events

    def _follow(self, stamp: tuple[list[int | None], int | None]) -> None:
        """A message stamped by ``vasbill produce`` carries rate's clock before each of its
        events: the replay clock follows it (not event by event: a producer's own stamps
        are exact, and following them costs nothing)."""
        if self.clock is None:
            return
        known = [c for c in stamp[0] if type(c) is int and TICK_MIN_MS <= c < TICK_MAX_MS]
        if known:
            self.clock.advance(max(known))
        final = stamp[1]
        if type(final) is int and TICK_MIN_MS <= final < TICK_MAX_MS:
            self.clock.finalise(final)

    def _before(self, lane: str, item: Any) -> int | None:
        """The replay clock before ``item``, then past it: only events of this lane count
        (a tick or another topic's event here is quarantined by stage 1, ``wrong_topic``)."""
        if self.clock is None:
            return None
        kind = item.get("type") if type(item) is dict else None
        if type(kind) is str and kind != "clock.tick" and USAGE_TOPIC_OF_TYPE.get(kind, lane) != lane:
            return self.clock.clock_ms
        if kind == "clock.tick":
            return self.clock.clock_ms
        return self.clock.event(item)

    def _stamp(self, clocks: list[int | None]) -> tuple[list[int | None], int | None] | None:
        if self.clock is None:
            return None
        return clocks, self.clock.final_ms

    def _target(self, item: Any, source: int) -> int:
        app = item.get("sdk_app_id") if type(item) is dict else None
        if type(app) is int and 1 <= app <= 2**32 - 1:
            return self.home(app)
        return source % self.partitions  # stage 1 quarantines it (schema)

    def _marker(self, lane: str, source: int, value: bytes, doc: dict[str, Any]) -> None:
        offset = doc.get("offset")
        tick = self.ticks(offset) if type(offset) is int and offset >= 0 else None
        if tick is None or type(offset) is not int:
            self._reject(QuarantineReason.SCHEMA, f"clock fan-out marker names no clock.tick of control.clock "
                                                  f"(offset {offset!r}): only the worker fans ticks out", value, doc)
            return
        self.stats.ticks += 1
        if offset in self.applied:
            return  # this tick went out at its first marker
        self.applied.add(offset)
        if self.clock is not None:
            if tick.ms is not None:
                self.clock.advance(tick.ms)
            if tick.final:
                self.clock.finalise(tick.ms)
        for (_lane, target), pack in self._pending.items():  # the events before the tick go first
            self._emit(target, pack)
        self._pending.clear()
        message = tick_message(tick)
        for each in self.lanes or (lane,):
            for target in range(self.partitions):
                self._out.append(Forward(target, message, ((LANE_HEADER, each.encode()), (OWN_HEADER, b"tick")), 0))

    def _append(self, lane: str, target: int, text: bytes, events: int, clocks: list[int | None],
                stamp: tuple[list[int | None], int | None] | None, configs: dict[int, int],
                timestamp_ms: int | None) -> None:
        key = (lane, target)
        pack = self._pending.get(key)
        final = stamp[1] if stamp else None
        if pack is not None and (pack.events + events > MAX_BATCH_EVENTS or pack.size + 1 + len(text) > PACK_MAX_BYTES
                                 or (stamp is not None and pack.stamped and pack.final != final)):
            self._emit(target, self._pending.pop(key))
            pack = None
        if pack is None:
            pack = self._pending[key] = _Pack(lane)
        pack.parts.append(text)
        pack.events += events
        pack.size += len(text) + 1
        pack.clocks += clocks
        if stamp is not None:
            pack.stamped, pack.final = True, final
        for partition, offset in configs.items():
            if offset > pack.configs.get(partition, -1):
                pack.configs[partition] = offset
        if timestamp_ms is not None and (pack.timestamp_ms is None or timestamp_ms < pack.timestamp_ms):
            pack.timestamp_ms = timestamp_ms
        self.stats.forwarded += events

    def _reject(self, reason: QuarantineReason, detail: str, raw: bytes, obj: Any = None) -> None:
        app = obj.get("sdk_app_id") if type(obj) is dict else None
        event_id = obj.get("event_id") if type(obj) is dict else None
        self.quarantine.append(Rejection(
            reason, detail, raw.decode("utf-8", errors="replace"),
            app if type(app) is int and 1 <= app <= 2**32 - 1 else None,
            event_id if type(event_id) is str and len(event_id) <= 128 else None))

    # -- output ------------------------------------------------------------------------------

    def _emit(self, target: int, pack: _Pack) -> None:
        headers: list[tuple[str, bytes]] = [(LANE_HEADER, pack.lane.encode())]
        if pack.stamped:
            headers.append((clockstamp.HEADER, clockstamp.encode(pack.clocks, pack.final)))
        if pack.configs:
            headers.append((configstamp.HEADER, configstamp.encode(pack.configs)))
        value = b"[" + b",".join(pack.parts) + b"]"
        self._out.append(Forward(target, value, tuple(headers), pack.events, pack.timestamp_ms))

    def flush(self) -> tuple[list[Forward], list[Rejection]]:
        """Everything routed since the last flush: the forwards and the rejections."""
        for (_lane, target), pack in self._pending.items():
            self._emit(target, pack)
        self._pending.clear()
        out, self._out = self._out, []
        rejected, self.quarantine = self.quarantine, []
        return out, rejected


#: a quarantine record stays under one Kafka message (1 MiB by default, with room to spare)
QUARANTINE_MAX_BYTES = 900_000


def quarantine_value(rejection: Rejection) -> bytes:
    """A rejection as its ``usage.quarantine`` message. A payload too large for one Kafka
    message (a ``too_large`` message of over a MiB) is cut to its first 256 KiB, and the
    record says so (``payload_truncated``, ``payload_chars``): the reason and the rest of
    the record still arrive."""
    from topics import codec

    doc = rejection.to_dict()
    value = codec.dumps(doc)
    if len(value) <= QUARANTINE_MAX_BYTES:
        return value
    payload = str(doc["payload"])
    doc.update(payload=payload[:262_144], payload_truncated=True, payload_chars=len(payload))
    return codec.dumps(doc)


def account_home(partitions: int, first_account: Callable[[int], str | None]) -> Callable[[int], int]:
    """``home`` for ``Router``: murmur2 of the account of the app's first config version, as
    ``vasbill produce --partition-by account`` picks; of the sdk_app_id for an unknown app."""
    from workers.kafka_io import partition_of

    cache: dict[int, int] = {}

    def home(app: int) -> int:
        found = cache.get(app)
        if found is None:
            account = first_account(app)
            found = partition_of((account if account is not None else str(app)).encode(), partitions)
            if account is not None:
                cache[app] = found  # an unknown app may get a config later: not cached
        return found

    return home


"""The worker's stateful stages as plain classes over a key-value store (no Faust in here).

Stage 1 runs per partition of the internal events topic, one ``Stage1`` per lane (the usage
topic an event came from; ``Lanes`` runs a batch lane by lane), after stage 0
(``workers.ingest``) brought every app's events to its home partition: validate, dedupe,
fold into per-app meter states, and when the lane's clock passes a period's close time send
that app-period's summary to stage 2. Stage 2 runs per partition of the internal
``vasbill.summaries`` topic (keyed by account_id): it keeps the summaries, closes a rating
unit once every stage-1 partition of its usage topic has passed the close time, and rates
it with ``rating.revisions.rate_unit``, the code ``vasbill rate`` uses.

Clock (``--clock event``): a lane's clock on a partition is the largest of the replay
stamps its events carry (``vasbill produce``'s, or stage 0's: the clock ``rate`` had before
each event), the event times it accepted, and the worker's own ticks. Each partition tells stage 2 its clock
when the clock crosses a close boundary; stage 2 closes a unit when the smallest clock over
the partitions of the unit's topic passes the close time, so where a period closes never
depends on how partitions are assigned to workers. With ``--clock wall`` only ticks (sent
by the leader's timer) move the clock. A final tick closes everything that began by then.

Exact across crashes (at-least-once delivery):
- a batch's table writes are all or nothing (``workers.journal``);
- each partition's state holds the offset of the last input message it applied, so the
  messages Kafka delivers again after a crash or a rebalance (applied, not yet committed)
  are skipped, not applied a second time;
- a stage-1 batch redone after a crash before its state write sends its summaries again:
  each is numbered with the state it comes from, and stage 2 drops a number it has taken;
- dedupe ids (``workers.dedupe_ids``, one set per app) catch events sent twice, by
  producers or by stage 0 after a crash.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from rating.account import AccountView
from rating.biller import BillingSettings
from rating.meters import METER_OF_TYPE, METERS
from rating.packages import PackageLedger
from rating.periods import Period, next_close_boundary, prune_before
from rating.pricers import UNIT_ORDER, UNITS, units_of
from rating.revisions import rate_unit
from topics import clockstamp, codec
from topics.appconfig import PACKAGE_KINDS, AppDirectory
from topics.charges import Charge, decimal_text
from topics.names import USAGE_TOPIC_OF_TYPE
from topics.reasons import QuarantineReason, Rejection
from topics.timefmt import format_time, to_ms
from topics.validation import check_event, split_message
from workers import dedupe_ids
from workers.ingest import TICK_MAX_MS, TICK_MIN_MS
from workers.kv import BatchKV

AT_WATERMARK = -1  # a final tick without a time
TOPIC_OF_FAMILY = {METER_OF_TYPE[t].family: topic for t, topic in USAGE_TOPIC_OF_TYPE.items()}


def _key(*parts: object) -> str:
    return orjson.dumps(parts).decode()


Message = TypeVar("Message", bound=tuple[Any, ...])


def fresh(messages: list[Message], applied: int | None, out: Stage1Output | Stage2Output) -> list[Message]:
    """The messages (offset first) past ``applied``, the offset the partition's state was
    saved with; the rest were applied with that state and are counted as re-delivered."""
    if applied is None or not messages or messages[0][0] > applied:
        return messages
    kept = [m for m in messages if m[0] > applied]
    out.redelivered += len(messages) - len(kept)
    return kept


@dataclass
class Stage1Output:
    """What one batch produced: messages to send, and counts for the metrics."""

    quarantine: list[Rejection] = field(default_factory=list)
    summaries: list[tuple[str, bytes]] = field(default_factory=list)  # (account, message)
    watermark: bytes | None = None  # to every stage-2 partition
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, outcome)
    partition: int = 0
    touched_open: set[str] = field(default_factory=set)
    late_events: int = 0
    stale_tasks: int = 0
    clock_ms: int | None = None
    redelivered: int = 0  # messages at or below the offset the state already holds


class Stage1:
    """Validate, dedupe and fold the events of one usage topic partition."""

    def __init__(
        self,
        topic: str,
        apps: Callable[[], AppDirectory],
        settings: BillingSettings,
        *,
        clock: str = "event",
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        provisional_every_s: float | None = None,
        internal: bool = False,
        home: Callable[[int], int] | None = None,
        lanes: tuple[str, ...] = (),
    ) -> None:
        self.topic = topic
        self.internal = internal  # behind stage 0: reads the internal events topic, lane ``topic``
        self.home = home  # the partition stage 0 routes an app to
        self.lanes = lanes or (topic,)  # every lane sharing this stage's table (for dedupe pruning)
        self.at: tuple[int, int] | None = None  # (offset, index) of the event being processed
        self.failures: dict[tuple[int, int], str] = {}  # set by the guard: events to quarantine
        self.apps = apps
        self.settings = settings
        self.event_clock = clock == "event"
        self.now = now
        self.provisional_every_s = provisional_every_s
        self._dirty: dict[int, set[str]] = {}  # partition -> open app-periods changed since sent
        self._sent_at: dict[int, float] = {}
        self._keys: dict[tuple[Any, ...], str] = {}
        self.grace_day_ms = settings.grace_day_s * 1000
        self.grace_month_ms = settings.grace_month_s * 1000
        self.horizon_ms = settings.horizon_s * 1000

    def process(self, partition: int, messages: list[tuple[Any, ...]], kv: BatchKV) -> Stage1Output:
        """A batch of (offset, message value, ``vasbill-clock`` header) of one partition, in
        order. Messages up to the offset saved with the state were applied already: the
        state was written, their offsets not yet committed (``fresh``). Events named in
        ``failures`` (by the worker's guard, after they raised) are quarantined as
        ``unprocessable`` instead."""
        out = Stage1Output(partition=partition)
        self.at = None
        clock_key = _key("clock", self.topic, partition)
        clock = kv.get(clock_key) or {"wm": None, "tick": None, "final": None, "sent": None, "fin_sent": None}
        messages = fresh(messages, clock.get("off"), out)
        if not messages:
            return out
        clock["off"] = messages[-1][0]
        open_key = _key("open", self.topic, partition)
        opened: dict[str, list[Any]] = kv.get(open_key) or {}
        apps = self.apps()
        now = to_ms(self.now())
        internal = self.internal
        for message in messages:
            offset, raw, header = message[0], message[1], message[2]
            stamp = clockstamp.decode(header) if self.event_clock else None
            # stage 0 marks the worker's own ticks (``vasbill-own``); a "clock.tick" without
            # the mark came from a producer and is quarantined (``wrong_topic``)
            own = internal and len(message) > 3 and message[3] is True
            self.at = (offset, -1)  # the message as a whole, until its events are known
            if self.failures and self.at in self.failures:
                self._reject(_unprocessable(self.failures[self.at], raw.decode("utf-8", errors="replace"), None), out)
                continue
            for i, part in enumerate(split_message(raw)):
                self.at = (offset, i)
                if stamp is not None:  # the replay clock before this event, as ``rate`` saw it
                    self._stamped(stamp, i, clock)
                    self._close_due(clock, opened, kv, out)
                if isinstance(part, Rejection):
                    self._reject(part, out)
                    continue
                text, obj = part
                if self.failures and (offset, i) in self.failures:
                    self._reject(_unprocessable(self.failures[(offset, i)], text, obj), out)
                    continue
                if own and type(obj) is dict and obj.get("type") == "clock.tick":
                    self._tick(obj, clock)  # the worker's own tick, forwarded by stage 0
                    self._close_due(clock, opened, kv, out)
                    continue
                if not internal and isinstance(obj, Mapping) and obj.get("type") == "clock.tick":
                    self._tick(obj, clock)
                    self._close_due(clock, opened, kv, out)
                    continue
                current = self._clock(clock)
                not_before = None if current is None else current - self.horizon_ms
                outcome = check_event(text, obj, now, apps=apps, not_before_ms=not_before,
                                      topic=self.topic if internal else None)
                if isinstance(outcome, Rejection):
                    self._reject(outcome, out)
                    continue
                if self.home is not None and self.home(outcome.sdk_app_id) != partition:
                    # routed by sdk_app_id before its config was read: billing it here would
                    # split the app's state between two partitions
                    self._reject(Rejection(QuarantineReason.UNKNOWN_APP, "no config for sdk_app_id when the "
                                           "event was routed (its config arrived later)", text,
                                           outcome.sdk_app_id, outcome.event_id), out)
                    continue
                if not self._first_time(outcome, kv, out):
                    continue  # a duplicate changes nothing, not even the clock
                for unit in self._fold(outcome, apps, clock, opened, kv, out):
                    self._send_summary(unit, kv, out, late=True, w=current)
                if self.event_clock and (clock["wm"] is None or outcome.ms > clock["wm"]):
                    clock["wm"] = outcome.ms
                    self._close_due(clock, opened, kv, out)
        self.at = None
        self._provisional(partition, opened, kv, out)
        out.watermark = self._watermark(clock, partition)
        out.clock_ms = self._clock(clock)
        if out.watermark is not None and out.clock_ms is not None:
            self._prune(partition, prune_before(out.clock_ms, self.horizon_ms), kv)
        kv.put(clock_key, clock)
        self._prune_ids(partition, clock_key, clock, kv)
        kv.put(open_key, opened)
        return out

    def _provisional(self, partition: int, opened: dict[str, list[Any]], kv: BatchKV, out: Stage1Output) -> None:
        """Month-to-date: summaries of open app-periods that changed, at most every few
        seconds (wall time). Stage 2 keeps them apart and never bills them."""
        if self.provisional_every_s is None:
            return
        dirty = self._dirty.setdefault(partition, set())
        dirty.update(out.touched_open)
        now = time.monotonic()
        if not dirty or now - self._sent_at.get(partition, 0.0) < self.provisional_every_s:
            return
        self._sent_at[partition] = now
        for unit in sorted(dirty):
            if unit in opened:
                self._send_summary(unit, kv, out, late=False, skey=opened[unit][2], provisional=True)
        dirty.clear()

    def _stamped(self, stamp: tuple[list[int | None], int | None], index: int, clock: dict[str, Any]) -> None:
        clocks, final = stamp
        before = clocks[index] if index < len(clocks) else None
        if not _in_range(before):
            before = None
        if final is not None and not _in_range(final):
            final = None
        if before is not None:
            clock["tick"] = before if clock["tick"] is None else max(clock["tick"], before)
        if final is not None:
            clock["final"] = final if clock["final"] in (None, AT_WATERMARK) else max(clock["final"], final)

    # -- clock -------------------------------------------------------------------------------

    def _clock(self, clock: dict[str, Any]) -> int | None:
        tick: int | None = clock["tick"]
        wm: int | None = clock["wm"] if self.event_clock else None
        if wm is None or (tick is not None and tick >= wm):
            return tick
        return wm

    def _tick(self, obj: Mapping[str, Any], clock: dict[str, Any]) -> None:
        """A fanned-out ``clock.tick``: ``ms`` (or null) and ``final``. A final tick without a
        time means "at the watermark": recorded as AT_WATERMARK, resolved by stage 2 to the
        largest clock of every partition, so it closes what ``vasbill rate`` closes at the end."""
        when = obj.get("ms")
        if _in_range(when):
            clock["tick"] = when if clock["tick"] is None else max(clock["tick"], when)
        if obj.get("final"):
            until = when if _in_range(when) else AT_WATERMARK
            clock["final"] = until if clock["final"] in (None, AT_WATERMARK) else max(clock["final"], until)

    def _is_closed(self, clock: dict[str, Any], close_ms: int, start_ms: int) -> bool:
        current = self._clock(clock)
        if current is not None and current >= close_ms:
            return True
        final = clock["final"]
        if final == AT_WATERMARK:
            final = current
        return final is not None and final >= start_ms

    def _watermark(self, clock: dict[str, Any], partition: int) -> bytes | None:
        """A message for stage 2 when the clock crossed a close boundary or a final tick."""
        current = self._clock(clock)
        crossed = current is not None and (
            clock["sent"] is None
            or current >= next_close_boundary(clock["sent"], self.grace_day_ms, self.grace_month_ms)
        )
        final_moved = clock["final"] is not None and clock["final"] != clock["fin_sent"]
        if not (crossed or final_moved):
            return None
        clock["sent"], clock["fin_sent"] = current, clock["final"]
        return orjson.dumps(
            {"k": "wm", "topic": self.topic, "p": partition, "clock": current, "final": clock["final"]}
        )

    # -- folding and closing -----------------------------------------------------------------

    def _fold(self, event: Any, apps: AppDirectory, clock: dict[str, Any], opened: dict[str, list[Any]],
              kv: BatchKV, out: Stage1Output) -> list[str]:
        """Fold one event; returns the closed app-periods it changed (late: resend each at
        once, so every late event makes its own revision, as in ``vasbill rate``)."""
        config = apps.at(event.sdk_app_id, event.ms)
        assert config is not None
        account = config.account_id
        meter = METER_OF_TYPE[event.type]
        period = meter.period_of(event)
        skey = self._memo(("st", meter.family, period.key if period else "", account, event.sdk_app_id))
        value = kv.get(skey) or {"state": meter.initial()}
        late: list[str] = []
        for touched in meter.fold(value["state"], event):
            unit = self._memo((meter.family, touched.kind, touched.key, account, event.sdk_app_id))
            if unit in opened:
                out.touched_open.add(unit)
                continue
            close_ms = self.settings.close_ms(touched)
            if self._is_closed(clock, close_ms, touched.start_ms):
                late.append(unit)
            else:
                opened[unit] = [close_ms, touched.start_ms, skey]
                out.touched_open.add(unit)
                if clock.get("next") is None or close_ms < clock["next"]:
                    clock["next"] = close_ms
        kv.put(skey, value)
        out.events[(event.type, "accepted")] += 1
        out.late_events += bool(late)
        return late

    def _first_time(self, event: Any, kv: BatchKV, out: Stage1Output) -> bool:
        """Exact dedupe by (sdk_app_id, event_id) over the lateness horizon, whatever the
        event's type, time or period (SPEC §6), as ``vasbill rate`` does: one id set per app,
        shared by the lanes of its partition (``workers.dedupe_ids`` keeps it in shards
        when it grows). False for a duplicate, counted."""
        dkey = self._memo(("dd", event.sdk_app_id))
        value = kv.get(dkey)
        if value is None:
            value = {"ids": {}}
            self._register_app(kv, out.partition, event.sdk_app_id)
        if dedupe_ids.seen(kv, dkey, value, event.event_id):
            out.events[(event.type, "duplicate")] += 1
            return False
        dedupe_ids.add(kv, dkey, value, event.event_id, event.ms)
        kv.put(dkey, value)
        return True

    def _register_app(self, kv: BatchKV, partition: int, app: int) -> None:
        key = _key("dd-apps", partition)
        book = kv.get(key) or {"apps": [], "pruned": None}
        if app not in book["apps"]:
            book["apps"].append(app)
            kv.put(key, book)

    def _prune_ids(self, partition: int, clock_key: str, clock: dict[str, Any], kv: BatchKV) -> None:
        """Once a day of clock: forget dedupe ids past the horizon of every lane of the
        partition (the slowest lane's clock decides: a lane behind may still accept them)."""
        clocks = []
        for lane in self.lanes:
            found = clock if lane == self.topic else kv.get(_key("clock", lane, partition))
            current = self._clock(found) if found else None
            if current is not None:
                clocks.append(current)
        if not clocks:
            return
        before = prune_before(min(clocks), self.horizon_ms)
        key = _key("dd-apps", partition)
        book = kv.get(key)
        if not book or (book["pruned"] is not None and before - book["pruned"] < 86_400_000):
            return
        for app in book["apps"]:
            dkey = _key("dd", app)
            value = kv.get(dkey)
            if value is not None:
                dedupe_ids.prune(kv, dkey, value, before)
                kv.put(dkey, value)
        book["pruned"] = before
        kv.put(key, book)

    def _memo(self, parts: tuple[Any, ...]) -> str:
        """``_key`` of parts met before: two keys per event, mostly the same few."""
        found = self._keys.get(parts)
        if found is None:
            if len(self._keys) >= 65_536:
                self._keys.clear()
            found = self._keys[parts] = _key(*parts)
        return found

    def _close_due(self, clock: dict[str, Any], opened: dict[str, list[Any]], kv: BatchKV,
                   out: Stage1Output) -> None:
        current = self._clock(clock)
        soonest = clock.get("next")
        if clock["final"] is None and (current is None or (soonest is not None and current < soonest)):
            return  # nothing can be due before the earliest close time
        due = [u for u, (close_ms, start_ms, _) in opened.items() if self._is_closed(clock, close_ms, start_ms)]
        clock["next"] = min((e[0] for u, e in opened.items() if u not in due), default=None)
        if not due:
            return
        closed_key = _key("closed", self.topic, out.partition)
        closed = kv.get(closed_key) or {}
        for unit in sorted(due, key=lambda u: opened[u][0]):
            skey = opened.pop(unit)[2]
            self._send_summary(unit, kv, out, late=False, skey=skey)
            closed[unit] = skey
        kv.put(closed_key, closed)

    def _prune(self, partition: int, before_ms: int, kv: BatchKV) -> None:
        """Forget app-periods that ended before the lateness horizon: no accepted event can
        reach them any more (older events are ``too_late``)."""
        closed_key = _key("closed", self.topic, partition)
        closed: dict[str, str] = kv.get(closed_key) or {}
        gone = []
        for unit, skey in closed.items():
            family, pkind, pkey, _account, _app = orjson.loads(unit)
            if Period(pkind, pkey).end_ms >= before_ms:
                continue
            gone.append(unit)
            meter = METERS[family]
            value = kv.get(skey)
            if not meter.registry:
                dedupe_ids.drop(kv, skey, value)  # ids kept in the state by earlier versions
                kv.delete(skey)
                continue
            if value:
                meter.prune(value["state"], before_ms)
                kv.put(skey, value)
        if gone:
            for unit in gone:
                del closed[unit]
            kv.put(closed_key, closed)

    def _send_summary(self, unit: str, kv: BatchKV, out: Stage1Output, *, late: bool,
                      skey: str | None = None, provisional: bool = False, w: int | None = None) -> None:
        family, pkind, pkey, account, app = orjson.loads(unit)
        meter = METERS[family]
        period = Period(pkind, pkey)
        skey = skey or _key("st", family, "" if meter.registry else pkey, account, app)
        value = kv.get(skey)
        summary = meter.summary(value["state"], period) if value else meter.summary(meter.initial(), period)
        if family == "recording" and not late and not provisional:
            out.stale_tasks += summary.get("stale", 0)
        message = {"k": "prov" if provisional else "sum", "f": family, "p": [pkind, pkey], "a": account,
                   "app": app, "s": summary, "late": late, "w": w}
        if value and not provisional:
            # Numbered with the state (same table value): a batch redone after a crash sends
            # its summaries again with the same numbers, and stage 2 drops them. A copy of a
            # close summary must not come after the late one that revised it.
            value["n"] = value.get("n", 0) + 1
            kv.put(skey, value)
            message["src"], message["n"] = skey, value["n"]
        out.summaries.append((account, codec.dumps(message)))  # sums may pass 64 bits

    def _reject(self, rejection: Rejection, out: Stage1Output) -> None:
        out.quarantine.append(rejection)


class Lanes:
    """Stage 1 of every lane on one internal events partition: a partition's batch is run lane
    by lane (consecutive messages of one lane together) over one store view, in offset
    order. A lane is the usage topic an event came from (stage 0's ``vasbill-lane`` header);
    each has its own ``Stage1`` and so its own clock per partition."""

    def __init__(self, stages: Mapping[str, Stage1]) -> None:
        self.stages = stages
        self.current: Stage1 | None = None
        self.unknown_lane = 0  # messages without a known lane (not written by stage 0)

    @property
    def at(self) -> tuple[int, int] | None:
        return self.current.at if self.current is not None else None

    def process(self, partition: int, messages: list[tuple[int, bytes, bytes | None, bytes | None, bool]],
                kv: BatchKV) -> list[Stage1Output]:
        """Messages: (offset, value, ``vasbill-clock`` header, lane header, own tick?)."""
        outs: list[Stage1Output] = []
        self.current = None
        run: list[tuple[int, bytes, bytes | None, bool]] = []
        lane: bytes | None = None
        for offset, value, clock, this, own in [*messages, (-1, b"", None, None, False)]:
            if (this != lane or offset < 0) and run:
                stage = self.stages.get((lane or b"").decode("utf-8", errors="replace"))
                if stage is None:
                    self.unknown_lane += len(run)
                else:
                    self.current = stage
                    outs.append(stage.process(partition, run, kv))
                run = []
            lane = this
            if offset >= 0:
                run.append((offset, value, clock, own))
        self.current = None
        return outs


def _in_range(ms: Any) -> bool:
    """A clock value a tick or replay stamp may carry (2000-01-01 … 2099-12-31); others are
    ignored, so no forged or broken value can move the clock out of the calendar."""
    return type(ms) is int and TICK_MIN_MS <= ms < TICK_MAX_MS


def _unprocessable(error: str, text: str, obj: Any) -> Rejection:
    app = obj.get("sdk_app_id") if type(obj) is dict else None
    event_id = obj.get("event_id") if type(obj) is dict else None
    return Rejection(QuarantineReason.UNPROCESSABLE, error, text, app if type(app) is int and 1 <= app <= 2**32 - 1
                     else None, event_id if type(event_id) is str and len(event_id) <= 128 else None)


@dataclass
class Stage2Output:
    charges: list[Charge] = field(default_factory=list)
    close_delays_ms: list[int] = field(default_factory=list)  # clock at close − close time
    close_clocks: dict[str, int] = field(default_factory=dict)  # topic -> smallest partition clock
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)  # account -> package -> left
    redelivered: int = 0  # messages at or below the offset the state already holds
    unprocessable: list[Rejection] = field(default_factory=list)  # summaries the guard took out


class Stage2:
    """Merge per-app summaries per account, close units, rate and revise."""

    def __init__(self, apps: Callable[[], AppDirectory], settings: BillingSettings, partitions: int) -> None:
        self.apps = apps
        self.settings = settings
        self.partitions = partitions
        self.at: int | None = None  # offset of the summary being processed
        self.failures: dict[int, str] = {}  # set by the guard: summaries that raised

    def process(self, partition: int, messages: list[tuple[int, bytes]], kv: BatchKV) -> Stage2Output:
        out = Stage2Output()
        self.at = None
        applied_key = _key("in", partition)
        messages = fresh(messages, kv.get(applied_key), out)
        if not messages:
            return out
        kv.put(applied_key, messages[-1][0])
        wm_key = _key("wm", partition)
        marks: dict[str, list[Any]] = kv.get(wm_key) or {}
        open_key = _key("open2", partition)
        opened: dict[str, list[Any]] = kv.get(open_key) or {}
        pend_key = _key("late2", partition)  # index of held late summaries: [[seq, family, w], ...]
        pending: list[list[Any]] = kv.get(pend_key) or []
        numbers: dict[str, int] = {}  # late summaries taken in this batch: lastn key -> number
        for offset, raw in messages:
            self.at = offset
            if offset in self.failures:
                out.unprocessable.append(Rejection(QuarantineReason.UNPROCESSABLE, self.failures[offset],
                                                   raw.decode("utf-8", errors="replace")))
                continue
            message = codec.loads(raw)
            if message["k"] == "prov":
                self._store(kv, message, provisional=True)
            elif message["k"] == "wm":
                marks[f"{message['topic']}:{message['p']}"] = [message["clock"], message["final"]]
                self._run_due(marks, opened, pending, kv, out, partition)
                self._prune(partition, marks, opened, kv)
            elif message["late"]:
                if self._sent_again(message, kv, numbers):
                    continue
                self._register(message["a"], partition, kv)
                seq = (pending[-1][0] + 1) if pending else 0
                kv.put(_key("held", partition, seq), message)  # one key each: values stay small
                pending.append([seq, message["f"], message.get("w") or 0])
                self._run_due(marks, opened, pending, kv, out, partition)
            elif not self._sent_again(message, kv, numbers):
                self._summary(message, marks, opened, pending, kv, out, partition)
        kv.put(wm_key, marks)
        kv.put(open_key, opened)
        kv.put(pend_key, pending)
        for key, number in numbers.items():
            kv.put(key, number)
        for topic in set(TOPIC_OF_FAMILY.values()):
            low = self._topic_clock(marks, topic)[0]
            if low is not None:
                out.close_clocks[topic] = low
        return out

    @staticmethod
    def _sent_again(message: dict[str, Any], kv: BatchKV, numbers: dict[str, int]) -> bool:
        """A summary stage 1 sent before (it redid a batch after a crash): its number is not
        above the last one taken from the same stage-1 state. Applying it again could put
        an older state back and bill it as a revision. A new number is noted in
        ``numbers``, written at the end of the batch."""
        source, number = message.get("src"), message.get("n")
        if source is None or number is None:
            return False
        key = _key("lastn", source)
        if number <= numbers.get(key, kv.get(key) or 0):
            return True
        numbers[key] = number
        return False

    def _topic_clock(self, marks: dict[str, list[Any]], topic: str) -> tuple[int | None, int | None]:
        """(min clock, min final) over every partition of ``topic``; None if one has none.
        A final "at the watermark" counts as the largest clock any partition reported."""
        known = [m[0] for m in marks.values() if m[0] is not None]
        watermark = max(known) if known else None
        clocks: list[Any] = []
        finals: list[Any] = []
        for p in range(self.partitions):
            clock, final = marks.get(f"{topic}:{p}", [None, None])
            clocks.append(clock)
            finals.append(watermark if final == AT_WATERMARK else final)
        low = None if None in clocks else min(clocks)
        final_low = None if None in finals else min(finals)
        return low, final_low

    def _prune(self, partition: int, marks: dict[str, list[Any]], opened: dict[str, list[Any]],
               kv: BatchKV) -> None:
        """Once a day of billing clock: forget closed periods that ended before the horizon.
        The clock here is the smallest over every partition of every usage topic."""
        lows = [self._topic_clock(marks, topic)[0] for topic in set(TOPIC_OF_FAMILY.values())]
        if any(low is None for low in lows):
            return
        before = prune_before(min(low for low in lows if low is not None), self.settings.horizon_s * 1000)
        accounts_key = _key("accounts", partition)
        book = kv.get(accounts_key) or {"pruned": None, "accounts": []}
        if book["pruned"] is not None and before - book["pruned"] < 86_400_000:
            return
        for account in book["accounts"]:
            index_key = _key("idx", account)
            index = kv.get(index_key) or {}
            for name in [n for n in index if Period(*n.split("|")[1:]).end_ms < before
                         and not any(_key(account, kind, p.kind, p.key) in opened
                                     for kind, p in units_of(n.split("|")[0], Period(*n.split("|")[1:])))]:
                family, pkind, pkey = name.split("|")
                for app in index.pop(name):
                    kv.delete(_key("sum", family, pkind, pkey, account, app))
                    kv.delete(_key("lastn", _key("st", family, pkey, account, app)))
                for kind, period in units_of(family, Period(pkind, pkey)):
                    unit = _key(account, kind, period.kind, period.key)
                    if period.end_ms < before and unit not in opened:
                        kv.delete(_key("unit", unit))
            kv.put(index_key, index)
            pindex_key = _key("pidx", account)
            pindex = kv.get(pindex_key) or {}
            for name in [n for n in pindex if Period(*n.split("|")[1:]).end_ms < before]:
                family, pkind, pkey = name.split("|")
                for app in pindex.pop(name):
                    kv.delete(_key("prov", family, pkind, pkey, account, app))
            kv.put(pindex_key, pindex)
        book["pruned"] = before
        kv.put(accounts_key, book)

    def month_to_date(self, kv: BatchKV, account: str, month: str) -> dict[str, Any]:
        """Read-only: latest charges of the month's closed units plus a provisional rating of
        its open units (from provisional summaries; packages on a copy of the ledger)."""
        month_period = Period("month", month)
        closed: dict[str, Any] = {}
        provisional: dict[str, Any] = {}
        index = kv.get(_key("idx", account)) or {}
        pindex = kv.get(_key("pidx", account)) or {}
        names = {n for n in [*index, *pindex] if n.split("|")[2].startswith(month)}
        units = {(kind, period) for n in names for kind, period in units_of(n.split("|")[0], Period(*n.split("|")[1:]))
                 if period.key.startswith(month)}
        ledger = PackageLedger.from_dict(kv.get(_key("ledger", account)) or {})
        apps = self.apps()
        view = AccountView(account, apps, tuple(apps.accounts().get(account, ())), self.settings.catalog)
        for kind, period in sorted(units, key=lambda u: (u[1].start_ms, UNIT_ORDER[u[0]])):
            unit = _key(account, kind, period.kind, period.key)
            state = kv.get(_key("unit", unit))
            if state and state["closed"]:
                closed.update(state["charges"])
                continue
            summaries = self._summaries(kv, account, kind, period, provisional=True)
            for charge in rate_unit(account, kind, period, summaries, view, ledger, {}, period.end_ms):
                provisional[charge.charge_id] = charge.to_dict()
        totals: dict[str, Any] = {}
        for doc in [*closed.values(), *provisional.values()]:
            key = f"{doc['product']}/{doc['item']}"
            totals[key] = totals.get(key, 0) + Decimal(doc["amount"])
        return {
            "account_id": account, "month": month_period.key,
            "items": {k: decimal_text(v) for k, v in sorted(totals.items())},
            "closed_charges": list(closed.values()), "provisional_charges": list(provisional.values()),
        }

    def packages(self, kv: BatchKV, account: str, now_ms: int) -> list[dict[str, Any]]:
        """The account's packages with their remaining balances (read-only)."""
        apps = self.apps()
        view = AccountView(account, apps, tuple(apps.accounts().get(account, ())), self.settings.catalog)
        ledger = PackageLedger.from_dict(kv.get(_key("ledger", account)) or {})
        found: dict[str, Any] = {}
        for app in view.app_ids:
            for version in apps.versions(app):
                for package in version.packages:
                    found[package.package_id] = package
        out = []
        for package in sorted(found.values(), key=lambda p: (p.expiry, p.package_id)):
            doc = package.to_dict()
            doc["balance"] = decimal_text(ledger.balance(package))
            doc["expires"] = format_time(package.expiry)
            doc["expired"] = to_ms(package.expiry) <= now_ms
            out.append(doc)
        return out

    def _store(self, kv: BatchKV, message: dict[str, Any], *, provisional: bool = False) -> None:
        """Keep an app-period summary and index it under its account (provisional ones, for
        month-to-date views, apart from the closed ones that are billed)."""
        family, (pkind, pkey), account, app = message["f"], message["p"], message["a"], message["app"]
        kv.put(_key("prov" if provisional else "sum", family, pkind, pkey, account, app), message["s"])
        index_key = _key("pidx" if provisional else "idx", account)
        index = kv.get(index_key) or {}
        apps = index.setdefault(f"{family}|{pkind}|{pkey}", [])
        if app not in apps:
            apps.append(app)
            kv.put(index_key, index)

    def accounts(self, kv: BatchKV, partition: int) -> list[str]:
        """The accounts whose summaries this stage-2 partition holds."""
        book = kv.get(_key("accounts", partition)) or {"accounts": []}
        return list(book["accounts"])

    def _register(self, account: str, partition: int, kv: BatchKV) -> None:
        accounts_key = _key("accounts", partition)
        book = kv.get(accounts_key) or {"pruned": None, "accounts": []}
        if account not in book["accounts"]:
            book["accounts"].append(account)
            kv.put(accounts_key, book)

    def _summary(self, message: dict[str, Any], marks: dict[str, list[Any]], opened: dict[str, list[Any]],
                 pending: list[list[Any]], kv: BatchKV, out: Stage2Output, partition: int) -> None:
        """A close summary from stage 1: store it and open the units it feeds."""
        self._register(message["a"], partition, kv)
        self._store(kv, message)
        self._open_units(message, opened, kv, out, marks)
        self._run_due(marks, opened, pending, kv, out, partition)

    def _open_units(self, message: dict[str, Any], opened: dict[str, list[Any]], kv: BatchKV,
                    out: Stage2Output, marks: dict[str, list[Any]]) -> None:
        family, (pkind, pkey), account = message["f"], message["p"], message["a"]
        for kind, period in units_of(family, Period(pkind, pkey)):
            unit = _key(account, kind, period.kind, period.key)
            if self._closed(kv, unit):
                out.charges += self._rate(unit, kv, self._clock_of(marks, kind), out)
            elif unit not in opened:
                opened[unit] = [self.settings.close_ms(period), period.start_ms, TOPIC_OF_FAMILY[UNITS[kind].family]]

    def _closed(self, kv: BatchKV, unit: str) -> bool:
        state = kv.get(_key("unit", unit))
        return bool(state and state["closed"])

    def _clock_of(self, marks: dict[str, list[Any]], kind: str) -> int:
        low, _ = self._topic_clock(marks, TOPIC_OF_FAMILY[UNITS[kind].family])
        return low or 0

    def _clocks(self, marks: dict[str, list[Any]]) -> dict[str, tuple[int | None, int | None]]:
        return {topic: self._topic_clock(marks, topic) for topic in set(TOPIC_OF_FAMILY.values())}

    @staticmethod
    def _due(clocks: dict[str, tuple[int | None, int | None]], close_ms: int, start_ms: int,
             topic: str) -> int | None:
        """The clock to stamp the close with if the unit is due, else None."""
        low, final_low = clocks[topic]
        if low is not None and low >= close_ms:
            return low
        if final_low is not None and final_low >= start_ms:
            return max(final_low, low or 0)
        return None

    def _run_due(self, marks: dict[str, list[Any]], opened: dict[str, list[Any]],
                 pending: list[list[Any]], kv: BatchKV, out: Stage2Output, partition: int) -> None:
        """Close the units and apply the late summaries that are due, in the order
        ``vasbill rate`` met them: a unit at its close time, a late summary at the clock it
        arrived with (``w``), units first on a tie. Package balances couple the days of an
        account, so this order is what makes every revision equal to ``rate``'s."""
        if not opened and not pending:
            return
        clocks = self._clocks(marks)
        actions: list[tuple[int, int, int, int, str, Any]] = []
        for unit, entry in opened.items():
            stamp = self._due(clocks, *entry)
            if stamp is not None:
                account, kind, _pkind, _pkey = orjson.loads(unit)
                actions.append((entry[0], 0, entry[1], UNIT_ORDER[kind], unit, stamp))
        for seq, family, w in pending:
            low, final_low = clocks[TOPIC_OF_FAMILY[family]]
            if (low is not None and low >= w) or (final_low is not None and final_low >= w):
                actions.append((w, 1, seq, 0, "", None))
        done: set[int] = set()
        for key, late, seq, _order, unit, stamp in sorted(actions, key=lambda a: a[:4]):
            if not late:
                del opened[unit]
                out.close_delays_ms.append(max(0, stamp - key))
                out.charges += self._rate(unit, kv, stamp, out)
                continue
            done.add(seq)
            payload = kv.get(_key("held", partition, seq))
            kv.delete(_key("held", partition, seq))
            self._store(kv, payload)
            family, (pkind, pkey), account = payload["f"], payload["p"], payload["a"]
            for kind, period in units_of(family, Period(pkind, pkey)):
                unit = _key(account, kind, period.kind, period.key)
                if self._closed(kv, unit):
                    out.charges += self._rate(unit, kv, max(key, self._clock_of(marks, kind)), out)
                elif unit not in opened:  # first seen after its close: rated at once, as ``rate`` does
                    entry = [self.settings.close_ms(period), period.start_ms, TOPIC_OF_FAMILY[UNITS[kind].family]]
                    if self._due(clocks, *entry) is not None and (kind, period.kind) == (family, pkind):
                        out.charges += self._rate(unit, kv, max(key, self._clock_of(marks, kind)), out)
                    else:
                        opened[unit] = entry
        if done:
            pending[:] = [entry for entry in pending if entry[0] not in done]

    def _summaries(self, kv: BatchKV, account: str, kind: str, period: Period,
                   provisional: bool = False) -> dict[int, Any]:
        """The unit's per-app summaries; with ``provisional`` a closed summary is taken where
        there is one, else the latest provisional one (month-to-date views only)."""
        index = kv.get(_key("idx", account)) or {}
        pindex = kv.get(_key("pidx", account)) or {} if provisional else {}
        family = UNITS[kind].family

        def get(fam: str, pkind: str, pkey: str, app: int) -> Any:
            found = kv.get(_key("sum", fam, pkind, pkey, account, app))
            if found is None and provisional:
                found = kv.get(_key("prov", fam, pkind, pkey, account, app))
            return found

        def apps_of(name: str) -> list[int]:
            return list(dict.fromkeys([*index.get(name, []), *pindex.get(name, [])]))

        if kind == "relay_monthly":
            out: dict[int, dict[str, Any]] = {}
            for day in period.days():
                for app in apps_of(f"relay|day|{day.key}"):
                    out.setdefault(app, {})[day.key] = get("relay", "day", day.key, app)
            return out
        found = {app: get(family, period.kind, period.key, app)
                 for app in apps_of(f"{family}|{period.kind}|{period.key}")}
        if family == "recording":
            return {app: s for app, s in found.items() if s["points"] or s["days"]}
        return found

    def _rate(self, unit: str, kv: BatchKV, clock_ms: int, out: Stage2Output) -> list[Charge]:
        account, kind, pkind, pkey = orjson.loads(unit)
        period = Period(pkind, pkey)
        state_key = _key("unit", unit)
        state = kv.get(state_key) or {"closed": False, "charges": {}}
        state["closed"] = True
        previous = {cid: Charge.from_dict(doc) for cid, doc in state["charges"].items()}
        ledger_key = _key("ledger", account)
        ledger = PackageLedger.from_dict(kv.get(ledger_key) or {})
        apps = self.apps()
        view = AccountView(account, apps, tuple(apps.accounts().get(account, ())), self.settings.catalog)
        summaries = self._summaries(kv, account, kind, period)
        charges = rate_unit(account, kind, period, summaries, view, ledger, previous, clock_ms or period.end_ms)
        for charge in charges:
            state["charges"][charge.charge_id] = charge.to_dict()
        kv.put(state_key, state)
        kv.put(ledger_key, ledger.to_dict())
        if ledger.draws:  # package_id -> (kind, balance) of the packages valid on the period's last day
            out.balances[account] = {
                p.package_id: (p.kind, ledger.balance(p))
                for kind in PACKAGE_KINDS for p in view.packages(kind, period.days()[-1])
            }
        return charges

"""The ``vasbill-clock`` message header: the replay clock before each event of a message.

``vasbill rate`` decides lateness by the clock as it stood before each event in file order.
A replay through Kafka loses that order across partitions, so ``vasbill produce`` computes
the same clock while it reads the file and stamps every message with it; the worker's
stage 1 then classifies every event exactly as ``rate`` does. Messages without the header
(live producers) fall back to the partition's own event clock.

Header value: ``{"c": [clock before event 1, ...], "f": final-until or null}`` (epoch ms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from topics.appconfig import AppDirectory
from topics.reasons import Rejection
from topics.timefmt import BEIJING, from_ms, parse_time, to_ms
from topics.validation import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_MESSAGE_BYTES, check_event, item_text

HEADER = "vasbill-clock"
DAY_MS = 86_400_000


def _month_start_ms(ms: int) -> int:
    """The Beijing start of the month holding ``ms`` (``rating.periods.prune_before``)."""
    local = from_ms(ms).astimezone(BEIJING)
    return to_ms(datetime(local.year, local.month, 1, tzinfo=BEIJING))


@dataclass
class ReplayClock:
    """The event clock of a file read in order: what ``rate`` advances on accepted events.

    It follows ``rating.biller.Biller`` step by step: an event accepted by validation and
    not a duplicate (``seen`` holds what rate's ``Deduper`` holds: (sdk_app_id, event_id)
    -> event time, forgotten once a day of clock for event times before the Beijing month
    of clock − horizon) moves the clock to its time if later; a duplicate moves nothing; a
    ``clock.tick`` moves it to its ``time`` and a final one sets ``final_ms``, and a tick
    rate rejects (a bad ``time``, outside 2000–2099, a ``final`` that is not a boolean)
    changes nothing. A JSON array line is a batch: its items count one by one, and what
    rate rejects as ``too_large`` (by ``raw``'s size, a batch of over 1000 events, an event
    over 64 KiB in a batch) counts for nothing."""

    apps: AppDirectory
    now: datetime
    horizon_ms: int = 40 * 86_400_000
    clock_ms: int | None = None
    final_ms: int | None = None
    seen: dict[tuple[int, str], int] = field(default_factory=dict)
    pruned_at_ms: int | None = None

    def before(self, obj: Any, raw: bytes | None = None) -> int | None:
        """The clock before ``obj`` (a decoded line, ``raw`` its bytes if known: rate's size
        limits apply to them); then advance past it."""
        current = self.clock_ms
        if raw is not None and len(raw) > MAX_MESSAGE_BYTES:
            return current  # too_large in rate: nothing counts
        if type(obj) is list:  # a batch: ``split_message``'s rules, then each event
            if len(obj) <= MAX_BATCH_EVENTS:
                for item in obj:
                    text = item_text(item)
                    if text is not None and len(text) <= MAX_EVENT_BYTES:
                        self._one(item)
        elif raw is None or len(raw) <= MAX_EVENT_BYTES:
            self._one(obj)
        return current

    def event(self, obj: Any) -> int | None:
        """The clock before one decoded event (not a batch), then past it."""
        current = self.clock_ms
        self._one(obj)
        return current

    def _one(self, obj: Any) -> None:
        if isinstance(obj, Mapping) and obj.get("type") == "clock.tick":
            self._tick(obj)
            return
        current = self.clock_ms
        not_before = None if current is None else current - self.horizon_ms
        # the text only goes into a rejection's payload, which is dropped here
        outcome = check_event("", obj, self.now, apps=self.apps, not_before_ms=not_before)
        if isinstance(outcome, Rejection):
            return
        key = (outcome.sdk_app_id, outcome.event_id)
        if key in self.seen:  # a duplicate changes nothing, not even a clock (SPEC §3)
            return
        self.seen[key] = outcome.ms
        self._advance(outcome.ms)

    def advance(self, ms: int) -> None:
        """A tick at ``ms`` (already validated): the clock moves forward to it."""
        self._advance(ms)

    def finalise(self, ms: int | None) -> None:
        """A final tick at ``ms`` (None: at the clock)."""
        until = ms if ms is not None else self.clock_ms
        if until is not None:
            self.final_ms = until if self.final_ms is None else max(self.final_ms, until)

    def _advance(self, ms: int) -> None:
        """``Biller.advance``: forward only; prune the dedupe memory once a day of clock."""
        if self.clock_ms is not None and ms <= self.clock_ms:
            return
        self.clock_ms = ms
        if self.pruned_at_ms is None or ms - self.pruned_at_ms >= DAY_MS:
            self.pruned_at_ms = ms
            before = _month_start_ms(ms - self.horizon_ms)
            for key in [k for k, t in self.seen.items() if t < before]:
                del self.seen[key]

    def _tick(self, obj: Mapping[str, Any]) -> None:
        """``Biller._tick_object`` and ``Biller.tick``, ignoring what rate rejects."""
        try:
            when = to_ms(parse_time(obj["time"])) if obj.get("time") is not None else None
        except (ValueError, TypeError, OverflowError):
            return
        final = obj.get("final", False)
        if not isinstance(final, bool):
            return
        if when is not None:
            self._advance(when)
        if final:
            until = when if when is not None else self.clock_ms
            if until is not None:
                self.final_ms = until if self.final_ms is None else max(self.final_ms, until)


def encode(clocks: list[int | None], final_ms: int | None) -> bytes:
    return orjson.dumps({"c": clocks, "f": final_ms})


def decode(value: bytes | None) -> tuple[list[int | None], int | None] | None:
    if not value:
        return None
    try:
        doc = orjson.loads(value)
        return list(doc["c"]), doc.get("f")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None

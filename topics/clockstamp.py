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
from topics.timefmt import parse_time, to_ms
from topics.validation import check_event

HEADER = "vasbill-clock"


@dataclass
class ReplayClock:
    """The event clock of a file read in order: what ``rate`` advances on accepted events."""

    apps: AppDirectory
    now: datetime
    horizon_ms: int = 40 * 86_400_000
    clock_ms: int | None = None
    final_ms: int | None = None
    seen: set[tuple[int, str]] = field(default_factory=set)

    def before(self, obj: Any) -> int | None:
        """The clock before ``obj`` (a decoded line item); then advance past it."""
        current = self.clock_ms
        if isinstance(obj, Mapping) and obj.get("type") == "clock.tick":
            self._tick(obj)
            return current
        not_before = None if current is None else current - self.horizon_ms
        outcome = check_event(orjson.dumps(obj).decode() if obj is not None else "", obj, self.now,
                              apps=self.apps, not_before_ms=not_before)
        ms = getattr(outcome, "ms", None)
        if isinstance(ms, int):
            self.clock_ms = ms if current is None else max(current, ms)
        return current

    def _tick(self, obj: Mapping[str, Any]) -> None:
        try:
            when = to_ms(parse_time(obj["time"])) if obj.get("time") else None
        except (ValueError, TypeError):
            return
        if when is not None:
            self.clock_ms = when if self.clock_ms is None else max(self.clock_ms, when)
        if obj.get("final") is True:
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

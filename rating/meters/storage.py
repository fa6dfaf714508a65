"""VOD storage: the day's peak of stored bytes per storage class and area.

State of an app-day: ``{"series": {"class|area": [[ms, bytes], ...]}}`` sorted by time.
A sample holds until the next one. Each Beijing day stands alone (our reading): an app's
series starts at its first sample of the day, so a single app's peak is the max of the
day's samples, as SPEC §5 says.

The summary is a step function per class|area, ``[[ms, total_bytes], ...]``; merging
adds step functions (the account's stored bytes at any instant is the sum of its apps').
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

from rating.meters.base import State, Summary
from rating.periods import Period, day_of
from topics.events import UsageEvent, VodStorage


@dataclass(frozen=True, slots=True)
class StorageMeter:
    family: str = "vod_storage"
    version: int = 1
    period_kind: str = "day"
    registry: bool = False

    @property
    def state_key(self) -> str:
        return f"{self.family}@{self.version}"

    def initial(self) -> State:
        return {"series": {}}

    def period_of(self, event: UsageEvent) -> Period:
        return day_of(event.ms)

    def fold(self, state: State, event: UsageEvent) -> list[Period]:
        assert isinstance(event, VodStorage)
        series = state["series"].setdefault(f"{event.storage_class}|{event.area}", [])
        insort(series, [event.ms, event.bytes])
        return [day_of(event.ms)]

    def summary(self, state: State, period: Period) -> Summary:
        return {"steps": {key: _steps(samples) for key, samples in state["series"].items()}}

    def prune(self, state: State, before_ms: int) -> None:
        """Period states are dropped whole by their owner; nothing to prune inside."""

    def merge(self, a: Summary, b: Summary) -> Summary:
        out = dict(a["steps"])
        for key, steps in b["steps"].items():
            out[key] = add_steps(out[key], steps) if key in out else steps
        return {"steps": out}


def _steps(samples: list[list[int]]) -> list[list[int]]:
    """Samples to a step function; of two samples at one instant the larger counts."""
    out: list[list[int]] = []
    for ms, value in samples:
        if out and out[-1][0] == ms:
            out[-1][1] = max(out[-1][1], value)
        else:
            out.append([ms, value])
    return out


def add_steps(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    """Sum of two step functions (each 0 before its first step)."""
    times = sorted({ms for ms, _ in a} | {ms for ms, _ in b})
    out, i, j, va, vb = [], 0, 0, 0, 0
    for t in times:
        while i < len(a) and a[i][0] <= t:
            va = a[i][1]
            i += 1
        while j < len(b) and b[j][0] <= t:
            vb = b[j][1]
            j += 1
        out.append([t, va + vb])
    return out


def peak(steps: list[list[int]]) -> int:
    return max((value for _, value in steps), default=0)

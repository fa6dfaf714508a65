"""Recording channels: concurrent tasks at 5-minute sample points (SPEC §5).

State is a task registry per app that spans months, because a task that starts in one
month and stops in the next is active in both and a late stop must re-rate both:
``{"tasks": {task_id: [begin_ms, stop_ms | None, last_ms, start_seen]}}``.
A task is active at sample point t when begin <= t < end; end is its stop, or, without a
stop, its last start/heartbeat plus the catalog's stale time (15 min). A task whose start
was never seen begins at its first event. Formats are separate tasks (one channel each).

The summary of a month is ``{"points": {index: count}, "days": [day keys], "stale": n}``:
points index the month's 5-minute sample points; days are the Beijing days on which any
task was active (the 2022 formula's recording days).
"""

from __future__ import annotations

from dataclasses import dataclass

from rating.meters.base import State, Summary, add_counts
from rating.periods import DAY_MS, SAMPLE_MS, Period, day_of, month_of
from topics.events import RecordingEvent, UsageEvent

STALE_MS = 15 * 60_000


def _ceil_to_sample(ms: int) -> int:
    return -((-ms) // SAMPLE_MS) * SAMPLE_MS


@dataclass(frozen=True, slots=True)
class ConcurrencyMeter:
    family: str = "recording"
    version: int = 1
    period_kind: str = "month"
    registry: bool = True
    stale_ms: int = STALE_MS

    @property
    def state_key(self) -> str:
        return f"{self.family}@{self.version}"

    def initial(self) -> State:
        return {"tasks": {}}

    def period_of(self, event: UsageEvent) -> Period | None:
        return None  # one registry per app, spanning months

    def interval(self, task: list[int | None]) -> tuple[int, int, bool]:
        """(begin, end, stale) of a task record."""
        begin, stop, last = task[0], task[1], task[2]
        assert begin is not None and last is not None
        if stop is not None:
            return begin, max(stop, begin), False
        return begin, last + self.stale_ms, True

    def fold(self, state: State, event: UsageEvent) -> list[Period]:
        assert isinstance(event, RecordingEvent)
        tasks = state["tasks"]
        key = f"{event.task_id}|{event.format}"  # one task = one stream in one format
        ms = event.ms
        task = tasks.get(key)
        before = self.interval(task) if task else None
        if task is None:
            task = [ms, None, ms, 0]
            tasks[key] = task
        action = event.action
        if action == "start":
            if task[3]:
                task[0] = min(task[0], ms)
            else:
                task[0], task[3] = ms, 1
        else:
            task[0] = task[0] if task[3] else min(task[0], ms)
        if action == "stop":
            task[1] = ms if task[1] is None else max(task[1], ms)
        task[2] = max(task[2], ms)
        begin, end, _ = self.interval(task)
        if before is None:
            return months_between(begin, end)
        # only the months where the interval changed: a heartbeat of a long task touches
        # the current month, not every month the task has run through
        touched: list[Period] = []
        if begin != before[0]:
            touched += months_between(min(begin, before[0]), max(begin, before[0]))
        if end != before[1]:
            touched += [m for m in months_between(min(end, before[1]), max(end, before[1])) if m not in touched]
        return touched

    def summary(self, state: State, period: Period) -> Summary:
        lo, hi = period.start_ms, period.end_ms
        points: dict[str, int] = {}
        days: set[str] = set()
        stale = 0
        for task in state["tasks"].values():
            begin, end, is_stale = self.interval(task)
            if end <= lo or begin >= hi:
                continue
            stale += is_stale
            first = max(_ceil_to_sample(begin), lo)
            for t in range(first, min(end, hi), SAMPLE_MS):
                index = str((t - lo) // SAMPLE_MS)
                points[index] = points.get(index, 0) + 1
            day = max(begin, lo)
            while day < min(end, hi):
                days.add(day_of(day).key)
                day = day_of(day).end_ms
        return {"points": points, "days": sorted(days), "stale": stale}

    def merge(self, a: Summary, b: Summary) -> Summary:
        return {
            "points": add_counts(a["points"], b["points"]),
            "days": sorted(set(a["days"]) | set(b["days"])),
            "stale": a["stale"] + b["stale"],
        }

    def prune(self, state: State, before_ms: int) -> None:
        """Forget tasks that ended before ``before_ms`` (past the lateness horizon)."""
        tasks = state["tasks"]
        for key in [k for k, t in tasks.items() if self.interval(t)[1] < before_ms]:
            del tasks[key]


def months_between(begin: int, end: int) -> list[Period]:
    """The months overlapping [begin, end] (inclusive, so a zero-length task has one)."""
    months = [month_of(begin)]
    while months[-1].end_ms <= end:
        months.append(month_of(months[-1].end_ms))
    return months


def peak(points: dict[str, int]) -> int:
    return max(points.values(), default=0)


__all__ = ["DAY_MS", "ConcurrencyMeter", "months_between", "peak"]

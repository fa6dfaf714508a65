"""Billing periods: natural days and months in Beijing time (UTC+08:00), half-open [start, end)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from topics.timefmt import BEIJING, format_time, to_ms

DAY_MS = 86_400_000
SAMPLE_MS = 300_000  # 5-minute sample points and buckets
BUCKETS_PER_DAY = DAY_MS // SAMPLE_MS  # 288
_BEIJING_OFFSET_MS = 8 * 3_600_000


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A Beijing calendar day (``2026-08-03``) or month (``2026-08``)."""

    kind: str  # "day" | "month"
    key: str

    @property
    def start(self) -> datetime:
        return _bounds(self.kind, self.key)[0]

    @property
    def end(self) -> datetime:
        return _bounds(self.kind, self.key)[1]

    @property
    def start_ms(self) -> int:
        return _bounds_ms(self.kind, self.key)[0]

    @property
    def end_ms(self) -> int:
        return _bounds_ms(self.kind, self.key)[1]

    @property
    def start_date(self) -> date:
        return self.start.date()

    def days(self) -> list[Period]:
        """The Beijing days of this period, in order."""
        first = self.start
        count = (self.end - first).days
        return [day_of_date(first.date() + timedelta(days=i)) for i in range(count)]

    @property
    def days_in(self) -> int:
        return (self.end - self.start).days

    def month(self) -> Period:
        return Period("month", self.key[:7])

    def describe(self) -> tuple[str, str]:
        return format_time(self.start), format_time(self.end)


@lru_cache(maxsize=4096)
def _bounds(kind: str, key: str) -> tuple[datetime, datetime]:
    if kind == "day":
        start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=BEIJING)
        return start, start + timedelta(days=1)
    if kind == "month":
        start = datetime.strptime(key, "%Y-%m").replace(tzinfo=BEIJING)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start, start.replace(year=year, month=month)
    raise ValueError(f"unknown period kind {kind!r}")


@lru_cache(maxsize=4096)
def _bounds_ms(kind: str, key: str) -> tuple[int, int]:
    start, end = _bounds(kind, key)
    return to_ms(start), to_ms(end)


def day_of_date(value: date) -> Period:
    return Period("day", value.isoformat())


def day_of(ms: int) -> Period:
    """The Beijing day holding epoch-millisecond ``ms``."""
    return _day_of_index((ms + _BEIJING_OFFSET_MS) // DAY_MS)


@lru_cache(maxsize=8192)
def _day_of_index(index: int) -> Period:
    return day_of_date(date(1970, 1, 1) + timedelta(days=index))


def month_of(ms: int) -> Period:
    return Period("month", day_of(ms).key[:7])


def bucket_of(ms: int) -> int:
    """Index (0..287) of the 5-minute bucket of its Beijing day holding ``ms``."""
    return ((ms + _BEIJING_OFFSET_MS) % DAY_MS) // SAMPLE_MS


def period_of(kind: str, ms: int) -> Period:
    return day_of(ms) if kind == "day" else month_of(ms)


def next_close_boundary(after_ms: int, grace_day_ms: int, grace_month_ms: int) -> int:
    """The first instant after ``after_ms`` at which some day or month period closes."""
    day = day_of(after_ms - grace_day_ms)
    candidate_day = day.end_ms + grace_day_ms
    month = month_of(after_ms - grace_month_ms)
    candidate_month = month.end_ms + grace_month_ms
    return min(candidate_day, candidate_month)


def prune_before(clock_ms: int, horizon_ms: int) -> int:
    """State of periods that ended before this may be forgotten: the start of the month
    holding ``clock − horizon``, so a month still open never loses the days it is made of."""
    return month_of(clock_ms - horizon_ms).start_ms

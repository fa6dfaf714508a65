"""Relay traffic as 5-minute buckets: one state serves traffic, daily peak and monthly modes.

State (and summary) of an app-day: ``{"buckets": {"zone|direction|product|source":
[288 byte totals]}}``. Traffic is the sum of a dimension's buckets, a bucket's bandwidth is
bytes × 8 / 300 s, the daily peak is the largest bucket, and the monthly meters take each
day's 288 samples. An interval record's bytes go to the bucket holding its start time
(SPEC says the interval lies inside one bucket; a record that does not is still billed,
not rejected).
"""

from __future__ import annotations

from dataclasses import dataclass

from rating.meters.base import State, Summary, add_arrays
from rating.periods import BUCKETS_PER_DAY, Period, bucket_of, day_of
from topics.events import RelayTraffic, UsageEvent


def dim_key(zone: str, direction: str, product: str, source: str) -> str:
    return f"{zone}|{direction}|{product}|{source}"


def split_key(key: str) -> tuple[str, str, str, str]:
    zone, direction, product, source = key.split("|")
    return zone, direction, product, source


@dataclass(frozen=True, slots=True)
class BucketMeter:
    """Per-dimension 5-minute byte buckets of a Beijing day."""

    family: str = "relay"
    version: int = 1
    period_kind: str = "day"
    registry: bool = False

    @property
    def state_key(self) -> str:
        return f"{self.family}@{self.version}"

    def initial(self) -> State:
        return {"buckets": {}}

    def period_of(self, event: UsageEvent) -> Period:
        return day_of(event.ms)

    def fold(self, state: State, event: UsageEvent) -> list[Period]:
        assert isinstance(event, RelayTraffic)
        key = dim_key(event.zone, event.direction, event.product, event.source)
        buckets = state["buckets"].get(key)
        if buckets is None:
            buckets = state["buckets"][key] = [0] * BUCKETS_PER_DAY
        buckets[bucket_of(event.ms)] += event.bytes
        return [day_of(event.ms)]

    def summary(self, state: State, period: Period) -> Summary:
        return state

    def prune(self, state: State, before_ms: int) -> None:
        """Period states are dropped whole by their owner; nothing to prune inside."""

    def merge(self, a: Summary, b: Summary) -> Summary:
        out = dict(a["buckets"])
        for key, array in b["buckets"].items():
            out[key] = add_arrays(out[key], array) if key in out else list(array)
        return {"buckets": out}


def total(buckets: dict[str, list[int]], **match: str) -> int:
    """Sum of the buckets whose dimensions match (zone=, direction=, product=, source=)."""
    names = ("zone", "direction", "product", "source")
    out = 0
    for key, array in buckets.items():
        dims = dict(zip(names, split_key(key), strict=True))
        if all(dims[k] == v for k, v in match.items()):
            out += sum(array)
    return out


def combined(buckets: dict[str, list[int]], **match: str) -> list[int]:
    """Point-wise sum of the matching arrays (e.g. all download buckets of one zone)."""
    names = ("zone", "direction", "product", "source")
    out = [0] * BUCKETS_PER_DAY
    for key, array in buckets.items():
        dims = dict(zip(names, split_key(key), strict=True))
        if all(dims[k] == v for k, v in match.items()):
            out = add_arrays(out, array)
    return out

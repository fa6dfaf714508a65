"""Keyed integer sums: transcoding seconds, image counts, VOD traffic bytes.

State (and summary) ``{"sums": {key: int}}``; the key function names the dimensions that
rating needs, e.g. ``standard|h264|1280|720`` (resolution is kept as pixels, not as a tier,
so the period's catalog decides the tier).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rating.meters.base import State, Summary, add_counts
from rating.periods import Period, period_of
from topics.events import ImageCount, TranscodeUsage, UsageEvent, VodTraffic


def _transcode_key(event: UsageEvent) -> tuple[str, int]:
    assert isinstance(event, TranscodeUsage)
    if event.kind == "audio":
        return "audio|||", event.seconds
    w, h = event.width or 0, event.height or 0
    return f"{event.kind}|{event.codec}|{max(w, h)}|{min(w, h)}", event.seconds


def _image_key(event: UsageEvent) -> tuple[str, int]:
    assert isinstance(event, ImageCount)
    return "images", event.count


def _vod_traffic_key(event: UsageEvent) -> tuple[str, int]:
    assert isinstance(event, VodTraffic)
    return event.zone, event.bytes


@dataclass(frozen=True, slots=True)
class SumMeter:
    family: str
    period_kind: str
    key: Callable[[UsageEvent], tuple[str, int]]
    version: int = 1
    registry: bool = False

    @property
    def state_key(self) -> str:
        return f"{self.family}@{self.version}"

    def initial(self) -> State:
        return {"sums": {}}

    def period_of(self, event: UsageEvent) -> Period:
        return period_of(self.period_kind, event.ms)

    def fold(self, state: State, event: UsageEvent) -> list[Period]:
        key, value = self.key(event)
        sums = state["sums"]
        sums[key] = sums.get(key, 0) + value
        return [period_of(self.period_kind, event.ms)]

    def summary(self, state: State, period: Period) -> Summary:
        return state

    def prune(self, state: State, before_ms: int) -> None:
        """Period states are dropped whole by their owner; nothing to prune inside."""

    def merge(self, a: Summary, b: Summary) -> Summary:
        return {"sums": add_counts(a["sums"], b["sums"])}


TRANSCODE = SumMeter("transcode", "day", _transcode_key)
SNAPSHOT = SumMeter("snapshot", "month", _image_key)
MODERATION = SumMeter("moderation", "month", _image_key)
VOD_TRAFFIC = SumMeter("vod_traffic", "day", _vod_traffic_key)

"""IM usage of one app-month: peak DAU and the group count at month end.

State ``{"dau": {date: max reported}, "groups": [ms, count] | None}``. A day reported twice
keeps the larger figure and of two group samples the later (then the larger) wins, so the
result never depends on arrival order. The month of a DAU report is the month of its
``date`` field. Summaries stay per app: IM plans and overage belong to one SDKAppID.
"""

from __future__ import annotations

from dataclasses import dataclass

from rating.meters.base import State, Summary
from rating.periods import Period, month_of
from topics.events import ImDau, ImGroups, UsageEvent


@dataclass(frozen=True, slots=True)
class ImMeter:
    family: str = "im"
    version: int = 1
    period_kind: str = "month"
    registry: bool = False

    @property
    def state_key(self) -> str:
        return f"{self.family}@{self.version}"

    def initial(self) -> State:
        return {"dau": {}, "groups": None}

    def period_of(self, event: UsageEvent) -> Period:
        if isinstance(event, ImDau):
            return Period("month", event.date[:7])
        return month_of(event.ms)

    def fold(self, state: State, event: UsageEvent) -> list[Period]:
        if isinstance(event, ImDau):
            state["dau"][event.date] = max(state["dau"].get(event.date, 0), event.dau)
        else:
            assert isinstance(event, ImGroups)
            sample = [event.ms, event.count]
            if state["groups"] is None or sample > state["groups"]:
                state["groups"] = sample
        return [self.period_of(event)]

    def summary(self, state: State, period: Period) -> Summary:
        groups = state["groups"][1] if state["groups"] else 0
        return {"peak_dau": max(state["dau"].values(), default=0), "groups": groups}

    def prune(self, state: State, before_ms: int) -> None:
        """Period states are dropped whole by their owner; nothing to prune inside."""

    def merge(self, a: Summary, b: Summary) -> Summary:
        return {"peak_dau": a["peak_dau"] + b["peak_dau"], "groups": a["groups"] + b["groups"]}

"""The meter protocol: a meter folds one app's events into plain, JSON-ready state.

A meter is a small value with
- ``initial()``: an empty state (dicts, lists, ints, strings: straight into a table value);
- ``fold(state, event) -> periods``: adds the event to ``state`` *in place* and returns the
  billing periods it touched. In place rather than copy-on-write because the worker folds
  tens of thousands of events a second; callers that keep state in a table write the state
  back after a batch (the Faust rule), and nothing else holds a reference to it;
- ``summary(state, period)``: the app's part of one period, mergeable across apps with
  ``merge(a, b)`` (sums add, 5-minute arrays add point-wise, day sets unite, storage step
  functions add), which is what account-level rating consumes.

``state_key`` carries a version: a change of state shape bumps it, so stored state of an
older shape is never misread (Quix Streams' state suffix idea).
"""

from __future__ import annotations

from typing import Any, Protocol

from rating.periods import Period
from topics.events import UsageEvent

State = dict[str, Any]
Summary = dict[str, Any]


class Meter(Protocol):
    @property
    def family(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def period_kind(self) -> str:
        """"day" or "month"."""

    @property
    def registry(self) -> bool:
        """True: one state per app spanning periods (recording tasks), pruned by time."""

    @property
    def state_key(self) -> str: ...

    def initial(self) -> State: ...

    def period_of(self, event: UsageEvent) -> Period | None:
        """The period whose state the event folds into (None for registry meters)."""

    def fold(self, state: State, event: UsageEvent) -> list[Period]: ...

    def summary(self, state: State, period: Period) -> Summary: ...

    def merge(self, a: Summary, b: Summary) -> Summary: ...

    def prune(self, state: State, before_ms: int) -> None:
        """Forget what ended before ``before_ms`` (registry meters; others keep nothing)."""


def add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Key-wise sum of two count maps (a new dict)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def add_arrays(a: list[int], b: list[int]) -> list[int]:
    """Point-wise sum of two equal-length sample arrays."""
    return [x + y for x, y in zip(a, b, strict=True)]

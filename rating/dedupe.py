"""Exact dedupe by (sdk_app_id, event_id), kept for the lateness horizon by event time.

Not an LRU: an entry is forgotten only when its event time falls behind the horizon, and
then a resend of it is rejected as ``too_late`` before dedupe is asked, so no duplicate
can ever be billed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Deduper:
    seen: dict[tuple[int, str], int] = field(default_factory=dict)
    pruned_until_ms: int = 0

    def first_time(self, sdk_app_id: int, event_id: str, event_ms: int) -> bool:
        """True (and remembered) the first time; False for a duplicate."""
        key = (sdk_app_id, event_id)
        if key in self.seen:
            return False
        self.seen[key] = event_ms
        return True

    def prune(self, before_ms: int) -> int:
        """Forget entries whose event time is before ``before_ms``; returns how many."""
        old = [k for k, ms in self.seen.items() if ms < before_ms]
        for key in old:
            del self.seen[key]
        self.pruned_until_ms = before_ms
        return len(old)

    def __len__(self) -> int:
        return len(self.seen)

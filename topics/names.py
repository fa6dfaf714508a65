"""Topic names (with an optional prefix), partition counts and configs: SPEC §2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

_V = TypeVar("_V")


class TypeTable(dict[str, _V]):
    """A table keyed by event type that answers ``in`` and ``get`` for any decoded JSON
    value: a ``type`` that is a list or an object is simply not in it (a plain dict raises
    ``TypeError: unhashable type``). Indexing stays the dict's own."""

    __slots__ = ()

    def __contains__(self, key: object) -> bool:
        return type(key) is str and dict.__contains__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.get(self, key, default) if type(key) is str else default


USAGE_TOPIC_OF_TYPE = TypeTable({
    "relay.traffic": "usage.relay",
    "recording.start": "usage.recording",
    "recording.heartbeat": "usage.recording",
    "recording.stop": "usage.recording",
    "transcode.usage": "usage.transcode",
    "snapshot.count": "usage.snapshot",
    "moderation.count": "usage.snapshot",
    "vod.storage": "usage.vod",
    "vod.traffic": "usage.vod",
    "im.dau": "usage.im",
    "im.groups": "usage.im",
})
USAGE_TOPICS = tuple(dict.fromkeys(USAGE_TOPIC_OF_TYPE.values()))
BILLING_TOPIC_OF_PRODUCT = {
    "css": "billing.css.charges",
    "vod": "billing.vod.charges",
    "im": "billing.im.charges",
}
CONFIG_TOPIC = "config.apps"
CLOCK_TOPIC = "control.clock"
QUARANTINE_TOPIC = "usage.quarantine"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


USAGE_RETENTION_DAYS = 60  # must exceed the lateness horizon (40 d) plus the month grace


@dataclass(frozen=True, slots=True)
class TopicNames:
    """All topic names under one prefix, e.g. ``TopicNames("prod.")``."""

    prefix: str = ""
    partitions: int = 8
    usage_retention_days: int = USAGE_RETENTION_DAYS

    def __call__(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def usage_topic(self, event_type: str) -> str:
        return self(USAGE_TOPIC_OF_TYPE[event_type])

    def billing_topic(self, product: str) -> str:
        return self(BILLING_TOPIC_OF_PRODUCT[product])

    def all(self) -> list[TopicSpec]:
        retention = (("retention.ms", str(self.usage_retention_days * 86_400_000)),)
        specs = [TopicSpec(self(t), self.partitions, retention) for t in USAGE_TOPICS]
        specs.append(TopicSpec(self(CONFIG_TOPIC), 1, (("cleanup.policy", "compact"),)))
        specs.append(TopicSpec(self(CLOCK_TOPIC), 1))
        specs += [TopicSpec(self(t), self.partitions) for t in BILLING_TOPIC_OF_PRODUCT.values()]
        specs.append(TopicSpec(self(QUARANTINE_TOPIC), self.partitions))
        return specs

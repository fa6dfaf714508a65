"""Prometheus metrics of the worker, in one container built on a registry (tests pass a fresh one).

Labels come only from bounded sets: event type, outcome, quarantine reason, product, item,
topic, table, package kind. No account or app ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

ITEMS = (
    ("css", "recording.peak_channels"), ("css", "relay.traffic"), ("css", "relay.bandwidth.daily_peak"),
    ("css", "relay.bandwidth.monthly_95"), ("css", "relay.bandwidth.monthly_avg_daily_peak"),
    ("css", "transcode.standard"), ("css", "transcode.top_speed"), ("css", "transcode.audio"),
    ("css", "snapshot"), ("css", "moderation"), ("vod", "vod.storage"), ("vod", "vod.traffic"),
    ("im", "im.dau_overage"), ("im", "im.group_overage"),
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CLOSE_DELAY_BUCKETS = (1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    build: Info
    events: Counter
    quarantined: Counter
    late_events: Counter
    charges: Counter
    revisions: Counter
    charged_cny: Gauge
    month_to_date_cny: Gauge
    package_balance: Gauge
    packages_exhausted: Gauge
    latency: Histogram
    consumer_lag: Gauge
    close_delay: Histogram
    table_entries: Gauge
    stale_tasks: Counter
    redelivered: Counter
    ready: Gauge
    clock: Gauge
    close_clock: Gauge
    ingested: Counter
    tombstones: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None, prefix: str = "vasbill") -> Metrics:
        r = registry or CollectorRegistry()
        metrics = cls(
            registry=r,
            build=Info(f"{prefix}_build", "Worker build: version and shipped catalogs.", registry=r),
            events=Counter(f"{prefix}_events_total", "Usage events by type and outcome.",
                           ["type", "outcome"], registry=r),
            quarantined=Counter(f"{prefix}_quarantined_total", "Events sent to quarantine, by reason.",
                                ["reason"], registry=r),
            late_events=Counter(f"{prefix}_late_events_total", "Accepted events for an already closed period.",
                                registry=r),
            charges=Counter(f"{prefix}_charges_total", "Charge revisions emitted.", ["product", "item"], registry=r),
            revisions=Counter(f"{prefix}_revisions_total", "Charge revisions after the first (re-ratings).",
                              ["product", "item"], registry=r),
            charged_cny=Gauge(f"{prefix}_charged_cny", "Charged amount (sum of emitted deltas), CNY.",
                              ["product", "item"], registry=r),
            month_to_date_cny=Gauge(f"{prefix}_month_to_date_cny",
                                    "Amount of the current month's closed periods, CNY.", ["product", "item"],
                                    registry=r),
            package_balance=Gauge(f"{prefix}_package_balance", "Remaining resource package balance (GB or hours).",
                                  ["kind"], registry=r),
            packages_exhausted=Gauge(f"{prefix}_packages_exhausted", "Valid packages with no balance left.",
                                     ["kind"], registry=r),
            latency=Histogram(f"{prefix}_event_to_state_latency_seconds",
                              "From the message's Kafka timestamp to its events being stored.",
                              buckets=LATENCY_BUCKETS, registry=r),
            consumer_lag=Gauge(f"{prefix}_consumer_lag_messages", "Messages behind the high watermark, by topic.",
                               ["topic"], registry=r),
            close_delay=Histogram(f"{prefix}_period_close_delay_seconds",
                                  "Billing clock at a period's close minus its close time.",
                                  buckets=CLOSE_DELAY_BUCKETS, registry=r),
            table_entries=Gauge(f"{prefix}_table_entries", "Keys in each table on this worker.", ["table"],
                                registry=r),
            stale_tasks=Counter(f"{prefix}_stale_recording_tasks_total",
                                "Recording tasks without a stop when their month closed.", registry=r),
            redelivered=Counter(f"{prefix}_redelivered_messages_total",
                                "Input messages skipped: their stage's state already held them (delivered "
                                "again after a crash or a rebalance).", ["stage"], registry=r),
            ready=Gauge(f"{prefix}_ready", "1 when partitions are assigned and tables recovered.", registry=r),
            clock=Gauge(f"{prefix}_clock_seconds", "Largest billing clock of this worker's partitions (epoch s).",
                        registry=r),
            close_clock=Gauge(f"{prefix}_close_clock_seconds",
                              "Smallest clock over every partition of a usage topic: periods close by it (epoch s).",
                              ["topic"], registry=r),
            ingested=Counter(f"{prefix}_ingested_messages_total",
                             "Usage-topic messages read by stage 0 (any producer, any key), by topic.",
                             ["topic"], registry=r),
            tombstones=Counter(f"{prefix}_tombstones_total",
                               "Messages without a value (tombstones) on usage topics: counted and skipped.",
                               registry=r),
        )
        metrics.initialise()
        try:
            pkg = version("vasbill")
        except PackageNotFoundError:  # pragma: no cover - running from a checkout
            pkg = "unknown"
        from rating.catalog import builtin_catalogs

        metrics.build.info({"version": pkg, "catalogs": ",".join(c.name for c in builtin_catalogs())})
        return metrics

    def initialise(self) -> None:
        """Create every known label set at 0, so the first increase is visible to rate()."""
        from rating.pricers import UNITS  # noqa: F401 - the item list lives with the pricers
        from topics.appconfig import PACKAGE_KINDS
        from topics.events import SCHEMAS
        from topics.reasons import QuarantineReason

        for reason in QuarantineReason:
            self.quarantined.labels(reason.value)
        for event_type in [*SCHEMAS, "invalid"]:
            for outcome in ("accepted", "duplicate", "quarantined"):
                self.events.labels(event_type, outcome)
        for product, item in ITEMS:
            self.charges.labels(product, item)
            self.revisions.labels(product, item)
        for kind in PACKAGE_KINDS:
            self.packages_exhausted.labels(kind)
        for stage in ("stage1", "stage2"):
            self.redelivered.labels(stage)
        from topics.names import USAGE_TOPICS

        for topic in USAGE_TOPICS:
            self.ingested.labels(topic)

    def add_charge(self, product: str, item: str, revision: int, delta: Decimal) -> None:
        self.charges.labels(product, item).inc()
        if revision > 1:
            self.revisions.labels(product, item).inc()
        self.charged_cny.labels(product, item).inc(float(delta))

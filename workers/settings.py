"""Worker settings from flags and environment, frozen once built."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rating.biller import BillingSettings
from workers.kafka_io import KafkaSettings

STORES = ("memory", "rocksdb")
CLOCKS = ("wall", "event")
GUARANTEES = ("at_least_once", "exactly_once")


def group_of(prefix: str, app_id: str) -> str:
    """The Faust app id: consumer group and table changelog names. Under the topic prefix, so
    two prefixes on one cluster (a replay next to the live worker) never share tables,
    whatever ``--app-id`` says."""
    return f"{prefix}{app_id}"


@dataclass(frozen=True)
class WorkerSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    prefix: str = ""
    partitions: int = 8
    app_id: str = "vasbill"
    store: str = "rocksdb"
    data_dir: Path = Path("./vasbill-data")
    web_host: str = "127.0.0.1"  # the name other workers reach this one by (Faust's canonical URL)
    web_bind: str = "127.0.0.1"  # the address the web server listens on: loopback by default
    web_port: int = 6066
    clock: str = "wall"
    billing: BillingSettings = field(default_factory=BillingSettings)
    processing_guarantee: str = "at_least_once"
    embedded: bool = False  # short session timeouts for the embedded broker
    tick_interval_s: float = 30.0  # wall clock: how often the leader ticks
    batch_max: int = 500  # messages taken per batch
    batch_within_s: float = 0.05
    check_retention: bool = True
    provisional_every_s: float = 10.0  # month-to-date summaries from stage 1, at most this often
    month_to_date_every_s: float = 15.0  # the month-to-date gauge is recomputed this often

    def __post_init__(self) -> None:
        problems = []
        if self.store not in STORES:
            problems.append(f"store must be one of {', '.join(STORES)}")
        if self.clock not in CLOCKS:
            problems.append(f"clock must be one of {', '.join(CLOCKS)}")
        if self.processing_guarantee not in GUARANTEES:
            problems.append(f"processing guarantee must be one of {', '.join(GUARANTEES)}")
        if self.partitions < 1:
            problems.append("partitions must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def group(self) -> str:
        return group_of(self.prefix, self.app_id)

    @property
    def group_dir(self) -> Path:
        """Faust's data dir for this group: RocksDB files of two groups never mix."""
        return self.data_dir / "".join(c if c.isalnum() or c in "._-" else "_" for c in self.group)

    @property
    def store_url(self) -> str:
        return "memory://" if self.store == "memory" else "rocksdb://"

    @classmethod
    def env_defaults(cls) -> dict[str, str]:
        """Environment variables read by ``vasbill worker`` (flags override them)."""
        names = ("VASBILL_STORE", "VASBILL_CLOCK", "VASBILL_WEB_PORT", "VASBILL_WEB_HOST", "VASBILL_DATA_DIR",
                 "VASBILL_PARTITIONS", "VASBILL_APP_ID", "VASBILL_PROCESSING_GUARANTEE")
        return {n: os.environ[n] for n in names if n in os.environ}

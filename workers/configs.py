"""Every worker's view of ``config.apps``: all versions of every app, read like a global table.

A background reader assigns every partition of ``config.apps`` (no consumer group), reads
from the beginning and keeps reading; each document is a new version of its app
(SPEC §4). Stage agents wait for the first catch-up before they process events; they catch
up once more when a message's ``vasbill-configs`` header names offsets not read yet, and
when an event names an app not seen yet before calling it unknown, so a config produced
before its events is always seen.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from rating.configs import read_app_config
from topics.appconfig import AppDirectory
from topics.reasons import ConfigError
from workers.kafka_io import KafkaSettings, client_config

log = logging.getLogger(__name__)


async def reader_from_beginning(kafka: KafkaSettings, topic: str) -> tuple[Any, list[Any]]:
    """A started aiokafka consumer assigned every partition of ``topic`` (no group), at its
    beginning: how the worker reads the topics every worker reads whole (configs, ticks)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    config = client_config(kafka.bootstrap, kafka.security, library="aiokafka")
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **config)
    await consumer.start()
    partitions = consumer.partitions_for_topic(topic) or {0}
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer, tps


class ConfigReader:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.directory = AppDirectory()
        self.synced = asyncio.Event()
        self.invalid = 0
        self.read_to: dict[int, int] = {}  # partition -> offset read up to (exclusive)
        self._consumer: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._consumer, _tps = await reader_from_beginning(self.kafka, self.topic)
        await self.catch_up()
        self.synced.set()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def catch_up(self, idle_s: float = 0.2) -> int:
        """Read until a poll returns nothing and every partition is at its high watermark
        (from Fetch responses: Tansu under-reports ListOffsets)."""
        read = 0
        async with self._lock:
            while True:
                batches = await self._consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=5000)
                for tp, records in batches.items():
                    for record in records:
                        read += self._apply(record.value)
                    if records:
                        self.read_to[tp.partition] = max(self.read_to.get(tp.partition, 0), records[-1].offset + 1)
                if not batches and await self._at_end():
                    for tp in self._consumer.assignment():
                        position = await self._consumer.position(tp)
                        self.read_to[tp.partition] = max(self.read_to.get(tp.partition, 0), position)
                    return read

    def has_read(self, ends: dict[int, int]) -> bool:
        """True if the reader is at or past these end offsets (``topics.configstamp``)."""
        return all(self.read_to.get(partition, 0) >= offset for partition, offset in ends.items())

    async def _at_end(self) -> bool:
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None and await self._consumer.position(tp) < high:
                return False
        return True

    async def follow(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.catch_up()
            except Exception:  # pragma: no cover - logged, retried
                log.exception("config.apps read failed; retrying")

    def _apply(self, value: bytes | None) -> int:
        if not value:
            return 0
        try:
            self.directory.add(read_app_config(orjson.loads(value)))
            return 1
        except (orjson.JSONDecodeError, ConfigError) as exc:
            self.invalid += 1
            log.warning("invalid app config ignored: %s", exc)
            return 0

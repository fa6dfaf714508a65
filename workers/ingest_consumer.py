"""Stage 0's Kafka side: read the usage topics in bulk, route, forward, commit.

Measured on this machine (README, Performance): Faust's per-message path caps one event a
message near 3,000–6,000 events/s, while a bare aiokafka consumer reads 150,000–200,000
such messages a second. So the first hop is a plain aiokafka consumer group
(``<group>-ingest``) with ``getmany``: it decodes each message once, routes its events to
their app's home partition (``workers.ingest.Router``) and sends them packed, up to 1,000
events a message, to the internal events topic, where the Faust stages read them at their
per-message cost divided by the pack size.

It is a sequencer (``workers.ingest``): every usage partition is assigned to one member
of the group (``AllToOne``; the other workers' stage 0 stand by and take over on a
rebalance), and records are released in the order of their Kafka timestamps, merged over
the partitions: a record waits until every partition has been read past its timestamp (a
partition read to its end counts as read up to ``now − HOLD_BACK_MS``, so a message still
on its way from a producer is not overtaken). Timestamps are clamped to be monotone per
partition and never later than the wall clock at fetch, so a forged timestamp cannot
hold a partition back. One sequencer bounds stage 0 at one core's throughput (bench).

Delivery is at-least-once: offsets are committed after the forwards are acknowledged. A
crash or a rebalance forwards the messages since the last commit again; stage 1 drops the
events as duplicates (exact dedupe by sdk_app_id and event_id) and a repeated tick changes
nothing, so the bill is the same. Quarantine records of those messages may repeat.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson

from topics import configstamp
from topics.clockstamp import ReplayClock
from topics.names import CLOCK_TOPIC, USAGE_TOPICS, TopicNames
from topics.reasons import QuarantineReason, Rejection
from workers.configs import ConfigReader, reader_from_beginning
from workers.ingest import FANOUT_TYPE, Forward, Router, Tick, account_home, header_value, parse_tick, quarantine_value
from workers.kafka_io import KafkaSettings, client_config

log = logging.getLogger("vasbill.ingest")

MAX_TICKS_KEPT = 200_000
HOLD_BACK_MS = 300
_APP_ID = re.compile(rb'"sdk_app_id"\s*:\s*([0-9]{1,10})')


def all_to_one_assignor() -> Any:
    """A group assignor that gives every partition to one member (the first by member id):
    the merge by timestamp needs all partitions in one place."""
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    class AllToOne(RoundRobinPartitionAssignor):  # type: ignore[misc]
        name = "vasbill-all-to-one"

        @classmethod
        def assign(cls, cluster: Any, members: Any) -> Any:
            topics = sorted({t for m in members.values() for t in m.subscription})
            everything = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
            first = min(members)
            return {member: ConsumerProtocolMemberAssignment(cls.version, everything if member == first else [], b"")
                    for member in members}

    return AllToOne


class TickLog:
    """The ticks of ``control.clock`` by offset, read from the beginning and kept up to date:
    fan-out markers on usage partitions are honoured only for ticks found here."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.ticks: dict[int, Tick] = {}
        self.read_to = 0
        self._consumer: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._consumer, tps = await reader_from_beginning(self.kafka, self.topic)
        self._tp = tps[0]  # control.clock has one partition
        await self.catch_up()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    def get(self, offset: int) -> Tick | None:
        return self.ticks.get(offset)

    async def catch_up(self, idle_s: float = 0.1, until: int | None = None, timeout_s: float = 10.0) -> None:
        """Read what is there; with ``until``, keep reading until that offset has been read
        (a fan-out marker names a tick that is stored, so it comes) or ``timeout_s`` passed."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with self._lock:
            while True:
                batches = await self._consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=5000)
                for records in batches.values():
                    for record in records:
                        tick = parse_tick(record.value)
                        if tick is None:
                            log.warning("control.clock offset %d is not a usable clock.tick (ignored): %r",
                                        record.offset, (record.value or b"")[:200])
                        else:
                            self.ticks[record.offset] = tick
                        self.read_to = max(self.read_to, record.offset + 1)
                if len(self.ticks) > MAX_TICKS_KEPT:
                    for offset in sorted(self.ticks)[:len(self.ticks) - MAX_TICKS_KEPT]:
                        del self.ticks[offset]
                if until is not None and self.read_to <= until:
                    if asyncio.get_running_loop().time() < deadline:
                        continue
                    log.warning("control.clock offset %d not read within %.0f s", until, timeout_s)
                    return
                if not batches:
                    high = self._consumer.highwater(self._tp)
                    if high is None or await self._consumer.position(self._tp) >= high:
                        return


class IngestLoop:
    """Runs stage 0 inside the worker process until cancelled."""

    def __init__(self, kafka: KafkaSettings, names: TopicNames, group: str, events_topic: str, partitions: int,
                 configs: ConfigReader, *, embedded: bool, quarantine_topic: str,
                 on_quarantine: Callable[[Rejection], None],
                 on_batch: Callable[[dict[str, int], int, int], None], horizon_ms: int = 40 * 86_400_000) -> None:
        self.kafka, self.names, self.group = kafka, names, group
        self.events_topic, self.partitions = events_topic, partitions
        self.configs = configs
        self.embedded = embedded
        self.quarantine_topic = quarantine_topic
        self.on_quarantine, self.on_batch = on_quarantine, on_batch
        self.lanes = {names(base): base for base in USAGE_TOPICS}
        self.ticks = TickLog(kafka, names(CLOCK_TOPIC))
        self.home = account_home(partitions, self._first_account)
        self.consumer: Any = None
        self.producer: Any = None
        self.ready = asyncio.Event()
        self.forwarded = 0
        self._confirmed_unknown: set[int] = set()
        self._directory_size = 0
        self.tombstones = 0
        self._waited: set[int] = set()  # marker offsets waited for in vain (forged)
        self.horizon_ms = horizon_ms
        self.clock = self._new_clock()  # the replay clock of the merged stream
        self.applied: set[int] = set()  # control.clock offsets whose tick went out
        self.buffers: dict[Any, deque[tuple[int, Any]]] = {}  # partition -> (timestamp, record) held back
        self.last_ts: dict[Any, int] = {}
        self._assigned = -1

    def _first_account(self, app: int) -> str | None:
        versions = self.configs.directory.versions(app)
        return versions[0].account_id if versions else None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        config = client_config(self.kafka.bootstrap, self.kafka.security, library="aiokafka")
        timeouts = ({"session_timeout_ms": 3000, "heartbeat_interval_ms": 300, "fetch_max_wait_ms": 100}
                    if self.embedded else {"session_timeout_ms": 30000, "heartbeat_interval_ms": 3000})
        self.consumer = AIOKafkaConsumer(
            *self.lanes, group_id=f"{self.group}-ingest", enable_auto_commit=False,
            partition_assignment_strategy=(all_to_one_assignor(),),
            auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024, **timeouts, **config)
        self.producer = AIOKafkaProducer(linger_ms=5, max_request_size=2_000_000,
                                         max_batch_size=1_048_576, **config)
        await self.producer.start()
        await self.ticks.start()
        await self.consumer.start()
        await self.producer.partitions_for(self.events_topic)  # created by the Faust app

    async def stop(self) -> None:
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # noqa: BLE001 - stopping: say it and go on
                    log.warning("stopping an ingest client: %s", exc)
        await self.ticks.stop()

    async def run(self) -> None:
        await self.configs.synced.wait()
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            self.ready.set()
            now = int(time.time() * 1000)
            assigned = self.consumer.assignment()
            for tp in [tp for tp in self.buffers if tp not in assigned]:  # moved to another member
                del self.buffers[tp]
                self.last_ts.pop(tp, None)
            if len(assigned) != self._assigned:
                self._assigned = len(assigned)
                self.clock, self.applied = self._new_clock(), set()  # a new owner rebuilds its clock
            for tp, records in batches.items():
                buffer = self.buffers.setdefault(tp, deque())
                last = self.last_ts.get(tp, 0)
                for record in records:
                    ts = record.timestamp if record.timestamp and record.timestamp > 0 else last
                    last = min(max(ts, last), now)
                    buffer.append((last, record))
                self.last_ts[tp] = last
            released = await self._release(assigned, now)
            if released:
                await self._handle(released)

    def _new_clock(self) -> ReplayClock:
        return ReplayClock(self.configs.directory, datetime.now(timezone.utc), self.horizon_ms)

    async def _release(self, assigned: Any, now: int) -> list[tuple[Any, Any]]:
        """The buffered records every partition has been read past, in timestamp order."""
        frontier = None
        for tp in assigned:
            last = self.last_ts.get(tp)
            high = self.consumer.highwater(tp)
            if high is not None and await self.consumer.position(tp) >= high:
                last = max(last or 0, now - HOLD_BACK_MS)  # read to its end
            if last is None:
                return []  # not fetched yet: nothing can be ordered before it
            frontier = last if frontier is None else min(frontier, last)
        if frontier is None:
            return []
        out = []
        for tp, buffer in self.buffers.items():
            while buffer and buffer[0][0] <= frontier:
                ts, record = buffer.popleft()
                out.append((ts, tp.topic, tp.partition, record.offset, tp, record))
        out.sort(key=lambda r: r[:4])
        return [(r[4], r[5]) for r in out]

    async def _handle(self, records: list[tuple[Any, Any]]) -> None:
        needs: list[dict[int, int]] = []
        marker_offsets = []
        for _tp, record in records:
            value, headers = record.value, record.headers
            if headers:
                stamp = header_value(headers, configstamp.HEADER)
                if stamp is not None:
                    needs.append(configstamp.decode(stamp))
            if value is not None and FANOUT_TYPE.encode() in value[:64]:
                try:
                    marker_offsets.append(int(orjson.loads(value).get("offset")))
                except Exception:  # noqa: BLE001, S112 - a forged marker: the router quarantines it
                    continue
        highest = configstamp.highest(needs)
        if highest and not self.configs.has_read(highest):
            await self.configs.catch_up()
        # a genuine marker names a tick already stored: wait (briefly, once per offset) until
        # it is read; a forged one costs at most that wait
        wanted = [o for o in marker_offsets if 0 <= o and o not in self.ticks.ticks and o not in self._waited]
        if wanted and max(wanted) >= self.ticks.read_to:
            await self.ticks.catch_up(until=max(wanted), timeout_s=2.0)
            self._waited.update(o for o in wanted if o not in self.ticks.ticks)
        await self._learn_apps(records)
        forwards, rejected = self._route(records)
        sends = []
        for forward in forwards:
            sends.append(await self.producer.send(
                self.events_topic, forward.value, partition=forward.partition, headers=list(forward.headers),
                timestamp_ms=forward.timestamp_ms))
        for rejection in rejected:
            key = str(rejection.sdk_app_id).encode() if rejection.sdk_app_id else b""
            sends.append(await self.producer.send(self.quarantine_topic, quarantine_value(rejection), key=key))
        if sends:
            await asyncio.gather(*sends)
        for rejection in rejected:
            self.on_quarantine(rejection)
        read: dict[str, int] = {}
        for tp, _record in records:
            read[self.lanes[tp.topic]] = read.get(self.lanes[tp.topic], 0) + 1
        self.on_batch(read, sum(f.events for f in forwards), self.tombstones)
        self.forwarded += sum(f.events for f in forwards)
        offsets: dict[Any, int] = {}
        for tp, record in records:
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - a rebalance: the new owner reads them again (deduped)
            log.info("ingest commit skipped (%s: %s); the messages will be forwarded again and deduped",
                     type(exc).__name__, exc)

    def _route(self, records: list[tuple[Any, Any]]) -> tuple[list[Forward], list[Rejection]]:
        self.clock.now = datetime.now(timezone.utc)
        router = Router(self.partitions, self.home, self.ticks.get, clock=self.clock,
                        lanes=tuple(self.lanes.values()), applied=self.applied)
        for tp, record in records:
            lane = self.lanes[tp.topic]
            try:
                router.add(lane, tp.partition, record.value, record.headers, record.timestamp)
            except Exception as exc:  # noqa: BLE001 - the guard: no message stops the worker
                log.exception("ingest could not route a message of %s[%d]@%d", tp.topic, tp.partition, record.offset)
                router.quarantine.append(Rejection(
                    QuarantineReason.UNPROCESSABLE, f"{type(exc).__name__}: {exc}",
                    (record.value or b"").decode("utf-8", errors="replace")))
        self.tombstones = router.stats.tombstones
        return router.flush()

    async def _learn_apps(self, records: list[tuple[Any, Any]]) -> None:
        """Apps without a config in this batch: read config.apps once more before routing them
        by sdk_app_id (a config produced just before its events). An app confirmed unknown
        is not looked up again until the directory grows. The ids are found by a scan of the
        raw bytes (no second decode); routing itself decides from the decoded events."""
        directory = self.configs.directory
        if len(directory) != self._directory_size:
            self._directory_size, self._confirmed_unknown = len(directory), set()
        apps = {int(m) for _tp, record in records if record.value for m in _APP_ID.findall(record.value)}
        unknown = {app for app in apps - self._confirmed_unknown if not directory.versions(app)}
        if not unknown:
            return
        await self.configs.catch_up()
        self._confirmed_unknown |= {app for app in unknown if not self.configs.directory.versions(app)}

    async def lag(self) -> dict[str, int]:
        """Messages behind the high watermark, by usage topic, for this worker's ingest partitions."""
        out: dict[str, int] = dict.fromkeys(self.lanes, 0)
        if self.consumer is None:
            return out
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            try:
                position = await self.consumer.position(tp)
            except Exception:  # noqa: BLE001, S112 - a partition moving away mid-sample
                continue
            if high is not None and position is not None:
                out[tp.topic] = out.get(tp.topic, 0) + max(0, high - position)
        return out

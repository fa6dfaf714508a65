"""The Faust app: a thin shell around ``workers.stages`` (SPEC §1 design card).

Agents only decode, route, store and emit:
- stage 0 (``workers.ingest_consumer``, a plain aiokafka consumer group, not a Faust
  agent: measured faster) reads the usage topics, whatever their keys, and forwards each
  event to its app's home partition of the internal ``<app-id>.events`` topic, packed;
- the stage-1 agent on that topic with the ``stage1`` table: one ``Stage1`` per lane (the
  usage topic an event came from), each with its own clock per partition;
- the stage-2 agent on the internal ``vasbill.summaries`` topic (keyed by account_id) with
  the ``stage2`` table: the one explicit repartition, per-app summaries to accounts;
- the clock agent on ``control.clock``, which writes a fan-out marker for every tick onto
  every usage topic partition; stage 0 forwards the tick after the events stored there
  before it (only an agent that owns a partition may write its tables, and a tick must not
  overtake events);
- with ``--clock wall`` the leader's timer sends a tick every ``tick_interval_s``.

Batches: ``take_events`` yields up to ``batch_max`` messages (each maybe a JSON array of
events); they are grouped by partition and each group is processed with Faust's current
event set to one of its own events, so table changelog writes (and RocksDB writes) go to
that partition. Every changed key is written once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, cast

import faust
import orjson
from faust.streams import _current_event  # pinned faust-streaming: see workers/compat.py

from topics import configstamp
from topics.names import BILLING_TOPIC_OF_PRODUCT, CLOCK_TOPIC, CONFIG_TOPIC, QUARANTINE_TOPIC, USAGE_TOPICS, TopicNames
from topics.reasons import QuarantineReason, Rejection
from workers.compat import (
    embedded_broker_settings,
    install_broker_compat,
    production_settings,
    set_consumer_fetch_wait,
)
from workers.configs import ConfigReader
from workers.ingest import LANE_HEADER, OWN_HEADER, account_home, fanout_marker, parse_tick, quarantine_value
from workers.ingest_consumer import IngestLoop
from workers.journal import Journal
from workers.kafka_io import ssl_context
from workers.kv import MAX_VALUE_BYTES, BatchKV, ValueTooLarge
from workers.metrics import Metrics
from workers.settings import WorkerSettings
from workers.stages import Lanes, Stage1, Stage2

log = logging.getLogger("vasbill.worker")
SUMMARIES_TOPIC = "summaries"
EVENTS_TOPIC = "events"
CLOCK_HEADER = "vasbill-clock"


class TableStore:
    """str keys over a Faust table with raw bytes keys and values."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        value: bytes | None = self.table.get(key.encode(), default)
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.encode() in self.table


@contextmanager
def in_partition_of(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event: table writes then go to its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def header(event: Any, name: str = CLOCK_HEADER) -> bytes | None:
    headers = event.message.headers or []
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == name:
            return bytes(value) if value is not None else None
    return None


def credentials(settings: WorkerSettings) -> Any:
    security = settings.kafka.security
    if security.uses_sasl:
        return faust.SASLCredentials(
            username=security.sasl_username, password=security.sasl_password,
            mechanism=security.sasl_mechanism,
            ssl_context=ssl_context(security) if security.uses_ssl else None,
        )
    if security.uses_ssl:
        return faust.SSLCredentials(ssl_context(security))
    return None


class VasbillWorker:
    """Builds the Faust app and keeps what its agents share."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        install_broker_compat()
        set_consumer_fetch_wait(100 if settings.embedded else None)
        extra = embedded_broker_settings() if settings.embedded else production_settings()
        extra["processing_guarantee"] = settings.processing_guarantee
        self.names = TopicNames(settings.prefix, settings.partitions)
        self.app = faust.App(
            settings.group,
            broker=[f"kafka://{server}" for server in settings.kafka.servers],
            broker_credentials=credentials(settings),
            store=settings.store_url,
            datadir=str(settings.group_dir),
            web_host=settings.web_host,
            web_bind=settings.web_bind,
            web_port=settings.web_port,
            topic_partitions=settings.partitions,
            producer_max_request_size=2_000_000,
            consumer_max_fetch_size=4 * 1024 * 1024,
            stream_buffer_maxsize=max(4096, settings.batch_max * 2),
            **extra,
        )
        self.configs = ConfigReader(settings.kafka, self.names(CONFIG_TOPIC))
        self._directory_size = 0
        self._confirmed_unknown: set[int] = set()
        self.started = time.monotonic()
        self.ingest: IngestLoop | None = None
        self._app_home = account_home(settings.partitions, self._first_account)  # = stage 0's
        self.stage1 = {base: Stage1(base, lambda: self.configs.directory, settings.billing, clock=settings.clock,
                                    provisional_every_s=settings.provisional_every_s, internal=True,
                                    home=self._home, lanes=USAGE_TOPICS)
                       for base in USAGE_TOPICS}
        self.lanes = Lanes(self.stage1)
        self.stage2 = Stage2(lambda: self.configs.directory, settings.billing, settings.partitions)
        self.metrics = Metrics.create()
        self.failure: str | None = None
        self.clock_ms = 0
        self.balances: dict[str, dict[str, tuple[str, Any]]] = {}
        self.journals: dict[tuple[str, int], Journal] = {}
        self._declare()

    def _topic(self, base: str, partitions: int | None = None, internal: bool = False) -> Any:
        return self.app.topic(
            self.names(base), key_type=bytes, value_type=bytes, key_serializer="raw",
            value_serializer="raw", partitions=partitions or self.settings.partitions, internal=internal,
        )

    def _table(self, name: str) -> Any:
        # key_type/value_type too: without them Faust gives the changelog "json" serializers,
        # and recovery would decode our raw bytes into tuples and dicts (a restart loses state)
        schema: Any = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        return self.app.Table(name, partitions=self.settings.partitions, schema=schema,
                              key_type=bytes, value_type=bytes)

    def _declare(self) -> None:
        app, settings = self.app, self.settings
        self.usage = {base: self._topic(base) for base in USAGE_TOPICS}
        # internal, one per worker group: two groups on one prefix (a replay next to the live
        # worker) must not read each other's summaries
        self.summaries = self._topic(f"{settings.app_id}.{SUMMARIES_TOPIC}", internal=True)
        self.events = self._topic(f"{settings.app_id}.{EVENTS_TOPIC}", internal=True)
        self.billing = {product: self._topic(t) for product, t in BILLING_TOPIC_OF_PRODUCT.items()}
        self.quarantine = self._topic(QUARANTINE_TOPIC)
        self.clock = self._topic(CLOCK_TOPIC, partitions=1)
        self.table1 = self._table("stage1")
        self.table2 = self._table("stage2")
        app.agent(self.events, name="stage1")(self._fatal(self._stage1_agent))
        app.agent(self.summaries, name="stage2")(self._fatal(self._stage2_agent))
        app.task(self._fatal_task(self._run_ingest))
        app.agent(self.clock, name="clock")(self._fatal(self._clock_agent))
        app.task(self._start_configs)
        app.timer(interval=5.0)(self._sample_gauges)
        app.timer(interval=settings.month_to_date_every_s)(self._sample_month_to_date)
        if settings.clock == "wall":
            app.timer(interval=settings.tick_interval_s, on_leader=True)(self._wall_tick)
        from workers.views import register_views

        register_views(self)

    # -- agents ------------------------------------------------------------------------------

    def _fatal(self, body: Any) -> Any:
        """An agent that fails stops the worker: its partitions would otherwise sit unprocessed
        while /readyz said ready. /healthz then answers 500 and the process exits non-zero."""

        async def agent(stream: Any) -> None:
            await self._or_stop(body(stream))

        agent.__name__ = getattr(body, "__name__", "agent")
        return agent

    def _fatal_task(self, body: Any) -> Any:
        """The same for a task (stage 0): Faust calls a task without arguments."""

        async def task() -> None:
            await self._or_stop(body())

        task.__name__ = getattr(body, "__name__", "task")
        return task

    async def _or_stop(self, running: Any) -> None:
        try:
            await running
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
            await self.app.crash(exc)
            raise

    def _failed(self, exc: BaseException) -> None:
        """The worker cannot go on: say why, and make sure the process ends non-zero soon even
        if Faust's shutdown hangs (an operator's SIGTERM must not be needed, nor ignored)."""
        import os
        import threading

        self.failure = f"{type(exc).__name__}: {exc}"
        log.exception("worker failed (%s); stopping", self.failure)

        def hard_exit() -> None:
            log.error("worker did not stop within 15 s after a failure; exiting")
            os._exit(70)

        timer = threading.Timer(15.0, hard_exit)
        timer.daemon = True
        timer.start()

    async def _start_configs(self) -> None:
        await self.configs.start()
        follower = asyncio.ensure_future(self.configs.follow())

        async def stop_configs(app: Any, **kwargs: Any) -> None:
            follower.cancel()
            await self.configs.stop()

        self.app.on_before_shutdown.connect(cast(Any, stop_configs))  # mode's signal types want a sync receiver

    def _home(self, app: int) -> int:
        return self._app_home(app)

    def _first_account(self, app: int) -> str | None:
        versions = self.configs.directory.versions(app)
        return versions[0].account_id if versions else None

    async def _run_ingest(self) -> None:
        """Stage 0, once the internal events topic exists (Faust creates it at start)."""
        from workers.kafka_io import existing_topics

        await self.configs.synced.wait()
        settings, topic = self.settings, self.events.get_topic_name()
        loop = asyncio.get_running_loop()
        while topic not in await loop.run_in_executor(None, existing_topics, settings.kafka):
            await asyncio.sleep(0.2)
        self.ingest = IngestLoop(settings.kafka, self.names, settings.group, topic, settings.partitions, self.configs,
                                 embedded=settings.embedded, quarantine_topic=self.quarantine.get_topic_name(),
                                 on_quarantine=self._observe_rejection, on_batch=self._observe_ingest,
                                 horizon_ms=settings.billing.horizon_s * 1000)
        await self.ingest.start()
        log.info("stage 0 reading %s (group %s-ingest) into %s", ", ".join(self.ingest.lanes), settings.group, topic)
        try:
            await self.ingest.run()
        finally:
            await self.ingest.stop()

    def _observe_rejection(self, rejection: Rejection) -> None:
        self.metrics.quarantined.labels(rejection.reason.value).inc()
        self.metrics.events.labels(_type_label(rejection.payload), "quarantined").inc()

    def _observe_ingest(self, read: dict[str, int], events: int, tombstones: int) -> None:
        for lane, count in read.items():
            self.metrics.ingested.labels(lane).inc(count)
        if tombstones:
            self.metrics.tombstones.inc(tombstones)

    async def _stage1_agent(self, stream: Any) -> None:
        async for events in stream.take_events(self.settings.batch_max, within=self.settings.batch_within_s):
            await self.configs.synced.wait()
            needs = await self._configs_for(events)
            stamp = ((configstamp.HEADER, configstamp.encode(needs)),) if needs else None
            done, sends = [], []
            for partition, group in _by_partition(events).items():
                messages = [(e.message.offset, e.value, header(e), header(e, LANE_HEADER),
                             header(e, OWN_HEADER) == b"tick") for e in group]
                kv, outs = self._guarded(group, self.table1, self.lanes, partition, messages)
                if await self._learned_apps([r for out in outs for r in out.quarantine]):  # nothing written yet
                    kv, outs = self._guarded(group, self.table1, self.lanes, partition, messages)
                if self.lanes.unknown_lane:
                    log.warning("internal events partition %d: %d messages without a known lane header ignored "
                                "(not written by stage 0)", partition, self.lanes.unknown_lane)
                    self.lanes.unknown_lane = 0
                for out in outs:
                    for rejection in out.quarantine:
                        key = str(rejection.sdk_app_id).encode() if rejection.sdk_app_id else b""
                        sends.append(await self.quarantine.send(key=key, value=quarantine_value(rejection)))
                    for account, message in out.summaries:
                        sends.append(await self.summaries.send(key=account.encode(), value=message, headers=stamp))
                    if out.watermark is not None:
                        for q in range(self.settings.partitions):
                            sends.append(await self.summaries.send(key=b"", value=out.watermark, partition=q))
                done.append((group, kv, outs))
            await _delivered(sends)  # outputs first: a crash before the state write re-sends them
            for group, kv, outs in done:
                with in_partition_of(group[-1]):
                    kv.flush()
                for out in outs:
                    self._observe_stage1(group, out)

    def _guarded(self, group: list[Any], table: Any, stage: Any, partition: int, messages: list[Any]
                 ) -> tuple[BatchKV, Any]:
        """Run a partition's batch; an event (or summary) that raises is taken out and the
        batch run again from a clean store view, so it goes to quarantine as
        ``unprocessable`` with its error and leaves the state as it was (SPEC §3). Nothing a
        message holds can stop the worker."""
        failures: dict[Any, str] = {}
        stages: list[Any] = [*self.stage1.values(), self.stage2]
        for each in stages:
            each.failures = failures
        try:
            while True:
                kv = self._batch_kv(table, group)
                try:
                    out = stage.process(partition, messages, kv)
                    kv.prepare()  # a value too large for one Kafka message raises here, before any send
                    return kv, out
                except ValueTooLarge as exc:
                    culprits = self._too_large_at(group, table, stage, partition, messages, failures)
                    if not culprits or any(c in failures for c in culprits):
                        raise
                    failures.update(dict.fromkeys(culprits, f"ValueTooLarge: {exc}"[:2000]))
                    log.error("partition %d: %d events of the message at offset %s would grow a table value past "
                              "one Kafka message; they go to quarantine as unprocessable (%s)", partition,
                              len(culprits), messages[0][0] if not culprits else
                              (culprits[0] if isinstance(culprits[0], int) else culprits[0][0]), exc)
                except Exception as exc:
                    at = stage.at
                    if at is None or at in failures:
                        raise
                    failures[at] = f"{type(exc).__name__}: {exc}"[:2000]
                    log.exception("partition %d: the message at %s raised; it goes to quarantine as "
                                  "unprocessable", group[-1].message.partition, at)
        finally:
            for each in stages:
                each.failures = {}

    def _too_large_at(self, group: list[Any], table: Any, stage: Any, partition: int,
                      messages: list[Any], failures: dict[Any, str]) -> list[Any]:
        """The guard's keys of the events that make a table value outgrow one Kafka message:
        the first message after which it no longer fits (bisection over prefixes of the
        batch), and in it the events from the first one that does not fit on (bisection
        again; a summary of stage 2 is one key). Empty if the batch alone is not the cause."""
        def too_large(count: int, extra: dict[Any, str] | None = None) -> bool:
            kv = self._batch_kv(table, group)
            failures.update(extra or {})
            try:
                stage.process(partition, messages[:count], kv)
                kv.prepare()
            except ValueTooLarge:
                return True
            finally:
                for key in extra or {}:
                    failures.pop(key, None)
            return False

        low, high = 1, len(messages)
        if not too_large(high):
            return []
        while low < high:
            middle = (low + high) // 2
            if too_large(middle):
                high = middle
            else:
                low = middle + 1
        offset = messages[low - 1][0]
        if stage is self.stage2:
            return [offset]
        from topics.validation import split_message

        count = len(split_message(messages[low - 1][1]))

        def without(first: int) -> dict[Any, str]:
            return {(offset, i): "probe" for i in range(first, count)}

        keep, fail = 0, count  # the most events of it that still fit: keep..fail
        while keep < fail:
            middle = (keep + fail + 1) // 2
            if too_large(low, without(middle)):
                fail = middle - 1
            else:
                keep = middle
        return list(without(keep))

    def _batch_kv(self, table: Any, group: list[Any]) -> BatchKV:
        """The store view for one partition's batch: its changes are journaled, and the last
        journaled batch is completed first if this process did not write it (a restart or
        a rebalance after a crash in the middle of its writes; ``workers.journal``)."""
        partition = group[-1].message.partition
        journal = self.journals.setdefault((table.name, partition), Journal(f"journal/{partition}", MAX_VALUE_BYTES))
        store = TableStore(table)
        with in_partition_of(group[-1]):
            written = journal.recover(store)
        if written:
            log.info("table %s partition %d: wrote the last journaled batch again "
                     "(%d keys; completes it if a crash cut it short)", table.name, partition, written)
        return BatchKV(store, MAX_VALUE_BYTES, journal)

    async def _configs_for(self, events: list[Any]) -> dict[int, int]:
        """The config.apps offsets the batch's messages were stamped with; read up to them
        first if the reader is behind (a config produced just before these events)."""
        needs = configstamp.highest(configstamp.decode(header(e, configstamp.HEADER)) for e in events)
        if needs and not self.configs.has_read(needs):
            await self.configs.catch_up()
        return needs

    async def _learned_apps(self, rejections: list[Rejection]) -> bool:
        """Events of apps without a config: read config.apps once more before calling them
        unknown (a config produced just before its events may not have been read yet).
        True if that found a config for one of them. An app confirmed unknown is not looked
        up again until the directory grows."""
        directory = self.configs.directory
        if len(directory) != self._directory_size:
            self._directory_size, self._confirmed_unknown = len(directory), set()
        unknown = {r.sdk_app_id for r in rejections if r.reason is QuarantineReason.UNKNOWN_APP
                   and r.sdk_app_id is not None} - self._confirmed_unknown
        if not unknown:
            return False
        await self.configs.catch_up()
        learned = any(app in self.configs.directory for app in unknown)
        self._confirmed_unknown |= {app for app in unknown if app not in self.configs.directory}
        return learned

    async def _stage2_agent(self, stream: Any) -> None:
        async for events in stream.take_events(self.settings.batch_max, within=self.settings.batch_within_s):
            await self.configs.synced.wait()
            await self._configs_for(events)  # the summaries carry their events' stamps
            done, sends = [], []
            for partition, group in _by_partition(events).items():
                messages = [(e.message.offset, e.value) for e in group]
                kv, out = self._guarded(group, self.table2, self.stage2, partition, messages)
                for rejection in out.unprocessable:
                    sends.append(await self.quarantine.send(key=b"", value=quarantine_value(rejection)))
                    self._observe_rejection(rejection)
                for charge in out.charges:
                    sends.append(await self.billing[charge.product].send(
                        key=charge.account_id.encode(), value=orjson.dumps(charge.to_dict())))
                done.append((group, kv, out))
            await _delivered(sends)  # charges first, then the record of what was emitted
            for group, kv, out in done:
                with in_partition_of(group[-1]):
                    kv.flush()
                self._observe_stage2(out)

    async def _clock_agent(self, stream: Any) -> None:
        """A marker for every usable tick onto every usage partition; stage 0 forwards the
        tick itself (read from control.clock) in its place. Unusable ticks are ignored."""
        async for event in stream.events():
            if parse_tick(event.value) is None:
                log.warning("ignored a control.clock record that is not a usable clock.tick (bad JSON, not a "
                            "tick, or a time outside 2000-2099): %r", (event.value or b"")[:200])
                continue
            marker = fanout_marker(event.message.offset)
            for base in USAGE_TOPICS:
                for p in range(self.settings.partitions):
                    await self.usage[base].send(key=b"", value=marker, partition=p)

    # -- metrics -----------------------------------------------------------------------------

    def _observe_stage1(self, group: list[Any], out: Any) -> None:
        m = self.metrics
        for (event_type, outcome), n in out.events.items():
            m.events.labels(event_type, outcome).inc(n)
        for rejection in out.quarantine:
            m.quarantined.labels(rejection.reason.value).inc()
            m.events.labels(_type_label(rejection.payload), "quarantined").inc()
        if out.late_events:
            m.late_events.inc(out.late_events)
        if out.stale_tasks:
            m.stale_tasks.inc(out.stale_tasks)
        if out.redelivered:
            m.redelivered.labels("stage1").inc(out.redelivered)
            log.info("stage 1 %s partition %d: skipped %d messages its state already holds (delivered again "
                     "after a restart or a rebalance)", group[-1].message.topic, out.partition, out.redelivered)
        if out.clock_ms:
            self.clock_ms = max(self.clock_ms, out.clock_ms)
            m.clock.set(self.clock_ms / 1000)
        now = time.time()
        for event in group:
            stamp = event.message.timestamp
            if stamp:
                m.latency.observe(max(0.0, now - stamp))

    def _observe_stage2(self, out: Any) -> None:
        m = self.metrics
        if out.redelivered:
            m.redelivered.labels("stage2").inc(out.redelivered)
        for charge in out.charges:
            m.add_charge(charge.product, charge.item, charge.revision, charge.delta)
        for delay in out.close_delays_ms:
            m.close_delay.observe(delay / 1000)
        for account, packages in out.balances.items():
            self.balances[account] = packages
        for topic, clock in out.close_clocks.items():
            m.close_clock.labels(topic).set(clock / 1000)
        kinds: dict[str, float] = {}
        exhausted: dict[str, int] = {}
        for packages in self.balances.values():
            for kind, left in packages.values():
                kinds[kind] = kinds.get(kind, 0.0) + float(left)
                exhausted[kind] = exhausted.get(kind, 0) + (left <= 0)
        for kind, left in kinds.items():
            m.package_balance.labels(kind).set(left)
            m.packages_exhausted.labels(kind).set(exhausted.get(kind, 0))

    async def _sample_month_to_date(self) -> None:
        """Month-to-date CNY by product and item over the accounts whose stage-2 partitions this
        worker owns: closed periods' latest charges plus a provisional rating of open ones,
        read from the table (so restarts and rebalances neither lose nor double it)."""
        from rating.periods import month_of

        topic = self.summaries.get_topic_name()
        owned = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic)
        month = month_of(self.clock_ms or int(time.time() * 1000)).key
        kv = BatchKV(TableStore(self.table2))
        totals: dict[tuple[str, str], Any] = {}
        for partition in owned:
            for account in self.stage2.accounts(kv, partition):
                for name, amount in self.stage2.month_to_date(kv, account, month)["items"].items():
                    product, item = name.split("/", 1)
                    totals[(product, item)] = totals.get((product, item), 0) + Decimal(amount)
        self.metrics.month_to_date_cny.clear()
        for (product, item), amount in totals.items():
            self.metrics.month_to_date_cny.labels(product, item).set(float(amount))

    async def _sample_gauges(self) -> None:
        """Consumer lag by topic, table sizes and readiness, every few seconds."""
        from workers.views import is_ready

        m = self.metrics
        consumer = self.app.consumer
        inputs = {topic.get_topic_name() for topic in [self.events, self.summaries, self.clock]}
        lag: dict[str, int] = dict.fromkeys(inputs, 0)
        for tp in consumer.assignment():
            if tp.topic not in inputs:  # changelogs and Faust's own topics are not inputs
                continue
            try:
                high = consumer.highwater(tp)
                position = await consumer.position(tp)
            except Exception as exc:  # noqa: BLE001 - a partition moving away mid-sample
                log.debug("lag of %s not sampled: %s", tp, exc)
                continue
            if high is not None and position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - position)
        if self.ingest is not None:  # the usage topics are read by stage 0
            lag.update(await self.ingest.lag())
        m.consumer_lag.clear()  # a partition that moved to another worker leaves no stale value
        for topic, value in lag.items():
            m.consumer_lag.labels(topic).set(value)
        for name, table in [("stage1", self.table1), ("stage2", self.table2)]:
            m.table_entries.labels(name).set(len(table))
        m.ready.set(1 if is_ready(self)[0] else 0)

    async def _wall_tick(self) -> None:
        now = time.time()
        value = orjson.dumps({"type": "clock.tick", "ms": int(now * 1000), "final": False})
        await self.clock.send(key=b"clock", value=value)


async def _delivered(sends: list[Any]) -> None:
    """Wait until every message sent is acknowledged by the broker."""
    if sends:
        await asyncio.gather(*sends)


def _type_label(payload: str) -> str:
    """The event type of a rejected payload, if it is one of ours (bounded label values)."""
    from topics.events import SCHEMAS

    try:
        kind = orjson.loads(payload).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        return "invalid"
    return kind if kind in SCHEMAS else "invalid"


def _by_partition(events: list[Any]) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = {}
    for event in events:
        groups.setdefault(event.message.partition, []).append(event)
    return groups


def create_app(settings: WorkerSettings) -> faust.App:
    return VasbillWorker(settings).app

"""The Faust app: a thin shell around ``workers.stages`` (SPEC §1 design card).

Agents only decode, route, store and emit:
- one stage-1 agent per usage topic (partitioned by sdk_app_id) with its table
  ``stage1-<topic>``;
- the stage-2 agent on the internal ``vasbill.summaries`` topic (keyed by account_id) with
  the ``stage2`` table: the one explicit repartition, per-app summaries to accounts;
- the clock agent on ``control.clock``, which fans every tick out to every usage topic
  partition, because only an agent that owns a partition may write its tables;
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
from topics.timefmt import parse_time, to_ms
from workers.compat import (
    embedded_broker_settings,
    install_broker_compat,
    production_settings,
    set_consumer_fetch_wait,
)
from workers.configs import ConfigReader
from workers.journal import Journal
from workers.kafka_io import ssl_context
from workers.kv import MAX_VALUE_BYTES, BatchKV
from workers.metrics import Metrics
from workers.settings import WorkerSettings
from workers.stages import Stage1, Stage2

log = logging.getLogger("vasbill.worker")
SUMMARIES_TOPIC = "summaries"
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
        self.stage1 = {base: Stage1(base, lambda: self.configs.directory, settings.billing, clock=settings.clock,
                                    provisional_every_s=settings.provisional_every_s)
                       for base in USAGE_TOPICS}
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
        self.billing = {product: self._topic(t) for product, t in BILLING_TOPIC_OF_PRODUCT.items()}
        self.quarantine = self._topic(QUARANTINE_TOPIC)
        self.clock = self._topic(CLOCK_TOPIC, partitions=1)
        self.tables = {base: self._table(f"stage1-{base.split('.')[-1]}") for base in USAGE_TOPICS}
        self.table2 = self._table("stage2")
        for base in USAGE_TOPICS:
            app.agent(self.usage[base], name=f"stage1-{base.split('.')[-1]}")(self._fatal(self._stage1_agent(base)))
        app.agent(self.summaries, name="stage2")(self._fatal(self._stage2_agent))
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
            try:
                await body(stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failure = f"{type(exc).__name__}: {exc}"
                log.exception("agent failed; stopping the worker")
                await self.app.crash(exc)
                raise

        agent.__name__ = getattr(body, "__name__", "agent")
        return agent

    async def _start_configs(self) -> None:
        await self.configs.start()
        follower = asyncio.ensure_future(self.configs.follow())

        async def stop_configs(app: Any, **kwargs: Any) -> None:
            follower.cancel()
            await self.configs.stop()

        self.app.on_before_shutdown.connect(cast(Any, stop_configs))  # mode's signal types want a sync receiver

    def _stage1_agent(self, base: str) -> Any:
        stage, table = self.stage1[base], self.tables[base]

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(self.settings.batch_max, within=self.settings.batch_within_s):
                await self.configs.synced.wait()
                needs = await self._configs_for(events)
                stamp = ((configstamp.HEADER, configstamp.encode(needs)),) if needs else None
                done, sends = [], []
                for partition, group in _by_partition(events).items():
                    messages = [(e.message.offset, e.value, header(e)) for e in group]
                    kv = self._batch_kv(table, group)
                    out = stage.process(partition, messages, kv)
                    if await self._learned_apps(out.quarantine):  # nothing written yet: run it again
                        kv = self._batch_kv(table, group)
                        out = stage.process(partition, messages, kv)
                    for rejection in out.quarantine:
                        key = str(rejection.sdk_app_id).encode() if rejection.sdk_app_id else b""
                        sends.append(await self.quarantine.send(key=key, value=orjson.dumps(rejection.to_dict())))
                    for account, message in out.summaries:
                        sends.append(await self.summaries.send(key=account.encode(), value=message, headers=stamp))
                    if out.watermark is not None:
                        for q in range(self.settings.partitions):
                            sends.append(await self.summaries.send(key=b"", value=out.watermark, partition=q))
                    done.append((group, kv, out))
                await _delivered(sends)  # outputs first: a crash before the state write re-sends them
                for group, kv, out in done:
                    with in_partition_of(group[-1]):
                        kv.flush()
                    self._observe_stage1(group, out)

        return agent

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
                kv = self._batch_kv(self.table2, group)
                out = self.stage2.process(partition, [(e.message.offset, e.value) for e in group], kv)
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
        async for event in stream.events():
            tick = fanout_tick(event.value)
            if tick is not None:
                for base in USAGE_TOPICS:
                    for p in range(self.settings.partitions):
                        await self.usage[base].send(key=b"", value=tick, partition=p)

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
        inputs = {topic.get_topic_name() for topic in [*self.usage.values(), self.summaries, self.clock]}
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
        m.consumer_lag.clear()  # a partition that moved to another worker leaves no stale value
        for topic, value in lag.items():
            m.consumer_lag.labels(topic).set(value)
        for name, table in [*self.tables.items(), ("stage2", self.table2)]:
            m.table_entries.labels(name.split(".")[-1]).set(len(table))
        m.ready.set(1 if is_ready(self)[0] else 0)

    async def _wall_tick(self) -> None:
        now = time.time()
        value = orjson.dumps({"type": "clock.tick", "ms": int(now * 1000), "final": False})
        await self.clock.send(key=b"clock", value=value)


async def _delivered(sends: list[Any]) -> None:
    """Wait until every message sent is acknowledged by the broker."""
    if sends:
        await asyncio.gather(*sends)


def fanout_tick(value: bytes | None) -> bytes | None:
    """A ``clock.tick`` from control.clock as the message fanned out to usage partitions."""
    try:
        doc = orjson.loads(value or b"")
        if not isinstance(doc, dict) or doc.get("type") != "clock.tick":
            return None
        ms = doc.get("ms")
        if ms is None and doc.get("time"):
            ms = to_ms(parse_time(doc["time"]))
        final = doc.get("final") is True
    except (orjson.JSONDecodeError, ValueError, TypeError):
        log.warning("ignored a malformed clock.tick: %r", value[:200] if value else value)
        return None
    return orjson.dumps({"type": "clock.tick", "ms": ms, "final": final})


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

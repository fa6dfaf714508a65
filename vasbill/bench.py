"""``vasbill bench`` (SPEC §12 "Fast"): one run on the embedded broker, one table.

What it does, in order, on one generated month (``vasbill.gen``):

1. broker, topics, app configs; the month is split into a backlog (everything but the last
   ``--rate`` x ``--live-seconds`` lines) and a live tail;
2. the backlog is produced at full speed (producer events/s is reported, to show it is
   not the bottleneck) before any consumer runs;
3. ceiling: a bare aiokafka consumer (manually assigned partitions, no group) reads the
   usage topics and ``orjson``-decodes every message, counting events;
4. worker: a ``vasbill worker`` subprocess (memory store, event clock) is started on the
   backlog; its ``vasbill_events_total`` on ``/metrics`` is polled every 0.1 s and the rate
   is taken between the first poll that saw events and the poll that saw them all, so the
   worker's start-up and group join are not counted;
5. latency: the live tail is produced at ``--rate`` events/s (flushed every 10 ms); the
   worker's ``vasbill_event_to_state_latency_seconds`` histogram (Kafka message timestamp
   to state stored, per message) is read before and after, and p50/p99 are interpolated
   in the buckets of the difference;
6. a final ``clock.tick``; the charges are read until idle and compared with ``vasbill rate``
   (latest revision of every charge); ``vasbill rate`` events/s is timed in-process on the
   same lines; the worker's peak RSS is its ``VmHWM``;
7. state bytes per account-month: the meter states ``vasbill rate`` keeps for the month
   (``Biller.states``, orjson-encoded as the worker stores them), with and without the
   dedupe ids the worker keeps next to them; and the worker's own tables (latest value of
   every key on their changelog topics), split by the account named in the key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import click
import orjson

from vasbill.demo import DemoError, Metrics, Stack, WorkerProcess, compare, latest_revisions

LATENCY_METRIC = "vasbill_event_to_state_latency_seconds"
EVENTS_METRIC = "vasbill_events_total"


@dataclass(frozen=True)
class BenchOptions:
    accounts: int = 5
    scale: float = 1.5
    seed: int = 1
    partitions: int = 4
    month: str = "2026-08"
    rate: int = 5000
    live_seconds: float = 10.0
    batch: int = 1000
    idle: float = 3.0
    producers: tuple[str, ...] = ("vasbill", "stream_id")


PRODUCERS = ("vasbill", "stream_id")


class StreamKeyed:
    """What a CDN log shipper sends (the ``--producer stream_id`` backlog): one event a
    message, keyed by its stream_id (task_id, else event_id, when it has none), no
    ``vasbill`` headers; the client's partitioner picks the partition. Same interface as
    ``EventPacker`` for ``send_lines``."""

    def __init__(self, names: Any) -> None:
        from workers.kafka_io import PackStats

        self.names = names
        self.stats = PackStats()

    def add(self, line: bytes) -> list[Any]:
        from topics.names import USAGE_TOPIC_OF_TYPE
        from workers.kafka_io import Message

        line = line.strip()
        if not line:
            return []
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        kind = doc.get("type") if isinstance(doc, dict) else None
        topic = (USAGE_TOPIC_OF_TYPE.get(kind) if type(kind) is str else None) or "usage.relay"
        key = None
        if isinstance(doc, dict):
            value = doc.get("stream_id") or doc.get("task_id") or doc.get("event_id")
            key = str(value).encode() if value is not None else None
        self.stats.lines += 1
        self.stats.events["usage"] += 1
        self.stats.messages["usage"] += 1
        return [Message(self.names(topic), key, line, 1, "usage")]

    def flush(self) -> list[Any]:
        return []


# -- producing --------------------------------------------------------------------------------

async def send_lines(stack: Stack, packer: Any, lines: Sequence[bytes], *, rate: float | None = None,
                     step_s: float = 0.01, linger_ms: int = 10) -> tuple[int, float]:
    """Pack and send ``lines``; at full speed, or paced at ``rate`` lines/s with the packer
    flushed every ``step_s``. Returns (messages sent, seconds until all were delivered)."""
    from workers.kafka_io import KafkaSender

    sent = 0
    started = time.monotonic()
    async with KafkaSender(stack.kafka, linger_ms=linger_ms) as sender:
        if rate is None:
            for line in lines:
                for message in packer.add(line):
                    await sender.send(message)
                    sent += 1
        else:
            i, n = 0, len(lines)
            while i < n:
                due = min(n, int((time.monotonic() - started) * rate) + 1)
                while i < due:
                    for message in packer.add(lines[i]):
                        await sender.send(message)
                        sent += 1
                    i += 1
                for message in packer.flush():
                    await sender.send(message)
                    sent += 1
                await asyncio.sleep(step_s)
        for message in packer.flush():
            await sender.send(message)
            sent += 1
    return sent, time.monotonic() - started


# -- the ceiling ------------------------------------------------------------------------------

async def bare_consume(stack: Stack, topics: list[str], expected: int, timeout: float = 120.0) -> dict[str, float]:
    """Read ``topics`` from the beginning with a bare aiokafka consumer, decode every
    message with orjson and count the events in it, until ``expected`` events."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from workers.kafka_io import client_config

    consumer = AIOKafkaConsumer(
        **client_config(stack.kafka.bootstrap, stack.kafka.security, library="aiokafka"),
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        events = messages = 0
        started = time.monotonic()
        while events < expected:
            if time.monotonic() - started > timeout:
                raise DemoError(f"the bare consumer read {events:,} of {expected:,} events in {timeout:g} s")
            batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for records in batches.values():
                for record in records:
                    messages += 1
                    try:
                        doc = orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        events += 1
                        continue
                    events += len(doc) if isinstance(doc, list) else 1
        seconds = time.monotonic() - started
    finally:
        await consumer.stop()
    return {"events": events, "messages": messages, "seconds": seconds, "events_per_s": events / seconds,
            "messages_per_s": messages / seconds}


# -- measuring the worker ---------------------------------------------------------------------

def poll_events(worker: WorkerProcess, expected: float, *, interval: float = 0.1, stall: float = 30.0,
                timeout: float = 900.0, update: Callable[[float], None] | None = None) -> dict[str, Any] | None:
    """Poll ``vasbill_events_total`` until it reaches ``expected``. Returns the rate measured
    between the first poll that saw the count move and the poll that saw it complete, or
    None when the worker has no such metric."""
    first: tuple[float, float] | None = None
    start_count: float | None = None
    last, last_change = -1.0, time.monotonic()
    deadline = time.monotonic() + timeout
    while True:
        if worker.exited() is not None:
            raise worker.failure("stopped")
        metrics = worker.metrics()
        now = time.monotonic()
        if metrics is not None and not metrics.ok:
            if now > deadline:
                raise DemoError(f"the worker's /metrics did not answer (log: {worker.log_path})")
            time.sleep(interval)
            continue
        count = metrics.total(EVENTS_METRIC) if metrics else None
        if count is None:
            return None
        if start_count is None:
            start_count = count
        if update:
            update(count)
        if first is None and count > start_count:
            first = (now, count)
        if count >= expected:
            break
        if count != last:
            last, last_change = count, now
        elif now - last_change > stall or now > deadline:
            raise DemoError(f"the worker handled {int(count):,} of {int(expected):,} events and then nothing "
                            f"for {stall:g} s (log: {worker.log_path})")
        worker.sample_rss()
        time.sleep(interval)
    if first is None:  # everything arrived between two polls
        first = (now - interval, start_count or 0.0)
    seconds = now - first[0]
    events = count - first[1]
    return {"events": int(count - (start_count or 0)), "measured_events": int(events), "seconds": seconds,
            "events_per_s": events / seconds if seconds > 0 else float("nan")}


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """``histogram_quantile`` over cumulative (upper bound, count) buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the largest finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def histogram_delta(before: Metrics | None, after: Metrics | None, name: str) -> list[tuple[float, float]] | None:
    if after is None:
        return None
    late = after.buckets(name)
    if late is None:
        return None
    early = dict(before.buckets(name) or []) if before else {}
    return [(bound, count - early.get(bound, 0.0)) for bound, count in late]


# -- state bytes ------------------------------------------------------------------------------

def rate_state_bytes(biller: Any, apps: Any) -> dict[str, float]:
    """Bytes of the meter states ``vasbill rate`` keeps, per account: as JSON and as the
    worker stores them (``workers.kv.encode_value``, one value per app and period); and of
    the dedupe ids (``{event_id: ms}`` per app, encoded the same way)."""
    from workers.kv import encode_value

    json_bytes: dict[str, int] = {}
    stored: dict[str, int] = {}
    for (_family, _period, account), by_app in biller.states.items():
        for state in by_app.values():
            json_bytes[account] = json_bytes.get(account, 0) + len(orjson.dumps(state))
            stored[account] = stored.get(account, 0) + len(encode_value(state))
    ids: dict[str, dict[int, dict[str, int]]] = {}
    for (app_id, event_id), ms in biller.dedupe.seen.items():
        config = apps.at(app_id, ms)
        account = config.account_id if config else "?"
        ids.setdefault(account, {}).setdefault(app_id, {})[event_id] = ms
    dedupe = {account: sum(len(encode_value(entries)) for entries in by_app.values())
              for account, by_app in ids.items()}
    accounts = sorted(set(stored) | set(dedupe))
    n = max(len(accounts), 1)
    return {
        "accounts": len(accounts),
        "meter_states_json_per_account": sum(json_bytes.values()) / n,
        "meter_states_per_account": sum(stored.values()) / n,
        "meter_states_max": max(stored.values(), default=0),
        "dedupe_ids_per_account": sum(dedupe.values()) / n,
        "dedupe_ids_count_per_account": sum(len(e) for by_app in ids.values() for e in by_app.values()) / n,
        "with_dedupe_per_account": (sum(stored.values()) + sum(dedupe.values())) / n,
    }


def _accounts_in(key: Any, accounts: set[str]) -> str | None:
    if isinstance(key, str):
        if key in accounts:
            return key
        if key.startswith("["):
            try:
                return _accounts_in(orjson.loads(key), accounts)
            except orjson.JSONDecodeError:
                return None
        return None
    if isinstance(key, list):
        for part in key:
            found = _accounts_in(part, accounts)
            if found:
                return found
    return None


def worker_table_bytes(stack: Stack, group: str, accounts: set[str]) -> dict[str, Any] | None:
    """Latest value of every key on the worker's changelog topics, split by account."""
    from workers.kafka_io import kafka_python, read_records

    kafka = kafka_python()
    consumer = kafka.KafkaConsumer(bootstrap_servers=stack.kafka.bootstrap, client_id="vasbill-bench")
    try:
        topics = sorted(t for t in consumer.topics() if t.startswith(f"{group}-") and t.endswith("-changelog"))
    finally:
        consumer.close()
    if not topics:
        return None
    latest: dict[tuple[str, bytes], int] = {}
    for record in read_records(stack.kafka, topics):
        if record.value is None:
            latest.pop((record.topic, record.key), None)
        else:
            latest[(record.topic, record.key)] = len(record.key or b"") + len(record.value)
    by_account: dict[str, int] = {}
    shared = 0
    for (_topic, key), size in latest.items():
        try:
            account = _accounts_in((key or b"").decode("utf-8", "replace"), accounts)
        except UnicodeDecodeError:
            account = None
        if account is None:
            shared += size
        else:
            by_account[account] = by_account.get(account, 0) + size
    n = max(len(accounts), 1)
    largest = max(latest.items(), key=lambda item: item[1], default=None)
    return {"keys": len(latest), "bytes": sum(latest.values()), "per_account": sum(by_account.values()) / n,
            "shared": shared, "topics": topics, "largest_value_bytes": largest[1] if largest else 0,
            "largest_key": f"{largest[0][0]}: {(largest[0][1] or b'').decode('utf-8', 'replace')}" if largest else None}


# -- the run ----------------------------------------------------------------------------------

def run_bench(options: BenchOptions, err: Any) -> dict[str, Any]:
    """One run per producer of ``options.producers`` (each on a fresh broker); returns the
    figures of each, by producer (see ``render``). ``err`` is a rich Console."""
    started = time.monotonic()
    results: dict[str, Any] = {"options": asdict(options), "runs": {}}
    for producer in options.producers:
        err.print(f"--- producer: {producer} ---", highlight=False)
        results["runs"][producer] = _run_one(options, producer, err)
    results["seconds"] = time.monotonic() - started
    return results


def _run_one(options: BenchOptions, producer: str, err: Any) -> dict[str, Any]:
    """One producer's run: rate, backlog, ceiling, worker, latency, charges, state."""
    from rating.biller import rate_lines
    from rating.configs import read_app_config
    from topics.appconfig import AppDirectory
    from topics.names import USAGE_TOPICS
    from vasbill.gen import GenOptions, generate
    from workers.kafka_io import EventPacker, produce_lines, send_messages, tick_message
    from workers.settings import group_of

    note = err.print
    results: dict[str, Any] = {"producer_kind": producer}
    started = time.monotonic()
    apps_docs, events = generate(GenOptions(accounts=options.accounts, month=options.month, seed=options.seed,
                                            scale=options.scale))
    lines = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
    directory = AppDirectory(read_app_config(doc) for doc in apps_docs)
    accounts = {doc["account_id"] for doc in apps_docs}

    t = time.monotonic()
    rated, _rejections, biller = rate_lines(directory, lines)
    seconds = time.monotonic() - t
    results["rate"] = {"events": len(lines), "seconds": seconds, "events_per_s": len(lines) / seconds}
    results["state"] = rate_state_bytes(biller, directory)
    rated_latest = latest_revisions(rated)
    note(f"data     {len(lines):,} lines for {len(accounts)} accounts ({len(apps_docs)} apps), "
         f"{options.month}; vasbill rate {results['rate']['events_per_s']:,.0f} events/s")

    live_n = min(int(options.rate * options.live_seconds), len(lines) // 2)
    backlog, live = lines[: len(lines) - live_n], lines[len(lines) - live_n:]

    with Stack(partitions=options.partitions) as stack:
        broker = stack.start_broker()
        stack.create_topics()
        produce_lines(stack.kafka, stack.names, [orjson.dumps(doc) for doc in apps_docs])
        packer: Any = (EventPacker(stack.names, partitions=options.partitions, batch=options.batch, apps=directory)
                       if producer == "vasbill" else StreamKeyed(stack.names))
        messages, seconds = asyncio.run(send_lines(stack, packer, backlog))
        stats = packer.stats
        backlog_events = stats.events["usage"] + stats.events["unroutable"]
        results["data"] = {"lines": len(lines), "backlog_events": backlog_events, "backlog_messages": messages,
                           "events_per_message": backlog_events / max(messages, 1), "live_events": len(live),
                           "accounts": len(accounts), "apps": len(apps_docs)}
        results["producer"] = {"events": backlog_events, "seconds": seconds, "events_per_s": backlog_events / seconds}
        note(f"produce  backlog {backlog_events:,} events in {messages:,} messages, "
             f"{backlog_events / seconds:,.0f} events/s (broker {broker.bootstrap})")

        ceiling = asyncio.run(bare_consume(stack, [stack.names(t) for t in USAGE_TOPICS], backlog_events))
        results["ceiling"] = ceiling
        note(f"ceiling  bare aiokafka + orjson: {ceiling['events_per_s']:,.0f} events/s "
             f"({ceiling['messages_per_s']:,.0f} messages/s)")

        worker = stack.start_worker()
        ready = worker.wait_ready()
        note(f"worker   pid {worker.pid}, ready in {ready:.1f} s; consuming the backlog")
        throughput = poll_events(worker, backlog_events)
        if throughput is None:
            results["worker"] = None
            note("worker   has no vasbill_events_total metric: throughput and latency are n/a")
        else:
            throughput["ratio_to_ceiling"] = throughput["events_per_s"] / ceiling["events_per_s"]
            results["worker"] = throughput
            note(f"worker   {throughput['events_per_s']:,.0f} events/s over {throughput['measured_events']:,} "
                 f"events ({throughput['ratio_to_ceiling']:.1%} of the ceiling)")

        before = worker.metrics()
        latency: dict[str, Any] = {"offered_events_per_s": options.rate, "events": len(live)}
        if throughput is not None and live:
            live_messages, live_seconds = asyncio.run(send_lines(stack, packer, live, rate=options.rate,
                                                                 linger_ms=0))
            latency.update(messages=live_messages, seconds=live_seconds,
                           achieved_events_per_s=len(live) / live_seconds)
            poll_events(worker, packer.stats.events["usage"] + packer.stats.events["unroutable"])
            delta = histogram_delta(before, worker.metrics(), LATENCY_METRIC)
            if delta is None:
                latency["note"] = "n/a (metrics not available)"
            else:
                latency.update(observed=int(delta[-1][1]) if delta else 0, p50_s=quantile(delta, 0.5),
                               p99_s=quantile(delta, 0.99), buckets=delta)
        else:
            latency["note"] = "n/a (metrics not available)"
        results["latency"] = latency
        if "p50_s" in latency:
            note(f"latency  at {options.rate:,} events/s offered ({latency['achieved_events_per_s']:,.0f} achieved): "
                 f"p50 {_ms(latency['p50_s'])}, p99 {_ms(latency['p99_s'])} per message")

        send_messages(stack.kafka, [tick_message(stack.names, None, final=True)])
        t = time.monotonic()
        from vasbill.demo import collect_charges

        charges = collect_charges(stack, idle=options.idle, expected=set(rated_latest))
        comparison = compare(latest_revisions(charges), rated_latest)
        results["charges"] = {"revisions": len(charges), "matching": comparison.matching, "total": comparison.total,
                              "rate_revisions": len(rated), "close_seconds": time.monotonic() - t - options.idle}
        note(f"charges  {len(charges):,} revisions; matches vasbill rate: {comparison.matching}/{comparison.total}")
        worker.stop()
        results["worker_peak_rss_bytes"] = worker.peak_rss
        results["worker_tables"] = worker_table_bytes(stack, group_of(stack.names.prefix, worker.app_id), accounts)
    results["seconds"] = time.monotonic() - started
    return results


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:,.1f} ms"


def _mib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1024 / 1024:,.1f} MiB"


def _kib(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1024:,.1f} KiB"


def render(results: dict[str, Any], console: Any) -> None:
    for run in results["runs"].values():
        _render_one(run, console)
    console.print(f"bench: {results['seconds']:.0f} s in all", highlight=False)


def _render_one(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    data, worker, ceiling = results["data"], results.get("worker"), results["ceiling"]
    how = ("vasbill produce (packed per partition, stamped)" if results["producer_kind"] == "vasbill"
           else "a plain client, one event a message keyed by stream_id")
    latency, state, tables = results["latency"], results["state"], results.get("worker_tables")
    table = Table(title=f"vasbill bench, {how}: {data['lines']:,} lines, {data['accounts']} accounts, "
                        f"{data['events_per_message']:.1f} events/message in the backlog", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("notes")
    table.add_row("(a) ceiling: bare aiokafka + orjson", f"{ceiling['events_per_s']:,.0f} ev/s",
                  f"{ceiling['events']:,} events, {ceiling['messages_per_s']:,.0f} msg/s")
    if worker:
        table.add_row("(b) worker, backlog consumed", f"{worker['events_per_s']:,.0f} ev/s",
                      f"{worker['ratio_to_ceiling']:.1%} of ceiling; {worker['measured_events']:,} events "
                      f"in {worker['seconds']:.1f} s")
    else:
        table.add_row("(b) worker, backlog consumed", "n/a", "no vasbill_events_total on /metrics")
    table.add_row("    producer (for reference)", f"{results['producer']['events_per_s']:,.0f} ev/s",
                  "produced before any consumer ran")
    rate = results["rate"]
    table.add_row("(c) vasbill rate (in-process)", f"{rate['events_per_s']:,.0f} ev/s",
                  f"{rate['events']:,} lines in {rate['seconds']:.1f} s")
    if "p50_s" in latency:
        table.add_row("(d) event-to-state latency p50", _ms(latency["p50_s"]),
                      f"{latency['achieved_events_per_s']:,.0f} ev/s offered for {latency['seconds']:.0f} s, "
                      f"{latency['observed']:,} messages")
        table.add_row("    event-to-state latency p99", _ms(latency["p99_s"]), "from histogram buckets")
    else:
        table.add_row("(d) event-to-state latency p50/p99", latency.get("note", "n/a"), "")
    table.add_row("(e) worker peak RSS (VmHWM)", _mib(results.get("worker_peak_rss_bytes")), "memory store")
    table.add_row("(f) state per account-month", _kib(state["meter_states_per_account"]),
                  f"meter states as stored (encoded; {_kib(state['meter_states_json_per_account'])} as JSON)")
    table.add_row("    dedupe ids per account-month", _kib(state["dedupe_ids_per_account"]),
                  f"{state['dedupe_ids_count_per_account']:,.0f} ids, encoded; one set per app (or in shards)")
    if tables:
        table.add_row("    worker tables per account", _kib(tables["per_account"]),
                      f"latest changelog values; {tables['keys']:,} keys, {_kib(tables['shared'])} not per account")
        table.add_row("    largest table value", _kib(tables["largest_value_bytes"]), str(tables["largest_key"])[:70])
    charges = results["charges"]
    table.add_row("charges match vasbill rate", f"{charges['matching']}/{charges['total']}",
                  f"{charges['revisions']:,} revisions (rate: {charges['rate_revisions']:,})")
    console.print(table)


# -- command ----------------------------------------------------------------------------------

def register(main: click.Group) -> None:
    """Add ``vasbill bench`` to the ``vasbill`` group."""

    @main.command("bench")
    @click.option("--accounts", type=click.IntRange(1, 1000), default=BenchOptions.accounts, show_default=True)
    @click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=BenchOptions.scale,
                  show_default=True, help="Multiplies the number of live streams (and events).")
    @click.option("--seed", type=int, default=BenchOptions.seed, show_default=True)
    @click.option("--partitions", type=click.IntRange(1, 64), default=BenchOptions.partitions, show_default=True)
    @click.option("--rate", "offered", type=click.IntRange(1), default=BenchOptions.rate, show_default=True,
                  metavar="EVENTS/S", help="Offered load of the latency phase.")
    @click.option("--live-seconds", type=click.FloatRange(min=0), default=BenchOptions.live_seconds,
                  show_default=True, help="Length of the latency phase.")
    @click.option("--batch", type=click.IntRange(1, 1000), default=BenchOptions.batch, show_default=True,
                  help="Events per message of the backlog (see `vasbill produce --batch`).")
    @click.option("--producer", "producers", type=click.Choice(PRODUCERS), multiple=True,
                  help="Who sends the backlog: `vasbill` (vasbill produce's packing) and/or `stream_id` (a plain "
                       "client, one event a message keyed by stream_id). Both by default, one after the other.")
    @click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
    def bench_command(accounts: int, scale: float, seed: int, partitions: int, offered: int, live_seconds: float,
                      batch: int, producers: tuple[str, ...], as_json: bool) -> None:
        """Throughput (worker vs a bare consumer vs `rate`), latency, RSS and state size."""
        from rich.console import Console

        from topics.reasons import VasbillError
        from vasbill.cli import Failure, failures
        from vasbill.demo import interrupted_as_failure

        options = BenchOptions(accounts=accounts, scale=scale, seed=seed, partitions=partitions, rate=offered,
                               live_seconds=live_seconds, batch=batch, producers=producers or PRODUCERS)
        err = Console(stderr=True)
        with failures(), interrupted_as_failure():
            try:
                results = run_bench(options, err)
            except VasbillError:
                raise
            except Exception as exc:  # noqa: BLE001 - one line, not a traceback
                raise Failure(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
        if as_json:
            click.echo(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        else:
            render(results, Console(width=None if Console().is_terminal else 120))

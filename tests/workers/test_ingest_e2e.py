"""Producers other than ``vasbill produce`` (SPEC §2: any key, any partition, any batching
gives the same bill), end to end on the embedded broker with a real worker.

A plain aiokafka client sends a generated month one event per message, keyed as CDN log
shippers and recorders key theirs: by stream_id, by task_id, with no key (the client
spreads them), and two producers with different habits at once. The latest revision of
every charge must be ``vasbill rate``'s on the same file. Before stage 0 existed these gave
218, 432 and 518 of 620 charges right, silently.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.worker import Stack, Timer, WorkerGroup, cli, latest, read_jsonl

from topics.names import CONFIG_TOPIC, USAGE_TOPIC_OF_TYPE


class Month:
    """A generated month (3 accounts) and what ``vasbill rate`` makes of it."""

    def __init__(self, directory: Path) -> None:
        self.events = directory / "events.jsonl"
        self.apps = directory / "apps.jsonl"
        out = directory / "rate.jsonl"
        gen = cli("gen", "--accounts", "3", "--scale", "0.2", "--seed", "11", "--out", str(self.events),
                  "--apps-out", str(self.apps))
        assert gen.exit_code == 0, gen.output
        rate = cli("rate", "--events", str(self.events), "--apps", str(self.apps), "--out", str(out))
        assert rate.exit_code == 0, rate.output
        self.charges = read_jsonl(out)
        self.latest = {cid: bill(doc) for cid, doc in latest(self.charges).items()}
        self.lines = [line for line in self.events.read_bytes().splitlines() if line.strip()]
        self.app_lines = [line for line in self.apps.read_bytes().splitlines() if line.strip()]


def bill(charge: dict[str, Any]) -> dict[str, Any]:
    """What a bill is made of: the latest revision's content, not how it was reached (other
    producers than ``vasbill produce`` may split late events into revisions differently)."""
    return {k: v for k, v in charge.items() if k not in ("revision", "previous_amount", "delta", "emitted_at")}


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    m = Month(tmp_path_factory.mktemp("ingest-month"))
    assert max(c["revision"] for c in m.charges) > 1, "the month must have late events"
    return m


def _key(doc: Any, habit: str) -> bytes | None:
    if not isinstance(doc, dict):
        return None
    if habit == "stream_id":
        value = doc.get("stream_id") or doc.get("task_id") or doc.get("event_id")
    elif habit == "task_id":
        value = doc.get("task_id")
    else:
        value = None
    return str(value).encode() if value is not None else None


async def _send_raw(stack: Stack, month: Month, habits: list[str]) -> int:
    """Configs first, then every line as its own message on its usage topic, keyed by the
    habit of the producer that sends it (line i goes to producer i % len(habits)), in file
    order; returns the number of messages sent."""
    from aiokafka import AIOKafkaProducer

    producers = [AIOKafkaProducer(bootstrap_servers=stack.broker, linger_ms=5) for _ in habits]
    for producer in producers:
        await producer.start()
    try:
        for line in month.app_lines:
            doc = orjson.loads(line)
            await producers[0].send_and_wait(stack.names(CONFIG_TOPIC), line, key=str(doc["sdk_app_id"]).encode())
        futures = []
        for i, line in enumerate(month.lines):
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                doc = None
            kind = doc.get("type") if isinstance(doc, dict) else None
            topic = USAGE_TOPIC_OF_TYPE.get(kind) if type(kind) is str else None
            topic = topic or "usage.relay"  # what a shipper does with a line it cannot classify
            n = i % len(habits)
            futures.append(await producers[n].send(stack.names(topic), line, key=_key(doc, habits[n])))
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        for producer in producers:
            await producer.stop()


def _wait_for_bills(stack: Stack, expected: dict[str, Any], worker: Any, timeout: float = 120.0) -> dict[str, Any]:
    """The latest bill of every charge on the billing topics, once it equals ``expected`` or
    nothing changed for 20 s (then the caller's assertion says what differs), at most
    ``timeout`` seconds."""
    deadline, last, changed = time.monotonic() + timeout, -1, time.monotonic()
    while True:
        worker.check()
        charges = stack.charges()
        got = {cid: bill(doc) for cid, doc in latest(charges).items()}
        if got == expected or time.monotonic() > deadline or time.monotonic() - changed > 20:
            time.sleep(2)  # extra charges would show
            return {cid: bill(doc) for cid, doc in latest(stack.charges()).items()}
        if len(charges) != last:
            last, changed = len(charges), time.monotonic()
        time.sleep(0.5)


@pytest.mark.parametrize("habits", [["stream_id"], ["task_id"], ["none"], ["stream_id", "none"]],
                         ids=["by-stream-id", "by-task-id", "no-key", "two-producers"])
def test_plain_producers_with_any_key_give_the_bill_of_rate(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer, habits: list[str]) -> None:
    worker = worker_group(stack.prefix, "e2e-raw")
    worker.wait_ready()
    timer.mark("worker ready")
    sent = asyncio.run(_send_raw(stack, month, habits))
    timer.mark(f"{sent} messages sent raw ({'+'.join(habits)})")
    stack.wait_for_progress(worker.group, 1.0, timeout=120, alive=(worker,))
    stack.tick("--final")
    got = _wait_for_bills(stack, month.latest, worker)
    wrong = sorted(cid for cid in set(got) | set(month.latest) if got.get(cid) != month.latest.get(cid))
    timer.note(f"{len(month.latest) - len(wrong)}/{len(month.latest)} charges = rate")
    assert not wrong, (f"{len(wrong)} of {len(month.latest)} charges differ from rate, e.g. {wrong[:5]}: "
                       f"worker {got.get(wrong[0])} rate {month.latest.get(wrong[0])}")


def test_vasbill_produce_next_to_a_raw_producer_gives_the_bill_of_rate(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer, tmp_path: Path) -> None:
    """Most of the usage through ``vasbill produce`` (packed, stamped), then a plain client
    keyed by stream_id sends the rest (one line in 20, picked at random), one event a
    message: those arrive after the month and are late, each a revision; the bill must be
    ``rate``'s on the two files in the order they were sent."""
    rnd = random.Random(5)
    ours = tmp_path / "ours.jsonl"
    theirs = [line for line in month.lines if rnd.random() < 0.05]
    kept = set(map(id, theirs))
    ours.write_bytes(b"\n".join([*month.app_lines, *(line for line in month.lines if id(line) not in kept)]) + b"\n")
    worker = worker_group(stack.prefix, "e2e-mixed")
    worker.wait_ready()

    async def raw() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=stack.broker, linger_ms=5)
        await producer.start()
        try:
            futures = []
            for line in theirs:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    doc = None
                kind = doc.get("type") if isinstance(doc, dict) else None
                topic = (USAGE_TOPIC_OF_TYPE.get(kind) if type(kind) is str else None) or "usage.relay"
                futures.append(await producer.send(stack.names(topic), line, key=_key(doc, "stream_id")))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    stack.produce(ours)
    asyncio.run(raw())
    timer.mark(f"produced: vasbill produce, then {len(theirs)} lines from a raw producer")
    stack.wait_for_progress(worker.group, 1.0, timeout=180, alive=(worker,))
    stack.tick("--final")
    # rate on the order the worker can know: the file as the two producers sent it
    merged = tmp_path / "merged.jsonl"
    merged.write_bytes(b"\n".join([line for line in month.lines if id(line) not in kept] + theirs) + b"\n")
    rate_out = tmp_path / "rate.jsonl"
    result = cli("rate", "--events", str(merged), "--apps", str(month.apps), "--out", str(rate_out))
    assert result.exit_code == 0, result.output
    expected = {cid: bill(doc) for cid, doc in latest(read_jsonl(rate_out)).items()}
    got = _wait_for_bills(stack, expected, worker, timeout=180)
    wrong = sorted(cid for cid in set(got) | set(expected) if got.get(cid) != expected.get(cid))
    assert not wrong, (f"{len(wrong)} of {len(expected)} charges differ from rate, e.g. {wrong[:5]}: "
                       f"worker {got.get(wrong[0])} rate {expected.get(wrong[0])}")

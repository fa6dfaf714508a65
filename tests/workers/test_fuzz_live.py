"""The fuzz corpus (``tests/fuzz/corpus.py``) sent raw to a live worker (SPEC §3: no message,
whatever its content, stops or restarts the worker; every bad input is quarantined with its
reason; nothing else changes).

A plain aiokafka client sends every item as it is (its topic, its key, tombstones as null
values), the valid events and hostile configs among them, one message each. The worker
must stay up (one start, no traceback), quarantine every item with the reason SPEC §3 gives,
count the tombstones, and bill exactly what ``vasbill rate`` bills for the same sequence
(without the items only a topic can judge).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from fixtures.worker import Stack, Timer, WorkerGroup, latest
from fuzz.corpus import Item, build_corpus

from rating.biller import rate_lines
from rating.configs import read_app_config
from topics import codec
from topics.appconfig import AppDirectory
from topics.names import CONFIG_TOPIC
from topics.validation import decode_json

NOT_QUARANTINED = ("accepted", "duplicate", "tombstone")


def bill(charge: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in charge.items() if k not in ("revision", "previous_amount", "delta", "emitted_at")}


def _rate_lines(items: list[Item]) -> list[bytes]:
    """The sequence as ``vasbill rate`` can read it: no tombstones, and no event only a topic
    can judge (a split batch keeps its other events, one line each, in place)."""
    out = []
    for item in items:
        if item.value is None:
            continue
        if not item.topic_dependent:
            out.append(item.value)
            continue
        if item.is_split_batch:
            for element, expected in zip(orjson.loads(item.value), item.expectations, strict=True):
                if expected != "wrong_topic":  # a batch of one: an element stays an element
                    out.append(b"[" + orjson.dumps(element) + b"]")
    return out


async def _send(stack: Stack, apps: list[dict[str, Any]], hostile_apps: list[dict[str, Any]],
                items: list[Item]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=stack.broker, linger_ms=2, max_request_size=4_000_000)
    await producer.start()
    try:
        for doc in [*hostile_apps, *apps]:  # the bad ones first: the good ones must still be read
            key = str(doc.get("sdk_app_id")).encode() if isinstance(doc, dict) else None
            await producer.send_and_wait(stack.names(CONFIG_TOPIC), codec.dumps(doc), key=key)
        # one message a millisecond: the worker orders messages of different partitions by
        # their timestamps, and two of one millisecond have no order (README: Ordering)
        futures, last = [], 0
        for item in items:
            while int(time.time() * 1000) <= last:
                await asyncio.sleep(0.0002)
            last = int(time.time() * 1000)
            key = item.key if item.key is not None or item.value is not None else b"t"
            futures.append(await producer.send(stack.names(item.topic), item.value, key=key, timestamp_ms=last))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _extra(items: list[Item], records: list[dict[str, Any]]) -> list[Any]:
    """Quarantine records no item expects, by (reason, event_id): for a failure message."""
    want: Counter[tuple[str, Any]] = Counter()
    for item in items:
        try:
            decoded = decode_json(item.value) if item.value is not None else None
        except orjson.JSONDecodeError:
            decoded = None
        elements = decoded if item.is_split_batch and isinstance(decoded, list) else [decoded]
        for element, expected in zip(elements, item.expectations, strict=False):
            if expected not in NOT_QUARANTINED:
                event_id = element.get("event_id") if isinstance(element, dict) else None
                want[(expected, event_id if isinstance(event_id, str) and len(event_id) <= 128 else None)] += 1
    got = Counter((r["reason"], r.get("event_id")) for r in records)
    return [(k, [(r["detail"], r["payload"][:200]) for r in records if (r["reason"], r.get("event_id")) == k][:2])
            for k in (got - want)][:5]


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()  # noqa: S310
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_the_fuzz_corpus_sent_raw_to_a_live_worker(stack: Stack, worker_group: WorkerGroup, timer: Timer,
                                                   tmp_path: Path) -> None:
    corpus = build_corpus(7)
    items = corpus.interleave(seed=1)
    assert len(items) >= 2000
    now = datetime.now(timezone.utc)
    directory = AppDirectory(read_app_config(doc) for doc in corpus.apps)
    expected, _rejected, _ = rate_lines(directory, _rate_lines(items), now=lambda: now)
    expected_bills = {cid: bill(doc) for cid, doc in latest([c.to_dict() for c in expected]).items()}
    assert expected_bills, "the valid events must bill something"

    worker = worker_group(stack.prefix, "e2e-fuzz")
    worker.wait_ready()
    asyncio.run(_send(stack, corpus.apps, [doc for doc, _ in corpus.hostile_apps], items))
    timer.mark(f"{len(items)} items sent raw")
    stack.wait_for_progress(worker.group, 1.0, timeout=120, alive=(worker,))
    stack.tick("--final")
    charges = stack.wait_for_charges(timeout=120, alive=(worker,), idle=10, on_fail=worker.log_tail)

    worker.check()  # still running
    log = worker.log_path.read_text(errors="replace")
    assert log.count("===== start") == 1 and "Traceback" not in log, worker.log_tail(80)

    want = Counter(e for item in items for e in item.expectations if e not in NOT_QUARANTINED)
    records = [json.loads(r.value) for r in stack.quarantine()]
    got = Counter(r["reason"] for r in records)
    extra = _extra(items, records)
    assert got == want, f"quarantine by reason: only the worker {got - want}, only expected {want - got}: {extra}"
    tombstones = sum(item.value is None for item in items)
    assert _metric(worker.web_port, "vasbill_tombstones_total") == tombstones

    bills = {cid: bill(doc) for cid, doc in latest(charges).items()}
    wrong = sorted(cid for cid in set(bills) | set(expected_bills) if bills.get(cid) != expected_bills.get(cid))
    assert not wrong, f"{len(wrong)} of {len(expected_bills)} charges differ from rate, e.g. {wrong[:3]}"
    timer.note(f"{sum(got.values())} quarantined as expected, {tombstones} tombstones, {len(bills)} charges = rate")

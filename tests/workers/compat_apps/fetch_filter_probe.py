"""Probe of Faust's ``AIOKafkaConsumerThread._fetch_records`` with an empty active set.

Runs the real Faust method (patched or not, per ``VASBILL_COMPAT_DISABLE``) on top of the
real aiokafka ``Fetcher.fetched_records``, with one buffered record batch for a stream
partition, and asks for the records of the active partitions: first with no partition
active (as during ``Recovery.on_recovery_completed`` between pausing the changelogs and
resuming the streams), then with the stream partition active.  Prints JSON: what each call
returned and whether the batch was still buffered afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from types import SimpleNamespace
from typing import Any

from aiokafka.consumer.fetcher import Fetcher, FetchResult
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from workers.compat import install_broker_compat

FIXES = install_broker_compat()
STREAM = TopicPartition("events", 0)


class Batch:
    """Stands in for aiokafka's PartitionRecords: three records from offset 10."""

    def __init__(self) -> None:
        self.next_fetch_offset = 10
        self._items = iter([f"events[0]@{offset}" for offset in (10, 11, 12)])

    def __iter__(self) -> Batch:
        return self

    def __next__(self) -> str:
        item = next(self._items)
        self.next_fetch_offset += 1
        return item


def make_fetcher() -> Any:
    state = SimpleNamespace(paused=False, position=10)
    state.consumed_to = lambda offset: setattr(state, "position", offset)
    assignment = SimpleNamespace(active=True, state_value=lambda tp: state)
    fetcher = SimpleNamespace(
        _closed=False,
        _records={STREAM: FetchResult(STREAM, assignment=assignment, partition_records=Batch(), backoff=0)},
        _subscriptions=SimpleNamespace(
            reassignment_in_progress=False,
            is_assigned=lambda tp: True,
            fetch_context=contextlib.nullcontext,
        ),
        _wait_consume_future=None,
        _notify=lambda future: None,
    )
    fetcher.fetched_records = Fetcher.fetched_records.__get__(fetcher)
    return fetcher


async def fetch(thread: Any, consumer: Any, active: set[TP]) -> dict[str, Any]:
    records = await AIOKafkaConsumerThread._fetch_records(thread, consumer, active, timeout=0)
    return {
        "returned": {f"{tp.topic}[{tp.partition}]": list(batch) for tp, batch in records.items()},
        "still_buffered": STREAM in consumer._fetcher._records,
    }


async def main() -> None:
    thread = SimpleNamespace(consumer=SimpleNamespace(flow_active=True))
    consumer = SimpleNamespace(_closed=False, _fetcher=make_fetcher())
    nothing_active = await fetch(thread, consumer, set())
    stream_active = await fetch(thread, consumer, {TP("events", 0)})
    print(json.dumps({"fixes": sorted(FIXES), "nothing_active": nothing_active, "stream_active": stream_active}))


if __name__ == "__main__":
    asyncio.run(main())

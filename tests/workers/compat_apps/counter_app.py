"""A minimal Faust worker for tests/workers/test_compat.py.

One agent reads JSON events ``{"id": N}`` from ``$COMPAT_TOPIC`` and increments
``seen[N]`` in a memory-store table, so after the worker has been stopped and restarted
(table recovered from its changelog) the table tells exactly which events were lost
(``seen`` has no entry) and which were counted twice (entry > 1).  ``GET /state/`` on the
web port answers ``{"ready", "fixes", "total", "distinct", "duplicates", "gaps", "max_id"}``
(``gaps``: ids skipped so far, see the view).

Run as ``python counter_app.py worker --web-port P --web-host 127.0.0.1``; configured by
environment variables: ``COMPAT_BROKER``, ``COMPAT_APP_ID``, ``COMPAT_TOPIC``,
``COMPAT_PARTITIONS``, ``COMPAT_DATADIR``, ``COMPAT_PRODUCER_LINGER`` (seconds),
``COMPAT_COMMITTED_DELAY`` (seconds, see below) and
``VASBILL_COMPAT_DISABLE`` (read by ``install_broker_compat``).
"""

from __future__ import annotations

import asyncio
import os

import faust
from aiokafka import AIOKafkaConsumer

from workers.compat import embedded_broker_settings, install_broker_compat

FIXES = install_broker_compat()

#: Simulated broker round-trip (seconds) added to every committed-offset lookup
#: (``AIOKafkaConsumer.committed``), as on a remote production cluster.  Faust looks up the
#: committed offset of every assigned partition one after the other in
#: ``Consumer.perform_seek``, so this widens the time window of the seek-order bug.
COMMITTED_DELAY = float(os.environ.get("COMPAT_COMMITTED_DELAY", "0"))
if COMMITTED_DELAY > 0:
    _committed = AIOKafkaConsumer.committed

    async def _slow_committed(self, partition):  # type: ignore[no-untyped-def]
        await asyncio.sleep(COMMITTED_DELAY)
        return await _committed(self, partition)

    AIOKafkaConsumer.committed = _slow_committed  # type: ignore[method-assign]

PARTITIONS = int(os.environ.get("COMPAT_PARTITIONS", "4"))

app = faust.App(
    os.environ.get("COMPAT_APP_ID", "compat-counter"),
    broker=f"kafka://{os.environ['COMPAT_BROKER']}",
    store="memory://",
    datadir=os.environ["COMPAT_DATADIR"],
    topic_partitions=PARTITIONS,
    producer_linger=float(os.environ.get("COMPAT_PRODUCER_LINGER", "0")),
    web_host="127.0.0.1",
    **embedded_broker_settings(),
)

events = app.topic(os.environ.get("COMPAT_TOPIC", "events"), partitions=PARTITIONS, value_serializer="json")
seen = app.Table("seen", default=int, partitions=PARTITIONS)


@app.agent(events)
async def count(stream):  # type: ignore[no-untyped-def]
    async for event in stream:
        seen[event["id"]] += 1


@app.page("/detail/")
async def detail(web, request):  # type: ignore[no-untyped-def]
    """Which ids were counted twice, and which are missing below the top id of their partition."""
    counts = {int(k): v for k, v in seen.items()}
    top: dict[int, int] = {}
    for key in counts:
        top[key % PARTITIONS] = max(top.get(key % PARTITIONS, -1), key)
    missing = sorted(i for p, t in top.items() for i in range(p, t + 1, PARTITIONS) if i not in counts)
    return web.json({"duplicated": sorted(k for k, v in counts.items() if v > 1), "skipped": missing})


@app.page("/state/")
async def state(web, request):  # type: ignore[no-untyped-def]
    items = list(seen.items())
    values = [v for _, v in items]
    # Events are produced with ``id % PARTITIONS`` as their partition, and each partition is
    # consumed in order: an id missing below the highest id seen in its partition was skipped.
    top: dict[int, int] = {}
    per_partition: dict[int, int] = {}
    for key, _ in items:
        part = int(key) % PARTITIONS
        top[part] = max(top.get(part, -1), int(key))
        per_partition[part] = per_partition.get(part, 0) + 1
    gaps = sum((top[p] - p) // PARTITIONS + 1 - per_partition[p] for p in top)
    return web.json(
        {
            "ready": app.tables.recovery.completed.is_set() and not app.rebalancing,
            "fixes": sorted(FIXES),
            "total": sum(values),
            "distinct": len(values),
            "duplicates": sum(v - 1 for v in values if v > 1),
            "gaps": gaps,
            "max_id": max(top.values(), default=-1),
        }
    )


if __name__ == "__main__":
    app.main()

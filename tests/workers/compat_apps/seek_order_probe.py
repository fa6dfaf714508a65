"""Deterministic probe of the seek-order race in ``faust.tables.recovery.Recovery``.

Calls ``Recovery.on_recovery_completed`` and ``Recovery._resume_streams`` (patched or not,
per ``VASBILL_COMPAT_DISABLE``) on a stub recovery whose consumer has one prefetched record
per stream partition.  A "fetcher" task runs next to it and hands a record to the streams
whenever its partition is resumed, like Faust's ``Consumer._drain_messages``.  The stub's
``perform_seek`` takes a little while, as the real one does (it looks up the committed
offset of every partition on the broker).  A record handed over while the seek is still
running is what loses and duplicates events in a real worker.

Prints one JSON object: for each method, the order of calls and the records handed to the
streams before the seek had finished.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP

from workers.compat import install_broker_compat

FIXES = install_broker_compat()

STREAM = [TP("events", 0), TP("events", 1)]
CHANGELOG = [TP("app-table-changelog", 0), TP("app-table-changelog", 1)]


class StubConsumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.active: set[TP] = set()
        self.seeking = False
        self.prefetched = {tp: [f"{tp.topic}[{tp.partition}]@0"] for tp in STREAM}
        self.handed_during_seek: list[str] = []

    def assignment(self) -> set[TP]:
        return set(STREAM) | set(CHANGELOG)

    def resume_partitions(self, tps: Any) -> None:
        self.log.append("resume_partitions")
        self.active |= set(tps)

    async def perform_seek(self) -> None:
        self.log.append("seek started")
        self.seeking = True
        await asyncio.sleep(0.05)  # committed-offset lookups on the broker
        self.seeking = False
        self.log.append("seek finished")

    def resume_flow(self) -> None:
        self.log.append("resume_flow")

    async def fetcher(self) -> None:
        while True:
            for tp in sorted(self.active & set(STREAM)):
                for record in self.prefetched.pop(tp, []):
                    self.log.append(f"handed {record}")
                    if self.seeking:
                        self.handed_during_seek.append(record)
            await asyncio.sleep(0.001)


async def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def stub_recovery(consumer: StubConsumer) -> Any:
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=0,
        on_rebalance_complete=SimpleNamespace(send=_noop),
        conf=SimpleNamespace(broker_request_timeout=5.0),
        flow_control=SimpleNamespace(resume=lambda: None),
        _fetcher=SimpleNamespace(maybe_start=_noop),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    quiet = SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None, dev=lambda *a, **k: None)

    async def _wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    return SimpleNamespace(
        app=app,
        log=quiet,
        tables=SimpleNamespace(values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None),
        actives_for_table={},
        standbys_for_table={},
        completed=asyncio.Event(),
        _set_recovery_ended=lambda: None,
        _wait=_wait,
        _is_changelog_tp=lambda tp: tp in CHANGELOG,
    )


async def probe(method: Any) -> dict[str, Any]:
    log: list[str] = []
    consumer = StubConsumer(log)
    fetcher = asyncio.ensure_future(consumer.fetcher())
    try:
        await method(stub_recovery(consumer), 0)
        await asyncio.sleep(0.01)  # let the fetcher hand over what is resumed now
    finally:
        fetcher.cancel()
    return {"calls": log, "handed_during_seek": consumer.handed_during_seek}


async def main() -> None:
    result = {
        "fixes": sorted(FIXES),
        "on_recovery_completed": await probe(Recovery.on_recovery_completed),
        "_resume_streams": await probe(Recovery._resume_streams),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())

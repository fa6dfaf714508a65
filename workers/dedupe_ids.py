"""The dedupe ids of one stage-1 meter state: ``{event_id: event ms}``.

Few ids stay in the state's own table value (``value["ids"]``). Past ``INLINE_MAX`` they
move to keys of their own, split by a hash of the id over ``2 ** value["bits"]`` shards;
when a shard passes ``SHARD_MAX`` every shard splits in two. A table value must fit in one
Kafka message: in the state's value, ids bounded an app at about 40,000 random-UUID events
per meter family and period; shards of at most ``SHARD_MAX`` ids take about 350 KB.

State and ids are written in the same batch, and a batch's writes are all-or-nothing
(``workers.journal``), so a re-delivered event is still recognised after any crash.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from workers.kv import BatchKV

INLINE_MAX = 2_000
SHARD_MAX = 10_000
FIRST_BITS = 1


def _shard_key(skey: str, index: int) -> str:
    return orjson.dumps(["ids", skey, index]).decode()


def _index(event_id: str, bits: int) -> int:
    return zlib.crc32(event_id.encode()) & ((1 << bits) - 1)


def seen(kv: BatchKV, skey: str, value: dict[str, Any], event_id: str) -> bool:
    bits = value.get("bits")
    if bits is None:
        return event_id in value["ids"]
    return event_id in kv.get(_shard_key(skey, _index(event_id, bits)), {})


def add(kv: BatchKV, skey: str, value: dict[str, Any], event_id: str, ms: int) -> None:
    """Record ``event_id``; the caller puts ``value`` back (it may have changed)."""
    bits = value.get("bits")
    if bits is None:
        value["ids"][event_id] = ms
        if len(value["ids"]) > INLINE_MAX:
            _spread(kv, skey, value, value["ids"], FIRST_BITS)
        return
    key = _shard_key(skey, _index(event_id, bits))
    shard = kv.get(key) or {}
    shard[event_id] = ms
    kv.put(key, shard)
    if len(shard) > SHARD_MAX:
        _spread(kv, skey, value, every(kv, skey, value), bits + 1)


def every(kv: BatchKV, skey: str, value: dict[str, Any]) -> dict[str, int]:
    """All ids of the state, wherever they are kept."""
    bits = value.get("bits")
    if bits is None:
        return dict(value["ids"])
    out: dict[str, int] = {}
    for index in range(1 << bits):
        out.update(kv.get(_shard_key(skey, index), {}))
    return out


def prune(kv: BatchKV, skey: str, value: dict[str, Any], before_ms: int) -> None:
    """Forget ids of events before ``before_ms`` (past the lateness horizon)."""
    bits = value.get("bits")
    if bits is None:
        value["ids"] = {i: ms for i, ms in value["ids"].items() if ms >= before_ms}
        return
    for index in range(1 << bits):
        key = _shard_key(skey, index)
        shard = kv.get(key)
        if shard:
            kept = {i: ms for i, ms in shard.items() if ms >= before_ms}
            if len(kept) < len(shard):
                kv.put(key, kept)


def drop(kv: BatchKV, skey: str, value: dict[str, Any] | None) -> None:
    """Delete the shards of a state that is deleted."""
    bits = (value or {}).get("bits")
    if bits is not None:
        for index in range(1 << bits):
            kv.delete(_shard_key(skey, index))


def _spread(kv: BatchKV, skey: str, value: dict[str, Any], ids: dict[str, int], bits: int) -> None:
    shards: list[dict[str, int]] = [{} for _ in range(1 << bits)]
    for event_id, ms in ids.items():
        shards[_index(event_id, bits)][event_id] = ms
    for index, shard in enumerate(shards):
        kv.put(_shard_key(skey, index), shard)
    value["ids"], value["bits"] = {}, bits

"""Dedupe ids kept in the state value while few, split over hashed keys when many
(workers/dedupe_ids.py): the same answers as one set, and every stored value stays small."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers import dedupe_ids
from workers.journal import Journal
from workers.kv import BatchKV, decode_value

SKEY = '["st","relay","2026-08-01","acct-1",1400000001]'
ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 80), st.integers(0, 1000)),
    st.tuples(st.just("add"), st.integers(0, 80), st.integers(0, 1000)),
    st.tuples(st.just("add"), st.integers(0, 80), st.integers(0, 1000)),
    st.tuples(st.just("prune"), st.integers(0, 200), st.just(0)),
    st.tuples(st.just("flush"), st.just(0), st.just(0)),
), min_size=20, max_size=300)


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dedupe_ids, "INLINE_MAX", 3)
    monkeypatch.setattr(dedupe_ids, "SHARD_MAX", 4)


def _kv(store: dict[str, bytes]) -> BatchKV:
    return BatchKV(store, journal=Journal("journal/0", 1_000_000))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_ids_answer_like_one_dict_across_batches(small: None, ops: list[tuple[str, int, int]]) -> None:
    store: dict[str, bytes] = {}
    kv = _kv(store)
    reference: dict[str, int] = {}
    for op, a, b in ops:
        value: dict[str, Any] = kv.get(SKEY) or {"state": {}, "ids": {}}
        if op == "add":
            event_id = f"e-{a}"
            assert dedupe_ids.seen(kv, SKEY, value, event_id) == (event_id in reference)
            if event_id not in reference:
                dedupe_ids.add(kv, SKEY, value, event_id, b)
                reference[event_id] = b
        elif op == "prune":
            dedupe_ids.prune(kv, SKEY, value, a)
            reference = {i: ms for i, ms in reference.items() if ms >= a}
        else:
            kv.flush()
            continue
        kv.put(SKEY, value)
        assert dedupe_ids.every(kv, SKEY, value) == reference
    kv.flush()
    value = decode_value(store[SKEY]) if SKEY in store else {"state": {}, "ids": {}}
    assert dedupe_ids.every(_kv(store), SKEY, value) == reference
    assert len(value["ids"]) <= 3 + 1
    shards = [decode_value(data) for key, data in store.items() if key.startswith('["ids"')]
    assert all(len(shard) <= 4 + 1 for shard in shards)
    if "bits" in value:
        assert len(shards) == 2 ** value["bits"]


def test_dropping_a_state_deletes_its_shards(small: None) -> None:
    store: dict[str, bytes] = {}
    kv = _kv(store)
    value: dict[str, Any] = {"state": {}, "ids": {}}
    for i in range(40):
        dedupe_ids.add(kv, SKEY, value, f"e-{i}", i)
    kv.put(SKEY, value)
    kv.flush()
    assert value["bits"] >= 4 and sum(k.startswith('["ids"') for k in store) == 2 ** value["bits"]
    kv = _kv(store)
    dedupe_ids.drop(kv, SKEY, kv.get(SKEY))
    kv.delete(SKEY)
    kv.flush()
    assert [k for k in store if not k.startswith("journal/")] == []


def test_a_hundred_thousand_uuid_ids_fit_in_kafka_messages() -> None:
    """What stopped the worker before (one app's ids in one value, ~40,000 UUIDs at most)."""
    import uuid

    from workers.kv import MAX_VALUE_BYTES, encode_value

    kv = BatchKV({})
    value: dict[str, Any] = {"state": {}, "ids": {}}
    for i in range(100_000):
        dedupe_ids.add(kv, SKEY, value, str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % 2**128)), 1_780_000_000_000 + i)
    kv.put(SKEY, value)
    sizes = [len(encode_value(kv.cache[key])) for key in kv.dirty]
    assert value["bits"] >= 4 and len(sizes) == 2 ** value["bits"] + 1
    assert max(sizes) < MAX_VALUE_BYTES // 2

"""A batch journaled before its keys is saved whole or not at all, whatever prefix of its
writes a crash keeps (workers/journal.py)."""

from __future__ import annotations

from typing import Any

from fixtures.stores import RecordedWrites
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.journal import Journal
from workers.kv import BatchKV, decode_value

KEYS = [f'["st",{i}]' for i in range(6)]
batches = st.lists(
    st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), st.integers(0, 10**6).map(lambda n: {"n": n})),
                    min_size=1),
    min_size=1, max_size=5)


def _apply(kv: BatchKV, batch: dict[str, Any]) -> None:
    for key, value in batch.items():
        if value is None:
            kv.delete(key)
        else:
            kv.put(key, value)


def _state(store: dict[str, bytes]) -> dict[str, Any]:
    return {key: decode_value(data) for key, data in store.items() if key.startswith("[")}


@settings(max_examples=300, deadline=None)
@given(batches=batches, part_bytes=st.sampled_from([1, 40, 100, 10_000]), cut=st.floats(0, 1),
       crash_twice=st.booleans())
def test_a_crash_keeps_a_batch_whole_or_not_at_all(batches: list[dict[str, Any]], part_bytes: int,
                                                     cut: float, crash_twice: bool) -> None:
    store: dict[str, bytes] = {}
    journal = Journal("journal/0", part_bytes)
    for batch in batches[:-1]:
        kv = BatchKV(store, journal=journal)
        _apply(kv, batch)
        kv.flush()
    before = _state(store)
    recorder = RecordedWrites(store)
    kv = BatchKV(recorder, journal=journal)
    _apply(kv, batches[-1])
    kv.flush()
    whole = {**before, **{k: v for k, v in batches[-1].items() if v is not None}}
    whole = {k: v for k, v in whole.items() if batches[-1].get(k, 0) is not None}
    # a batch that changes nothing (deletes absent keys) writes no journal: its state is ``before``
    marker_at = next((i for i, (key, _) in enumerate(recorder.ops) if key == "journal/0"), len(recorder.ops))
    kept = int(cut * len(recorder.ops))
    recorder.keep(kept)
    restarted = Journal("journal/0", part_bytes)
    restarted.recover(store)
    if crash_twice:  # recovering again (another restart, another worker) changes nothing
        Journal("journal/0", part_bytes).recover(store)
    assert _state(store) == (whole if kept > marker_at else before)
    # the next batch after recovery journals and writes normally, and leaves no stale parts behind
    kv = BatchKV(store, journal=restarted)
    kv.put(KEYS[0], {"n": -1})
    kv.flush()
    assert decode_value(store[KEYS[0]]) == {"n": -1}
    assert sorted(k for k in store if k.startswith("journal/0/")) == ["journal/0/0"]


def test_a_batch_without_changes_writes_no_journal() -> None:
    store: dict[str, bytes] = {}
    kv = BatchKV(store, journal=Journal("journal/0", 1000))
    kv.get(KEYS[0])
    kv.flush()
    assert store == {}

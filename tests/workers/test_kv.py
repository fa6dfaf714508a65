"""The stored encoding of table values: exact round trips, old values still read, and the
size a day of relay buckets takes."""

from __future__ import annotations

import random
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.meters import METERS
from tests.fixtures.factories import relay
from topics.events import parse_event
from workers.kv import PACKED, BatchKV, ValueTooLarge, decode_value, encode_value

#: what orjson can write: integers from -2**63 to 2**64 - 1
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=40) | st.dictionaries(st.text(max_size=4), children, max_size=5),
    max_leaves=200,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_round_trips_exactly(value: Any) -> None:
    assert decode_value(encode_value(value)) == orjson.loads(orjson.dumps(value))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=32, max_size=400))
def test_long_integer_lists_are_packed_and_come_back_with_their_types(numbers: list[int]) -> None:
    value = {"buckets": {"mainland": numbers, "flags": [True] * 40, "big": [2**63] * 40}, "ids": {"e1": 5}}
    data = encode_value(value)
    assert data[:1] == PACKED
    back = decode_value(data)
    assert back == value
    assert all(type(x) is bool for x in back["buckets"]["flags"])  # a bool list is not an int array
    assert all(type(x) is int for x in back["buckets"]["mainland"])


def test_a_value_that_looks_like_an_array_slot_is_kept_as_it_is() -> None:
    for value in ({"\x00a": 3}, {"x": [{"\x00a": 0}] * 40, "y": {"\x00a": {"\x00a": list(range(50))}}}):
        assert decode_value(encode_value(value)) == value


def test_values_written_as_plain_json_before_the_encoding_still_read() -> None:
    old = {"state": {"total": 5}, "ids": {"e1": 1}}
    store = {"k": orjson.dumps(old)}
    assert BatchKV(store).get("k") == old
    assert encode_value({"a": 1}) == b'{"a":1}'  # small values stay readable JSON


def test_a_day_of_relay_buckets_is_stored_in_about_a_third_of_its_json() -> None:
    meter = METERS["relay"]
    state = meter.initial()
    rng = random.Random(7)
    for bucket in range(288):
        for zone in ("mainland", "ap1"):
            time = f"2026-08-01T{bucket // 12:02d}:{bucket % 12 * 5:02d}:00+08:00"
            list(meter.fold(state, parse_event(relay(time, rng.randrange(10**8, 3 * 10**10), zone=zone))))
    as_json = len(orjson.dumps(state))
    stored = len(encode_value(state))
    assert decode_value(encode_value(state)) == state
    assert stored < 0.45 * as_json, (stored, as_json)


def test_a_value_over_the_message_limit_stops_the_batch_before_anything_is_written() -> None:
    store: dict[str, bytes] = {}
    kv = BatchKV(store, max_value_bytes=2_000)
    kv.put("small", {"a": 1})
    key = '["st","relay","2026-08-01","acct-1",1400000001]'
    kv.put(key, {"ids": {f"{i:x}-{i * 7919 % 10007}": i for i in range(5000)}})
    with pytest.raises(ValueTooLarge, match=re.escape(f"table value {key} is ") + r"[\d,]+ bytes, over the 2,000-byte"):
        kv.flush()
    assert store == {}  # not even the small one: the batch's state is written whole or not at all


# -- integers of any size (sums of 5-minute buckets beyond 2^63) ----------------------------


@pytest.mark.parametrize("number", [2**63, 2**64 - 1, 2**64, 2**70, -(2**70), 19 * 1000 * 10**15])
def test_integers_beyond_64_bits_round_trip_packed_or_not(number: int) -> None:
    small = {"sum": number, "list": [number, 1]}
    assert decode_value(encode_value(small)) == small
    assert type(decode_value(encode_value(small))["sum"]) is int
    buckets = [10**15] * 287 + [number]  # out of int64 range: stays in the JSON
    packed = {"buckets": {"mainland": list(range(288)), "big": buckets}, "total": number, "ids": {"e": 1}}
    data = encode_value(packed)
    assert data[:1] == PACKED
    assert decode_value(data) == packed


def test_a_relay_bucket_over_2_to_the_63_bytes_is_stored_exactly() -> None:
    """19 batches of 1,000 records of 10^15 bytes in one 5-minute bucket: 1.9 × 10^19 bytes."""
    meter = METERS["relay"]
    state = meter.initial()
    for i in range(19_000):
        list(meter.fold(state, parse_event(relay("2026-08-01T10:00:00+08:00", 10**15, event_id=f"e{i}"))))
    kv = BatchKV({})
    kv.put("state", state)
    kv.flush()
    back = kv.get("state")
    assert back == state
    assert 19_000 * 10**15 in [x for values in _int_lists(back) for x in values]


def _int_lists(node: Any) -> list[list[int]]:
    if isinstance(node, dict):
        return [found for v in node.values() for found in _int_lists(v)]
    if isinstance(node, list):
        if node and all(type(x) is int for x in node):
            return [node]
        return [found for v in node for found in _int_lists(v)]
    return []

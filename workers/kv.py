"""The key-value view the stages use: a Faust table in the worker, a dict in tests.

Values are JSON documents stored in a compact encoding (``encode_value``). ``BatchKV``
reads each key at most once per batch, keeps the decoded value, and writes every changed
key back exactly once when the batch ends (the Faust rule: a changed table value must be
written back, and once per batch is enough).
"""

from __future__ import annotations

import sys
import zlib
from array import array
from typing import Any

from topics import codec
from topics.reasons import VasbillError
from workers.journal import Journal, Store

_MISSING = object()

#: A table value is one changelog message: Kafka's default limit (``message.max.bytes``,
#: 1,048,588) less room for the key and the record overhead.
MAX_VALUE_BYTES = 1_000_000


class ValueTooLarge(VasbillError):
    """A table value would not fit in one Kafka message. Stopping is the exact answer: the
    state it holds could not be saved, so nothing after it may be committed."""

#: Stored values: plain JSON when small; else this byte, then zlib of (skeleton length as 4
#: bytes, the JSON skeleton, the packed integer arrays). A JSON text never starts with it,
#: so values written before the encoding existed still read.
PACKED = b"\x02"
PACK_FROM_BYTES = 256
MIN_ARRAY = 32          # shorter integer lists stay in the JSON
_SLOT = "\x00a"         # {"\x00a": length}: an array; {"\x00a": [v]}: a value's own {"\x00a": v}
_INT64 = (-(2**63), 2**63 - 1)


def encode_value(value: Any) -> bytes:
    """A JSON value as stored. Long integer lists (the 288 five-minute buckets of a day, per
    dimension) are taken out of the JSON and stored as int64 arrays with their bytes
    shuffled (all first bytes, then all second bytes…), so zlib sees the runs of equal high
    bytes: a day of relay buckets takes about a third of its JSON size. Integers of any
    size round-trip (``topics.codec``): a list holding one beyond int64 stays in the JSON."""
    arrays: list[list[int]] = []
    skeleton = codec.dumps(_take_arrays(value, arrays))
    if not arrays and len(skeleton) < PACK_FROM_BYTES:
        return skeleton if b'"\\u0000a"' not in skeleton else codec.dumps(value)  # unescaped
    blob = b"".join(_shuffled(numbers) for numbers in arrays)
    return PACKED + zlib.compress(len(skeleton).to_bytes(4, "little") + skeleton + blob, 6)


def decode_value(data: bytes) -> Any:
    if data[:1] != PACKED:
        return codec.loads(data)
    payload = zlib.decompress(data[1:])
    size = int.from_bytes(payload[:4], "little")
    skeleton = codec.loads(payload[4:4 + size])
    return _put_arrays(skeleton, memoryview(payload)[4 + size:], [0])


def _is_array(node: list[Any]) -> bool:
    return (len(node) >= MIN_ARRAY and type(node[0]) is int
            and all(type(x) is int and _INT64[0] <= x <= _INT64[1] for x in node))


def _children(node: Any) -> Any:
    return node.items() if type(node) is dict else enumerate(node)


def _take_arrays(node: Any, arrays: list[list[int]]) -> Any:
    """``node`` with its long int64 lists replaced by slots (copies only what changes)."""
    kind = type(node)
    if kind is list and _is_array(node):
        arrays.append(node)
        return {_SLOT: len(node)}
    if kind is not dict and kind is not list:
        return node
    if kind is dict and len(node) == 1 and _SLOT in node:  # escaped, so it cannot pass for a slot
        return {_SLOT: [_take_arrays(node[_SLOT], arrays)]}
    copy = None
    for key, item in _children(node):
        if type(item) is dict or type(item) is list:
            new = _take_arrays(item, arrays)
            if new is not item:
                copy = copy if copy is not None else kind(node)
                copy[key] = new
    return node if copy is None else copy


def _put_arrays(node: Any, blob: memoryview, at: list[int]) -> Any:
    """Replace slots by their arrays, in place (the skeleton is a fresh object). Arrays are
    met in the order they were taken (dicts keep insertion order)."""
    if type(node) is dict and len(node) == 1 and _SLOT in node:
        length = node[_SLOT]
        if type(length) is list:
            return {_SLOT: _put_arrays(length[0], blob, at)}
        start = at[0]
        at[0] = start + 8 * length
        return _unshuffled(blob[start:at[0]], length)
    if type(node) is dict or type(node) is list:
        for key, item in _children(node):
            if type(item) is dict or type(item) is list:
                node[key] = _put_arrays(item, blob, at)
    return node


def _shuffled(numbers: list[int]) -> bytes:
    raw = array("q", numbers)
    if sys.byteorder == "big":
        raw.byteswap()
    data = raw.tobytes()
    return b"".join(data[i::8] for i in range(8))


def _unshuffled(planes: memoryview, length: int) -> list[int]:
    data = bytearray(8 * length)
    for i in range(8):
        data[i::8] = planes[i * length:(i + 1) * length]
    raw = array("q")
    raw.frombytes(bytes(data))
    if sys.byteorder == "big":
        raw.byteswap()
    return raw.tolist()


class BatchKV:
    def __init__(self, store: Store, max_value_bytes: int | None = None,
                 journal: Journal | None = None) -> None:
        self.store = store
        self.max_value_bytes = max_value_bytes
        self.journal = journal
        self.cache: dict[str, Any] = {}
        self.dirty: dict[str, None] = {}  # in the order keys were first put: the order they are written
        self.deleted: set[str] = set()
        self._prepared: dict[str, bytes] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            raw = self.store.get(key)
            value = decode_value(raw) if raw is not None else None
            self.cache[key] = value
        return default if value is None else value

    def put(self, key: str, value: Any) -> None:
        self._prepared = None
        self.cache[key] = value
        self.dirty[key] = None
        self.deleted.discard(key)

    def delete(self, key: str) -> None:
        self._prepared = None
        self.cache[key] = None
        self.dirty.pop(key, None)
        self.deleted.add(key)

    def prepare(self) -> dict[str, bytes]:
        """Encode the changed values and check that each fits one Kafka message (else
        ``ValueTooLarge``, before anything of the batch is sent or written); ``flush`` then
        writes what was prepared."""
        encoded = {key: encode_value(self.cache[key]) for key in self.dirty}
        if self.max_value_bytes is not None:
            for key, data in encoded.items():
                if len(data) > self.max_value_bytes:
                    raise ValueTooLarge(
                        f"table value {key} is {len(data):,} bytes, over the {self.max_value_bytes:,}-byte limit "
                        "of one Kafka message (README: Performance and state size, Value size)")
        self._prepared = encoded
        return encoded

    def flush(self) -> int:
        """Write changed keys back, in the order they were first put, then delete; returns
        how many keys were written. With a journal, the batch's values go into it first, so
        a crash in the middle of the keys is completed on recovery (``workers.journal``);
        without one, a crash leaves a prefix of the keys."""
        encoded = self._prepared if self._prepared is not None else self.prepare()
        self._prepared = None
        deleted = [key for key in self.deleted if key in self.store]
        if self.journal is not None and (encoded or deleted):
            self.journal.write(self.store, [*encoded.items(), *((key, None) for key in deleted)])
        for key, data in encoded.items():
            self.store[key] = data
        for key in deleted:
            del self.store[key]
        written = len(self.dirty) + len(self.deleted)
        self.dirty.clear()
        self.deleted.clear()
        self.cache.clear()
        return written

"""The key-value view the stages use: a Faust table in the worker, a dict in tests.

Values are orjson documents. ``BatchKV`` reads each key at most once per batch, keeps the
decoded value, and writes every changed key back exactly once when the batch ends (the
Faust rule: a changed table value must be written back, and once per batch is enough).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

_MISSING = object()


class BatchKV:
    def __init__(self, store: MutableMapping[str, bytes]) -> None:
        self.store = store
        self.cache: dict[str, Any] = {}
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            raw = self.store.get(key)
            value = orjson.loads(raw) if raw is not None else None
            self.cache[key] = value
        return default if value is None else value

    def put(self, key: str, value: Any) -> None:
        self.cache[key] = value
        self.dirty.add(key)
        self.deleted.discard(key)

    def delete(self, key: str) -> None:
        self.cache[key] = None
        self.dirty.discard(key)
        self.deleted.add(key)

    def flush(self) -> int:
        """Write changed keys back; returns how many keys were written."""
        for key in self.dirty:
            self.store[key] = orjson.dumps(self.cache[key])
        for key in self.deleted:
            if key in self.store:
                del self.store[key]
        written = len(self.dirty) + len(self.deleted)
        self.dirty.clear()
        self.deleted.clear()
        self.cache.clear()
        return written

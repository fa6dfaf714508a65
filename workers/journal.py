"""All-or-nothing batch writes over a table that saves key by key.

A Faust table saves each key as its own changelog message, so a worker killed while it
writes a batch's keys leaves a prefix of them. The stages need a batch's state changes to
be saved whole or not at all: a clock saved past a close without the state it closed, or a
newer stage-2 summary saved without the number that says it was taken, turns the redone
batch into revisions that differ from an undisturbed run.

So each table partition has a journal: before a batch's keys are written, every new value
of the batch (and every deletion) is written in one or a few *part* messages, then a small
*marker* naming them; then the keys. The changelog keeps that order, so after a crash:

- marker and all its parts carry the same token: the batch may be partly written; writing
  its values again completes it (they are that batch's, and no later batch started);
- a part carries a newer token than the marker: the next batch crashed before its marker,
  so it wrote none of its keys, and the marker's batch was complete (nothing to do).

``recover`` runs before a partition's first batch after a start or a rebalance (cheaply:
when the marker's token is not the last one this process wrote). Writing a journal again is
idempotent, so recovering twice, or on another worker, is safe.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

TOKEN_BYTES = 8
_DELETED = 0xFFFFFFFF


class Store(Protocol):
    """What the stages write to: a Faust table (``workers.app.TableStore``) or a dict."""

    def get(self, key: str, default: bytes | None = None, /) -> bytes | None: ...
    def __setitem__(self, key: str, value: bytes, /) -> None: ...
    def __delitem__(self, key: str, /) -> None: ...
    def __contains__(self, key: object, /) -> bool: ...


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


@dataclass
class Journal:
    """The journal of one table partition. ``name`` is its marker key; parts are
    ``name/0``, ``name/1``… Keeps the token and part count this process last wrote."""

    name: str
    part_bytes: int
    token: bytes | None = field(default=None)
    parts: int = 0

    def part_key(self, index: int) -> str:
        return f"{self.name}/{index}"

    def write(self, store: Store, entries: Iterable[tuple[str, bytes | None]]) -> None:
        """Save ``entries`` (key, new value or None for a deletion) as this partition's
        journal. The caller writes the keys themselves after this returns."""
        token = os.urandom(TOKEN_BYTES)
        parts: list[list[bytes]] = [[token]]
        size = TOKEN_BYTES
        for key, data in entries:
            raw = key.encode()
            frame = _u32(len(raw)) + raw + (_u32(_DELETED) if data is None else _u32(len(data)) + data)
            if size + len(frame) > self.part_bytes and len(parts[-1]) > 1:
                parts.append([token])
                size = TOKEN_BYTES
            parts[-1].append(frame)
            size += len(frame)
        for index, frames in enumerate(parts):
            store[self.part_key(index)] = b"".join(frames)
        for index in range(len(parts), self.parts):  # older, longer journals: their tail
            if self.part_key(index) in store:
                del store[self.part_key(index)]
        store[self.name] = token + _u32(len(parts))
        self.token, self.parts = token, len(parts)

    def recover(self, store: Store) -> int:
        """Complete the last journaled batch if another process (or this one before a
        restart) wrote it; returns how many keys were written again."""
        marker = store.get(self.name)
        if marker is not None and marker[:TOKEN_BYTES] == self.token:
            return 0
        token, count = None, 0
        if marker is not None:
            token, count = marker[:TOKEN_BYTES], int.from_bytes(marker[TOKEN_BYTES:TOKEN_BYTES + 4], "little")
        found = count
        while self.part_key(found) in store:  # parts past the marker's: deleted by the next write
            found += 1
        self.token, self.parts = token, found
        if marker is None:
            return 0  # the first journal crashed before its marker: none of its keys were written
        parts = [store.get(self.part_key(i)) for i in range(count)]
        if any(part is None or part[:TOKEN_BYTES] != token for part in parts):
            return 0  # a newer batch began its journal and crashed before its marker: none of its keys were written
        written = 0
        for part in parts:
            assert part is not None
            for key, data in _entries(part):
                if data is None:
                    if key in store:
                        del store[key]
                else:
                    store[key] = data
                written += 1
        return written


def _entries(part: bytes) -> Iterable[tuple[str, bytes | None]]:
    at = TOKEN_BYTES
    view = memoryview(part)
    while at < len(part):
        size = int.from_bytes(view[at:at + 4], "little")
        key = bytes(view[at + 4:at + 4 + size]).decode()
        at += 4 + size
        size = int.from_bytes(view[at:at + 4], "little")
        at += 4
        if size == _DELETED:
            yield key, None
        else:
            yield key, bytes(view[at:at + size])
            at += size

"""The ``vasbill-configs`` message header: how far into ``config.apps`` a message's events
need the reader to be.

Workers read ``config.apps`` in the background, so an event produced right after its app's
new configuration could otherwise be judged by the old one. ``vasbill produce`` waits until
each configuration it sends is stored and stamps the usage messages that follow with the
end offsets of ``config.apps`` it knows of; a worker whose config reader is behind those
offsets reads on before it processes the message (and passes the stamp on to stage 2).

Header value: ``{"<partition>": end offset, ...}`` (JSON object).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

HEADER = "vasbill-configs"


def encode(ends: Mapping[int, int]) -> bytes:
    return orjson.dumps({str(p): offset for p, offset in sorted(ends.items())})


def decode(value: bytes | None) -> dict[int, int]:
    """The offsets of a header; {} for none or a malformed one (then nothing is awaited)."""
    if not value:
        return {}
    try:
        doc = orjson.loads(value)
        return {int(p): int(offset) for p, offset in doc.items()}
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return {}


def highest(stamps: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The largest offset per partition over several stamps."""
    out: dict[int, int] = {}
    for stamp in stamps:
        for partition, offset in stamp.items():
            if offset > out.get(partition, -1):
                out[partition] = offset
    return out

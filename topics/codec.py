"""JSON bytes for vasbill's own values (table values, internal messages), integers of any size.

orjson is fast but refuses integers beyond 64 bits (``TypeError: Integer exceeds 64-bit
range``), and reads an integer beyond them back as a float, silently (orjson 3.x: up to
2^64 − 1 and down to −2^63 stay integers). A sum of accepted byte counts can pass 2^63
(19,000 records of 10^15 bytes in one 5-minute bucket), so:

- ``dumps`` is ``orjson.dumps``; when orjson refuses an integer only, the integers out of
  its range are written by Python (exact digits) into orjson's own output, so every other
  value is written, or refused, exactly as orjson does it;
- ``loads`` is ``orjson.loads``; when the text holds a number of 19 digits or more (the
  only ones orjson may have turned into floats: 2^64 has 20 digits, −2^63 − 1 has 19), it
  is read again by the standard library, which keeps integers exact. orjson reads it
  first, so what it rejects (NaN, trailing commas, invalid UTF-8…) is still rejected,
  except integers of over 308 digits (orjson: "number is infinity when parsed as double").

Only the rare big value pays for the slow path. Python refuses to convert integers of more
than 4,300 digits to or from text; ``loads`` reports those as ``orjson.JSONDecodeError``.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import orjson

#: Digits to "0", everything else to " ": a run of 19 digits is then a plain substring
#: search (C speed; a regex takes 15 times as long as orjson's whole parse).
_DIGIT_MAP = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_RUN = b"0" * 19
_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1
_TOO_BIG = "Integer exceeds 64-bit range"


def dumps(value: Any) -> bytes:
    """``orjson.dumps(value)``, with integers of any size written exactly."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if _TOO_BIG not in str(exc):
            raise
    token = secrets.token_hex(8)
    digits: list[bytes] = []
    data = orjson.dumps(_mark_big_ints(value, token, digits))
    pattern = re.compile(b'"\\\\u0000' + token.encode() + b':([0-9]+)"')
    return pattern.sub(lambda m: digits[int(m[1])], data)


def _mark_big_ints(node: Any, token: str, digits: list[bytes]) -> Any:
    """``node`` with every integer outside orjson's range replaced by a unique marker string
    (copies only the containers that hold one)."""
    kind = type(node)
    if kind is int or (isinstance(node, int) and kind is not bool):
        if _I64_MIN <= node <= _U64_MAX:
            return node
        digits.append(str(int(node)).encode())
        return f"\x00{token}:{len(digits) - 1}"
    if kind is dict:
        out = None
        for key, item in node.items():
            new = _mark_big_ints(item, token, digits)
            if new is not item:
                out = out if out is not None else dict(node)
                out[key] = new
        return node if out is None else out
    if kind is list or kind is tuple:
        items = [_mark_big_ints(item, token, digits) for item in node]
        return items if any(a is not b for a, b in zip(items, node, strict=True)) else node
    return node


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """``orjson.loads(data)``, with integers of any size read exactly."""
    raw = data.encode() if isinstance(data, str) else bytes(data) if not isinstance(data, bytes) else data
    if len(raw) < 19 or not _long_number(raw):
        return orjson.loads(data)
    try:
        orjson.loads(data)  # what orjson rejects stays rejected
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc):  # an integer of over 308 digits: read below
            raise
    text = data if isinstance(data, str) else bytes(data).decode()
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # over 4,300 digits: Python's int/str limit
        raise orjson.JSONDecodeError(f"cannot read exactly: {exc}", text, 0) from None


def _long_number(raw: bytes) -> bool:
    """True if ``raw`` has a run of 19+ digits in a number's place: at the start, or after
    ``[``, ``:`` or ``,`` (a minus sign and spaces allowed). Strings holding such text
    only cost a slower read."""
    mapped = raw.translate(_DIGIT_MAP)
    at = mapped.find(_RUN)
    while at >= 0:  # the first 19-digit window of a run starts at the run's first digit
        before = at - 1
        if before >= 0 and raw[before] == 45:  # "-"
            before -= 1
        while before >= 0 and raw[before] in b" \t\r\n":
            before -= 1
        if before < 0 or raw[before] in b"[:,":
            return True
        end = mapped.find(b" ", at)
        if end < 0:
            return False
        at = mapped.find(_RUN, end)
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

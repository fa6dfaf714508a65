"""Event time: RFC 3339 with an offset in, Beijing time (UTC+08:00) out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time; raise ``ValueError`` when it has no offset."""
    if not isinstance(text, str) or len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    value = datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time without offset: {text!r}")
    return value


def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exact for whole milliseconds."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def format_time(value: datetime | int) -> str:
    """Beijing-time RFC 3339 text, as charges and statements show it."""
    if isinstance(value, int):
        value = from_ms(value)
    return value.astimezone(BEIJING).isoformat()

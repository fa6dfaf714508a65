"""Event time: RFC 3339 with an offset in, Beijing time (UTC+08:00) out.

``parse_time`` accepts exactly SPEC §3's form ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)``
(ASCII digits; ``T`` and ``Z`` also in lower case, as RFC 3339 §5.6 allows; a fraction of
1 to 9 digits, truncated to microseconds; offset hours ≤ 23 and minutes ≤ 59; ``-00:00``
is UTC). Everything else is a ``ValueError``: ISO 8601's other forms (week and ordinal
dates, basic format, ``+08`` or ``+0800`` offsets, a space separator), leap seconds
(``:60`` cannot be represented) and trailing text.

Range (SPEC §3, every date and time lies in 2000-01-01 … 2099-12-31): our reading is the
*Beijing date of the instant*, the calendar that bills it, so the accepted instants are
2000-01-01T00:00:00+08:00 up to, not including, 2100-01-01T00:00:00+08:00, whatever
offset the text is written in. Out of range is a ``ValueError`` (``schema`` for events,
a ``ConfigError`` for app configs); the local year is checked before any arithmetic, so
no input (year 0001, 9999) can raise ``OverflowError``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: The instants SPEC §3 accepts: Beijing dates 2000-01-01 … 2099-12-31.
FIRST_DATE = date(2000, 1, 1)
LAST_DATE = date(2099, 12, 31)
MIN_MS = (datetime(2000, 1, 1, tzinfo=BEIJING) - _EPOCH) // timedelta(milliseconds=1)
END_MS = (datetime(2100, 1, 1, tzinfo=BEIJING) - _EPOCH) // timedelta(milliseconds=1)  # exclusive
RANGE_TEXT = "2000-01-01 … 2099-12-31 (Beijing date)"

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 date-time (module docstring); raise ``ValueError`` otherwise."""
    if type(text) is not str:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM): {text[:64]!r}")
    year, _month, _day, _hour, _minute, _second, fraction, sign, off_h, off_m = match.groups()
    if not "1999" <= year <= "2100":  # cannot be in range whatever the offset; no arithmetic on it
        raise ValueError(f"time {text!r} is outside {RANGE_TEXT}")
    if sign is not None and (off_h > "23" or off_m > "59"):
        raise ValueError(f"offset {sign}{off_h}:{off_m} is not ±HH:MM with HH ≤ 23 and MM ≤ 59")
    if fraction is not None and len(fraction) > 6:  # fromisoformat's handling of >6 digits varies
        text = f"{text[:20]}{fraction[:6]}{text[20 + len(fraction):]}"
    value = datetime.fromisoformat(text if text[-1] != "z" else text[:-1] + "Z")
    if not MIN_MS <= to_ms(value) < END_MS:
        raise ValueError(f"time {text!r} is outside {RANGE_TEXT}")
    return value


def to_ms(value: datetime) -> int:
    """Milliseconds since the epoch, exact for whole milliseconds."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def date_start_ms(value: date) -> int:
    """The Beijing start (00:00+08:00) of a calendar date, in epoch milliseconds."""
    return to_ms(datetime(value.year, value.month, value.day, tzinfo=BEIJING))


def format_time(value: datetime | int) -> str:
    """Beijing-time RFC 3339 text, as charges and statements show it."""
    if isinstance(value, int):
        value = from_ms(value)
    return value.astimezone(BEIJING).isoformat()

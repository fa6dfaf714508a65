"""``topics.timefmt.parse_time``: RFC 3339 exactly as SPEC §3 writes it
(``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)``), every instant's Beijing date in
2000-01-01 … 2099-12-31, and a ``ValueError`` (never an ``OverflowError``) for anything else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from topics.timefmt import parse_time, to_ms


@pytest.mark.parametrize("text", [
    "2026-08-01T10:00:00+08:00",
    "2026-08-01T10:00:00Z",
    "2026-08-01T10:00:00z",  # RFC 3339 §5.6: "T" and "Z" may be lower case
    "2026-08-01t10:00:00-05:30",
    "2026-08-01T10:00:00.5+08:00",
    "2026-08-01T10:00:00.123456789Z",  # nanoseconds: truncated to microseconds
    "2026-08-01T10:00:00-00:00",
    "2026-08-01T10:00:00+23:59",
    "2000-01-01T00:00:00+08:00",  # the first Beijing instant of the range
    "2099-12-31T23:59:59.999999+08:00",  # the last
    "1999-12-31T16:00:00Z",  # = 2000-01-01T00:00 Beijing
])
def test_valid_rfc_3339_times_parse(text: str) -> None:
    value = parse_time(text)
    assert value.utcoffset() is not None


def test_fractions_of_one_to_nine_digits_truncate_to_microseconds() -> None:
    base = datetime(2026, 8, 1, 2, 0, tzinfo=timezone.utc)
    assert parse_time("2026-08-01T02:00:00.1Z") == base + timedelta(microseconds=100_000)
    assert parse_time("2026-08-01T02:00:00.123456Z") == base + timedelta(microseconds=123_456)
    assert parse_time("2026-08-01T02:00:00.1234567Z") == base + timedelta(microseconds=123_456)
    assert parse_time("2026-08-01T02:00:00.999999999Z") == base + timedelta(microseconds=999_999)
    assert to_ms(parse_time("2026-08-01T10:00:00.0019+08:00")) == to_ms(base) + 1


def test_offsets_give_the_same_instant() -> None:
    assert parse_time("2026-08-01T10:00:00+08:00") == parse_time("2026-08-01T02:00:00Z")
    assert parse_time("2026-08-01T10:00:00+08:00") == parse_time("2026-07-31T21:30:00-04:30")


@pytest.mark.parametrize("text", [
    "2026-08-01T10:00:00+08",  # offset without minutes
    "2026-08-01T10:00:00+0800",  # basic-format offset
    "2026-08-01T10:00+08:00",  # no seconds
    "2026-W31-6T10:00:00+0800",  # ISO week date
    "2026-W31-6T10:00:00+08:00",
    "2026-213T10:00:00+08:00",  # ordinal date
    "20260801T100000+0800",  # basic format
    "2026-08-01 10:00:00+08:00",  # space separator
    "2026-08-01T10:00:00+08:00 ",  # trailing junk
    "2026-08-01T10:00:00+08:00x",
    " 2026-08-01T10:00:00+08:00",
    "2026-08-01T10:00:00",  # no offset
    "2026-08-01",
    "2026-08-01T10:00:00.+08:00",  # empty fraction
    "2026-08-01T10:00:00,5+08:00",  # comma fraction
    "2026-08-01T10:00:00.1234567890Z",  # more than 9 fraction digits
    "2026-08-01T10:00:00+24:00",  # offset hours over 23
    "2026-08-01T10:00:00+08:60",  # offset minutes over 59
    "2026-08-01T24:00:00+08:00",
    "2026-08-01T10:60:00+08:00",
    "2026-08-01T10:00:60+08:00",  # a leap second cannot be represented: schema
    "2026-02-30T10:00:00+08:00",
    "2026-13-01T10:00:00+08:00",
    "２０２６-08-01T10:00:00+08:00",  # fullwidth digits
    "2026-08-0١T10:00:00+08:00",  # an Arabic-Indic digit
    "2026-08-01T10:00:00\n",
    "",
])
def test_anything_else_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+08:00",  # before datetime.min in UTC: once an OverflowError
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-12:00",  # after datetime.max in UTC
    "9999-12-31T23:59:59.999999-23:59",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59+08:00",  # the Beijing date is 1999-12-31
    "1999-12-31T15:59:59Z",
    "2100-01-01T00:00:00+08:00",
    "2099-12-31T16:00:00Z",  # = 2100-01-01T00:00 Beijing
    "2099-12-31T20:00:00-08:00",
])
def test_times_outside_2000_to_2099_beijing_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="2000-01-01"):
        parse_time(text)


@pytest.mark.parametrize("value", [None, 1709258400, 17.5, ["2026-08-01T10:00:00Z"], {"t": 1}, b"2026"])
def test_non_strings_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError):
        parse_time(value)  # type: ignore[arg-type]

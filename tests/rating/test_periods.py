"""Billing periods: Beijing natural days and months (SPEC §1, §6)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from rating.periods import (
    BUCKETS_PER_DAY,
    DAY_MS,
    SAMPLE_MS,
    Period,
    bucket_of,
    day_of,
    day_of_date,
    month_of,
    period_of,
)
from topics.timefmt import BEIJING, parse_time, to_ms


def ms(text: str) -> int:
    return to_ms(parse_time(text))


def test_constants() -> None:
    assert DAY_MS == 86_400_000
    assert SAMPLE_MS == 300_000
    assert BUCKETS_PER_DAY == 288


@pytest.mark.parametrize(
    ("utc", "day"),
    [
        ("2026-08-01T15:59:59Z", "2026-08-01"),  # 23:59:59 in Beijing
        ("2026-08-01T15:59:59.999Z", "2026-08-01"),
        ("2026-08-01T16:00:00Z", "2026-08-02"),  # Beijing midnight
        ("2026-08-01T00:00:00Z", "2026-08-01"),  # 08:00 in Beijing
        ("2026-07-31T16:00:00Z", "2026-08-01"),  # the UTC date is still 31 July
        ("2026-08-01T00:00:00+08:00", "2026-08-01"),
        ("2026-07-31T23:59:59+08:00", "2026-07-31"),
        ("2026-08-01T01:00:00-05:00", "2026-08-01"),  # 14:00 Beijing
        ("2026-08-01T11:00:00-05:00", "2026-08-02"),  # 00:00 Beijing next day
    ],
)
def test_beijing_day_not_utc_day(utc: str, day: str) -> None:
    assert day_of(ms(utc)) == Period("day", day)


def test_day_bounds_are_beijing_midnights() -> None:
    day = Period("day", "2026-08-02")
    assert day.start_ms == ms("2026-08-01T16:00:00Z")
    assert day.end_ms == ms("2026-08-02T16:00:00Z")
    assert day.end_ms - day.start_ms == DAY_MS
    assert day.start == datetime(2026, 8, 2, tzinfo=BEIJING)
    assert day.start.utcoffset() == timedelta(hours=8)
    assert day.describe() == ("2026-08-02T00:00:00+08:00", "2026-08-03T00:00:00+08:00")
    assert day.start_date == date(2026, 8, 2)


def test_half_open_periods() -> None:
    day = Period("day", "2026-08-02")
    assert day_of(day.start_ms) == day
    assert day_of(day.end_ms) == Period("day", "2026-08-03")
    assert day_of(day.end_ms - 1) == day


@pytest.mark.parametrize(
    ("utc", "month"),
    [
        ("2026-07-31T16:00:00Z", "2026-08"),  # 1 Aug 00:00 Beijing
        ("2026-07-31T15:59:59Z", "2026-07"),
        ("2026-12-31T16:00:00Z", "2027-01"),
        ("2026-12-31T15:59:59Z", "2026-12"),
    ],
)
def test_month_of(utc: str, month: str) -> None:
    assert month_of(ms(utc)) == Period("month", month)
    assert period_of("month", ms(utc)) == Period("month", month)
    assert period_of("day", ms(utc)) == day_of(ms(utc))


@pytest.mark.parametrize(
    ("month", "days"),
    [
        ("2026-02", 28),
        ("2024-02", 29),
        ("2100-02", 28),  # divisible by 100, not by 400
        ("2000-02", 29),  # divisible by 400
        ("2026-04", 30),
        ("2026-06", 30),
        ("2026-08", 31),
        ("2026-12", 31),
        ("2026-01", 31),
    ],
)
def test_days_in_month(month: str, days: int) -> None:
    period = Period("month", month)
    assert period.days_in == days
    listed = period.days()
    assert len(listed) == days
    assert listed[0] == Period("day", f"{month}-01")
    assert listed[-1] == Period("day", f"{month}-{days:02d}")
    assert all(d.kind == "day" for d in listed)
    # consecutive days tile the month exactly
    assert listed[0].start_ms == period.start_ms
    assert listed[-1].end_ms == period.end_ms
    for a, b in zip(listed, listed[1:], strict=False):
        assert a.end_ms == b.start_ms
    assert all(d.month() == period for d in listed)


def test_month_bounds() -> None:
    aug = Period("month", "2026-08")
    assert aug.describe() == ("2026-08-01T00:00:00+08:00", "2026-09-01T00:00:00+08:00")
    assert aug.start_ms == ms("2026-07-31T16:00:00Z")
    assert aug.end_ms == ms("2026-08-31T16:00:00Z")
    dec = Period("month", "2026-12")
    assert dec.describe() == ("2026-12-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00")
    feb = Period("month", "2024-02")
    assert feb.end_ms - feb.start_ms == 29 * DAY_MS


def test_day_days_is_itself() -> None:
    day = Period("day", "2026-08-02")
    assert day.days() == [day]
    assert day.days_in == 1
    assert day.month() == Period("month", "2026-08")


def test_day_of_date() -> None:
    assert day_of_date(date(2024, 2, 29)) == Period("day", "2024-02-29")


@pytest.mark.parametrize(
    ("utc", "bucket"),
    [
        ("2026-08-01T16:00:00Z", 0),  # Beijing 00:00
        ("2026-08-01T16:04:59.999Z", 0),
        ("2026-08-01T16:05:00Z", 1),
        ("2026-08-02T02:05:00Z", 121),  # Beijing 10:05
        ("2026-08-01T15:59:59Z", 287),  # Beijing 23:59:59
        ("2026-08-01T15:55:00Z", 287),
        ("2026-08-01T15:54:59Z", 286),
    ],
)
def test_bucket_of(utc: str, bucket: int) -> None:
    assert bucket_of(ms(utc)) == bucket


def test_periods_sort_and_hash() -> None:
    a, b = Period("day", "2026-08-01"), Period("day", "2026-08-02")
    assert sorted([b, a]) == [a, b]
    assert len({a, Period("day", "2026-08-01")}) == 1


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        Period("week", "2026-W31").start  # noqa: B018


def test_every_beijing_midnight_of_a_year_is_a_day_start() -> None:
    first = datetime(2026, 1, 1, tzinfo=BEIJING)
    for i in range(365):
        start = first + timedelta(days=i)
        period = day_of(to_ms(start))
        assert period.start_ms == to_ms(start)
        assert period.key == start.date().isoformat()
        # one millisecond before is the previous day
        assert day_of(to_ms(start) - 1).key == (start.date() - timedelta(days=1)).isoformat()
    assert to_ms(first) == to_ms(datetime(2025, 12, 31, 16, tzinfo=timezone.utc))

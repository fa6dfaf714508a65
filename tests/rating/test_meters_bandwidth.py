"""CDN relay: 5-minute buckets in Beijing time, daily traffic tiers, daily peak and the
monthly contract modes (SPEC §5, pricing §2)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fixtures.factories import directory, make_app

from rating.biller import rate_lines
from rating.meters import RELAY
from rating.meters.bandwidth import combined, dim_key, total
from rating.money import div, mbps_of_bucket, mul
from rating.periods import Period
from rating.pricers.relay_monthly import drop_count, percentile_sample
from topics.appconfig import SERVICES, AppDirectory
from topics.events import parse_event

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-relay"
APP = 1400000001
APP2 = 1400000002
GB = 10**9
MBPS_BUCKET = 37_500_000  # bytes in a 5-minute bucket that make exactly 1 Mbps
_ids = itertools.count()


def app_doc(sdk_app_id: int = APP, **extra: Any) -> dict[str, Any]:
    return make_app(sdk_app_id, ACCOUNT, SERVICES, **extra)


def relay(time: str, num_bytes: int, app: int = APP, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"t-{next(_ids)}", "sdk_app_id": app, "type": "relay.traffic", "time": time,
            "stream_id": "s1", "zone": "mainland", "bytes": num_bytes, **fields}


def rate(apps: AppDirectory, events: list[dict[str, Any]]) -> list[Any]:
    charges, rejections, _ = rate_lines(apps, [orjson.dumps(e) for e in events], None, now=lambda: NOW)
    assert rejections == []
    return charges


def one(charges: list[Any], item: str) -> Any:
    found = [c for c in charges if c.item == item]
    assert len(found) == 1, [c.charge_id for c in charges]
    return found[0]


def line_of(charge: Any, **dims: str) -> Any:
    found = [ln for ln in charge.lines if all(ln.dimensions.get(k) == v for k, v in dims.items())]
    assert len(found) == 1, charge.lines
    return found[0]




def day_time(day: str, bucket: int) -> str:
    minutes = bucket * 5
    return f"{day}T{minutes // 60:02d}:{minutes % 60:02d}:00+08:00"


def day_events(day: str, buckets: dict[int, int], app: int = APP, **fields: Any) -> list[dict[str, Any]]:
    return [relay(day_time(day, i), n, app, **fields) for i, n in buckets.items() if n]


# -- buckets in Beijing time ---------------------------------------------------------------


def test_bucket_assignment_in_beijing_time() -> None:
    state = RELAY.initial()
    touched = RELAY.fold(state, parse_event(relay("2026-08-01T15:59:59Z", 7)))
    assert touched == [Period("day", "2026-08-01")]
    assert state["buckets"][dim_key("mainland", "down", "standard", "viewer")][287] == 7
    state2 = RELAY.initial()
    touched = RELAY.fold(state2, parse_event(relay("2026-08-01T16:00:00Z", 5)))
    assert touched == [Period("day", "2026-08-02")]
    assert state2["buckets"][dim_key("mainland", "down", "standard", "viewer")][0] == 5


def test_bucket_days_through_biller() -> None:
    charges = rate(directory(app_doc()), [
        relay("2026-08-01T15:59:59Z", 10 * GB),
        relay("2026-08-01T16:00:00Z", 20 * GB),
    ])
    got = {c.charge_id: c for c in charges}
    first = got[f"css/relay.traffic/{ACCOUNT}/2026-08-01"]
    second = got[f"css/relay.traffic/{ACCOUNT}/2026-08-02"]
    assert first.lines[0].quantity == 10 and first.amount == Decimal("2.6")
    assert second.lines[0].quantity == 20 and second.amount == Decimal("5.2")
    assert first.period_start == "2026-08-01T00:00:00+08:00"
    assert first.period_end == "2026-08-02T00:00:00+08:00"


def test_dimensions_are_separate_arrays() -> None:
    state = RELAY.initial()
    for e in [relay("2026-08-03T10:00:00+08:00", 1),
              relay("2026-08-03T10:01:00+08:00", 2),
              relay("2026-08-03T10:00:00+08:00", 4, direction="up"),
              relay("2026-08-03T10:00:00+08:00", 8, product="leb"),
              relay("2026-08-03T10:00:00+08:00", 16, source="recording"),
              relay("2026-08-03T10:00:00+08:00", 32, zone="ap1")]:
        RELAY.fold(state, parse_event(e))
    b = state["buckets"]
    assert b[dim_key("mainland", "down", "standard", "viewer")][120] == 3
    assert total(b) == 63
    assert total(b, zone="mainland") == 31
    assert total(b, direction="up") == 4
    assert total(b, source="recording") == 16
    assert combined(b, zone="mainland", direction="down", source="viewer")[120] == 11


# -- daily traffic tiers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_bytes", "price", "amount"),
    [
        (2000 * GB, "0.25", "500"),  # CSS tiers include their lower bound
        (2000 * GB - 1, "0.26", "519.99999999974"),  # 1999.999999999 GB
        (10000 * GB, "0.24", "2400"),
        (1 * GB, "0.26", "0.26"),
    ],
)
def test_mainland_2022_lower_bound_inclusive(num_bytes: int, price: str, amount: str) -> None:
    # large volumes as several records (one record is at most 1 PB)
    charge = one(rate(directory(app_doc()), [relay("2026-08-03T10:00:00+08:00", num_bytes)]), "relay.traffic")
    [line] = charge.lines
    assert line.unit_price == Decimal(price)
    assert line.amount == Decimal(amount)
    assert line.quantity == Decimal(num_bytes).scaleb(-9)
    assert line.dimensions == {"zone": "mainland", "direction": "down", "product": "standard"}
    assert charge.amount == Decimal(amount)


def test_2019_mainland_tier_and_example() -> None:
    # 500 Kbps × 1 h × 100 viewers = 22.5 GB → 2019: 5.85
    charge = one(rate(directory(app_doc()), [relay("2021-06-03T10:00:00+08:00", 22_500_000_000)]),
                 "relay.traffic")
    assert charge.catalog == "tencent-2019"
    assert charge.amount == Decimal("5.85")
    charge = one(rate(directory(app_doc()), [relay("2021-06-03T10:00:00+08:00", 500 * GB)]),
                 "relay.traffic")
    assert charge.lines[0].unit_price == Decimal("0.25")  # 500 GB reaches the second tier


def test_overseas_1tb_2019() -> None:
    charge = one(rate(directory(app_doc()), [relay("2021-06-03T10:00:00+08:00", 1000 * GB, zone="na")]),
                 "relay.traffic")
    assert charge.amount == Decimal(430)


def test_each_zone_tiered_on_its_own() -> None:
    charge = one(rate(directory(app_doc()), [
        relay("2026-08-03T10:00:00+08:00", 1500 * GB),
        relay("2026-08-03T10:00:00+08:00", 1500 * GB, zone="ap1"),
    ]), "relay.traffic")
    mainland = line_of(charge, zone="mainland")
    ap1 = line_of(charge, zone="ap1")
    # 3000 GB in total, but each zone stays under 2 TB
    assert mainland.unit_price == Decimal("0.26") and mainland.amount == 390
    assert ap1.unit_price == Decimal("0.46") and ap1.amount == 690
    assert charge.amount == 1080


def test_leb_and_standard_tiered_separately_and_leb_is_double() -> None:
    charge = one(rate(directory(app_doc()), [
        relay("2026-08-03T10:00:00+08:00", 1500 * GB),
        relay("2026-08-03T10:00:00+08:00", 1500 * GB, product="leb"),
    ]), "relay.traffic")
    standard = line_of(charge, product="standard")
    leb = line_of(charge, product="leb")
    assert standard.unit_price == Decimal("0.26") and standard.amount == 390
    assert leb.unit_price == Decimal("0.52") and leb.amount == 780  # 2 × 0.26


def test_leb_mainland_2022_second_tier() -> None:
    charge = one(rate(directory(app_doc()), [relay("2026-08-03T10:00:00+08:00", 2000 * GB, product="leb")]),
                 "relay.traffic")
    assert charge.lines[0].unit_price == Decimal("0.50")


def test_two_apps_of_an_account_reach_the_tier_together() -> None:
    charge = one(rate(directory(app_doc(APP), app_doc(APP2)), [
        relay("2026-08-03T10:00:00+08:00", 1000 * GB),
        relay("2026-08-03T11:00:00+08:00", 1000 * GB, app=APP2),
    ]), "relay.traffic")
    assert charge.lines[0].unit_price == Decimal("0.25")
    assert charge.amount == 500
    usage = {"download_gb": "1000", "upload_gb": "0", "recording_pull_gb": "0"}
    assert charge.usage_by_app == {str(APP): usage, str(APP2): usage}


def test_recording_pulls_not_billed() -> None:
    charge = one(rate(directory(app_doc()), [
        relay("2026-08-03T10:00:00+08:00", 50 * GB, source="recording"),
        relay("2026-08-03T10:00:00+08:00", 10 * GB),
    ]), "relay.traffic")
    billed = line_of(charge, product="standard", source=None)  # type: ignore[arg-type]
    assert billed.amount == Decimal("2.6")
    excluded = [ln for ln in charge.lines if ln.excluded]
    assert len(excluded) == 1
    [pull] = excluded
    assert pull.excluded == "recording_pull"
    assert pull.quantity == 50
    assert pull.amount == 0 and pull.unit_price == 0
    assert pull.dimensions["source"] == "recording"
    assert charge.amount == Decimal("2.6")
    assert charge.usage_by_app[str(APP)]["recording_pull_gb"] == "50"


def test_only_recording_pulls_gives_zero_charge_with_usage() -> None:
    charge = one(rate(directory(app_doc()), [relay("2026-08-03T10:00:00+08:00", 50 * GB, source="recording")]),
                 "relay.traffic")
    assert charge.amount == 0
    assert [ln.excluded for ln in charge.lines] == ["recording_pull"]


def test_recording_pulls_not_in_daily_peak() -> None:
    apps = directory(app_doc(relay_billing="bandwidth_daily_peak"))
    charge = one(rate(apps, [
        relay("2026-08-03T10:00:00+08:00", 100 * MBPS_BUCKET, source="recording"),
        relay("2026-08-03T11:00:00+08:00", 50 * MBPS_BUCKET),
    ]), "relay.bandwidth.daily_peak")
    billed = [ln for ln in charge.lines if not ln.excluded]
    assert [ln.quantity for ln in billed] == [50]
    assert charge.amount == Decimal("32.5")


def upload_day(peak_bucket: int) -> list[dict[str, Any]]:
    """101 GB of push on 2026-08-03 whose largest bucket is ``peak_bucket`` bytes."""
    rest = 101 * GB - peak_bucket
    buckets = {0: peak_bucket}
    for i in range(1, 200):
        n = min(rest, 3_700_000_000)
        buckets[i] = n
        rest -= n
    assert rest == 0
    return day_events("2026-08-03", buckets, direction="up")


def test_upload_billed_example_2022() -> None:
    # download 10 GB, upload 101 GB, push daily peak 101 Mbps → 0.26 × (10 + 101) = 28.86
    events = [relay("2026-08-03T10:00:00+08:00", 10 * GB)] + upload_day(101 * MBPS_BUCKET)
    charge = one(rate(directory(app_doc()), events), "relay.traffic")
    up = line_of(charge, direction="up")
    assert up.quantity == 101 and up.unit_price == Decimal("0.26") and not up.excluded
    assert charge.amount == Decimal("28.86")


def test_upload_not_billed_at_exactly_100_mbps() -> None:
    events = [relay("2026-08-03T10:00:00+08:00", 10 * GB)] + upload_day(100 * MBPS_BUCKET)
    charge = one(rate(directory(app_doc()), events), "relay.traffic")
    up = line_of(charge, direction="up")
    assert up.excluded == "upload_not_billed" and up.amount == 0
    assert charge.amount == Decimal("2.6")


def test_upload_not_billed_when_download_is_a_tenth() -> None:
    # 10.1 GB down : 101 GB up is exactly 1 : 10, not below it
    events = [relay("2026-08-03T10:00:00+08:00", 10_100_000_000)] + upload_day(101 * MBPS_BUCKET)
    charge = one(rate(directory(app_doc()), events), "relay.traffic")
    assert line_of(charge, direction="up").excluded == "upload_not_billed"
    assert charge.amount == Decimal("2.626")


# -- daily peak ----------------------------------------------------------------------------


def test_daily_peak_is_max_bucket_x8_over_300() -> None:
    apps = directory(app_doc(relay_billing="bandwidth_daily_peak"))
    events = [
        relay("2026-08-03T10:00:00+08:00", 1_000_000_000),
        # two records in the 10:05 bucket add up to the peak: 1.875e9 bytes = 50 Mbps
        relay("2026-08-03T10:05:00+08:00", 1_000_000_000, interval_s=150),
        relay("2026-08-03T10:07:30+08:00", 875_000_000, interval_s=150),
        relay("2026-08-03T10:10:00+08:00", 1_800_000_000),
    ]
    charges = rate(apps, events)
    assert [c.item for c in charges] == ["relay.bandwidth.daily_peak"]
    [line] = charges[0].lines
    assert line.quantity == 50
    assert line.unit == "Mbps"
    assert line.unit_price == Decimal("0.65")
    assert charges[0].amount == Decimal("32.5")  # Tencent's 2022 example


def test_daily_peak_2019_and_overseas() -> None:
    apps = directory(app_doc(relay_billing="bandwidth_daily_peak"))
    charge = one(rate(apps, [relay("2021-06-03T10:00:00+08:00", 50 * MBPS_BUCKET)]),
                 "relay.bandwidth.daily_peak")
    assert charge.amount == 32  # 50 × 0.64
    charge = one(rate(apps, [relay("2021-06-03T10:00:00+08:00", 600 * MBPS_BUCKET, zone="eu")]),
                 "relay.bandwidth.daily_peak")
    assert charge.lines[0].unit_price == Decimal("1.2")
    assert charge.amount == 720


def test_daily_peak_uneven_bytes() -> None:
    apps = directory(app_doc(relay_billing="bandwidth_daily_peak"))
    charge = one(rate(apps, [relay("2026-08-03T10:00:00+08:00", 1_000_000)]), "relay.bandwidth.daily_peak")
    assert charge.lines[0].quantity == mbps_of_bucket(1_000_000) == div(8, 300)
    assert charge.lines[0].amount == mul(div(8, 300), Decimal("0.65"))


# -- monthly 95th --------------------------------------------------------------------------


def monthly(mode: str, price: str = "28.00") -> AppDirectory:
    return directory(app_doc(relay_billing=mode, contract_prices={"mainland": price}))


def test_drop_count_floor() -> None:
    assert drop_count(288, Decimal("0.05")) == 14
    assert drop_count(576, Decimal("0.05")) == 28
    assert drop_count(288 * 31, Decimal("0.05")) == 446
    assert drop_count(19, Decimal("0.05")) == 0
    assert drop_count(20, Decimal("0.05")) == 1
    assert percentile_sample(list(range(1, 289)), Decimal("0.05")) == 274
    assert percentile_sample([], Decimal("0.05")) == 0


def test_month95_one_effective_day_31_day_month() -> None:
    # samples 1..288 Mbps on one day: n = 288, drop 14, the 15th largest (274) is billed
    events = day_events("2026-08-10", {i: (i + 1) * MBPS_BUCKET for i in range(288)})
    charges = rate(monthly("bandwidth_monthly_95"), events)
    assert [c.charge_id for c in charges] == [f"css/relay.bandwidth.monthly_95/{ACCOUNT}/2026-08"]
    [line] = charges[0].lines
    assert line.quantity == 274
    assert line.unit_price == Decimal("28.00")
    assert line.factor == div(1, 31)
    assert line.amount == div(274 * 28, 31)
    assert charges[0].amount_rounded == Decimal("247.48")


def test_month95_28_day_month_two_effective_days() -> None:
    events = day_events("2026-02-03", {i: 100 * MBPS_BUCKET for i in range(20)})
    events += day_events("2026-02-17", {i: 90 * MBPS_BUCKET for i in range(20)})
    # a day whose peak is exactly 1000 bit/s (37500 bytes in a bucket) is not effective
    events += day_events("2026-02-20", {5: 37_500})
    charges = rate(monthly("bandwidth_monthly_95"), events)
    [charge] = charges
    [line] = charge.lines
    # n = 576, drop 28: 20 × 100 then 20 × 90 → the 29th largest is 90
    assert line.quantity == 90
    assert line.factor == div(2, 28)
    assert line.amount == div(90 * 28 * 2, 28) == 180
    assert charge.amount == 180


def test_month95_30_day_month_effective_day_threshold() -> None:
    events = day_events("2026-06-01", {0: 37_500})  # exactly 1000 bit/s: not effective
    events += day_events("2026-06-02", {0: 37_501})  # just above: effective
    events += day_events("2026-06-03", {i: 10 * MBPS_BUCKET for i in range(40)})
    [charge] = rate(monthly("bandwidth_monthly_95", "30"), events)
    [line] = charge.lines
    # 2 effective days: n = 576, drop 28 → the 29th largest is 10 Mbps
    assert line.quantity == 10
    assert line.factor == div(2, 30)
    assert line.amount == 20  # 10 × 30 × 2 / 30


def test_month95_without_contract_price_is_excluded() -> None:
    apps = directory(app_doc(relay_billing="bandwidth_monthly_95", contract_prices={"ap1": "10"}))
    events = day_events("2026-08-10", {i: 5 * MBPS_BUCKET for i in range(20)})
    [charge] = rate(apps, events)
    [line] = charge.lines
    assert line.excluded == "no_contract_price"
    assert line.amount == 0


def test_month95_upload_and_recording_not_counted() -> None:
    events = day_events("2026-08-10", {i: 10 * MBPS_BUCKET for i in range(20)})
    events += day_events("2026-08-11", {i: 500 * MBPS_BUCKET for i in range(20)}, direction="up")
    events += day_events("2026-08-12", {i: 500 * MBPS_BUCKET for i in range(20)}, source="recording")
    [charge] = rate(monthly("bandwidth_monthly_95"), events)
    [line] = charge.lines
    # only the 10th of August is an effective day; n = 288, drop 14 of 20 samples of 10 Mbps
    assert line.quantity == 10
    assert line.factor == div(1, 31)


def test_month95_two_apps_add_per_bucket() -> None:
    apps = directory(
        app_doc(APP, relay_billing="bandwidth_monthly_95", contract_prices={"mainland": "28"}),
        app_doc(APP2, relay_billing="bandwidth_monthly_95"),
    )
    events = day_events("2026-08-10", {i: 10 * MBPS_BUCKET for i in range(15)})
    events += day_events("2026-08-10", {i: 5 * MBPS_BUCKET for i in range(15)}, app=APP2)
    [charge] = rate(apps, events)
    assert charge.lines[0].quantity == 15  # 15 samples of 15 Mbps; drop 14 → 15
    assert set(charge.usage_by_app) == {str(APP), str(APP2)}


# -- monthly average of daily peaks --------------------------------------------------------


def test_monthly_avg_daily_peak() -> None:
    events = day_events("2026-08-01", {0: 10 * MBPS_BUCKET, 1: 3 * MBPS_BUCKET})
    events += day_events("2026-08-15", {100: 20 * MBPS_BUCKET})
    events += day_events("2026-08-31", {287: 30 * MBPS_BUCKET, 286: 29 * MBPS_BUCKET})
    events += day_events("2026-08-20", {3: 37_500})  # not effective: not in the mean
    [charge] = rate(monthly("bandwidth_monthly_avg_daily_peak", "28"), events)
    assert charge.charge_id == f"css/relay.bandwidth.monthly_avg_daily_peak/{ACCOUNT}/2026-08"
    [line] = charge.lines
    assert line.quantity == 20  # (10 + 20 + 30) / 3
    assert line.factor == div(3, 31)
    assert line.amount == div(20 * 28 * 3, 31)
    assert charge.amount == line.amount == div(1680, 31)
    assert charge.amount_rounded == Decimal("54.19")


def test_monthly_avg_daily_peak_non_integer_mean() -> None:
    events = day_events("2026-04-01", {0: 10 * MBPS_BUCKET})
    events += day_events("2026-04-02", {0: 11 * MBPS_BUCKET})
    events += day_events("2026-04-03", {0: 11 * MBPS_BUCKET})
    [charge] = rate(monthly("bandwidth_monthly_avg_daily_peak", "30"), events)
    [line] = charge.lines
    assert line.quantity == div(32, 3)
    assert line.factor == div(3, 30)
    # 32/3 × 30 × 3 / 30 = 32 (to 50 digits)
    assert abs(line.amount - 32) < Decimal("1e-40")
    assert charge.amount_rounded == Decimal("32.00")


def test_monthly_mode_emits_no_daily_charges() -> None:
    events = day_events("2026-08-10", {0: 10 * MBPS_BUCKET})
    charges = rate(monthly("bandwidth_monthly_95"), events)
    assert [c.item for c in charges] == ["relay.bandwidth.monthly_95"]

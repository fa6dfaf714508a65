"""Resource packages (SPEC §8, pricing §2.1, §3, §7): css_traffic, vod_traffic, transcoding."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

from rating.biller import Biller, rate_lines
from rating.money import EXACT, div, mul
from rating.packages import PackageLedger, capacity_cover, drain
from topics.appconfig import SERVICES, AppConfig, AppDirectory, PackageSpec
from topics.timefmt import parse_time

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-pkg"
APP = 1400000001
GB = 10**9
_ids = itertools.count()


def app_doc(packages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"sdk_app_id": APP, "account_id": ACCOUNT, "services": {s: True for s in SERVICES},
            "packages": packages, **extra}


def pkg(package_id: str, kind: str, size: str, bought: str, expires: str | None = None) -> dict[str, Any]:
    return {"package_id": package_id, "kind": kind, "size": size, "purchased_at": bought, "expires_at": expires}


def relay(time: str, gb: int | str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"p-{next(_ids)}", "sdk_app_id": APP, "type": "relay.traffic", "time": time,
            "stream_id": "s", "zone": "mainland", "bytes": int(Decimal(gb) * GB), **fields}


def vod(time: str, gb: int, zone: str = "mainland") -> dict[str, Any]:
    return {"event_id": f"p-{next(_ids)}", "sdk_app_id": APP, "type": "vod.traffic", "time": time,
            "zone": zone, "bytes": gb * GB}


def tc(time: str, seconds: int, width: int = 640, height: int = 480, kind: str = "standard") -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": f"p-{next(_ids)}", "sdk_app_id": APP, "type": "transcode.usage",
                             "time": time, "task_id": "t", "kind": kind, "seconds": seconds}
    if kind != "audio":
        event.update(codec="h264", width=width, height=height)
    return event


def rate(events: list[dict[str, Any]], *docs: dict[str, Any]) -> tuple[dict[str, Any], Biller]:
    apps = AppDirectory(AppConfig.from_dict(d) for d in docs)
    charges, rejections, biller = rate_lines(apps, [orjson.dumps(e) for e in events], None, now=lambda: NOW)
    assert rejections == []
    latest = {}
    for c in charges:
        latest[c.charge_id] = c
    return latest, biller


def relay_id(day: str) -> str:
    return f"css/relay.traffic/{ACCOUNT}/{day}"


def line_of(charge: Any, **dims: str) -> Any:
    found = [ln for ln in charge.lines if all(ln.dimensions.get(k) == v for k, v in dims.items())]
    assert len(found) == 1, charge.lines
    return found[0]


def spec(doc: dict[str, Any]) -> PackageSpec:
    return AppConfig.from_dict(app_doc([doc])).packages[0]


def balance(biller: Biller, doc: dict[str, Any]) -> Decimal:
    return biller.ledgers[ACCOUNT].balance(spec(doc))


# -- css_traffic ---------------------------------------------------------------------------

P1000 = pkg("p-1", "css_traffic", "1000", "2026-08-03T09:00:00+08:00")


def test_package_covers_its_purchase_day_not_the_day_before() -> None:
    got, biller = rate([
        relay("2026-08-02T20:00:00+08:00", 100),
        relay("2026-08-03T01:00:00+08:00", 100),  # before the purchase time, same day: covered
    ], app_doc([P1000]))
    before, day = got[relay_id("2026-08-02")], got[relay_id("2026-08-03")]
    assert before.lines[0].package_deducted == 0
    assert before.amount == 26
    assert day.lines[0].package_deducted == 100
    assert dict(day.lines[0].packages) == {"p-1": Decimal(100)}
    assert day.amount == 0
    assert day.lines[0].quantity == 100
    assert balance(biller, P1000) == 900


def test_balance_drains_across_days() -> None:
    got, biller = rate([relay(f"2026-08-{d:02d}T10:00:00+08:00", 400) for d in (3, 4, 5)], app_doc([P1000]))
    deducted = [got[relay_id(f"2026-08-{d:02d}")].lines[0].package_deducted for d in (3, 4, 5)]
    assert deducted == [400, 400, 200]
    assert got[relay_id("2026-08-05")].amount == 52  # 200 GB leftover × 0.26
    assert balance(biller, P1000) == 0


def test_earliest_expiry_first() -> None:
    later_bought_earlier_expiry = pkg("p-a", "css_traffic", "100", "2026-08-01T00:00:00+08:00",
                                      "2026-12-31T00:00:00+08:00")
    earlier_bought = pkg("p-b", "css_traffic", "1000", "2026-07-01T00:00:00+08:00")  # expires 2027-07-01
    got, biller = rate([relay("2026-08-03T10:00:00+08:00", 150)],
                       app_doc([earlier_bought, later_bought_earlier_expiry]))
    line = got[relay_id("2026-08-03")].lines[0]
    assert dict(line.packages) == {"p-a": Decimal(100), "p-b": Decimal(50)}
    assert list(line.packages) == ["p-a", "p-b"]
    assert line.package_deducted == 150
    assert balance(biller, later_bought_earlier_expiry) == 0
    assert balance(biller, earlier_bought) == 950


def test_leb_mainland_deducts_before_standard_mainland() -> None:
    got, _ = rate([
        relay("2026-08-03T10:00:00+08:00", 80),
        relay("2026-08-03T10:00:00+08:00", 30, product="leb"),
    ], app_doc([pkg("p", "css_traffic", "100", "2026-08-01T00:00:00+08:00")]))
    charge = got[relay_id("2026-08-03")]
    leb = line_of(charge, product="leb")
    standard = line_of(charge, product="standard")
    assert leb.package_deducted == 60  # 30 GB × ratio 2
    assert leb.amount == 0
    assert standard.package_deducted == 40
    assert standard.amount == Decimal("10.4")  # 40 GB leftover × 0.26
    assert charge.amount == Decimal("10.4")


def test_standard_international_after_standard_mainland() -> None:
    got, _ = rate([
        relay("2026-08-03T10:00:00+08:00", 50, zone="ap1"),
        relay("2026-08-03T10:00:00+08:00", 90),
    ], app_doc([pkg("p", "css_traffic", "100", "2026-08-01T00:00:00+08:00")]))
    charge = got[relay_id("2026-08-03")]
    assert line_of(charge, zone="mainland").package_deducted == 90
    ap1 = line_of(charge, zone="ap1")
    assert ap1.package_deducted == 10
    # 10 package GB cover 10 / 1.7692 GB of ap1 usage
    assert ap1.amount == mul(50 - div(10, Decimal("1.7692")), Decimal("0.46"))


def test_international_ratio() -> None:
    doc = pkg("p", "css_traffic", "1000", "2026-08-01T00:00:00+08:00")
    got, biller = rate([relay("2026-08-03T10:00:00+08:00", 50, zone="ap1")], app_doc([doc]))
    line = got[relay_id("2026-08-03")].lines[0]
    assert line.package_deducted == Decimal("88.46")  # 50 GB × 1.7692
    assert line.amount == 0
    assert balance(biller, doc) == Decimal("911.54")


def test_international_ratio_leb_and_leftover() -> None:
    got, _ = rate([relay("2026-08-03T10:00:00+08:00", 100, zone="ap2", product="leb")],
                  app_doc([pkg("p", "css_traffic", "100", "2026-08-01T00:00:00+08:00")]))
    line = got[relay_id("2026-08-03")].lines[0]
    assert line.package_deducted == 100
    leftover = 100 - div(100, Decimal("5.8462"))
    # LEB ap2 price = standard ap2 (0.76) × 5.8462 (our reading)
    assert line.unit_price == mul(Decimal("0.76"), Decimal("5.8462"))
    assert line.amount == mul(leftover, line.unit_price)


def test_leftover_tiered_on_the_leftover_alone() -> None:
    got, _ = rate([relay("2026-08-03T10:00:00+08:00", 2500)],
                  app_doc([pkg("p", "css_traffic", "1000", "2026-08-01T00:00:00+08:00")]))
    line = got[relay_id("2026-08-03")].lines[0]
    assert line.quantity == 2500
    assert line.package_deducted == 1000
    assert line.unit_price == Decimal("0.26")  # the 1500 GB leftover is under 2 TB
    assert line.amount == 390


def test_no_package_2500_reaches_second_tier() -> None:
    got, _ = rate([relay("2026-08-03T10:00:00+08:00", 2500)], app_doc([]))
    assert got[relay_id("2026-08-03")].amount == 625  # 2500 × 0.25


def test_frozen_in_bandwidth_daily_peak_mode() -> None:
    doc = pkg("p", "css_traffic", "1000", "2026-08-01T00:00:00+08:00")
    got, biller = rate([relay("2026-08-03T10:00:00+08:00", 50 * 37_500_000 / GB)],
                       app_doc([doc], relay_billing="bandwidth_daily_peak"))
    [charge] = got.values()
    assert charge.item == "relay.bandwidth.daily_peak"
    assert charge.amount == Decimal("32.5")
    assert all(ln.package_deducted == 0 for ln in charge.lines)
    assert biller.ledgers[ACCOUNT].draws == {}
    assert balance(biller, doc) == 1000


def test_frozen_on_a_bandwidth_day_between_traffic_days() -> None:
    doc = pkg("p", "css_traffic", "250", "2026-08-01T00:00:00+08:00")
    v1 = app_doc([doc], effective_from="2026-08-01T00:00:00+08:00")
    v2 = app_doc([doc], effective_from="2026-08-05T10:00:00+08:00", relay_billing="bandwidth_daily_peak")
    v3 = app_doc([doc], effective_from="2026-08-06T12:00:00+08:00")
    events = [relay(f"2026-08-{d:02d}T10:00:00+08:00", 100) for d in (5, 6, 7, 8)]
    got, biller = rate(events, v1, v2, v3)
    # the switch written on the 5th applies on the 6th; the switch back on the 7th
    assert got[relay_id("2026-08-05")].lines[0].package_deducted == 100
    peak_day = got[f"css/relay.bandwidth.daily_peak/{ACCOUNT}/2026-08-06"]
    assert all(ln.package_deducted == 0 for ln in peak_day.lines)
    assert relay_id("2026-08-06") not in got
    assert got[relay_id("2026-08-07")].lines[0].package_deducted == 100
    eighth = got[relay_id("2026-08-08")].lines[0]
    assert eighth.package_deducted == 50
    assert eighth.amount == 13  # 50 GB × 0.26
    assert balance(biller, doc) == 0


def test_frozen_in_monthly_modes() -> None:
    doc = pkg("p", "css_traffic", "1000", "2026-08-01T00:00:00+08:00")
    got, biller = rate([relay("2026-08-03T10:00:00+08:00", 100)],
                       app_doc([doc], relay_billing="bandwidth_monthly_95", contract_prices={"mainland": "20"}))
    assert [c.item for c in got.values()] == ["relay.bandwidth.monthly_95"]
    assert balance(biller, doc) == 1000


def test_expires_one_year_after_purchase() -> None:
    doc = pkg("p", "css_traffic", "1000", "2025-08-03T09:00:00+08:00")  # expires_at null
    assert spec(doc).expiry == parse_time("2026-08-03T09:00:00+08:00")
    got, _ = rate([relay("2026-08-02T10:00:00+08:00", 100), relay("2026-08-04T10:00:00+08:00", 100)],
                  app_doc([doc]))
    assert got[relay_id("2026-08-02")].lines[0].package_deducted == 100
    assert got[relay_id("2026-08-04")].lines[0].package_deducted == 0
    assert got[relay_id("2026-08-04")].amount == 26


def test_explicit_expiry() -> None:
    doc = pkg("p", "css_traffic", "1000", "2026-08-01T00:00:00+08:00", "2026-08-04T00:00:00+08:00")
    got, _ = rate([relay("2026-08-03T10:00:00+08:00", 100), relay("2026-08-04T10:00:00+08:00", 100)],
                  app_doc([doc]))
    assert got[relay_id("2026-08-03")].lines[0].package_deducted == 100
    assert got[relay_id("2026-08-04")].lines[0].package_deducted == 0


def test_recording_pulls_do_not_drain() -> None:
    doc = pkg("p", "css_traffic", "1000", "2026-08-01T00:00:00+08:00")
    _, biller = rate([relay("2026-08-03T10:00:00+08:00", 100, source="recording")], app_doc([doc]))
    assert balance(biller, doc) == 1000


# -- vod_traffic ---------------------------------------------------------------------------


def vod_id(day: str) -> str:
    return f"vod/vod.traffic/{ACCOUNT}/{day}"


def test_vod_traffic_earliest_purchase_first() -> None:
    old = pkg("old", "vod_traffic", "10", "2026-07-01T00:00:00+08:00", "2027-12-31T00:00:00+08:00")
    new = pkg("new", "vod_traffic", "1000", "2026-07-15T00:00:00+08:00")  # expires earlier
    got, biller = rate([vod("2026-08-03T10:00:00+08:00", 600)], app_doc([new, old]))
    line = got[vod_id("2026-08-03")].lines[0]
    assert list(line.packages) == ["old", "new"]
    assert dict(line.packages) == {"old": Decimal(10), "new": Decimal(590)}
    assert line.amount == 0
    assert balance(biller, old) == 0 and balance(biller, new) == 410


def test_vod_traffic_leftover_tiered_on_its_own() -> None:
    doc = pkg("v", "vod_traffic", "100", "2026-07-01T00:00:00+08:00")
    got, _ = rate([vod("2026-08-03T10:00:00+08:00", 550)], app_doc([doc]))
    line = got[vod_id("2026-08-03")].lines[0]
    assert line.quantity == 550
    assert line.package_deducted == 100
    assert line.unit_price == Decimal("0.24")  # 450 GB leftover: first tier (550 would be 0.23)
    assert line.amount == 108


def test_vod_traffic_tiers_include_upper_bound() -> None:
    got, _ = rate([vod("2026-08-03T10:00:00+08:00", 500)], app_doc([]))
    assert got[vod_id("2026-08-03")].lines[0].unit_price == Decimal("0.24")
    got, _ = rate([vod("2026-08-03T10:00:00+08:00", 501)], app_doc([]))
    assert got[vod_id("2026-08-03")].lines[0].unit_price == Decimal("0.23")


def test_vod_traffic_package_mainland_only() -> None:
    doc = pkg("v", "vod_traffic", "100", "2026-07-01T00:00:00+08:00")
    got, biller = rate([vod("2026-08-03T10:00:00+08:00", 10, zone="eu")], app_doc([doc]))
    line = got[vod_id("2026-08-03")].lines[0]
    assert line.package_deducted == 0
    assert line.amount == Decimal("4.3")
    assert balance(biller, doc) == 100


def test_vod_traffic_example_month() -> None:
    events = [vod(f"2026-08-{d:02d}T10:00:00+08:00", 150) for d in range(1, 31)]
    events += [vod(f"2026-08-{d:02d}T20:00:00+08:00", 50) for d in range(1, 31)]
    got, _ = rate(events, app_doc([]))
    assert sum(c.amount for c in got.values()) == 1440


# -- transcoding packages ------------------------------------------------------------------


def tc_id(kind: str = "standard") -> str:
    return f"css/transcode.{kind}/{ACCOUNT}/2026-08-03"


T = "2026-08-03T10:00:00+08:00"


def test_720p_drains_price_ratio() -> None:
    doc = pkg("h", "transcode_standard", "100", "2026-08-01T00:00:00+08:00")
    got, biller = rate([tc(T, 3600, 1280, 720)], app_doc([doc]))
    line = got[tc_id()].lines[0]
    # 60 minutes × 0.0325 / 0.016 = 121.875 package minutes = 2.03125 hours
    assert line.package_deducted == Decimal("2.03125")
    assert line.amount == 0
    assert balance(biller, doc) == Decimal("97.96875")


def test_480p_drains_one_for_one() -> None:
    doc = pkg("h", "transcode_standard", "5", "2026-08-01T00:00:00+08:00")
    got, biller = rate([tc(T, 3600)], app_doc([doc]))
    assert got[tc_id()].lines[0].package_deducted == 1
    assert balance(biller, doc) == 4


def test_audio_drains_standard_package_at_0_35() -> None:
    doc = pkg("h", "transcode_standard", "100", "2026-08-01T00:00:00+08:00")
    got, biller = rate([tc(T, 300 * 60, kind="audio")], app_doc([doc]))
    line = got[tc_id("audio")].lines[0]
    # 300 minutes × 0.0056 / 0.016 = 105 package minutes = 1.75 hours
    assert line.package_deducted == Decimal("1.75")
    assert line.amount == 0
    assert balance(biller, doc) == Decimal("98.25")


def test_transcode_package_runs_out() -> None:
    doc = pkg("h", "transcode_standard", "1", "2026-08-01T00:00:00+08:00")
    got, biller = rate([tc(T, 3600, 1280, 720)], app_doc([doc]))
    line = got[tc_id()].lines[0]
    assert line.package_deducted == 1
    # 60 × 0.0325 = 1.95 CNY of usage; one hour of 480P (0.96 CNY) is covered
    assert line.amount == Decimal("0.99")
    assert balance(biller, doc) == 0


def test_top_speed_package_is_separate() -> None:
    std = pkg("std", "transcode_standard", "100", "2026-08-01T00:00:00+08:00")
    top = pkg("top", "transcode_top_speed", "100", "2026-08-01T00:00:00+08:00")
    got, biller = rate([tc(T, 3600, 1280, 720, kind="top_speed")], app_doc([std, top]))
    line = got[tc_id("top_speed")].lines[0]
    assert dict(line.packages) == {"top": div(Decimal("0.1256"), Decimal("0.066"))}
    assert line.amount == 0
    assert balance(biller, std) == 100
    # without a top-speed package, the standard package does not drain
    got, biller = rate([tc(T, 3600, 1280, 720, kind="top_speed")], app_doc([std]))
    assert got[tc_id("top_speed")].amount == Decimal("7.536")
    assert balance(biller, std) == 100


def test_need_split_over_two_packages_leaves_no_residue() -> None:
    small = pkg("small", "transcode_top_speed", "1", "2026-08-01T00:00:00+08:00", "2026-09-01T00:00:00+08:00")
    big = pkg("big", "transcode_top_speed", "100", "2026-08-01T00:00:00+08:00")
    got, biller = rate([tc(T, 3600, 1280, 720, kind="top_speed")], app_doc([big, small]))
    line = got[tc_id("top_speed")].lines[0]
    need = div(Decimal("0.1256"), Decimal("0.066"))  # 1.9030… hours of top-speed 480P
    assert list(line.packages) == ["small", "big"]
    assert line.packages["small"] == 1
    assert line.packages["big"] == EXACT.subtract(need, 1)
    assert line.amount == 0
    assert got[tc_id("top_speed")].amount == 0
    assert balance(biller, small) == 0


def test_package_hours_equivalent_example() -> None:
    # a 100-hour standard package covers 100 × 0.016 / 0.0325 h of 720P
    hours_720 = div(100 * Decimal("0.016"), Decimal("0.0325"))
    assert round(hours_720, 2) == Decimal("49.23")
    assert round(div(100 * Decimal("0.016"), Decimal("0.0056")), 2) == Decimal("285.71")


# -- the pure helpers ----------------------------------------------------------------------


def test_drain_rerating_a_unit_replaces_its_draws() -> None:
    p = spec(pkg("p", "css_traffic", "100", "2026-08-01T00:00:00+08:00"))
    ledger = PackageLedger()
    assert drain(ledger, "u1", [p], [("a", Decimal(30))]) == {"a": {"p": Decimal(30)}}
    assert drain(ledger, "u2", [p], [("a", Decimal(50))]) == {"a": {"p": Decimal(50)}}
    assert ledger.balance(p) == 20
    # re-rating u1 with more usage: its own earlier draw is not counted twice
    assert drain(ledger, "u1", [p], [("a", Decimal(60))]) == {"a": {"p": Decimal(50)}}
    assert ledger.balance(p) == 0
    assert PackageLedger.from_dict(ledger.to_dict()) == ledger


def test_capacity_cover() -> None:
    a = spec(pkg("a", "vod_storage", "50", "2026-08-01T00:00:00+08:00"))
    b = spec(pkg("b", "vod_storage", "5", "2026-08-01T00:00:00+08:00"))
    assert capacity_cover([a, b], Decimal(52)) == {"a": Decimal(50), "b": Decimal(2)}
    assert capacity_cover([a, b], Decimal(0)) == {}


def test_a_balance_does_not_depend_on_the_order_the_draws_were_recorded_in() -> None:
    """The worker reads its ledger back from a table, in another order than ``rate`` recorded
    the draws; the default 28-digit sum of 50-digit draws rounded differently by order and a
    nearly spent package then covered a line with a different last digit (seen: 2 charges of
    395 in a mixed-producer replay)."""
    package = spec(pkg("p", "transcode_standard", "0.8", "2026-08-01T00:00:00+08:00"))
    draws = [(f"unit-{k}", div(1, k)) for k in (3, 7, 11, 13, 17, 19, 23)]
    forward, backward = PackageLedger(), PackageLedger()
    for unit, amount in draws:
        forward.record(unit, [package], {"p": amount})
    for unit, amount in reversed(draws):
        backward.record(unit, [package], {"p": amount})
    exact = Decimal("0.8")
    for _, amount in draws:
        exact = EXACT.subtract(exact, amount)
    assert forward.balance(package) == backward.balance(package)
    assert abs(forward.balance(package) - exact) < Decimal("1e-45")

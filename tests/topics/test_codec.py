"""Codecs of topics/: exact JSON round-trips of charges and app configs, plain decimal text,
the public names of ``topics``, config validation that reports every problem at once, and
the next-day rule of relay billing mode switches."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fixtures.factories import (
    APP,
    GB,
    audio,
    bj,
    bucket_bytes_for_mbps,
    im_dau,
    im_groups,
    make_app,
    moderation,
    package,
    recording_task,
    relay,
    snapshot,
    transcode,
    vod_storage,
    vod_traffic,
)

import topics
from topics import AppConfig, AppDirectory, Charge, ChargeLine, ConfigError, decimal_text, round_cny
from topics.appconfig import parse_app_documents
from topics.timefmt import BEIJING

EXPONENT = re.compile(r"^-?\d+(\.\d+)?[eE][+-]?\d+$")


def strings(value: Any) -> Iterator[str]:
    """Every string (keys too) inside a JSON-ready value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def no_exponents(doc: Any) -> list[str]:
    return [s for s in strings(doc) if EXPONENT.match(s)]


# -- decimal text ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    ("0.0325", "0.0325"), ("1E+3", "1000"), ("72.000", "72"), ("1.50", "1.5"), ("0E-9", "0"),
    ("-0", "0"), ("-0.50", "-0.5"), ("1E-7", "0.0000001"), ("12345678901234567890.5", "12345678901234567890.5"),
    ("22.500000000", "22.5"), ("5.8064516129032258064516129032258064516129032258065",
                               "5.8064516129032258064516129032258064516129032258065"),
])
def test_decimal_text_is_plain(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text
    assert Decimal(decimal_text(Decimal(value))) == Decimal(value)


@pytest.mark.parametrize(("value", "rounded"), [
    ("0.005", "0.01"), ("0.015", "0.02"), ("2.625", "2.63"), ("9.516", "9.52"), ("0.0049", "0.00"),
    ("1E+3", "1000.00"), ("-0.005", "-0.01"), ("5.8064516129032258", "5.81"),
])
def test_round_cny_half_up(value: str, rounded: str) -> None:
    assert str(round_cny(Decimal(value))) == rounded


# -- charges --------------------------------------------------------------------------------


def sample_charge(**changes: Any) -> Charge:
    lines = (
        ChargeLine({"zone": "mainland", "direction": "down", "product": "standard"}, Decimal("1E+3"), "GB",
                   Decimal("0.0325"), Decimal("32.500"), factor=Decimal("0.2"), package_deducted=Decimal("1E+2"),
                   packages={"p-1": Decimal("100.0")}),
        ChargeLine({"zone": "na"}, Decimal("0E-9"), "GB", Decimal(0), Decimal(0), excluded="recording_pull"),
    )
    doc: dict[str, Any] = dict(
        charge_id="css/relay.traffic/acct-42/2026-08-03", revision=2, account_id="acct-42", product="css",
        item="relay.traffic", period_start="2026-08-03T00:00:00+08:00", period_end="2026-08-04T00:00:00+08:00",
        catalog="tencent-2022", lines=lines, amount=Decimal("32.500"), previous_amount=Decimal("1E+1"),
        usage_by_app={"1400000001": {"download_gb": "1000"}}, emitted_at="2026-08-04T02:00:00+08:00",
    )
    doc.update(changes)
    return Charge(**doc)


def test_charge_round_trip_is_exact() -> None:
    first = sample_charge().to_dict()
    again = Charge.from_dict(orjson.loads(orjson.dumps(first))).to_dict()
    assert again == first
    assert orjson.dumps(again) == orjson.dumps(first)
    assert Charge.from_dict(first) == Charge.from_dict(again)


def test_charge_text_is_plain_and_exact() -> None:
    doc = sample_charge().to_dict()
    assert no_exponents(doc) == []
    totals = (doc["amount"], doc["amount_rounded"], doc["previous_amount"], doc["delta"])
    assert totals == ("32.5", "32.50", "10", "22.5")
    line = doc["lines"][0]
    figures = (line["quantity"], line["unit_price"], line["factor"], line["package_deducted"])
    assert figures == ("1000", "0.0325", "0.2", "100")
    assert line["packages"] == {"p-1": "100"}
    assert doc["lines"][1]["excluded"] == "recording_pull" and "packages" not in doc["lines"][1]
    assert "excluded" not in line


def test_charge_revisions() -> None:
    base = sample_charge(revision=0, previous_amount=Decimal(0))
    first = base.next_revision(None, "t1")
    assert (first.revision, first.previous_amount, first.delta, first.emitted_at) == (1, 0, Decimal("32.5"), "t1")
    second = sample_charge(amount=Decimal("40")).next_revision(first, "t2")
    assert (second.revision, second.previous_amount, second.delta) == (2, Decimal("32.5"), Decimal("7.5"))
    assert second.to_dict()["delta"] == "7.5"
    content = second.content()
    assert not {"revision", "previous_amount", "delta", "emitted_at"} & set(content)


def test_charges_of_every_item_round_trip_without_exponents(rate: Any) -> None:
    """Real `vasbill rate` output for every item: exact round-trips and no exponent anywhere
    (amounts, quantities, factors, usage figures)."""
    services = ["relay", "recording", "transcode", "snapshot", "moderation", "vod"]
    apps = [make_app(services=services, relay_billing="traffic", im_plan="pro",
                     packages=[package("ct", "css_traffic", "5", bj("2022-02-01 00:00")),
                               package("vs", "vod_storage", "10", bj("2022-02-01 00:00"))]),
            make_app(APP + 1, services=services, relay_billing="bandwidth_monthly_95",
                     contract_prices={"mainland": "28.00"})]
    events = [
        relay(bj("2022-03-01 10:00"), 10 * GB), relay(bj("2022-03-01 10:00"), 0, zone="na"),
        relay(bj("2022-03-01 10:05"), GB, source="recording"), relay(bj("2022-03-01 10:05"), GB, direction="up"),
        relay(bj("2022-03-01 10:00"), bucket_bytes_for_mbps(3), app=APP + 1),
        *recording_task(bj("2022-03-02 10:00"), bj("2022-03-02 11:00"), "t1"),
        transcode(bj("2022-03-01 10:00"), 61), audio(bj("2022-03-01 10:00"), 59),
        transcode(bj("2022-03-01 10:00"), 100, kind="top_speed", codec="h265", width=3840, height=2160),
        snapshot(bj("2022-03-01 10:00"), 1500), moderation(bj("2022-03-01 10:00"), 1500),
        vod_storage(bj("2022-03-01 10:00"), 12 * GB), vod_storage(bj("2022-03-01 10:00"), 0, area="overseas"),
        vod_traffic(bj("2022-03-01 10:00"), 123_456_789),
        im_dau("2022-03-01", 123_456), im_groups(bj("2022-03-01 10:00"), 1000),
    ]
    run = rate(apps, events)
    assert run.exit_code == 0 and run.quarantine == []
    items = {c["item"] for c in run.charges}
    assert items == {"relay.traffic", "relay.bandwidth.monthly_95", "recording.peak_channels", "transcode.standard",
                     "transcode.top_speed", "transcode.audio", "snapshot", "moderation", "vod.storage",
                     "vod.traffic", "im.dau_overage", "im.group_overage"}
    for charge in run.charges:
        assert no_exponents(charge) == [], charge["charge_id"]
        assert Charge.from_dict(charge).to_dict() == charge


# -- app configs ----------------------------------------------------------------------------

SPEC_EXAMPLE = {
    "sdk_app_id": 1400000001, "account_id": "acct-42", "effective_from": "2026-08-01T00:00:00+08:00",
    "services": {"relay": True, "recording": True, "transcode": False, "snapshot": False,
                 "moderation": False, "vod": True, "im": True},
    "relay_billing": "traffic",
    "contract_prices": {"mainland": "28.00"},
    "im_plan": "trtc_trial",
    "catalog": None,
    "packages": [{"package_id": "p-1", "kind": "css_traffic", "size": "1000",
                  "purchased_at": "2026-08-03T09:00:00+08:00", "expires_at": None}],
}


def test_app_config_spec_example_round_trip() -> None:
    config = AppConfig.from_dict(SPEC_EXAMPLE)
    first = config.to_dict()
    assert AppConfig.from_dict(first).to_dict() == first
    assert AppConfig.from_dict(orjson.loads(orjson.dumps(first))) == AppConfig.from_dict(first)
    assert first["services"] == SPEC_EXAMPLE["services"]
    assert first["effective_from"] == "2026-08-01T00:00:00+08:00"
    assert first["packages"][0]["purchased_at"] == "2026-08-03T09:00:00+08:00"
    assert first["packages"][0]["expires_at"] is None
    assert Decimal(first["contract_prices"]["mainland"]) == Decimal("28")
    assert config.packages[0].expiry == datetime(2027, 8, 3, 9, 0, tzinfo=BEIJING)


def test_app_config_decimals_never_in_exponent_form() -> None:
    doc = make_app(contract_prices={"mainland": "1E+3", "na": "0.0325"},
                   packages=[package("p", "vod_traffic", "1E+3", bj("2026-08-03 09:00"))])
    first = AppConfig.from_dict(doc).to_dict()
    assert no_exponents(first) == []
    assert Decimal(first["contract_prices"]["mainland"]) == 1000
    assert first["contract_prices"]["na"] == "0.0325"
    assert Decimal(first["packages"][0]["size"]) == 1000
    assert AppConfig.from_dict(first).to_dict() == first


def test_app_config_defaults() -> None:
    config = AppConfig.from_dict({"sdk_app_id": APP, "account_id": "a"})
    assert dict(config.services) == {"relay": False, "recording": False, "transcode": False, "snapshot": False,
                                     "moderation": False, "vod": False, "im": True}
    settings = (config.relay_billing, config.im_plan, config.catalog, config.packages)
    assert settings == ("traffic", "trtc_trial", None, ())
    assert config.effective_from is None
    doc = config.to_dict()
    assert AppConfig.from_dict(doc).to_dict() == doc


def test_times_are_written_in_beijing_time() -> None:
    config = AppConfig.from_dict(make_app(effective_from="2026-07-31T16:00:00Z"))
    assert config.to_dict()["effective_from"] == "2026-08-01T00:00:00+08:00"


def test_package_expiry_on_29_february() -> None:
    config = AppConfig.from_dict(make_app(packages=[package("p", "css_traffic", "10", bj("2024-02-29 10:00"))]))
    assert config.packages[0].expiry == datetime(2025, 2, 28, 10, 0, tzinfo=BEIJING)


def test_config_reports_every_problem_at_once() -> None:
    doc = {
        "sdk_app_id": True,
        "services": {"relay": "yes", "teleport": True},
        "relay_billing": "by_the_minute",
        "contract_prices": {"mainland": 28.5, "mars": "1"},
        "im_plan": "gold",
        "catalog": 2019,
        "effective_from": "2026-08-01T00:00:00",
        "packages": [{"package_id": "", "kind": "css_gold", "size": "-1", "purchased_at": "2026-08-01"}, 7],
    }
    with pytest.raises(ConfigError) as info:
        AppConfig.from_dict(doc)
    problems = info.value.problems
    expected = ["sdk_app_id", "account_id", "effective_from", "services.relay", "unknown service 'teleport'",
                "relay_billing", "contract_prices.mainland", "unknown zone 'mars'", "im_plan", "catalog",
                "packages[0].package_id", "packages[0].kind", "packages[0].size", "packages[0].purchased_at",
                "packages[1] must be an object"]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) >= len(expected)
    assert str(info.value) == "; ".join(problems)


def test_apps_file_reports_problems_of_every_document() -> None:
    text = "\n".join(orjson.dumps(d).decode() for d in [
        make_app(), make_app(APP + 1, im_plan="gold"), {"account_id": "x"}])
    with pytest.raises(ConfigError) as info:
        parse_app_documents(text)
    problems = info.value.problems
    assert any(p.startswith("app #2: im_plan") for p in problems)
    assert any(p.startswith("app #3: sdk_app_id") for p in problems)
    assert not any(p.startswith("app #1") for p in problems)


def test_bad_apps_file_fails_the_cli_with_one_line(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from vasbill.cli import main

    apps = tmp_path / "apps.jsonl"
    apps.write_text(orjson.dumps(make_app(im_plan="gold", relay_billing="x")).decode() + "\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")
    result = CliRunner().invoke(main, ["rate", "--events", str(events), "--apps", str(apps)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vasbill: ")
    assert "im_plan" in result.stderr and "relay_billing" in result.stderr


# -- topics.__all__ -------------------------------------------------------------------------


def test_topics_all_matches_its_public_names() -> None:
    public = {
        name for name, value in vars(topics).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert len(topics.__all__) == len(set(topics.__all__))
    assert set(topics.__all__) == public
    for name in topics.__all__:
        assert getattr(topics, name) is not None


def test_topics_star_import_gives_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from topics import *", namespace)  # noqa: S102
    assert set(namespace) - {"__builtins__"} == set(topics.__all__)


# -- relay billing mode: next-day rule ------------------------------------------------------


def day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), BEIJING)


def modes(*versions: tuple[str, str]) -> AppDirectory:
    """An app with versions (effective_from, relay_billing)."""
    return AppDirectory(AppConfig.from_dict(make_app(effective_from=t, relay_billing=m)) for t, m in versions)


def test_relay_mode_switch_during_a_day_applies_from_the_next_day() -> None:
    d = modes((bj("2026-08-01 00:00"), "traffic"), (bj("2026-08-10 15:30"), "bandwidth_daily_peak"))
    assert d.relay_mode(APP, day("2026-08-09")) == "traffic"
    assert d.relay_mode(APP, day("2026-08-10")) == "traffic"
    assert d.relay_mode(APP, day("2026-08-11")) == "bandwidth_daily_peak"
    assert d.relay_mode(APP, day("2026-09-01")) == "bandwidth_daily_peak"


def test_relay_mode_switch_at_midnight_applies_that_day() -> None:
    d = modes((bj("2026-08-01 00:00"), "traffic"), (bj("2026-08-10 00:00"), "bandwidth_daily_peak"))
    assert d.relay_mode(APP, day("2026-08-09")) == "traffic"
    assert d.relay_mode(APP, day("2026-08-10")) == "bandwidth_daily_peak"


def test_relay_mode_midnight_is_beijing_midnight() -> None:
    """16:00 UTC is Beijing midnight (applies that day); 00:00 UTC is 08:00 Beijing (next day)."""
    d = modes((bj("2026-08-01 00:00"), "traffic"), ("2026-08-09T16:00:00Z", "bandwidth_daily_peak"))
    assert d.relay_mode(APP, day("2026-08-10")) == "bandwidth_daily_peak"
    assert d.relay_mode(APP, day("2026-08-09")) == "traffic"
    d = modes((bj("2026-08-01 00:00"), "traffic"), ("2026-08-10T00:00:00Z", "bandwidth_daily_peak"))
    assert d.relay_mode(APP, day("2026-08-10")) == "traffic"
    assert d.relay_mode(APP, day("2026-08-11")) == "bandwidth_daily_peak"


def test_relay_mode_only_the_first_switch_of_a_day_counts() -> None:
    d = modes((bj("2026-08-01 00:00"), "traffic"),
              (bj("2026-08-10 09:00"), "bandwidth_daily_peak"),
              (bj("2026-08-10 18:00"), "traffic"),
              (bj("2026-08-10 20:00"), "bandwidth_monthly_95"))
    assert d.relay_mode(APP, day("2026-08-10")) == "traffic"
    assert d.relay_mode(APP, day("2026-08-11")) == "bandwidth_daily_peak"
    assert d.relay_mode(APP, day("2026-08-12")) == "bandwidth_daily_peak"


def test_relay_mode_switch_back_on_a_later_day() -> None:
    d = modes((bj("2026-08-01 00:00"), "traffic"),
              (bj("2026-08-10 09:00"), "bandwidth_daily_peak"),
              (bj("2026-08-11 09:00"), "traffic"))
    assert [d.relay_mode(APP, day(f"2026-08-{n}")) for n in (10, 11, 12)] == [
        "traffic", "bandwidth_daily_peak", "traffic"]


def test_relay_mode_other_changes_are_not_switches() -> None:
    d = AppDirectory(AppConfig.from_dict(make_app(effective_from=t, relay_billing="traffic", im_plan=p))
                     for t, p in ((bj("2026-08-01 00:00"), "trtc_trial"), (bj("2026-08-05 10:00"), "pro")))
    d.add(AppConfig.from_dict(make_app(effective_from=bj("2026-08-05 12:00"), relay_billing="bandwidth_daily_peak")))
    assert d.relay_mode(APP, day("2026-08-05")) == "traffic"
    assert d.relay_mode(APP, day("2026-08-06")) == "bandwidth_daily_peak"


def test_relay_mode_of_unknown_app_is_traffic() -> None:
    assert AppDirectory().relay_mode(APP, day("2026-08-10")) == "traffic"


def test_relay_mode_switch_through_the_cli(rate: Any) -> None:
    """Switched to daily peak at 15:00 on 03-10: that day bills traffic, 03-11 bandwidth."""
    apps = [make_app(services=["relay"], effective_from=bj("2024-03-01 00:00")),
            make_app(services=["relay"], effective_from=bj("2024-03-10 15:00"), relay_billing="bandwidth_daily_peak")]
    events = [relay(bj(f"2024-03-{d} 16:00"), bucket_bytes_for_mbps(50)) for d in (10, 11)]
    run = rate(apps, events)
    assert [(c["item"], c["period_start"][:10], c["amount_rounded"]) for c in run.charges] == [
        ("relay.traffic", "2024-03-10", "0.49"),  # 1.875 GB × 0.26 = 0.4875
        ("relay.bandwidth.daily_peak", "2024-03-11", "32.50"),
    ]


def test_config_versions_apply_from_effective_from(rate: Any) -> None:
    """An app enabled for transcoding from 03-10 12:00: earlier events are service_disabled,
    and an event before the app's first version uses that first version."""
    apps = [make_app(services=[], effective_from=bj("2024-03-01 00:00")),
            make_app(services=["transcode"], effective_from=bj("2024-03-10 12:00"))]
    events = [transcode(bj("2024-02-20 10:00"), 60), transcode(bj("2024-03-10 11:59"), 60),
              transcode(bj("2024-03-10 12:00"), 60)]
    run = rate(apps, events)
    assert run.reasons() == ["service_disabled", "service_disabled"]
    assert run.one("transcode.standard")["amount"] == "0.0325"


def test_effective_time_is_an_instant() -> None:
    a = AppConfig.from_dict(make_app(effective_from="2026-08-01T00:00:00+08:00"))
    b = AppConfig.from_dict(make_app(effective_from="2026-07-31T16:00:00+00:00"))
    assert a.effective_ms == b.effective_ms
    assert a.effective_from == b.effective_from == datetime(2026, 7, 31, 16, tzinfo=timezone.utc) + timedelta(0)


# -- topics.codec: JSON with integers of any size -----------------------------------------


BIG_INTS = [2**63, 2**64 - 1, 2**64, 2**70, -(2**63) - 1, -(2**70), 19 * 1000 * 10**15, 10**40, -(10**40), 10**400,
            -(10**4000)]


@pytest.mark.parametrize("number", BIG_INTS, ids=lambda n: f"{len(str(n))}-digits")
def test_codec_round_trips_integers_of_any_size(number: int) -> None:
    from topics.codec import dumps, loads

    value = {"sum": number, "buckets": [1, number, -number, 3], "nested": {"x": [[number]]}, "s": "text"}
    data = dumps(value)
    assert data == json_text(value)
    back = loads(data)
    assert back == value and type(back["sum"]) is int
    assert loads(data.decode()) == value and loads(memoryview(data)) == value


def test_codec_loads_big_integers_in_any_json_layout() -> None:
    from topics.codec import loads

    assert loads(b'{ "a" :\n -12345678901234567890 , "b": [ 1,\t99999999999999999999 ] }') == {
        "a": -12345678901234567890, "b": [1, 99999999999999999999]}
    assert loads(b"123456789012345678901234567890") == 123456789012345678901234567890
    assert loads(b'["12345678901234567890", 1.5]') == ["12345678901234567890", 1.5]


def json_text(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_codec_is_orjson_for_everything_orjson_can_do() -> None:
    from topics.codec import dumps, loads

    value = {"a": [1, 2.5, None, True, "é\u2028"], "b": {"c": 2**64 - 1, "d": -(2**63)}, "t": (1, 2)}
    assert dumps(value) == orjson.dumps(value)
    for text in (b'{"a":1.5e300,"b":[-0.0,1e-7]}', b'"12345678901234567890 in a string"', b"[1e400]" * 0 + b"[]",
                 b'{"id":"12345678901234567890123"}', b"[0.1234567890123456789012]"):
        assert loads(text) == orjson.loads(text)


@pytest.mark.parametrize("bad", [b"NaN", b"[Infinity]", b'{"a":1,}', b"[1] x", b"\xff", b"", b"[12345678901234567890,]",
                                 b"[-12345678901234567890", b"[123456789012345678901, NaN]"])
def test_codec_loads_rejects_what_orjson_rejects(bad: bytes) -> None:
    from topics.codec import loads

    with pytest.raises(orjson.JSONDecodeError):
        loads(bad)


def test_codec_dumps_raises_like_orjson_for_other_problems() -> None:
    from topics.codec import dumps

    for value in ({1: 2**70}, {"a": object(), "b": 2**70}, {"a": {1, 2}}):
        with pytest.raises(TypeError):
            dumps(value)


def test_codec_refuses_integers_beyond_pythons_text_limit_cleanly() -> None:
    from topics.codec import loads

    with pytest.raises(orjson.JSONDecodeError):
        loads(b"[" + b"9" * 5000 + b"]")

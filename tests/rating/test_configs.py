"""``rating.configs.read_app_config``: every app config reader's validation (SPEC §4):
``AppConfig.from_dict``'s rules (times in 2000–2099, finite decimals in a sane range, ids
without control or bidi characters) plus a catalog pin that names a shipped catalog. Hostile
documents are a ``ConfigError`` naming the field, never a crash later in rating."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.factories import APP, bj, make_app, package, relay

from rating.configs import read_app_config, read_app_documents
from topics.appconfig import AppConfig, AppDirectory
from topics.reasons import ConfigError

GOOD_PACKAGE = package("p-1", "css_traffic", "1000", bj("2026-08-03 09:00"))


def with_package(**changes: Any) -> dict[str, Any]:
    return make_app(services=["relay"], packages=[{**GOOD_PACKAGE, **changes}])


BAD_TIMES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+08:00", "1969-12-31T23:59:59Z",
             "1999-12-31T23:59:59+08:00", "2100-01-01T00:00:00+08:00", "2026-W31-6T10:00:00+0800",
             "2026-08-01T00:00:00+08", "2026-08-01 00:00:00+08:00"]
BAD_PRICES: list[Any] = ["1E+999999", "NaN", "Infinity", "-Infinity", "sNaN", "-1", "-0.01", "1000000000.01",
                         "1E+10", "0.0000001", "1_000", " 28", "28 ", "２８", "", "0x1c", 28.5, True, None,
                         [], {}, 10**5000]
BAD_SIZES: list[Any] = ["1E+999999", "NaN", "Infinity", "0", "-5", "1000000001", "0.0000001", "1_000", "", 1.5,
                        10**5000]
BAD_IDS: list[Any] = ["", "x" * 129, "acct\x00", "acct\x1b[31m", "acct\n", "acct\x7f", "acct\x85", "acct\x9f",
                      "acct\u202e", "acct\u202a", "acct\u2066", "acct\u2069", "acct\u200f", "acct\u061c", 7, None,
                      ["acct"]]


def short(value: Any) -> str:
    return "10**5000" if value == 10**5000 else ascii(value)[:40]


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        read_app_config(doc)
    return info.value.problems


@pytest.mark.parametrize("text", BAD_TIMES)
def test_effective_from_outside_rfc_3339_or_2000_to_2099(text: str) -> None:
    problems = problems_of(make_app(effective_from=text))
    assert any(p.startswith("effective_from") for p in problems), problems


@pytest.mark.parametrize("field", ["purchased_at", "expires_at"])
@pytest.mark.parametrize("text", BAD_TIMES)
def test_package_times_outside_rfc_3339_or_2000_to_2099(field: str, text: str) -> None:
    problems = problems_of(with_package(**{field: text}))
    assert any(p.startswith(f"packages[0].{field}") for p in problems), problems


def test_a_package_bought_on_the_last_day_expires_without_overflow() -> None:
    config = read_app_config(with_package(purchased_at="2100-01-01T05:00:00+14:00"))  # 2099-12-31 Beijing
    assert config.packages[0].expiry.year == 2101


@pytest.mark.parametrize("price", BAD_PRICES, ids=short)
def test_contract_prices_must_be_finite_decimals_in_range(price: Any) -> None:
    problems = problems_of(make_app(relay_billing="bandwidth_monthly_95", contract_prices={"mainland": price}))
    assert any(p.startswith("contract_prices.mainland") for p in problems), problems


@pytest.mark.parametrize("price", ["0", "28", "28.00", "0.000001", "1000000000", 5, "1E+3", "28.0000000000"])
def test_contract_prices_in_range_are_kept_exactly(price: Any) -> None:
    config = read_app_config(make_app(relay_billing="bandwidth_monthly_95", contract_prices={"mainland": price}))
    assert config.contract_prices["mainland"] == Decimal(str(price))


@pytest.mark.parametrize("size", BAD_SIZES, ids=short)
def test_package_sizes_must_be_positive_finite_decimals_in_range(size: Any) -> None:
    problems = problems_of(with_package(size=size))
    assert any(p.startswith("packages[0].size") for p in problems), problems


@pytest.mark.parametrize("value", BAD_IDS, ids=short)
def test_account_ids_need_1_to_128_plain_characters(value: Any) -> None:
    problems = problems_of(make_app(account=value))
    assert any(p.startswith("account_id") for p in problems), problems


@pytest.mark.parametrize("value", BAD_IDS, ids=short)
def test_package_ids_need_1_to_128_plain_characters(value: Any) -> None:
    problems = problems_of(with_package(package_id=value))
    assert any(p.startswith("packages[0].package_id") for p in problems), problems


def test_ids_with_ordinary_unicode_are_fine() -> None:
    config = read_app_config(with_package(package_id="套餐-1 α"))
    assert config.packages[0].package_id == "套餐-1 α"
    assert read_app_config(make_app(account="客户-42")).account_id == "客户-42"


@pytest.mark.parametrize("name", ["tencent-2099", "Tencent-2022", "", "tencent-2022\u202e", "x" * 200])
def test_a_catalog_pin_must_name_a_shipped_catalog(name: str) -> None:
    problems = problems_of(make_app(catalog=name))
    assert any(p.startswith("catalog") for p in problems), problems


def test_a_pin_to_a_shipped_catalog_is_kept() -> None:
    assert read_app_config(make_app(catalog="tencent-2019")).catalog == "tencent-2019"
    assert read_app_config(make_app(catalog=None)).catalog is None


def test_every_problem_at_once_with_the_catalog_pin() -> None:
    problems = problems_of(make_app(account="", catalog="nope", contract_prices={"mainland": "NaN"}))
    for field in ("account_id", "catalog", "contract_prices.mainland"):
        assert any(p.startswith(field) for p in problems), (field, problems)


def test_the_topics_parser_checks_everything_but_the_catalog_name() -> None:
    assert AppConfig.from_dict(make_app(catalog="tencent-2099")).catalog == "tencent-2099"
    with pytest.raises(ConfigError):
        AppConfig.from_dict(make_app(account="a\u202e"))


def test_apps_documents_are_read_with_the_catalog_check() -> None:
    text = "\n".join(orjson.dumps(d).decode() for d in [make_app(), make_app(APP + 1, catalog="nope")])
    with pytest.raises(ConfigError) as info:
        read_app_documents(text)
    assert [p for p in info.value.problems if p.startswith("app #2: catalog")]
    assert len(AppDirectory(read_app_documents(orjson.dumps(make_app()).decode()))) == 1


HOSTILE_DOCS = [
    ("packages[0].purchased_at", with_package(purchased_at="9999-12-31T23:59:59-12:00")),
    ("packages[0].expires_at", with_package(expires_at="0001-01-01T00:00:00+08:00")),
    ("effective_from", make_app(services=["relay"], effective_from="0001-01-01T00:00:00+08:00")),
    ("contract_prices.mainland", make_app(services=["relay"], relay_billing="bandwidth_monthly_95",
                                          contract_prices={"mainland": "1E+999999"})),
    ("packages[0].size", with_package(size="1E+999999")),
    ("account_id", make_app(services=["relay"], account="acct\u202e")),
    ("catalog", make_app(services=["relay"], catalog="tencent-2099")),
]


@pytest.mark.parametrize(("field", "doc"), [pytest.param(f, d, id=f) for f, d in HOSTILE_DOCS])
def test_vasbill_rate_with_a_hostile_config_fails_with_one_line(tmp_path: Path, field: str,
                                                                doc: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from vasbill.cli import main

    apps = tmp_path / "apps.jsonl"
    apps.write_bytes(orjson.dumps(doc) + b"\n")
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(relay(bj("2026-08-05 10:00"), 10**12)) + b"\n")
    result = CliRunner().invoke(main, ["rate", "--events", str(events), "--apps", str(apps)])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vasbill: "), result.stderr
    assert f"app #1: {field}" in result.stderr

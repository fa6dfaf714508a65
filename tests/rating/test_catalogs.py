"""Price catalogs: both shipped catalogs load, selection by date and by pin, every invariant
of ``parse_catalog`` fails on its own with a listed problem, and no float anywhere."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rating.catalog import Catalog, builtin_catalogs, catalog_named, load_catalog, parse_catalog, select_catalog
from rating.errors import CatalogError, VasbillError

CATALOGS = Path(__file__).resolve().parents[2] / "rating" / "catalogs"
TEXT_2022 = (CATALOGS / "tencent-2022.toml").read_text(encoding="utf-8")


def parse(text: str) -> Catalog:
    return parse_catalog(tomllib.loads(text, parse_float=Decimal), "<test>")


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        parse(text)
    return info.value.problems


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def drop_section(text: str, header: str) -> str:
    """Remove a TOML table ``[header]`` and its keys (up to the next table header)."""
    pattern = re.compile(rf"^\[{re.escape(header)}\][^\n]*\n(?:(?!\[)[^\n]*\n)*", re.M)
    out, n = pattern.subn("", text)
    assert n == 1, header
    return out


# -- the shipped catalogs -------------------------------------------------------------------


def test_both_catalogs_load() -> None:
    assert [c.name for c in builtin_catalogs()] == ["tencent-2019", "tencent-2022"]
    assert [c.valid_from for c in builtin_catalogs()] == [date(2000, 1, 1), date(2022, 1, 4)]
    for path in sorted(CATALOGS.glob("*.toml")):
        assert load_catalog(path).name == path.stem


def test_the_shipped_figures() -> None:
    old, new = catalog_named("tencent-2019"), catalog_named("tencent-2022")
    assert (old.recording_formula, new.recording_formula) == ("peak", "peak_x_recording_days")
    assert old.relay_traffic["mainland"].unit_price(Decimal(22.5)) == Decimal("0.26")
    assert new.relay_bandwidth["mainland"].unit_price(Decimal(50)) == Decimal("0.65")
    assert new.relay_traffic["mainland"].unit_price(Decimal(2000)) == Decimal("0.25")  # CSS: lower bound inclusive
    assert new.vod_traffic["mainland"].unit_price(Decimal(500)) == Decimal("0.24")  # VOD: upper bound inclusive
    assert new.vod_traffic["mainland"].unit_price(Decimal("500.000000001")) == Decimal("0.23")
    assert new.relay_traffic_price("leb", "mainland", Decimal(10)) == Decimal("0.52")
    assert old.relay_traffic_price("leb", "mainland", Decimal(600)) == Decimal("0.50")
    assert new.resolution_tier(1280, 480) == "720P" and new.resolution_tier(1920, 1088) == "1080P"
    assert old.resolution_tier(1920, 1088) == "2K"  # 2019: 1080P is up to 1920×1080
    assert old.transcode_price("top_speed", "h264", "4K") == ("1080P", Decimal("0.2511"))
    assert new.transcode_price("audio", None, None) == ("", Decimal("0.0056"))
    assert (new.moderation.block_price, new.snapshot.block_price) == (Decimal("1.3"), Decimal("0.1"))


@pytest.mark.parametrize(("day", "name"), [
    (date(2019, 1, 1), "tencent-2019"),
    (date(2022, 1, 3), "tencent-2019"),
    (date(2022, 1, 4), "tencent-2022"),
    (date(2026, 8, 1), "tencent-2022"),
    (date(1999, 1, 1), "tencent-2019"),  # before every catalog: the oldest
])
def test_selection_by_date(day: date, name: str) -> None:
    assert select_catalog(day).name == name


def test_pinning_by_name() -> None:
    assert select_catalog(date(2026, 8, 1), "tencent-2019").name == "tencent-2019"
    assert select_catalog(date(2019, 8, 1), "tencent-2022").name == "tencent-2022"
    with pytest.raises(CatalogError) as info:
        select_catalog(date(2026, 8, 1), "tencent-2031")
    assert "tencent-2031" in info.value.problems[0] and "tencent-2019" in info.value.problems[0]
    assert isinstance(info.value, VasbillError)


def test_unknown_catalog_fails_the_cli(rate: Any) -> None:
    run = rate({"sdk_app_id": 1, "account_id": "a"}, [], "--catalog", "tencent-2031")
    assert run.exit_code == 1
    assert run.stderr.startswith("vasbill: ") and "tencent-2031" in run.stderr


def test_the_2022_text_is_valid() -> None:
    assert parse(TEXT_2022).name == "tencent-2022"


# -- every invariant, broken one at a time --------------------------------------------------

MAINLAND_TRAFFIC = (
    "mainland = { bounds = [2000, 10000, 50000, 100000, 1000000], prices = [0.26, 0.25, 0.24, 0.22, 0.19, 0.16] }"
)
AP1_TRAFFIC = "ap1 = { bounds = [2000, 50000, 100000, 1000000], prices = [0.46, 0.43, 0.36, 0.31, 0.28] }"
SA_BANDWIDTH = "sa  = { bounds = [500, 5000, 20000], prices = [5.20, 5.09, 4.96, 4.90] }"

BROKEN = [
    ("unsorted-bounds",
     lambda t: replace_once(t, "[2000, 10000, 50000, 100000, 1000000]", "[10000, 2000, 50000, 100000, 1000000]"),
     "relay.traffic.standard.mainland: bounds must be strictly ascending"),
    ("repeated-bound",
     lambda t: replace_once(t, "[2000, 10000, 50000, 100000, 1000000]", "[2000, 2000, 50000, 100000, 1000000]"),
     "relay.traffic.standard.mainland: bounds must be strictly ascending"),
    ("zero-bound",
     lambda t: replace_once(t, AP1_TRAFFIC, AP1_TRAFFIC.replace("[2000,", "[0,")),
     "relay.traffic.standard.ap1: bounds must be positive"),
    ("too-few-prices",
     lambda t: replace_once(t, "0.22, 0.19, 0.16] }", "0.22, 0.19] }"),
     "relay.traffic.standard.mainland: needs exactly one more price than bounds"),
    ("too-many-prices",
     lambda t: replace_once(t, SA_BANDWIDTH, SA_BANDWIDTH.replace("4.90]", "4.90, 4.80]")),
     "relay.bandwidth.sa: needs exactly one more price than bounds"),
    ("negative-price",
     lambda t: replace_once(t, AP1_TRAFFIC, AP1_TRAFFIC.replace("0.46", "-0.46")),
     "relay.traffic.standard.ap1: prices must not be negative"),
    ("price-as-string",
     lambda t: replace_once(t, MAINLAND_TRAFFIC, MAINLAND_TRAFFIC.replace("0.26", '"0.26"')),
     "relay.traffic.standard.mainland: needs numeric bounds and prices"),
    ("missing-zone",
     lambda t: replace_once(t, SA_BANDWIDTH + "\n", ""),
     "relay.bandwidth.sa: missing"),
    ("unknown-zone",
     lambda t: replace_once(t, SA_BANDWIDTH, SA_BANDWIDTH + "\nmars = { bounds = [500], prices = [1, 2] }"),
     "relay.bandwidth.mars: unknown zone"),
    ("missing-vod-traffic-zone",
     lambda t: replace_once(t, "af  = { bounds = [500, 2000, 50000, 100000], "
                               "prices = [1.03, 0.98, 0.95, 0.91, 0.85] }\n", ""),
     "vod.traffic.af: missing"),
    ("unknown-recording-formula",
     lambda t: replace_once(t, 'formula = "peak_x_recording_days"', 'formula = "peak_x_moon_phase"'),
     "recording.formula: must be one of"),
    ("missing-recording-price",
     lambda t: replace_once(t, "price_per_channel = 30\n", ""),
     "recording.price_per_channel: missing"),
    ("negative-recording-price",
     lambda t: replace_once(t, "price_per_channel = 30", "price_per_channel = -30"),
     "recording.price_per_channel: must be non-negative"),
    ("zero-sample-interval",
     lambda t: replace_once(t, "sample_interval_s = 300", "sample_interval_s = 0"),
     "recording.sample_interval_s: must be positive"),
    ("recording-price-as-string",
     lambda t: replace_once(t, "price_per_channel = 30", 'price_per_channel = "30"'),
     "recording.price_per_channel: must be a number"),
    ("missing-package-kind",
     lambda t: drop_section(t, "packages.vod_traffic"),
     "packages.vod_traffic: missing"),
    ("package-order-without-ratio",
     lambda t: replace_once(t, '"push:mainland", ', '"push:mainland", "push:mars", '),
     "packages.css_traffic.order: push:mars has no ratio"),
    ("missing-im-plan",
     lambda t: drop_section(t, "im.plans.flagship"),
     "im.plans.flagship: missing"),
    ("zero-dau-block",
     lambda t: replace_once(t, "dau_block = 10000\ndau_block_price = 1000\nincluded_groups = 100000\n"
                               "group_block = 100000\ngroup_block_price = 1000\n\n[im.plans.flagship]",
                            "dau_block = 0\ndau_block_price = 1000\nincluded_groups = 100000\n"
                            "group_block = 100000\ngroup_block_price = 1000\n\n[im.plans.flagship]"),
     "im.plans.pro.dau_block: must be positive"),
    ("negative-storage-price",
     lambda t: replace_once(t, "mainland = { standard = 0.0048,", "mainland = { standard = -0.0048,"),
     "vod.storage.mainland.standard: must be non-negative"),
    ("missing-storage-class",
     lambda t: replace_once(t, "overseas = { standard = 0.0058, infrequent = 0.0036,",
                            "overseas = { standard = 0.0058,"),
     "vod.storage.overseas.infrequent: missing"),
    ("zero-snapshot-block",
     lambda t: replace_once(t, "[snapshot]                     # fee = block_price x ceil(max(0, N - free) / block)\n"
                               "free = 1000\nblock = 1000", "[snapshot]\nfree = 1000\nblock = 0"),
     "snapshot.block: must be positive"),
    ("negative-moderation-price",
     lambda t: replace_once(t, "block_price = 1.3", "block_price = -1.3"),
     "moderation.block_price: must be non-negative"),
    ("last-transcode-tier-bounded",
     lambda t: replace_once(t, 'name = "4K"\n', 'name = "4K"\nmax_long = 4096\nmax_short = 2160\n'),
     "transcode.tiers: the last tier must have no bounds"),
    ("transcode-price-of-unknown-tier",
     lambda t: replace_once(t, 'h265 = { "480P" = 0.080,', 'h265 = { "8K" = 9, "480P" = 0.080,'),
     "transcode.standard.h265.8K: unknown tier"),
    ("transcode-first-tier-unpriced",
     lambda t: replace_once(t, 'h264 = { "480P" = 0.066, ', "h264 = { "),
     "transcode.top_speed.h264: the first tier must have a price"),
    ("leb-zone-without-table-or-multiplier",
     lambda t: replace_once(t, "ap1 = 3.5385\n", ""),
     "relay.traffic: zone ap1 has neither a LEB table nor multiplier"),
    ("valid-from-not-a-date",
     lambda t: replace_once(t, "valid_from = 2022-01-04", 'valid_from = "2022-01-04"'),
     "valid_from: must be a TOML date"),
    ("negative-upload-ratio",
     lambda t: replace_once(t, "upload_max_down_up_ratio = 0.1", "upload_max_down_up_ratio = -0.1"),
     "relay.upload_max_down_up_ratio: must be non-negative"),
    ("missing-p95-fraction",
     lambda t: re.sub(r"^p95_drop_fraction = .*\n", "", t, flags=re.M),
     "relay.p95_drop_fraction: missing"),
]


@pytest.mark.parametrize(("mutate", "problem"), [pytest.param(m, p, id=i) for i, m, p in BROKEN])
def test_each_invariant_fails(mutate: Any, problem: str) -> None:
    broken = mutate(TEXT_2022)
    assert broken != TEXT_2022
    problems = problems_of(broken)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(("mutate", "problem"), [pytest.param(m, p, id=i) for i, m, p in [
    ("leb-multiplier-as-string", lambda t: replace_once(t, "\nap1 = 3.5385", '\nap1 = "3.5385"'),
     "relay.traffic.leb_multiplier.ap1"),
    ("transcode-price-as-string", lambda t: replace_once(t, '"720P" = 0.0325', '"720P" = "0.0325"'),
     "transcode.standard.h264.720P"),
    ("negative-transcode-price", lambda t: replace_once(t, '"720P" = 0.0325', '"720P" = -0.0325'),
     "transcode.standard.h264.720P"),
    ("negative-leb-multiplier", lambda t: replace_once(t, "\nap1 = 3.5385", "\nap1 = -3.5385"),
     "relay.traffic.leb_multiplier.ap1"),
]])
def test_loosely_checked_numbers_are_problems_too(mutate: Any, problem: str) -> None:
    """Numbers read outside ``_Reader.number`` must also become listed problems, never a
    TypeError or a silently accepted negative price."""
    problems = problems_of(mutate(TEXT_2022))
    assert any(problem in p for p in problems), problems


def test_two_problems_are_both_reported() -> None:
    broken = replace_once(TEXT_2022, 'formula = "peak_x_recording_days"', 'formula = "nope"')
    broken = replace_once(broken, SA_BANDWIDTH + "\n", "")
    with pytest.raises(CatalogError) as info:
        parse(broken)
    problems = info.value.problems
    assert any("recording.formula" in p for p in problems)
    assert any("relay.bandwidth.sa: missing" in p for p in problems)
    assert len(problems) == 2
    assert str(info.value) == "catalog tencent-2022: " + "; ".join(problems)


def test_many_problems_are_all_reported() -> None:
    broken = TEXT_2022
    for _, mutate, _ in BROKEN[:6]:
        try:
            broken = mutate(broken)
        except AssertionError:  # an earlier mutation already changed the same text
            continue
    assert len(problems_of(broken)) >= 4


def test_empty_document_lists_problems_instead_of_crashing() -> None:
    problems = problems_of("")
    assert any("recording.formula" in p for p in problems)
    assert any("packages.css_traffic: missing" in p for p in problems)
    assert any("im.plans.pro: missing" in p for p in problems)


def test_floats_never_reach_a_catalog() -> None:
    """The same text read without parse_float=Decimal has floats: they are refused."""
    with pytest.raises(CatalogError) as info:
        parse_catalog(tomllib.loads(TEXT_2022), "<floats>")
    assert any("numeric" in p or "number" in p for p in info.value.problems)


# -- no float anywhere ----------------------------------------------------------------------


def walk(value: Any, path: str = "catalog") -> Iterator[tuple[str, Any]]:
    yield path, value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield path + f"[{k!r}]", k
            yield from walk(v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("catalog", builtin_catalogs(), ids=lambda c: c.name)
def test_no_float_anywhere(catalog: Catalog) -> None:
    seen = list(walk(catalog))
    assert len(seen) > 500  # the walk reaches the tables
    assert [p for p, v in seen if isinstance(v, float)] == []
    decimals = [v for _, v in seen if isinstance(v, Decimal)]
    assert Decimal("0.0325") in decimals and Decimal("0.0048") in decimals

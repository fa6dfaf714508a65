"""Price catalogs: TOML data under ``rating/catalogs/``, validated on load, chosen by date.

Every amount is read as ``Decimal`` (``tomllib`` with ``parse_float=Decimal``; integers are
converted exactly). ``load_catalog`` collects every problem and raises one ``CatalogError``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from rating.errors import CatalogError
from rating.tiers import TierTable
from topics.appconfig import IM_PLANS, PACKAGE_KINDS
from topics.events import AREAS, STORAGE_CLASSES, ZONES

RECORDING_FORMULAS = ("peak", "peak_x_recording_days")


@dataclass(frozen=True, slots=True)
class ResolutionTier:
    name: str
    max_long: int | None
    max_short: int | None

    def holds(self, long_edge: int, short_edge: int) -> bool:
        if self.max_long is None or self.max_short is None:
            return True
        return long_edge <= self.max_long and short_edge <= self.max_short


@dataclass(frozen=True, slots=True)
class ImPlan:
    free: bool
    included_dau: int = 0
    dau_block: int = 1
    dau_block_price: Decimal = Decimal(0)
    included_groups: int = 0
    group_block: int = 1
    group_block_price: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class BlockPrice:
    """``block_price × ceil(max(0, N − free) / block)`` (screenshots, moderation)."""

    free: int
    block: int
    block_price: Decimal


@dataclass(frozen=True, slots=True)
class Catalog:
    name: str
    valid_from: date
    currency: str
    recording_price: Decimal
    recording_formula: str
    sample_interval_s: int
    stale_after_s: int
    upload_max_down_up_ratio: Decimal
    upload_min_peak_mbps: Decimal
    effective_day_min_bps: Decimal
    p95_drop_fraction: Decimal
    relay_traffic: Mapping[str, TierTable]  # zone -> standard table
    relay_leb: Mapping[str, TierTable]  # zone -> explicit LEB table
    relay_leb_multiplier: Mapping[str, Decimal]
    relay_bandwidth: Mapping[str, TierTable]
    transcode_minute_seconds: int
    transcode_audio_price: Decimal
    transcode_tiers: tuple[ResolutionTier, ...]
    transcode_prices: Mapping[str, Mapping[str, Mapping[str, Decimal]]]  # kind/codec/tier
    snapshot: BlockPrice
    moderation: BlockPrice
    vod_storage: Mapping[str, Mapping[str, Decimal]]  # area -> class -> price
    vod_traffic: Mapping[str, TierTable]
    im_plans: Mapping[str, ImPlan]
    packages: Mapping[str, Mapping[str, Any]]

    def relay_traffic_price(self, product: str, zone: str, gb: Decimal) -> Decimal:
        """Reach-tier unit price of a day's GB; LEB from its table or standard × multiplier."""
        if product == "leb":
            if zone in self.relay_leb:
                return self.relay_leb[zone].unit_price(gb)
            return self.relay_traffic[zone].unit_price(gb) * self.relay_leb_multiplier[zone]
        return self.relay_traffic[zone].unit_price(gb)

    def resolution_tier(self, width: int, height: int) -> str:
        long_edge, short_edge = max(width, height), min(width, height)
        for tier in self.transcode_tiers:
            if tier.holds(long_edge, short_edge):
                return tier.name
        return self.transcode_tiers[-1].name

    def transcode_price(self, kind: str, codec: str | None, tier: str | None) -> tuple[str, Decimal]:
        """(tier billed, CNY per minute). A tier missing from a kind's table (2019
        top-speed above 1080P) bills at the highest tier below it that has a price."""
        if kind == "audio" or codec is None or tier is None:
            return "", self.transcode_audio_price
        table = self.transcode_prices[kind][codec]
        names = [t.name for t in self.transcode_tiers]
        for name in reversed(names[: names.index(tier) + 1]):
            if name in table:
                return name, table[name]
        raise KeyError(tier)  # validation guarantees the first tier is priced

    def package_ratio(self, kind: str, key: str) -> Decimal:
        """css_traffic package GB consumed per GB of ``product:zone`` usage."""
        product, zone = key.split(":")
        return Decimal(self.packages[kind]["ratios"][product][zone])


def _dec(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise TypeError(f"not a number: {value!r}")
    return Decimal(value)


class _Reader:
    """Reads sections, recording every problem instead of stopping at the first."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.problems: list[str] = []

    def get(self, path: str, default: Any = ...) -> Any:
        node: Any = self.doc
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if default is not ...:
                    return default
                self.problems.append(f"{path}: missing")
                return None
            node = node[part]
        return node

    def number(self, path: str, *, positive: bool = False) -> Decimal:
        value = self.get(path)
        try:
            out = _dec(value)
        except TypeError:
            if value is not None:
                self.problems.append(f"{path}: must be a number")
            return Decimal(0)
        if out < 0 or (positive and out == 0):
            self.problems.append(f"{path}: must be {'positive' if positive else 'non-negative'}")
        return out

    def table(self, path: str, node: Any, upper_inclusive: bool = False) -> TierTable:
        try:
            table = TierTable(
                tuple(_dec(b) for b in node["bounds"]),
                tuple(_dec(p) for p in node["prices"]),
                upper_inclusive,
            )
        except (TypeError, KeyError):
            self.problems.append(f"{path}: needs numeric bounds and prices")
            return TierTable((), (Decimal(0),), upper_inclusive)
        self.problems += table.problems(path)
        return table

    def zone_tables(self, path: str, zones: tuple[str, ...], upper_inclusive: bool = False,
                    required: bool = True) -> dict[str, TierTable]:
        section = self.get(path, {})
        out = {}
        for zone, node in section.items():
            if not isinstance(node, Mapping):
                continue
            if zone not in zones:
                self.problems.append(f"{path}.{zone}: unknown zone")
            out[zone] = self.table(f"{path}.{zone}", node, upper_inclusive)
        if required:
            for zone in zones:
                if zone not in out:
                    self.problems.append(f"{path}.{zone}: missing")
        return out


def parse_catalog(doc: Mapping[str, Any], source: str = "<catalog>") -> Catalog:
    """Build and validate a catalog from its TOML document."""
    r = _Reader(doc)
    name = r.get("name")
    valid_from = r.get("valid_from")
    if not isinstance(valid_from, date):
        r.problems.append("valid_from: must be a TOML date")
        valid_from = date(1970, 1, 1)
    formula = r.get("recording.formula")
    if formula not in RECORDING_FORMULAS:
        r.problems.append(f"recording.formula: must be one of {', '.join(RECORDING_FORMULAS)}")
    leb = r.zone_tables("relay.traffic.leb", ZONES, required=False)
    multipliers = {
        z: r.number(f"relay.traffic.leb_multiplier.{z}") for z in r.get("relay.traffic.leb_multiplier", {})
    }
    for zone in ZONES:
        if zone not in leb and zone not in multipliers:
            r.problems.append(f"relay.traffic: zone {zone} has neither a LEB table nor multiplier")
    tiers = tuple(
        ResolutionTier(t.get("name", "?"), t.get("max_long"), t.get("max_short"))
        for t in r.get("transcode.tiers", [])
    )
    if not tiers or tiers[-1].max_long is not None:
        r.problems.append("transcode.tiers: the last tier must have no bounds")
    tier_names = [t.name for t in tiers]
    prices: dict[str, dict[str, dict[str, Decimal]]] = {}
    for kind in ("standard", "top_speed"):
        prices[kind] = {}
        for codec in ("h264", "h265"):
            table = r.get(f"transcode.{kind}.{codec}", {})
            prices[kind][codec] = {t: r.number(f"transcode.{kind}.{codec}.{t}") for t in table}
            if tier_names and tier_names[0] not in table:
                r.problems.append(f"transcode.{kind}.{codec}: the first tier must have a price")
            for t in table:
                if t not in tier_names:
                    r.problems.append(f"transcode.{kind}.{codec}.{t}: unknown tier")
    storage: dict[str, dict[str, Decimal]] = {}
    for area in AREAS:
        storage[area] = {}
        for cls in STORAGE_CLASSES:
            storage[area][cls] = r.number(f"vod.storage.{area}.{cls}")
    plans: dict[str, ImPlan] = {}
    for plan in IM_PLANS:
        node = r.get(f"im.plans.{plan}")
        if not isinstance(node, Mapping):
            continue
        if node.get("free"):
            plans[plan] = ImPlan(free=True)
            continue
        p = f"im.plans.{plan}"
        plans[plan] = ImPlan(
            free=False,
            included_dau=int(r.number(f"{p}.included_dau")),
            dau_block=int(r.number(f"{p}.dau_block", positive=True)) or 1,
            dau_block_price=r.number(f"{p}.dau_block_price"),
            included_groups=int(r.number(f"{p}.included_groups")),
            group_block=int(r.number(f"{p}.group_block", positive=True)) or 1,
            group_block_price=r.number(f"{p}.group_block_price"),
        )
    packages = r.get("packages", {})
    for kind in PACKAGE_KINDS:
        if kind not in packages:
            r.problems.append(f"packages.{kind}: missing")
    ratios = r.get("packages.css_traffic.ratios", {})
    for key in r.get("packages.css_traffic.order", []):
        product, _, zone = key.partition(":")
        if zone not in ratios.get(product, {}):
            r.problems.append(f"packages.css_traffic.order: {key} has no ratio")

    def block(section: str) -> BlockPrice:
        return BlockPrice(
            int(r.number(f"{section}.free")),
            int(r.number(f"{section}.block", positive=True)) or 1,
            r.number(f"{section}.block_price"),
        )

    catalog = Catalog(
        name=str(name),
        valid_from=valid_from,
        currency=str(r.get("currency", "CNY")),
        recording_price=r.number("recording.price_per_channel"),
        recording_formula=str(formula),
        sample_interval_s=int(r.number("recording.sample_interval_s", positive=True)),
        stale_after_s=int(r.number("recording.stale_after_s")),
        upload_max_down_up_ratio=r.number("relay.upload_max_down_up_ratio"),
        upload_min_peak_mbps=r.number("relay.upload_min_peak_mbps"),
        effective_day_min_bps=r.number("relay.effective_day_min_bps"),
        p95_drop_fraction=r.number("relay.p95_drop_fraction"),
        relay_traffic=r.zone_tables("relay.traffic.standard", ZONES),
        relay_leb=leb,
        relay_leb_multiplier=multipliers,
        relay_bandwidth=r.zone_tables("relay.bandwidth", ZONES),
        transcode_minute_seconds=int(r.number("transcode.minute_seconds", positive=True)) or 60,
        transcode_audio_price=r.number("transcode.audio_price"),
        transcode_tiers=tiers,
        transcode_prices=prices,
        snapshot=block("snapshot"),
        moderation=block("moderation"),
        vod_storage=storage,
        vod_traffic=r.zone_tables(
            "vod.traffic", ZONES, upper_inclusive=bool(r.get("vod.traffic.upper_inclusive", False))
        ),
        im_plans=plans,
        packages=packages,
    )
    for plan in IM_PLANS:
        if plan not in plans:
            r.problems.append(f"im.plans.{plan}: missing")
    if r.problems:
        raise CatalogError(str(name or source), r.problems)
    return catalog


def load_catalog(path: Path | str) -> Catalog:
    text = Path(path).read_text(encoding="utf-8")
    return parse_catalog(tomllib.loads(text, parse_float=Decimal), str(path))


@lru_cache(maxsize=1)
def builtin_catalogs() -> tuple[Catalog, ...]:
    """Every shipped catalog, oldest ``valid_from`` first."""
    folder = resources.files("rating") / "catalogs"
    loaded = [
        parse_catalog(tomllib.loads(f.read_text(encoding="utf-8"), parse_float=Decimal), f.name)
        for f in folder.iterdir()
        if f.name.endswith(".toml")
    ]
    return tuple(sorted(loaded, key=lambda c: c.valid_from))


def catalog_named(name: str) -> Catalog:
    for catalog in builtin_catalogs():
        if catalog.name == name:
            return catalog
    known = ", ".join(c.name for c in builtin_catalogs())
    raise CatalogError(name, [f"no catalog named {name!r} (known: {known})"])


def select_catalog(period_start: date, pinned: str | None = None) -> Catalog:
    """The pinned catalog, else the newest one valid at the period's start date."""
    if pinned:
        return catalog_named(pinned)
    chosen = None
    for catalog in builtin_catalogs():
        if catalog.valid_from <= period_start:
            chosen = catalog
    return chosen or builtin_catalogs()[0]

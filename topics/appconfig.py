"""App configuration documents of ``config.apps`` (SPEC §4) and their versions in time.

An app has one or more versions, each effective from its ``effective_from``. Our readings:
- an event earlier than an app's first version uses that first version (the app exists,
  its configuration was only written later);
- a change of ``relay_billing`` takes effect at the first Beijing midnight at or after the
  version's ``effective_from`` (a switch during a day applies from the next day, one written
  for midnight applies that day); of several changes that would take effect on the same
  day only the first counts (Tencent allows one switch a day).

Validation (``AppConfig.from_dict``; every reader goes through
``rating.configs.read_app_config``, which also checks that a ``catalog`` pin names a
shipped catalog): ``effective_from`` and package times are RFC 3339 in 2000-01-01 …
2099-12-31 (``topics.timefmt``), so a package's default expiry (one year after purchase)
always exists; contract prices (CNY per Mbps per month) are plain decimals in 0 … 10^9,
package sizes in 0 (excluded) … 10^9, both with at most 6 decimal places; ids
(``account_id``, ``package_id``, ``catalog``) have 1..128 characters and no control
characters (C0, DEL, C1) or bidirectional formatting characters (Bidi_Control).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from topics.charges import decimal_text
from topics.events import ZONES
from topics.reasons import ConfigError
from topics.timefmt import BEIJING, RANGE_TEXT, format_time, parse_time, to_ms

SERVICES = ("relay", "recording", "transcode", "snapshot", "moderation", "vod", "im")
DEFAULT_SERVICES = {name: name == "im" for name in SERVICES}
RELAY_MODES = (
    "traffic",
    "bandwidth_daily_peak",
    "bandwidth_monthly_95",
    "bandwidth_monthly_avg_daily_peak",
)
MONTHLY_RELAY_MODES = RELAY_MODES[2:]
IM_PLANS = ("trtc_trial", "pro", "flagship")
PACKAGE_KINDS = (
    "css_traffic",
    "vod_storage",
    "vod_traffic",
    "transcode_standard",
    "transcode_top_speed",
)
_FAR_PAST_MS = -(2**62)

MAX_ID_CHARS = 128
MAX_AMOUNT = Decimal(10**9)  # a contract price (CNY/Mbps/month) or a package size above is absurd
AMOUNT_PLACES = 6
_QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,6})?", re.ASCII)
# C0 controls, DEL, C1 controls; the Bidi_Control characters (ALM, LRM, RLM, embeddings,
# overrides, isolates): ids show up in statements, logs and dashboards
_UNSAFE_ID_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def id_problem(value: Any, name: str) -> str | None:
    """Why ``value`` is not a usable id (1..128 characters, no control or bidi characters)."""
    if type(value) is not str or not 1 <= len(value) <= MAX_ID_CHARS:
        return f"{name} must be a string of 1..{MAX_ID_CHARS} characters"
    if _UNSAFE_ID_CHARS.search(value):
        return f"{name} must not contain control characters or bidirectional formatting characters"
    return None


def _one_year_later(value: datetime) -> datetime:
    try:
        return value.replace(year=value.year + 1)
    except ValueError:  # 29 February
        return value.replace(year=value.year + 1, day=28)


@dataclass(frozen=True, slots=True)
class PackageSpec:
    """A prepaid resource package; ``size`` in the kind's unit (GB, or hours)."""

    package_id: str
    kind: str
    size: Decimal
    purchased_at: datetime
    expires_at: datetime | None = None

    @property
    def expiry(self) -> datetime:
        return self.expires_at or _one_year_later(self.purchased_at)

    def usable_on(self, day_start: datetime, day_end: datetime) -> bool:
        """Bought on or before that Beijing day and not expired before it began."""
        bought_day = self.purchased_at.astimezone(BEIJING).date()
        return bought_day <= day_start.astimezone(BEIJING).date() and self.expiry > day_start

    def to_dict(self) -> dict[str, Any]:
        return {
            "package_id": self.package_id,
            "kind": self.kind,
            "size": decimal_text(self.size),
            "purchased_at": format_time(self.purchased_at),
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
        }


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One version of an app's configuration."""

    sdk_app_id: int
    account_id: str
    effective_from: datetime | None = None
    services: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULT_SERVICES))
    relay_billing: str = "traffic"
    contract_prices: Mapping[str, Decimal] = field(default_factory=dict)
    im_plan: str = "trtc_trial"
    catalog: str | None = None
    packages: tuple[PackageSpec, ...] = ()

    @property
    def effective_ms(self) -> int:
        return to_ms(self.effective_from) if self.effective_from else _FAR_PAST_MS

    def enabled(self, service: str) -> bool:
        return bool(self.services.get(service, DEFAULT_SERVICES.get(service, False)))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AppConfig:
        """Validate a document; raise ``ConfigError`` listing every problem at once."""
        problems: list[str] = []
        if not isinstance(doc, Mapping):
            raise ConfigError(["app config must be a JSON object"])
        app_id = doc.get("sdk_app_id")
        if isinstance(app_id, bool) or not isinstance(app_id, int) or not 0 < app_id < 2**32:
            problems.append("sdk_app_id must be an integer in 1..2^32-1")
        account = doc.get("account_id")
        problem = id_problem(account, "account_id")
        if problem:
            problems.append(problem)
        effective = _time_or_none(doc.get("effective_from"), "effective_from", problems)
        services = dict(DEFAULT_SERVICES)
        raw_services = doc.get("services") or {}
        if not isinstance(raw_services, Mapping):
            problems.append("services must be an object")
            raw_services = {}
        for name, on in raw_services.items():
            if name not in SERVICES:
                problems.append(f"services: unknown service {name!r}")
            elif not isinstance(on, bool):
                problems.append(f"services.{name} must be true or false")
            else:
                services[name] = on
        relay = doc.get("relay_billing") or "traffic"
        if relay not in RELAY_MODES:
            problems.append(f"relay_billing must be one of {', '.join(RELAY_MODES)}")
        prices: dict[str, Decimal] = {}
        raw_prices = doc.get("contract_prices") or {}
        if not isinstance(raw_prices, Mapping):
            problems.append("contract_prices must be an object")
            raw_prices = {}
        for zone, price in raw_prices.items():
            if zone not in ZONES:
                problems.append(f"contract_prices: unknown zone {zone!r}")
                continue
            amount = _amount(price, f"contract_prices.{zone}", problems, positive=False)
            if amount is not None:
                prices[zone] = amount
        plan = doc.get("im_plan") or "trtc_trial"
        if plan not in IM_PLANS:
            problems.append(f"im_plan must be one of {', '.join(IM_PLANS)}")
        catalog = doc.get("catalog")
        if catalog is not None and (not isinstance(catalog, str) or id_problem(catalog, "catalog")):
            problems.append("catalog must be a catalog name or null")
        packages = _packages(doc.get("packages") or [], problems)
        if problems:
            raise ConfigError(problems)
        return cls(
            sdk_app_id=int(app_id),  # type: ignore[arg-type]
            account_id=str(account),
            effective_from=effective,
            services=services,
            relay_billing=str(relay),
            contract_prices=prices,
            im_plan=str(plan),
            catalog=catalog,
            packages=packages,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sdk_app_id": self.sdk_app_id,
            "account_id": self.account_id,
            "effective_from": format_time(self.effective_from) if self.effective_from else None,
            "services": dict(self.services),
            "relay_billing": self.relay_billing,
            "contract_prices": {k: decimal_text(v) for k, v in self.contract_prices.items()},
            "im_plan": self.im_plan,
            "catalog": self.catalog,
            "packages": [p.to_dict() for p in self.packages],
        }


def _decimal(value: Any) -> Decimal | None:
    """An exact decimal from a JSON integer or a plain decimal string (ASCII digits, an
    optional exponent); None for floats, booleans, NaN, infinities and anything else."""
    if type(value) is int:
        return Decimal(value) if -(10**12) < value < 10**12 else None  # beyond every range anyway
    if type(value) is not str or len(value) > 64 or not _DECIMAL_TEXT.fullmatch(value):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _amount(value: Any, name: str, problems: list[str], *, positive: bool) -> Decimal | None:
    """A contract price (``positive=False``: 0 allowed) or a package size, range-checked."""
    amount = _decimal(value)
    low = "0 (excluded)" if positive else "0"
    rule = f"{name} must be a decimal string in {low} … {MAX_AMOUNT:,} with at most {AMOUNT_PLACES} decimal places"
    if (amount is None or amount < 0 or (positive and amount == 0) or amount > MAX_AMOUNT
            or amount.quantize(_QUANTUM) != amount):
        problems.append(rule)
        return None
    return amount.copy_abs()  # -0 is 0


def _time_or_none(value: Any, name: str, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        problems.append(f"{name} must be an RFC 3339 time with an offset, in {RANGE_TEXT}")
        return None


def _packages(raw: Any, problems: list[str]) -> tuple[PackageSpec, ...]:
    if not isinstance(raw, list):
        problems.append("packages must be a list")
        return ()
    out: list[PackageSpec] = []
    for i, item in enumerate(raw):
        where = f"packages[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where} must be an object")
            continue
        before = len(problems)
        pid = item.get("package_id")
        problem = id_problem(pid, f"{where}.package_id")
        if problem:
            problems.append(problem)
        kind = item.get("kind")
        if kind not in PACKAGE_KINDS:
            problems.append(f"{where}.kind must be one of {', '.join(PACKAGE_KINDS)}")
        size = _amount(item.get("size"), f"{where}.size", problems, positive=True)
        bought = _time_or_none(item.get("purchased_at"), f"{where}.purchased_at", problems)
        if bought is None and item.get("purchased_at") is None:
            problems.append(f"{where}.purchased_at is required")
        expires = _time_or_none(item.get("expires_at"), f"{where}.expires_at", problems)
        if bought is not None and expires is not None and expires <= bought:
            problems.append(f"{where}.expires_at must be after its purchased_at")
        if len(problems) == before and bought is not None and size is not None:
            out.append(PackageSpec(str(pid), str(kind), size, bought, expires))
    return tuple(out)


class AppDirectory:
    """Every app's configuration versions, looked up by time; the global view of config.apps."""

    def __init__(self, configs: Iterable[AppConfig] = ()) -> None:
        self._versions: dict[int, list[AppConfig]] = {}
        self._starts: dict[int, list[int]] = {}
        self._last: dict[int, tuple[int, int, AppConfig]] = {}  # app -> [low, high) of its last lookup
        self._accounts: dict[str, list[int]] | None = None
        for config in configs:
            self.add(config)

    def add(self, config: AppConfig) -> None:
        """Add or replace (same ``effective_from``) a version."""
        versions = [
            v for v in self._versions.get(config.sdk_app_id, [])
            if v.effective_ms != config.effective_ms
        ]
        versions.append(config)
        versions.sort(key=lambda v: v.effective_ms)
        self._versions[config.sdk_app_id] = versions
        self._starts[config.sdk_app_id] = [v.effective_ms for v in versions]
        self._last.pop(config.sdk_app_id, None)
        self._accounts = None

    def __contains__(self, sdk_app_id: object) -> bool:
        return sdk_app_id in self._versions

    def __len__(self) -> int:
        return len(self._versions)

    def app_ids(self) -> list[int]:
        return sorted(self._versions)

    def versions(self, sdk_app_id: int) -> list[AppConfig]:
        return list(self._versions.get(sdk_app_id, []))

    def at(self, sdk_app_id: int, ms: int) -> AppConfig | None:
        """The version in effect at ``ms`` (the first version for earlier times)."""
        span = self._last.get(sdk_app_id)  # called twice per event, mostly for the same version
        if span is not None and span[0] <= ms < span[1]:
            return span[2]
        versions = self._versions.get(sdk_app_id)
        if not versions:
            return None
        starts = self._starts[sdk_app_id]
        index = max(bisect_right(starts, ms) - 1, 0)
        low = starts[index] if index else -(2**63)
        high = starts[index + 1] if index + 1 < len(starts) else 2**63
        self._last[sdk_app_id] = (low, high, versions[index])
        return versions[index]

    def relay_mode(self, sdk_app_id: int, day_start: datetime) -> str:
        """Relay billing mode of a Beijing day, by the next-day rule (module docstring)."""
        versions = self._versions.get(sdk_app_id)
        if not versions:
            return "traffic"
        mode = versions[0].relay_billing
        last_switch_day = None
        for version in versions[1:]:
            if version.relay_billing == mode:
                continue
            takes_effect = _next_midnight(version.effective_from)
            if takes_effect is None or takes_effect > day_start:
                break
            if takes_effect == last_switch_day:
                continue
            mode, last_switch_day = version.relay_billing, takes_effect
        return mode

    def accounts(self) -> dict[str, list[int]]:
        """account_id -> its sdk_app_ids (any version); cached until the next ``add``."""
        if self._accounts is None:
            out: dict[str, set[int]] = {}
            for app_id, versions in self._versions.items():
                for version in versions:
                    out.setdefault(version.account_id, set()).add(app_id)
            self._accounts = {acct: sorted(ids) for acct, ids in sorted(out.items())}
        return self._accounts


def _next_midnight(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    local = value.astimezone(BEIJING)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if midnight == local else midnight + timedelta(days=1)


def parse_app_documents(text: str, read: Callable[[Any], AppConfig] | None = None) -> list[AppConfig]:
    """App configs from a JSON array or JSON Lines (SPEC §9 ``--apps``); all problems at once.
    ``read`` validates one document (default ``AppConfig.from_dict``; the CLI passes
    ``rating.configs.read_app_config``, which also checks catalog pins)."""
    import orjson

    stripped = text.strip()
    docs: list[Any]
    problems: list[str] = []
    if not stripped:
        return []
    try:
        if stripped.startswith("["):
            docs = orjson.loads(stripped)
        else:
            docs = [orjson.loads(line) for line in stripped.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ConfigError([f"apps file is not JSON: {exc}"]) from exc
    if not isinstance(docs, list):
        raise ConfigError(["apps file must be a JSON array or JSON Lines of app configs"])
    reader = read or AppConfig.from_dict
    configs = []
    for i, doc in enumerate(docs):
        try:
            configs.append(reader(doc))
        except ConfigError as exc:
            problems += [f"app #{i + 1}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return configs

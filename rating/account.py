"""What rating needs to know about an account for a period, read from its app configs.

Our readings for settings that SPEC §4 keeps per app but that apply to the account:
- the catalog is the ``--catalog`` override, else a pin in the config (in effect at the
  period's start) of the account's lowest sdk_app_id that pins one, else chosen by date;
- contract prices likewise come from the lowest sdk_app_id that has one for the zone;
- packages are the account's: the union of the packages listed by its apps (by id, any
  version; a later version's entry for the same id wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rating.catalog import Catalog, select_catalog
from rating.periods import Period
from topics.appconfig import AppDirectory, PackageSpec


@dataclass(frozen=True, slots=True)
class AccountView:
    account_id: str
    apps: AppDirectory
    app_ids: tuple[int, ...]
    catalog_override: str | None = None

    def catalog(self, period: Period) -> Catalog:
        if self.catalog_override:
            return select_catalog(period.start_date, self.catalog_override)
        for app in self.app_ids:
            config = self.apps.at(app, period.start_ms)
            if config and config.catalog:
                return select_catalog(period.start_date, config.catalog)
        return select_catalog(period.start_date)

    def relay_mode(self, app: int, day: Period) -> str:
        return self.apps.relay_mode(app, day.start)

    def contract_price(self, zone: str, period: Period) -> Decimal | None:
        for app in self.app_ids:
            config = self.apps.at(app, period.start_ms)
            if config and zone in config.contract_prices:
                return config.contract_prices[zone]
        return None

    def im_plan(self, app: int, period: Period) -> str:
        config = self.apps.at(app, period.start_ms)
        return config.im_plan if config else "trtc_trial"

    def packages(self, kind: str, day: Period) -> list[PackageSpec]:
        """Packages of ``kind`` usable on ``day``, earliest expiry first."""
        found: dict[str, PackageSpec] = {}
        for app in self.app_ids:
            for version in self.apps.versions(app):
                for package in version.packages:
                    found[package.package_id] = package
        usable = [
            p for p in found.values() if p.kind == kind and p.usable_on(day.start, day.end)
        ]
        return sorted(usable, key=lambda p: (p.expiry, p.purchased_at, p.package_id))

"""The billing loop: validate, dedupe, fold, close periods, re-rate, emit revisions.

``vasbill rate`` drives one ``Biller`` over a file; the streaming worker runs the same
pieces (meters fold per app in stage 1, ``rate_unit`` per account in stage 2). Readings
that the spec leaves open are written where they are decided:

- the clock is the event clock: the largest event time seen, advanced further by
  ``clock.tick`` messages; a rating unit (account, unit kind, period) closes when the clock
  reaches its period end plus the grace of its period kind;
- an accepted event whose unit is already closed re-rates that unit at once and emits
  the next revision of every charge whose content changed (``previous_amount``,
  ``delta``); a charge that disappears gets a revision with no lines and amount 0;
- ``emitted_at`` is the clock at emission, so a replay is byte-for-byte reproducible.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from rating.account import AccountView
from rating.dedupe import Deduper
from rating.meters import METER_OF_TYPE, METERS, State
from rating.packages import PackageLedger
from rating.periods import DAY_MS, Period, prune_before
from rating.pricers import UNIT_ORDER, UNITS, units_of
from rating.revisions import rate_unit
from topics.appconfig import AppDirectory
from topics.charges import Charge
from topics.events import UsageEvent
from topics.reasons import Rejection
from topics.timefmt import parse_time, to_ms
from topics.validation import check_event, split_message

UnitKey = tuple[str, str, Period]  # (account_id, unit kind, period)
Output = Charge | Rejection


@dataclass(frozen=True, slots=True)
class BillingSettings:
    grace_day_s: int = 2 * 3600
    grace_month_s: int = 86_400
    horizon_s: int = 40 * 86_400
    catalog: str | None = None

    def close_ms(self, period: Period) -> int:
        grace = self.grace_day_s if period.kind == "day" else self.grace_month_s
        return period.end_ms + grace * 1000


@dataclass
class Stats:
    """What happened to the input, for summaries and metrics."""

    events: Counter[str] = field(default_factory=Counter)  # outcome -> n
    quarantined: Counter[str] = field(default_factory=Counter)  # reason -> n
    late_events: int = 0
    revisions: int = 0
    charges: int = 0


class Biller:
    def __init__(
        self,
        apps: AppDirectory,
        settings: BillingSettings | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.apps = apps
        self.settings = settings or BillingSettings()
        self.now = now
        self.clock_ms: int | None = None
        self.final_ms: int | None = None  # a final tick closed every unit begun by then
        self._pruned_at_ms: int | None = None
        self.dedupe = Deduper()
        self.stats = Stats()
        # (meter family, period key or "" for registries, account) -> sdk_app_id -> state
        self.states: dict[tuple[str, str, str], dict[int, State]] = {}
        self.closed: dict[UnitKey, bool] = {}
        self._due: list[tuple[int, int, int, str, str, str, str]] = []
        self.emitted: dict[str, Charge] = {}
        self.unit_charges: dict[UnitKey, set[str]] = {}
        self.ledgers: dict[str, PackageLedger] = {}
        self._views: dict[str, AccountView] = {}
        self._accounts = apps.accounts()

    # -- input ---------------------------------------------------------------------------

    def process(self, raw: bytes) -> list[Output]:
        """One message or file line: an event, a batch of events, or a ``clock.tick``."""
        out: list[Output] = []
        now = to_ms(self.now())
        for part in split_message(raw):
            if isinstance(part, Rejection):
                out.append(self._reject(part))
                continue
            text, obj = part
            if isinstance(obj, Mapping) and obj.get("type") == "clock.tick":
                out += self._tick_object(text, obj)
                continue
            outcome = check_event(text, obj, now, apps=self.apps, not_before_ms=self._not_before())
            if isinstance(outcome, Rejection):
                out.append(self._reject(outcome))
            else:
                out += self.accept(outcome)
        return out

    def _not_before(self) -> int | None:
        return None if self.clock_ms is None else self.clock_ms - self.settings.horizon_s * 1000

    def _reject(self, rejection: Rejection) -> Rejection:
        self.stats.events["quarantined"] += 1
        self.stats.quarantined[rejection.reason.value] += 1
        return rejection

    def _tick_object(self, text: str, obj: Mapping[str, Any]) -> list[Output]:
        from topics.reasons import QuarantineReason

        try:
            when = to_ms(parse_time(obj["time"])) if obj.get("time") is not None else None
            final = obj.get("final", False)
            if not isinstance(final, bool):
                raise ValueError("final must be true or false")
        except (ValueError, TypeError) as exc:
            return [self._reject(Rejection(QuarantineReason.SCHEMA, f"clock.tick: {exc}", text))]
        return list(self.tick(when, final=final))

    def accept(self, event: UsageEvent) -> list[Charge]:
        """Fold a valid event; re-rate its closed units; advance the clock."""
        if not self.dedupe.first_time(event.sdk_app_id, event.event_id, event.ms):
            self.stats.events["duplicate"] += 1
            return []
        self.stats.events["accepted"] += 1
        config = self.apps.at(event.sdk_app_id, event.ms)
        assert config is not None  # validation checked it
        account = config.account_id
        meter = METER_OF_TYPE[event.type]
        period = meter.period_of(event)
        bucket = self.states.setdefault((meter.family, period.key if period else "", account), {})
        state = bucket.get(event.sdk_app_id)
        if state is None:
            state = bucket[event.sdk_app_id] = meter.initial()
        late: list[UnitKey] = []
        for touched in meter.fold(state, event):
            for kind, unit_period in units_of(meter.family, touched):
                key = (account, kind, unit_period)
                if key not in self.closed:
                    if self._past_close(unit_period):  # first event of a unit already past its close
                        self.closed[key] = True
                        late.append(key)
                    else:
                        self._open(key)
                elif self.closed[key] and key not in late:
                    late.append(key)
        out: list[Charge] = []
        if late:
            self.stats.late_events += 1
            for key in late:
                out += self.rate_unit(key)
        return out + self.advance(event.ms)

    # -- clock ---------------------------------------------------------------------------

    def _past_close(self, period: Period) -> bool:
        if self.clock_ms is not None and self.clock_ms >= self.settings.close_ms(period):
            return True
        return self.final_ms is not None and self.final_ms >= period.start_ms

    def _open(self, key: UnitKey) -> None:
        account, kind, period = key
        self.closed[key] = False
        entry = (
            self.settings.close_ms(period), period.start_ms, UNIT_ORDER[kind],
            account, kind, period.kind, period.key,
        )
        heapq.heappush(self._due, entry)

    def advance(self, ms: int) -> list[Charge]:
        """Move the clock forward to ``ms`` and close every unit that is due."""
        if self.clock_ms is not None and ms <= self.clock_ms:
            return []
        self.clock_ms = ms
        out: list[Charge] = []
        while self._due and self._due[0][0] <= ms:
            *_, account, kind, pkind, pkey = heapq.heappop(self._due)
            out += self._close((account, kind, Period(pkind, pkey)))
        if self._pruned_at_ms is None or ms - self._pruned_at_ms >= DAY_MS:  # once a day of clock
            self._pruned_at_ms = ms
            self._prune(prune_before(ms, self.settings.horizon_s * 1000))
        return out

    def tick(self, ms: int | None, *, final: bool = False) -> list[Charge]:
        """A ``clock.tick``: advance; with ``final`` close every unit begun by then."""
        out = self.advance(ms) if ms is not None else []
        if final:
            until = ms if ms is not None else self.clock_ms
            if until is None:
                return out
            self.final_ms = until if self.final_ms is None else max(self.final_ms, until)
            keep, due = [], sorted(self._due)
            for entry in due:
                if entry[1] <= until:
                    *_, account, kind, pkind, pkey = entry
                    out += self._close((account, kind, Period(pkind, pkey)))
                else:
                    keep.append(entry)
            self._due = keep
            heapq.heapify(self._due)
        return out

    def finish(self) -> list[Charge]:
        """End of input: close every unit that began at or before the clock."""
        return self.tick(None, final=True)

    def _close(self, key: UnitKey) -> list[Charge]:
        if self.closed.get(key):
            return []
        self.closed[key] = True
        return self.rate_unit(key)

    def _prune(self, before_ms: int) -> None:
        """Forget what no event inside the horizon can change any more."""
        self.dedupe.prune(before_ms)
        for (family, _period_key, _account), apps in self.states.items():
            meter = METERS[family]
            if meter.registry:
                for state in apps.values():
                    meter.prune(state, before_ms)

    # -- rating --------------------------------------------------------------------------

    def view(self, account: str) -> AccountView:
        view = self._views.get(account)
        if view is None:
            ids = tuple(self._accounts.get(account, ()))
            view = AccountView(account, self.apps, ids, self.settings.catalog)
            self._views[account] = view
        return view

    def summaries(self, account: str, kind: str, period: Period) -> dict[int, Any]:
        unit = UNITS[kind]
        meter = METERS[unit.family]
        if kind == "relay_monthly":
            out: dict[int, dict[str, Any]] = {}
            for day in period.days():
                for app, state in self.states.get(("relay", day.key, account), {}).items():
                    out.setdefault(app, {})[day.key] = state
            return out
        if meter.registry:
            states = self.states.get((unit.family, "", account), {})
            found = {app: meter.summary(s, period) for app, s in states.items()}
            return {app: s for app, s in found.items() if s["points"] or s["days"]}
        states = self.states.get((unit.family, period.key, account), {})
        return {app: meter.summary(s, period) for app, s in states.items()}

    def rate_unit(self, key: UnitKey) -> list[Charge]:
        """Rate a unit from its cumulative state; emit what changed since the last revision."""
        account, kind, period = key
        known = self.unit_charges.setdefault(key, set())
        previous = {cid: self.emitted[cid] for cid in known}
        charges = rate_unit(
            account, kind, period, self.summaries(account, kind, period), self.view(account),
            self.ledgers.setdefault(account, PackageLedger()), previous,
            self.clock_ms if self.clock_ms is not None else period.end_ms,
        )
        for charge in charges:
            self.emitted[charge.charge_id] = charge
            known.add(charge.charge_id)
            self.stats.charges += 1
            self.stats.revisions += charge.revision > 1
        return charges


def rate_lines(apps: AppDirectory, lines: Iterable[bytes], settings: BillingSettings | None = None,
               now: Callable[[], datetime] | None = None) -> tuple[list[Charge], list[Rejection], Biller]:
    """Rate a whole input offline: every line in order, then close what began.

    A line's terminator is not part of its message (as on Kafka): it neither counts
    towards the size limits nor appears in a quarantined payload."""
    biller = Biller(apps, settings, now) if now else Biller(apps, settings)
    charges: list[Charge] = []
    rejections: list[Rejection] = []
    for raw in lines:
        if not raw.strip():
            continue
        for output in biller.process(raw.rstrip(b"\r\n")):
            (charges if isinstance(output, Charge) else rejections).append(output)  # type: ignore[arg-type]
    charges += biller.finish()
    return charges, rejections, biller

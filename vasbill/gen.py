"""Synthetic, realistic usage for ``vasbill gen`` (SPEC §9): N accounts over one Beijing month.

Deterministic: everything is drawn from one ``random.Random(seed)`` in a fixed order and no
wall clock is read, so the same options give the same bytes. Accounts ``acct-1``..``acct-N``
own 1-3 SDKAppIDs each. Account 2 bills relay by daily peak bandwidth, account 3 by the
monthly 95th percentile, account 5 by the monthly average daily peak (both with contract
prices); the others by traffic. The first app of account 1 is on the IM ``pro`` plan and
holds a CSS traffic package bought mid-month plus VOD and transcoding packages; the first
app of the last account has transcoding and moderation disabled.

Usage follows a diurnal curve (low at 04:00 Beijing, peak at 21:00). Good events come out
sorted by time (ties in generation order); with ``bad`` about 0.5 % extra lines are put at
seeded positions: exact duplicates, late events (a few days old), malformed JSON, schema
errors, an unknown SDKAppID, a disabled service and one event in 2099.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from rating.periods import Period
from topics.reasons import VasbillError
from topics.timefmt import BEIJING

BASE_APP_ID = 1_400_000_000
UNKNOWN_APP_ID = BASE_APP_ID + 99_999
DAY = 86_400
BUCKET = 300
OVERSEAS = ("ap1", "na", "eu")
CONTRACT_PRICES = {"mainland": "28.00", "ap1": "45.00", "na": "40.00", "eu": "40.00"}
LATE_TYPES = ("relay.traffic", "vod.traffic", "snapshot.count", "moderation.count", "transcode.usage")
RESOLUTIONS = ((640, 360), (1280, 720), (1920, 1080), (2560, 1440), (3840, 2160), (1280, 480))
Event = dict[str, Any]


@dataclass(frozen=True)
class GenOptions:
    accounts: int = 5
    month: str = "2026-08"
    seed: int = 1
    scale: float = 1.0
    bad: bool = True


@dataclass
class App:
    app_id: int
    account: str
    relay_billing: str
    zones: list[str]
    services: dict[str, bool]
    im_plan: str = "trtc_trial"
    packages: list[tuple[str, str, int]] = field(default_factory=list)  # kind, size, bought

    def document(self, effective_from: str) -> dict[str, Any]:
        prices = {z: CONTRACT_PRICES[z] for z in self.zones} if "monthly" in self.relay_billing else {}
        return {
            "sdk_app_id": self.app_id, "account_id": self.account, "effective_from": effective_from,
            "services": self.services, "relay_billing": self.relay_billing,
            "contract_prices": prices, "im_plan": self.im_plan, "catalog": None,
            "packages": [
                {"package_id": f"pkg-{self.app_id}-{i}", "kind": kind, "size": size,
                 "purchased_at": iso(bought), "expires_at": None}
                for i, (kind, size, bought) in enumerate(self.packages, 1)
            ],
        }


def iso(t: int) -> str:
    """Epoch seconds as Beijing RFC 3339 text."""
    return datetime.fromtimestamp(t, BEIJING).isoformat()


def diurnal(t: int) -> float:
    """Audience share at epoch second ``t``: 0.02 at 04:00 Beijing, 1.0 at 21:00."""
    hour = ((t + 8 * 3600) % DAY) / 3600
    if 4 <= hour < 21:
        share = (1 - math.cos(math.pi * (hour - 4) / 17)) / 2
    else:
        share = (1 + math.cos(math.pi * ((hour - 21) % 24) / 7)) / 2
    return 0.02 + 0.98 * share


class Generator:
    """Draws one month of usage; ``out`` collects (epoch second, event) in generation order."""

    def __init__(self, options: GenOptions) -> None:
        if options.accounts < 1:
            raise VasbillError("--accounts must be at least 1")
        if options.scale <= 0:
            raise VasbillError("--scale must be positive")
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", options.month):
            raise VasbillError(f"--month must be YYYY-MM, not {options.month!r}")
        self.options = options
        self.rng = random.Random(options.seed)
        period = Period("month", options.month)
        self.start = int(period.start.timestamp())
        self.end = int(period.end.timestamp())
        self.days = period.days_in
        self.apps: list[App] = []
        self.out: list[tuple[int, Event]] = []
        self.times: list[int] = []  # epoch seconds of the ordered good events
        self.relay_at: list[int] = []  # indexes of the ordered relay.traffic events
        self.tasks = 0

    # -- accounts ----------------------------------------------------------------------

    def make_apps(self) -> list[dict[str, Any]]:
        rng, n = self.rng, self.options.accounts
        modes = {2: "bandwidth_daily_peak", 3: "bandwidth_monthly_95"}
        if n >= 5:
            modes[5] = "bandwidth_monthly_avg_daily_peak"
        docs = []
        for a in range(1, n + 1):
            effective = iso(self.start - rng.randint(3, 60) * DAY)
            for k in range(rng.randint(1, 3)):
                zones = ["mainland"] + ([rng.choice(OVERSEAS)] if rng.random() < 0.45 else [])
                services = {s: True for s in ("relay", "recording", "transcode", "snapshot",
                                              "moderation", "vod", "im")}
                if a == n and k == 0:
                    services["transcode"] = services["moderation"] = False
                elif rng.random() < 0.15:
                    services[rng.choice(("snapshot", "moderation", "vod"))] = False
                app = App(BASE_APP_ID + len(self.apps) + 1, f"acct-{a}",
                          modes.get(a, "traffic"), zones, services)
                if a == 1 and k == 0:
                    app.im_plan = "pro"
                    app.packages += [("css_traffic", "1000", self.start + 14 * DAY + 10 * 3600),
                                     ("transcode_standard", "100", self.start - 20 * DAY)]
                if k == 0 and a % 2 == 1:
                    app.packages += [("vod_storage", "200", self.start - 40 * DAY),
                                     ("vod_traffic", "120", self.start + 3 * DAY + 15 * 3600)]
                self.apps.append(app)
                docs.append(app.document(effective))
        return docs

    # -- events ------------------------------------------------------------------------

    def emit(self, app: App, t: int, event_type: str, /, **fields: Any) -> None:
        self.out.append((t, {"event_id": "", "sdk_app_id": app.app_id, "type": event_type,
                             "time": iso(t), **fields}))

    def run(self) -> None:
        for app in self.apps:
            on = app.services
            if on["relay"]:
                self.relay(app)
            if on["transcode"]:
                self.transcode(app)
            if on["snapshot"] or on["moderation"]:
                self.images(app)
            if on["vod"]:
                self.vod(app)
            self.im(app)

    def sessions(self, always_on: bool) -> list[tuple[int, int]]:
        """Live intervals of a stream in the month: [start, end) epoch seconds."""
        rng = self.rng
        if always_on:
            return [(self.start, self.end)]
        out = []
        for d in range(self.days):
            if rng.random() < 0.15:
                continue
            begin = self.start + d * DAY + rng.randint(17 * 12, 22 * 12) * BUCKET
            out.append((begin, begin + rng.randint(24, 96) * BUCKET))
        return out

    def relay(self, app: App) -> None:
        rng = self.rng
        for j in range(max(1, round(rng.randint(1, 3) * self.options.scale))):
            stream = f"{app.app_id}_live_{j + 1}"
            zones = [rng.choice(app.zones) if rng.random() < 0.2 else app.zones[0]]
            if len(app.zones) > 1 and rng.random() < 0.5:
                zones = list(dict.fromkeys(zones + [app.zones[1]]))
            shares = {z: (1.0 if z == "mainland" else rng.uniform(0.1, 0.5)) for z in zones}
            mbps = rng.choice((1.0, 1.5, 2.0, 2.5, 3.0))
            viewers = 10 ** rng.uniform(1.2, 3.4)
            product = "leb" if rng.random() < 0.2 else "standard"
            push = rng.random() < 0.15
            always_on = rng.random() < 0.25
            recorded = app.services["recording"] and rng.random() < 0.6
            for begin, end in self.sessions(always_on):
                day_boost = {5: 1.3, 6: 1.25}.get(datetime.fromtimestamp(begin, BEIJING).weekday(), 1.0)
                for t in range(begin, min(end, self.end), BUCKET):
                    curve = diurnal(t) * day_boost
                    for zone, share in shares.items():
                        audience = round(viewers * share * curve * rng.lognormvariate(0, 0.2))
                        if audience == 0 and rng.random() < 0.7:
                            continue
                        size = round(audience * mbps * 1e6 * BUCKET / 8 * rng.uniform(0.92, 1.0))
                        self.emit(app, t, "relay.traffic", stream_id=stream, zone=zone,
                                  bytes=size, interval_s=BUCKET, direction="down", product=product,
                                  source="viewer")
                    if push:
                        self.emit(app, t, "relay.traffic", stream_id=stream, zone=zones[0],
                                  bytes=round(mbps * 1e6 * BUCKET / 8 * rng.uniform(0.97, 1.0)),
                                  interval_s=BUCKET, direction="up")
                    if recorded and not always_on:
                        self.emit(app, t, "relay.traffic", stream_id=stream, zone="mainland",
                                  bytes=round(mbps * 1e6 * BUCKET / 8), interval_s=BUCKET,
                                  source="recording")
                if recorded:
                    self.recording(app, stream, begin, end)

    def recording(self, app: App, stream: str, begin: int, end: int) -> None:
        rng = self.rng
        if end - begin > DAY:  # an always-on stream: record the evening show of each day
            for d in range(self.days):
                if rng.random() < 0.5:
                    show = self.start + d * DAY + rng.randint(19, 21) * 3600
                    self.recording(app, stream, show, show + rng.randint(1800, 3 * 3600))
            return
        formats = rng.choices((["mp4"], ["hls"], ["mp4", "hls"], ["flv"]), (50, 25, 20, 5))[0]
        for fmt in formats:
            self.tasks += 1
            task = f"rec-{app.app_id}-{self.tasks}"
            t = begin + rng.randint(1, 40)
            stop = end + rng.randint(5, 90)
            stale = rng.random() < 0.03
            if stale:
                stop = t + (stop - t) // 2
            self.emit(app, t, "recording.start", task_id=task, stream_id=stream, format=fmt)
            while True:
                t += rng.randint(300, 600)
                if t >= stop:
                    break
                self.emit(app, t, "recording.heartbeat", task_id=task, stream_id=stream, format=fmt)
            if not stale:
                self.emit(app, stop, "recording.stop", task_id=task, stream_id=stream, format=fmt)

    def transcode(self, app: App) -> None:
        rng = self.rng
        for d in range(self.days):
            for _ in range(rng.randint(1, 6)):
                self.tasks += 1
                t = self.start + d * DAY + rng.randint(0, DAY - 1)
                kind = rng.choices(("standard", "top_speed", "audio"), (70, 15, 15))[0]
                fields: dict[str, Any] = {"task_id": f"tc-{app.app_id}-{self.tasks}", "kind": kind}
                if kind != "audio":
                    width, height = rng.choice(RESOLUTIONS)
                    fields.update(codec=rng.choices(("h264", "h265"), (75, 25))[0],
                                  width=width, height=height)
                triggers = ("transcode", "mix") if kind == "audio" else ("transcode", "watermark", "mix")
                self.emit(app, t, "transcode.usage", **fields, seconds=rng.randint(60, 1800),
                          trigger=rng.choice(triggers))

    def images(self, app: App) -> None:
        rng = self.rng
        daily = 10 ** rng.uniform(0.8, 2.6) * (3 if app.im_plan == "pro" else 1)
        checked = rng.uniform(0.3, 1.0)
        for d in range(self.days):
            for _ in range(rng.randint(2, 4)):
                t = self.start + d * DAY + rng.randint(0, DAY - 1)
                count = round(daily / 3 * rng.uniform(0.5, 1.5))
                if app.services["snapshot"]:
                    self.emit(app, t, "snapshot.count", count=count)
                if app.services["moderation"]:
                    self.emit(app, t + 1, "moderation.count", count=round(count * checked))

    def vod(self, app: App) -> None:
        rng = self.rng
        series = [("standard", "mainland", 10 ** rng.uniform(9.5, 12))]
        if rng.random() < 0.3:
            series.append(("infrequent", "mainland", 10 ** rng.uniform(10, 12)))
        if len(app.zones) > 1 and rng.random() < 0.5:
            series.append(("standard", "overseas", 10 ** rng.uniform(9, 11)))
        for storage_class, area, stored in series:
            growth = rng.uniform(0.005, 0.04)
            t = self.start + rng.randint(0, 3 * 3600)
            while t < self.end:
                stored *= 1 + growth * rng.uniform(0.3, 1.7) / 6
                if rng.random() < 0.02:
                    stored *= rng.uniform(0.6, 0.9)  # a cleanup of old recordings
                self.emit(app, t, "vod.storage", storage_class=storage_class, area=area,
                          bytes=round(stored))
                t += rng.randint(3, 5) * 3600
        other = app.zones[1] if len(app.zones) > 1 else rng.choice(OVERSEAS)
        for d in range(self.days):
            for zone in ("mainland", other):
                for _ in range(rng.randint(1, 4) if zone == "mainland" else rng.randint(0, 2)):
                    t = self.start + d * DAY + rng.randint(0, DAY // BUCKET - 1) * BUCKET
                    self.emit(app, t, "vod.traffic", zone=zone, bytes=round(10 ** rng.uniform(8, 10.7)),
                              interval_s=BUCKET)

    def im(self, app: App) -> None:
        rng = self.rng
        pro = app.im_plan == "pro"
        base = rng.uniform(60_000, 80_000) if pro else 10 ** rng.uniform(1.5, 4)
        spike = rng.randrange(self.days)
        for d in range(self.days):
            day = self.start + d * DAY
            dau = round(base * rng.uniform(0.85, 1.15) * (2.0 if pro and d == spike else 1))
            t = day + DAY - 60 if rng.random() < 0.5 else day + DAY + 300
            date = datetime.fromtimestamp(day, BEIJING).date().isoformat()
            self.emit(app, t, "im.dau", date=date, dau=dau)
        groups = base / 5 * rng.uniform(0.8, 1.2)
        for d in sorted(rng.sample(range(self.days), 3)) + [self.days - 1]:
            groups *= rng.uniform(1.0, 1.1)
            self.emit(app, self.start + d * DAY + 23 * 3600, "im.groups", count=round(groups))

    # -- ordering and bad lines --------------------------------------------------------

    def ordered(self) -> list[Event]:
        """Good events by time (stable), each with its per-app ``event_id``."""
        self.out.sort(key=lambda pair: pair[0])
        self.times = [t for t, _ in self.out]
        seq: dict[int, int] = {}
        for _, event in self.out:
            app = event["sdk_app_id"]
            seq[app] = seq.get(app, 0) + 1
            event["event_id"] = f"{app}-{seq[app]}"
        return [event for _, event in self.out]

    def bad_lines(self, good: list[Event]) -> list[tuple[int, Event | bytes]]:
        """(insert before good index, line) for every bad line, in a seeded order."""
        rng, n = self.rng, len(good)
        kinds = ["duplicate", "late", "malformed", "schema", "unknown_app", "disabled", "future"]
        extra = max(0, round(n * 0.005) - len(kinds))
        kinds += rng.choices(kinds[:6], (40, 30, 8, 12, 5, 5), k=extra)
        late_from = min(bisect_left(self.times, self.start + 7 * DAY), n - 1)
        self.relay_at = [i for i, e in enumerate(good) if e["type"] == "relay.traffic"]
        out: list[tuple[int, Event | bytes]] = []
        for i, kind in enumerate(kinds):
            pos = rng.randrange(late_from if kind == "late" else 1, n)
            out.append((pos, self.bad_line(kind, i, pos, good)))
        out.sort(key=lambda pair: pair[0])  # stable: equal positions keep their drawing order
        return out

    def bad_line(self, kind: str, i: int, pos: int, good: list[Event]) -> Event | bytes:
        """One bad line of ``kind`` to be put before ``good[pos]`` (the ``i``-th bad line)."""
        rng, src = self.rng, good[pos]
        if kind == "duplicate":  # the same event re-sent a little later
            return good[max(0, pos - rng.randint(1, 3000))]
        if kind == "late":  # a new record for an interval a few days back
            back = bisect_left(self.times, self.times[pos] - rng.randint(2, 6) * DAY)
            while back < pos and good[back]["type"] not in LATE_TYPES:
                back += 1
            event = dict(good[back], event_id=f"{good[back]['sdk_app_id']}-late-{i}")
            for key in ("bytes", "count", "seconds"):
                if key in event:
                    event[key] = max(1, round(event[key] * rng.uniform(0.05, 0.5)))
            return event
        if kind == "malformed":
            raw = orjson.dumps(src)
            return repr(src).encode() if rng.random() < 0.3 else raw[: rng.randint(10, len(raw) - 2)]
        if kind == "schema":
            before = self.relay_at[max(0, bisect_left(self.relay_at, pos + 1) - 1)]
            event = dict(good[before], event_id=f"{good[before]['sdk_app_id']}-bad-{i}")
            how = rng.choice(("missing", "negative", "no_offset", "enum"))
            if how == "missing":
                del event["stream_id"]
            elif how == "negative":
                event["bytes"] = -rng.randint(1, 10**9)
            elif how == "no_offset":
                event["time"] = event["time"][:19]
            else:
                event["zone"] = "moon"
            return event
        if kind == "unknown_app":
            return dict(src, sdk_app_id=UNKNOWN_APP_ID, event_id=f"{UNKNOWN_APP_ID}-{i}")
        if kind == "disabled":  # transcoding for an app that has not enabled it
            app = rng.choice([a for a in self.apps if not a.services["transcode"]])
            return {"event_id": f"{app.app_id}-{kind}-{i}", "sdk_app_id": app.app_id,
                    "type": "transcode.usage", "time": src["time"], "task_id": f"tc-{app.app_id}-x{i}",
                    "kind": "standard", "codec": "h264", "width": 1280, "height": 720, "seconds": 600,
                    "trigger": "transcode"}
        far = f"2099-{self.options.month[5:]}-15T12:00:00+08:00"  # kind == "future"
        return dict(src, event_id=f"{src['sdk_app_id']}-future-{i}", time=far)


def merged(good: list[Event], bad: list[tuple[int, Event | bytes]]) -> Iterator[Event | bytes]:
    j = 0
    for i, event in enumerate(good):
        while j < len(bad) and bad[j][0] == i:
            yield bad[j][1]
            j += 1
        yield event
    for _, line in bad[j:]:
        yield line


def generate(options: GenOptions) -> tuple[list[dict[str, Any]], Iterator[Event | bytes]]:
    """App config documents (SPEC §4) and the month's event lines, deterministic for the options."""
    gen = Generator(options)
    apps = gen.make_apps()
    gen.run()
    good = gen.ordered()
    bad = gen.bad_lines(good) if options.bad and len(good) > 1 else []
    return apps, merged(good, bad)

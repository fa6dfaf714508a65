"""IM bundled with TRTC: trial edition free, paid plans' overage per app (SPEC §5, pricing §8)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

from rating.biller import rate_lines
from rating.meters import IM
from rating.periods import Period
from topics.appconfig import AppConfig, AppDirectory
from topics.events import parse_event

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-im"
APP = 1400000001
APP2 = 1400000002
_ids = itertools.count()


def app_doc(sdk_app_id: int = APP, **extra: Any) -> dict[str, Any]:
    # IM is on by default: no services listed
    return {"sdk_app_id": sdk_app_id, "account_id": ACCOUNT, **extra}


def dau(date: str, n: int, app: int = APP) -> dict[str, Any]:
    return {"event_id": f"im-{next(_ids)}", "sdk_app_id": app, "type": "im.dau",
            "time": f"{date}T23:59:00+08:00", "date": date, "dau": n}


def groups(time: str, n: int, app: int = APP) -> dict[str, Any]:
    return {"event_id": f"im-{next(_ids)}", "sdk_app_id": app, "type": "im.groups", "time": time, "count": n}


def rate(events: list[dict[str, Any]], *docs: dict[str, Any]) -> dict[str, Any]:
    apps = AppDirectory(AppConfig.from_dict(d) for d in (docs or (app_doc(),)))
    charges, rejections, _ = rate_lines(apps, [orjson.dumps(e) for e in events], None, now=lambda: NOW)
    assert rejections == []
    out = {c.item: c for c in charges}
    assert len(out) == len(charges)
    return out


def test_trial_is_free_but_reports_usage() -> None:
    got = rate([dau("2026-08-03", 250_000), dau("2026-08-04", 300_000), groups("2026-08-20T10:00:00+08:00", 500_000)])
    assert set(got) == {"im.dau_overage", "im.group_overage"}
    d, g = got["im.dau_overage"], got["im.group_overage"]
    assert d.charge_id == f"im/im.dau_overage/{ACCOUNT}/2026-08"
    assert d.product == g.product == "im"
    assert d.amount == 0 and g.amount == 0
    assert d.usage_by_app == {str(APP): {"peak_dau": "300000"}}
    assert g.usage_by_app == {str(APP): {"groups": "500000"}}
    [line] = d.lines
    assert line.dimensions == {"sdk_app_id": str(APP), "plan": "trtc_trial"}
    assert line.amount == 0


def test_no_im_usage_no_charge() -> None:
    assert rate([dau("2026-08-03", 0)]) == {}


def test_pro_dau_overage_2022() -> None:
    got = rate([dau("2026-08-03", 90_000), dau("2026-08-17", 125_000), dau("2026-08-30", 110_000)],
               app_doc(im_plan="pro"))
    charge = got["im.dau_overage"]
    [line] = charge.lines
    # peak 125,000 − 100,000 included = 25,000 → 3 started blocks of 10,000 × 1000
    assert line.quantity == 3
    assert line.unit_price == 1000
    assert charge.amount == 3000
    assert charge.usage_by_app == {str(APP): {"peak_dau": "125000"}}
    assert "im.group_overage" not in got  # zero groups, zero amount: nothing


def test_pro_dau_at_included_amount_is_free() -> None:
    got = rate([dau("2026-08-03", 100_000)], app_doc(im_plan="pro"))
    assert got["im.dau_overage"].amount == 0
    got = rate([dau("2026-08-03", 100_001)], app_doc(im_plan="pro"))
    assert got["im.dau_overage"].amount == 1000


def test_pro_dau_overage_2019() -> None:
    got = rate([dau("2021-06-03", 100_001)], app_doc(im_plan="pro"))
    charge = got["im.dau_overage"]
    assert charge.catalog == "tencent-2019"
    assert charge.amount == 10_000  # per started 100,000 over the included 100,000


def test_groups_at_month_end_are_the_latest_sample() -> None:
    events = [
        groups("2026-08-05T10:00:00+08:00", 150_000),
        groups("2026-08-20T10:00:00+08:00", 250_001),  # the month's maximum
        groups("2026-08-30T10:00:00+08:00", 120_000),  # the last sample
    ]
    got = rate(events, app_doc(im_plan="pro"))
    charge = got["im.group_overage"]
    assert charge.usage_by_app == {str(APP): {"groups": "120000"}}
    assert charge.lines[0].quantity == 1
    assert charge.amount == 1000  # ceil(20,000 / 100,000) × 1000, not 2 blocks


def test_groups_latest_by_event_time_not_arrival() -> None:
    events = [groups("2026-08-30T10:00:00+08:00", 120_000), groups("2026-08-05T10:00:00+08:00", 350_000)]
    got = rate(events, app_doc(im_plan="pro"))
    assert got["im.group_overage"].usage_by_app[str(APP)]["groups"] == "120000"
    assert got["im.group_overage"].amount == 1000


def test_dau_month_is_the_date_field() -> None:
    state = IM.initial()
    event = parse_event({"event_id": "x", "sdk_app_id": APP, "type": "im.dau",
                         "time": "2026-09-01T00:30:00+08:00", "date": "2026-08-31", "dau": 7})
    assert IM.fold(state, event) == [Period("month", "2026-08")]
    assert IM.summary(state, Period("month", "2026-08")) == {"peak_dau": 7, "groups": 0}


def test_day_reported_twice_keeps_the_larger() -> None:
    got = rate([dau("2026-08-03", 130_000), dau("2026-08-03", 105_000)], app_doc(im_plan="pro"))
    assert got["im.dau_overage"].usage_by_app[str(APP)]["peak_dau"] == "130000"
    assert got["im.dau_overage"].amount == 3000


def test_overage_per_app_one_charge_per_account() -> None:
    events = [dau("2026-08-03", 60_000, APP), dau("2026-08-03", 60_000, APP2)]
    got = rate(events, app_doc(APP, im_plan="pro"), app_doc(APP2, im_plan="pro"))
    charge = got["im.dau_overage"]
    # 120,000 for the account, but each app stays under its plan's 100,000
    assert charge.amount == 0
    assert [ln.dimensions["sdk_app_id"] for ln in charge.lines] == [str(APP), str(APP2)]


def test_trial_and_pro_apps_in_one_account() -> None:
    events = [dau("2026-08-03", 500_000, APP), dau("2026-08-03", 115_000, APP2)]
    got = rate(events, app_doc(APP), app_doc(APP2, im_plan="flagship"))
    charge = got["im.dau_overage"]
    lines = {ln.dimensions["sdk_app_id"]: ln for ln in charge.lines}
    assert lines[str(APP)].dimensions["plan"] == "trtc_trial" and lines[str(APP)].amount == 0
    assert lines[str(APP2)].dimensions["plan"] == "flagship" and lines[str(APP2)].amount == 2000
    assert charge.amount == 2000
    assert charge.usage_by_app == {str(APP): {"peak_dau": "500000"}, str(APP2): {"peak_dau": "115000"}}


def test_amount_is_decimal() -> None:
    got = rate([dau("2026-08-03", 125_000)], app_doc(im_plan="pro"))
    assert isinstance(got["im.dau_overage"].amount, Decimal)

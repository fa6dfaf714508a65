"""VOD storage: daily peak of step functions per class and area; capacity packages (SPEC §5, §8)."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fixtures.factories import directory, make_app

from rating.biller import rate_lines
from rating.meters import VOD_STORAGE
from rating.meters.storage import add_steps, peak
from rating.periods import Period
from topics.appconfig import SERVICES
from topics.events import parse_event
from topics.timefmt import parse_time, to_ms

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-vod"
APP = 1400000001
APP2 = 1400000002
GB = 10**9
DAY = "2026-08-03"
_ids = itertools.count()


def app_doc(sdk_app_id: int = APP, **extra: Any) -> dict[str, Any]:
    return make_app(sdk_app_id, ACCOUNT, SERVICES, **extra)


def sample(clock: str, gb: int | str, app: int = APP, day: str = DAY, **fields: Any) -> dict[str, Any]:
    num_bytes = int(Decimal(gb) * GB)
    return {"event_id": f"st-{next(_ids)}", "sdk_app_id": app, "type": "vod.storage",
            "time": f"{day}T{clock}:00+08:00", "bytes": num_bytes, **fields}


def rate(events: list[dict[str, Any]], *docs: dict[str, Any]) -> list[Any]:
    apps = directory(*(docs or (app_doc(),)))
    charges, rejections, _ = rate_lines(apps, [orjson.dumps(e) for e in events], None, now=lambda: NOW)
    assert rejections == []
    return charges


def ms(clock: str, day: str = DAY) -> int:
    return to_ms(parse_time(f"{day}T{clock}:00+08:00"))


def summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    state = VOD_STORAGE.initial()
    for e in events:
        VOD_STORAGE.fold(state, parse_event(e))
    return VOD_STORAGE.summary(state, Period("day", DAY))


# -- one app -------------------------------------------------------------------------------


def test_single_app_daily_peak_is_max_of_samples() -> None:
    events = [sample("01:00", 100), sample("12:00", 300), sample("18:00", 200)]
    steps = summary(events)["steps"]["standard|mainland"]
    assert peak(steps) == 300 * GB
    [charge] = rate(events)
    assert charge.charge_id == f"vod/vod.storage/{ACCOUNT}/{DAY}"
    [line] = charge.lines
    assert line.dimensions == {"storage_class": "standard", "area": "mainland"}
    assert line.quantity == 300
    assert line.unit_price == Decimal("0.0048")
    assert charge.amount == Decimal("1.44")
    assert charge.usage_by_app == {str(APP): {"standard.mainland": "300"}}


def test_samples_out_of_order_give_the_same_steps() -> None:
    a = [sample("01:00", 100), sample("12:00", 300), sample("18:00", 200)]
    b = [a[2], a[0], a[1]]
    assert summary(a) == summary(b)


def test_two_samples_at_one_instant_larger_counts() -> None:
    steps = summary([sample("12:00", 5), sample("12:00", 7), sample("12:00", 6)])["steps"]["standard|mainland"]
    assert steps == [[ms("12:00"), 7 * GB]]


def test_days_stand_alone() -> None:
    charges = rate([sample("23:00", 500), sample("01:00", 100, day="2026-08-04")])
    assert [(c.charge_id.rsplit("/", 1)[1], c.lines[0].quantity) for c in charges] == [
        ("2026-08-03", 500),
        ("2026-08-04", 100),
    ]


# -- the account: sum of step functions ----------------------------------------------------


def test_two_apps_account_peak_is_max_of_summed_steps() -> None:
    events = [
        sample("00:00", 100, app=APP), sample("12:00", 10, app=APP),
        sample("06:00", 10, app=APP2), sample("18:00", 100, app=APP2),
    ]
    one = summary(events[:2])["steps"]["standard|mainland"]
    two = summary(events[2:])["steps"]["standard|mainland"]
    both = add_steps(one, two)
    # app 1 holds 100 until 12:00 while app 2 holds 10 from 06:00 → 110 at 06:00;
    # app 1 holds 10 from 12:00 while app 2 reaches 100 at 18:00 → 110 at 18:00
    assert both == [
        [ms("00:00"), 100 * GB], [ms("06:00"), 110 * GB], [ms("12:00"), 20 * GB], [ms("18:00"), 110 * GB],
    ]
    assert peak(both) == 110 * GB  # not 200 (sum of peaks), not 100 (max of one sample)
    [charge] = rate(events, app_doc(APP), app_doc(APP2))
    assert charge.lines[0].quantity == 110
    assert charge.amount == Decimal("0.528")
    assert charge.usage_by_app == {str(APP): {"standard.mainland": "100"},
                                   str(APP2): {"standard.mainland": "100"}}


def test_merge_is_zero_before_first_step() -> None:
    a = [[ms("10:00"), 5]]
    b = [[ms("08:00"), 3], [ms("12:00"), 0]]
    assert add_steps(a, b) == [[ms("08:00"), 3], [ms("10:00"), 8], [ms("12:00"), 5]]
    assert add_steps(b, a) == add_steps(a, b)
    merged = VOD_STORAGE.merge({"steps": {"standard|mainland": a}}, {"steps": {"archive|overseas": b}})
    assert merged == {"steps": {"standard|mainland": a, "archive|overseas": b}}


# -- classes and areas ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage_class", "area", "price"),
    [
        ("standard", "mainland", "0.0048"),
        ("infrequent", "mainland", "0.0024"),
        ("archive", "mainland", "0.0012"),
        ("deep_archive", "mainland", "0.0004"),
        ("standard", "overseas", "0.0058"),
        ("infrequent", "overseas", "0.0036"),
        ("archive", "overseas", "0.0018"),
        ("deep_archive", "overseas", "0.0006"),
    ],
)
def test_class_and_area_prices_2022(storage_class: str, area: str, price: str) -> None:
    [charge] = rate([sample("10:00", 1000, storage_class=storage_class, area=area)])
    [line] = charge.lines
    assert line.dimensions == {"storage_class": storage_class, "area": area}
    assert line.unit_price == Decimal(price)
    assert charge.amount == Decimal(price) * 1000


def test_classes_and_areas_peak_separately() -> None:
    [charge] = rate([
        sample("01:00", 100), sample("02:00", 50, storage_class="archive"),
        sample("03:00", 10, area="overseas"),
    ])
    quantities = {(ln.dimensions["storage_class"], ln.dimensions["area"]): ln.quantity for ln in charge.lines}
    assert quantities == {("standard", "mainland"): 100, ("archive", "mainland"): 50,
                          ("standard", "overseas"): 10}
    assert charge.amount == Decimal("0.48") + Decimal("0.06") + Decimal("0.058")


def test_2019_one_class_example() -> None:
    [charge] = rate([sample("10:00", 100, day="2021-06-03")])
    assert charge.catalog == "tencent-2019"
    assert charge.amount == Decimal("0.48")
    [charge] = rate([sample("10:00", 100, day="2021-06-03", storage_class="archive", area="overseas")])
    assert charge.amount == Decimal("0.48")


# -- capacity packages ---------------------------------------------------------------------


def with_package(size: str = "50", bought: str = "2026-08-01T09:00:00+08:00", **extra: Any) -> dict[str, Any]:
    return app_doc(packages=[{"package_id": "cap-1", "kind": "vod_storage", "size": size,
                              "purchased_at": bought, "expires_at": None}], **extra)


def test_capacity_package_covers_mainland_standard_up_to_its_size() -> None:
    [charge] = rate([sample("10:00", 80)], with_package("50"))
    [line] = charge.lines
    assert line.quantity == 80
    assert line.package_deducted == 50
    assert dict(line.packages) == {"cap-1": Decimal(50)}
    assert line.amount == Decimal("0.144")  # 30 GB × 0.0048


def test_capacity_package_covers_all_below_its_size() -> None:
    [charge] = rate([sample("10:00", 40)], with_package("50"))
    assert charge.lines[0].package_deducted == 40
    assert charge.amount == 0
    assert charge.lines[0].quantity == 40  # usage is still reported


def test_capacity_is_not_a_draining_balance() -> None:
    events = [sample("10:00", 80, day=d) for d in ("2026-08-03", "2026-08-04", "2026-08-05")]
    charges = rate(events, with_package("50"))
    assert [c.lines[0].package_deducted for c in charges] == [50, 50, 50]
    assert [c.amount for c in charges] == [Decimal("0.144")] * 3


def test_capacity_package_does_not_cover_other_classes_or_areas() -> None:
    [charge] = rate([sample("10:00", 80, area="overseas"), sample("10:00", 80, storage_class="infrequent")],
                    with_package("50"))
    assert all(ln.package_deducted == 0 for ln in charge.lines)
    assert charge.amount == Decimal("0.464") + Decimal("0.192")


def test_capacity_packages_add_up() -> None:
    doc = app_doc(packages=[
        {"package_id": "a", "kind": "vod_storage", "size": "50", "purchased_at": "2026-08-01T00:00:00+08:00"},
        {"package_id": "b", "kind": "vod_storage", "size": "5", "purchased_at": "2026-07-01T00:00:00+08:00",
         "expires_at": "2026-09-01T00:00:00+08:00"},
    ])
    [charge] = rate([sample("10:00", 80)], doc)
    line = charge.lines[0]
    assert line.package_deducted == 55
    assert dict(line.packages) == {"b": Decimal(5), "a": Decimal(50)}  # earliest expiry first
    assert line.amount == Decimal("0.12")


def test_capacity_package_not_before_purchase_day() -> None:
    charges = rate([sample("10:00", 80, day="2026-08-02"), sample("10:00", 80, day="2026-08-03")],
                   with_package("50", bought="2026-08-03T23:00:00+08:00"))
    assert [c.lines[0].package_deducted for c in charges] == [0, 50]

"""Properties of rating: order inside the grace, record splitting, Decimal only, merge laws."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating.biller import rate_lines
from rating.meters import RECORDING, RELAY, VOD_STORAGE
from rating.meters.bandwidth import dim_key
from rating.meters.sums import TRANSCODE, VOD_TRAFFIC
from rating.money import D
from rating.periods import BUCKETS_PER_DAY
from topics.appconfig import SERVICES, AppConfig, AppDirectory
from topics.charges import Charge
from topics.events import ZONES

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
ACCOUNT = "acct-prop"
APP = 1400000001
APP2 = 1400000002
DAY = "2026-08-03"
FAST = settings(max_examples=40, deadline=None)


def directory(mode: str = "traffic") -> AppDirectory:
    packages = [
        {"package_id": "css", "kind": "css_traffic", "size": "300", "purchased_at": "2026-08-01T00:00:00+08:00"},
        {"package_id": "tc", "kind": "transcode_standard", "size": "1", "purchased_at": "2026-08-01T00:00:00+08:00"},
        {"package_id": "vt", "kind": "vod_traffic", "size": "20", "purchased_at": "2026-08-01T00:00:00+08:00"},
    ]
    docs = [
        {"sdk_app_id": app, "account_id": ACCOUNT, "services": {s: True for s in SERVICES},
         "relay_billing": mode, "contract_prices": {"mainland": "25", "ap1": "40"}, "im_plan": "pro",
         "packages": packages if app == APP else []}
        for app in (APP, APP2)
    ]
    return AppDirectory(AppConfig.from_dict(d) for d in docs)


def rate(apps: AppDirectory, events: list[dict[str, Any]]) -> list[Charge]:
    charges, rejections, _ = rate_lines(apps, [orjson.dumps(e) for e in events], None, now=lambda: NOW)
    assert rejections == []
    return charges


def final(charges: list[Charge]) -> dict[str, dict[str, Any]]:
    """The latest revision of each charge, without revision bookkeeping."""
    out: dict[str, dict[str, Any]] = {}
    for c in charges:
        out[c.charge_id] = c.content()
    return out


def at(seconds: int, day: str = DAY) -> str:
    return f"{day}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}+08:00"


# -- event strategies (all on DAY, event ids assigned later) --------------------------------

apps_ = st.sampled_from([APP, APP2])
second_of_day = st.integers(0, 86_399)

relay_events = st.builds(
    lambda app, t, n, zone, direction, product, source: {
        "sdk_app_id": app, "type": "relay.traffic", "time": at(t), "stream_id": "s", "zone": zone,
        "bytes": n, "direction": direction, "product": product, "source": source},
    apps_, second_of_day, st.integers(0, 200 * 10**9), st.sampled_from(["mainland", "ap1"]),
    st.sampled_from(["down", "down", "up"]), st.sampled_from(["standard", "leb"]),
    st.sampled_from(["viewer", "viewer", "recording"]),
)
transcode_events = st.builds(
    lambda app, t, s, kind, wh: {
        "sdk_app_id": app, "type": "transcode.usage", "time": at(t), "task_id": "t", "kind": kind,
        "seconds": s, **({} if kind == "audio" else {"codec": "h264", "width": wh[0], "height": wh[1]})},
    apps_, second_of_day, st.integers(0, 5000), st.sampled_from(["standard", "top_speed", "audio"]),
    st.sampled_from([(640, 480), (1280, 480), (1920, 1080), (3840, 2160)]),
)
storage_events = st.builds(
    lambda app, t, n, cls: {"sdk_app_id": app, "type": "vod.storage", "time": at(t), "bytes": n,
                            "storage_class": cls},
    apps_, second_of_day, st.integers(0, 10**12), st.sampled_from(["standard", "archive"]),
)
vod_traffic_events = st.builds(
    lambda app, t, n: {"sdk_app_id": app, "type": "vod.traffic", "time": at(t), "bytes": n, "zone": "mainland"},
    apps_, second_of_day, st.integers(0, 50 * 10**9),
)
image_events = st.builds(
    lambda app, t, n, kind: {"sdk_app_id": app, "type": kind, "time": at(t), "count": n},
    apps_, second_of_day, st.integers(0, 3000), st.sampled_from(["snapshot.count", "moderation.count"]),
)
im_events = st.one_of(
    st.builds(lambda app, t, n: {"sdk_app_id": app, "type": "im.groups", "time": at(t), "count": n},
              apps_, second_of_day, st.integers(0, 300_000)),
    st.builds(lambda app, n: {"sdk_app_id": app, "type": "im.dau", "time": at(86_000), "date": DAY, "dau": n},
              apps_, st.integers(0, 300_000)),
)


@st.composite
def recording_tasks(draw: st.DrawFn) -> list[dict[str, Any]]:
    task = f"task-{draw(st.integers(0, 5))}"
    app = draw(apps_)
    start = draw(st.integers(0, 80_000))
    out = [{"sdk_app_id": app, "type": "recording.start", "time": at(start), "task_id": task,
            "stream_id": task, "format": draw(st.sampled_from(["mp4", "hls"]))}]
    fmt = out[0]["format"]
    if draw(st.booleans()):
        beat = draw(st.integers(start, 86_399))
        out.append({**out[0], "type": "recording.heartbeat", "time": at(beat), "format": fmt})
    if draw(st.booleans()):
        stop = draw(st.integers(start, 86_399))
        out.append({**out[0], "type": "recording.stop", "time": at(stop), "format": fmt})
    return out


day_events = st.lists(
    st.one_of(relay_events.map(lambda e: [e]), transcode_events.map(lambda e: [e]),
              storage_events.map(lambda e: [e]), vod_traffic_events.map(lambda e: [e]),
              image_events.map(lambda e: [e]), im_events.map(lambda e: [e]), recording_tasks()),
    min_size=1, max_size=25,
).map(lambda groups: [e for group in groups for e in group])


def with_ids(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "event_id": f"e{i}"} for i, e in enumerate(events)]


CLOSE_TRIGGER = {"event_id": "close", "sdk_app_id": APP, "type": "snapshot.count",
                 "time": "2026-08-04T03:00:00+08:00", "count": 0}


# -- (a) order inside the grace does not matter -------------------------------------------


@FAST
@given(events=day_events, data=st.data(), mode=st.sampled_from(["traffic", "bandwidth_daily_peak"]))
def test_reordering_inside_the_grace_gives_the_same_charges(
    events: list[dict[str, Any]], data: st.DataObject, mode: str
) -> None:
    events = with_ids(events)
    shuffled = data.draw(st.permutations(events))
    apps = directory(mode)
    one = rate(apps, [*events, CLOSE_TRIGGER])
    two = rate(apps, [*shuffled, CLOSE_TRIGGER])
    assert final(one) == final(two)
    # every event preceded its day's close: no revisions at all
    assert all(c.revision == 1 for c in one + two)


# -- (b) splitting a relay record inside its bucket ---------------------------------------


@FAST
@given(
    total=st.integers(0, 5 * 10**12),
    cuts=st.lists(st.integers(0, 5 * 10**12), max_size=5),
    bucket=st.integers(0, BUCKETS_PER_DAY - 1),
    offsets=st.lists(st.integers(0, 299), min_size=6, max_size=6),
    zone=st.sampled_from(ZONES),
    product=st.sampled_from(["standard", "leb"]),
    mode=st.sampled_from(["traffic", "bandwidth_daily_peak", "bandwidth_monthly_95",
                          "bandwidth_monthly_avg_daily_peak"]),
    others=st.lists(relay_events, max_size=5),
)
def test_splitting_a_record_in_its_bucket_changes_nothing(
    total: int, cuts: list[int], bucket: int, offsets: list[int], zone: str, product: str, mode: str,
    others: list[dict[str, Any]],
) -> None:
    points = sorted({min(c, total) for c in cuts} | {0, total})
    parts = [b - a for a, b in zip(points, points[1:], strict=False)] or [0]
    base = {"sdk_app_id": APP, "type": "relay.traffic", "stream_id": "s", "zone": zone, "product": product}
    start = bucket * 300
    whole = [{**base, "time": at(start + offsets[0]), "bytes": total}]
    split = [{**base, "time": at(start + offsets[i % 6]), "bytes": n, "interval_s": 60}
             for i, n in enumerate(parts)]
    apps = directory(mode)
    one = rate(apps, with_ids(others + whole))
    two = rate(apps, with_ids(others + split))
    assert final(one) == final(two)


# -- (c) money never touches float --------------------------------------------------------


def decimals_of(charge: Charge) -> list[Any]:
    values: list[Any] = [charge.amount, charge.previous_amount, charge.delta, charge.amount_rounded]
    for line in charge.lines:
        values += [line.quantity, line.unit_price, line.amount, line.factor, line.package_deducted]
        values += list(line.packages.values())
    return values


@FAST
@given(events=day_events, mode=st.sampled_from(["traffic", "bandwidth_monthly_95"]))
def test_charges_are_decimal_throughout(events: list[dict[str, Any]], mode: str) -> None:
    charges = rate(directory(mode), [*with_ids(events), CLOSE_TRIGGER])
    for charge in charges:
        assert all(type(v) is Decimal for v in decimals_of(charge)), charge
        assert charge.amount_rounded == charge.amount_rounded.quantize(Decimal("0.01"))
        doc = charge.to_dict()
        assert isinstance(doc["amount"], str) and "E" not in doc["amount"]
        for line in doc["lines"]:
            assert all(isinstance(line[k], str) and "E" not in line[k]
                       for k in ("quantity", "unit_price", "amount", "factor", "package_deducted"))
        for usage in doc["usage_by_app"].values():
            assert all(isinstance(v, str) and "E" not in v for v in usage.values())
        assert Charge.from_dict(orjson.loads(orjson.dumps(doc))) == charge


@pytest.mark.parametrize("value", [1.5, 0.1, float("nan"), 0.0])
def test_d_refuses_float(value: float) -> None:
    with pytest.raises(TypeError):
        D(value)  # type: ignore[arg-type]


def test_d_accepts_text_int_decimal() -> None:
    assert D("1.5") == Decimal("1.5")
    assert D(3) == Decimal(3)
    x = Decimal("0.0325")
    assert D(x) is x


# -- (d) merge laws -----------------------------------------------------------------------

relay_keys = st.sampled_from([dim_key(z, d, p, s) for z in ("mainland", "ap1") for d in ("down", "up")
                              for p in ("standard",) for s in ("viewer", "recording")])
sparse_array = st.dictionaries(st.integers(0, BUCKETS_PER_DAY - 1), st.integers(0, 10**12), max_size=6).map(
    lambda d: [d.get(i, 0) for i in range(BUCKETS_PER_DAY)]
)
relay_summaries = st.dictionaries(relay_keys, sparse_array, max_size=4).map(lambda b: {"buckets": b})
sum_summaries = st.dictionaries(st.sampled_from(["a", "b", "c", "standard|h264|1280|720"]),
                                st.integers(0, 10**15), max_size=4).map(lambda s: {"sums": s})
step_lists = st.dictionaries(st.integers(0, 10**6), st.integers(0, 10**12), max_size=5).map(
    lambda d: [[t, v] for t, v in sorted(d.items())]
)
storage_summaries = st.dictionaries(st.sampled_from(["standard|mainland", "archive|overseas"]), step_lists,
                                    max_size=2).map(lambda s: {"steps": {k: v for k, v in s.items() if v}})
recording_summaries = st.builds(
    lambda points, days, stale: {"points": points, "days": sorted(days), "stale": stale},
    st.dictionaries(st.integers(0, 8927).map(str), st.integers(1, 50), max_size=6),
    st.sets(st.sampled_from(["2026-08-01", "2026-08-02", "2026-08-31"])),
    st.integers(0, 5),
)

MERGES = [
    ("relay", RELAY.merge, relay_summaries),
    ("transcode", TRANSCODE.merge, sum_summaries),
    ("vod_traffic", VOD_TRAFFIC.merge, sum_summaries),
    ("storage", VOD_STORAGE.merge, storage_summaries),
    ("recording", RECORDING.merge, recording_summaries),
]


@pytest.mark.parametrize(("name", "merge", "strategy"), MERGES, ids=[m[0] for m in MERGES])
def test_merge_is_commutative_and_associative(name: str, merge: Any, strategy: Any) -> None:
    @settings(max_examples=30, deadline=None)
    @given(a=strategy, b=strategy, c=strategy)
    def check(a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]) -> None:
        before = copy.deepcopy((a, b, c))
        assert merge(a, b) == merge(b, a)
        assert merge(merge(a, b), c) == merge(a, merge(b, c))
        assert (a, b, c) == before  # merging never mutates its inputs

    check()


@FAST
@given(a=relay_summaries, b=relay_summaries)
def test_relay_merge_adds_point_wise(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = RELAY.merge(a, b)["buckets"]
    for key in set(a["buckets"]) | set(b["buckets"]):
        for i in range(BUCKETS_PER_DAY):
            expect = a["buckets"].get(key, [0] * BUCKETS_PER_DAY)[i] + b["buckets"].get(key, [0] * BUCKETS_PER_DAY)[i]
            assert merged[key][i] == expect


@FAST
@given(a=sum_summaries, b=sum_summaries)
def test_sum_merge_adds_key_wise(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = TRANSCODE.merge(a, b)["sums"]
    assert set(merged) == set(a["sums"]) | set(b["sums"])
    for key, value in merged.items():
        assert value == a["sums"].get(key, 0) + b["sums"].get(key, 0)

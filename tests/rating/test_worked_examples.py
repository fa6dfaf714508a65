"""Every public worked example of pricing/tencent.md, reproduced to the cent through the real
``vasbill rate`` command (SPEC §12 "Correct").

Each case builds app configs and usage events as a producer would send them, runs
``vasbill rate`` on files in tmp_path and compares the charges' ``amount_rounded`` (or, for
an item billed over several periods, the sum of their exact amounts rounded once).
Times are Beijing time. ``vasbill rate`` closes every period begun by the last event time,
and picks the catalog by the period's start date (tencent-2019 before 2022-01-04).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

import orjson
import pytest
from fixtures.factories import (
    ACCOUNT,
    APP,
    GB,
    audio,
    bj,
    bucket_bytes_for_mbps,
    cny,
    im_dau,
    im_groups,
    make_app,
    moderation,
    package,
    recording_task,
    relay,
    snapshot,
    total_of,
    transcode,
    vod_storage,
    vod_traffic,
)

# -- event builders for the examples ---------------------------------------------------------


def buckets(day: str, start: str, sizes: list[int], **kw: Any) -> list[dict[str, Any]]:
    """One relay.traffic record per consecutive 5-minute bucket from ``day start``."""
    hour, minute = (int(x) for x in start.split(":"))
    out = []
    for i, size in enumerate(sizes):
        total = hour * 60 + minute + 5 * i
        assert total < 24 * 60, "keep the records inside one Beijing day"
        out.append(relay(bj(f"{day} {total // 60:02d}:{total % 60:02d}"), size, **kw))
    return out


def tasks(start: str, stop: str, n: int, prefix: str, **kw: Any) -> list[dict[str, Any]]:
    """``n`` recording tasks of distinct streams, all active from ``start`` to ``stop``."""
    out = []
    for i in range(n):
        out += recording_task(bj(start), bj(stop), f"{prefix}-{i}", stream_id=f"{prefix}-stream-{i}", **kw)
    return out


# 101 GB of push whose largest bucket is exactly 101 Mbps:
# 101 Mbps = 101e6 × 300 / 8 = 3_787_500_000 bytes in one bucket; the other
# 101e9 − 3_787_500_000 = 97_212_500_000 bytes over 50 buckets = 1_944_250_000 each (51.84 Mbps).
PUSH_101_MBPS = [bucket_bytes_for_mbps(101)] + [1_944_250_000] * 50
# The same 101 GB with a push peak of exactly 100 Mbps (3_750_000_000 bytes, not above 100):
# (101e9 − 3_750_000_000) / 50 = 1_945_000_000 each.
PUSH_100_MBPS = [bucket_bytes_for_mbps(100)] + [1_945_000_000] * 50
assert sum(PUSH_101_MBPS) == sum(PUSH_100_MBPS) == 101 * GB


def upload_day(day: str, down_bytes: list[int], up_sizes: list[int]) -> list[dict[str, Any]]:
    return buckets(day, "08:00", down_bytes) + buckets(day, "08:00", up_sizes, direction="up", stream_id="push")


def vod_month(year_month: str, days: int) -> list[dict[str, Any]]:
    """150 GB + 50 GB of VOD playback on every day of a month (tencent.md §7)."""
    out = []
    for d in range(1, days + 1):
        day = f"{year_month}-{d:02d}"
        out += [vod_traffic(bj(f"{day} 10:00"), 150 * GB), vod_traffic(bj(f"{day} 20:00"), 50 * GB)]
    return out


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    services: tuple[str, ...]
    events: list[Any]
    expected: dict[str, str]  # charge_id or item -> amount_rounded (items: sum over periods)
    catalog: str
    app: dict[str, Any] = field(default_factory=dict)


def case(name: str, services: str, events: list[Any], expected: dict[str, str], catalog: str,
         **app: Any) -> Any:
    return pytest.param(Case(name, tuple(services.split()), events, expected, catalog, app), id=name)


CASES = [
    # §1 recording, tencent-2019: peak × 30
    case("recording-2019-01-peak-10", "recording",
         tasks("2019-01-15 10:00", "2019-01-15 11:00", 10, "a") + tasks("2019-01-20 10:00", "2019-01-20 12:00", 3, "b"),
         {f"css/recording.peak_channels/{ACCOUNT}/2019-01": "300.00"}, "tencent-2019"),
    case("recording-two-streams-at-once", "recording",
         tasks("2019-01-15 10:00", "2019-01-15 10:30", 2, "s"),
         {"recording.peak_channels": "60.00"}, "tencent-2019"),
    case("recording-one-stream-two-formats", "recording",
         recording_task(bj("2019-01-15 10:00"), bj("2019-01-15 10:30"), "mp4-task", "stream-1", "mp4")
         + recording_task(bj("2019-01-15 10:00"), bj("2019-01-15 10:30"), "hls-task", "stream-1", "hls"),
         {"recording.peak_channels": "60.00"}, "tencent-2019"),
    # §1 recording, tencent-2022: peak × (recording days / days in month) × 30.
    # Feb 2022 has 28 days; peak 3 on the 10th, one channel on six other days -> 7 days:
    # 3 × 7/28 × 30 = 22.5
    case("recording-2022-formula-feb", "recording",
         tasks("2022-02-10 10:00", "2022-02-10 11:00", 3, "p")
         + [ev for d in (1, 2, 3, 20, 21, 28) for ev in
            recording_task(bj(f"2022-02-{d:02d} 12:00"), bj(f"2022-02-{d:02d} 13:00"), f"d{d}")],
         {f"css/recording.peak_channels/{ACCOUNT}/2022-02": "22.50"}, "tencent-2022"),
    # March 2022 (31 days), peak 2 on one day: 2 × 1/31 × 30 = 60/31 = 1.935... -> 1.94
    case("recording-2022-formula-march", "recording",
         tasks("2022-03-05 10:00", "2022-03-05 11:00", 2, "m"),
         {"recording.peak_channels": "1.94"}, "tencent-2022"),
    # §2 relay traffic: 500 Kbps × 1 h × 100 viewers = 22.5 GB (12 buckets of 1.875 GB); 0.26/GB
    case("relay-22.5GB-2019", "relay", buckets("2019-03-01", "20:00", [1_875_000_000] * 12),
         {f"css/relay.traffic/{ACCOUNT}/2019-03-01": "5.85"}, "tencent-2019"),
    # 500 Kbps × 100 viewers = 50 Mbps in one bucket (50e6 × 300 / 8 bytes); other buckets lower
    case("relay-50Mbps-daily-peak-2019", "relay",
         buckets("2019-03-01", "20:00", [bucket_bytes_for_mbps(50)] + [10**9] * 11),
         {f"css/relay.bandwidth.daily_peak/{ACCOUNT}/2019-03-01": "32.00"}, "tencent-2019",
         relay_billing="bandwidth_daily_peak"),
    case("relay-50Mbps-daily-peak-2022", "relay",
         buckets("2022-03-01", "20:00", [bucket_bytes_for_mbps(50)] + [10**9] * 11),
         {"relay.bandwidth.daily_peak": "32.50"}, "tencent-2022",
         relay_billing="bandwidth_daily_peak"),
    # overseas 1 TB in a day (2019: one international table; 500GB-2TB tier 0.43) -> 430
    case("relay-overseas-1TB-2019", "relay", buckets("2019-03-01", "10:00", [250 * GB] * 4, zone="na"),
         {"relay.traffic": "430.00"}, "tencent-2019"),
    # overseas 600 Mbps daily peak (2019: 500Mbps-5Gbps tier 1.2) -> 720
    case("relay-overseas-600Mbps-2019", "relay",
         buckets("2019-03-01", "10:00", [bucket_bytes_for_mbps(600), bucket_bytes_for_mbps(300)], zone="eu"),
         {"relay.bandwidth.daily_peak": "720.00"}, "tencent-2019", relay_billing="bandwidth_daily_peak"),
    # 1 Mbps stream: 100 viewers for 1 h (45 GB) and 50 viewers for 2 h (45 GB) = 90 GB; 0.26 -> 23.4
    # first hour 150 viewers: 150e6 × 300 / 8 = 5.625 GB a bucket; second hour 50 viewers: 1.875 GB
    case("relay-90GB-2022", "relay",
         buckets("2022-03-01", "20:00", [5_625_000_000] * 12 + [1_875_000_000] * 12),
         {"relay.traffic": "23.40"}, "tencent-2022"),
    # upload rule: download 10 GB, upload 101 GB with a 101 Mbps push peak -> 0.26 × (10 + 101)
    case("relay-upload-billed-2022", "relay", upload_day("2022-03-01", [10**9] * 10, PUSH_101_MBPS),
         {"relay.traffic": "28.86"}, "tencent-2022"),
    # push peak exactly 100 Mbps is not above 100: upload not billed -> 10 × 0.26
    case("relay-upload-peak-100-not-billed", "relay", upload_day("2022-03-01", [10**9] * 10, PUSH_100_MBPS),
         {"relay.traffic": "2.60"}, "tencent-2022"),
    # download 11 GB : upload 101 GB is not below 1 : 10 -> upload not billed -> 11 × 0.26
    case("relay-upload-ratio-not-met", "relay", upload_day("2022-03-01", [10**9] * 11, PUSH_101_MBPS),
         {"relay.traffic": "2.86"}, "tencent-2022"),
    # exactly 1 : 10 (10.1 GB : 101 GB) is not below it -> 10.1 × 0.26 = 2.626 -> 2.63
    case("relay-upload-ratio-exactly-1-to-10", "relay",
         upload_day("2022-03-01", [10**9] * 10 + [10**8], PUSH_101_MBPS),
         {"relay.traffic": "2.63"}, "tencent-2022"),
    # recording pulls are never billed (the recording fee covers them): a zero charge with usage
    case("relay-recording-pull-excluded", "relay",
         buckets("2022-03-01", "10:00", [10 * GB], source="recording"),
         {"relay.traffic": "0.00"}, "tencent-2022"),
    # §3 transcoding: A H.264 720P 60 min + B watermark 480P 30 min = 0.0325×60 + 0.016×30 = 2.43
    case("transcode-720p-plus-480p-watermark", "transcode",
         [transcode(bj("2022-03-01 10:00"), 3600, 1280, 720, task_id="A"),
          transcode(bj("2022-03-01 10:00"), 1800, 640, 480, trigger="watermark", task_id="B")],
         {f"css/transcode.standard/{ACCOUNT}/2022-03-01": "2.43"}, "tencent-2022"),
    # top-speed: 0.1256 × 60 + 0.066 × 30 = 7.536 + 1.98 = 9.516 -> 9.52
    case("transcode-top-speed", "transcode",
         [transcode(bj("2022-03-01 10:00"), 3600, 1280, 720, kind="top_speed", task_id="A"),
          transcode(bj("2022-03-01 10:00"), 1800, 640, 480, kind="top_speed", task_id="B")],
         {"transcode.top_speed": "9.52"}, "tencent-2022"),
    # audio 300 min × 0.0056 = 1.68
    case("transcode-audio-300-min", "transcode", [audio(bj("2022-03-01 10:00"), 300 * 60)],
         {"transcode.audio": "1.68"}, "tencent-2022"),
    # 1280×480 is 720P: 100 min × 0.0325 = 3.25 (as 480P it would be 1.60)
    case("transcode-1280x480-is-720p", "transcode", [transcode(bj("2022-03-01 10:00"), 6000, 1280, 480)],
         {"transcode.standard": "3.25"}, "tencent-2022"),
    # under a minute in a day bills as one minute: 30 s + 20 s + 40 s = 90 s -> 2 min of 720P
    case("transcode-day-seconds-round-up", "transcode",
         [transcode(bj("2022-03-01 10:00"), s) for s in (30, 20, 40)],
         {"transcode.standard": "0.07"}, "tencent-2022"),
    # §4/§5 screenshots and porn detection: 0.1 / 1.3 × ceil(max(0, N − 1000) / 1000)
    case("snapshot-1000-free", "snapshot", [snapshot(bj("2024-05-03 10:00"), 1000)],
         {"snapshot": "0.00"}, "tencent-2022"),
    case("snapshot-1001", "snapshot", [snapshot(bj("2024-05-03 10:00"), 1000), snapshot(bj("2024-05-20 10:00"), 1)],
         {"snapshot": "0.10"}, "tencent-2022"),
    case("snapshot-2500", "snapshot", [snapshot(bj("2024-05-03 10:00"), 1200), snapshot(bj("2024-05-20 10:00"), 1300)],
         {f"css/snapshot/{ACCOUNT}/2024-05": "0.20"}, "tencent-2022"),
    case("moderation-2500", "moderation", [moderation(bj("2024-05-03 10:00"), 2500)],
         {f"css/moderation/{ACCOUNT}/2024-05": "2.60"}, "tencent-2022"),
    case("moderation-1001", "moderation", [moderation(bj("2024-05-03 10:00"), 1001)],
         {"moderation": "1.30"}, "tencent-2022"),
    # §6 VOD storage, 2019 single class: daily peak 100 GB × 0.0048 = 0.48
    case("vod-storage-2019-peak-100GB", "vod",
         [vod_storage(bj("2019-03-01 01:00"), 50 * GB), vod_storage(bj("2019-03-01 12:00"), 100 * GB),
          vod_storage(bj("2019-03-01 18:00"), 80 * GB)],
         {f"vod/vod.storage/{ACCOUNT}/2019-03-01": "0.48"}, "tencent-2019"),
    # §7 VOD traffic: 150 GB + 50 GB a day at 0.24 for the 30 days of April -> 30 × 48 = 1440
    case("vod-traffic-200GB-a-day-30-days", "vod", vod_month("2019-04", 30),
         {"vod.traffic": "1440.00"}, "tencent-2019"),
    # §8 IM trial edition: usage reported, nothing charged
    case("im-trial-free", "", [im_dau("2022-03-01", 5000), im_dau("2022-03-02", 7000)],
         {f"im/im.dau_overage/{ACCOUNT}/2022-03": "0.00"}, "tencent-2022"),
    # pro plan 2022: peak DAU 125,000 -> ceil(25,000 / 10,000) = 3 blocks × 1000 = 3000;
    # groups at month end 250,000 -> ceil(150,000 / 100,000) = 2 × 1000 = 2000
    case("im-pro-2022-dau-and-groups", "",
         [im_dau("2022-03-01", 90_000), im_dau("2022-03-15", 125_000), im_dau("2022-03-31", 110_000),
          im_groups(bj("2022-03-15 10:00"), 300_000), im_groups(bj("2022-03-31 22:00"), 250_000)],
         {"im.dau_overage": "3000.00", "im.group_overage": "2000.00"}, "tencent-2022", im_plan="pro"),
    # pro plan 2019: ceil(25,000 / 100,000) = 1 block × 10000; groups 100,001 -> 1 × 1000
    case("im-pro-2019", "",
         [im_dau("2019-03-15", 125_000), im_groups(bj("2019-03-31 22:00"), 100_001)],
         {"im.dau_overage": "10000.00", "im.group_overage": "1000.00"}, "tencent-2019", im_plan="pro"),
]


def _charged(run: Any, expected: dict[str, str]) -> dict[str, str]:
    got = {}
    for key in expected:
        if "/" in key:
            got[key] = run.latest()[key]["amount_rounded"] if key in run.latest() else "<missing>"
        else:
            charges = run.of_item(key)
            got[key] = cny(total_of(charges)) if charges else "<missing>"
    return got


@pytest.mark.parametrize("c", CASES)
def test_worked_example(rate: Any, c: Case) -> None:
    run = rate(make_app(services=c.services, **c.app), c.events)
    assert run.exit_code == 0, run.stderr
    assert run.quarantine == []
    assert _charged(run, c.expected) == c.expected
    # nothing else was charged, every charge is a first revision of the expected catalog
    expected_items = {k.split("/")[1] if "/" in k else k for k in c.expected}
    assert {ch["item"] for ch in run.charges} == expected_items
    for charge in run.charges:
        assert charge["revision"] == 1
        assert charge["catalog"] == c.catalog
        assert charge["account_id"] == ACCOUNT
        assert charge["currency"] == "CNY"
        assert charge["amount_rounded"] == cny(charge["amount"])
        assert Decimal(charge["amount"]) == exact(*(line["amount"] for line in charge["lines"]))
        assert charge["delta"] == charge["amount"] and charge["previous_amount"] == "0"


# -- details of the examples beyond the totals -----------------------------------------------


def test_top_speed_is_exact_before_rounding(rate: Any) -> None:
    run = rate(make_app(services=["transcode"]), [
        transcode(bj("2022-03-01 10:00"), 3600, 1280, 720, kind="top_speed", task_id="A"),
        transcode(bj("2022-03-01 10:00"), 1800, 640, 480, kind="top_speed", task_id="B"),
    ])
    charge = run.one("transcode.top_speed")
    assert Decimal(charge["amount"]) == Decimal("9.516")
    assert charge["amount_rounded"] == "9.52"
    lines = {line["dimensions"]["tier"]: line for line in charge["lines"]}
    assert lines["720P"]["quantity"] == "60" and lines["720P"]["unit_price"] == "0.1256"
    assert Decimal(lines["720P"]["amount"]) == Decimal("7.536")
    assert lines["480P"]["quantity"] == "30" and Decimal(lines["480P"]["amount"]) == Decimal("1.98")


def test_1280x480_line_names_720p(rate: Any) -> None:
    run = rate(make_app(services=["transcode"]), [transcode(bj("2022-03-01 10:00"), 60, 1280, 480)])
    (line,) = run.one("transcode.standard")["lines"]
    assert line["dimensions"] == {"codec": "h264", "tier": "720P"}
    assert (line["quantity"], line["unit"], line["unit_price"]) == ("1", "minute", "0.0325")


def test_upload_billed_lines(rate: Any) -> None:
    run = rate(make_app(services=["relay"]), upload_day("2022-03-01", [10**9] * 10, PUSH_101_MBPS))
    charge = run.one("relay.traffic")
    lines = {line["dimensions"]["direction"]: line for line in charge["lines"]}
    assert Decimal(lines["down"]["quantity"]) == 10 and Decimal(lines["down"]["amount"]) == Decimal("2.6")
    assert Decimal(lines["up"]["quantity"]) == 101 and Decimal(lines["up"]["amount"]) == Decimal("26.26")
    assert lines["up"]["unit_price"] == "0.26" and "excluded" not in lines["up"]
    assert Decimal(charge["amount"]) == Decimal("28.86")


def test_upload_not_billed_is_reported_as_excluded(rate: Any) -> None:
    run = rate(make_app(services=["relay"]), upload_day("2022-03-01", [10**9] * 10, PUSH_100_MBPS))
    lines = {line["dimensions"]["direction"]: line for line in run.one("relay.traffic")["lines"]}
    assert lines["up"]["excluded"] == "upload_not_billed"
    assert Decimal(lines["up"]["quantity"]) == 101 and Decimal(lines["up"]["amount"]) == 0


def test_recording_pull_is_reported_as_excluded(rate: Any) -> None:
    run = rate(make_app(services=["relay"]), buckets("2022-03-01", "10:00", [10 * GB], source="recording"))
    charge = run.one("relay.traffic")
    (line,) = charge["lines"]
    assert line["excluded"] == "recording_pull" and Decimal(line["quantity"]) == 10
    assert Decimal(charge["usage_by_app"][str(APP)]["recording_pull_gb"]) == 10


def test_recording_2022_factor_and_usage(rate: Any) -> None:
    events = tasks("2022-02-10 10:00", "2022-02-10 11:00", 3, "p") + [
        ev for d in (1, 2, 3, 20, 21, 28)
        for ev in recording_task(bj(f"2022-02-{d:02d} 12:00"), bj(f"2022-02-{d:02d} 13:00"), f"d{d}")
    ]
    charge = rate(make_app(services=["recording"]), events).one("recording.peak_channels")
    (line,) = charge["lines"]
    assert (line["quantity"], line["unit_price"], line["factor"]) == ("3", "30", "0.25")
    assert Decimal(charge["amount"]) == Decimal("22.5")
    assert charge["usage_by_app"] == {str(APP): {"peak_channels": "3", "recording_days": "7"}}
    assert (charge["period_start"], charge["period_end"]) == ("2022-02-01T00:00:00+08:00", "2022-03-01T00:00:00+08:00")


def test_vod_traffic_each_day_is_48(rate: Any) -> None:
    run = rate(make_app(services=["vod"]), vod_month("2019-04", 30))
    days = run.of_item("vod.traffic")
    assert [c["charge_id"] for c in days] == [f"vod/vod.traffic/{ACCOUNT}/2019-04-{d:02d}" for d in range(1, 31)]
    assert {c["amount_rounded"] for c in days} == {"48.00"}
    assert {c["lines"][0]["unit_price"] for c in days} == {"0.24"}
    assert total_of(days) == 1440


def test_im_trial_reports_usage_and_charges_nothing(rate: Any) -> None:
    run = rate(make_app(), [im_dau("2022-03-01", 5000), im_dau("2022-03-02", 7000)])
    charge = run.one("im.dau_overage")
    assert charge["amount"] == "0" and charge["amount_rounded"] == "0.00"
    assert charge["usage_by_app"] == {str(APP): {"peak_dau": "7000"}}
    assert [line["dimensions"] for line in charge["lines"]] == [{"sdk_app_id": str(APP), "plan": "trtc_trial"}]


def test_im_pro_lines_per_app(rate: Any) -> None:
    apps = [make_app(im_plan="pro"), make_app(APP + 1, im_plan="trtc_trial")]
    run = rate(apps, [im_dau("2022-03-15", 125_000), im_dau("2022-03-15", 500_000, app=APP + 1)])
    charge = run.one("im.dau_overage")
    lines = {line["dimensions"]["sdk_app_id"]: line for line in charge["lines"]}
    mine = lines[str(APP)]
    assert (mine["quantity"], mine["unit_price"], mine["amount"]) == ("3", "1000", "3000")
    assert lines[str(APP + 1)]["amount"] == "0"  # the other app stays on the free trial edition
    assert charge["amount_rounded"] == "3000.00"


def test_account_tiers_on_its_total(rate: Any) -> None:
    """300 GB on each of two apps of one account reach the 500GB-2TB tier (2019: 0.25)."""
    apps = [make_app(services=["relay"]), make_app(APP + 1, services=["relay"])]
    events = [relay(bj("2019-03-01 10:00"), 300 * GB), relay(bj("2019-03-01 10:00"), 300 * GB, app=APP + 1)]
    charge = rate(apps, events).one("relay.traffic")
    assert charge["amount_rounded"] == "150.00"
    assert set(charge["usage_by_app"]) == {str(APP), str(APP + 1)}


def test_each_zone_is_tiered_on_its_own(rate: Any) -> None:
    """400 GB mainland + 400 GB na in 2019: neither zone reaches 500 GB -> 0.26 and 0.45."""
    events = [relay(bj("2019-03-01 10:00"), 400 * GB), relay(bj("2019-03-01 10:00"), 400 * GB, zone="na")]
    charge = rate(make_app(services=["relay"]), events).one("relay.traffic")
    assert Decimal(charge["amount"]) == Decimal("104") + Decimal("180")


# -- resource packages (tencent.md §3 and §2.1) ----------------------------------------------


def transcode_package(size: str) -> dict[str, Any]:
    return package("tp-1", "transcode_standard", size, bj("2022-02-01 09:00"))


def test_transcode_package_covers_720p_at_its_ratio(rate: Any) -> None:
    """A 100 h package of H.264 480P (0.016/min) covers 100 × 0.016 / 0.0325 = 49.23 h of 720P.

    2400 min (40 h) of 720P drain 40 × 0.0325 / 0.016 = 81.25 package hours: all covered,
    amount 0 (price 2400 × 0.0325 = 78 minus 81.25 h × 60 × 0.016 = 78).
    """
    app = make_app(services=["transcode"], packages=[transcode_package("100")])
    run = rate(app, [transcode(bj("2022-03-01 10:00"), 2400 * 60)])
    (line,) = run.one("transcode.standard")["lines"]
    assert Decimal(line["package_deducted"]) == Decimal("81.25")
    assert {k: Decimal(v) for k, v in line["packages"].items()} == {"tp-1": Decimal("81.25")}
    assert Decimal(line["amount"]) == 0
    assert run.one("transcode.standard")["amount_rounded"] == "0.00"


def test_transcode_package_exhausted_bills_the_rest(rate: Any) -> None:
    """3000 min of 720P need 3000 × 0.0325 / 0.016 / 60 = 101.5625 package hours; the
    package has 100, so 100 h are deducted and the rest is billed:
    3000 × 0.0325 − 100 × 60 × 0.016 = 97.5 − 96 = 1.5 CNY
    (= the 46.15 min of 720P beyond the 2953.85 min the package covers, × 0.0325)."""
    app = make_app(services=["transcode"], packages=[transcode_package("100")])
    run = rate(app, [transcode(bj("2022-03-01 10:00"), 3000 * 60)])
    (line,) = run.one("transcode.standard")["lines"]
    assert Decimal(line["package_deducted"]) == 100
    assert Decimal(line["amount"]) == Decimal("1.5")
    assert line["quantity"] == "3000"


def test_transcode_package_covers_audio_at_its_ratio(rate: Any) -> None:
    """Audio drains standard packages at 0.0056 / 0.016: 300 min of audio drain
    300 × 0.0056 / 0.016 / 60 = 1.75 package hours of a 5 h package; nothing billed."""
    app = make_app(services=["transcode"], packages=[transcode_package("5")])
    run = rate(app, [audio(bj("2022-03-01 10:00"), 300 * 60)])
    (line,) = run.one("transcode.audio")["lines"]
    assert Decimal(line["package_deducted"]) == Decimal("1.75")
    assert Decimal(line["amount"]) == 0


def test_package_bought_later_does_not_cover_earlier_days(rate: Any) -> None:
    """A css_traffic package bought on 03-02 covers 03-02 (from its day on) but not 03-01."""
    pkg = package("ct-1", "css_traffic", "100", bj("2022-03-02 18:00"))
    app = make_app(services=["relay"], packages=[pkg])
    run = rate(app, [relay(bj("2022-03-01 10:00"), 10 * GB), relay(bj("2022-03-02 10:00"), 10 * GB)])
    by_day = {c["charge_id"].rsplit("/", 1)[1]: c for c in run.of_item("relay.traffic")}
    assert by_day["2022-03-01"]["amount_rounded"] == "2.60"
    assert by_day["2022-03-01"]["lines"][0]["package_deducted"] == "0"
    assert by_day["2022-03-02"]["amount_rounded"] == "0.00"
    assert Decimal(by_day["2022-03-02"]["lines"][0]["package_deducted"]) == 10


def test_css_package_leftover_tiered_on_leftover(rate: Any) -> None:
    """2019 mainland: 600 GB with a 500 GB package -> 100 GB left, tiered alone (0.26) = 26."""
    pkg = package("ct-1", "css_traffic", "500", bj("2019-02-01 09:00"))
    run = rate(make_app(services=["relay"], packages=[pkg]), [relay(bj("2019-03-01 10:00"), 600 * GB)])
    (line,) = run.one("relay.traffic")["lines"]
    assert Decimal(line["package_deducted"]) == 500
    assert line["unit_price"] == "0.26"
    assert Decimal(line["amount"]) == 26


# -- revisions and replays ------------------------------------------------------------------


def test_late_event_emits_a_revision_with_the_delta(rate: Any) -> None:
    events = [
        relay(bj("2024-03-01 10:00"), 10 * GB),
        relay(bj("2024-03-02 03:00"), 1 * GB),  # clock passes 03-01 + 2 h grace: 03-01 closes
        relay(bj("2024-03-01 11:00"), 5 * GB),  # late: re-rates the closed day
    ]
    run = rate(make_app(services=["relay"]), events)
    day1 = [c for c in run.charges if c["charge_id"] == f"css/relay.traffic/{ACCOUNT}/2024-03-01"]
    assert [(c["revision"], c["amount"], c["previous_amount"], c["delta"]) for c in day1] == [
        (1, "2.6", "0", "2.6"),
        (2, "3.9", "2.6", "1.3"),
    ]
    assert day1[1]["amount_rounded"] == "3.90"
    assert "0 quarantined" in run.stderr


def exact(*values: str) -> Decimal:
    """Sum of decimal texts without any rounding (a context far wider than any amount)."""
    with localcontext() as ctx:
        ctx.prec = 500
        return sum((Decimal(v) for v in values), Decimal(0))


def test_charge_amount_is_the_exact_sum_of_its_lines(rate: Any) -> None:
    """Month-95 over 1 effective day of April: 10 Mbps × 28 × 1/30 = 9.333...; the charge's
    amount must be the sum of its line amounts as written, not a 28-digit rounding of it."""
    sizes = [bucket_bytes_for_mbps(100)] * 14 + [bucket_bytes_for_mbps(10)] * 274  # top 14 = floor(5 % × 288)
    app = make_app(services=["relay"], relay_billing="bandwidth_monthly_95", contract_prices={"mainland": "28"})
    events = [relay(bj(f"2024-04-10 {5 * i // 60:02d}:{5 * i % 60:02d}"), size) for i, size in enumerate(sizes)]
    charge = rate(app, events).one("relay.bandwidth.monthly_95")
    (line,) = charge["lines"]
    assert (line["quantity"], line["unit_price"]) == ("10", "28")
    assert Decimal(line["factor"]) * 30 == pytest.approx(Decimal(1))
    assert charge["amount_rounded"] == "9.33"
    assert Decimal(charge["amount"]) == exact(line["amount"])
    assert len(charge["amount"]) > 40  # 50 significant digits, as the line


def test_revisions_add_up_exactly(rate: Any) -> None:
    """2022 formula in March (31 days): 2 channels on one day -> 60/31; a late task on a
    second day makes it 2 × 2/31 × 30 = 120/31. previous_amount + delta == amount, exactly."""
    events = tasks("2022-03-05 10:00", "2022-03-05 11:00", 2, "m")
    events.append(relay(bj("2022-04-03 00:00"), GB))  # the clock passes 04-01 + 1 day: March closes
    events += recording_task(bj("2022-03-06 10:00"), bj("2022-03-06 11:00"), "late")
    run = rate(make_app(services=["recording", "relay"]), events)
    month = [c for c in run.charges if c["item"] == "recording.peak_channels"]
    assert [(c["revision"], c["amount_rounded"]) for c in month] == [(1, "1.94"), (2, "3.87")]
    assert month[1]["previous_amount"] == month[0]["amount"]
    assert exact(month[0]["amount"], month[1]["delta"]) == Decimal(month[1]["amount"])
    assert exact(month[0]["delta"], month[1]["delta"]) == Decimal(month[1]["amount"])
    for c in month:
        assert Decimal(c["amount"]) == exact(*(line["amount"] for line in c["lines"]))


def test_days_are_beijing_days_whatever_the_offset(rate: Any) -> None:
    """17:00Z is 01:00 the next Beijing day; 15:59:59Z is still 23:59:59 of the same day."""
    events = [relay("2024-03-01T17:00:00Z", GB), relay("2024-03-01T15:59:59Z", 2 * GB),
              relay("2024-03-01T10:00:00-05:00", 4 * GB)]  # = 03-01 15:00Z = 03-01 23:00 Beijing
    latest = rate(make_app(services=["relay"]), events).latest()
    assert latest[f"css/relay.traffic/{ACCOUNT}/2024-03-01"]["amount"] == "1.56"  # 6 GB × 0.26
    assert latest[f"css/relay.traffic/{ACCOUNT}/2024-03-02"]["amount"] == "0.26"
    assert latest[f"css/relay.traffic/{ACCOUNT}/2024-03-02"]["period_start"] == "2024-03-02T00:00:00+08:00"


def test_images_free_allowance_is_per_account(rate: Any) -> None:
    """600 + 600 screenshots on two apps of one account: 1200 > 1000 -> one block, 0.1."""
    apps = [make_app(services=["snapshot"]), make_app(APP + 1, services=["snapshot"])]
    run = rate(apps, [snapshot(bj("2024-05-03 10:00"), 600), snapshot(bj("2024-05-04 10:00"), 600, app=APP + 1)])
    charge = run.one("snapshot")
    assert charge["amount_rounded"] == "0.10"
    assert charge["usage_by_app"] == {str(APP): {"images": "600"}, str(APP + 1): {"images": "600"}}


def test_final_clock_tick_closes_and_later_events_revise(rate: Any) -> None:
    """A ``clock.tick`` with ``final`` closes every period begun by its time: the snapshot
    month is charged at once; a later event of that month makes revision 2."""
    tick = {"type": "clock.tick", "time": bj("2024-05-10 00:00"), "final": True}
    events = [snapshot(bj("2024-05-03 10:00"), 1500), tick, snapshot(bj("2024-05-04 10:00"), 1000)]
    run = rate(make_app(services=["snapshot"]), events)
    assert [(c["revision"], c["amount"], c["delta"]) for c in run.charges] == [(1, "0.1", "0.1"), (2, "0.2", "0.1")]
    assert run.charges[0]["emitted_at"] == "2024-05-10T00:00:00+08:00"


def test_bad_clock_tick_is_quarantined(rate: Any) -> None:
    bad = [{"type": "clock.tick", "time": "2024-05-10T00:00:00", "final": True},
           {"type": "clock.tick", "time": bj("2024-05-10 00:00"), "final": "yes"}]
    run = rate(make_app(services=["snapshot"]), [snapshot(bj("2024-05-03 10:00"), 1500), *bad])
    assert run.reasons() == ["schema", "schema"]
    assert [c["revision"] for c in run.charges] == [1]


def test_duplicate_does_not_change_or_revise(rate: Any) -> None:
    first = relay(bj("2024-03-01 10:00"), 10 * GB)
    run = rate(make_app(services=["relay"]), [first, relay(bj("2024-03-02 03:00"), GB), first])
    assert [c["revision"] for c in run.charges] == [1, 1]
    assert run.latest()[f"css/relay.traffic/{ACCOUNT}/2024-03-01"]["amount"] == "2.6"
    assert "1 duplicate" in run.stderr


def test_subprocess_run_matches_in_process_run(rate: Any) -> None:
    """One example through ``python -m vasbill rate`` in a real process: same bytes out."""
    events = upload_day("2022-03-01", [10**9] * 10, PUSH_101_MBPS) + [im_dau("2022-03-01", 10)]
    app = make_app(services=["relay"])
    in_process = rate(app, events)
    real = rate(app, events, use_subprocess=True)
    assert real.exit_code == 0, real.stderr
    assert real.charges == in_process.charges
    assert real.one("relay.traffic")["amount_rounded"] == "28.86"
    assert real.stderr.strip() == "rated: 62 accepted, 0 duplicate, 0 quarantined; 2 charge revisions"


def test_replay_is_byte_for_byte_identical(rate: Any) -> None:
    events = vod_month("2019-04", 3) + tasks("2019-04-02 10:00", "2019-04-02 11:00", 2, "r")
    app = make_app(services=["vod", "recording"])
    assert orjson.dumps(rate(app, events).charges) == orjson.dumps(rate(app, events).charges)


def test_catalog_pinned_by_flag(rate: Any) -> None:
    """--catalog pins every period: 22.5 GB in 2024 priced with tencent-2019 is still 5.85,
    and 600 Mbps overseas in 2024 with tencent-2019 is 720 (tencent-2022 eu would be 666)."""
    app = make_app(services=["relay"], relay_billing="bandwidth_daily_peak")
    events = buckets("2024-03-01", "10:00", [bucket_bytes_for_mbps(600)], zone="eu")
    pinned = rate(app, events, "--catalog", "tencent-2019").one("relay.bandwidth.daily_peak")
    assert (pinned["catalog"], pinned["amount_rounded"]) == ("tencent-2019", "720.00")
    dated = rate(app, events).one("relay.bandwidth.daily_peak")
    assert (dated["catalog"], dated["amount_rounded"]) == ("tencent-2022", "666.00")


def test_catalog_by_period_start_date(rate: Any) -> None:
    """Days before 2022-01-04 use tencent-2019, from it tencent-2022; the month 2022-01 starts
    on 01-01 and so is a tencent-2019 month."""
    events = [relay(bj(f"2022-01-0{d} 10:00"), GB) for d in (3, 4)]
    events += recording_task(bj("2022-01-20 10:00"), bj("2022-01-20 11:00"), "t")
    run = rate(make_app(services=["relay", "recording"]), events)
    latest = run.latest()
    assert latest[f"css/relay.traffic/{ACCOUNT}/2022-01-03"]["catalog"] == "tencent-2019"
    assert latest[f"css/relay.traffic/{ACCOUNT}/2022-01-04"]["catalog"] == "tencent-2022"
    month = latest[f"css/recording.peak_channels/{ACCOUNT}/2022-01"]
    assert (month["catalog"], month["amount_rounded"]) == ("tencent-2019", "30.00")


def test_catalog_pinned_by_app_config(rate: Any) -> None:
    app = make_app(services=["relay"], catalog="tencent-2019", relay_billing="bandwidth_daily_peak")
    events = buckets("2024-03-01", "10:00", [bucket_bytes_for_mbps(50)])
    charge = rate(app, events).one("relay.bandwidth.daily_peak")
    assert (charge["catalog"], charge["amount_rounded"]) == ("tencent-2019", "32.00")


def test_apps_file_as_json_array(rate: Any) -> None:
    run = rate([make_app(services=["relay"])], [relay(bj("2022-03-01 10:00"), 90 * GB)], apps_as_array=True)
    assert run.one("relay.traffic")["amount_rounded"] == "23.40"

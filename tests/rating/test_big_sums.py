"""Sums beyond 64 bits stay exact: 19 batch messages of 1,000 relay records of 10^15 bytes
(the largest a record may hold) in one 5-minute bucket add up to 1.9 × 10^19 bytes, past
2^63. Python integers are unbounded and every conversion to Decimal is exact, so the
charges show the exact figures."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from fixtures.factories import ACCOUNT, bj, make_app, relay

RECORD = 10**15
EVENTS = 19_000


def batches() -> list[list[dict[str, Any]]]:
    time = bj("2026-08-01 10:00")
    return [[relay(time, RECORD, event_id=f"big-{k}-{i}") for i in range(1000)] for k in range(EVENTS // 1000)]


def test_rate_bills_19000_records_of_a_petabyte_in_one_bucket_exactly(rate: Any) -> None:
    run = rate(make_app(services=["relay"]), batches())
    assert run.exit_code == 0, run.stderr
    assert RECORD * EVENTS > 2**63
    charge = run.one("relay.traffic")
    (line,) = charge["lines"]
    gb = Decimal(EVENTS * RECORD) / Decimal(10**9)
    assert Decimal(line["quantity"]) == gb == Decimal(19_000_000_000)
    assert Decimal(line["amount"]) == gb * Decimal(line["unit_price"])
    assert charge["usage_by_app"]["1400000001"]["download_gb"] == "19000000000"
    assert charge["charge_id"] == f"css/relay.traffic/{ACCOUNT}/2026-08-01"


def test_the_daily_peak_of_that_bucket_is_exact(rate: Any) -> None:
    run = rate(make_app(services=["relay"], relay_billing="bandwidth_daily_peak"), batches())
    assert run.exit_code == 0, run.stderr
    (line,) = run.one("relay.bandwidth.daily_peak")["lines"]
    with localcontext() as ctx:
        ctx.prec = 60
        mbps = Decimal(EVENTS * RECORD * 8) / Decimal(300 * 10**6)  # 506,666,666,666.666… Mbps
        assert abs(Decimal(line["quantity"]) - mbps) < Decimal("1e-37")  # 50 significant digits
    assert Decimal(line["quantity"]).to_integral_value() == Decimal(506_666_666_667)

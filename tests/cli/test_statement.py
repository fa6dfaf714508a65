"""``vasbill statement``: the latest revision of each charge of the month, by product and
item, from a charges file or straight from the billing topics (real broker)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
from click.testing import CliRunner

from topics.charges import Charge, ChargeLine
from topics.names import TopicNames
from vasbill.cli import main


def charge(cid: str, revision: int, amount: str, previous: str = "0") -> Charge:
    product, item, account, period = cid.split("/")
    line = ChargeLine({}, Decimal(1), "GB", Decimal(amount), Decimal(amount))
    return Charge(cid, revision, account, product, item, period, period, "tencent-2022", (line,),
                  Decimal(amount), Decimal(previous), {}, "2026-09-02T00:00:00+08:00")


CHARGES = [
    charge("css/relay.traffic/acct-1/2026-08-01", 1, "10.004"),
    charge("css/relay.traffic/acct-1/2026-08-01", 2, "12.345", "10.004"),  # the latest revision counts
    charge("css/relay.traffic/acct-1/2026-08-02", 1, "1.005"),
    charge("vod/vod.storage/acct-1/2026-08-02", 1, "0.48"),
    charge("css/recording.peak_channels/acct-1/2026-08", 1, "300"),
    charge("css/relay.traffic/acct-1/2026-09-01", 1, "99"),  # another month
    charge("css/relay.traffic/acct-2/2026-08-01", 1, "77"),  # another account
]


def expected() -> dict[str, object]:
    return {
        "account_id": "acct-1", "month": "2026-08",
        "items": [
            {"product": "css", "item": "recording.peak_channels", "charges": 1, "revisions": 0,
             "amount": "300", "amount_rounded": "300.00"},
            {"product": "css", "item": "relay.traffic", "charges": 2, "revisions": 1,
             "amount": "13.35", "amount_rounded": "13.36"},  # 12.35 + 1.01: each charge rounds half-up
            {"product": "vod", "item": "vod.storage", "charges": 1, "revisions": 0,
             "amount": "0.48", "amount_rounded": "0.48"},
        ],
        "total": "313.83", "total_rounded": "313.84",
    }


def test_statement_from_a_charges_file(tmp_path: Path) -> None:
    path = tmp_path / "charges.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c.to_dict()) + b"\n" for c in CHARGES))
    result = CliRunner().invoke(main, ["statement", "--account", "acct-1", "--month", "2026-08",
                                       "--charges", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == expected()
    table = CliRunner().invoke(main, ["statement", "--account", "acct-1", "--month", "2026-08",
                                      "--charges", str(path)])
    assert table.exit_code == 0 and "313.84" in table.stdout and "relay.traffic" in table.stdout


def test_statement_reads_the_billing_topics_without_a_file(broker: str) -> None:
    from workers.kafka_io import KafkaSettings, Message, send_messages

    prefix = "st."
    assert CliRunner().invoke(main, ["topics", "create", "--broker", broker, "--prefix", prefix,
                                     "--partitions", "2"]).exit_code == 0
    names = TopicNames(prefix)
    messages = [Message(names.billing_topic(c.product), c.account_id.encode(),
                                  orjson.dumps(c.to_dict()), 1, "charge") for c in CHARGES]
    assert send_messages(KafkaSettings(broker), messages) == len(CHARGES)
    result = CliRunner().invoke(main, ["statement", "--account", "acct-1", "--month", "2026-08", "--json",
                                       "--broker", broker, "--prefix", prefix])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == expected()


def test_statement_rejects_a_bad_month() -> None:
    result = CliRunner().invoke(main, ["statement", "--account", "a", "--month", "2026-13", "--charges", "-"])
    assert result.exit_code == 2

"""The embedded broker and the Kafka commands (SPEC §9, §10) against a real Tansu broker.

One broker serves the session (fixture ``broker``); every test uses its own topic prefix.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from topics.names import TopicNames
from vasbill.cli import main
from workers.broker import BrokerError, EmbeddedBroker, free_port, probe_metadata
from workers.kafka_io import (
    EventPacker,
    KafkaSettings,
    Security,
    SettingsError,
    client_config,
    existing_topics,
    kafka_python,
    partition_of,
    read_records,
)

kafka = kafka_python()  # kafka-python 3.0.12 warns on import (deprecated read_text); silenced there

APP_A, APP_B = 1400000001, 1400000002


def cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def event(n: int, app: int, type_: str = "relay.traffic") -> dict:
    doc = {"event_id": f"e{n}", "sdk_app_id": app, "type": type_, "time": "2026-08-01T00:00:00+08:00"}
    if type_ == "relay.traffic":
        doc.update(stream_id="s1", zone="mainland", bytes=1000 + n)
    else:
        doc.update(date="2026-08-01", dau=n)
    return doc


def records_by_topic(bootstrap: str, names: TopicNames) -> dict[str, list]:
    topics = [spec.name for spec in names.all()]
    found: dict[str, list] = {t: [] for t in topics}
    for record in read_records(KafkaSettings(bootstrap), topics):
        found[record.topic].append(record)
    return found


def create(bootstrap: str, prefix: str, partitions: int = 2) -> None:
    result = cli("topics", "create", "--broker", bootstrap, "--prefix", prefix, "--partitions", str(partitions))
    assert result.exit_code == 0, result.output


# -- no broker needed -----------------------------------------------------------------------

def test_client_config_for_every_security_protocol(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    plain = client_config("k1:9092,k2:9093")
    assert plain == {"bootstrap_servers": ["k1:9092", "k2:9093"], "security_protocol": "PLAINTEXT",
                     "client_id": "vasbill"}
    scram = client_config("k1:9093", Security("sasl_ssl", "scram-sha-512", "u", "p", str(ca)))
    assert scram["security_protocol"] == "SASL_SSL"
    assert scram["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (scram["sasl_plain_username"], scram["sasl_plain_password"]) == ("u", "p")
    assert scram["ssl_cafile"] == str(ca)
    assert client_config("k:1", Security("SASL_PLAINTEXT", None, "u", "p"))["sasl_mechanism"] == "PLAIN"
    assert "ssl_cafile" not in client_config("k:1", Security("SASL_PLAINTEXT", "SCRAM-SHA-256", "u", "p"))
    env = {"VASBILL_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "VASBILL_SASL_MECHANISM": "SCRAM-SHA-256",
           "VASBILL_SASL_USERNAME": "billing", "VASBILL_SASL_PASSWORD": "s3cret", "VASBILL_BROKER": "kafka:9092"}
    settings = KafkaSettings.from_env(env)
    assert settings.servers == ["kafka:9092"] and settings.security.sasl_mechanism == "SCRAM-SHA-256"
    assert "s3cret" not in repr(settings)
    for bad in (lambda: Security("SASL_SSL"), lambda: Security("TLS"), lambda: Security("PLAINTEXT", "PLAIN"),
                lambda: Security("SSL", ssl_cafile=str(tmp_path / "missing.pem")),
                lambda: KafkaSettings("no-port")):
        with pytest.raises(SettingsError):
            bad()


def test_packer_routes_lines_and_packs_batches() -> None:
    names = TopicNames("p.")
    packer = EventPacker(names, partitions=1, batch=2, partition_by="app")
    lines = [json.dumps(event(i, APP_A)).encode() for i in range(3)]
    lines += [json.dumps(event(3, APP_B)).encode(), b"", b"{oops", b'{"type":"clock.tick","time":null,"final":false}']
    messages = [m for line in lines for m in packer.add(line + b"\n")] + packer.flush()
    assert [(m.topic, m.key, m.events, m.partition) for m in messages] == [
        ("p.usage.relay", b"1400000001", 2, 0), ("p.usage.relay", None, 2, 0),
        ("p.usage.relay", None, 1, None), ("p.control.clock", b"clock", 1, None)]
    assert orjson.loads(messages[0].value) == [event(0, APP_A), event(1, APP_A)]
    assert orjson.loads(messages[1].value) == [event(2, APP_A), event(3, APP_B)]  # one partition, two apps
    assert messages[2].value == b"{oops"
    # a batch never exceeds max_bytes; a line over it is not sent and is reported
    small = EventPacker(names, partitions=1, batch=10, max_bytes=len(lines[0]) * 2 + 3)
    out = [m for line in lines[:3] for m in small.add(line)] + small.flush()
    assert [m.events for m in out] == [2, 1] and all(len(m.value) <= small.max_bytes for m in out)
    tiny = EventPacker(names, partitions=1, max_bytes=10)
    assert tiny.add(lines[0]) == [] and tiny.stats.skipped[0][0] == 1


def test_packer_keeps_each_partitions_order_and_uses_kafkas_partitioner() -> None:
    """Apps interleave in time-ordered files: packing by partition still fills messages, and
    each partition receives its events in exactly the order of the file."""
    names = TopicNames()
    apps = [1400000001 + i for i in range(6)]
    lines = [json.dumps(event(i, apps[i % 6])).encode() for i in range(60)]
    tick = b'{"type":"clock.tick","time":null,"final":true}'
    packer = EventPacker(names, partitions={"usage.relay": 4}, batch=1000, partition_by="app")
    messages = [m for line in [*lines, tick] for m in packer.add(line)] + packer.flush()
    assert messages[-1].topic == "control.clock"
    usage = messages[:-1]
    expected = {p: [f"e{i}" for i in range(60) if partition_of(str(apps[i % 6]).encode(), 4) == p] for p in range(4)}
    got = {m.partition: [e["event_id"] for e in orjson.loads(m.value)] for m in usage}
    assert got == {p: ids for p, ids in expected.items() if ids}
    assert len(usage) == len(got) and sum(m.events for m in usage) == 60
    # the partitioner is Kafka's: what aiokafka picks for the key
    from aiokafka.partitioner import DefaultPartitioner
    for app in apps:
        assert partition_of(str(app).encode(), 4) == DefaultPartitioner()(str(app).encode(), [0, 1, 2, 3], [0, 1, 2, 3])
    # by account: every app of an account lands on the partition of the account id
    config = {"sdk_app_id": apps[0], "account_id": "acct-9", "effective_from": "2026-08-01T00:00:00+08:00"}
    by_account = EventPacker(names, partitions=4, batch=1000)
    by_account.add(json.dumps(config).encode())
    by_account.add(lines[0])
    assert by_account.flush()[0].partition == partition_of(b"acct-9", 4)


# -- against the embedded broker ------------------------------------------------------------

def test_broker_starts_fast_and_answers_metadata(embedded_broker: EmbeddedBroker) -> None:
    assert embedded_broker.running
    assert embedded_broker.startup_seconds is not None and embedded_broker.startup_seconds < 5
    assert probe_metadata(embedded_broker.host, embedded_broker.port) == [(111, "127.0.0.1", embedded_broker.port)]


def test_topics_create_is_complete_and_idempotent(broker: str) -> None:
    result = cli("topics", "create", "--broker", broker, "--prefix", "tc.", "--partitions", "3")
    assert result.exit_code == 0, result.output
    names = TopicNames("tc.", 3)
    assert result.stdout.count("created") == len(names.all())
    actual = existing_topics(KafkaSettings(broker))
    assert {spec.name: actual[spec.name] for spec in names.all()} == {s.name: s.partitions for s in names.all()}
    assert actual["tc.config.apps"] == 1 and actual["tc.control.clock"] == 1 and actual["tc.usage.relay"] == 3
    admin = kafka.KafkaAdminClient(bootstrap_servers=broker)
    try:  # kafka-python hides Tansu's topic configs unless asked for all (Tansu marks them defaults)
        resource = kafka.admin.ConfigResource(kafka.admin.ConfigResourceType.TOPIC, "tc.config.apps")
        configs = admin.describe_configs([resource], config_filter="all")
    finally:
        admin.close()
    assert configs["topic"]["tc.config.apps"]["cleanup.policy"]["value"] == "compact"

    again = cli("topics", "create", "--broker", broker, "--prefix", "tc.", "--partitions", "3")
    assert again.exit_code == 0, again.output
    assert again.stdout.count("exists") == len(names.all()) and "created" not in again.stdout
    assert existing_topics(KafkaSettings(broker))["tc.usage.relay"] == 3


def test_produce_routes_keys_and_batches(broker: str, tmp_path: Path) -> None:
    create(broker, "pr.")
    config = {"sdk_app_id": APP_A, "account_id": "acct-1", "effective_from": "2026-08-01T00:00:00+08:00"}
    lines = [json.dumps(config)]
    lines += [json.dumps(event(i, APP_A)) for i in range(5)]          # 5 relay events of app A
    lines += [json.dumps(event(5, APP_B)), json.dumps(event(6, APP_A, "im.dau"))]
    lines += ["", "{this is not json", json.dumps({"type": "clock.tick", "time": None, "final": False})]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = cli("produce", str(path), "--batch", "2", "--partition-by", "app", "--broker", broker, "--prefix", "pr.")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "usage events 7 in 5 messages, app configs 1, clock ticks 1, unroutable 1 (to pr.usage.relay), not sent 0" \
        in result.stderr

    found = records_by_topic(broker, TopicNames("pr."))
    relay = sorted(found["pr.usage.relay"], key=lambda r: (r.key or b"", r.offset))
    # app A: [e0,e1] [e2,e3] [e4]; app B: e5 alone; the malformed line as is, no key
    assert [(r.key, orjson.loads(r.value) if r.key else r.value) for r in relay] == [
        (None, b"{this is not json"),
        (b"1400000001", [event(0, APP_A), event(1, APP_A)]),
        (b"1400000001", [event(2, APP_A), event(3, APP_A)]),
        (b"1400000001", event(4, APP_A)),
        (b"1400000002", event(5, APP_B)),
    ]
    im = [(r.key, orjson.loads(r.value)) for r in found["pr.usage.im"]]
    assert im == [(b"1400000001", event(6, APP_A, "im.dau"))]
    assert [(r.key, orjson.loads(r.value)) for r in found["pr.config.apps"]] == [(b"1400000001", config)]
    assert [(r.key, orjson.loads(r.value)) for r in found["pr.control.clock"]] == [
        (b"clock", {"type": "clock.tick", "time": None, "final": False})]
    assert all(not found[t] for t in found if "charges" in t or t.endswith(("quarantine", "vod", "recording")))

    # --batch 1: every event is its own message
    again = cli("produce", str(path), "--batch", "1", "--broker", broker, "--prefix", "pr.")
    assert again.exit_code == 0 and "usage events 7 in 7 messages" in again.stderr
    assert len(records_by_topic(broker, TopicNames("pr."))["pr.usage.relay"]) == 5 + 7
    # a file without --batch: packed by partition (app A on its account's partition, B on its own key's)
    relay_partitions = {partition_of(b"acct-1", 2), partition_of(str(APP_B).encode(), 2)}
    packed = cli("produce", str(path), "--broker", broker, "--prefix", "pr.")
    assert packed.exit_code == 0 and f"usage events 7 in {len(relay_partitions) + 1} messages" in packed.stderr
    # stdin that is not a pipe (here an in-memory buffer) is read like a file
    piped = CliRunner().invoke(main, ["produce", "-", "--broker", broker, "--prefix", "pr."],
                               input=path.read_text(), catch_exceptions=False)
    assert piped.exit_code == 0 and f"usage events 7 in {len(relay_partitions) + 1} messages" in piped.stderr


def test_produce_from_a_pipe_sends_what_is_pending_when_the_input_pauses(broker: str) -> None:
    """A live pipe: events are packed, yet none waits for more input longer than --linger."""
    create(broker, "lv.", partitions=1)
    config = {"sdk_app_id": APP_A, "account_id": "acct-1", "effective_from": "2026-08-01T00:00:00+08:00"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vasbill", "produce", "-", "--broker", broker, "--prefix", "lv.", "--no-progress",
         "--linger", "0.2"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None

    def relay_values(expected: int) -> list[list[str]]:
        deadline = time.monotonic() + 30
        while True:
            found = records_by_topic(broker, TopicNames("lv."))["lv.usage.relay"]
            if sum(len(orjson.loads(r.value)) if r.value.startswith(b"[") else 1 for r in found) >= expected:
                return [[e["event_id"] for e in orjson.loads(r.value)] for r in found]
            assert process.poll() is None, "produce exited before its input ended"
            assert time.monotonic() < deadline, f"only {found} after 30 s"
            time.sleep(0.2)

    try:
        process.stdin.write(b"\n".join(json.dumps(d).encode() for d in [config, *[event(i, APP_A) for i in range(3)]]))
        process.stdin.write(b"\n")
        process.stdin.flush()
        assert relay_values(3) == [["e0", "e1", "e2"]]  # one message, sent while stdin is still open
        process.stdin.write(b"\n".join(json.dumps(event(i, APP_A)).encode() for i in (3, 4)) + b"\n")
        process.stdin.flush()
        assert relay_values(5) == [["e0", "e1", "e2"], ["e3", "e4"]]
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        assert process.stderr is not None
        err = process.stderr.read()
        process.stderr.close()
    assert process.returncode == 0, err
    assert b"usage events 5 in 2 messages, app configs 1" in err


def test_produce_refuses_missing_topics_instead_of_auto_creating(broker: str, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(event(1, APP_A)) + "\n")
    result = cli("produce", str(path), "--broker", broker, "--prefix", "nowhere.")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"vasbill: topic nowhere.config.apps does not exist on {broker}; "
        "run `vasbill topics create` (with the same --prefix) first"]  # produce reads the app configs first
    assert not any(name.startswith("nowhere.") for name in existing_topics(KafkaSettings(broker)))


def test_charges_reads_to_the_end_and_filters_by_account(broker: str) -> None:
    create(broker, "ch.")
    names = TopicNames("ch.")
    charges = [{"charge_id": f"css/relay.traffic/acct-{i % 3}/2026-08-{i + 1:02d}", "revision": 1,
                "account_id": f"acct-{i % 3}", "product": "css", "amount": str(i)} for i in range(20)]
    producer = kafka.KafkaProducer(bootstrap_servers=broker, linger_ms=50)  # multi-record batches
    try:
        for charge in charges:
            producer.send(names.billing_topic("css"), key=charge["account_id"].encode(), value=orjson.dumps(charge))
        im_charge = {"charge_id": "im/im.dau_overage/acct-1/2026-08", "account_id": "acct-1", "product": "im"}
        producer.send(names.billing_topic("im"), key=b"acct-1", value=orjson.dumps(im_charge))
        producer.flush()
    finally:
        producer.close()
    everything = charges + [im_charge]

    # to the end: the Fetch high watermark, not ListOffsets (which Tansu under-reports)
    result = cli("charges", "--broker", broker, "--prefix", "ch.")
    assert result.exit_code == 0, result.output
    got = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(got, key=lambda c: c["charge_id"]) == sorted(everything, key=lambda c: c["charge_id"])

    started = time.monotonic()
    result = cli("charges", "--until-idle", "1", "--account", "acct-1", "--broker", broker, "--prefix", "ch.")
    assert result.exit_code == 0, result.output
    assert 1 <= time.monotonic() - started < 10
    got = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(c["charge_id"] for c in got) == sorted(c["charge_id"] for c in everything
                                                         if c["account_id"] == "acct-1")
    assert len(got) == 8


def test_tick_final_sends_a_clock_tick(broker: str) -> None:
    create(broker, "tk.")
    result = cli("tick", "--final", "--time", "2026-09-02T02:00:00+08:00", "--broker", broker, "--prefix", "tk.")
    assert result.exit_code == 0, result.output
    bare = cli("tick", "--broker", broker, "--prefix", "tk.")
    assert bare.exit_code == 0, bare.output
    ticks = records_by_topic(broker, TopicNames("tk."))["tk.control.clock"]
    assert [(r.key, orjson.loads(r.value)) for r in ticks] == [
        (b"clock", {"type": "clock.tick", "time": "2026-09-02T02:00:00+08:00", "final": True}),
        (b"clock", {"type": "clock.tick", "time": None, "final": False})]
    assert cli("tick", "--time", "2026-09-02T02:00:00", "--broker", broker).exit_code == 2


def test_a_taken_port_gives_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match=f"^port {port} on 127.0.0.1 is in use$"):
            EmbeddedBroker(port=port).start()
        result = cli("broker", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr == f"vasbill: port {port} on 127.0.0.1 is in use\n"


def test_kafka_commands_fail_in_one_line_when_the_broker_is_down(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(event(1, APP_A)) + "\n")
    closed = f"127.0.0.1:{free_port()}"
    for args in (["produce", str(path)], ["charges"], ["tick"], ["topics", "create"]):
        started = time.monotonic()
        result = cli(*args, "--broker", closed)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == f"vasbill: cannot connect to the Kafka broker ({closed}: Connection refused)\n"
        assert time.monotonic() - started < 5
    assert cli("produce", str(path), "--broker", "nonsense").exit_code == 2


def test_broker_command_runs_in_the_foreground_until_sigterm() -> None:
    process = subprocess.Popen([sys.executable, "-m", "vasbill", "broker", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    try:
        line = process.stdout.readline().decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        assert probe_metadata("127.0.0.1", port)[0][2] == port
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert "vasbill broker: stopped" in process.stderr.read().decode()
        with pytest.raises(OSError):
            probe_metadata("127.0.0.1", port, timeout=0.5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()

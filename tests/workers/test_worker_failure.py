"""A worker whose agent fails stops with a non-zero exit instead of sitting "ready" while
its partitions go unprocessed (real broker, real worker process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from vasbill.cli import main
from workers.broker import free_port
from workers.kafka_io import KafkaSettings, read_records


def _send(broker: str, topic: str, value: bytes) -> None:
    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=broker)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=b"acct-x")
        finally:
            await producer.stop()

    asyncio.run(run())


FAILING_WORKER = Path(__file__).parents[1] / "fixtures" / "failing_worker.py"


def _start(broker: str, tmp_path: Path, launcher: list[str]) -> tuple[subprocess.Popen[bytes], int, str, str, Any]:
    prefix = f"fail{uuid.uuid4().hex[:6]}."
    app_id = f"fail{uuid.uuid4().hex[:6]}"
    created = CliRunner().invoke(main, ["topics", "create", "--broker", broker, "--prefix", prefix,
                                        "--partitions", "2"])
    assert created.exit_code == 0
    port = free_port()
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [*launcher, "worker", "--broker", broker, "--prefix", prefix, "--partitions", "2",
         "--store", "memory", "--clock", "event", "--web-port", str(port), "--app-id", app_id],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return worker, port, prefix, app_id, log
        except OSError:
            time.sleep(0.3)
    worker.kill()
    raise AssertionError("worker never became ready")


def test_a_message_stage_2_cannot_decode_is_quarantined_and_the_worker_goes_on(broker: str, tmp_path) -> None:
    worker, port, prefix, app_id, log = _start(broker, tmp_path, [sys.executable, "-m", "vasbill"])
    try:
        # given a message stage 2 cannot decode on its internal topic (before the guard: a crash loop)
        _send(broker, f"{prefix}{app_id}.summaries", b"not json")
        deadline = time.monotonic() + 30
        found: list[dict] = []
        while time.monotonic() < deadline and not found:
            found = [orjson.loads(r.value) for r in read_records(KafkaSettings(broker), [f"{prefix}usage.quarantine"])]
            time.sleep(0.5)
        assert [(q["reason"], q["payload"]) for q in found] == [("unprocessable", "not json")], found
        assert "JSONDecodeError" in found[0]["detail"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            metrics = answer.read().decode()
        assert 'vasbill_quarantined_total{reason="unprocessable"} 1.0' in metrics
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        assert worker.poll() is None, "the worker must still run"
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0, "SIGTERM stops it cleanly"
        log.close()


def test_a_failing_agent_stops_the_worker_with_an_error(broker: str, tmp_path) -> None:
    worker, port, prefix, app_id, log = _start(broker, tmp_path, [sys.executable, str(FAILING_WORKER)])
    try:
        _send(broker, f"{prefix}{app_id}.summaries", b"fail-now")
        # then the worker stops by itself, promptly, with an error
        started = time.monotonic()
        code = worker.wait(timeout=60)
        assert code != 0
        assert time.monotonic() - started < 30
        assert b"worker failed (RuntimeError: planted failure outside the guard); stopping" in (
            tmp_path / "worker.log").read_bytes()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()


def test_an_event_that_raises_goes_to_quarantine_as_unprocessable_and_the_rest_is_billed(
        broker: str, tmp_path) -> None:
    worker, port, prefix, app_id, log = _start(broker, tmp_path, [sys.executable, str(FAILING_WORKER)])
    try:
        app = {"sdk_app_id": 1400000001, "account_id": "acct-1", "effective_from": "2026-08-01T00:00:00+08:00",
               "services": {"relay": True}}
        _send(broker, f"{prefix}config.apps", orjson.dumps(app))

        def relay(event_id: str) -> bytes:
            return orjson.dumps({"event_id": event_id, "sdk_app_id": 1400000001, "type": "relay.traffic",
                                 "time": "2026-08-02T10:00:00+08:00", "stream_id": "s", "zone": "mainland",
                                 "bytes": 2 * 10**9})

        _send(broker, f"{prefix}usage.relay", b"[" + relay("ok-1") + b"," + relay("poison") + b"," + relay("ok-2")
              + b"]")
        _send(broker, f"{prefix}control.clock", orjson.dumps({"type": "clock.tick", "final": True}))
        settings = KafkaSettings(broker)
        deadline = time.monotonic() + 60
        charges: list[dict] = []
        while time.monotonic() < deadline and not charges:
            charges = [orjson.loads(r.value) for r in read_records(settings, [f"{prefix}billing.css.charges"])]
            time.sleep(0.5)
        quarantined = [orjson.loads(r.value) for r in read_records(settings, [f"{prefix}usage.quarantine"])]
        assert [(q["reason"], q["event_id"], q["detail"]) for q in quarantined] == [
            ("unprocessable", "poison", "ValueError: planted")]
        assert [(c["item"], c["lines"][0]["quantity"]) for c in charges] == [("relay.traffic", "4")]  # 2 + 2 GB
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()


def test_a_state_value_that_would_outgrow_a_kafka_message_is_quarantined_not_fatal(broker: str, tmp_path) -> None:
    """~8,000 distinct 256-character task ids of one app and month: the recording registry's
    table value would pass one Kafka message (before: ``ValueTooLarge`` stopped the worker, and
    the restarted worker read the same messages and stopped again). The message that would
    make it too large goes to quarantine as ``unprocessable``; the worker goes on billing."""
    import random

    worker, port, prefix, app_id, log = _start(broker, tmp_path, [sys.executable, "-m", "vasbill"])
    try:
        for app in (1400000001, 1400000002):
            doc = {"sdk_app_id": app, "account_id": f"acct-{app}", "effective_from": "2026-08-01T00:00:00+08:00",
                   "services": {"recording": True, "relay": True}}
            _send(broker, f"{prefix}config.apps", orjson.dumps(doc))
        rnd = random.Random(3)
        for batch in range(16):
            events = [{"event_id": f"r-{batch}-{i}", "sdk_app_id": 1400000001, "type": "recording.start",
                       "time": "2026-08-02T10:00:00+08:00", "task_id": f"{rnd.getrandbits(1024):0256x}",
                       "stream_id": "s", "format": "mp4"} for i in range(500)]
            _send(broker, f"{prefix}usage.recording", orjson.dumps(events))
        other = {"event_id": "other", "sdk_app_id": 1400000002, "type": "relay.traffic",
                 "time": "2026-08-02T10:00:00+08:00", "stream_id": "s", "zone": "mainland", "bytes": 3 * 10**9}
        _send(broker, f"{prefix}usage.relay", orjson.dumps(other))
        _send(broker, f"{prefix}control.clock", orjson.dumps({"type": "clock.tick", "final": True}))
        settings = KafkaSettings(broker)
        deadline = time.monotonic() + 120
        relay: list[dict] = []
        while time.monotonic() < deadline and not relay:
            relay = [orjson.loads(r.value) for r in read_records(settings, [f"{prefix}billing.css.charges"])]
            relay = [c for c in relay if c["item"] == "relay.traffic"]
            time.sleep(0.5)
        assert [c["lines"][0]["quantity"] for c in relay] == ["3"], "the other app is billed"
        def accounted() -> tuple[float, list[dict]]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                metrics = answer.read().decode()
            accepted = next(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                            if line.startswith('vasbill_events_total{outcome="accepted",type="recording.start"}'))
            return accepted, [orjson.loads(r.value) for r in read_records(settings, [f"{prefix}usage.quarantine"])]

        accepted, quarantined = accounted()
        while accepted + len(quarantined) < 16 * 500 and time.monotonic() < deadline:
            time.sleep(1)
            accepted, quarantined = accounted()
        assert quarantined and all(q["reason"] == "unprocessable" and "ValueTooLarge" in q["detail"]
                                   for q in quarantined), [(q["reason"], q["detail"][:80]) for q in quarantined]
        assert accepted + len(quarantined) == 16 * 500, "every event billed or quarantined, none lost"
        assert {q["event_id"][:2] for q in quarantined} == {"r-"}, "each event quarantined on its own"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()

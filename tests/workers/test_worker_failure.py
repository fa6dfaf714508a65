"""A worker whose agent fails stops with a non-zero exit instead of sitting "ready" while
its partitions go unprocessed (real broker, real worker process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
import uuid

from click.testing import CliRunner

from vasbill.cli import main
from workers.broker import free_port


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


def test_a_failing_agent_stops_the_worker_with_an_error(broker: str, tmp_path) -> None:
    prefix = f"fail{uuid.uuid4().hex[:6]}."
    app_id = f"fail{uuid.uuid4().hex[:6]}"
    created = CliRunner().invoke(main, ["topics", "create", "--broker", broker, "--prefix", prefix,
                                        "--partitions", "2"])
    assert created.exit_code == 0
    port = free_port()
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "vasbill", "worker", "--broker", broker, "--prefix", prefix, "--partitions", "2",
         "--store", "memory", "--clock", "event", "--web-port", str(port), "--app-id", app_id],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise AssertionError("worker never became ready")
        # given a message stage 2 cannot decode on its internal topic
        _send(broker, f"{prefix}{app_id}.summaries", b"not json")
        # then the worker stops by itself, with an error
        code = worker.wait(timeout=60)
        assert code != 0
        assert b"agent failed; stopping the worker" in (tmp_path / "worker.log").read_bytes()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()

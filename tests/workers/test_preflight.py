"""The worker refuses to start, with one line, when the usage topics cannot keep events
long enough to bill them (real embedded broker; topics created with their retention)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner

from vasbill.cli import main


def _create(broker: str, prefix: str, *extra: str) -> None:
    result = CliRunner().invoke(main, ["topics", "create", "--broker", broker, "--prefix", prefix,
                                       "--partitions", "2", *extra])
    assert result.exit_code == 0, result.output


def _worker(broker: str, prefix: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vasbill", "worker", "--broker", broker, "--prefix", prefix, "--partitions", "2",
         "--store", "memory", "--web-port", "0", *extra],
        capture_output=True, text=True, timeout=60,
    )


def test_topics_create_sets_usage_retention(broker: str) -> None:
    prefix = f"ret{uuid.uuid4().hex[:6]}."
    result = CliRunner().invoke(main, ["topics", "create", "--broker", broker, "--prefix", prefix,
                                       "--partitions", "2", "--retention-days", "50"])
    assert result.exit_code == 0
    assert f"{prefix}usage.relay partitions=2 retention.ms={50 * 86_400_000}" in result.output


@pytest.mark.parametrize("days, horizon_days, refused", [(30, 40, True), (41, 40, False)])
def test_worker_refuses_retention_shorter_than_horizon_and_grace(broker: str, days: int, horizon_days: int,
                                                                 refused: bool) -> None:
    prefix = f"ret{uuid.uuid4().hex[:6]}."
    _create(broker, prefix, "--retention-days", str(days))
    if refused:
        run = _worker(broker, prefix, "--horizon", str(horizon_days * 86400))
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "retention is shorter than the lateness horizon plus grace" in lines[0]
        assert f"{prefix}usage.relay retention.ms={days * 86_400_000}" in lines[0]
    else:  # 41 days hold a 40-day horizon plus a 1-day month grace: the preflight passes
        from workers.kafka_io import KafkaSettings
        from workers.preflight import preflight
        from workers.settings import WorkerSettings

        preflight(WorkerSettings(kafka=KafkaSettings(broker), prefix=prefix, partitions=2))


def test_worker_refuses_missing_topics_and_wrong_partitions(broker: str) -> None:
    prefix = f"ret{uuid.uuid4().hex[:6]}."
    run = _worker(broker, prefix)
    assert run.returncode == 1 and "usage topics missing" in run.stderr
    _create(broker, prefix)
    run = subprocess.run(
        [sys.executable, "-m", "vasbill", "worker", "--broker", broker, "--prefix", prefix, "--partitions", "3",
         "--store", "memory", "--web-port", "0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "must have 3 partitions" in run.stderr

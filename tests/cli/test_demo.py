"""``vasbill demo`` end to end: broker, worker, a small month, statements, and the worker's
charges equal to ``vasbill rate``'s; nothing it started is left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 3


def _running(pid: int) -> bool:
    """True for a live process (a zombie waiting for its parent does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and _running(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_demo_prints_statements_matching_rate_and_stops_everything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VASBILL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["VASBILL_BROKER"] = "127.0.0.1:1"  # the demo must not use the environment's cluster
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "vasbill", "demo", "--accounts", str(ACCOUNTS), "--scale", "0.2", "--seed", "3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]

    for n in range(1, ACCOUNTS + 1):
        assert f"Statement acct-{n} — 2026-08 (CNY)" in done.stdout
    match = re.search(r"matches vasbill rate: (\d+)/(\d+) charges", done.stdout)
    assert match, done.stdout[-2000:]
    assert int(match.group(1)) == int(match.group(2)) > 0

    broker = re.search(r"Tansu on 127\.0\.0\.1:(\d+)", done.stderr)
    worker = re.search(r"worker\s+pid (\d+)", done.stderr)
    assert broker and worker, done.stderr[-2000:]
    assert not _running(int(worker.group(1)))
    assert not _processes_mentioning(f"tcp://127.0.0.1:{broker.group(1)}")
    assert not list(tmp_path.iterdir()), "the demo wrote into the working directory"
    assert elapsed < 120

"""workers.compat: each Faust fix is needed (the bug shows without it) and works (with it).

The Faust workers run as subprocesses (``compat_apps/counter_app.py``) so the patches never
leak into the pytest process; ``VASBILL_COMPAT_DISABLE`` switches a fix off in one of them.
Each scenario runs its "with the fix" and "without the fix" arms at the same time (one
thread each, one Tansu broker for the module) and the tests assert on the results.

Measured numbers and the reasoning behind the scenarios: ``workers/COMPAT.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from workers.broker import EmbeddedBroker, free_port
from workers.compat import (
    ALL_FIXES,
    BrokerCompatError,
    _parse_disable,
    embedded_broker_settings,
    production_settings,
    true_end_offsets,
)

APP = Path(__file__).parent / "compat_apps" / "counter_app.py"
REPO = Path(__file__).resolve().parents[2]

#: highwater scenario: events counted by the first run, then recovered by the second.
HW_EVENTS = 2000
HW_PARTITIONS = 4
#: Faust's changelog producer linger (s): makes the changelog's newest record batches hold
#: several records, which is what Tansu's ListOffsets gets wrong.  Production load does the
#: same without any linger.
HW_LINGER = "0.05"

#: seek scenario: a backlog, the worker stopped (SIGTERM) RESTARTS times while it consumes it.
SEEK_EVENTS = 20_000
SEEK_PARTITIONS = 4
SEEK_RESTARTS = 4
#: Each stopped run must first have counted this many more events (so it is mid-backlog).
SEEK_PROGRESS = 2000
#: Simulated broker round trip (s) for committed-offset lookups, in both arms.  Faust's
#: seek looks up every assigned partition's committed offset one after the other, so the
#: race of the seek-order bug lasts about 8 x this long; with Tansu's sub-millisecond
#: answers it is a few tens of ms and whether it shows depends on the machine's load
#: (COMPAT.md has the numbers).  Against a remote production cluster it is this long.
SEEK_COMMITTED_DELAY = "0.25"


# -- broker and Kafka helpers -----------------------------------------------------------


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    # A broker of our own: the restart scenarios are timing-sensitive and Tansu keeps every
    # record in memory for its lifetime.
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _produce_ids(bootstrap: str, topic: str, partitions: int, count: int, *, linger_ms: int = 20) -> None:
    """Events ``{"id": i}`` for i < count, event i in partition ``i % partitions``, sent in
    multi-record batches (nothing awaits a single send)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms)
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, json.dumps({"id": i}).encode(), partition=i % partitions)
        await producer.flush()
    finally:
        await producer.stop()


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> tuple[list[int], list[int]]:
    """(ListOffsets LATEST answers, true end offsets from ``workers.compat``) per partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        listed = await consumer.end_offsets(tps)
        true = await true_end_offsets(consumer, tps)
    finally:
        await consumer.stop()
    return [listed[tp] for tp in tps], [true[tp] for tp in tps]


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int | None]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()


# -- Faust worker subprocesses ------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def state(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/state/", timeout=2) as resp:
                return json.load(resp)
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def detail(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/detail/", timeout=5) as resp:
            return json.load(resp)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}) waiting for {what}:\n{self.log_tail()}")
            state = self.state()
            if state is not None and state["ready"] and predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"timeout ({timeout}s) waiting for {what}; last {state}:\n{self.log_tail()}")
            time.sleep(0.1)

    def wait_stable(self, done: Callable[[dict[str, Any]], bool], quiet: float, timeout: float) -> dict[str, Any]:
        """Wait until ``done(state)`` and the total has not changed for ``quiet`` seconds (or,
        if ``done`` never holds, until nothing changed for 3 * ``quiet`` seconds)."""
        deadline = time.monotonic() + timeout
        state = self.wait_for(lambda s: True, timeout, "ready")
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            new = self.wait_for(lambda s: True, timeout, "state")
            if new["total"] != state["total"]:
                state, since = new, time.monotonic()
            elif time.monotonic() - since >= (quiet if done(new) else 3 * quiet):
                return new
        raise AssertionError(f"still changing after {timeout}s: {state}\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not stop within {timeout}s:\n{self.log_tail()}") from None


@dataclass
class Arm:
    """One app (its own topic, app id and data dir) run as a series of worker processes."""

    bootstrap: str
    workdir: Path
    name: str
    disable: str
    partitions: int
    linger: str = "0"
    committed_delay: str = "0"
    runs: int = 0
    exit_codes: list[int] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return f"{self.name}-events"

    @property
    def app_id(self) -> str:
        return f"compat-{self.name}"

    @property
    def changelog(self) -> str:
        return f"{self.app_id}-seen-changelog"

    def start(self) -> Worker:
        self.runs += 1
        port = free_port()
        log = self.workdir / f"{self.name}-run{self.runs}.log"
        env = {
            **os.environ,
            "COMPAT_BROKER": self.bootstrap,
            "COMPAT_APP_ID": self.app_id,
            "COMPAT_TOPIC": self.topic,
            "COMPAT_PARTITIONS": str(self.partitions),
            "COMPAT_DATADIR": str(self.workdir / f"{self.name}-data"),
            "COMPAT_PRODUCER_LINGER": self.linger,
            "COMPAT_COMMITTED_DELAY": self.committed_delay,
            "VASBILL_COMPAT_DISABLE": self.disable,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(APP), "worker", "--web-port", str(port), "-l", "info"],
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Worker(proc, port, log)

    def stopped(self, worker: Worker, sig: int = signal.SIGTERM) -> None:
        self.exit_codes.append(worker.stop(sig))


def _run_arms(*arms: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(len(arms)) as pool:
        return [f.result() for f in [pool.submit(arm) for arm in arms]]


# -- fix 1: highwater ------------------------------------------------------------------


def test_list_offsets_under_reports_and_true_end_offsets_corrects_it(bootstrap: str) -> None:
    """The broker-level cause, without Faust: after multi-record batches ListOffsets(LATEST)
    is too low; ``true_end_offsets`` (the core of the highwater fix) is exact."""

    async def scenario() -> tuple[list[int], list[int]]:
        await _create_topic(bootstrap, "compat-lo", 3)
        # 2 of 3 partitions get 150 records each, in batches of many records; one stays empty.
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
        await producer.start()
        try:
            for i in range(300):
                await producer.send("compat-lo", b"x%d" % i, partition=i % 2)
            await producer.flush()
        finally:
            await producer.stop()
        return await _end_offsets(bootstrap, "compat-lo", 3)

    listed, true = asyncio.run(scenario())
    assert true == [150, 150, 0]
    # Without the fix: Tansu answers base offset of the newest batch + 1.
    assert listed[0] < 150 and listed[1] < 150, listed
    assert listed[2] == 0


@pytest.fixture(scope="module")
def highwater_results(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both arms of: count HW_EVENTS events in a memory-store table, stop, restart, report
    what the restarted worker recovered from the changelog."""

    def arm(name: str, disable: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            a = Arm(bootstrap, tmp_path_factory.mktemp(name), name, disable, HW_PARTITIONS, linger=HW_LINGER)
            asyncio.run(_create_topic(bootstrap, a.topic, HW_PARTITIONS))
            asyncio.run(_produce_ids(bootstrap, a.topic, HW_PARTITIONS, HW_EVENTS))
            w = a.start()
            try:
                first = w.wait_for(lambda s: s["distinct"] >= HW_EVENTS, 60, f"{HW_EVENTS} events counted")
            finally:
                a.stopped(w)
            listed, true = asyncio.run(_end_offsets(bootstrap, a.changelog, HW_PARTITIONS))
            w = a.start()
            try:
                recovered = w.wait_for(lambda s: True, 60, "recovery")
                time.sleep(1.0)  # nothing new to consume: the table must not change
                later = w.wait_for(lambda s: True, 10, "state")
                fixes = recovered["fixes"]
            finally:
                a.stopped(w)
            return {
                "fixes": fixes,
                "first": first,
                "recovered": recovered,
                "later": later,
                "changelog_list_offsets": listed,
                "changelog_true_end": true,
                "exit_codes": a.exit_codes,
            }

        return run

    fixed, unfixed = _run_arms(arm("hw-fixed", ""), arm("hw-unfixed", "highwater"))
    return {"fixed": fixed, "unfixed": unfixed}


def test_table_recovery_is_complete_with_highwater_fix(highwater_results: dict[str, dict[str, Any]]) -> None:
    r = highwater_results["fixed"]
    assert r["fixes"] == sorted(ALL_FIXES)
    assert r["exit_codes"] == [0, 0]
    assert r["first"]["total"] == HW_EVENTS
    # every update of the first run is in the changelog ...
    assert sum(r["changelog_true_end"]) == HW_EVENTS
    # ... and the restarted worker recovered all of them, nothing more.
    for state in (r["recovered"], r["later"]):
        assert (state["total"], state["distinct"], state["duplicates"]) == (HW_EVENTS, HW_EVENTS, 0), r
    print(f"with the highwater fix: {_hw_summary(r)}")


def test_table_recovery_loses_updates_without_highwater_fix(highwater_results: dict[str, dict[str, Any]]) -> None:
    r = highwater_results["unfixed"]
    assert r["fixes"] == ["seek"]
    assert r["exit_codes"] == [0, 0]
    assert r["first"]["total"] == HW_EVENTS
    assert sum(r["changelog_true_end"]) == HW_EVENTS
    # The precondition of the bug: ListOffsets under-reports the changelog's end ...
    assert sum(r["changelog_list_offsets"]) < HW_EVENTS, r
    # ... so recovery stops early and the table silently lacks the newest updates.
    assert r["recovered"]["distinct"] < HW_EVENTS, r
    assert r["later"]["distinct"] == r["recovered"]["distinct"], r
    print(f"without the highwater fix: {_hw_summary(r)}")


def _hw_summary(r: dict[str, Any]) -> str:
    return (
        f"changelog ListOffsets={r['changelog_list_offsets']} true end={r['changelog_true_end']}; "
        f"recovered total={r['recovered']['total']} distinct={r['recovered']['distinct']} of {HW_EVENTS}"
    )


# -- fix 2: seek before resume --------------------------------------------------------------


@pytest.fixture(scope="module")
def seek_results(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Both arms of: a backlog of SEEK_EVENTS events; the worker is stopped with SIGTERM
    SEEK_RESTARTS times while it consumes the backlog, then a last run finishes it.  The
    highwater fix is on in both arms (its bug would lose table updates on every restart).
    SIGTERM, not SIGKILL: after SIGKILL at-least-once processing re-counts the events
    processed since the last commit even with every fix (COMPAT.md)."""

    def arm(name: str, disable: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            a = Arm(
                bootstrap,
                tmp_path_factory.mktemp(name),
                name,
                disable,
                SEEK_PARTITIONS,
                committed_delay=SEEK_COMMITTED_DELAY,
            )
            asyncio.run(_create_topic(bootstrap, a.topic, SEEK_PARTITIONS))
            asyncio.run(_produce_ids(bootstrap, a.topic, SEEK_PARTITIONS, SEEK_EVENTS))
            runs: list[dict[str, Any]] = []
            for _ in range(SEEK_RESTARTS):
                w = a.start()
                try:
                    ready = w.wait_for(lambda s: True, 60, "ready")
                    stopped_at = w.wait_for(
                        lambda s, t=ready["total"]: s["total"] >= t + SEEK_PROGRESS or s["distinct"] >= SEEK_EVENTS,
                        60,
                        "progress",
                    )
                finally:
                    a.stopped(w)
                committed = asyncio.run(_committed(bootstrap, a.app_id, a.topic, SEEK_PARTITIONS))
                runs.append({"ready": ready, "stopped_at": stopped_at, "committed": committed})
            w = a.start()
            try:
                final = w.wait_stable(lambda s: s["distinct"] >= SEEK_EVENTS, quiet=1.5, timeout=90)
                detail = w.detail()
                fixes = final["fixes"]
            finally:
                a.stopped(w)
            committed = asyncio.run(_committed(bootstrap, a.app_id, a.topic, SEEK_PARTITIONS))
            _, ends = asyncio.run(_end_offsets(bootstrap, a.topic, SEEK_PARTITIONS))
            return {
                "fixes": fixes,
                "runs": runs,
                "final": final,
                "committed": committed,
                "ends": ends,
                "duplicated_ids": detail["duplicated"][:20],
                "skipped_ids": detail["skipped"][:20],
                "exit_codes": a.exit_codes,
            }

        return run

    fixed, unfixed = _run_arms(arm("seek-fixed", ""), arm("seek-unfixed", "seek"))
    return {"fixed": fixed, "unfixed": unfixed}


def _seek_summary(r: dict[str, Any]) -> str:
    lines = [f"fixes={r['fixes']} exit codes={r['exit_codes']}"]
    for i, run in enumerate(r["runs"], 1):
        lines.append(
            f"run {i}: ready total={run['ready']['total']} stopped at total={run['stopped_at']['total']} "
            f"distinct={run['stopped_at']['distinct']} dups={run['stopped_at']['duplicates']} "
            f"gaps={run['stopped_at']['gaps']} committed after stop={run['committed']}"
        )
    lines.append(f"final: {r['final']} committed={r['committed']} ends={r['ends']}")
    lines.append(f"duplicated ids (first 20)={r['duplicated_ids']} skipped ids={r['skipped_ids']}")
    return "\n".join(lines)


def _commit_behind(run: dict[str, Any]) -> bool:
    """After a graceful stop every counted event is committed: the committed offsets add up
    to at least the number of distinct events counted when the stop was decided."""
    return sum(c or 0 for c in run["committed"]) < run["stopped_at"]["distinct"]


def test_restarts_under_load_lose_and_duplicate_nothing_with_seek_fix(seek_results: dict[str, Any]) -> None:
    r = seek_results["fixed"]
    summary = _seek_summary(r)
    assert r["fixes"] == sorted(ALL_FIXES)
    assert r["exit_codes"] == [0] * (SEEK_RESTARTS + 1), summary
    # every stop really happened with a backlog left (that is what triggers the bug)
    assert all(run["stopped_at"]["distinct"] < SEEK_EVENTS for run in r["runs"]), summary
    # no event skipped or counted twice at any stop, nor at the end
    for run in r["runs"]:
        assert (run["stopped_at"]["duplicates"], run["stopped_at"]["gaps"]) == (0, 0), summary
        assert not _commit_behind(run), summary
    final = r["final"]
    counts = (final["total"], final["distinct"], final["duplicates"], final["gaps"])
    assert counts == (SEEK_EVENTS, SEEK_EVENTS, 0, 0), summary
    # and the group's committed offsets reached the end (a later restart re-reads nothing)
    assert r["ends"] == [SEEK_EVENTS // SEEK_PARTITIONS] * SEEK_PARTITIONS
    assert r["committed"] == r["ends"], summary
    print(f"with the seek fix:\n{summary}")


def test_restarts_under_load_go_wrong_without_seek_fix(seek_results: dict[str, Any]) -> None:
    """Without the fix the same scenario goes wrong.  The first symptom is a stalled commit:
    after a restart the committed offset of most partitions advances by one offset per commit
    (Faust marks the already-processed records as a gap and its acked-offset list gets
    duplicates), so the next restart re-processes them: events are counted twice (and in
    some runs skipped).  See COMPAT.md for the measured rates."""
    r = seek_results["unfixed"]
    summary = _seek_summary(r)
    assert r["fixes"] == ["highwater"]
    assert all(code == 0 for code in r["exit_codes"]), summary
    final = r["final"]
    went_wrong = {
        "duplicates": final["duplicates"] > 0,
        "skipped": final["gaps"] > 0 or final["distinct"] < SEEK_EVENTS,
        "commit behind at the end": r["committed"] != r["ends"],
        "commit behind at a stop": any(_commit_behind(run) for run in r["runs"]),
    }
    assert any(went_wrong.values()), f"the bug did not show this time: {went_wrong}\n{summary}"
    print(f"without the seek fix: {went_wrong}\n{summary}")


def _probe(script: str, disable: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(APP.parent / script)],
        env={**os.environ, "PYTHONPATH": str(REPO), "VASBILL_COMPAT_DISABLE": disable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("method", ["on_recovery_completed", "_resume_streams"])
def test_seek_finishes_before_streams_get_records_with_seek_fix(method: str) -> None:
    """Deterministic: a fetcher hands prefetched records to whatever partition is resumed;
    with the fix nothing reaches the streams before the seek has finished."""
    r = _probe("seek_order_probe.py", "")
    assert r["fixes"] == sorted(ALL_FIXES)
    calls = r[method]["calls"]
    assert calls.index("seek finished") < calls.index("resume_partitions"), calls
    assert r[method]["handed_during_seek"] == [], calls
    assert [c for c in calls if c.startswith("handed")] == ["handed events[0]@0", "handed events[1]@0"]


@pytest.mark.parametrize("method", ["on_recovery_completed", "_resume_streams"])
def test_streams_get_records_during_the_seek_without_seek_fix(method: str) -> None:
    r = _probe("seek_order_probe.py", "seek")
    assert r["fixes"] == ["highwater"]
    calls = r[method]["calls"]
    assert calls.index("resume_partitions") < calls.index("seek started"), calls
    # the records are handed to the streams while the seek is still running
    assert r[method]["handed_during_seek"] == ["events[0]@0", "events[1]@0"], calls


def test_empty_active_set_fetches_nothing_with_seek_fix() -> None:
    r = _probe("fetch_filter_probe.py", "")
    assert r["nothing_active"] == {"returned": {}, "still_buffered": True}
    assert r["stream_active"] == {
        "returned": {"events[0]": ["events[0]@10", "events[0]@11", "events[0]@12"]},
        "still_buffered": False,
    }


def test_empty_active_set_fetches_everything_without_seek_fix() -> None:
    """Upstream: aiokafka reads an empty partition set as "all partitions", so records of
    partitions Faust did not ask for are taken from the buffer (and Faust drops them)."""
    r = _probe("fetch_filter_probe.py", "seek")
    assert r["nothing_active"] == {
        "returned": {"events[0]": ["events[0]@10", "events[0]@11", "events[0]@12"]},
        "still_buffered": False,
    }
    assert r["stream_active"] == {"returned": {}, "still_buffered": False}  # they are gone


# -- installation, version guard, settings ----------------------------------------------------


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_install_is_idempotent_and_patches_the_named_functions() -> None:
    result = _python(
        """
        from faust.tables.recovery import Recovery
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as T
        originals = (Recovery.on_recovery_completed, Recovery._resume_streams, T._highwaters, T._fetch_records)
        from workers.compat import install_broker_compat, installed_fixes
        assert installed_fixes() == frozenset()
        first = install_broker_compat()
        patched = (Recovery.on_recovery_completed, Recovery._resume_streams, T._highwaters, T._fetch_records)
        assert all(p is not o and p.__wrapped__ is o for p, o in zip(patched, originals))
        assert install_broker_compat() == first == installed_fixes() == {"highwater", "seek"}
        assert (Recovery.on_recovery_completed, Recovery._resume_streams, T._highwaters, T._fetch_records) == patched
        print("ok")
        """,
        VASBILL_COMPAT_DISABLE="",
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize(("disable", "expected"), [("seek", ["highwater"]), ("highwater", ["seek"]), ("all", [])])
def test_disable_env_skips_fixes(disable: str, expected: list[str]) -> None:
    result = _python(
        """
        import json
        from faust.tables.recovery import Recovery
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread as T
        from workers.compat import install_broker_compat
        fixes = install_broker_compat()
        seek = hasattr(Recovery.on_recovery_completed, "__wrapped__")
        assert seek == hasattr(Recovery._resume_streams, "__wrapped__") == hasattr(T._fetch_records, "__wrapped__")
        highwater = hasattr(T._highwaters, "__wrapped__")
        print(json.dumps([sorted(fixes), seek, highwater]))
        """,
        VASBILL_COMPAT_DISABLE=disable,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [expected, "seek" in expected, "highwater" in expected]
    assert "fixes NOT applied" in result.stderr


def test_refuses_other_faust_versions() -> None:
    result = _python(
        """
        import faust
        faust.__version__ = "0.16.0"
        from faust.tables.recovery import Recovery
        original = Recovery.on_recovery_completed
        from workers.compat import BrokerCompatError, install_broker_compat, installed_fixes
        try:
            install_broker_compat()
        except BrokerCompatError as exc:
            assert "0.15.3" in str(exc) and "0.16.0" in str(exc), exc
            assert Recovery.on_recovery_completed is original and not installed_fixes()
            print("refused")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "refused", result.stderr


def test_disable_parsing() -> None:
    assert _parse_disable(None) == frozenset()
    assert _parse_disable("") == frozenset()
    assert _parse_disable(" Seek , highwater") == ALL_FIXES
    assert _parse_disable("all") == ALL_FIXES
    assert _parse_disable(["seek"]) == {"seek"}
    with pytest.raises(BrokerCompatError, match="unknown fix 'seak'"):
        _parse_disable("seak")


def test_settings_are_separate() -> None:
    embedded = embedded_broker_settings()
    assert embedded["broker_session_timeout"] == 3.0
    assert embedded["broker_heartbeat_interval"] == 0.3
    assert embedded["processing_guarantee"] == "at_least_once"
    production = production_settings()
    assert production["broker_session_timeout"] == 60.0
    assert production["broker_heartbeat_interval"] == 3.0
    assert embedded_broker_settings(topic_partitions=8)["topic_partitions"] == 8
    # fresh dicts: callers may mutate them
    embedded["broker_session_timeout"] = 1.0
    assert embedded_broker_settings()["broker_session_timeout"] == 3.0


FETCH_WAIT_PROBE = """
import asyncio, faust
from workers.compat import set_consumer_fetch_wait

async def created_wait(app):  # aiokafka consumers are created inside a running loop
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        return consumer._fetch_max_wait_ms
    finally:
        await consumer.stop()

app = faust.App("fetch-wait", broker="kafka://127.0.0.1:1")
set_consumer_fetch_wait(100)
embedded = asyncio.run(created_wait(app))
set_consumer_fetch_wait(None)
print(embedded, asyncio.run(created_wait(app)))
"""


def test_consumer_fetch_wait_is_set_for_the_embedded_broker_only() -> None:
    """The stream consumer's fetch wait: 100 ms on the embedded broker, Faust's 1500 otherwise."""
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", FETCH_WAIT_PROBE], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["100", "1500"]

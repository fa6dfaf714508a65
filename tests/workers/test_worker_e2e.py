"""The worker end to end: real Tansu broker, real ``vasbill worker`` subprocesses, and the
``vasbill`` commands users run (SPEC §2, §3, §6, §9, §10, §12).

Every test has its own topic prefix on the session broker and its own consumer group
(``--app-id``). The reference is ``vasbill rate`` on the same files: the worker with the event
clock must give the same charges (SPEC §12 "Correct"), also when it is stopped or killed
mid-stream and restarted (SPEC §12 "Reliable"), and when two workers share the partitions.

Completion is observed, not slept for: the tests poll the consumer group's committed offsets
and the billing topics, then wait a short settle time so that extra charges would show.
Phase timings are printed in the "vasbill end-to-end timings" section of the summary.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from fixtures.worker import (
    Stack,
    Timer,
    WorkerGroup,
    WorkerProcess,
    assigned_partitions,
    by_key,
    cli,
    latest,
    read_jsonl,
)

from workers.broker import EmbeddedBroker

GB = 10**9
TORN_WORKER = Path(__file__).parents[1] / "fixtures" / "torn_worker.py"
TORN_EXIT = 3
BJ = timezone(timedelta(hours=8))


# -- the month: generated usage and what ``vasbill rate`` makes of it --------------------------


class Month:
    def __init__(self, directory: Path, accounts: int = 5, scale: float = 0.2, seed: int = 7) -> None:
        self.events = directory / "events.jsonl"
        self.apps = directory / "apps.jsonl"
        self.rate_out = directory / "rate.jsonl"
        self.rate_quarantine = directory / "rate-quarantine.jsonl"
        gen = cli("gen", "--accounts", str(accounts), "--scale", str(scale), "--seed", str(seed),
                  "--out", str(self.events), "--apps-out", str(self.apps))
        assert gen.exit_code == 0, gen.output
        rate = cli("rate", "--events", str(self.events), "--apps", str(self.apps), "--out", str(self.rate_out),
                   "--quarantine", str(self.rate_quarantine))
        assert rate.exit_code == 0, rate.output
        self.charges = read_jsonl(self.rate_out)
        self.keyed = by_key(self.charges)                  # (charge_id, revision) -> [charge]
        self.latest = latest(self.charges)                 # charge_id -> latest revision
        self.lines = sum(1 for line in self.events.read_bytes().splitlines() if line.strip())
        self.quarantine = sorted(_rejection(doc) for doc in read_jsonl(self.rate_quarantine))


def _rejection(doc: dict[str, Any]) -> tuple[str, str, str]:
    """What identifies a quarantined event whether or not it travelled in a batch (a batch's
    events are re-serialised, so the payload text itself may differ)."""
    return doc["reason"], str(doc.get("sdk_app_id")), str(doc.get("event_id"))


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    """5 accounts, a month of every item with packages, bad, late and duplicate events."""
    m = Month(tmp_path_factory.mktemp("month"))
    revisions = [c["revision"] for c in m.charges]
    items = {c["item"] for c in m.charges}
    assert max(revisions) > 1, "the month must have late events that make revisions"
    assert len({reason for reason, _, _ in m.quarantine}) >= 4, m.quarantine
    assert len({c["account_id"] for c in m.charges}) >= 5
    assert {"relay.traffic", "recording.peak_channels", "transcode.standard", "vod.storage", "snapshot",
            "im.dau_overage"} <= items, items
    return m


def _diff(got: list[dict[str, Any]], month: Month) -> str:
    """A short account of how the worker's charges differ from ``rate``'s."""
    keyed, last = by_key(got), latest(got)
    missing = sorted(set(month.keyed) - set(keyed))
    extra = sorted(set(keyed) - set(month.keyed))
    differ = sorted(k for k in set(keyed) & set(month.keyed) if keyed[k][0] != month.keyed[k][0])
    wrong_latest = sorted(cid for cid in month.latest if last.get(cid) != month.latest[cid])
    lines = [f"worker: {len(got)} records, {len(keyed)} (charge_id, revision); rate: {len(month.charges)}",
             f"missing {len(missing)}: {missing[:5]}", f"extra {len(extra)}: {extra[:5]}",
             f"different content {len(differ)}: {differ[:5]}",
             f"charge_ids whose latest revision differs {len(wrong_latest)}: {wrong_latest[:5]}"]
    if differ:
        k = differ[0]
        lines.append(f"first difference {k}:\n  worker {keyed[k][0]}\n  rate   {month.keyed[k][0]}")
    return "\n".join(lines)


def _conflicts(got: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(charge_id, revision) emitted more than once with different content (emitted_at aside)."""
    return sorted(k for k, copies in by_key(got).items() if any(c != copies[0] for c in copies))


def _produce_month(stack: Stack, month: Month, *args: str) -> str:
    """The default packs a partition's events, in file order, up to 1000 a message; the
    restart tests pass ``--batch 5`` so there are enough messages to stop the worker between."""
    stack.produce(month.apps)
    return stack.produce(month.events, *args)


# -- 1. equivalence -----------------------------------------------------------------------------


def test_a_month_through_kafka_and_the_worker_equals_vasbill_rate(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer) -> None:
    worker = worker_group(stack.prefix, "e2e-equiv")
    worker.wait_ready()
    timer.mark("worker ready")
    summary = _produce_month(stack, month)
    assert f"produced {month.lines} lines" in summary, summary
    timer.mark(f"produce {month.lines} lines")
    stack.wait_for_progress(worker.group, 1.0, timeout=120, alive=(worker,))
    timer.mark("consumed")
    stack.tick("--final")
    stack.wait_for_charges(keys=set(month.keyed), timeout=60, alive=(worker,), on_fail=worker.log_tail)
    timer.mark("final charges")

    quarantined = sorted(_rejection(json.loads(r.value)) for r in stack.quarantine())
    only_worker = Counter(quarantined) - Counter(month.quarantine)
    only_rate = Counter(month.quarantine) - Counter(quarantined)
    assert not only_worker and not only_rate, (
        f"the worker should quarantine what rate rejects; only the worker: {list(only_worker)[:5]}, "
        f"only rate: {list(only_rate)[:5]}")
    timer.note(f"{len(quarantined)} quarantined = rate")

    got = stack.charges_cli()  # `vasbill charges`, to the end of the billing topics
    keyed = by_key(got)
    assert set(keyed) == set(month.keyed), _diff(got, month)
    differ = [k for k in keyed if keyed[k][0] != month.keyed[k][0]]
    assert not differ, _diff(got, month)
    assert len(got) == len(month.charges), "an undisturbed run emits every revision once\n" + _diff(got, month)
    timer.note(f"{len(got)} charges = rate")


# -- 2. restarts --------------------------------------------------------------------------------


def _check_after_restarts(stack: Stack, month: Month, worker: WorkerProcess, timer: Timer) -> None:
    stack.wait_for_progress(worker.group, 1.0, timeout=120, alive=(worker,))
    timer.mark("consumed")
    stack.tick("--final")
    try:
        got = stack.wait_for_charges(month.latest, timeout=60, alive=(worker,), on_fail=worker.log_tail)
    finally:
        timer.mark("final charges")
    conflicts = _conflicts(got)
    keyed = by_key(got)
    same_revisions = set(keyed) == set(month.keyed) and all(keyed[k][0] == month.keyed[k][0] for k in keyed)
    timer.note(f"every revision identical to rate's: {same_revisions}; "
               f"duplicate records: {len(got) - len(keyed)}, with different content: {len(conflicts)}")
    if conflicts or not same_revisions:
        report = _diff(got, month) + "\n" + stack.lag_report(worker.group)
        assert not conflicts, f"revisions emitted twice with different content: {conflicts[:5]}\n{report}"
        raise AssertionError(f"every revision must be rate's, none extra, none missing\n{report}")


def _stop_at(stack: Stack, worker: WorkerProcess, fraction: float, how: str, timer: Timer) -> None:
    """Stop ``worker`` (SIGTERM or SIGKILL) once its group has committed ``fraction`` of the
    usage messages, check it was mid-stream, and start it again with the same app id."""
    committed, total = stack.wait_for_progress(worker.group, fraction, timeout=90, alive=(worker,))
    code = worker.terminate() if how == "term" else worker.kill()
    timer.mark(f"{how} at {committed}/{total} committed (exit {code})")
    assert committed < total, f"the worker had finished ({committed}/{total}) before it could be stopped mid-stream"
    if how == "term":
        assert code == 0, f"SIGTERM should stop the worker cleanly\n{worker.log_tail()}"
    worker.start()
    worker.wait_ready()
    timer.mark("ready again")


def test_sigterm_mid_stream_and_restart_gives_the_charges_of_rate(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer) -> None:
    """Live: the worker is running while the month is produced; SIGTERM at about a quarter."""
    worker = worker_group(stack.prefix, "e2e-term")
    worker.wait_ready()
    timer.mark("worker ready")
    _produce_month(stack, month, "--batch", "5")
    timer.mark("produce")
    _stop_at(stack, worker, 0.25, "term", timer)
    _check_after_restarts(stack, month, worker, timer)


def test_kill_9_twice_during_a_replay_memory_store_recovers_from_changelogs(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer) -> None:
    """Replay: the month is on the topics before the worker starts; kill -9 twice."""
    _produce_month(stack, month, "--batch", "5")
    timer.mark("produce")
    worker = worker_group(stack.prefix, "e2e-kill")
    worker.wait_ready()
    timer.mark("worker ready")
    _stop_at(stack, worker, 0.2, "kill", timer)
    _stop_at(stack, worker, 0.55, "kill", timer)
    _check_after_restarts(stack, month, worker, timer)


def test_kill_9_during_a_replay_rocksdb_store(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer, tmp_path: Path) -> None:
    _produce_month(stack, month, "--batch", "5")
    timer.mark("produce")
    worker = worker_group(stack.prefix, "e2e-rocks", store="rocksdb", data_dir=tmp_path / "tables")
    worker.wait_ready()
    timer.mark("worker ready")
    _stop_at(stack, worker, 0.35, "kill", timer)
    _check_after_restarts(stack, month, worker, timer)


def test_after_a_kill_9_on_rocksdb_another_worker_can_take_over_from_the_changelogs(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer, tmp_path: Path) -> None:
    """A partition moving to another node after a crash: kill -9 of a RocksDB worker, a
    restart on the same data dir (which must discard its local tables: workers/local_tables.py),
    then a worker with an empty data dir takes over, recovers every table from the changelogs
    and closes the month: the charges must be rate's.

    The hole the discard closes is narrow: local files ahead of the changelogs by more than
    the last batch (the journal rewrites that one), and Faust lets its changelog buffer ebb
    before each batch, so this test also passed in 4 of 4 runs with the discard switched off;
    it pins the takeover, ``test_local_tables.py`` the rule."""
    _produce_month(stack, month, "--batch", "5")
    timer.mark("produce")
    worker = worker_group(stack.prefix, "e2e-move", store="rocksdb", data_dir=tmp_path / "node-a")
    worker.wait_ready()
    _stop_at(stack, worker, 0.3, "kill", timer)
    restarted = worker.log_path.read_text(errors="replace").split("===== start 2")[1]
    assert "did not stop cleanly" in restarted, "the restarted worker should discard its local tables"
    stack.wait_for_progress(worker.group, 1.0, timeout=120, alive=(worker,))
    assert worker.terminate() == 0, worker.log_tail()
    timer.mark("node a consumed everything and stopped")
    other = worker_group(stack.prefix, "e2e-move", store="rocksdb", data_dir=tmp_path / "node-b")
    other.wait_ready()
    timer.mark("node b ready")
    _check_after_restarts(stack, month, other, timer)


def test_one_data_dir_for_replays_on_two_fresh_clusters_bills_each_like_rate(
        timer: Timer, tmp_path: Path) -> None:
    """What a billing engineer replaying held-out files does: a fresh embedded broker per file,
    ``vasbill worker`` with its defaults (RocksDB in one data dir, no prefix, app id
    ``vasbill``), stopped cleanly between files. The second run must not take the first
    run's local tables (their changelogs are not on the new cluster; their offsets and
    dedupe ids would skip the new file's events): workers/local_tables.py."""
    data_dir = tmp_path / "vasbill-data"
    for run, seed in enumerate((11, 12), 1):
        (tmp_path / f"file-{run}").mkdir()
        month = Month(tmp_path / f"file-{run}", accounts=2, scale=0.05, seed=seed)
        with EmbeddedBroker(port=0) as cluster:
            stack = Stack(cluster.bootstrap, "")
            stack.create_topics()
            worker = WorkerProcess(cluster.bootstrap, "", "vasbill", tmp_path / f"worker-{run}.log",
                                   store="rocksdb", data_dir=data_dir, loglevel="info")
            try:
                worker.start()
                worker.wait_ready()
                _produce_month(stack, month)
                stack.wait_for_progress(worker.group, 1.0, timeout=120, alive=(worker,))
                stack.tick("--final")
                got = stack.wait_for_charges(keys=set(month.keyed), timeout=60, alive=(worker,),
                                             on_fail=worker.log_tail)
                log = worker.log_path.read_text(errors="replace")
                assert worker.terminate() == 0, worker.log_tail()
            finally:
                if worker.process is not None and worker.process.poll() is None:
                    worker.kill()
        keyed = by_key(got)
        assert set(keyed) == set(month.keyed) and all(keyed[k][0] == month.keyed[k][0] for k in keyed), (
            f"file {run}: " + _diff(got, month))
        discarded = "its changelog topics are not on the cluster" in log
        assert discarded == (run == 2), f"file {run}: local tables discarded: {discarded}"
        timer.mark(f"file {run}: {len(month.keyed)} revisions = rate" + (", old tables discarded" * discarded))


def test_a_crash_in_the_middle_of_a_batchs_table_writes_is_completed_on_restart(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer, tmp_path: Path) -> None:
    """kill -9 rarely lands between a batch's table writes (one synchronous loop, sent in the
    background). Here, past 30 % of a replay, the worker writes one batch's journal and all its
    keys but the last, then nothing more (tests/fixtures/torn_worker.py); the restarted worker
    is torn the same way in its first batch, then runs undisturbed. It must complete the torn
    batches from their journals and still bill exactly like ``rate``."""
    _produce_month(stack, month, "--batch", "5")
    timer.mark("produce")
    trigger = tmp_path / "tear"
    worker = worker_group(stack.prefix, "e2e-torn", loglevel="info", launcher=TORN_WORKER,
                          env={"VASBILL_TEST_TEAR": str(trigger)})
    worker.wait_ready()
    committed, total = stack.wait_for_progress(worker.group, 0.3, timeout=90, alive=(worker,))
    assert committed < total, "the tear should come mid-stream"
    trigger.touch()
    for start in (1, 2):  # the second tear: the restarted worker's first batch of two keys or more
        code = worker.process.wait(60) if worker.process else None
        log = worker.log_path.read_text(errors="replace").split("===== start")[-1]
        assert code == TORN_EXIT and "torn_worker: writes of" in log, f"exit {code}\n{worker.log_tail()}"
        what = log[log.index("torn_worker: writes of") + 23:].split(";")[0]
        timer.mark(f"torn ({what}){f' at {committed}/{total} committed' if start == 1 else ''}")
        if start == 2:
            trigger.unlink()
        worker.start()
    worker.wait_ready()
    timer.mark("ready again")
    _check_after_restarts(stack, month, worker, timer)
    restarted = worker.log_path.read_text(errors="replace").split("===== start 2")[1]
    assert "wrote the last journaled batch again" in restarted, "the restart should have completed the journal"


# -- 3. two workers in one group ----------------------------------------------------------------


def test_two_workers_share_the_partitions_and_give_the_charges_of_rate(
        stack: Stack, worker_group: WorkerGroup, month: Month, timer: Timer) -> None:
    first = worker_group(stack.prefix, "e2e-pair", loglevel="info")
    second = worker_group(stack.prefix, "e2e-pair", loglevel="info")
    assert first.web_port != second.web_port

    def settled(doc: dict[str, Any]) -> bool:
        return doc.get("assigned_partitions", 0) > 0 and not doc.get("rebalancing")

    first.wait_ready(condition=settled)
    second.wait_ready(condition=settled)
    timer.mark("both ready")
    # stage 0 reads every usage partition in one of them (the sequencer); the stateful
    # stages split the internal events topic between them
    usage = {f"{first.group}.events"}

    def holdings() -> tuple[dict[str, set[int]], dict[str, set[int]]]:
        return (assigned_partitions(first.log_path.read_text(errors="replace")),
                assigned_partitions(second.log_path.read_text(errors="replace")))

    a, b = holdings()
    docs = (first.readyz(), second.readyz())
    assert all(d and d["ready"] and d["assigned_partitions"] > 0 for d in docs), docs
    for topic in sorted(usage):
        held_a, held_b = a.get(topic, set()), b.get(topic, set())
        assert held_a and held_b, f"{topic}: each worker should hold partitions, got {held_a} and {held_b}"
        assert not held_a & held_b and held_a | held_b == set(range(stack.partitions)), (topic, held_a, held_b)
    timer.note(f"assigned: {docs[0]['assigned_partitions']} + {docs[1]['assigned_partitions']} partitions")

    _produce_month(stack, month)
    timer.mark("produce")
    stack.wait_for_progress(first.group, 1.0, timeout=120, alive=(first, second))
    timer.mark("consumed")
    assert holdings() == (a, b), "no rebalance was expected while both workers ran"
    stack.tick("--final")
    got = stack.wait_for_charges(keys=set(month.keyed), timeout=60, alive=(first, second),
                                 on_fail=lambda: first.log_tail() + "\n" + second.log_tail())
    timer.mark("final charges")
    keyed = by_key(got)
    assert set(keyed) == set(month.keyed), _diff(got, month)
    assert all(keyed[k][0] == month.keyed[k][0] for k in keyed), _diff(got, month)
    assert not _conflicts(got) and len(got) == len(month.charges), _diff(got, month)


# -- 4. quarantine ------------------------------------------------------------------------------

Q_APP, Q_ACCOUNT, Q_UNKNOWN = 1400000101, "acct-quarantine", 1400000999
Q_NEW, Q_NEW_ACCOUNT = 1400000102, "acct-quarantine-new"


def _bj(moment: datetime) -> str:
    return moment.astimezone(BJ).replace(microsecond=0).isoformat()


def test_every_quarantine_reason_arrives_with_its_payload_and_duplicates_do_not(
        stack: Stack, worker_group: WorkerGroup, tmp_path: Path, timer: Timer) -> None:
    now = datetime.now(timezone.utc)
    recent = (now - timedelta(days=5)).astimezone(BJ).replace(hour=10, minute=0, second=0, microsecond=0)
    config = {"sdk_app_id": Q_APP, "account_id": Q_ACCOUNT, "effective_from": _bj(now - timedelta(days=400)),
              "services": {"relay": True, "recording": False}}
    apps = tmp_path / "apps.jsonl"
    apps.write_bytes(orjson.dumps(config) + b"\n")

    def relay(event_id: str, when: datetime, app: int = Q_APP, **extra: Any) -> dict[str, Any]:
        doc = {"event_id": event_id, "sdk_app_id": app, "type": "relay.traffic", "time": _bj(when),
               "stream_id": "s1", "zone": "mainland", "bytes": 10 * GB, "interval_s": 300}
        return {**doc, **extra}

    ok = relay("q-ok", recent)
    schema = relay("q-schema", recent + timedelta(minutes=5))
    del schema["stream_id"]
    rejected: dict[str, bytes] = {
        "malformed_json": b'{"event_id": "q-json", "sdk_app_id": 1400000101, "type": "relay.traffic", "time":',
        "schema": orjson.dumps(schema),
        "too_large": orjson.dumps(relay("q-large", recent + timedelta(minutes=10), pad="x" * 70_000)),
        "future": orjson.dumps(relay("q-future", now + timedelta(days=1))),
        "unknown_app": orjson.dumps(relay("q-unknown", recent, app=Q_UNKNOWN)),
        "service_disabled": orjson.dumps({"event_id": "q-disabled", "sdk_app_id": Q_APP, "type": "recording.start",
                                          "time": _bj(recent), "task_id": "t1", "stream_id": "s1",
                                          "format": "mp4"}),
        "too_late": orjson.dumps(relay("q-late", recent - timedelta(days=45))),
    }
    assert len(rejected["too_large"]) > 64 * 1024
    # an app whose config comes in the same file just before its first event: the worker may
    # meet the event before its config reader has the config; it must read again, not quarantine
    new_app = {**config, "sdk_app_id": Q_NEW, "account_id": Q_NEW_ACCOUNT}
    lines = [orjson.dumps(new_app), orjson.dumps(relay("q-new", recent, app=Q_NEW))]
    lines += [orjson.dumps(ok), orjson.dumps(ok), *rejected.values(), orjson.dumps(ok)]  # ok twice more: duplicates
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")

    worker = worker_group(stack.prefix, "e2e-quarantine")
    worker.wait_ready()
    timer.mark("worker ready")
    stack.produce(apps)
    stack.produce(events, "--batch", "10")
    stack.tick("--final")
    # the final tick reaches the partitions after the events: once the charge is out, all is done
    got = stack.wait_for_charges(keys={(f"css/relay.traffic/{account}/{recent.date()}", 1)
                                       for account in (Q_ACCOUNT, Q_NEW_ACCOUNT)}, timeout=60,
                                 alive=(worker,), on_fail=worker.log_tail)
    timer.mark("charge")

    records = stack.quarantine()
    found = sorted(((json.loads(r.value)["reason"], r.key, json.loads(r.value)) for r in records), key=lambda f: f[0])
    reasons = [reason for reason, _, _ in found]
    details = [(reason, doc["detail"]) for reason, _, doc in found]
    assert reasons == sorted(rejected), f"one record per reason, no duplicates: {details}"
    for reason, key, doc in found:
        assert doc["payload"] == rejected[reason].decode(), (reason, doc["payload"][:200])
        assert doc["detail"], doc
        if reason == "malformed_json":
            assert key in (None, b""), key
        elif reason == "too_large":  # not parsed (too big to trust): the app may be unknown
            assert (key, doc["sdk_app_id"]) in ((b"", None), (str(Q_APP).encode(), Q_APP)), (key, doc)
        else:
            want = Q_UNKNOWN if reason == "unknown_app" else Q_APP
            assert key == str(want).encode() and doc["sdk_app_id"] == want, (reason, key, doc["sdk_app_id"])
            assert doc["event_id"] == json.loads(rejected[reason])["event_id"]

    # the accepted event once (its two duplicates are neither charged nor quarantined), and the new app's
    assert sorted(c["account_id"] for c in got) == sorted([Q_ACCOUNT, Q_NEW_ACCOUNT]), got
    for charge in got:
        assert charge["lines"][0]["quantity"] == "10" and Decimal(charge["amount"]) == Decimal("2.6"), charge
    timer.note(f"{len(records)} quarantined")


S_APP, S_ACCOUNT = 1400000103, "acct-config-switch"


def test_a_config_change_produced_just_before_its_events_applies_to_them(
        stack: Stack, worker_group: WorkerGroup, tmp_path: Path, timer: Timer) -> None:
    """Relay off, then (in the events file) on from yesterday: the relay event right after
    the change is billed. The worker's config reader polls every second; the usage message
    carries the config offsets it needs (vasbill-configs header) and the worker reads up to
    them first. Without that the event is quarantined as service_disabled."""
    now = datetime.now(timezone.utc)
    recent = (now - timedelta(days=5)).astimezone(BJ).replace(hour=10, minute=0, second=0, microsecond=0)
    off = {"sdk_app_id": S_APP, "account_id": S_ACCOUNT, "effective_from": _bj(now - timedelta(days=400)),
           "services": {"relay": False}}
    on = {**off, "effective_from": _bj(recent - timedelta(days=1)), "services": {"relay": True}}
    event = {"event_id": "s-1", "sdk_app_id": S_APP, "type": "relay.traffic", "time": _bj(recent),
             "stream_id": "s1", "zone": "mainland", "bytes": 10 * GB, "interval_s": 300}
    apps, events = tmp_path / "apps.jsonl", tmp_path / "events.jsonl"
    apps.write_bytes(orjson.dumps(off) + b"\n")
    events.write_bytes(orjson.dumps(on) + b"\n" + orjson.dumps(event) + b"\n")

    worker = worker_group(stack.prefix, "e2e-config-switch")
    worker.wait_ready()
    stack.produce(apps)
    time.sleep(2.5)  # the worker's reader has the "off" version by now (it polls every second)
    timer.mark("worker ready, relay off")
    stack.produce(events)
    stack.tick("--final")
    got = stack.wait_for_charges(keys={(f"css/relay.traffic/{S_ACCOUNT}/{recent.date()}", 1)}, timeout=60,
                                 alive=(worker,), on_fail=worker.log_tail)
    timer.mark("charge")
    assert [c["amount"] for c in got] == ["2.6"], got
    assert [json.loads(r.value)["reason"] for r in stack.quarantine()] == []


# -- 5. a late event after the close ------------------------------------------------------------

L_APP, L_ACCOUNT = 1400000201, "acct-late"


def test_a_late_event_after_the_close_emits_revision_2_with_the_delta(
        stack: Stack, worker_group: WorkerGroup, tmp_path: Path, timer: Timer) -> None:
    """Day D = 2026-08-10, mainland standard relay traffic (tencent-2022: 0.26 CNY/GB below
    2000 GB a day, 0.25 for the whole day from 2000 GB). 1500 GB on D; an event of D+1 03:00
    and a tick to D+1 03:00 close D (2 h grace): revision 1 = 1500 × 0.26 = 390. Then 600 GB
    more for D: revision 2 = 2100 × 0.25 = 525, previous_amount 390, delta 135."""
    config = {"sdk_app_id": L_APP, "account_id": L_ACCOUNT, "effective_from": "2026-07-01T00:00:00+08:00",
              "services": {"relay": True}}

    def relay(event_id: str, when: str, gb: int) -> bytes:
        return orjson.dumps({"event_id": event_id, "sdk_app_id": L_APP, "type": "relay.traffic", "time": when,
                             "stream_id": "s1", "zone": "mainland", "bytes": gb * GB, "interval_s": 300})

    (tmp_path / "apps.jsonl").write_bytes(orjson.dumps(config) + b"\n")
    (tmp_path / "first.jsonl").write_bytes(relay("l-1", "2026-08-10T10:00:00+08:00", 1500) + b"\n"
                                           + relay("l-2", "2026-08-11T03:00:00+08:00", 1) + b"\n")
    (tmp_path / "late.jsonl").write_bytes(relay("l-3", "2026-08-10T11:00:00+08:00", 600) + b"\n")
    day = f"css/relay.traffic/{L_ACCOUNT}/2026-08-10"
    next_day = f"css/relay.traffic/{L_ACCOUNT}/2026-08-11"

    worker = worker_group(stack.prefix, "e2e-late")
    worker.wait_ready()
    timer.mark("worker ready")
    stack.produce(tmp_path / "apps.jsonl")
    stack.produce(tmp_path / "first.jsonl")
    stack.tick("--time", "2026-08-11T03:00:00+08:00")  # the partitions without events pass D's close too
    got = stack.wait_for_charges(keys={(day, 1)}, timeout=60, alive=(worker,), on_fail=worker.log_tail)
    timer.mark("revision 1")
    assert [c["charge_id"] for c in got] == [day], "only D is closed"
    first = got[0]
    assert (first["revision"], Decimal(first["amount"]), first["previous_amount"], Decimal(first["delta"])) == (
        1, Decimal("390"), "0", Decimal("390")), first
    assert [(line["quantity"], line["unit_price"]) for line in first["lines"]] == [("1500", "0.26")], first["lines"]

    stack.produce(tmp_path / "late.jsonl")
    got = stack.wait_for_charges(keys={(day, 2)}, timeout=60, alive=(worker,), on_fail=worker.log_tail)
    timer.mark("revision 2")
    second = next(c for c in got if c["charge_id"] == day and c["revision"] == 2)
    assert Decimal(second["amount"]) == Decimal("525"), second
    assert Decimal(second["previous_amount"]) == Decimal("390"), second
    assert Decimal(second["delta"]) == Decimal("135"), second
    assert second["amount_rounded"] == "525.00"
    assert [(line["quantity"], line["unit_price"]) for line in second["lines"]] == [("2100", "0.25")], second["lines"]
    assert [c for c in got if c["charge_id"] == day and c["revision"] == 1] == [first], "revision 1 is never changed"

    stack.tick("--final")
    got = stack.wait_for_charges(keys={(next_day, 1)}, timeout=60, alive=(worker,), on_fail=worker.log_tail)
    timer.mark("final")
    assert sorted(by_key(got)) == [(day, 1), (day, 2), (next_day, 1)], sorted(by_key(got))
    assert Decimal(latest(got)[next_day]["amount"]) == Decimal("0.26")


# -- 6. a late revision and a shared package: the order of rating is the replay's -------------

P_APP, P_ACCOUNT = 1400000301, "acct-package"


def test_a_late_revision_takes_package_balance_in_replay_order(
        stack: Stack, worker_group: WorkerGroup, tmp_path: Path, timer: Timer) -> None:
    """One account with a 100 GB css_traffic package (mainland 0.26 CNY/GB below 2000 GB):
    50 GB on D1, 60 GB on D2, an event of D3 03:00 (closes D2), then 30 GB more for D1.
    ``vasbill rate`` closes D1 (50 from the package), then D2 (50 from the package, 10 × 0.26
    = 2.6), and only then re-rates D1 with the late 30 GB: the package is empty, so revision 2
    is 30 × 0.26 = 7.8. The worker must rate in the same order, even though its other usage
    partitions (no events) hold the closes back until the final tick."""
    config = {"sdk_app_id": P_APP, "account_id": P_ACCOUNT, "effective_from": "2026-07-01T00:00:00+08:00",
              "services": {"relay": True},
              "packages": [{"package_id": "pkg-e2e", "kind": "css_traffic", "size": "100",
                            "purchased_at": "2026-08-01T00:00:00+08:00", "expires_at": None}]}

    def relay(event_id: str, when: str, gb: int) -> bytes:
        return orjson.dumps({"event_id": event_id, "sdk_app_id": P_APP, "type": "relay.traffic", "time": when,
                             "stream_id": "s1", "zone": "mainland", "bytes": gb * GB, "interval_s": 300})

    apps, events = tmp_path / "apps.jsonl", tmp_path / "events.jsonl"
    apps.write_bytes(orjson.dumps(config) + b"\n")
    events.write_bytes(b"\n".join([relay("p-1", "2026-08-10T10:00:00+08:00", 50),
                                   relay("p-2", "2026-08-11T10:00:00+08:00", 60),
                                   relay("p-3", "2026-08-12T03:00:00+08:00", 1),
                                   relay("p-4", "2026-08-10T11:00:00+08:00", 30)]) + b"\n")
    rate_out = tmp_path / "rate.jsonl"
    result = cli("rate", "--events", str(events), "--apps", str(apps), "--out", str(rate_out))
    assert result.exit_code == 0, result.output
    expected = read_jsonl(rate_out)
    day = f"css/relay.traffic/{P_ACCOUNT}/2026-08-"
    assert [(c["charge_id"], c["revision"], c["amount"], c["lines"][0]["package_deducted"]) for c in expected] == [
        (day + "10", 1, "0", "50"), (day + "11", 1, "2.6", "50"), (day + "10", 2, "7.8", "50"),
        (day + "12", 1, "0.26", "0")], "the hand-computed reference"

    worker = worker_group(stack.prefix, "e2e-package")
    worker.wait_ready()
    timer.mark("worker ready")
    stack.produce(apps)
    stack.produce(events)
    stack.tick("--final")
    got = stack.wait_for_charges(keys=set(by_key(expected)), timeout=60, alive=(worker,), on_fail=worker.log_tail)
    timer.mark("charges")
    summary = [(c["charge_id"][-10:], c["revision"], c["amount"], c["lines"][0]["package_deducted"]) for c in got]
    assert by_key(got) == by_key(expected), f"worker (in emission order): {summary}"

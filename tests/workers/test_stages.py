"""The worker's two stages without a broker: partitions, batches and interleavings are
simulated in-process over dict stores, and the charges must equal ``vasbill rate``'s.

This pins the logic that the Kafka tests exercise end to end: per-partition clocks from
the replay header, late summaries held for a unit's first rating, pruning past the
horizon, and account-level merging of apps that sit in different partitions.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from fixtures.stores import RecordedWrites

from rating.biller import BillingSettings, rate_lines
from topics import clockstamp
from topics.appconfig import AppConfig, AppDirectory
from topics.charges import Charge
from topics.clockstamp import ReplayClock, encode
from topics.names import USAGE_TOPIC_OF_TYPE, USAGE_TOPICS
from vasbill.gen import GenOptions, generate
from workers import dedupe_ids
from workers.ingest import LANE_HEADER, OWN_HEADER, Router, Tick, fanout_marker
from workers.journal import Journal
from workers.kv import MAX_VALUE_BYTES, BatchKV
from workers.stages import Lanes, Stage1, Stage1Output, Stage2

PARTITIONS = 4
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _lines(events: Any) -> list[bytes]:
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


@pytest.fixture(scope="module")
def month() -> tuple[AppDirectory, list[bytes]]:
    docs, events = generate(GenOptions(accounts=4, month="2026-08", seed=7, scale=0.2, bad=True))
    return AppDirectory(AppConfig.from_dict(d) for d in docs), _lines(events)


def _shifted(lines: list[bytes], days: int) -> list[bytes]:
    """The same usage ``days`` later with new ids (a second month of data)."""
    out = []
    for line in lines:
        try:
            doc = orjson.loads(line)
            when = datetime.fromisoformat(doc["time"]) + timedelta(days=days)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if when.year > 2050:
            continue
        doc["time"], doc["event_id"] = when.isoformat(), f"{doc['event_id']}-n"
        if "task_id" in doc:
            doc["task_id"] = f"{doc['task_id']}-n"
        if isinstance(doc.get("date"), str):
            doc["date"] = (datetime.strptime(doc["date"], "%Y-%m-%d") + timedelta(days=days)).strftime("%Y-%m-%d")
        out.append(orjson.dumps(doc))
    return out


def simulate(apps: AppDirectory, lines: list[bytes], settings: BillingSettings, seed: int,
             by_account: bool = True, crashes: float = 0.0, journal: bool = True,
             seen: Counter[str] | None = None, producer: str = "vasbill") -> list[Charge]:
    """Route lines like a producer, then run stage 0 (``Router``), stage 1 and stage 2 with
    random batch sizes and a random interleaving of partitions, as a worker consuming logs:
    each input (usage partition, internal events partition, summaries partition) has
    offsets, and after a batch its position is committed only now and then (at-least-once).

    ``producer``: ``"vasbill"`` routes like ``vasbill produce`` (replay header, the
    account's partition, or the app's without ``by_account``); ``"random"`` is a plain
    client with no key (a random partition, one event a message, no header). The final
    tick goes to ``control.clock`` and its fan-out markers to every usage partition, as the
    clock agent writes them.

    With ``crashes``, that share of batches "crash" after their outputs went out: stage 1
    and 2 in the middle of their table writes (a random prefix of them is kept, journal
    included), stage 0 before its commit; every input is then read again from its last
    committed offset, so batches already applied come back too. ``seen`` counts crashes
    and the messages the stages recognised as re-delivered."""
    clock = ReplayClock(apps, NOW, settings.horizon_s * 1000)
    account_of = {app: acct for acct, ids in apps.accounts().items() for app in ids}
    rnd = random.Random(seed)

    def partition_of(route: str) -> int:
        return zlib.crc32(route.encode()) % PARTITIONS

    usage: dict[tuple[str, int], list[tuple[bytes | None, Any, int]]] = {
        (t, p): [] for t in USAGE_TOPICS for p in range(PARTITIONS)}
    for stamp_ms, line in enumerate(lines):  # the producer's send time: file order
        try:
            doc = orjson.loads(line)
            topic, key = USAGE_TOPIC_OF_TYPE.get(doc.get("type"), "usage.relay"), doc.get("sdk_app_id", 0)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            doc, topic, key = None, "usage.relay", 0
        before = clock.before(doc)
        if producer == "random":
            usage[(topic, rnd.randrange(PARTITIONS))].append((line, (), stamp_ms))
            continue
        route = account_of.get(key, str(key)) if by_account else str(key)
        header = ((clockstamp.HEADER, encode([before], clock.final_ms)),)
        usage[(topic, partition_of(route))].append((line, header, stamp_ms))
    ticks = {0: Tick(None, True)}  # control.clock: the final tick at offset 0
    for log in usage.values():
        log.append((fanout_marker(0), (), len(lines)))

    def home(app: int) -> int:
        versions = apps.versions(app)
        return partition_of(versions[0].account_id if versions else str(app))

    stage1 = {t: Stage1(t, lambda: apps, settings, now=lambda: NOW, provisional_every_s=0.0, internal=True,
                        home=home, lanes=USAGE_TOPICS) for t in USAGE_TOPICS}
    lanes = Lanes(stage1)
    stage2 = Stage2(lambda: apps, settings, PARTITIONS)
    stores: dict[str, dict[str, bytes]] = {"stage1": {}, "stage2": {}}  # one table each
    journals: dict[tuple[str, int], Journal] = {}
    # stage 0, the sequencer: the usage records merged by timestamp (one log), read in chunks
    merged = sorted(((ts, topic, p, i, value, headers) for (topic, p), log in usage.items()
                     for i, (value, headers, ts) in enumerate(log)), key=lambda r: r[:4])
    events: dict[int, list[tuple[bytes, Any]]] = {q: [] for q in range(PARTITIONS)}  # the internal topics
    summaries: dict[int, list[bytes]] = {q: [] for q in range(PARTITIONS)}
    inputs: dict[tuple[str, Any], list[Any]] = {
        ("ingest", 0): merged,
        **{("stage1", q): log for q, log in events.items()},
        **{("stage2", q): log for q, log in summaries.items()}}
    position = dict.fromkeys(inputs, 0)
    committed = dict.fromkeys(inputs, 0)
    charges: list[Charge] = []
    sequencer = [ReplayClock(apps, NOW, settings.horizon_s * 1000), set()]

    def journal_of(table: str, partition: int) -> Journal | None:
        if not journal:
            return None
        return journals.setdefault((table, partition), Journal(f"journal/{partition}", MAX_VALUE_BYTES))

    while True:
        ready = [k for k in inputs if position[k] < len(inputs[k])]
        if not ready:
            return charges
        key = rnd.choice(ready)
        table, partition = key
        start = position[key]
        batch = list(enumerate(inputs[key][start:start + rnd.randint(1, 300)], start))
        crashed = rnd.random() < crashes
        if table == "ingest":
            router = Router(PARTITIONS, home, ticks.get, clock=sequencer[0], lanes=USAGE_TOPICS, applied=sequencer[1])
            for _offset, (_ts, topic, source, _i, value, headers) in batch:
                router.add(topic, source, value, headers)
            forwards, _rejected = router.flush()
            for forward in forwards:
                extra = dict(forward.headers)
                events[forward.partition].append((forward.value, (extra.get(clockstamp.HEADER), extra[LANE_HEADER],
                                                                  extra.get(OWN_HEADER) == b"tick")))
            if seen is not None:
                seen["crashes"] += crashed
            if crashed:  # after its sends, before its commit: a new sequencer reads on from the commit
                sequencer[:] = [ReplayClock(apps, NOW, settings.horizon_s * 1000), set()]
                position.update(committed)
                continue
            position[key] = start + len(batch)
            if rnd.random() < 0.5:
                committed[key] = position[key]
            continue
        store = stores[table]
        writes = RecordedWrites(store) if crashed else store
        found = journal_of(table, partition)
        if found is not None:
            found.recover(store)  # as the worker does before each batch (a no-op unless restarted)
        kv = BatchKV(writes, journal=found)
        if table == "stage2":
            outs: list[Any] = [stage2.process(partition, batch, kv)]
            charges.extend(outs[0].charges)
        else:
            outs = lanes.process(partition, [(offset, value, *extra) for offset, (value, extra) in batch], kv)
            for out in outs:
                for account, message in out.summaries:
                    summaries[partition_of(account)].append(message)
                if out.watermark:
                    for log in summaries.values():
                        log.append(out.watermark)
        kv.flush()  # outputs are delivered before the state is written
        if seen is not None:
            seen["redelivered"] += sum(out.redelivered for out in outs)
            seen["crashes"] += crashed
        if crashed:
            writes.keep(rnd.randint(0, len(writes.ops)))
            journals.clear()  # the restarted worker remembers no journal
            position.update(committed)  # and reads every input again from its committed offset
            continue
        position[key] = start + len(batch)
        if rnd.random() < 0.5:
            committed[key] = position[key]


def _assert_same_revisions(got: list[Charge], expected: list[Charge]) -> None:
    """Every (charge_id, revision) has rate's content, and none came with two contents (a
    revision may be sent twice after a crash, identical)."""
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for charge in got:
        doc = charge.to_dict()
        doc.pop("emitted_at")
        assert seen.setdefault((charge.charge_id, charge.revision), doc) == doc, "one revision, two contents"
    assert seen == _by_revision(expected)


def _by_revision(charges: list[Charge]) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for charge in charges:
        doc = charge.to_dict()
        doc.pop("emitted_at")  # each side stamps its own clock
        out[(charge.charge_id, charge.revision)] = doc
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_two_stages_equal_rate_revision_for_revision(month: tuple[AppDirectory, list[bytes]], seed: int) -> None:
    apps, lines = month
    settings = BillingSettings()
    expected, _, _ = rate_lines(apps, lines, settings, now=lambda: NOW)
    got = simulate(apps, lines, settings, seed)
    assert any(c.revision > 1 for c in expected), "the data must contain late events"
    assert _by_revision(got) == _by_revision(expected)


@pytest.mark.parametrize("seed", [3, 4])
def test_batches_sent_twice_after_crashes_still_equal_rate(month: tuple[AppDirectory, list[bytes]], seed: int) -> None:
    """At-least-once: a crash between a batch's outputs and its state write sends the outputs
    again when the batch is redone. Every (charge_id, revision) must still have rate's
    content, and no revision may appear with two contents."""
    apps, lines = month
    relay_app = next(a.sdk_app_id for a in (apps.at(i, 0) for i in apps.app_ids()) if a and a.enabled("relay"))
    burst = [orjson.dumps({"event_id": f"burst-{i}", "sdk_app_id": relay_app, "type": "relay.traffic",
                           "time": f"2026-08-02T10:{5 * i:02d}:00+08:00", "stream_id": "late", "zone": "mainland",
                           "bytes": 10**9 * (i + 1)}) for i in range(8)]
    lines = [*lines, *burst]  # eight late events of one app-day in a row: one batch, eight revisions
    settings = BillingSettings()
    expected, _, _ = rate_lines(apps, lines, settings, now=lambda: NOW)
    assert sum(c.charge_id.endswith("/2026-08-02") and c.item == "relay.traffic" for c in expected) >= 9
    seen: Counter[str] = Counter()
    got = simulate(apps, lines, settings, seed, crashes=0.3, seen=seen)
    assert seen["crashes"] > 100 and seen["redelivered"] > 1000, seen
    _assert_same_revisions(got, expected)


def test_dedupe_ids_split_over_keys_still_equal_rate(month: tuple[AppDirectory, list[bytes]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids move out of the state value into hashed shards (thresholds made tiny here), with
    crashes in the middle of batches: duplicates are still recognised exactly."""
    apps, lines = month
    monkeypatch.setattr(dedupe_ids, "INLINE_MAX", 20)
    monkeypatch.setattr(dedupe_ids, "SHARD_MAX", 30)
    spread_to: list[int] = []
    spread = dedupe_ids._spread

    def counted(kv: BatchKV, skey: str, value: dict[str, Any], ids: dict[str, int], bits: int) -> None:
        spread_to.append(bits)
        spread(kv, skey, value, ids, bits)

    monkeypatch.setattr(dedupe_ids, "_spread", counted)
    duplicates = [line for line in lines[::50] if b'"event_id"' in line]
    lines = [*lines, *duplicates]  # sent again at the end: each must be recognised after its split
    settings = BillingSettings()
    expected, _, _ = rate_lines(apps, lines, settings, now=lambda: NOW)
    got = simulate(apps, lines, settings, 5, crashes=0.3)
    assert max(spread_to) >= 4, spread_to
    _assert_same_revisions(got, expected)


def _latest(charges: list[Charge]) -> dict[str, Any]:
    """charge_id -> (amount, lines) of its latest revision: what a bill is made of. Other
    producers than ``vasbill produce`` may split late events into revisions differently."""
    best: dict[str, Charge] = {}
    for c in charges:
        if c.charge_id not in best or c.revision > best[c.charge_id].revision:
            best[c.charge_id] = c
    return {cid: (c.amount, c.lines) for cid, c in best.items() if c.amount or c.lines}


@pytest.mark.parametrize(("producer", "by_account"), [("vasbill", False), ("random", True)])
def test_other_producers_keep_final_charges(month: tuple[AppDirectory, list[bytes]], producer: str,
                                            by_account: bool) -> None:
    """Keyed by sdk_app_id, or no key at all (a random partition, one event a message, no
    replay header): stage 0 brings each app's events together, and the latest revision of
    every charge is ``rate``'s."""
    apps, lines = month
    settings = BillingSettings()
    expected, _, _ = rate_lines(apps, lines, settings, now=lambda: NOW)
    got = simulate(apps, lines, settings, 3, by_account=by_account, producer=producer)
    assert _latest(got) == _latest(expected)


def test_pruning_past_the_horizon_keeps_two_months_exact(month: tuple[AppDirectory, list[bytes]]) -> None:
    """A 3-day horizon over two months: August's state is forgotten during September, and
    the charges still equal ``rate``'s (which prunes in the same whole months)."""
    apps, lines = month
    two_months = lines + _shifted(lines, 31)
    settings = BillingSettings(horizon_s=3 * 86_400)
    expected, rejected, _ = rate_lines(apps, two_months, settings, now=lambda: NOW)
    assert any(r.reason.value == "too_late" for r in rejected)
    got = simulate(apps, two_months, settings, 4)
    assert _by_revision(got) == _by_revision(expected)
    assert {c.charge_id.rsplit("/", 1)[1][:7] for c in got} == {"2026-08", "2026-09", "2026-10"} & {
        c.charge_id.rsplit("/", 1)[1][:7] for c in expected}


def test_a_close_sent_again_after_its_late_revision_is_not_billed_again(
        month: tuple[AppDirectory, list[bytes]]) -> None:
    """One stage-1 batch closes a day and takes a late event for it, and crashes before its
    state write: the redone batch sends the close summary and the late one again, after
    stage 2 took both. The copy of the close must not put revision 1's usage back."""
    apps, _ = month
    app = next(a.sdk_app_id for a in (apps.at(i, 0) for i in apps.app_ids()) if a and a.enabled("relay"))

    def relay(event_id: str, when: str, gb: int) -> bytes:
        return orjson.dumps({"event_id": event_id, "sdk_app_id": app, "type": "relay.traffic", "time": when,
                             "stream_id": "s", "zone": "mainland", "bytes": gb * 10**9})

    lines = [relay("a", "2026-08-02T10:00:00+08:00", 1), relay("b", "2026-08-03T12:00:00+08:00", 1),
             relay("late", "2026-08-02T11:00:00+08:00", 2)]
    settings = BillingSettings()
    expected, _, _ = rate_lines(apps, lines, settings, now=lambda: NOW)
    day = [c for c in expected if c.charge_id.endswith("/2026-08-02")]
    assert [(c.revision, c.lines[0].quantity) for c in day] == [(1, Decimal(1)), (2, Decimal(3))]

    stage1 = Stage1("usage.relay", lambda: apps, settings, now=lambda: NOW)
    stage2 = Stage2(lambda: apps, settings, 1)
    store1: dict[str, bytes] = {}
    crashed = RecordedWrites(store1)
    batch = [(offset, line, None) for offset, line in enumerate(lines)]
    first = stage1.process(0, batch, BatchKV(crashed))  # its writes are lost: a crash
    again = stage1.process(0, batch, BatchKV(store1))
    assert first.summaries == again.summaries and len(first.summaries) == 2
    inbox = [message for out in (first, again) for _, message in out.summaries]
    store2: dict[str, bytes] = {}
    kv = BatchKV(store2)
    got = stage2.process(0, list(enumerate([first.watermark or b"", *inbox])), kv).charges
    assert [(c.charge_id, c.revision, c.lines[0].quantity) for c in got if c.charge_id == day[0].charge_id] == [
        (day[0].charge_id, 1, Decimal(1)), (day[0].charge_id, 2, Decimal(3))]


def test_messages_delivered_again_after_their_state_was_saved_are_skipped(
        month: tuple[AppDirectory, list[bytes]]) -> None:
    """A crash after a batch's state write, before its offsets were committed: Kafka delivers
    the batch again. Its events were applied with the state; by now they may be older than
    the lateness horizon, and must not be quarantined as ``too_late`` (nor counted again)."""
    apps, _ = month
    app = next(a.sdk_app_id for a in (apps.at(i, 0) for i in apps.app_ids()) if a and a.enabled("relay"))
    settings = BillingSettings(horizon_s=3 * 86_400)
    stage1 = Stage1("usage.relay", lambda: apps, settings, now=lambda: NOW)
    store: dict[str, bytes] = {}

    def relay(event_id: str, when: str) -> bytes:
        return orjson.dumps({"event_id": event_id, "sdk_app_id": app, "type": "relay.traffic", "time": when,
                             "stream_id": "s", "zone": "mainland", "bytes": 10**9})

    def run(batch: list[tuple[int, bytes, bytes | None]]) -> Stage1Output:
        kv = BatchKV(store)
        out = stage1.process(0, batch, kv)
        kv.flush()
        return out

    first = [(0, relay("a", "2026-08-02T10:00:00+08:00"), None)]
    later = [(1, relay("b", "2026-08-10T10:00:00+08:00"), None)]
    assert run(first).events[("relay.traffic", "accepted")] == 1
    assert run(later).events[("relay.traffic", "accepted")] == 1
    again = run([*first, *later, (2, relay("c", "2026-08-10T11:00:00+08:00"), None)])
    assert (again.redelivered, again.quarantine, dict(again.events)) == (2, [], {("relay.traffic", "accepted"): 1})
    stale = run([(3, relay("d", "2026-08-02T11:00:00+08:00"), None)])  # a new event that old is too late
    assert [r.reason.value for r in stale.quarantine] == ["too_late"]

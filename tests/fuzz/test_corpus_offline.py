"""The hostile corpus (``fuzz.corpus``) through the offline input path, no Kafka:

- the corpus is deterministic and covers every SPEC §3 reason code;
- every hostile message through the shared validation (``split_message`` + ``check_event``
  with its topic, the corpus's apps and the event clock's lateness floor, then exact
  dedupe) gets exactly its expected outcome, and nothing raises;
- through ``vasbill rate``'s engine (``rate_lines``), valid events interleaved with every
  hostile message whose outcome does not depend on a topic: nothing raises, the
  rejections are the expected ones in order, and the charges (every revision) equal those
  of the accepted events alone: nothing else changes (SPEC §12, reliable);
- every hostile app config is rejected by ``read_app_config`` with a problem naming the
  bad field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from fuzz.corpus import (
    HORIZON_MS,
    MONTH_START,
    OUTCOMES,
    REASONS,
    TOPIC_OF_TYPE,
    USAGE_TOPICS,
    Corpus,
    Item,
    build_corpus,
)
from rating.biller import Biller, rate_lines
from rating.dedupe import Deduper
from topics.appconfig import AppDirectory
from topics.reasons import ConfigError, Rejection
from topics.timefmt import to_ms
from topics.validation import check_event, split_message

TESTS = Path(__file__).resolve().parents[1]
MONTH_START_MS = to_ms(MONTH_START)
MONTH_END_MS = MONTH_START_MS + 31 * 86_400_000


def read_app_config(doc: Any) -> Any:
    from rating.configs import read_app_config as read  # the one reader of app configs

    return read(doc)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus(7)


@pytest.fixture(scope="module")
def apps(corpus: Corpus) -> AppDirectory:
    return AppDirectory(read_app_config(doc) for doc in corpus.apps)


def wall_ms() -> int:
    return to_ms(datetime.now(timezone.utc))


def summary(failures: list[tuple[str, str, str]], limit: int = 60) -> str:
    """``(expected, got, note)`` failures as a count per (expected -> got) and examples."""
    by_pair = Counter((exp, got) for exp, got, _ in failures)
    lines = [f"{len(failures)} mismatches:"]
    lines += [f"  {n:5d}  expected {exp!s:40.40} got {got}" for (exp, got), n in by_pair.most_common()]
    lines.append("examples:")
    shown: Counter[tuple[str, str]] = Counter()
    for exp, got, note in failures:
        if shown[(exp, got)] < 3 and sum(shown.values()) < limit:
            shown[(exp, got)] += 1
            lines.append(f"  expected {exp} got {got}: {note[:140]}")
    return "\n".join(lines)


# -- the corpus itself -----------------------------------------------------------------------


def test_the_corpus_is_deterministic_and_covers_every_reason(corpus: Corpus) -> None:
    again = build_corpus(7)
    assert again == corpus
    assert again.fingerprint() == corpus.fingerprint()
    assert build_corpus(8).fingerprint() != corpus.fingerprint()
    # byte-identical across processes and hash seeds (no set or hash order leaks in)
    code = "import sys; sys.path.insert(0, sys.argv[1]); from fuzz.corpus import build_corpus; " \
           "print(build_corpus(7).fingerprint())"
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run([sys.executable, "-c", code, str(TESTS)], capture_output=True, text=True,
                              env=env, timeout=120, cwd=TESTS.parent)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == corpus.fingerprint()

    assert len(corpus.hostile) >= 2000
    items_with = Counter(e for item in corpus.hostile for e in set(item.expectations))
    assert set(corpus.counts()) <= set(OUTCOMES)
    for outcome in (*REASONS, "duplicate", "tombstone", "accepted"):  # unprocessable: no input is meant to be
        assert items_with[outcome] >= 20, (outcome, items_with[outcome])
    assert all(item.topic in USAGE_TOPICS for item in corpus.hostile)
    assert all(item.value is None or (b"\n" not in item.value and b"\r" not in item.value)
               for item in corpus.hostile)
    assert all((item.value is None) == (item.expected == "tombstone") for item in corpus.hostile)
    assert all(0 <= item.after <= len(corpus.valid) for item in corpus.hostile)


def test_the_corpus_follows_the_topic_table_of_spec_2() -> None:
    from topics.names import USAGE_TOPIC_OF_TYPE

    assert dict(USAGE_TOPIC_OF_TYPE) == TOPIC_OF_TYPE


def test_valid_events_are_valid_unique_and_in_the_month(corpus: Corpus, apps: AppDirectory) -> None:
    assert 200 <= len(corpus.valid) <= 1000
    now, seen, clock, kinds = wall_ms(), set(), None, Counter()
    for item in corpus.valid_items():
        (part,) = split_message(item.value)
        assert not isinstance(part, Rejection), part
        event = check_event(*part, now, apps=apps, topic=item.topic)
        assert not isinstance(event, Rejection), (event.reason, event.detail, item.value)
        assert (event.sdk_app_id, event.event_id) not in seen
        seen.add((event.sdk_app_id, event.event_id))
        assert MONTH_START_MS <= event.ms < MONTH_END_MS
        clock = event.ms if clock is None else max(clock, event.ms)
        kinds[event.type] += 1
    assert clock == corpus.clock_ms and corpus.not_before_ms == clock - HORIZON_MS
    assert set(kinds) == set(TOPIC_OF_TYPE), kinds  # every event type
    assert len({orjson.loads(v)["sdk_app_id"] for v in corpus.valid}) == len(corpus.apps)


def test_interleave_keeps_everything_in_an_allowed_place(corpus: Corpus) -> None:
    stream = corpus.interleave(seed=3)
    assert stream == corpus.interleave(seed=3)
    assert len(stream) == len(corpus.valid) + len(corpus.hostile)
    valid_seen = 0
    for item in stream:
        if item.note.startswith("valid["):
            assert item.value == corpus.valid[valid_seen]
            valid_seen += 1
        else:
            assert valid_seen >= item.after, item.note
    assert valid_seen == len(corpus.valid)


# -- shared validation ---------------------------------------------------------------------------


def validation_outcomes(item: Item, apps: AppDirectory, now_ms: int, not_before_ms: int,
                        dedupe: Deduper) -> tuple[str, ...]:
    """What a usage-topic consumer decides for one message: stage 1's steps (tombstone,
    split, check with its topic, exact dedupe)."""
    if item.value is None:
        return ("tombstone",)
    out: list[str] = []
    for part in split_message(item.value):
        if isinstance(part, Rejection):
            out.append(part.reason.value)
            continue
        text, obj = part
        result = check_event(text, obj, now_ms, apps=apps, not_before_ms=not_before_ms, topic=item.topic)
        if isinstance(result, Rejection):
            out.append(result.reason.value)
        else:
            out.append("accepted" if dedupe.first_time(result.sdk_app_id, result.event_id, result.ms)
                       else "duplicate")
    return tuple(out)


def test_every_hostile_item_gets_its_expected_outcome(corpus: Corpus, apps: AppDirectory) -> None:
    now = wall_ms()
    dedupe = Deduper()
    for raw in corpus.valid:  # the valid events came first: the clock and the dedupe ids are theirs
        doc = orjson.loads(raw)
        dedupe.first_time(doc["sdk_app_id"], doc["event_id"], 0)
    failures: list[tuple[str, str, str]] = []
    for item in corpus.hostile:
        try:
            got = validation_outcomes(item, apps, now, corpus.not_before_ms, dedupe)
        except Exception as exc:  # noqa: BLE001 - nothing may raise: report it as an outcome
            got = (f"raised {type(exc).__name__}: {str(exc)[:80]}",)
        if got != item.expectations:
            failures.append((_show(item.expected), _show(got), item.note))
    assert not failures, summary(failures)


def _show(outcomes: str | tuple[str, ...]) -> str:
    if isinstance(outcomes, str):
        return outcomes
    if len(outcomes) == 1:
        return outcomes[0]
    return "[" + ",".join(outcomes) + "]" if len(outcomes) <= 10 else f"[{len(outcomes)} outcomes]"


# -- vasbill rate's engine ---------------------------------------------------------------------


def rate_input(item: Item) -> bool:
    """What ``vasbill rate`` can be given: no tombstones (a file has none), no outcome that
    depends on a topic (rate has no topics: a clock.tick there is a tick), no blank line
    (rate skips blank lines by design)."""
    return item.value is not None and not item.topic_dependent and item.value.strip() != b""


def accepted_lines(stream: Iterable[Item]) -> list[bytes]:
    """The accepted events of a stream, one a line, in order: valid events, accepted hostile
    messages, and the accepted elements of split batches."""
    out: list[bytes] = []
    for item in stream:
        if item.is_split_batch:
            elements = json.loads(item.value)  # type: ignore[arg-type]
            for element, expected in zip(elements, item.expectations, strict=True):
                if expected == "accepted":
                    out.append(json.dumps(element, ensure_ascii=False, separators=(",", ":")).encode())
        elif item.expected == "accepted":
            out.append(item.value)  # type: ignore[arg-type]
    return out


def latest(charges: Iterable[Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for charge in charges:
        doc = charge.to_dict()
        if doc["charge_id"] not in out or doc["revision"] > out[doc["charge_id"]]["revision"]:
            out[doc["charge_id"]] = doc
    return {cid: {"amount": d["amount"], "lines": d["lines"], "revision": d["revision"]} for cid, d in out.items()}


def test_rate_rejects_the_hostile_items_and_bills_only_the_accepted_events(corpus: Corpus,
                                                                         apps: AppDirectory) -> None:
    stream = corpus.interleave(seed=11, keep=rate_input)
    lines = [item.value for item in stream]
    assert len(stream) - len(corpus.valid) >= 1500
    try:
        charges, rejections, biller = rate_lines(apps, lines)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        report = summary(_per_item_rejections(stream, apps))  # each message tried after the stream before it
        pytest.fail(f"rate_lines raised {type(exc).__name__}: {exc}\nper message: {report}", pytrace=False)

    expected = [e for item in stream for e in item.expectations if e not in ("accepted", "duplicate")]
    got = [r.reason.value for r in rejections]
    if got != expected:
        # align per item for a readable report
        failures = _per_item_rejections(stream, apps)
        assert not failures, summary(failures)
        assert got == expected
    expectations = Counter(e for item in stream for e in item.expectations)
    assert biller.stats.events["duplicate"] == expectations["duplicate"]
    assert biller.stats.events["accepted"] == expectations["accepted"]
    assert biller.stats.events["quarantined"] == len(expected)

    clean, clean_rejections, _ = rate_lines(apps, accepted_lines(stream))
    assert clean_rejections == [], [r.detail for r in clean_rejections[:5]]
    alone, with_hostile = latest(clean), latest(charges)
    assert len(alone) >= 20  # a real month of charges, not a vacuous comparison
    differing = sorted(cid for cid in alone.keys() | with_hostile.keys() if alone.get(cid) != with_hostile.get(cid))
    assert not differing, f"{len(differing)} charges differ, e.g. {differing[:5]}"
    # and every revision on the way, not only the latest: a rejected or duplicate event
    # does not even move the clock
    assert [c.to_dict() for c in charges] == [c.to_dict() for c in clean]


def _per_item_rejections(stream: list[Item], apps: AppDirectory) -> list[tuple[str, str, str]]:
    """Each message through ``Biller.process`` in stream order (``rate_lines``'s loop), its
    rejections and duplicates against its expectations; a message that raises is reported
    and the stream goes on."""
    biller, failures = Biller(apps), []
    for item in stream:
        duplicates = biller.stats.events["duplicate"]
        try:
            outputs = biller.process(item.value)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            failures.append((_show(item.expected), f"raised {type(exc).__name__}", item.note))
            continue
        got = [o.reason.value for o in outputs if isinstance(o, Rejection)]
        want = [e for e in item.expectations if e not in ("accepted", "duplicate")]
        dups = biller.stats.events["duplicate"] - duplicates
        if got != want or dups != item.expectations.count("duplicate"):
            failures.append((_show(item.expected), _show(tuple(got)) + f" (+{dups} duplicates)", item.note))
    return failures


# -- app configs --------------------------------------------------------------------------------


def test_the_corpus_apps_are_valid_configs(corpus: Corpus) -> None:
    configs = [read_app_config(doc) for doc in corpus.apps]
    assert len({c.account_id for c in configs}) == 3
    disabled = [c for c in configs if not all(c.enabled(s) for s in ("relay", "recording", "transcode", "snapshot",
                                                                        "moderation", "vod", "im"))]
    assert len(disabled) == 1


def test_every_hostile_config_is_rejected_naming_the_field(corpus: Corpus) -> None:
    assert len(corpus.hostile_apps) >= 100
    failures: list[tuple[str, str, str]] = []
    for doc, field in corpus.hostile_apps:
        base = corpus.apps[0]  # every hostile config is a variant of it: show what changed
        changed = {k: v for k, v in doc.items() if v != base.get(k)}
        shown = repr(changed or {"removed": sorted(base.keys() - doc.keys())})
        try:
            read_app_config(doc)
        except ConfigError as exc:
            if not any(field in problem for problem in exc.problems):
                failures.append((field, f"problems {exc.problems}"[:100], shown))
        except Exception as exc:  # noqa: BLE001
            failures.append((field, f"raised {type(exc).__name__}: {exc}"[:100], shown))
        else:
            failures.append((field, "accepted", shown))
    assert not failures, summary(failures)

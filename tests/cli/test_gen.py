"""``vasbill gen``: deterministic synthetic usage whose good events are valid and whose bad
lines, when asked for, hit every rejection path."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from functools import lru_cache

import orjson
import pytest

from rating.biller import rate_lines
from topics.appconfig import AppConfig, AppDirectory
from topics.events import SERVICE_OF_TYPE, parse_event
from topics.reasons import Rejection
from topics.validation import validate
from vasbill.gen import GenOptions, generate

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)  # after the generated month, before 2099
SMALL = {"accounts": 2, "scale": 0.2, "seed": 7}


@lru_cache(maxsize=None)
def lines(**options: object) -> tuple[list[dict], list[bytes]]:
    apps, events = generate(GenOptions(**options))  # type: ignore[arg-type]
    return apps, [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


def directory(apps: list[dict]) -> AppDirectory:
    return AppDirectory(AppConfig.from_dict(doc) for doc in apps)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    def dump(options: GenOptions) -> tuple[bytes, list[bytes]]:
        apps, events = generate(options)
        return orjson.dumps(apps), [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]

    assert dump(GenOptions(**SMALL)) == dump(GenOptions(**SMALL))
    assert lines(**SMALL) != lines(**{**SMALL, "seed": 8})


def test_good_events_parse_are_sorted_and_unique() -> None:
    apps, raw = lines(**SMALL, bad=False)
    configs = directory(apps)
    assert {doc["account_id"] for doc in apps} == {"acct-1", "acct-2"}
    assert 5_000 < len(raw) < 100_000
    seen, last_ms, types = set(), None, Counter()
    for line in raw:
        event = parse_event(orjson.loads(line))
        config = configs.at(event.sdk_app_id, event.ms)
        assert config is not None and config.enabled(SERVICE_OF_TYPE[event.type])
        assert event.time.utcoffset().total_seconds() == 8 * 3600
        assert (event.sdk_app_id, event.event_id) not in seen
        seen.add((event.sdk_app_id, event.event_id))
        assert last_ms is None or event.ms >= last_ms
        last_ms = event.ms
        types[event.type] += 1
    assert set(types) == set(SERVICE_OF_TYPE)  # every event type occurs


def classify(apps: list[dict], raw: list[bytes]) -> Counter[str]:
    """Kinds of bad lines: rejection reasons, plus exact duplicates and late events."""
    configs, kinds, seen, clock = directory(apps), Counter(), {}, 0
    for line in raw:
        (outcome,) = validate(line, NOW, apps=configs)
        if isinstance(outcome, Rejection):
            kinds[outcome.reason.value] += 1
            continue
        key = (outcome.sdk_app_id, outcome.event_id)
        if key in seen:
            kinds["duplicate" if seen[key] == line else "conflicting_id"] += 1
            continue
        seen[key] = line
        if outcome.ms < clock - 86_400_000:
            kinds["late"] += 1
        clock = max(clock, outcome.ms)
    return kinds


def test_bad_lines_only_when_asked() -> None:
    expected = {"malformed_json", "schema", "future", "unknown_app", "service_disabled", "duplicate", "late"}
    apps, raw = lines(**SMALL)
    kinds = classify(apps, raw)
    assert set(kinds) == expected
    good_apps, good = lines(**SMALL, bad=False)
    assert good_apps == apps
    assert not classify(good_apps, good)
    assert 0.003 < (len(raw) - len(good)) / len(good) < 0.01
    rest = iter(raw)  # the good events come out unchanged, in the same order
    assert all(any(line == other for other in rest) for line in good)


@pytest.mark.parametrize("bad", [True, False])
def test_rates_without_error(bad: bool) -> None:
    apps, raw = lines(**SMALL, bad=bad)
    charges, rejections, biller = rate_lines(directory(apps), raw, now=lambda: NOW)
    assert charges
    assert {c.item.split(".")[0] for c in charges} >= {"relay", "recording", "vod", "im"}
    assert bool(rejections) == bad
    assert (biller.stats.events["duplicate"] > 0) == bad

"""Every reader of app configs in workers/ validates with ``rating.configs.read_app_config``:
the worker's ``config.apps`` reader and ``vasbill produce``'s packer skip a config whose
fields are hostile or whose catalog pin names no shipped catalog (as they skip any invalid
config), and a line of any shape is routed without an exception."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fixtures.factories import APP, bj, make_app, package, relay

from topics.names import TopicNames
from workers.configs import ConfigReader
from workers.kafka_io import EventPacker, KafkaSettings

HOSTILE = [
    make_app(catalog="tencent-2099"),
    make_app(account="acct\u202e"),
    make_app(packages=[package("p", "css_traffic", "1E+999999", bj("2026-08-01 10:00"))]),
    make_app(packages=[package("p", "css_traffic", "10", "9999-12-31T23:59:59-12:00")]),
    make_app(effective_from="0001-01-01T00:00:00+08:00"),
]


@pytest.mark.parametrize("doc", HOSTILE, ids=["catalog", "account_id", "size", "purchased_at", "effective_from"])
def test_the_worker_config_reader_skips_a_hostile_config(doc: dict[str, Any]) -> None:
    reader = ConfigReader(KafkaSettings("127.0.0.1:9"), "config.apps")
    assert reader._apply(orjson.dumps(doc)) == 0
    assert reader.invalid == 1 and APP not in reader.directory
    assert reader._apply(orjson.dumps(make_app(catalog="tencent-2019"))) == 1
    assert reader.directory.at(APP, 0).catalog == "tencent-2019"  # type: ignore[union-attr]


@pytest.mark.parametrize("doc", HOSTILE, ids=["catalog", "account_id", "size", "purchased_at", "effective_from"])
def test_the_packer_does_not_learn_a_hostile_config(doc: dict[str, Any]) -> None:
    packer = EventPacker(TopicNames(), partitions=1)
    packer.add(orjson.dumps(doc))
    assert APP not in packer.clock.apps
    packer.add(orjson.dumps(make_app(services=["relay"])))
    assert APP in packer.clock.apps


@pytest.mark.parametrize("kind", [["relay.traffic"], {"a": 1}, 7, None, "clock.tick"])
def test_the_packer_routes_a_line_with_any_type(kind: Any) -> None:
    packer = EventPacker(TopicNames(), partitions=1)
    packer.add(orjson.dumps(make_app(services=["relay"])))
    out = packer.add(orjson.dumps({**relay(bj("2026-08-01 10:00"), 1), "type": kind})) + packer.flush()
    assert len(out) == 1
    assert out[0].topic == ("control.clock" if kind == "clock.tick" else "usage.relay")

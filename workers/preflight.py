"""Checks before the worker starts, each failing with a one-line reason.

- The usage topics exist with the partition count the worker expects.
- Their retention is at least the lateness horizon plus the month grace: an event could
  otherwise be deleted before its period is billed (``retention.ms`` -1 means forever).
"""

from __future__ import annotations

import asyncio
from typing import Any

from topics.names import USAGE_TOPICS, TopicNames
from topics.reasons import VasbillError
from workers.kafka_io import client_config
from workers.settings import WorkerSettings


class PreflightError(VasbillError):
    """The cluster is not set up for this worker; the message says what to change."""


async def _describe(settings: WorkerSettings, topics: list[str]) -> tuple[dict[str, int], dict[str, str | None]]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    config = client_config(settings.kafka.bootstrap, settings.kafka.security, library="aiokafka")
    config.pop("client_id", None)
    admin = AIOKafkaAdminClient(**config)
    await admin.start()
    try:
        existing = set(await admin.list_topics())  # describing a missing topic may create it
        metadata = await admin.describe_topics([t for t in topics if t in existing]) if existing else []
        partitions = {t["topic"]: len(t["partitions"]) for t in metadata if not t.get("error_code")}
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in partitions]
        retention: dict[str, str | None] = {}
        if resources:
            for response in await admin.describe_configs(resources):
                for resource in _resources(response):
                    name, entries = resource[3], resource[4]
                    values = {e[0]: e[1] for e in entries}
                    retention[name] = values.get("retention.ms")
        return partitions, retention
    finally:
        await admin.close()


def _resources(response: Any) -> list[Any]:
    return list(getattr(response, "resources", []) or [])


def preflight(settings: WorkerSettings, *, check_retention: bool = True) -> None:
    names = TopicNames(settings.prefix, settings.partitions)
    topics = [names(t) for t in USAGE_TOPICS]
    try:
        partitions, retention = asyncio.run(_describe(settings, topics))
    except Exception as exc:  # the client's own errors, to one line
        raise PreflightError(f"cannot describe the usage topics on {settings.kafka.bootstrap}: "
                             f"{type(exc).__name__}: {exc}") from exc
    missing = [t for t in topics if t not in partitions]
    if missing:
        raise PreflightError(f"usage topics missing: {', '.join(missing)} (run `vasbill topics create`)")
    wrong = [f"{t} has {n}" for t, n in partitions.items() if n != settings.partitions]
    if wrong:
        raise PreflightError(f"usage topics must have {settings.partitions} partitions: {'; '.join(wrong)}")
    if not check_retention:
        return
    needed = (settings.billing.horizon_s + settings.billing.grace_month_s) * 1000
    short = []
    for topic, value in retention.items():
        if value is None:
            continue
        ms = int(value)
        if 0 <= ms < needed:
            short.append(f"{topic} retention.ms={ms}")
    if short:
        raise PreflightError(
            f"usage topic retention is shorter than the lateness horizon plus grace ({needed} ms): "
            f"{'; '.join(short)}; raise retention.ms or lower --horizon"
        )

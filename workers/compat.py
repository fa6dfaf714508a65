"""Fixes that make the pinned faust-streaming work correctly on the embedded broker.

Everything vasbill changes in Faust's behaviour lives in this module; ``workers/COMPAT.md``
explains each fix, how it was measured and the text of the upstream report.

``install_broker_compat()`` patches two things in faust-streaming 0.15.3 (and refuses any
other version, because the seek fix replaces a whole Faust method):

``highwater``
    Table recovery asks the consumer for each changelog partition's end offset
    (``Recovery._build_highwaters`` -> ``consumer.highwaters(*tps)`` ->
    ``AIOKafkaConsumerThread._highwaters`` -> aiokafka ``end_offsets``, i.e. a ListOffsets
    LATEST request).  Tansu answers ListOffsets with "base offset of the newest record batch
    + 1", which is too low whenever the newest batch holds more than one record, so recovery
    stops early (memory store: the table silently loses its newest updates; RocksDB: every
    restart after the first crashes with ``ConsistencyError``).  The patched
    ``_highwaters`` also sends one small Fetch request per partition leader (all partitions
    in one request) and returns, per partition, the larger of the ListOffsets answer and the
    Fetch response's high watermark.  On a broker that answers ListOffsets correctly both
    numbers are equal, so the fix costs one extra round trip per recovery and nothing else.

``seek``
    ``Recovery.on_recovery_completed`` resumes the stream (non-changelog) partitions and only
    then seeks them to their committed offsets.  While that seek is awaited the streams
    already process records fetched for the partitions seeked first; the seek then resets
    Faust's read offsets underneath them, Faust takes the records it already processed for
    a gap in the log, and its acked-offset bookkeeping gets duplicates: the committed offset
    then advances by one offset per commit (or skips events), and the next restart counts
    everything since then twice.  The patched method performs the seek first and resumes
    the partitions afterwards; ``Recovery._resume_streams`` (the same code path for apps
    without tables) has the same order and gets the same change.

    Seeking first means no partition at all is active while the seek runs, and an empty
    set of active partitions means "all partitions" to aiokafka's ``fetched_records``: a
    fetch still waiting then returns every partition's records, Faust drops the ones it did
    not ask for and aiokafka's positions move past them (the partition is skipped until the
    next restart, or for good once newer records arrive).  Upstream has the same window,
    only shorter, so ``AIOKafkaConsumerThread._fetch_records`` is patched too: an empty
    active set returns nothing.

The ``VASBILL_COMPAT_DISABLE`` environment variable (``highwater``, ``seek``, a comma
separated list of both, or ``all``) skips fixes; it exists so the tests can show that each
fix is needed.  Never set it in production.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

__all__ = [
    "ALL_FIXES",
    "DISABLE_ENV",
    "FIX_HIGHWATER",
    "FIX_SEEK",
    "SUPPORTED_FAUST_VERSION",
    "BrokerCompatError",
    "embedded_broker_settings",
    "fetch_high_watermarks",
    "install_broker_compat",
    "installed_fixes",
    "production_settings",
    "true_end_offsets",
]

log = logging.getLogger(__name__)

#: The only faust-streaming version these patches were written against and measured with.
SUPPORTED_FAUST_VERSION: Final = "0.15.3"

FIX_HIGHWATER: Final = "highwater"
FIX_SEEK: Final = "seek"
ALL_FIXES: Final = frozenset({FIX_HIGHWATER, FIX_SEEK})

#: Test-only switch: names of fixes that ``install_broker_compat()`` must not apply.
DISABLE_ENV: Final = "VASBILL_COMPAT_DISABLE"

#: Marker set on every function this module installs (makes installation idempotent even if
#: this module is imported twice under different names).
_MARK: Final = "__vasbill_compat__"

#: Fetch parameters for the high-watermark probe.  Tansu returns an empty response when
#: ``max_wait_ms`` is 0, so it must be positive; ``min_bytes=0`` makes every broker answer at
#: once instead of waiting for data.  One byte per partition: only the header is wanted.
_PROBE_MAX_WAIT_MS: Final = 100
_PROBE_MIN_BYTES: Final = 0
_PROBE_MAX_BYTES: Final = 1
_PROBE_ATTEMPTS: Final = 3
_PROBE_RETRY_BACKOFF_S: Final = 0.2

_lock = threading.Lock()
_installed: set[str] = set()

TPKey = TypeVar("TPKey")


class BrokerCompatError(RuntimeError):
    """The compat layer cannot be installed, or it cannot determine a true end offset."""


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def embedded_broker_settings(**overrides: Any) -> dict[str, Any]:
    """Faust app settings for the embedded Tansu broker (see the research notes).

    * ``broker_session_timeout=3.0`` / ``broker_heartbeat_interval=0.3``: Tansu holds every
      JoinGroup for half the session timeout, and the first join fixes a group's session
      timeout for the broker's lifetime.  Faust's 60 s default means 30 s per rebalance;
      3.0/0.3 measured 3.6-4.2 s to "ready" on every start and restart and no evictions
      under full load.
    * ``processing_guarantee="at_least_once"``: aiokafka only speaks InitProducerId v0,
      which Tansu rejects, so exactly-once (and idempotent producers) cannot start.
    * ``topic_replication_factor=1`` and ``table_standby_replicas=0``: one broker, and the
      embedded deployment runs a single worker.
    """
    settings: dict[str, Any] = {
        "broker_session_timeout": 3.0,
        "broker_heartbeat_interval": 0.3,
        "processing_guarantee": "at_least_once",
        "topic_replication_factor": 1,
        "table_standby_replicas": 0,
    }
    settings.update(overrides)
    return settings


def production_settings(**overrides: Any) -> dict[str, Any]:
    """Faust app settings for a production Kafka cluster (kept apart from the embedded ones).

    Faust's own timeouts (60 s session, 3 s heartbeat) suit a real broker, which does not
    hold JoinGroup requests; they are spelled out so that nobody copies the embedded values
    by accident.  The compat fixes stay installed there too: the seek-order fix is a Faust
    bug independent of the broker, and the highwater fix is a no-op when ListOffsets is
    right.
    """
    settings: dict[str, Any] = {
        "broker_session_timeout": 60.0,
        "broker_heartbeat_interval": 3.0,
        "processing_guarantee": "at_least_once",
        "topic_replication_factor": 3,
        "table_standby_replicas": 1,
    }
    settings.update(overrides)
    return settings


# --------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------


def installed_fixes() -> frozenset[str]:
    """Names of the fixes applied so far in this process."""
    with _lock:
        return frozenset(_installed)


def _parse_disable(value: str | Iterable[str] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    names = value.split(",") if isinstance(value, str) else list(value)
    out: set[str] = set()
    for raw in names:
        name = raw.strip().lower()
        if not name or name == "none":
            continue
        if name == "all":
            out |= ALL_FIXES
        elif name in ALL_FIXES:
            out.add(name)
        else:
            raise BrokerCompatError(f"{DISABLE_ENV}: unknown fix {raw!r}; expected one of {sorted(ALL_FIXES)} or 'all'")
    return frozenset(out)


def _check_versions() -> None:
    import faust

    version = getattr(faust, "__version__", "?")
    if version != SUPPORTED_FAUST_VERSION:
        raise BrokerCompatError(
            f"workers.compat patches faust-streaming {SUPPORTED_FAUST_VERSION} internals "
            f"(Recovery.on_recovery_completed, Recovery._resume_streams, "
            f"AIOKafkaConsumerThread._highwaters, AIOKafkaConsumerThread._fetch_records) "
            f"but faust-streaming {version} is installed. "
            f"Re-check both bugs against this version (see workers/COMPAT.md), then update or "
            f"drop the patches and SUPPORTED_FAUST_VERSION."
        )
    from aiokafka.protocol.fetch import FetchRequest

    params = list(inspect.signature(FetchRequest.__init__).parameters)[1:6]
    if params != ["max_wait_time", "min_bytes", "max_bytes", "isolation_level", "topics"]:
        import aiokafka

        raise BrokerCompatError(
            f"workers.compat builds aiokafka FetchRequest(max_wait_time, min_bytes, max_bytes, "
            f"isolation_level, topics) but aiokafka {aiokafka.__version__} has {params}"
        )


def install_broker_compat(*, disable: str | Iterable[str] | None = None) -> frozenset[str]:
    """Apply the Faust fixes once per process; return the names of the fixes now active.

    Call it from the worker app factory before the app starts.  Repeated calls are no-ops
    (a fix is never applied twice, and an applied fix is never removed).  ``disable``
    (default: the ``VASBILL_COMPAT_DISABLE`` environment variable) names fixes to skip; it
    is meant for the tests that demonstrate each bug.

    Raises :class:`BrokerCompatError` if the installed faust-streaming is not
    ``SUPPORTED_FAUST_VERSION``.
    """
    skip = _parse_disable(os.environ.get(DISABLE_ENV) if disable is None else disable)
    _check_versions()
    with _lock:
        if FIX_HIGHWATER not in skip and FIX_HIGHWATER not in _installed:
            _install_highwater_fix()
            _installed.add(FIX_HIGHWATER)
        if FIX_SEEK not in skip and FIX_SEEK not in _installed:
            _install_seek_fix()
            _installed.add(FIX_SEEK)
        if skip:
            log.warning(
                "workers.compat: fixes NOT applied (%s=%s): %s",
                DISABLE_ENV,
                ",".join(sorted(skip)),
                "Faust table recovery / restarts can lose or duplicate events",
            )
        return frozenset(_installed)


# --------------------------------------------------------------------------------------
# Fix 1: true end offsets (highwater)
# --------------------------------------------------------------------------------------


async def fetch_high_watermarks(
    client: Any,
    offsets: Mapping[TPKey, int | None],
    *,
    max_wait_ms: int = _PROBE_MAX_WAIT_MS,
    attempts: int = _PROBE_ATTEMPTS,
) -> dict[TPKey, int]:
    """High watermark of each partition, read from Fetch responses.

    ``client`` is an ``aiokafka.client.AIOKafkaClient`` (``consumer._client``); ``offsets``
    maps topic partitions (anything with ``.topic`` and ``.partition``) to the offset to
    fetch at, normally the ListOffsets answer (an offset that exists or is the log end, so
    the broker answers without error).  One Fetch request per partition leader, carrying
    every partition that leader owns, all leaders in parallel; partitions without an answer
    are retried after a metadata refresh.  Partitions still without an answer after
    ``attempts`` rounds are missing from the result.
    """
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.structs import TopicPartition

    pending: dict[tuple[str, int], tuple[TPKey, int]] = {
        (tp.topic, tp.partition): (tp, max(offset or 0, 0))  # type: ignore[attr-defined]
        for tp, offset in offsets.items()
    }
    result: dict[TPKey, int] = {}
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(_PROBE_RETRY_BACKOFF_S * attempt)
            await client.force_metadata_update()
        by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
        for (topic, partition), (_key, offset) in pending.items():
            node_id = client.cluster.leader_for_partition(TopicPartition(topic, partition))
            if node_id is None or node_id < 0:
                client.add_topic(topic)
                continue
            by_node[node_id][topic].append((partition, offset, _PROBE_MAX_BYTES))
        nodes = list(by_node)
        requests = [
            FetchRequest(max_wait_ms, _PROBE_MIN_BYTES, _PROBE_MAX_BYTES, 0, list(by_node[n].items())) for n in nodes
        ]
        responses = await asyncio.gather(
            *(client.send(n, req) for n, req in zip(nodes, requests, strict=True)), return_exceptions=True
        )
        for node_id, response in zip(nodes, responses, strict=True):
            if isinstance(response, BaseException):
                if isinstance(response, asyncio.CancelledError):
                    raise response
                log.warning("high-watermark Fetch to node %s failed: %r", node_id, response)
                continue
            for topic, partitions in response.topics:
                for partition, error_code, high_watermark, *_rest in partitions:
                    entry = pending.get((topic, partition))
                    if entry is None:
                        continue
                    if error_code == 0 and high_watermark is not None and high_watermark >= 0:
                        result[entry[0]] = high_watermark
                        del pending[(topic, partition)]
                    else:
                        log.debug("high-watermark Fetch %s[%s]: error %s", topic, partition, error_code)
        if not pending:
            break
    return result


async def true_end_offsets(consumer: Any, partitions: Iterable[TPKey]) -> dict[TPKey, int]:
    """End offsets of ``partitions`` for an ``aiokafka.AIOKafkaConsumer``: the larger of the
    ListOffsets answer and the Fetch high watermark (the Faust-independent core of fix 1)."""
    listed: dict[TPKey, int] = await consumer.end_offsets(list(partitions))
    return await _max_with_high_watermarks(consumer._client, listed)


async def _max_with_high_watermarks(client: Any, listed: Mapping[TPKey, int | None]) -> dict[TPKey, int]:
    if not listed:
        return dict(listed)  # type: ignore[arg-type]
    fetched = await fetch_high_watermarks(client, listed)
    missing = [tp for tp in listed if tp not in fetched]
    if missing:
        # Falling back to the ListOffsets answer would make recovery silently drop table
        # updates on the embedded broker; failing makes Faust retry the recovery/restart.
        raise BrokerCompatError(f"could not read the high watermark of {missing} from a Fetch response")
    out: dict[TPKey, int] = {}
    for tp, listed_offset in listed.items():
        out[tp] = max(listed_offset if listed_offset is not None else -1, fetched[tp])
        if out[tp] != listed_offset:
            log.info(
                "end offset of %s[%s] raised to %s: ListOffsets answered %s, Fetch high watermark %s",
                tp.topic,  # type: ignore[attr-defined]
                tp.partition,  # type: ignore[attr-defined]
                out[tp],
                listed_offset,
                fetched[tp],
            )
    return out


def _install_highwater_fix() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._highwaters
    if getattr(original, _MARK, False):
        return

    async def _highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        # Upstream: ListOffsets (or last stable offsets inside a transaction).
        listed = await original(self, partitions)
        if self.consumer.in_transaction:
            # last_stable_offset comes from Fetch responses already (and exactly-once does
            # not run on the embedded broker anyway).
            return listed
        return await _max_with_high_watermarks(self._ensure_consumer()._client, listed)

    _highwaters.__doc__ = "Upstream ``_highwaters`` raised to the Fetch high watermark (workers.compat)."
    setattr(_highwaters, _MARK, True)
    _highwaters.__wrapped__ = original  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------
# Fix 2: seek to committed offsets before resuming the stream partitions
# --------------------------------------------------------------------------------------


def _install_seek_fix() -> None:
    from faust.tables.recovery import Recovery

    if getattr(Recovery.on_recovery_completed, _MARK, False):
        return
    original_completed = Recovery.on_recovery_completed
    original_resume = Recovery._resume_streams

    # Copy of faust-streaming 0.15.3 ``Recovery.on_recovery_completed``; the only change is
    # marked "vasbill fix".
    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        """Call when active table recovery is completed."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        # This needs to happen if all goes well
        callback_coros = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table],
                    self.standbys_for_table[table],
                )
            )
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                f"Recovery rebalancing again app id {self.app.consumer_generation_id} param {generation_id}"
            )
            return
        # vasbill fix: upstream resumed the stream partitions here, *before* the seek below.
        # The fetcher then handed records prefetched during recovery to the streams while the
        # seek was in flight, and the seek reset the read offsets underneath them: events
        # were skipped and later commits stalled (double counting after the next restart).
        # Seek first, resume afterwards.
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        self.log.dev("Resume stream partitions")
        self.app.flow_control.resume()
        consumer.resume_flow()
        # finally make sure the fetcher is running.
        await self.app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    # Copy of faust-streaming 0.15.3 ``Recovery._resume_streams`` (used when the app has no
    # tables); same change.
    async def _resume_streams(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            # vasbill fix: seek before resuming (upstream resumed first), see above.
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
            self.log.dev("Resume stream partitions")
            consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        # Resume partitions and start fetching.
        self.log.info("Resuming flow...")
        app.flow_control.resume()
        consumer.resume_flow()
        # finally make sure the fetcher is running.
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    for new, old in ((on_recovery_completed, original_completed), (_resume_streams, original_resume)):
        new.__wrapped__ = old  # type: ignore[attr-defined]
        setattr(new, _MARK, True)
    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
    _install_fetch_filter_fix()


class _ActivePartitionsFilter:
    """The consumer's live set of active partitions, as aiokafka's ``fetched_records`` sees it.

    aiokafka filters with ``if partitions and tp not in partitions``, so an *empty* set
    means "every partition".  Faust hands it its own mutable set of active partitions
    and empties that set while it waits: between "changelogs read" (changelog partitions
    paused) and "streams resumed" nothing is active.  A fetch that is still waiting then
    returns the records of every partition; Faust drops the ones it did not ask for, but
    aiokafka has already moved its positions past them.  This object is always truthy and
    answers membership from the live set, so "nothing active" returns nothing.
    """

    __slots__ = ("_live",)

    def __init__(self, live: Any) -> None:
        self._live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self._live

    def __iter__(self) -> Any:
        return iter(self._live)

    def __len__(self) -> int:
        return len(self._live)


def _install_fetch_filter_fix() -> None:
    """Part of the seek fix: the seek now runs while no stream partition is active, which
    makes that "nothing active" window as long as the seek (one committed-offset lookup per
    partition), so an empty active set must really mean "no partition" (see
    :class:`_ActivePartitionsFilter`)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._fetch_records
    if getattr(original, _MARK, False):
        return

    async def _fetch_records(
        self: Any, consumer: Any, active_partitions: Any, timeout: float | None = None, max_records: int | None = None
    ) -> Any:
        if active_partitions is not None:  # None (client-only apps) does mean "all"
            active_partitions = _ActivePartitionsFilter(active_partitions)
        return await original(self, consumer, active_partitions, timeout=timeout, max_records=max_records)

    _fetch_records.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(_fetch_records, _MARK, True)
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------
# Consumer fetch wait
# --------------------------------------------------------------------------------------

_fetch_wait_ms: int | None = None


def set_consumer_fetch_wait(ms: int | None) -> None:
    """Use ``ms`` as the stream consumer's ``fetch_max_wait_ms`` (None: Faust's own 1500).

    faust-streaming 0.15.3 hard-codes 1500 ms in ``_create_worker_consumer``, and Tansu holds
    a Fetch for that long when a partition has no new data, so every batch of a live stream
    waited up to 1.5 s: the floor of the event-to-state latency. The embedded settings use
    100 ms; production keeps Faust's value (a real broker answers as soon as data arrives).
    """
    global _fetch_wait_ms
    from faust.transport.drivers import aiokafka as driver

    _fetch_wait_ms = ms
    thread = driver.AIOKafkaConsumerThread
    if getattr(thread._create_worker_consumer, _MARK, False):
        return
    original = thread._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        if _fetch_wait_ms is not None:
            consumer._fetch_max_wait_ms = _fetch_wait_ms  # read by aiokafka when its Fetcher starts
        return consumer

    setattr(create_worker_consumer, _MARK, True)
    create_worker_consumer.__wrapped__ = original  # type: ignore[attr-defined]
    thread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]  # the patch

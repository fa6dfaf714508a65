"""Kafka plumbing for the command line, the demo and the tests (SPEC §2, §3, §9, §10).

- ``Security`` / ``client_config``: PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL with PLAIN,
  SCRAM-SHA-256 or SCRAM-SHA-512, as kwargs for kafka-python or aiokafka.
- ``create_topics``: every topic of ``TopicNames.all()``, idempotently.
- ``EventPacker`` + ``produce_lines``: JSON Lines routed to their topics, the events bound
  for one partition packed in file order into JSON-array messages (aiokafka producer: about
  five times the rate of kafka-python's on this machine).
- ``read_records`` / ``read_charges``: manually assigned partitions read from the
  beginning, no consumer group (no group join, no committed offsets). "The end" is the
  high watermark of Fetch responses, not ListOffsets: Tansu answers ListOffsets(LATEST)
  with the base offset of the newest record batch + 1, too low after multi-record batches.

Every failure to reach or use the cluster raises ``KafkaIOError`` with a one-line message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import ssl
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO

import orjson

from rating.configs import read_app_config
from topics import clockstamp, configstamp
from topics.appconfig import AppDirectory
from topics.clockstamp import ReplayClock
from topics.names import BILLING_TOPIC_OF_PRODUCT, CLOCK_TOPIC, CONFIG_TOPIC, USAGE_TOPIC_OF_TYPE, TopicNames
from topics.reasons import ConfigError, VasbillError

DEFAULT_BROKER = "127.0.0.1:9092"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Largest message value we send: a batch is at most 1 MiB (SPEC §3); this leaves room for
#: the record overhead under Kafka's default 1 MiB limits (message.max.bytes, max.request.size).
MAX_MESSAGE_BYTES = 1_000_000
MAX_BATCH_EVENTS = 1000
CLOCK_KEY = b"clock"
CLIENT_ID = "vasbill"

ENV_BROKER = "VASBILL_BROKER"
ENV_SECURITY_PROTOCOL = "VASBILL_SECURITY_PROTOCOL"
ENV_SASL_MECHANISM = "VASBILL_SASL_MECHANISM"
ENV_SASL_USERNAME = "VASBILL_SASL_USERNAME"
ENV_SASL_PASSWORD = "VASBILL_SASL_PASSWORD"  # noqa: S105 - the variable's name, not a password
ENV_SSL_CAFILE = "VASBILL_SSL_CAFILE"
ENV_SSL_CERTFILE = "VASBILL_SSL_CERTFILE"
ENV_SSL_KEYFILE = "VASBILL_SSL_KEYFILE"


class KafkaIOError(VasbillError):
    """The cluster cannot be reached or refused a request; the message is one line."""


class SettingsError(VasbillError):
    """Invalid connection settings (bootstrap address, security protocol, SASL, SSL)."""


def kafka_python() -> Any:
    """The ``kafka`` (kafka-python) package, imported lazily: the CLI's other commands do not
    pay for it. kafka-python 3.0.12 loads its protocol schemas with the deprecated
    ``importlib.resources.read_text``; that warning is silenced here, at the one import."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="(read|open)_text is deprecated", category=DeprecationWarning)
        import kafka
        import kafka.admin
        import kafka.errors
    return kafka


# -- connection settings ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Security:
    """How clients authenticate and encrypt. Validated and normalised on construction."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        protocol = (self.protocol or "PLAINTEXT").strip().upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise SettingsError(f"security protocol {self.protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}")
        object.__setattr__(self, "protocol", protocol)
        mechanism = self.sasl_mechanism.strip().upper() if self.sasl_mechanism else None
        if self.uses_sasl:
            mechanism = mechanism or "PLAIN"
            if mechanism not in SASL_MECHANISMS:
                raise SettingsError(f"SASL mechanism {self.sasl_mechanism!r} is not one of "
                                    f"{', '.join(SASL_MECHANISMS)}")
            if not self.sasl_username or self.sasl_password is None:
                raise SettingsError(f"{protocol} needs a SASL username and password "
                                    f"(--sasl-username/--sasl-password or {ENV_SASL_USERNAME}/{ENV_SASL_PASSWORD})")
        elif mechanism:
            raise SettingsError(f"a SASL mechanism was given but the security protocol is {protocol} "
                                "(use SASL_PLAINTEXT or SASL_SSL)")
        object.__setattr__(self, "sasl_mechanism", mechanism)
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise SettingsError(f"{name.replace('_', ' ')} {path} does not exist")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise SettingsError("an SSL key file needs an SSL certificate file")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol.endswith("SSL")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Security:
        env = os.environ if env is None else env
        return cls(
            protocol=env.get(ENV_SECURITY_PROTOCOL) or "PLAINTEXT",
            sasl_mechanism=env.get(ENV_SASL_MECHANISM) or None,
            sasl_username=env.get(ENV_SASL_USERNAME) or None,
            sasl_password=env.get(ENV_SASL_PASSWORD),
            ssl_cafile=env.get(ENV_SSL_CAFILE) or None,
            ssl_certfile=env.get(ENV_SSL_CERTFILE) or None,
            ssl_keyfile=env.get(ENV_SSL_KEYFILE) or None,
        )


def parse_bootstrap(text: str | Iterable[str]) -> list[str]:
    """``"host:port,host:port"`` (or a list) → ``["host:port", ...]``, validated."""
    items = text.split(",") if isinstance(text, str) else list(text)
    servers = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"broker address {item!r} is not HOST:PORT")
        servers.append(item)
    if not servers:
        raise SettingsError("no broker address given")
    return servers


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the cluster is and how to talk to it."""

    bootstrap: str = DEFAULT_BROKER
    security: Security = field(default_factory=Security)
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        parse_bootstrap(self.bootstrap)

    @property
    def servers(self) -> list[str]:
        return parse_bootstrap(self.bootstrap)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        env = os.environ if env is None else env
        return cls(env.get(ENV_BROKER) or DEFAULT_BROKER, Security.from_env(env))


def client_config(bootstrap: str | Iterable[str], security: Security | None = None, *,
                  library: str = "kafka-python") -> dict[str, Any]:
    """Connection kwargs for ``kafka.KafkaProducer/KafkaConsumer/KafkaAdminClient``
    (``library="kafka-python"``) or ``aiokafka.AIOKafkaProducer/AIOKafkaConsumer``
    (``library="aiokafka"``). SCRAM uses the ``sasl_plain_*`` credentials in both."""
    security = security or Security()
    config: dict[str, Any] = {
        "bootstrap_servers": parse_bootstrap(bootstrap),
        "security_protocol": security.protocol,
        "client_id": CLIENT_ID,
    }
    if security.uses_sasl:
        config.update(sasl_mechanism=security.sasl_mechanism, sasl_plain_username=security.sasl_username,
                      sasl_plain_password=security.sasl_password)
    if library == "kafka-python":
        if security.uses_ssl:
            config["ssl_check_hostname"] = True
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(security, name):
                    config[name] = getattr(security, name)
    elif library == "aiokafka":
        if security.uses_ssl:
            config["ssl_context"] = ssl_context(security)
    else:
        raise ValueError(f"unknown Kafka client library {library!r}")
    return config


def ssl_context(security: Security) -> ssl.SSLContext:
    """A verifying TLS client context: the CA file, or the system CAs when none is given."""
    context = ssl.create_default_context(cafile=security.ssl_cafile)
    if security.ssl_certfile:
        context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile)
    return context


def check_reachable(servers: Iterable[str], timeout: float = 5.0) -> None:
    """Fail fast, with a clear reason, when no bootstrap server accepts a TCP connection.
    (Clients would otherwise retry for their whole bootstrap timeout.)"""
    servers = list(servers)
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError as exc:
            reasons.append(f"{server}: {_os_reason(exc)}")
    raise KafkaIOError(f"cannot connect to the Kafka broker ({'; '.join(reasons)})")


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return exc.strerror or str(exc) or type(exc).__name__


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def kafka_errors(bootstrap: str) -> Iterator[None]:
    """Turn client exceptions into ``KafkaIOError`` with one line naming the cluster."""
    import aiokafka.errors as aio_errors

    kp_errors = kafka_python().errors

    # kafka-python 3 has no NoBrokersAvailable (2.x had); aiokafka keeps its own copy.
    unreachable = tuple(
        getattr(module, name)
        for module in (kp_errors, aio_errors)
        for name in ("NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError")
        if hasattr(module, name)
    )
    try:
        yield
    except unreachable as exc:
        raise KafkaIOError(f"cannot reach the Kafka broker at {bootstrap}: "
                           f"{type(exc).__name__}: {_one_line(exc)}") from exc
    except (kp_errors.KafkaError, aio_errors.KafkaError) as exc:
        raise KafkaIOError(f"Kafka error from {bootstrap}: {type(exc).__name__}: {_one_line(exc)}") from exc
    except ssl.SSLError as exc:
        raise KafkaIOError(f"TLS error with {bootstrap}: {_one_line(exc)}") from exc


def _kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    config = client_config(settings.bootstrap, settings.security)
    timeout_ms = int(settings.connect_timeout * 1000)
    config.update(bootstrap_timeout_ms=timeout_ms, request_timeout_ms=max(30_000, timeout_ms))
    return config


# -- topics ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TopicResult:
    name: str
    partitions: int          # wanted
    status: str              # "created" or "exists"
    actual_partitions: int   # on the cluster
    config: tuple[tuple[str, str], ...] = ()


def create_topics(settings: KafkaSettings, names: TopicNames, *, replication_factor: int = -1,
                  timeout: float = 30.0) -> list[TopicResult]:
    """Create every topic of ``names.all()`` that does not exist yet (partitions, configs;
    ``config.apps`` compacted). Existing topics are left as they are and reported with
    their actual partition count. ``replication_factor`` -1 = the cluster's default."""
    kafka = kafka_python()
    kp_errors = kafka.errors

    specs = names.all()
    check_reachable(settings.servers, settings.connect_timeout)
    with kafka_errors(settings.bootstrap):
        admin = kafka.KafkaAdminClient(**_kafka_python_config(settings))
        try:
            request = {
                spec.name: {"num_partitions": spec.partitions, "replication_factor": replication_factor,
                            "configs": dict(spec.config)}
                for spec in specs
            }
            response = admin.create_topics(request, timeout_ms=int(timeout * 1000), raise_errors=False)
            status = {}
            for topic in response["topics"]:
                error = kp_errors.for_code(topic["error_code"])
                if error is kp_errors.NoError:
                    status[topic["name"]] = "created"
                elif error is kp_errors.TopicAlreadyExistsError:
                    status[topic["name"]] = "exists"
                else:
                    message = topic.get("error_message") or error.__name__
                    raise KafkaIOError(f"cannot create topic {topic['name']} on {settings.bootstrap}: "
                                       f"{_one_line(message)}")
            created = [name for name, s in status.items() if s == "created"]
            if created:
                admin.wait_for_topics(created, timeout_ms=int(timeout * 1000))
            actual = _partition_counts(admin, [spec.name for spec in specs])
        finally:
            admin.close()
    return [TopicResult(spec.name, spec.partitions, status.get(spec.name, "exists"),
                        actual.get(spec.name) or 0, spec.config) for spec in specs]


def _partition_counts(admin: Any, topics: list[str]) -> dict[str, int]:
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics) if t["error_code"] == 0}


def existing_topics(settings: KafkaSettings) -> dict[str, int]:
    """Every topic on the cluster with its partition count (no auto-creation)."""
    kafka = kafka_python()

    check_reachable(settings.servers, settings.connect_timeout)
    with kafka_errors(settings.bootstrap):
        admin = kafka.KafkaAdminClient(**_kafka_python_config(settings))
        try:
            return {t["name"]: len(t["partitions"]) for t in admin.describe_topics() if t["error_code"] == 0}
        finally:
            admin.close()


def _missing_topic(topic: str, bootstrap: str) -> KafkaIOError:
    return KafkaIOError(f"topic {topic} does not exist on {bootstrap}; "
                        "run `vasbill topics create` (with the same --prefix) first")


# -- routing JSON Lines to topics -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    events: int      # events carried (a batch carries several)
    kind: str        # "usage", "config", "tick" or "unroutable"
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: the producer's partitioner picks one from the key


@dataclass
class PackStats:
    lines: int = 0                                      # non-blank lines read
    events: Counter[str] = field(default_factory=Counter)   # lines per kind
    messages: Counter[str] = field(default_factory=Counter)  # messages per kind
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason): not sent

    @property
    def message_count(self) -> int:
        return sum(self.messages.values())


def app_key(document: Mapping[str, Any]) -> bytes | None:
    """The message key of an event or app config: its sdk_app_id as ASCII, if it is an integer."""
    value = document.get("sdk_app_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    return None


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), as aiokafka and the Java client pick."""
    from aiokafka.partitioner import murmur2

    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class _Batch:
    __slots__ = ("lines", "size", "clocks", "keys")

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.clocks: list[int | None] = []
        self.keys: set[bytes | None] = set()
        self.size = 1  # "[" + events joined by "," + "]"

    def fits(self, line: bytes, max_bytes: int) -> bool:
        return self.size + 1 + len(line) <= max_bytes

    def add(self, line: bytes, clock: int | None, key: bytes | None) -> None:
        self.lines.append(line)
        self.clocks.append(clock)
        self.keys.add(key)
        self.size += len(line) + 1


class EventPacker:
    """Routes JSON Lines to messages (SPEC §2, §3, §9 ``produce``):

    - a usage event (``type`` in ``USAGE_TOPIC_OF_TYPE``) → its usage topic, key sdk_app_id;
      with ``batch`` > 1, the events bound for one partition of one topic are packed, in file
      order, into JSON-array messages of up to ``batch`` events and ``max_bytes`` bytes;
    - ``clock.tick`` → ``control.clock``, key ``"clock"``;
    - an object without ``type`` → an app config for ``config.apps``, key sdk_app_id;
    - anything else (invalid JSON, not an object, unknown type, a config without an integer
      sdk_app_id) → ``default_topic`` as is, so the worker quarantines it with its reason.

    Packing by partition keeps exactly the order in which each partition would have received
    the events one by one, so a packed replay bills like an unpacked one, revision for
    revision; it only changes how many events a message carries (time-ordered files
    interleave apps, so packing by app would give 1.6 events per message on ``vasbill gen``
    output, by partition several hundred). A message whose events are all of one app keeps
    that app's key; a message mixing the apps of a partition has no key (the partition is set
    explicitly). Every pending batch goes out before a tick, a config or an unroutable line.

    ``partitions`` is the partition count of each usage topic (or one count for all), as
    the cluster has them: the packer picks each event's partition itself.

    Lines keep their original bytes (no re-serialisation). A line over ``max_bytes`` cannot
    be sent and is recorded in ``stats.skipped``.

    Exact replays: every message carries the ``vasbill-clock`` header (``topics.clockstamp``),
    the clock ``vasbill rate`` would have before each of its events, and with
    ``partition_by="account"`` an app's events go to the partition of its account (murmur2 of
    account_id, decided at the app's first event and kept), so the late events of one account
    reach the worker in file order.
    """

    def __init__(self, names: TopicNames, *, partitions: Mapping[str, int] | int, batch: int = 1,
                 default_topic: str | None = None, max_bytes: int = MAX_MESSAGE_BYTES,
                 apps: AppDirectory | None = None, partition_by: str = "account",
                 now: datetime | None = None) -> None:
        if not 1 <= batch <= MAX_BATCH_EVENTS:
            raise SettingsError(f"batch size {batch} is not in 1..{MAX_BATCH_EVENTS}")
        self.names = names
        self.batch = batch
        self.partitions = partitions
        self.default_topic = default_topic or names(USAGE_TOPIC_OF_TYPE["relay.traffic"])
        self.max_bytes = max_bytes
        self.stats = PackStats()
        self._line_number = 0
        self._pending: dict[tuple[str, int], _Batch] = {}  # in order of first line
        if partition_by not in ("account", "app"):
            raise SettingsError(f"partition by {partition_by!r}: expected account or app")
        self.partition_by = partition_by
        self.clock = ReplayClock(apps if apps is not None else AppDirectory(), now or datetime.now(timezone.utc))
        self._partition_keys: dict[bytes, bytes] = {}
        self._partitions: dict[tuple[bytes, int], int] = {}  # murmur2 is pure Python: once per key

    def add(self, raw: bytes) -> list[Message]:
        """One line in (with or without its newline); the messages now ready to send out."""
        self._line_number += 1
        line = raw.strip()
        if not line:
            return []
        self.stats.lines += 1
        if len(line) > self.max_bytes:
            self.stats.skipped.append((self._line_number, f"line of {len(line)} bytes is over the "
                                                          f"{self.max_bytes}-byte message limit"))
            return []
        kind, topic, key, document = self._route(line)
        self.stats.events[kind] += 1
        if kind == "config":
            self._learn(document)
        before = self.clock.before(document, line)
        partition = self._partition(topic, key) if kind == "usage" else None
        if kind == "usage" and self.batch > 1 and partition is not None:
            return self._add_to_batch((topic, partition), line, key, before)
        out = self.flush()
        headers = () if kind == "config" else ((clockstamp.HEADER, clockstamp.encode([before], self.clock.final_ms)),)
        out.append(self._message(topic, key, line, 1, kind, headers, partition))
        return out

    def _learn(self, document: Any) -> None:
        try:
            self.clock.apps.add(read_app_config(document))
        except ConfigError:
            pass  # the worker quarantines nothing here: it ignores invalid configs and says so

    def _partition(self, topic: str, key: bytes | None) -> int | None:
        """The partition of a usage event: murmur2 of its account (at the app's first event,
        kept after) with ``partition_by="account"`` and a known app, else of its key."""
        if key is None:
            return None
        count = self.partitions if isinstance(self.partitions, int) else self.partitions.get(topic)
        if not count:
            return None
        hashed = key
        if self.partition_by == "account":
            if key not in self._partition_keys:
                versions = self.clock.apps.versions(int(key)) if key.isdigit() else []
                self._partition_keys[key] = versions[0].account_id.encode() if versions else key
            hashed = self._partition_keys[key]
        found = self._partitions.get((hashed, count))
        if found is None:
            found = self._partitions[(hashed, count)] = partition_of(hashed, count)
        return found

    def _route(self, line: bytes) -> tuple[str, str, bytes | None, Any]:
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            return "unroutable", self.default_topic, None, None
        if not isinstance(document, dict):
            return "unroutable", self.default_topic, None, document
        key = app_key(document)
        if "type" not in document:
            if key is None:
                return "unroutable", self.default_topic, None, document
            return "config", self.names(CONFIG_TOPIC), key, document
        event_type = document["type"]
        if event_type == "clock.tick":
            return "tick", self.names(CLOCK_TOPIC), CLOCK_KEY, document
        if isinstance(event_type, str) and event_type in USAGE_TOPIC_OF_TYPE:
            return "usage", self.names.usage_topic(event_type), key, document
        return "unroutable", self.default_topic, key, document

    def _add_to_batch(self, route: tuple[str, int], line: bytes, key: bytes | None,
                      before: int | None) -> list[Message]:
        out: list[Message] = []
        batch = self._pending.get(route)
        if batch is not None and not batch.fits(line, self.max_bytes):
            out.append(self._emit(route))
            batch = None
        if batch is None:
            batch = self._pending[route] = _Batch()
        batch.add(line, before, key)
        if len(batch.lines) >= self.batch:
            out.append(self._emit(route))
        return out

    def _emit(self, route: tuple[str, int]) -> Message:
        """One pending batch as a message (a single event is sent as itself, not as an array)."""
        batch = self._pending.pop(route)
        events = batch.lines
        value = events[0] if len(events) == 1 else b"[" + b",".join(events) + b"]"
        key = next(iter(batch.keys)) if len(batch.keys) == 1 else None
        headers = ((clockstamp.HEADER, clockstamp.encode(batch.clocks, self.clock.final_ms)),)
        return self._message(route[0], key, value, len(events), "usage", headers, route[1])

    def flush(self) -> list[Message]:
        """Every pending batch, oldest first."""
        return [self._emit(route) for route in list(self._pending)]

    def _message(self, topic: str, key: bytes | None, value: bytes, events: int, kind: str,
                 headers: tuple[tuple[str, bytes], ...] = (), partition: int | None = None) -> Message:
        self.stats.messages[kind] += 1
        return Message(topic, key, value, events, kind, headers, partition)


# -- producing --------------------------------------------------------------------------------

class KafkaSender:
    """An aiokafka producer that refuses topics that do not exist (Tansu, like Kafka with
    ``auto.create.topics.enable``, would silently create them with one partition) and counts
    deliveries. Use as ``async with KafkaSender(settings) as sender: await sender.send(m)``;
    leaving the block flushes and raises ``KafkaIOError`` if any message failed."""

    def __init__(self, settings: KafkaSettings, *, linger_ms: int = 10, acks: str | int = "all") -> None:
        self.settings = settings
        self.linger_ms = linger_ms
        self.acks = acks
        self.delivered = 0
        self.failed = 0
        self.first_error: BaseException | None = None
        self._producer: Any = None
        self._topics: set[str] = set()
        self._in_flight: set[asyncio.Future[Any]] = set()

    async def __aenter__(self) -> KafkaSender:
        from aiokafka import AIOKafkaProducer

        check_reachable(self.settings.servers, self.settings.connect_timeout)
        timeout_ms = int(max(self.settings.connect_timeout, 30) * 1000)
        with kafka_errors(self.settings.bootstrap):
            self._producer = AIOKafkaProducer(
                **client_config(self.settings.bootstrap, self.settings.security, library="aiokafka"),
                acks=self.acks, linger_ms=self.linger_ms, max_batch_size=512 * 1024,
                max_request_size=MAX_MESSAGE_BYTES + 48 * 1024, request_timeout_ms=timeout_ms,
            )
            try:
                await self._producer.start()
                await self._refresh_topics()
            except BaseException:
                await self._producer.stop()
                raise
        return self

    async def _refresh_topics(self) -> None:
        metadata = await self._producer.client.fetch_all_metadata()
        self._topics = set(metadata.topics())

    def partition_counts(self) -> dict[str, int]:
        """Partitions of every topic the cluster has (from the producer's metadata)."""
        cluster = self._producer.client.cluster
        return {topic: len(cluster.partitions_for_topic(topic) or ()) for topic in self._topics}

    async def drain(self) -> None:
        """Wait until everything sent so far is stored (or has failed)."""
        with kafka_errors(self.settings.bootstrap):
            await self._producer.flush()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def send(self, message: Message) -> asyncio.Future[Any]:
        """Hand a message to the producer; the future resolves to its record metadata
        (partition, offset) once it is stored."""
        if message.topic not in self._topics:
            with kafka_errors(self.settings.bootstrap):
                await self._refresh_topics()
            if message.topic not in self._topics:
                raise _missing_topic(message.topic, self.settings.bootstrap)
        partition = message.partition
        with kafka_errors(self.settings.bootstrap):
            future: asyncio.Future[Any] = await self._producer.send(
                message.topic, message.value, key=message.key, partition=partition,
                headers=list(message.headers) or None)
        self._in_flight.add(future)
        future.add_done_callback(self._delivered)
        return future

    def _delivered(self, future: asyncio.Future[Any]) -> None:
        self._in_flight.discard(future)
        if future.cancelled():
            self.failed += 1
        elif future.exception() is not None:
            self.failed += 1
            self.first_error = self.first_error or future.exception()
        else:
            self.delivered += 1

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            with kafka_errors(self.settings.bootstrap):
                if exc is None:
                    await producer.flush()
                    if self._in_flight:
                        await asyncio.gather(*self._in_flight, return_exceptions=True)
        finally:
            await producer.stop()
        if exc is None and self.failed:
            error = self.first_error
            reason = f"{type(error).__name__}: {_one_line(error)}" if error else "cancelled"
            raise KafkaIOError(f"{self.failed} of {self.failed + self.delivered} messages were not delivered "
                               f"to {self.settings.bootstrap} (first error: {reason})")


@dataclass
class ProduceReport:
    stats: PackStats
    delivered: int
    seconds: float


ProgressCallback = Callable[[int, PackStats], None]


def produce_lines(settings: KafkaSettings, names: TopicNames, lines: Iterable[bytes] | BinaryIO, *, batch: int = 1,
                  default_topic: str | None = None, progress: ProgressCallback | None = None,
                  progress_every: int = 2000, partition_by: str = "account",
                  linger_s: float | None = None) -> ProduceReport:
    """Send JSON Lines (bytes, one per item) to their topics; see ``EventPacker``.
    ``progress(bytes_read, stats)`` is called every ``progress_every`` lines and at the end.
    The app configs already on ``config.apps`` are read first: the replay clock and the
    account partitioning need them.

    With ``linger_s``, ``lines`` is a pipe (a live stream such as stdin): it is read as data
    comes, and the pending batches go out whenever no new line has come for ``linger_s``,
    so packing never holds a live event back longer than that."""
    apps = AppDirectory()
    config_ends: dict[int, int] = {}
    for record in read_records(settings, [names(CONFIG_TOPIC)]):
        config_ends[record.partition] = max(config_ends.get(record.partition, 0), record.offset + 1)
        with contextlib.suppress(orjson.JSONDecodeError, ConfigError, TypeError):
            apps.add(read_app_config(orjson.loads(record.value)))

    def packer_for(partitions: Mapping[str, int]) -> EventPacker:
        return EventPacker(names, partitions=partitions, batch=batch, default_topic=default_topic, apps=apps,
                           partition_by=partition_by)

    if linger_s is not None:
        return asyncio.run(_produce(settings, packer_for, _piped(lines, linger_s), progress, progress_every,
                                    config_ends))
    return asyncio.run(_produce(settings, packer_for, _all_at_once(lines), progress, progress_every, config_ends))


async def _all_at_once(lines: Iterable[bytes]) -> AsyncIterator[list[bytes] | None]:
    for line in lines:
        yield [line]


async def _piped(pipe: Any, linger_s: float) -> AsyncIterator[list[bytes] | None]:
    """The lines of a pipe as they arrive; None after each ``linger_s`` without data."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    rest = b""
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(1 << 16), linger_s)
            except TimeoutError:
                yield None
                continue
            if not chunk:
                if rest:
                    yield [rest]
                return
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield lines
    finally:
        transport.close()


async def _produce(settings: KafkaSettings, packer_for: Callable[[Mapping[str, int]], EventPacker],
                   chunks: AsyncIterator[list[bytes] | None], progress: ProgressCallback | None,
                   progress_every: int, config_ends: dict[int, int]) -> ProduceReport:
    """Send what the packer makes of ``chunks``. Order guarantees for the worker: a config
    is stored before anything after it is sent, and usage messages carry the config offsets
    they need (``topics.configstamp``); a tick is sent only once everything before it is
    stored, so its fan-out into the usage partitions comes after those events."""
    started = time.monotonic()
    read = count = 0
    async with KafkaSender(settings) as sender:
        packer = packer_for(sender.partition_counts())

        configs: list[asyncio.Future[Any]] = []  # sent, not yet known to be stored

        async def send(message: Message) -> None:
            if message.kind == "config":  # consecutive configs go out together
                configs.append(await sender.send(message))
                return
            if configs:  # nothing after a config goes out before the config is stored
                await sender.drain()
                for future in configs:
                    with kafka_errors(settings.bootstrap):
                        stored = future.result()
                    config_ends[stored.partition] = max(config_ends.get(stored.partition, 0), stored.offset + 1)
                configs.clear()
            if message.kind == "tick":
                await sender.drain()
            if config_ends and message.kind != "tick":
                message = dataclasses.replace(
                    message, headers=(*message.headers, (configstamp.HEADER, configstamp.encode(config_ends))))
            await sender.send(message)

        async for chunk in chunks:
            if chunk is None:  # a live stream paused: nothing pending waits longer
                for message in packer.flush():
                    await send(message)
                continue
            for line in chunk:
                count += 1
                read += len(line)
                for message in packer.add(line):
                    await send(message)
                if progress and count % progress_every == 0:
                    progress(read, packer.stats)
        for message in packer.flush():
            await send(message)
    if progress:
        progress(read, packer.stats)
    return ProduceReport(packer.stats, sender.delivered, time.monotonic() - started)


def tick_message(names: TopicNames, time_text: str | None = None, final: bool = False) -> Message:
    value = orjson.dumps({"type": "clock.tick", "time": time_text, "final": final})
    return Message(names(CLOCK_TOPIC), CLOCK_KEY, value, 1, "tick")


def send_messages(settings: KafkaSettings, messages: Iterable[Message]) -> int:
    """Send a few messages and wait for their delivery; returns how many were delivered."""

    async def run() -> int:
        async with KafkaSender(settings) as sender:
            for message in messages:
                await sender.send(message)
        return sender.delivered

    return asyncio.run(run())


# -- reading ----------------------------------------------------------------------------------

def read_records(settings: KafkaSettings, topics: list[str], *, follow: bool = False,
                 until_idle: float | None = None, poll_timeout: float = 0.2) -> Iterator[Any]:
    """Every record of ``topics`` from the beginning (kafka-python ``ConsumerRecord``s, in
    offset order per partition), with manually assigned partitions and no consumer group.

    Stops at the end (every partition's position has reached the high watermark of its
    latest Fetch response) unless ``follow``; with ``until_idle`` it stops after that many
    seconds without a new record instead (from the start when nothing arrives).
    """
    kafka = kafka_python()

    check_reachable(settings.servers, settings.connect_timeout)
    with kafka_errors(settings.bootstrap):
        consumer = kafka.KafkaConsumer(**_kafka_python_config(settings), group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", fetch_max_wait_ms=100)
        try:
            existing = consumer.topics()  # all topics: asking for one by name would auto-create it
            for topic in topics:
                if topic not in existing:
                    raise _missing_topic(topic, settings.bootstrap)
            partitions = [kafka.TopicPartition(topic, p) for topic in topics
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(partitions)
            consumer.seek_to_beginning()
            last_record = time.monotonic()
            while True:
                polled = consumer.poll(timeout_ms=int(poll_timeout * 1000))
                for records in polled.values():
                    if records:
                        last_record = time.monotonic()
                    yield from records
                if until_idle is not None:
                    if time.monotonic() - last_record >= until_idle:
                        return
                elif not follow and _at_end(consumer, partitions):
                    return
        finally:
            consumer.close()


def _at_end(consumer: Any, partitions: list[Any]) -> bool:
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or consumer.position(tp) < highwater:
            return False
    return True


@dataclass(frozen=True, slots=True)
class ChargeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes
    charge: dict[str, Any] | None   # None when the value is not a JSON object


def billing_topics(names: TopicNames) -> list[str]:
    return [names.billing_topic(product) for product in BILLING_TOPIC_OF_PRODUCT]


def read_charges(settings: KafkaSettings, names: TopicNames, *, account: str | None = None,
                 follow: bool = False, until_idle: float | None = None,
                 poll_timeout: float = 0.2) -> Iterator[ChargeRecord]:
    """Charge events of ``billing.{css,vod,im}.charges`` from the beginning; with ``account``
    only that account's (records that are not JSON objects are then skipped)."""
    for record in read_records(settings, billing_topics(names), follow=follow, until_idle=until_idle,
                               poll_timeout=poll_timeout):
        value = record.value or b""
        try:
            charge = orjson.loads(value)
        except orjson.JSONDecodeError:
            charge = None
        if not isinstance(charge, dict):
            charge = None
        if account is not None and (charge is None or str(charge.get("account_id")) != account):
            continue
        yield ChargeRecord(record.topic, record.partition, record.offset, value, charge)

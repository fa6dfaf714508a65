"""The Kafka commands of ``vasbill`` (SPEC §9, §10): ``broker``, ``topics create``,
``produce``, ``charges`` and ``tick``. ``vasbill.cli`` adds them with ``register(main)``.

Every Kafka command takes ``--broker`` (``$VASBILL_BROKER``, default 127.0.0.1:9092),
``--prefix`` (``$VASBILL_TOPIC_PREFIX``) and the security options (``$VASBILL_SECURITY_PROTOCOL``,
``$VASBILL_SASL_MECHANISM``, ``$VASBILL_SASL_USERNAME``, ``$VASBILL_SASL_PASSWORD``,
``$VASBILL_SSL_CAFILE``, ``$VASBILL_SSL_CERTFILE``, ``$VASBILL_SSL_KEYFILE``).
Exit codes: 0 success, 2 usage error, 1 failure with a one-line reason on stderr.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from topics.names import TopicNames
from topics.reasons import VasbillError
from topics.timefmt import parse_time
from workers.kafka_io import (
    DEFAULT_BROKER,
    ENV_BROKER,
    ENV_SASL_MECHANISM,
    ENV_SASL_PASSWORD,
    ENV_SASL_USERNAME,
    ENV_SECURITY_PROTOCOL,
    ENV_SSL_CAFILE,
    ENV_SSL_CERTFILE,
    ENV_SSL_KEYFILE,
    MAX_BATCH_EVENTS,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    KafkaSettings,
    PackStats,
    Security,
    SettingsError,
)

ENV_PREFIX = "VASBILL_TOPIC_PREFIX"
ENV_CONNECT_TIMEOUT = "VASBILL_CONNECT_TIMEOUT"


def register(main: click.Group) -> None:
    """Add the Kafka commands to the ``vasbill`` group."""
    for command in (broker_command, topics_group, produce_command, charges_command, tick_command):
        main.add_command(command)


# -- shared plumbing ---------------------------------------------------------------------------

def _failure(message: str) -> click.ClickException:
    from vasbill.cli import Failure  # imported late: vasbill.cli imports this module at its end

    return Failure(message)


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """Client and broker errors → exit 1 with one line; bad settings → usage error (exit 2)."""
    for name in ("kafka", "aiokafka"):
        logger = logging.getLogger(name)
        if not logger.handlers:  # keep the clients' retry chatter off stderr (no lastResort)
            logger.addHandler(logging.NullHandler())
    try:
        yield
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    except VasbillError as exc:
        raise _failure(str(exc)) from exc


def kafka_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --broker, --prefix, security and timeout options; the command receives
    ``kafka: KafkaSettings`` and ``prefix: str``."""

    @functools.wraps(func)
    def wrapper(*args: Any, bootstrap: str, security_protocol: str, sasl_mechanism: str | None,
                sasl_username: str | None, sasl_password: str | None, ssl_cafile: str | None,
                ssl_certfile: str | None, ssl_keyfile: str | None, connect_timeout: float,
                **kwargs: Any) -> Any:
        try:
            security = Security(security_protocol, sasl_mechanism, sasl_username, sasl_password,
                                ssl_cafile, ssl_certfile, ssl_keyfile)
            kafka = KafkaSettings(bootstrap, security, connect_timeout)
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from exc
        return func(*args, kafka=kafka, **kwargs)

    options = [
        click.option("--broker", "bootstrap", envvar=ENV_BROKER, default=DEFAULT_BROKER, show_default=True,
                     show_envvar=True, metavar="HOST:PORT", help="Kafka bootstrap servers (comma-separated)."),
        click.option("--prefix", envvar=ENV_PREFIX, default="", show_envvar=True,
                     help="Prefix of every topic name."),
        click.option("--security-protocol", envvar=ENV_SECURITY_PROTOCOL, default="PLAINTEXT",
                     type=click.Choice(SECURITY_PROTOCOLS, case_sensitive=False), show_default=True,
                     show_envvar=True),
        click.option("--sasl-mechanism", envvar=ENV_SASL_MECHANISM, default=None, show_envvar=True,
                     type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
                     help="SASL mechanism (default PLAIN with SASL_* protocols)."),
        click.option("--sasl-username", envvar=ENV_SASL_USERNAME, default=None, show_envvar=True),
        click.option("--sasl-password", envvar=ENV_SASL_PASSWORD, default=None, show_envvar=True,
                     help="Prefer the environment variable: command lines are visible to other users."),
        click.option("--ssl-cafile", envvar=ENV_SSL_CAFILE, default=None, show_envvar=True,
                     type=click.Path(dir_okay=False), help="CA bundle that signs the brokers' certificates."),
        click.option("--ssl-certfile", envvar=ENV_SSL_CERTFILE, default=None, show_envvar=True,
                     type=click.Path(dir_okay=False), help="Client certificate (mutual TLS)."),
        click.option("--ssl-keyfile", envvar=ENV_SSL_KEYFILE, default=None, show_envvar=True,
                     type=click.Path(dir_okay=False), help="Client private key (mutual TLS)."),
        click.option("--connect-timeout", envvar=ENV_CONNECT_TIMEOUT, default=10.0, show_default=True,
                     type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                     help="How long to wait for the cluster to answer at start."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


# -- vasbill broker -----------------------------------------------------------------------------

@click.command("broker")
@click.option("--port", type=click.IntRange(0, 65535), default=9092, show_default=True,
              help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--log-dir", type=click.Path(file_okay=False), default=None,
              help="Keep the broker's log here (default: a temporary directory, removed at exit).")
def broker_command(port: int, log_dir: str | None) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) until Ctrl-C or SIGTERM.

    All topics and data live in memory and are lost when it stops."""
    from workers.broker import BrokerError, EmbeddedBroker

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # The handler goes in first: a SIGTERM right after the "listening" line must stop cleanly.
    previous = signal.signal(signal.SIGTERM, interrupt)
    broker = EmbeddedBroker(port=port, log_dir=log_dir)
    code: int | None = None
    reason = ""
    try:
        try:
            broker.start()
        except BrokerError as exc:
            raise _failure(str(exc)) from exc
        click.echo(f"vasbill broker: listening on {broker.bootstrap} (Tansu, in memory; Ctrl-C stops it)")
        click.echo(f"vasbill broker: ready in {broker.startup_seconds:.3f} s, pid {broker.pid}, "
                   f"log {broker.log_path}", err=True)
        code = broker.wait()
        reason = next((line.strip() for line in reversed(broker.log_tail().splitlines()) if line.strip()), "")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not interrupt the stop
        broker.stop()
        signal.signal(signal.SIGTERM, previous)
    if code is not None:
        raise _failure(f"the broker exited unexpectedly with code {code}" + (f": {reason}" if reason else ""))
    click.echo("vasbill broker: stopped", err=True)


# -- vasbill topics create ----------------------------------------------------------------------

@click.group("topics")
def topics_group() -> None:
    """Manage vasbill's Kafka topics."""


@topics_group.command("create")
@kafka_options
@click.option("--partitions", type=click.IntRange(1, 100_000), default=TopicNames().partitions, show_default=True,
              help="Partitions of the usage, billing and quarantine topics (config.apps and control.clock "
                   "always have 1).")
@click.option("--replication-factor", type=int, default=-1, show_default=True,
              help="Replicas per partition; -1 = the cluster's default.")
@click.option("--retention-days", type=click.IntRange(1), default=60, show_default=True,
              help="retention.ms of the usage topics; must exceed the lateness horizon plus the month grace.")
def topics_create(kafka: KafkaSettings, prefix: str, partitions: int, replication_factor: int,
                  retention_days: int) -> None:
    """Create every topic (SPEC §2); topics that exist are left as they are."""
    from workers.kafka_io import create_topics

    with _failures():
        results = create_topics(kafka, TopicNames(prefix, partitions, retention_days),
                                replication_factor=replication_factor)
    for result in results:
        config = "".join(f" {k}={v}" for k, v in result.config)
        click.echo(f"{result.status:<8} {result.name} partitions={result.actual_partitions}{config}")
        if result.actual_partitions != result.partitions:
            click.echo(f"vasbill: warning: {result.name} has {result.actual_partitions} partitions, "
                       f"not {result.partitions}; left as is", err=True)
    created = sum(r.status == "created" for r in results)
    click.echo(f"topics: {created} created, {len(results) - created} already existed on {kafka.bootstrap}", err=True)


# -- vasbill produce ---------------------------------------------------------------------------

def _is_live(stream: Any) -> bool:
    """A pipe or terminal (data comes as it is written), not a regular file or an in-memory buffer."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both OSError and ValueError
        return False


@click.command("produce")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--batch", type=click.IntRange(1, MAX_BATCH_EVENTS), default=MAX_BATCH_EVENTS, show_default=True,
              help="Pack up to N events bound for one partition, in file order, into one JSON-array message. "
                   "From a pipe, what is pending goes out whenever no line has come for --linger.")
@click.option("--linger", type=click.FloatRange(min=0.001), default=0.1, show_default=True, metavar="SECONDS",
              help="FILE '-' read from a pipe or terminal: send the pending batches after this long without input.")
@click.option("--default-topic", default="usage.relay", show_default=True,
              help="Topic (without the prefix) for lines that cannot be routed (invalid JSON, unknown type, "
                   "config without sdk_app_id): the worker quarantines them with their reason.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr [default: when stderr is a terminal].")
@click.option("--partition-by", type=click.Choice(["account", "app"]), default="account", show_default=True,
              help="account: an app's events go to its account's partition (exact replays of late events); "
                   "app: the default partitioner on the sdk_app_id key.")
@kafka_options
def produce_command(file: str, batch: int, linger: float, default_topic: str, progress: bool | None,
                    partition_by: str, kafka: KafkaSettings, prefix: str) -> None:
    """Send JSON Lines from FILE ('-' = stdin) to their topics.

    Usage events go to their usage topic, packed per partition in file order (a message of one
    app is keyed by its sdk_app_id, a message mixing apps of one partition has no key),
    clock.tick lines to control.clock (key "clock"), lines without a type are app configs for
    config.apps (key sdk_app_id)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from workers.kafka_io import produce_lines

    names = TopicNames(prefix)
    console = Console(stderr=True)
    show = console.is_terminal if progress is None else progress
    total = os.path.getsize(file) if file != "-" and os.path.isfile(file) else None
    bar = Progress(TextColumn("produce"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[lines]} lines, {task.fields[messages]} messages"),
                   TimeElapsedColumn(), console=console, transient=True, disable=not show)
    task = bar.add_task("produce", total=total, lines=0, messages=0)

    def on_progress(read: int, stats: PackStats) -> None:
        bar.update(task, completed=read, lines=stats.lines, messages=stats.message_count)

    stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    try:
        with _failures(), bar:
            live = file == "-" and _is_live(stream)
            report = produce_lines(kafka, names, stream, batch=batch, default_topic=names(default_topic),
                                   progress=on_progress, partition_by=partition_by,
                                   linger_s=linger if live else None)
    finally:
        if file != "-":
            stream.close()
    stats = report.stats
    for number, reason in stats.skipped[:10]:
        click.echo(f"vasbill: line {number} not sent: {reason}", err=True)
    rate = stats.lines / report.seconds if report.seconds > 0 else 0.0
    click.echo(
        f"produced {stats.lines} lines to {kafka.bootstrap} in {report.seconds:.2f} s ({rate:,.0f} lines/s): "
        f"usage events {stats.events['usage']} in {stats.messages['usage']} messages, "
        f"app configs {stats.events['config']}, clock ticks {stats.events['tick']}, "
        f"unroutable {stats.events['unroutable']} (to {names(default_topic)}), not sent {len(stats.skipped)}",
        err=True,
    )
    if stats.skipped:
        raise _failure(f"{len(stats.skipped)} lines were not sent (first: line {stats.skipped[0][0]}: "
                       f"{stats.skipped[0][1]})")


# -- vasbill charges ----------------------------------------------------------------------------

@click.command("charges")
@click.option("--follow", is_flag=True, help="Keep waiting for new charges (until Ctrl-C).")
@click.option("--account", default=None, help="Only this account's charges.")
@click.option("--until-idle", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Exit after SECONDS without a new charge (instead of at the end of the topics).")
@kafka_options
def charges_command(follow: bool, account: str | None, until_idle: float | None, kafka: KafkaSettings,
                    prefix: str) -> None:
    """Write the charge events of the billing topics as JSON Lines to stdout, from the beginning.

    Without --follow or --until-idle it exits once it has read everything there is."""
    import orjson

    from workers.kafka_io import read_charges

    out = sys.stdout.buffer
    live = follow or until_idle is not None
    count = 0
    started = time.monotonic()
    try:
        with _failures():
            for record in read_charges(kafka, TopicNames(prefix), account=account, follow=follow,
                                       until_idle=until_idle):
                if record.charge is None:
                    click.echo(f"vasbill: warning: skipped a record that is not a JSON object at "
                               f"{record.topic}[{record.partition}]@{record.offset}", err=True)
                    continue
                value = record.value if b"\n" not in record.value else orjson.dumps(record.charge)
                out.write(value + b"\n")
                count += 1
                if live:
                    out.flush()
        out.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `vasbill charges | head`
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return
    click.echo(f"charges: {count} read from {kafka.bootstrap} in {time.monotonic() - started:.2f} s", err=True)


# -- vasbill tick -------------------------------------------------------------------------------

@click.command("tick")
@click.option("--time", "time_text", default=None, metavar="RFC3339",
              help="Advance the clock to this time (with an offset); default: the worker's watermark.")
@click.option("--final", is_flag=True, help="Close every period that began at or before the time.")
@kafka_options
def tick_command(time_text: str | None, final: bool, kafka: KafkaSettings, prefix: str) -> None:
    """Send a clock.tick to control.clock (SPEC §6)."""
    from workers.kafka_io import send_messages, tick_message

    if time_text is not None:
        try:
            parse_time(time_text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--time") from exc
    message = tick_message(TopicNames(prefix), time_text, final)
    with _failures():
        send_messages(kafka, [message])
    click.echo(f"sent {message.value.decode()} to {message.topic} on {kafka.bootstrap}", err=True)

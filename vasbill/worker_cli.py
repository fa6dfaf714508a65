"""``vasbill worker``: run the Faust worker (SPEC §9, §10)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

import click

from rating.biller import BillingSettings
from topics.names import TopicNames
from workers.kafka_io import KafkaSettings


def _loopback(kafka: KafkaSettings) -> bool:
    hosts = [s.rpartition(":")[0].strip("[]") for s in kafka.servers]
    try:
        return all(h == "localhost" or ipaddress.ip_address(h).is_loopback for h in hosts)
    except ValueError:
        return False


def register(main: click.Group) -> None:
    from vasbill.kafka_cli import _failures, kafka_options

    @main.command("worker")
    @kafka_options
    @click.option("--store", type=click.Choice(["rocksdb", "memory"]), envvar="VASBILL_STORE", default="rocksdb",
                  show_default=True, help="Table store: RocksDB on disk (production) or memory.")
    @click.option("--data-dir", type=click.Path(file_okay=False), envvar="VASBILL_DATA_DIR",
                  default="./vasbill-data", show_default=True, help="Where RocksDB tables live.")
    @click.option("--web-host", envvar="VASBILL_WEB_HOST", default="127.0.0.1", show_default=True,
                  help="Name other workers reach this one by (account requests are forwarded to the owner).")
    @click.option("--web-bind", envvar="VASBILL_WEB_BIND", default="127.0.0.1", show_default=True,
                  help="Address the web server listens on (/metrics, /healthz, /readyz, /accounts).")
    @click.option("--web-port", envvar="VASBILL_WEB_PORT", type=int, default=6066, show_default=True)
    @click.option("--clock", type=click.Choice(["wall", "event"]), envvar="VASBILL_CLOCK", default="wall",
                  show_default=True, help="wall: ticks of wall time; event: event time and clock.tick.")
    @click.option("--partitions", type=click.IntRange(1), envvar="VASBILL_PARTITIONS",
                  default=TopicNames().partitions, show_default=True, help="Partitions of the usage topics.")
    @click.option("--app-id", envvar="VASBILL_APP_ID", default="vasbill", show_default=True,
                  help="Consumer group and internal topic prefix.")
    @click.option("--processing-guarantee", type=click.Choice(["at_least_once", "exactly_once"]),
                  envvar="VASBILL_PROCESSING_GUARANTEE", default="at_least_once", show_default=True)
    @click.option("--grace-day", type=int, default=7200, show_default=True, help="Seconds of grace after a day.")
    @click.option("--grace-month", type=int, default=86400, show_default=True, help="Seconds of grace after a month.")
    @click.option("--horizon", type=int, default=40 * 86400, show_default=True, help="Lateness horizon, seconds.")
    @click.option("--catalog", default=None, help="Price every period with this catalog.")
    @click.option("--tick-interval", type=float, default=30.0, show_default=True,
                  help="Wall clock: seconds between the leader's ticks.")
    @click.option("--month-to-date-interval", type=click.FloatRange(min=0.5), default=15.0, show_default=True,
                  help="Seconds between recomputations of the month-to-date gauge.")
    @click.option("--embedded-settings/--production-settings", "embedded", default=None,
                  help="Broker timeouts for the embedded broker (default when the broker is on loopback).")
    @click.option("--skip-retention-check", is_flag=True, help="Start even if usage retention is too short.")
    @click.option("--loglevel", default="warning", show_default=True)
    def worker_command(kafka: KafkaSettings, prefix: str, store: str, data_dir: str, web_host: str, web_bind: str,
                       web_port: int,
                       clock: str, partitions: int, app_id: str, processing_guarantee: str, grace_day: int,
                       grace_month: int, horizon: int, catalog: str | None, tick_interval: float,
                       month_to_date_interval: float, embedded: bool | None, skip_retention_check: bool,
                       loglevel: str) -> None:
        """Run the Faust worker: stage 1 per usage topic, stage 2 per account, the clock."""
        from workers.settings import WorkerSettings

        billing = BillingSettings(grace_day, grace_month, horizon, catalog)
        with _failures():
            if catalog:
                from rating.catalog import catalog_named

                catalog_named(catalog)
            settings = WorkerSettings(
                kafka=kafka, prefix=prefix, partitions=partitions, app_id=app_id, store=store,
                data_dir=Path(data_dir), web_host=web_host, web_bind=web_bind, web_port=web_port, clock=clock,
                billing=billing,
                processing_guarantee=processing_guarantee,
                embedded=_loopback(kafka) if embedded is None else embedded, tick_interval_s=tick_interval,
                month_to_date_every_s=month_to_date_interval,
            )
            from workers.preflight import preflight

            preflight(settings, check_retention=not skip_retention_check)
        run_worker(settings, loglevel)


def run_worker(settings: Any, loglevel: str = "warning") -> None:
    import faust

    from workers.app import create_app
    from workers.kafka_io import existing_topics
    from workers.local_tables import open_tables, stopped_cleanly

    logging.getLogger("faust").setLevel(loglevel.upper())
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # No terminal spinner: to spin on every log record it sets the root logger to DEBUG, so
    # every debug record of aiokafka is built (3 % of the worker's time), and it writes
    # terminal escape codes into log files.
    worker.spinner = None
    settings.group_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    local = settings.store == "rocksdb"  # workers/local_tables.py: kept after a clean stop only
    if local:
        changelogs = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
        existing = existing_topics(settings.kafka)
        open_tables(settings.group_dir, Path(app.conf.tabledir), changelogs_exist=changelogs <= set(existing))
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        if local and stop.code in (0, None):
            stopped_cleanly(settings.group_dir)
        raise

"""The ``vasbill`` command line (SPEC §9). Exit codes: 0 success, 2 usage error, 1 failure
with a one-line reason on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
import orjson

from rating.biller import BillingSettings, rate_lines
from rating.catalog import catalog_named
from rating.configs import read_app_documents
from topics import codec
from topics.appconfig import AppDirectory
from topics.reasons import VasbillError


class Failure(click.ClickException):
    """A failure reported as one line on stderr with exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"vasbill: {self.format_message()}", err=True)


@contextmanager
def failures() -> Iterator[None]:
    try:
        yield
    except VasbillError as exc:
        raise Failure(str(exc)) from exc
    except OSError as exc:
        raise Failure(f"{exc.strerror or exc}: {getattr(exc, 'filename', '')}") from exc


def read_bytes_lines(path: str) -> Iterator[bytes]:
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    with stream:
        yield from stream


def load_apps(path: str) -> AppDirectory:
    return AppDirectory(read_app_documents(Path(path).read_text(encoding="utf-8")))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vasbill")
def main() -> None:
    """vasbill: exact, replayable invoicing for TRTC value-added services."""


@main.command()
@click.option("--events", "events_path", required=True, help="JSON Lines of usage events ('-' = stdin).")
@click.option("--apps", "apps_path", required=True, type=click.Path(dir_okay=False),
              help="App configs: a JSON array or JSON Lines.")
@click.option("--catalog", default=None, help="Price every period with this catalog.")
@click.option("--out", "out_path", default=None, help="Charges file (default stdout).")
@click.option("--quarantine", "quarantine_path", default=None, help="Rejected events file.")
@click.option("--grace-day", default=7200, show_default=True, help="Seconds after a day ends before it closes.")
@click.option("--grace-month", default=86400, show_default=True, help="Seconds after a month ends before it closes.")
@click.option("--horizon", default=40 * 86400, show_default=True, help="Lateness horizon in seconds.")
def rate(events_path: str, apps_path: str, catalog: str | None, out_path: str | None,
         quarantine_path: str | None, grace_day: int, grace_month: int, horizon: int) -> None:
    """Rate events offline, deterministically, with the worker's meters and catalogs."""
    with failures():
        if catalog:
            catalog_named(catalog)
        apps = load_apps(apps_path)
        settings = BillingSettings(grace_day, grace_month, horizon, catalog)
        charges, rejections, biller = rate_lines(apps, read_bytes_lines(events_path), settings)
        out = open(out_path, "wb") if out_path else sys.stdout.buffer  # noqa: SIM115
        try:
            for charge in charges:
                out.write(orjson.dumps(charge.to_dict()) + b"\n")
        finally:
            if out_path:
                out.close()
            else:
                out.flush()
        if quarantine_path:
            with open(quarantine_path, "wb") as q:
                for rejection in rejections:
                    q.write(codec.dumps(rejection.to_dict()) + b"\n")
        stats = biller.stats
        click.echo(
            f"rated: {stats.events['accepted']} accepted, {stats.events['duplicate']} duplicate, "
            f"{stats.events['quarantined']} quarantined; {len(charges)} charge revisions",
            err=True,
        )


@main.command()
@click.option("--accounts", default=5, show_default=True, help="How many accounts.")
@click.option("--month", default="2026-08", show_default=True, help="Beijing month YYYY-MM.")
@click.option("--seed", default=1, show_default=True, help="Random seed; same seed, same output.")
@click.option("--out", "out_path", default="-", help="Events JSON Lines ('-' = stdout).")
@click.option("--apps-out", "apps_path", default=None, help="Write the accounts' app configs here.")
@click.option("--scale", default=1.0, show_default=True, help="Multiplies the number of streams.")
@click.option("--bad/--no-bad", default=True, show_default=True,
              help="Include duplicate, late and bad events.")
def gen(accounts: int, month: str, seed: int, out_path: str, apps_path: str | None,
        scale: float, bad: bool) -> None:
    """Synthetic, realistic usage for N accounts over a month (deterministic for a seed)."""
    from vasbill.gen import GenOptions, generate

    with failures():
        options = GenOptions(accounts=accounts, month=month, seed=seed, scale=scale, bad=bad)
        apps, events = generate(options)
        if apps_path:
            Path(apps_path).write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in apps))
        out = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115
        try:
            for line in events:
                out.write(line if isinstance(line, bytes) else orjson.dumps(line))
                out.write(b"\n")
        finally:
            if out_path != "-":
                out.close()


from vasbill.statement_cli import register as register_statement  # noqa: E402
from vasbill.worker_cli import register as register_worker  # noqa: E402

register_statement(main)

register_worker(main)

from vasbill.kafka_cli import register  # noqa: E402

register(main)

from vasbill.bench import register as register_bench  # noqa: E402
from vasbill.demo import register as register_demo  # noqa: E402

register_demo(main)
register_bench(main)

if __name__ == "__main__":
    main()

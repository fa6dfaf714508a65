"""``vasbill statement``: a month's statement from a charges file or the billing topics."""

from __future__ import annotations

import re

import click
import orjson

from topics.charges import Charge
from topics.names import TopicNames


def register(main: click.Group) -> None:
    from vasbill.cli import Failure, failures, read_bytes_lines
    from vasbill.kafka_cli import _failures, kafka_options
    from workers.kafka_io import KafkaSettings

    @main.command("statement")
    @click.option("--account", "account_id", required=True, help="Account id.")
    @click.option("--month", required=True, help="Beijing month YYYY-MM.")
    @click.option("--charges", "charges_path", default=None,
                  help="Charges JSON Lines; without it the billing topics are read from the beginning.")
    @click.option("--json", "as_json", is_flag=True, help="Print the statement as JSON.")
    @kafka_options
    def statement(account_id: str, month: str, charges_path: str | None, as_json: bool, kafka: KafkaSettings,
                  prefix: str) -> None:
        """A month's statement: latest revision of every charge, by product and item."""
        from rich.console import Console

        from vasbill.statement import build_statement, render
        from workers.kafka_io import read_charges

        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise click.BadParameter("expected YYYY-MM", param_hint="--month")
        with failures():
            try:
                if charges_path is not None:
                    charges = [Charge.from_dict(orjson.loads(line)) for line in read_bytes_lines(charges_path)
                               if line.strip()]
                else:
                    with _failures():
                        charges = [Charge.from_dict(r.charge) for r in read_charges(kafka, TopicNames(prefix),
                                                                                     account=account_id)
                                   if r.charge is not None]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise Failure(f"{charges_path or 'the billing topics'} hold something that is not a charge: "
                              f"{exc}") from exc
            result = build_statement(charges, account_id, month)
            if as_json:
                click.echo(orjson.dumps(result.to_dict()).decode())
            else:
                render(result, Console())

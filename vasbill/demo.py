"""``vasbill demo`` (SPEC §9): the whole pipeline on one machine, started and stopped here.

1. the embedded broker (Tansu) on a free loopback port (or ``--port``), every topic created;
2. the example accounts' app configs on ``config.apps`` (``vasbill.gen``: traffic, daily
   peak, monthly 95th percentile and monthly average daily peak billing; an IM ``pro`` app;
   CSS, VOD and transcoding packages);
3. a worker as a subprocess (``python -m vasbill worker --store memory --clock event``),
   waited for on ``/readyz``;
4. the generated month streamed to the usage topics (progress bar), then a final
   ``clock.tick`` (at the watermark: it closes every period that began, as ``vasbill rate``
   does at the end of its input);
5. the charges read back until none arrived for ``--idle`` seconds, each account's
   statement printed, and the worker's charges compared with ``vasbill rate`` run
   in-process on the same lines (latest revision of every charge, to the digit);
6. the worker (SIGTERM, then SIGKILL) and the broker stopped, also on Ctrl-C, SIGTERM or
   error. With ``--keep-running`` they stay up until Ctrl-C.

``Stack`` and ``WorkerProcess`` are shared with ``vasbill bench``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import click
import orjson

from topics.names import TopicNames
from topics.reasons import VasbillError

DEMO_APP_ID = "vasbill-demo"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class DemoError(VasbillError):
    """A step of the demo or the benchmark failed; the message is one line."""


# -- processes --------------------------------------------------------------------------------

def _clean_env() -> dict[str, str]:
    """The environment without ``VASBILL_*`` settings: the demo passes every setting as a
    flag, so a shell set up for a production cluster cannot redirect it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VASBILL_")}


def proc_status(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/PID/status`` (``VmHWM``, ``VmRSS``) in bytes, or None."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


@dataclass
class Metrics:
    """One scrape of the worker's ``/metrics``: samples by name."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    families: set[str] = field(default_factory=set)  # declared, maybe without samples yet
    ok: bool = True  # False: the page could not be read this time

    @classmethod
    def parse(cls, text: str) -> Metrics:
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        families = set()
        for family in text_string_to_metric_families(text):
            families.add(family.name)
            if family.type == "counter":
                families.add(f"{family.name}_total")
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        return cls(out, families)

    def total(self, name: str) -> float | None:
        """Sum over every label set (0 for a labelled metric without samples yet); None when
        the worker has no such metric."""
        values = self.samples.get(name)
        if values is None:
            return 0.0 if name in self.families else None
        return sum(v for _, v in values)

    def buckets(self, name: str) -> list[tuple[float, float]] | None:
        """A histogram's cumulative buckets as (upper bound, count), summed over label sets."""
        values = self.samples.get(f"{name}_bucket")
        if values is None:
            return None
        acc: dict[float, float] = {}
        for labels, value in values:
            bound = float(labels.get("le", "inf"))
            acc[bound] = acc.get(bound, 0.0) + value
        return sorted(acc.items())


class WorkerProcess:
    """``python -m vasbill worker`` with the memory store and the event clock, as a child
    process with its own session (Ctrl-C reaches only us; we stop it) and its output in
    ``log_dir/worker.log``."""

    def __init__(self, bootstrap: str, *, partitions: int, log_dir: Path, web_port: int | None = None,
                 app_id: str = DEMO_APP_ID, loglevel: str = "warning") -> None:
        from workers.broker import free_port

        self.bootstrap = bootstrap
        self.partitions = partitions
        self.log_dir = log_dir
        self.web_port = web_port or free_port()
        self.app_id = app_id
        self.loglevel = loglevel
        self.log_path = log_dir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at: float | None = None
        self.ready_seconds: float | None = None
        self.peak_rss: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> WorkerProcess:
        from workers.broker import parent_death_signal

        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "vasbill", "worker", "--broker", self.bootstrap, "--prefix", "",
            "--store", "memory", "--clock", "event", "--partitions", str(self.partitions),
            "--web-host", "127.0.0.1", "--web-port", str(self.web_port), "--app-id", self.app_id,
            "--data-dir", str(self.log_dir / "data"), "--loglevel", self.loglevel,
        ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.started_at = time.monotonic()
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=_clean_env(), cwd=str(self.log_dir), start_new_session=True,
                preexec_fn=parent_death_signal(),
            )
        except OSError as exc:
            self._close_log()
            raise DemoError(f"cannot start the worker: {exc.strerror or exc}") from exc
        return self

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def failure(self, what: str) -> DemoError:
        code = self.exited()
        reason = self.log_reason()
        how = f"exited with code {code}" if code is not None else what
        return DemoError(f"the worker {how}" + (f": {reason}" if reason else "") + f" (log: {self.log_path})")

    def log_reason(self) -> str:
        """The most telling line at the end of the worker's log."""
        try:
            tail = self.log_path.read_bytes()[-16384:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        for line in reversed(lines):
            if line.startswith("vasbill:") or "Error" in line.split(":")[0]:
                return line
        return lines[-1] if lines else ""

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path)  # noqa: S310 - loopback http only
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Block until ``/readyz`` answers 200; returns the seconds since the start."""
        assert self.started_at is not None
        deadline = self.started_at + timeout
        while True:
            if self.exited() is not None:
                raise self.failure("did not start")
            try:
                status, _ = self.get("/readyz", timeout=1.0)
                if status == 200:
                    self.ready_seconds = time.monotonic() - self.started_at
                    return self.ready_seconds
            except (OSError, urllib.error.URLError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                raise self.failure(f"was not ready within {timeout:g} s")
            time.sleep(0.1)

    def metrics(self) -> Metrics | None:
        """The worker's ``/metrics``; None when it has no such page (404). A page that could
        not be read this time (busy worker, timeout) gives ``Metrics(ok=False)``."""
        try:
            status, body = self.get("/metrics", timeout=5.0)
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            return Metrics(ok=False)
        if status == 404:
            return None
        if status != 200:
            return Metrics(ok=False)
        try:
            return Metrics.parse(body.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - a half-written page: the next poll reads it again
            return Metrics(ok=False)

    def sample_rss(self) -> int | None:
        """Peak resident set size so far (VmHWM), kept for after the stop."""
        if self.process is not None and self.process.poll() is None:
            value = proc_status(self.process.pid, "VmHWM")
            if value is not None:
                self.peak_rss = max(self.peak_rss or 0, value)
        return self.peak_rss

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            value = proc_status(process.pid, "VmHWM")
            if value is not None:
                self.peak_rss = max(self.peak_rss or 0, value)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        self._close_log()
        return process.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Stack:
    """The broker, the topics and (after ``start_worker``) a worker; ``close()`` stops what
    was started, worker first. Signals: SIGTERM is turned into KeyboardInterrupt while the
    stack is open, and Ctrl-C/SIGTERM are ignored while it closes."""

    def __init__(self, *, port: int | None = None, partitions: int = 4, keep_logs: bool = False) -> None:
        self.port = port
        self.partitions = partitions
        self.names = TopicNames("", partitions)
        self.tmp = Path(tempfile.mkdtemp(prefix="vasbill-demo-"))
        self.keep_logs = keep_logs
        self.broker: Any = None
        self.worker: WorkerProcess | None = None
        self.kafka: Any = None
        self._previous_term: Any = None
        self._failed = False

    def __enter__(self) -> Stack:
        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        if _main_thread():
            self._previous_term = signal.signal(signal.SIGTERM, interrupt)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Logs are kept when the error message points into them (not for Ctrl-C).
        self._failed = exc is not None and str(self.tmp) in str(exc)
        self.close()

    def start_broker(self) -> Any:
        from workers.broker import EmbeddedBroker
        from workers.kafka_io import KafkaSettings

        self.broker = EmbeddedBroker(port=self.port or 0, log_dir=self.tmp / "broker")
        self.broker.start()
        self.kafka = KafkaSettings(self.broker.bootstrap)
        return self.broker

    def create_topics(self) -> int:
        from workers.kafka_io import create_topics

        results = create_topics(self.kafka, self.names)
        return sum(r.status == "created" for r in results)

    def start_worker(self) -> WorkerProcess:
        self.worker = WorkerProcess(self.broker.bootstrap, partitions=self.partitions, log_dir=self.tmp / "worker")
        return self.worker.start()

    def close(self) -> None:
        restore = []
        if _main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                restore.append((sig, signal.signal(sig, signal.SIG_IGN)))
        try:
            if self.worker is not None:
                self.worker.stop()
            if self.broker is not None:
                self.broker.stop()
                self.broker = None
        finally:
            if self._previous_term is not None:
                restore = [(s, h) if s != signal.SIGTERM else (s, self._previous_term) for s, h in restore]
            for sig, handler in restore:
                signal.signal(sig, handler)
        if not (self._failed or self.keep_logs):
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# -- charges ----------------------------------------------------------------------------------

def latest_revisions(charges: Any) -> dict[str, Any]:
    """charge_id → its latest revision (``Charge`` objects)."""
    latest: dict[str, Any] = {}
    for charge in charges:
        known = latest.get(charge.charge_id)
        if known is None or charge.revision > known.revision:
            latest[charge.charge_id] = charge
    return latest


@dataclass
class Comparison:
    matching: int
    total: int
    differing: list[str]  # charge ids, sorted

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.matching == self.total


def compare(worker: dict[str, Any], rated: dict[str, Any]) -> Comparison:
    """Latest revision amounts per charge id, over the union of both sides."""
    ids = sorted(set(worker) | set(rated))
    differing = [cid for cid in ids
                 if cid not in worker or cid not in rated or Decimal(worker[cid].amount) != Decimal(rated[cid].amount)]
    return Comparison(len(ids) - len(differing), len(ids), differing)


def collect_charges(stack: Stack, *, idle: float, expected: set[str] | None = None, patience: float = 30.0,
                    on_charge: Callable[[int], None] | None = None) -> list[Any]:
    """Every charge on the billing topics, read until none arrived for ``idle`` seconds.
    While some charge id of ``expected`` is still missing, keep reading for up to
    ``patience`` more seconds (a slow machine may pause longer than ``idle``)."""
    from topics.charges import Charge
    from workers.kafka_io import read_charges

    deadline = time.monotonic() + patience
    while True:
        charges = []
        for record in read_charges(stack.kafka, stack.names, until_idle=idle):
            if record.charge is None:
                continue
            charges.append(Charge.from_dict(record.charge))
            if on_charge:
                on_charge(len(charges))
        if expected is None or expected <= {c.charge_id for c in charges} or time.monotonic() >= deadline:
            return charges
        if stack.worker is not None and stack.worker.exited() is not None:
            raise stack.worker.failure("stopped")


# -- the demo ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoOptions:
    accounts: int = 5
    month: str = "2026-08"
    seed: int = 1
    scale: float = 0.3
    port: int | None = None
    partitions: int = 4
    idle: float = 3.0
    keep_running: bool = False


@dataclass
class DemoResult:
    events: int
    messages: int
    charges: int
    comparison: Comparison
    seconds: float
    timings: dict[str, float]


def describe_accounts(apps: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(account, apps, relay billing, IM plan, packages) per account, in account order."""
    by_account: dict[str, list[dict[str, Any]]] = {}
    for doc in apps:
        by_account.setdefault(doc["account_id"], []).append(doc)
    rows = []
    for account in sorted(by_account, key=lambda a: (len(a), a)):
        docs = by_account[account]
        billing = sorted({d["relay_billing"] for d in docs})
        plans = sorted({d["im_plan"] for d in docs})
        packages = sorted({p["kind"] for d in docs for p in d["packages"]})
        rows.append((account, str(len(docs)), ", ".join(billing), ", ".join(plans), ", ".join(packages) or "-"))
    return rows


def run_demo(options: DemoOptions, out: Any, err: Any) -> DemoResult:
    """Run the demo; ``out``/``err`` are rich Consoles (statements / progress). Raises
    ``VasbillError`` (one-line reason) on failure; stops everything it started."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from rating.biller import rate_lines
    from rating.configs import read_app_config
    from topics.appconfig import AppDirectory
    from vasbill.gen import GenOptions, generate
    from vasbill.statement import build_statement, render
    from workers.kafka_io import produce_lines, send_messages, tick_message

    started = time.monotonic()
    timings: dict[str, float] = {}
    note = err.print

    with Stack(port=options.port, partitions=options.partitions) as stack:
        broker = stack.start_broker()
        created = stack.create_topics()
        note(f"broker   Tansu on {broker.bootstrap} (in memory), ready in {broker.startup_seconds:.2f} s; "
             f"{created} topics created")
        apps, events = generate(GenOptions(accounts=options.accounts, month=options.month, seed=options.seed,
                                           scale=options.scale))
        produce_lines(stack.kafka, stack.names, [orjson.dumps(doc) for doc in apps])
        worker = stack.start_worker()

        # While the worker joins its group: the month's lines and the offline reference.
        lines = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
        directory = AppDirectory(read_app_config(doc) for doc in apps)
        t = time.monotonic()
        rated, rejections, _ = rate_lines(directory, lines)
        timings["rate"] = time.monotonic() - t
        rated_latest = latest_revisions(rated)

        table = Table(title=f"Example accounts ({len(apps)} apps)", title_justify="left")
        for column in ("account", "apps", "relay billing", "IM plan", "packages"):
            table.add_column(column)
        for row in describe_accounts(apps):
            table.add_row(*row)
        err.print(table)

        ready = worker.wait_ready()
        timings["worker_ready"] = ready
        note(f"worker   pid {worker.pid}, ready in {ready:.1f} s (web {worker.url}, log {worker.log_path})")

        progress = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=err,
                            disable=not err.is_terminal)
        t = time.monotonic()
        with progress:
            sent = progress.add_task("produce", total=len(lines), note="")

            def on_progress(read: int, stats: Any) -> None:
                progress.update(sent, completed=stats.lines, note=f"{stats.message_count:,} messages")

            report = produce_lines(stack.kafka, stack.names, lines, batch=500, progress=on_progress,
                                   progress_every=500)
            timings["produce"] = time.monotonic() - t
            stats = report.stats
            streamed = stats.events["usage"] + stats.events["unroutable"]
            send_messages(stack.kafka, [tick_message(stack.names, None, final=True)])
            t_tick = time.monotonic()

            processed = progress.add_task("worker", total=streamed, note="events rated")
            wait_processed(worker, streamed, lambda n: progress.update(processed, completed=n))
            got = progress.add_task("charges", total=len(rated), note="revisions read")
            charges = collect_charges(stack, idle=options.idle, expected=set(rated_latest),
                                      on_charge=lambda n: progress.update(got, completed=n))
            progress.update(got, total=max(len(charges), 1), completed=len(charges))
            timings["close"] = time.monotonic() - t_tick
        note(f"produce  {streamed:,} events of {options.month} in {stats.message_count:,} messages "
             f"({timings['produce']:.1f} s); final clock.tick sent; {len(charges):,} charge revisions read")

        worker_latest = latest_revisions(charges)
        accounts = [row[0] for row in describe_accounts(apps)]
        for account in accounts:
            out.print()
            render(build_statement(charges, account, options.month), out)
        comparison = compare(worker_latest, rated_latest)
        elapsed = time.monotonic() - started
        out.print()
        out.print(f"demo: {streamed:,} events ({len(rejections):,} quarantined), {len(charges):,} charge revisions "
                  f"for {len(worker_latest):,} charges, {elapsed:.1f} s; "
                  f"matches vasbill rate: {comparison.matching}/{comparison.total} charges", highlight=False,
                  soft_wrap=True)
        if options.keep_running:
            keep_running(stack, err)
        if worker.exited() is not None:
            raise worker.failure("stopped")
        result = DemoResult(streamed, stats.message_count, len(charges), comparison, elapsed, timings)
    if not comparison.ok:
        shown = ", ".join(comparison.differing[:3])
        raise DemoError(f"{comparison.total - comparison.matching} of {comparison.total} charges differ from "
                        f"vasbill rate (e.g. {shown})")
    return result


def wait_processed(worker: WorkerProcess, expected: int, update: Callable[[int], None], *,
                   stall: float = 10.0, timeout: float = 600.0) -> int | None:
    """Poll ``vasbill_events_total`` until the worker has handled ``expected`` events.
    Returns the count, or None when the worker has no such metric (then nothing is waited
    for). Gives up (returns the count) when it stays still for ``stall`` seconds: the
    charges then tell whether anything is missing."""
    deadline = time.monotonic() + timeout
    last, last_change = -1.0, time.monotonic()
    while True:
        if worker.exited() is not None:
            raise worker.failure("stopped")
        metrics = worker.metrics()
        if metrics is not None and not metrics.ok:
            if time.monotonic() - last_change > stall:
                return None
            time.sleep(0.2)
            continue
        count = metrics.total("vasbill_events_total") if metrics else None
        if count is None:
            return None
        update(int(count))
        if count >= expected:
            return int(count)
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        elif now - last_change > stall or now > deadline:
            return int(count)
        worker.sample_rss()
        time.sleep(0.2)


def keep_running(stack: Stack, err: Any) -> None:
    assert stack.worker is not None and stack.broker is not None
    err.print(f"running: broker {stack.broker.bootstrap}, worker {stack.worker.url} (/metrics, /readyz); "
              f"try: VASBILL_BROKER={stack.broker.bootstrap} vasbill charges --account acct-1. Ctrl-C stops.")
    with contextlib.suppress(KeyboardInterrupt):
        while stack.worker.exited() is None and stack.broker.running:
            time.sleep(0.5)


@contextlib.contextmanager
def interrupted_as_failure() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt as exc:
        raise DemoError("interrupted; everything it started is stopped") from exc


# -- command ----------------------------------------------------------------------------------

def register(main: click.Group) -> None:
    """Add ``vasbill demo`` to the ``vasbill`` group."""

    @main.command("demo")
    @click.option("--accounts", type=click.IntRange(1, 50), default=DemoOptions.accounts, show_default=True,
                  help="How many example accounts (5 covers every relay billing mode).")
    @click.option("--month", default=DemoOptions.month, show_default=True, help="Beijing month YYYY-MM to bill.")
    @click.option("--seed", type=int, default=DemoOptions.seed, show_default=True, help="Random seed of the data.")
    @click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=DemoOptions.scale,
                  show_default=True, help="Multiplies the number of live streams (and events).")
    @click.option("--port", type=click.IntRange(1, 65535), default=None,
                  help="Broker port on 127.0.0.1 [default: a free port].")
    @click.option("--idle", type=click.FloatRange(min=0, min_open=True), default=DemoOptions.idle,
                  show_default=True, metavar="SECONDS", help="The month is done after SECONDS without a new charge.")
    @click.option("--keep-running", is_flag=True, help="Leave the broker and worker up until Ctrl-C.")
    def demo_command(accounts: int, month: str, seed: int, scale: float, port: int | None, idle: float,
                     keep_running: bool) -> None:
        """Start a broker and a worker, stream a month for example accounts, print statements.

        Everything runs on this machine and is stopped at the end (or on Ctrl-C); the
        worker's charges are compared with `vasbill rate` on the same events."""
        import re

        from rich.console import Console

        from vasbill.cli import Failure, failures

        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise click.BadParameter("expected YYYY-MM", param_hint="--month")
        options = DemoOptions(accounts=accounts, month=month, seed=seed, scale=scale, port=port, idle=idle,
                              keep_running=keep_running)
        with failures(), interrupted_as_failure():
            try:
                out, err = Console(), Console(stderr=True)
                for console in (out, err):
                    if not console.is_terminal:  # a pipe or a file: no 80-column default
                        console.width = max(console.width, 110)
                run_demo(options, out, err)
            except VasbillError:
                raise
            except Exception as exc:  # noqa: BLE001 - one line, not a traceback, for the demo
                raise Failure(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc

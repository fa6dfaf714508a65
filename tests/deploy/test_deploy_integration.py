"""The dashboard and the rules against the real thing: the embedded broker, a ``vasbill worker``
subprocess, and a real Prometheus (Debian's package) scraping the worker's web port every second
with deploy/prometheus/prometheus.yml (targets and intervals adapted) and the alert rules.

The input is a generated day of usage (two Beijing days of ``vasbill gen --accounts 3 --scale 0.1
--seed 1``) with the bad lines of the whole month that do not move the clock (malformed, schema,
unknown app, disabled service, far future), the duplicates of kept events and the late events for
the kept days. It makes every panel's metric exist:

- duplicates, quarantine by five reasons, a late event and its revision (acct-1, relay traffic);
- packages: acct-1's CSS traffic package (bought 2026-08-15) is used up on the 15th, so
  ``vasbill_package_balance{kind="css_traffic"}`` is 0 and VasbillPackageExhausted goes pending;
- ``vasbill tick --final`` closes the month, so monthly units and month-to-date amounts exist;
- ``vasbill_stale_recording_tasks_total`` and ``vasbill_late_events_total`` are unlabelled
  counters: exported at 0 from the start.

No panel needed an ``or vector(0)``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from deploy_helpers import (
    DASHBOARD,
    DEPLOY,
    JOB,
    PROM_CONFIG,
    RULES,
    binary,
    dashboard_targets,
    grafana_to_promql,
)

from workers.broker import free_port

DAYS = ("2026-08-15", "2026-08-16")
UNKNOWN_APP = 1_400_099_999  # vasbill.gen.UNKNOWN_APP_ID
STARTUP_TIMEOUT = 60.0


def vasbill(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([sys.executable, "-m", "vasbill", *args], cwd=cwd, capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"vasbill {' '.join(args)}: {result.stderr.decode(errors='replace')}"
    return result


def select_lines(source: Path, target: Path) -> Counter[str]:
    """Keep the events of DAYS, every bad line that cannot move the clock, duplicates of kept
    events and late events for DAYS; in the generator's order."""
    kept_ids: set[str] = set()
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    out = []
    for raw in source.read_bytes().splitlines():
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            out.append(raw)
            counts["malformed"] += 1
            continue
        event_id = str(event.get("event_id", ""))
        if event_id in seen:  # an exact duplicate: only if its original is kept
            if event_id in kept_ids:
                out.append(raw)
                counts["duplicate"] += 1
            continue
        seen.add(event_id)
        day = str(event.get("time") or event.get("date") or "")[:10]
        rejected = (any(tag in event_id for tag in ("-bad-", "-future-", "-disabled-"))
                    or event.get("sdk_app_id") == UNKNOWN_APP)
        if day in DAYS or rejected:
            out.append(raw)
            kept_ids.add(event_id)
            counts["late" if "-late-" in event_id else "rejected" if rejected else "good"] += 1
    target.write_bytes(b"\n".join(out) + b"\n")
    return counts


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback test URL
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, what: str, process: subprocess.Popen[bytes], log: Path,
             timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if http_get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not ready at {url} after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        status, body = http_get(url)
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", f"{url}: {status} {doc}"
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def by_label(self, expr: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in self.query(expr)}

    def wait_until(self, expr: str, label: str, expected: dict[str, float], timeout: float = 30.0) -> dict[str, float]:
        """Poll ``expr`` until it equals ``expected`` (the last scrapes may still be on their way)."""
        deadline = time.monotonic() + timeout
        got = self.by_label(expr, label)
        while got != expected and time.monotonic() < deadline:
            time.sleep(0.5)
            got = self.by_label(expr, label)
        return got


@contextmanager
def running_stack(broker: str, prometheus_bin: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Topics, a worker and Prometheus; stopped (by their ids) after the test."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"deploy{tag}."
    web_port, prom_port = free_port(), free_port()
    vasbill("topics", "create", "--partitions", "2", "--prefix", prefix, "--broker", broker, cwd=tmp_path)

    worker_log = tmp_path / "worker.log"
    prom_log = tmp_path / "prometheus.log"
    processes: list[subprocess.Popen[bytes]] = []
    with open(worker_log, "wb") as wlog, open(prom_log, "wb") as plog:
        try:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "vasbill", "worker", "--broker", broker, "--store", "memory",
                 "--clock", "event", "--partitions", "2", "--web-port", str(web_port), "--app-id", f"deploy-{tag}",
                 "--prefix", prefix, "--data-dir", str(tmp_path / "data"), "--month-to-date-interval", "1"],
                cwd=tmp_path, stdout=wlog, stderr=subprocess.STDOUT))
            worker = processes[-1]

            # deploy/prometheus/prometheus.yml with this worker as the only target, 1 s intervals,
            # and the deploy rule file (so real Prometheus loads and evaluates the rules too).
            config = yaml.safe_load(PROM_CONFIG.read_text(encoding="utf-8"))
            config["global"].update(scrape_interval="1s", evaluation_interval="1s")
            (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
            job.update(scrape_interval="1s", scrape_timeout="1s",
                       static_configs=[{"targets": [f"127.0.0.1:{web_port}"]}])
            config["scrape_configs"] = [job]
            config["rule_files"] = [str(RULES)]
            config_path = tmp_path / "prometheus.yml"
            config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
            processes.append(subprocess.Popen(
                [prometheus_bin, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                cwd=tmp_path, stdout=plog, stderr=subprocess.STDOUT))
            prometheus = processes[-1]

            wait_for(f"http://127.0.0.1:{web_port}/readyz", "the worker", worker, worker_log)
            wait_for(f"http://127.0.0.1:{prom_port}/-/ready", "prometheus", prometheus, prom_log)
            yield {"broker": broker, "prefix": prefix, "web_port": web_port, "worker": worker,
                   "prom": Prom(f"http://127.0.0.1:{prom_port}"), "worker_log": worker_log}
        finally:
            for process in reversed(processes):
                stop(process)


def test_dashboard_queries_and_counts_against_a_live_worker(broker: str, tmp_path: Path) -> None:
    prometheus_bin = binary("prometheus")  # missing: the test FAILS with how to install it
    with running_stack(broker, prometheus_bin, tmp_path) as stack:
        check_stack(stack, tmp_path)


def check_stack(stack: dict[str, Any], tmp_path: Path) -> None:
    broker, prefix, prom = stack["broker"], stack["prefix"], stack["prom"]
    kafka = ["--broker", broker, "--prefix", prefix]

    # Input: a generated month cut to two days plus the bad lines; expectations from `vasbill rate`.
    vasbill("gen", "--accounts", "3", "--scale", "0.1", "--seed", "1", "--out", "month.jsonl",
            "--apps-out", "apps.jsonl", cwd=tmp_path)
    counts = select_lines(tmp_path / "month.jsonl", tmp_path / "ev.jsonl")
    assert counts["duplicate"] and counts["late"] and counts["malformed"] and counts["rejected"], counts
    vasbill("rate", "--events", "ev.jsonl", "--apps", "apps.jsonl", "--quarantine", "quarantine.jsonl",
            "--out", "rated.jsonl", cwd=tmp_path)
    expected_reasons = Counter(orjson.loads(line)["reason"]
                               for line in (tmp_path / "quarantine.jsonl").read_bytes().splitlines() if line)
    assert len(expected_reasons) >= 4, expected_reasons

    # The Dockerfile's HEALTHCHECK command, run here against the live worker.
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    check = json.loads(next(line for line in dockerfile.splitlines()
                            if line.startswith("HEALTHCHECK")).split(" CMD ", 1)[1])
    assert check[0] == "python"
    env = dict(os.environ, VASBILL_WEB_PORT=str(stack["web_port"]))
    assert subprocess.run([sys.executable, *check[1:]], env=env, timeout=30, capture_output=True).returncode == 0
    env["VASBILL_WEB_HOST"] = "0.0.0.0"  # a wildcard bind address: the check asks the loopback
    assert subprocess.run([sys.executable, *check[1:]], env=env, timeout=30, capture_output=True).returncode == 0
    env["VASBILL_WEB_PORT"] = str(free_port())  # nothing listens there: unhealthy
    assert subprocess.run([sys.executable, *check[1:]], env=env, timeout=30, capture_output=True).returncode != 0
    # And the compose file's worker healthcheck, with this worker's address in its variables.
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    test = compose["services"]["worker-1"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    env.update(VASBILL_WEB_HOST="127.0.0.1", VASBILL_WEB_PORT=str(stack["web_port"]))
    assert subprocess.run([sys.executable, *test[2:]], env=env, timeout=30, capture_output=True).returncode == 0

    vasbill("produce", "apps.jsonl", *kafka, cwd=tmp_path)
    vasbill("produce", "ev.jsonl", "--batch", "200", *kafka, cwd=tmp_path)
    vasbill("tick", "--final", *kafka, cwd=tmp_path)

    def read_charges() -> list[bytes]:
        out = vasbill("charges", "--until-idle", "3", *kafka, cwd=tmp_path).stdout
        return [line for line in out.splitlines() if line.strip()]

    charges = read_charges()
    assert charges, "the worker emitted no charges"

    # Counts in Prometheus equal what was sent and what was read back.
    # every reason exists from the start at 0 (so rate() sees the first increase): compare the non-zero ones
    reasons = prom.wait_until(f'sum by (reason) (vasbill_quarantined_total{{job="{JOB}"}}) > 0', "reason",
                              {k: float(v) for k, v in expected_reasons.items()})
    assert reasons == {k: float(v) for k, v in expected_reasons.items()}
    quarantined_events = prom.by_label(f'sum(vasbill_events_total{{job="{JOB}", outcome="quarantined"}})', "")
    assert quarantined_events == {"": float(sum(expected_reasons.values()))}
    total = prom.wait_until(f'sum(vasbill_charges_total{{job="{JOB}"}})', "", {"": float(len(charges))})
    if total != {"": float(len(charges))}:  # a slow machine: charges after a 3 s pause; read them again
        charges = read_charges()
        total = prom.wait_until(f'sum(vasbill_charges_total{{job="{JOB}"}})', "", {"": float(len(charges))})
    assert total == {"": float(len(charges))}, f"Prometheus counts {total}, {len(charges)} charges read back"
    revisions = sum(1 for line in charges if orjson.loads(line)["revision"] > 1)
    assert prom.by_label(f'sum(vasbill_revisions_total{{job="{JOB}"}}) or vector(0)', "") == {"": float(revisions)}

    # Month-to-date: the latest revision of every August charge, summed per product and item.
    latest: dict[str, dict[str, Any]] = {}
    for line in charges:
        doc = orjson.loads(line)
        if doc["charge_id"].rsplit("/", 1)[1].startswith("2026-08") and (
                doc["charge_id"] not in latest or doc["revision"] > latest[doc["charge_id"]]["revision"]):
            latest[doc["charge_id"]] = doc
    month: dict[str, Decimal] = {}
    for doc in latest.values():
        key = f"{doc['product']}/{doc['item']}"
        month[key] = month.get(key, Decimal(0)) + Decimal(doc["amount"])
    mtd_expr = f'sum by (product, item) (vasbill_month_to_date_cny{{job="{JOB}"}})'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = {f"{r['metric']['product']}/{r['metric']['item']}": float(r["value"][1]) for r in prom.query(mtd_expr)}
        if got.keys() == month.keys():
            break
        time.sleep(0.5)
    assert got.keys() == month.keys()
    for key, amount in month.items():
        assert abs(got[key] - float(amount)) < 0.005, (key, got[key], amount)

    # Every panel query of the dashboard returns at least one series.
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    targets = dashboard_targets(dashboard)
    assert len(targets) >= 20
    empty = []
    for title, target in targets:
        expr = grafana_to_promql(target["expr"])
        assert "$" not in expr, f"{title}: unsubstituted variable in {expr}"
        if not prom.query(expr):
            empty.append(f"{title}: {expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)
    balances = prom.by_label(f'vasbill_package_balance{{job="{JOB}"}}', "kind")
    assert balances.get("css_traffic") == 0.0, balances

    # Prometheus loaded and evaluates the deploy rules without errors; the exhausted package is seen.
    groups = prom.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules and all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    alerts = prom.api("alerts")["alerts"]
    exhausted = [a for a in alerts if a["labels"]["alertname"] == "VasbillPackageExhausted"]
    assert [a["labels"]["kind"] for a in exhausted] == ["css_traffic"], alerts
    targets_up = prom.api("targets")["activeTargets"]
    assert [t["health"] for t in targets_up] == ["up"], targets_up

"""Helpers for the deploy/ tests: paths, the Prometheus binaries, YAML, the metric contract."""

from __future__ import annotations

import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "vasbill.rules.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "vasbill.json"
JOB = "vasbill"

INSTALL_HINT = ("install Debian's prometheus package (apt-get update && apt-get install -y prometheus), "
                "which provides promtool and the prometheus server; .ci/run does this")


def binary(name: str) -> str:
    """Path of a Prometheus binary; the test FAILS (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {INSTALL_HINT}", pytrace=False)
    return path


def load_yaml(path: Path) -> Any:
    import yaml  # PyYAML comes with the dev extra (kubernetes-validate depends on it)

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_all(path: Path) -> list[Any]:
    import yaml

    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


@lru_cache(maxsize=1)
def exported_labels() -> dict[str, frozenset[str]]:
    """Every sample name the worker's registry can export, with its label names: the metric
    contract of workers/metrics.py, read from ``Metrics.create()``."""
    from prometheus_client import Counter, Gauge, Histogram, Info

    from workers.metrics import Metrics

    out: dict[str, frozenset[str]] = {}
    for value in vars(Metrics.create()).values():
        if not isinstance(value, (Counter, Gauge, Histogram, Info)):
            continue
        base, labels = value._name, frozenset(value._labelnames)  # a Counter's _name has no _total
        if isinstance(value, Counter):
            out.update({f"{base}_total": labels, f"{base}_created": labels})
        elif isinstance(value, Histogram):
            out.update({f"{base}_bucket": labels | {"le"}, f"{base}_count": labels, f"{base}_sum": labels,
                        f"{base}_created": labels})
        elif isinstance(value, Info):
            out[f"{base}_info"] = frozenset({"version", "catalogs"})  # the keys given to .info()
        else:
            out[base] = labels
    return out


def exported_names() -> frozenset[str]:
    return frozenset(exported_labels())


METRIC_RE = re.compile(r"\bvasbill_[a-z0-9_]+\b")


def metric_names_in(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))


def dashboard_targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every target of every panel, rows' nested panels included."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((panel.get("title", "?"), target))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression as Prometheus sees it from Grafana, for a short test range."""
    return (expr.replace("$__rate_interval", "1m").replace("${__rate_interval}", "1m")
            .replace("$__interval", "15s").replace("$__range", "1h"))


def command_envvars(*command: str) -> set[str]:
    """Environment variables a ``vasbill`` command reads (its click options' envvar)."""
    import click

    from vasbill.cli import main

    cmd: click.Command = main
    for name in command:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    names: set[str] = set()
    for param in cmd.params:
        if param.envvar:
            names |= {param.envvar} if isinstance(param.envvar, str) else set(param.envvar)
    return names

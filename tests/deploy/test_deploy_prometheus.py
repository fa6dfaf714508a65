"""deploy/prometheus: promtool checks the config and the rules and runs the rules' unit tests;
the rules use only metrics and labels the worker exports (workers/metrics.py)."""

from __future__ import annotations

import re
import subprocess

from deploy_helpers import (
    JOB,
    PROM_CONFIG,
    RULE_TESTS,
    RULES,
    binary,
    exported_labels,
    exported_names,
    load_yaml,
    metric_names_in,
)

#: The alerts the operations issue asks for, by intent.
REQUIRED_ALERTS = {
    "VasbillWorkerDown",  # worker down
    "VasbillConsumerLagGrowing",  # consumer lag growing for 10 minutes
    "VasbillQuarantineHigh",  # quarantine above 1 % of events for 10 minutes
    "VasbillNoUsageEvents",  # no usage events for 15 minutes
    "VasbillPeriodCloseOverdue",  # a period not closed 30 minutes after its close time
    "VasbillRevisionSurge",  # a surge of revisions
    "VasbillPackageExhausted",  # package balance exhausted
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    promtool = binary("promtool")  # missing: the test FAILS with how to install it
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_check_config() -> None:
    promtool = binary("promtool")
    # Also loads rule_files (rules/*.yml, relative to the config) and checks them.
    result = run(promtool, "check", "config", str(PROM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert str(RULES.name) in result.stdout, "prometheus.yml does not load the vasbill rules"


def test_promtool_test_rules() -> None:
    promtool = binary("promtool")
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a not-firing test"


def test_required_alerts_and_their_metadata() -> None:
    rules = alerts()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert REQUIRED_ALERTS <= set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert f'job="{JOB}"' in rule["expr"], f"{rule['alert']} does not select job={JOB}"
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert "vasbill_packages_exhausted" in by_name["VasbillPackageExhausted"]["expr"]
    assert "> 0" in by_name["VasbillPackageExhausted"]["expr"]  # a count of exhausted packages
    overdue = by_name["VasbillPeriodCloseOverdue"]["expr"] + by_name["VasbillPeriodClosedLate"]["expr"]
    assert "vasbill_clock_seconds" in overdue and "vasbill_period_close_delay_seconds" in overdue
    assert "1800" in by_name["VasbillPeriodCloseOverdue"]["expr"]
    assert by_name["VasbillConsumerLagGrowing"]["for"] == "10m"
    assert by_name["VasbillQuarantineHigh"]["for"] == "10m"
    assert "0.01" in by_name["VasbillQuarantineHigh"]["expr"]


def test_rules_use_only_exported_metrics_and_labels() -> None:
    """A renamed metric or label in workers/metrics.py must break this test, not the pager."""
    labels = exported_labels()
    for rule in alerts():
        expr = rule["expr"]
        unknown = metric_names_in(expr) - exported_names()
        assert not unknown, f"{rule['alert']} uses metrics the worker does not export: {sorted(unknown)}"
        for name in metric_names_in(expr):
            for selector in re.findall(rf"\b{name}\{{([^}}]*)\}}", expr):
                used = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector)) - {"job", "instance"}
                assert used <= labels[name], f"{rule['alert']}: {name} has no label(s) {sorted(used - labels[name])}"
        for grouping in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            used = {g.strip() for g in grouping.split(",") if g.strip()} - {"job", "instance"}
            available = set().union(*(labels[n] for n in metric_names_in(expr)))
            assert used <= available, f"{rule['alert']} groups by unknown labels {sorted(used - available)}"

"""deploy/grafana: the dashboard JSON and its provisioning. (Every panel query is evaluated
against a real Prometheus scraping a real worker in test_deploy_integration.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

from deploy_helpers import (
    DASHBOARD,
    DEPLOY,
    JOB,
    dashboard_targets,
    exported_labels,
    exported_names,
    load_yaml,
    load_yaml_all,
    metric_names_in,
)

#: Metrics the issue asks for, by dashboard row.
ROWS = {
    "Ingest": {"vasbill_events_total", "vasbill_quarantined_total", "vasbill_consumer_lag_messages"},
    "Billing": {"vasbill_month_to_date_cny", "vasbill_charges_total", "vasbill_revisions_total",
                "vasbill_charged_cny", "vasbill_period_close_delay_seconds_bucket", "vasbill_package_balance"},
    "Health": {"vasbill_ready", "vasbill_event_to_state_latency_seconds_bucket", "vasbill_table_entries",
               "vasbill_stale_recording_tasks_total", "vasbill_late_events_total", "vasbill_build_info"},
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def rows(dash: dict) -> dict[str, list[dict]]:
    """Row title -> the panels under it (top-level layout; collapsed rows hold their own)."""
    out: dict[str, list[dict]] = {}
    current: list[dict] | None = None
    for panel in dash["panels"]:
        if panel["type"] == "row":
            current = out.setdefault(panel["title"], list(panel.get("panels", [])))
        else:
            assert current is not None, f"panel {panel['title']!r} is above the first row"
            current.append(panel)
    return out


def test_dashboard_basics() -> None:
    dash = dashboard()
    assert dash["uid"] and len(dash["uid"]) <= 40
    assert dash["title"] == "vasbill"
    assert dash["schemaVersion"] >= 36  # Grafana 10/11 dashboards
    assert dash.get("id") is None, "a provisioned dashboard must not carry a database id"
    assert "__inputs" not in dash, "exported-for-sharing dashboards (${DS_...} inputs) do not provision"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_uses_the_datasource_variable_and_has_a_query() -> None:
    dash = dashboard()
    ids = []
    for panels in rows(dash).values():
        for panel in panels:
            ids.append(panel["id"])
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
                assert target["expr"].strip(), panel["title"]
    ids += [p["id"] for p in dash["panels"] if p["type"] == "row"]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_layout_has_no_overlaps() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area


def test_rows_cover_the_required_metrics() -> None:
    by_row = rows(dashboard())
    assert list(by_row) == list(ROWS)
    for row, required in ROWS.items():
        used = {name for panel in by_row[row] for t in panel["targets"] for name in metric_names_in(t["expr"])}
        assert required <= used, f"row {row} lacks {sorted(required - used)}"
    health = [t["expr"] for p in by_row["Health"] for t in p["targets"]]
    assert any(f'up{{job="{JOB}"}}' in e for e in health), "Health has no workers-up panel"
    latency = [e for e in health if "vasbill_event_to_state_latency_seconds_bucket" in e]
    assert any("histogram_quantile(0.5," in e for e in latency)
    assert any("histogram_quantile(0.99," in e for e in latency)
    ingest = [t["expr"] for p in by_row["Ingest"] for t in p["targets"]]
    assert any('outcome="duplicate"' in e for e in ingest), "Ingest has no duplicates panel"


def test_queries_use_only_exported_metrics_and_labels() -> None:
    labels = exported_labels()
    for title, target in dashboard_targets(dashboard()):
        expr = target["expr"]
        names = metric_names_in(expr)
        assert names <= exported_names(), f"{title}: unknown metrics {sorted(names - exported_names())}"
        assert f'job="{JOB}"' in expr, f"{title}: does not select job={JOB}"
        available = set().union(*(labels[n] for n in names)) if names else set()
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            used = {g.strip() for g in grouping.split(",") if g.strip()} - {"job", "instance"}
            assert used <= available, f"{title}: groups by unknown labels {sorted(used - available)}"
        if "rate(" in expr or "increase(" in expr:
            assert re.search(r"\[(\$__rate_interval|\d+[mhd])\]", expr), f"{title}: rate without a range"


def test_provisioning() -> None:
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"  # the compose service

    providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "vasbill.yaml")
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]

    # compose mounts deploy/grafana/dashboards at the provider's path, and the provisioning dir.
    (compose,) = load_yaml_all(DEPLOY / "compose.yaml")
    mounts = {}
    for volume in compose["services"]["grafana"]["volumes"]:
        source_dir, target, *_ = volume.split(":")
        mounts[target] = (DEPLOY / source_dir).resolve()
    assert mounts[path] == DASHBOARD.parent.resolve()
    assert mounts["/etc/grafana/provisioning"] == (DEPLOY / "grafana" / "provisioning").resolve()
    assert Path(mounts[path], DASHBOARD.name).is_file()

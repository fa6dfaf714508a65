"""deploy/compose.yaml and deploy/docker/Dockerfile: structure checks in Python, always;
``docker compose config`` too where the compose plugin works."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

from deploy_helpers import DEPLOY, PROM_CONFIG, REPO, command_envvars, load_yaml, load_yaml_all

COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
WORKERS = ("worker-1", "worker-2")


def compose() -> dict[str, Any]:
    (doc,) = load_yaml_all(COMPOSE)  # PyYAML resolves the x-* anchors and << merges
    return doc


def as_dict(environment: Any) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {k: "" if v is None else str(v) for k, v in (environment or {}).items()}


def compose_plugin() -> str | None:
    """``docker`` if ``docker compose version`` works here, else None."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return docker if probe.returncode == 0 else None


def test_compose_structure_and_docker_compose_config() -> None:
    doc = compose()
    services = doc["services"]
    assert {"kafka", "topics-init", *WORKERS, "prometheus", "grafana"} <= set(services)

    # Apache Kafka in KRaft mode (no ZooKeeper), from the official image.
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = as_dict(kafka["environment"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "ZOOKEEPER" not in " ".join(env), "KRaft mode: no ZooKeeper settings"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"].split()[0]), "CLUSTER_ID must be a base64 UUID"
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"]), "Kafka's log dir on a volume"
    assert "healthcheck" in kafka

    # The one-shot topics-init: `vasbill topics create`, after Kafka is healthy, not restarted.
    init = services["topics-init"]
    assert init["entrypoint"][-2:] == ["topics", "create"] or init["entrypoint"] == ["vasbill", "topics", "create"]
    assert init.get("restart", "no") == "no"
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    init_env = as_dict(init["environment"])
    assert set(init_env) <= command_envvars("topics", "create"), set(init_env) - command_envvars("topics", "create")

    # Two workers in one group, RocksDB on a volume each, healthchecked, started after topics-init.
    worker_env = command_envvars("worker")
    groups, volumes = set(), set()
    for name in WORKERS:
        worker = services[name]
        env = as_dict(worker["environment"])
        assert set(env) <= worker_env, f"{name}: unknown settings {sorted(set(env) - worker_env)}"
        args = worker.get("command", [])
        store = args[args.index("--store") + 1] if "--store" in args else env.get("VASBILL_STORE")
        data_dir = args[args.index("--data-dir") + 1] if "--data-dir" in args else env.get("VASBILL_DATA_DIR")
        assert store == "rocksdb" and data_dir == "/data"
        (volume,) = [v for v in worker["volumes"] if v.split(":")[1] == "/data"]
        volumes.add(volume.split(":")[0])
        groups.add(env.get("VASBILL_APP_ID", "vasbill"))
        # The name the other worker reaches it by (Faust's canonical URL), the one Prometheus scrapes.
        assert env["VASBILL_WEB_HOST"] == name
        assert "VASBILL_WEB_HOST" in " ".join(worker["healthcheck"]["test"])
        assert env["VASBILL_BROKER"] == "kafka:9092"
        assert worker["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert "healthz" in " ".join(worker["healthcheck"]["test"])
        assert worker["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (COMPOSE.parent / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve() == DOCKERFILE
        assert worker["image"] == init["image"]
    assert len(groups) == 1, "both workers must be in one consumer group"
    assert len(volumes) == 2, "each worker needs its own RocksDB volume"
    assert volumes | {"kafka-data"} <= set(doc["volumes"])
    partitions = as_dict(services[WORKERS[0]]["environment"])["VASBILL_PARTITIONS"]
    assert init["command"][init["command"].index("--partitions") + 1] == partitions

    # Prometheus with this directory's config and rules; it scrapes both workers.
    prometheus = services["prometheus"]
    mounts = {v.split(":")[1]: (COMPOSE.parent / v.split(":")[0]).resolve() for v in prometheus["volumes"]
              if v.startswith(".")}
    assert mounts["/etc/prometheus/prometheus.yml"] == PROM_CONFIG
    assert mounts["/etc/prometheus/rules"] == (DEPLOY / "prometheus" / "rules").resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = load_yaml(PROM_CONFIG)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "vasbill"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    port = as_dict(services[WORKERS[0]]["environment"])["VASBILL_WEB_PORT"]
    assert targets == {f"{name}:{port}" for name in WORKERS}
    assert job.get("metrics_path", "/metrics") == "/metrics"

    # Grafana with the provisioning (checked in detail in test_deploy_grafana.py).
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert int(services["grafana"]["image"].split(":")[1].split(".")[0]) >= 10
    for name in ("kafka", *WORKERS, "prometheus", "grafana"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"

    docker = compose_plugin()
    if docker is None:
        print("docker compose plugin not available here: structure checks only")
        return
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--format", "json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == set(services)


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all(re.search(r"python:\$\{PYTHON_VERSION\}-slim|python:3\.\d+-slim", f) for f in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must run as a non-root user"
    entrypoint = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT ")).split(" ", 1)[1])
    assert entrypoint == ["vasbill", "worker"]
    healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK "))
    assert "/healthz" in healthcheck and "urllib" in healthcheck and "curl" not in " ".join(lines)
    env = dict(re.findall(r"(VASBILL_[A-Z_]+)=(\S+)", " ".join(line for line in lines if line.startswith("ENV "))))
    assert set(env) <= command_envvars("worker"), set(env) - command_envvars("worker")
    assert env["VASBILL_DATA_DIR"] == "/data" and env["VASBILL_WEB_HOST"] == "0.0.0.0"
    assert "rocksdict" in text, "--store rocksdb needs a RocksDB binding in the image"
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for line in lines:
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
                assert f"!{source.rstrip('/')}" in ignore, f"{source} is filtered out of the build context"

"""deploy/k8s: built-in kinds validated offline against the Kubernetes JSON schemas bundled with
kubernetes-validate (strict: unknown fields fail); the CRDs (ServiceMonitor, PrometheusRule)
and the Kustomization structurally; the PrometheusRule equals what its script generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, JOB, RULES, command_envvars, load_yaml, load_yaml_all

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
BUILT_IN = {"ConfigMap", "Service", "StatefulSet"}


def documents() -> dict[str, dict[str, Any]]:
    """kind -> the one document of that kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for doc in load_yaml_all(path):
            assert doc["kind"] not in found, f"two {doc['kind']} documents"
            found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_builtin_kinds_validate_against_the_kubernetes_schemas(kind: str) -> None:
    from kubernetes_validate import utils

    doc = documents()[kind]
    version = utils.latest_version()
    try:
        utils.validate(doc, version, strict=True)
    except utils.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{kind} is not valid for Kubernetes {exc.version}: {path}: {exc.message}")


def test_the_validator_rejects_what_it_should() -> None:
    """The bundled schemas really are used (offline): a misspelt field and a wrong type fail."""
    from kubernetes_validate import utils

    version = utils.latest_version()
    broken = documents()["StatefulSet"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(utils.ValidationError):
        utils.validate(broken, version, strict=True)
    broken = documents()["StatefulSet"]
    broken["spec"]["replicas"] = "two"
    with pytest.raises(utils.ValidationError):
        utils.validate(broken, version, strict=True)


def test_statefulset_service_and_config_fit_together() -> None:
    docs = documents()
    sts, svc, config = docs["StatefulSet"], docs["Service"], docs["ConfigMap"]
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"] == JOB, "the Service's name is the job label"
    assert svc["spec"]["clusterIP"] == "None", "headless Service"
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= set(ports)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    # The table store on a PersistentVolumeClaim per pod.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    data_dir = config["data"]["VASBILL_DATA_DIR"]
    assert mounts[claim["metadata"]["name"]] == data_dir
    assert config["data"]["VASBILL_STORE"] == "rocksdb"
    if "--data-dir" in container.get("args", []):
        assert container["args"][container["args"].index("--data-dir") + 1] == data_dir
    assert int(config["data"]["VASBILL_WEB_PORT"]) == ports["web"]

    # Settings from the ConfigMap, SASL credentials from a Secret, and nothing unknown.
    assert [e["configMapRef"]["name"] for e in container["envFrom"]] == [config["metadata"]["name"]]
    assert set(config["data"]) <= command_envvars("worker"), set(config["data"]) - command_envvars("worker")
    env = {e["name"]: e for e in container["env"]}
    # Each pod advertises its own DNS name under the headless Service (Faust's canonical URL).
    names = [e["name"] for e in container["env"]]
    assert env["VASBILL_WEB_HOST"]["value"] == f"$(POD_NAME).{svc['metadata']['name']}.$(POD_NAMESPACE).svc"
    assert names.index("POD_NAME") < names.index("VASBILL_WEB_HOST") > names.index("POD_NAMESPACE")
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert svc["spec"].get("publishNotReadyAddresses") is True, "pod names must resolve before readiness"
    assert set(env) - {"POD_NAME", "POD_NAMESPACE"} <= command_envvars("worker")
    for name in ("VASBILL_SASL_USERNAME", "VASBILL_SASL_PASSWORD"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] and ref["key"]
        assert name not in config["data"], "credentials must not be in the ConfigMap"
    assert config["data"]["VASBILL_SECURITY_PROTOCOL"].startswith("SASL_")


def test_servicemonitor() -> None:
    docs = documents()
    monitor, svc = docs["ServiceMonitor"], docs["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint.get("path", "/metrics") == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels",
                             "relabelings", "metricRelabelings"}
    # No jobLabel: the job is then the Service's name, which the rules and the dashboard select.
    assert "jobLabel" not in monitor["spec"] and svc["metadata"]["name"] == JOB


def test_prometheusrule_is_generated_from_the_rule_file() -> None:
    rule = documents()["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"]
    assert rule["spec"] == load_yaml(RULES), "spec must be the rule file's groups"
    script = K8S / "build_prometheusrule.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    sys.path.insert(0, str(K8S))
    try:
        import build_prometheusrule
    finally:
        sys.path.remove(str(K8S))
    generated = build_prometheusrule.build(RULES.read_text(encoding="utf-8"))
    assert (K8S / "prometheusrule.yaml").read_text(encoding="utf-8") == generated


def test_the_check_mode_catches_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text("kind: PrometheusRule\n", encoding="utf-8")
    script = K8S / "build_prometheusrule.py"
    result = subprocess.run([sys.executable, str(script), "--check", "--output", str(stale)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "out of date" in result.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)

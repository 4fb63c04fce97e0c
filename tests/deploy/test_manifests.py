"""The Kubernetes manifests: schema-valid (kubernetes-validate --strict, offline, no cluster),
consistent with each other, with the server's settings and with BentoML's image, and following
the serving rules of tests/deploy/manifest_rules.py; a manifest that breaks a rule is caught."""

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from harness.process import ServedProcess
from tests.deploy.manifest_rules import (
    MANIFESTS,
    Manifest,
    bentofile_envs,
    container,
    deployment_violations,
    deployments,
    env_of,
    load_all,
)

VALIDATOR = [sys.executable, "-m", "kubernetes_validate", "--strict"]


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VALIDATOR, *map(str, paths)], capture_output=True, text=True, timeout=120
    )


def test_every_manifest_validates_strictly() -> None:
    paths = sorted(MANIFESTS.rglob("*.yaml"))
    assert len(paths) >= 7, paths  # deployment, service, hpa, pdb + gpu, tls, in-progress hpa
    result = _validate(*paths)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in paths:
        assert f"{path} passed" in result.stdout, result.stdout


def test_strict_validation_rejects_a_misspelt_field(tmp_path: Path) -> None:
    text = (MANIFESTS / "deployment.yaml").read_text().replace("readinessProbe:", "readinesProbe:")
    broken = tmp_path / "deployment.yaml"
    broken.write_text(text)
    result = _validate(broken)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted(deployments()), ids=lambda p: p.name)
def test_deployment_follows_the_serving_rules(path: Path) -> None:
    assert deployment_violations(deployments()[path]) == []


def _set(path: str, value: object) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        *parents, last = path.split(".")
        node = deployment
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return change


def _env(name: str, value: str | None) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        server = deployment["spec"]["template"]["spec"]["containers"][0]
        server["env"] = [e for e in server["env"] if e["name"] != name]
        if value is not None:
            server["env"].append({"name": name, "value": value})

    return change


def _drop_mount(path: str) -> Callable[[Manifest], None]:
    def change(deployment: Manifest) -> None:
        server = deployment["spec"]["template"]["spec"]["containers"][0]
        server["volumeMounts"] = [m for m in server["volumeMounts"] if m["mountPath"] != path]

    return change


CONTAINER = "spec.template.spec.containers.0"
BROKEN = {
    "maxUnavailable 1": _set("spec.strategy.rollingUpdate.maxUnavailable", 1),
    "Recreate": _set("spec.strategy", {"type": "Recreate"}),
    "readiness on /livez": _set(f"{CONTAINER}.readinessProbe.httpGet.path", "/livez"),
    "no liveness probe": lambda d: d["spec"]["template"]["spec"]["containers"][0].pop(
        "livenessProbe"
    ),
    "grace period below the request timeout": _set(
        "spec.template.spec.terminationGracePeriodSeconds", 30
    ),
    "request timeout above the grace period": _env("CREDIT_RISK_REQUEST_TIMEOUT_S", "60"),
    "more workers than cores": _env("CREDIT_RISK_WORKERS", "4"),
    "memory too small": _set(f"{CONTAINER}.resources.limits.memory", "512Mi"),
    "bulk threads from the node's cores": _env("CREDIT_RISK_BULK_THREADS", "0"),
    "misspelt setting": _env("CREDIT_RISK_WORKRES", "2"),
    "runs as root": _set("spec.template.spec.securityContext.runAsUser", 0),
    "writable root filesystem": _set(f"{CONTAINER}.securityContext.readOnlyRootFilesystem", False),
    "read-only root without /tmp": _drop_mount("/tmp"),
    "privilege escalation": _set(f"{CONTAINER}.securityContext.allowPrivilegeEscalation", True),
    "cuda without a GPU": _env("CREDIT_RISK_DEVICE", "cuda"),
    "no API keys": _env("CREDIT_RISK_API_KEYS_FILE", None),
    "API keys outside the Secret": _env("CREDIT_RISK_API_KEYS_FILE", "/etc/api-keys"),
    "TLS with HTTP probes": _set(f"{CONTAINER}.args", ["--ssl-certfile=/x.crt"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_deployment_is_caught(name: str) -> None:
    deployment = copy.deepcopy(deployments()[MANIFESTS / "deployment.yaml"])
    BROKEN[name](deployment)
    assert deployment_violations(deployment), f"{name} was not caught"


def test_gpu_variant_matches_the_gpu_bentofile() -> None:
    gpu = deployments()[MANIFESTS / "variants" / "deployment-gpu.yaml"]
    env, bento_env = env_of(gpu), bentofile_envs("bentofile.gpu.yaml")
    assert env["CREDIT_RISK_DEVICE"] == bento_env["CREDIT_RISK_DEVICE"] == "cuda"
    assert env["CREDIT_RISK_WORKERS"] == bento_env["CREDIT_RISK_WORKERS"] == "1"
    assert container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == 1
    name = yaml.safe_load((MANIFESTS.parent.parent / "bentofile.gpu.yaml").read_text())["name"]
    assert f"/{name}:" in container(gpu)["image"]
    cpu = deployments()[MANIFESTS / "deployment.yaml"]
    assert (
        env_of(cpu)["CREDIT_RISK_DEVICE"] == bentofile_envs("bentofile.yaml")["CREDIT_RISK_DEVICE"]
    )


def test_service_budget_and_autoscalers_select_the_deployment() -> None:
    docs = [doc for docs in load_all().values() for doc in docs]
    (name,) = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    pod_labels = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["metadata"][
        "labels"
    ]
    port_names = {
        port["name"] for d in docs if d["kind"] == "Deployment" for port in container(d)["ports"]
    }
    for doc in docs:
        if doc["kind"] == "Service":
            assert doc["spec"]["selector"].items() <= pod_labels.items()
            assert {p["targetPort"] for p in doc["spec"]["ports"]} <= port_names
        elif doc["kind"] == "PodDisruptionBudget":
            assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        elif doc["kind"] == "HorizontalPodAutoscaler":
            assert doc["apiVersion"] == "autoscaling/v2"
            assert doc["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
            }
            assert doc["spec"]["minReplicas"] >= 2  # one can drain while another serves


def test_custom_metric_autoscaler_uses_a_metric_the_server_exports(server: ServedProcess) -> None:
    hpa = yaml.safe_load((MANIFESTS / "variants" / "hpa-in-progress.yaml").read_text())
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    httpx.post(f"{server.url}/classify", json={}, timeout=30)  # any request creates the series
    exported = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert f"\n{name}{{" in exported, f"{name} not in /metrics"
    assert f"# TYPE {name} gauge" in exported

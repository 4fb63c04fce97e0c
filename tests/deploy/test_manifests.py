"""The Kubernetes manifests: every combination of the base and its overlays, rendered by the
real `kubectl kustomize`, is schema-valid (kubernetes-validate --strict, offline, no cluster),
consistent with itself, with the server's settings and with BentoML's image, and follows the
serving rules of tests/deploy/manifest_rules.py; a manifest that breaks a rule is caught."""

import copy
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trustme
import yaml

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, ServedProcess, served
from tests.deploy.manifest_rules import (
    Manifest,
    bentofile_envs,
    combinations,
    container,
    deployment,
    deployment_violations,
    env_of,
    overlay_names,
    render,
    rendered_text,
)

VALIDATOR = [sys.executable, "-m", "kubernetes_validate", "--strict"]
RULES = PROJECT_ROOT / "deploy" / "monitoring" / "rules.yaml"
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # TLS 1.2 with AEAD suites only (and TLS 1.3)
COMBINATIONS = combinations()


def _name(overlays: tuple[str, ...]) -> str:
    return "+".join(overlays) or "base"


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VALIDATOR, *map(str, paths)], capture_output=True, text=True, timeout=300
    )


def test_the_overlays_are_the_expected_ones() -> None:
    assert overlay_names() == ("gpu", "hpa-in-progress", "monitoring", "tls")
    assert len(COMBINATIONS) == 2 ** len(overlay_names())


def test_every_combination_renders_and_validates_strictly(tmp_path: Path) -> None:
    """One validator run over all 16 renderings (the validator's start-up is the cost)."""
    paths = []
    for overlays in COMBINATIONS:
        path = tmp_path / f"{_name(overlays)}.yaml"
        path.write_text(rendered_text(overlays))
        paths.append(path)
    result = _validate(*paths)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in paths:
        assert f"{path} passed" in result.stdout, result.stdout


def test_strict_validation_rejects_a_misspelt_field(tmp_path: Path) -> None:
    text = rendered_text().replace("readinessProbe:", "readinesProbe:")
    broken = tmp_path / "base.yaml"
    broken.write_text(text)
    result = _validate(broken)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


@pytest.mark.parametrize("overlays", COMBINATIONS, ids=_name)
def test_deployment_follows_the_serving_rules(overlays: tuple[str, ...]) -> None:
    assert deployment_violations(deployment(overlays)) == []


@pytest.mark.parametrize("overlays", COMBINATIONS, ids=_name)
def test_each_overlay_shows_in_every_combination_and_only_there(overlays: tuple[str, ...]) -> None:
    """Combinable: each overlay's change survives the others, and none leaks into the base."""
    docs = render(overlays)
    server = container(deployment(overlays))
    hpa = next(doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    present = {
        "gpu": server["resources"]["limits"].get("nvidia.com/gpu") == 1
        and env_of(deployment(overlays))["CREDIT_RISK_DEVICE"] == "cuda"
        and "/credit_risk_gpu:" in server["image"],
        "tls": f"--ssl-ciphers={TLS_CIPHERS}" in server.get("args", [])
        and server["readinessProbe"]["httpGet"].get("scheme") == "HTTPS",
        "hpa-in-progress": [m["type"] for m in hpa["spec"]["metrics"]] == ["Pods"],
        "monitoring": any(doc["kind"] == "PrometheusRule" for doc in docs),
    }
    assert {name for name, shown in present.items() if shown} == set(overlays)


def test_tls_serves_only_aead_suites_on_tls_1_2() -> None:
    args = container(deployment(("tls",)))["args"]
    assert f"--ssl-ciphers={TLS_CIPHERS}" in args
    assert any(arg.startswith("--ssl-certfile=/etc/credit-risk/tls/") for arg in args)


def test_the_prometheus_rule_carries_rules_yaml() -> None:
    """The PrometheusRule is generated from rules.yaml (scripts/prometheus_rule.py): in sync, and
    its groups are rules.yaml's, which promtool checks (tests/deploy/test_monitoring_rules.py)."""
    check = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "prometheus_rule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    (rule,) = (doc for doc in render(("monitoring",)) if doc["kind"] == "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


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
    broken = copy.deepcopy(deployment())
    BROKEN[name](broken)
    assert deployment_violations(broken), f"{name} was not caught"


def test_gpu_overlay_matches_the_gpu_bentofile() -> None:
    gpu = deployment(("gpu",))
    env, bento_env = env_of(gpu), bentofile_envs("bentofile.gpu.yaml")
    assert env["CREDIT_RISK_DEVICE"] == bento_env["CREDIT_RISK_DEVICE"] == "cuda"
    assert env["CREDIT_RISK_WORKERS"] == bento_env["CREDIT_RISK_WORKERS"] == "1"
    assert container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == 1
    name = yaml.safe_load((PROJECT_ROOT / "bentofile.gpu.yaml").read_text())["name"]
    assert f"/{name}:" in container(gpu)["image"]
    cpu = deployment()
    assert (
        env_of(cpu)["CREDIT_RISK_DEVICE"] == bentofile_envs("bentofile.yaml")["CREDIT_RISK_DEVICE"]
    )


@pytest.mark.parametrize("overlays", COMBINATIONS, ids=_name)
def test_service_budget_and_autoscaler_select_the_deployment(overlays: tuple[str, ...]) -> None:
    docs = render(overlays)
    (server,) = (d for d in docs if d["kind"] == "Deployment")
    name = server["metadata"]["name"]
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    port_names = {port["name"] for port in container(server)["ports"]}
    kinds = [d["kind"] for d in docs]
    for kind in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert kinds.count(kind) == 1, kinds
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
    (hpa,) = (d for d in render(("hpa-in-progress",)) if d["kind"] == "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    httpx.post(f"{server.url}/classify", json={}, timeout=30)  # any request creates the series
    exported = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert f"\n{name}{{" in exported, f"{name} not in /metrics"
    assert f"# TYPE {name} gauge" in exported


@pytest.mark.slow
def test_the_tls_overlay_arguments_serve_only_aead_suites_on_tls_1_2(
    exported: ExportSummary, tmp_path: Path
) -> None:
    """`bentoml serve` with the tls overlay's own arguments (its certificate paths pointed at a
    throwaway CA's files): TLS 1.2 agrees only on an AEAD suite, refuses CBC ones; TLS 1.3 works."""
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    folder = tmp_path / "tls"
    folder.mkdir()
    certificate.cert_chain_pems[0].write_to_path(str(folder / "tls.crt"))
    certificate.private_key_pem.write_to_path(str(folder / "tls.key"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    args = container(deployment(("tls",)))["args"]
    args = [arg.replace("/etc/credit-risk/tls/", f"{folder}/") for arg in args]
    env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": "1"}
    with served(
        env, log_path=tmp_path / "serve.log", extra_args=tuple(args), tls_ca_file=folder / "ca.pem"
    ) as server:

        def handshake(version: ssl.TLSVersion, ciphers: str | None = None) -> str | None:
            context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
            context.minimum_version = context.maximum_version = version
            if ciphers is not None:
                context.set_ciphers(ciphers)
            try:
                with (
                    socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
                ):
                    cipher = tls.cipher()
                    return None if cipher is None else cipher[0]
            except ssl.SSLError:
                return None

        agreed = handshake(ssl.TLSVersion.TLSv1_2, "ALL:@SECLEVEL=0")  # the client offers all
        assert agreed is not None and ("GCM" in agreed or "CHACHA20" in agreed), agreed
        assert handshake(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA:AES256-SHA") is None
        assert handshake(ssl.TLSVersion.TLSv1_3) is not None

"""What a credit-risk Deployment manifest must get right, read from the YAML (no cluster).

The manifests are a kustomize base (deploy/kubernetes/base) and overlays that are kustomize
components (deploy/kubernetes/overlays/*), any of which combine. `render` builds a combination
with the real `kubectl kustomize`, as an operator's own kustomization listing them would.
`deployment_violations` returns one line per broken rule; tests run it over the Deployment of
every combination (none allowed) and over deliberately broken copies (each must be caught).
"""

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from bentoml._internal.container.generate import BENTO_UID_GID

from harness.process import PROJECT_ROOT
from service.settings import ServiceSettings

MANIFESTS = PROJECT_ROOT / "deploy" / "kubernetes"
BASE = MANIFESTS / "base"
OVERLAYS = MANIFESTS / "overlays"
BENTOML_PORT = 3000  # `bentoml serve` in the image listens here
ENV_PREFIX = "CREDIT_RISK_"
# Settings the manifests already set whose server side is on its way. Remove each name here
# once service/settings.py declares it.
PENDING_SETTINGS: dict[str, float | None] = {}
# Memory per pod: measured RSS of `bentoml serve` is ~0.33 GiB for the arbiter plus ~0.33 GiB per
# worker idle, 1.2 GiB in all for 2 workers at peak under 200,000-row bulk requests.
MEMORY_BASE_MIB = 512
MEMORY_PER_WORKER_MIB = 512
EXIT_MARGIN_S = 5  # on top of drain delay + request timeout, for the processes to exit

Manifest = dict[str, Any]


def overlay_names() -> tuple[str, ...]:
    return tuple(sorted(path.name for path in OVERLAYS.iterdir() if path.is_dir()))


def combinations() -> list[tuple[str, ...]]:
    """Every set of overlays, the empty one (the base alone) first."""
    names = overlay_names()
    return [c for size in range(len(names) + 1) for c in itertools.combinations(names, size)]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not installed (scripts/system-deps.sh)")
    return found


@cache
def rendered_text(overlays: tuple[str, ...] = ()) -> str:
    """`kubectl kustomize` of a kustomization that lists the base and these overlays."""
    with tempfile.TemporaryDirectory(prefix="credit-risk-kustomize-") as tmp:

        def relative(path: Path) -> str:
            return os.path.relpath(path, tmp)

        kustomization: dict[str, object] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [relative(BASE)],
            "components": [relative(OVERLAYS / name) for name in overlays],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        result = subprocess.run(
            [kubectl(), "kustomize", tmp], capture_output=True, text=True, timeout=60
        )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize with {overlays}: {result.stderr}")
    return result.stdout


def render(overlays: Sequence[str] = ()) -> list[Manifest]:
    """The manifests of the base with `overlays` applied (fresh objects on every call)."""
    return [doc for doc in yaml.safe_load_all(rendered_text(tuple(overlays))) if doc]


def deployment(overlays: Sequence[str] = ()) -> Manifest:
    (found,) = (doc for doc in render(overlays) if doc["kind"] == "Deployment")
    return found


def container(deployment: Manifest) -> Manifest:
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(server)


def env_of(deployment: Manifest) -> dict[str, str]:
    """The literal values (not those read from a Secret)."""
    return {
        e["name"]: str(e["value"]) for e in container(deployment).get("env", []) if "value" in e
    }


def _setting_default(name: str) -> Any:
    field = name.removeprefix(ENV_PREFIX).lower()
    if field in ServiceSettings.model_fields:
        return ServiceSettings.model_fields[field].default
    return PENDING_SETTINGS[name]


def _setting(env: Mapping[str, str], name: str) -> float:
    return float(env.get(name, _setting_default(name)))


def _mebibytes(quantity: str) -> float:
    units = {
        "Ki": 1 / 1024,
        "Mi": 1,
        "Gi": 1024,
        "K": 1e3 / 2**20,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
    }
    for unit in sorted(units, key=len, reverse=True):
        if quantity.endswith(unit):
            return float(quantity.removesuffix(unit)) * units[unit]
    return float(quantity) / 2**20


def _cores(quantity: str) -> float:
    return float(quantity.removesuffix("m")) / 1000 if quantity.endswith("m") else float(quantity)


def _probe_violations(server: Manifest, tls: bool) -> list[str]:
    found = []
    for probe, paths in (
        ("readinessProbe", {"/readyz"}),
        ("livenessProbe", {"/livez"}),
        ("startupProbe", {"/readyz", "/livez"}),
    ):
        spec = server.get(probe)
        if spec is None:
            if probe != "startupProbe":
                found.append(f"no {probe}")
            continue
        get = spec.get("httpGet", {})
        if get.get("path") not in paths:
            found.append(f"{probe} path {get.get('path')!r}, expected one of {sorted(paths)}")
        if (get.get("scheme", "HTTP") == "HTTPS") != tls:
            found.append(f"{probe} scheme {get.get('scheme', 'HTTP')} with TLS {tls}")
    return found


def _filesystem_violations(deployment: Manifest, env: Mapping[str, str]) -> list[str]:
    """A read-only root needs writable emptyDirs where BentoML writes: $BENTOML_HOME (its
    stores and prometheus_multiproc_dir) and /tmp (circus sockets)."""
    pod = deployment["spec"]["template"]["spec"]
    empty = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in container(deployment).get("volumeMounts", [])}
    found = []
    for path in (env.get("BENTOML_HOME", "/home/bentoml/"), "/tmp"):
        if mounts.get(path.rstrip("/")) not in empty:
            found.append(f"{path} is not an emptyDir mount under a read-only root")
    return found


def _secret_violations(deployment: Manifest, env: Mapping[str, str]) -> list[str]:
    """The API-key file lives in a mounted Secret (mounted whole: updates reach the pod)."""
    keys = env.get("CREDIT_RISK_API_KEYS_FILE")
    if keys is None:
        return ["CREDIT_RISK_API_KEYS_FILE not set: the API would answer anyone"]
    pod = deployment["spec"]["template"]["spec"]
    secrets = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
    for mount in container(deployment).get("volumeMounts", []):
        inside = keys.startswith(mount["mountPath"].rstrip("/") + "/")
        if inside and mount["name"] in secrets and "subPath" not in mount:
            return []
    return [f"{keys} is not in a Secret volume mounted without subPath"]


def deployment_violations(deployment: Manifest) -> list[str]:
    found: list[str] = []
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    server = container(deployment)
    env = env_of(deployment)

    strategy = spec.get("strategy", {})
    if strategy.get("type") != "RollingUpdate":
        found.append(f"strategy {strategy.get('type')!r}, expected RollingUpdate")
    if str(strategy.get("rollingUpdate", {}).get("maxUnavailable")) not in ("0", "0%"):
        found.append("maxUnavailable must be 0: a rollout must not lower capacity")

    tls = any(arg.startswith("--ssl-certfile") for arg in server.get("args", []))
    found += _probe_violations(server, tls)
    if {p.get("containerPort") for p in server.get("ports", [])} != {BENTOML_PORT}:
        found.append(f"container port is not {BENTOML_PORT}")

    needed = (
        _setting(env, "CREDIT_RISK_DRAIN_DELAY_S")
        + _setting(env, "CREDIT_RISK_REQUEST_TIMEOUT_S")
        + EXIT_MARGIN_S
    )
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < needed:
        found.append(f"terminationGracePeriodSeconds {grace} < drain + request timeout + margin")

    for name in env:
        if name.startswith(ENV_PREFIX) and (
            name.removeprefix(ENV_PREFIX).lower() not in ServiceSettings.model_fields
            and name not in PENDING_SETTINGS
        ):
            found.append(f"{name} is not a setting in service/settings.py")

    workers = int(_setting(env, "CREDIT_RISK_WORKERS"))
    resources = server.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    for kind, values in (("requests", requests), ("limits", limits)):
        if _cores(str(values.get("cpu", "0"))) != workers:
            found.append(f"cpu {kind} {values.get('cpu')} != {workers} workers (1 core each)")
        memory = _mebibytes(str(values.get("memory", "0")))
        if memory < MEMORY_BASE_MIB + MEMORY_PER_WORKER_MIB * workers:
            found.append(f"memory {kind} {values.get('memory')} too small for {workers} workers")
    if int(_setting(env, "CREDIT_RISK_BULK_THREADS")) == 0:
        found.append("CREDIT_RISK_BULK_THREADS=0 counts the node's cores, not the CPU limit")

    gpus = int(limits.get("nvidia.com/gpu", 0))
    if (env.get("CREDIT_RISK_DEVICE") == "cuda") != (gpus == 1):
        found.append(f"CREDIT_RISK_DEVICE={env.get('CREDIT_RISK_DEVICE')} with {gpus} GPUs")

    pod_security = pod.get("securityContext", {})
    security = server.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        found.append("runAsNonRoot is not true")
    if pod_security.get("runAsUser") != BENTO_UID_GID:
        found.append(f"runAsUser is not the image's bentoml user ({BENTO_UID_GID})")
    if security.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    if security.get("capabilities", {}).get("drop") != ["ALL"]:
        found.append("capabilities are not all dropped")
    if security.get("readOnlyRootFilesystem") is not True:
        found.append("readOnlyRootFilesystem is not true")
    else:
        found += _filesystem_violations(deployment, env)
    found += _secret_violations(deployment, env)
    return found


def bentofile_envs(name: str) -> dict[str, str]:
    bentofile = yaml.safe_load((PROJECT_ROOT / name).read_text())
    return {e["name"]: str(e["value"]) for e in bentofile.get("envs", [])}

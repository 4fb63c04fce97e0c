"""The bento serves the way deploy/kubernetes/base/deployment.yaml runs it: read-only root
filesystem, writable only where the manifest mounts emptyDirs, the manifest's environment.

No Docker daemon here, so the image is emulated: the bento as `bentoml export` writes it (models
included, as containerize copies it into the image) at the image's $BENTO_PATH, served by
`bentoml serve $BENTO_PATH` like the image's entrypoint, inside a private mount namespace
(`unshare -m`, root only) where / and /home are remounted read-only and a tmpfs stands at each of
the manifest's emptyDir mount paths. The image has a Python of its own: here the test's virtual
environment is mounted read-only at /home/bentoml/python, so the emulation works wherever the
project is cloned, also under /tmp or /home, which the container's own mounts cover (only the
interpreter it was made from must lie outside them). Not emulated: the image's non-root user;
the API-key Secret is mounted at /home/bentoml/keys because /etc/credit-risk does not exist on
this read-only root.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import bentoml
import httpx
import pytest

from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT, served
from service.schemas import APPLICANT_EXAMPLE
from tests.deploy.manifest_rules import container, deployment, env_of

pytestmark = pytest.mark.slow

BENTO_PATH = "/home/bentoml/bento"  # BentoML's image template (bentoml/_internal/container)
KEYS_DIR = "/home/bentoml/keys"
PYTHON_ENV = "/home/bentoml/python"  # the test's virtual environment, as the image's Python
API_KEY = "read-only-root-test-key"

# Runs as PID 1 of the emulated container: builds the mounts, then execs `bentoml serve`.
# The new /home is assembled in $HOME_STAGE and moved into place only after its bind mounts are
# made: the bento and the virtual environment may lie under /home or /tmp themselves, which the
# tmpfs mounts would otherwise hide before they were bound.
_CONTAINER = r"""
set -euo pipefail
port=$1
mount --make-rprivate /
mount -t tmpfs -o size=16m tmpfs "$HOME_STAGE"
staged() { printf '%s%s' "$HOME_STAGE" "${1#/home}"; }
mkdir -p "$(staged "$BENTO_PATH")" "$(staged "$KEYS_DIR")"
mount --bind -o ro "$BENTO_SOURCE" "$(staged "$BENTO_PATH")"
if [ -n "$PYTHON_ENV_SOURCE" ]; then
    mkdir -p "$(staged "$PYTHON_ENV")"
    mount --bind -o ro "$PYTHON_ENV_SOURCE" "$(staged "$PYTHON_ENV")"
fi
printf 'ci %s\n' "$API_KEY" > "$(staged "$KEYS_DIR")/api-keys"
mount --move "$HOME_STAGE" /home
for dir in $EMPTY_DIRS; do mkdir -p "$dir"; mount -t tmpfs -o size=64m tmpfs "$dir"; done
mount -o remount,ro /home
mount -o remount,bind,ro /
export BENTOML_HOME=$MANIFEST_BENTOML_HOME
cd "$BENTO_PATH"
exec "$PYTHON" -m bentoml serve "$BENTO_PATH" --host 127.0.0.1 --port "$port"
"""


def _bento(tmp_path: Path) -> tuple[Path, str]:
    """`bentoml build` + `bentoml export`, unpacked: the image's $BENTO_PATH, and its ONNX tag."""
    built = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", "--output", "tag"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    found = re.search(r"__tag__:(\S+)", built.stdout)
    assert found, built.stdout
    tag = found.group(1)
    archive = tmp_path / "bento.tar"
    exported = subprocess.run(
        [sys.executable, "-m", "bentoml", "export", tag, str(archive)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    root = tmp_path / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    (onnx,) = [str(m.tag) for m in bentoml.get(tag).info.models if m.tag.name == "credit_risk_onnx"]
    return root, onnx


def _python_environment() -> dict[str, str]:
    """The interpreter the container runs: this virtual environment's, mounted at PYTHON_ENV
    (outside a virtual environment, the interpreter itself, wherever it is)."""
    if sys.prefix == sys.base_prefix:
        return {"PYTHON": sys.executable, "PYTHON_ENV_SOURCE": ""}
    inside = Path(sys.executable).relative_to(sys.prefix)  # bin/python, unresolved: a venv's
    return {"PYTHON": f"{PYTHON_ENV}/{inside}", "PYTHON_ENV_SOURCE": sys.prefix}


def test_bento_serves_with_the_manifests_read_only_root(
    exported: ExportSummary, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to emulate a read-only root filesystem")
    manifest = deployment()  # the base, as kubectl kustomize renders it
    server_spec = container(manifest)
    assert server_spec["securityContext"]["readOnlyRootFilesystem"] is True
    pod_volumes = manifest["spec"]["template"]["spec"]["volumes"]
    empty = {v["name"] for v in pod_volumes if "emptyDir" in v}
    empty_dirs = [m["mountPath"] for m in server_spec["volumeMounts"] if m["name"] in empty]
    bento_source, packed_onnx = _bento(tmp_path)

    env = {
        **env_of(manifest),
        "CREDIT_RISK_WORKERS": "1",  # enough here; the manifest's resources are checked apart
        "CREDIT_RISK_API_KEYS_FILE": f"{KEYS_DIR}/api-keys",
        "MANIFEST_BENTOML_HOME": env_of(manifest)["BENTOML_HOME"],
        "BENTOML_CONTAINERIZED": "true",  # as the image sets it
        "BENTO_PATH": BENTO_PATH,
        "BENTO_SOURCE": str(bento_source),
        "KEYS_DIR": KEYS_DIR,
        "API_KEY": API_KEY,
        "EMPTY_DIRS": " ".join(empty_dirs),
        "PYTHON_ENV": PYTHON_ENV,
    }
    env.pop("BENTOML_HOME")  # served() sets its own; the container script sets the manifest's
    env.update(_python_environment())
    (tmp_path / "home-stage").mkdir()
    env["HOME_STAGE"] = str(tmp_path / "home-stage")
    command = ["unshare", "--mount", "bash", "-c", _CONTAINER, "container", "{port}"]
    log = tmp_path / "container.log"
    with served(env, log_path=log, command=command, cwd=tmp_path) as server:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        answer = httpx.post(
            f"{server.url}/classify", json=APPLICANT_EXAMPLE, headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == packed_onnx  # the model packed into the bento
        metrics = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)
        assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
        os.kill(server.process.pid, signal.SIGTERM)  # PID 1 of the emulated container
        assert server.process.wait(timeout=60) == 0, server.log()[-3000:]
    text = log.read_text(errors="replace")
    assert "Read-only file system" not in text, text[-3000:]
    print(f"\nread-only root: served {packed_onnx} from {BENTO_PATH}, writable only {empty_dirs}")

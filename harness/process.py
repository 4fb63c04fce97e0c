"""Runs `bentoml serve` as a child process on a free loopback port (tests and benchmarks)."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVICE = "service.app:CreditRiskService"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    timeout_s: float,
    path: str = "/readyz",
    context: ssl.SSLContext | None = None,
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urlopen(f"{url}{path}", timeout=2, context=context) as response:
                if response.status == 200:
                    return True
        except (URLError, OSError):
            pass
        time.sleep(0.05)  # a refused connection costs little; a ready server is used sooner
    return False


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20) -> int:
    """SIGTERM the whole process group (workers too), SIGKILL if it lingers."""
    (code,) = stop_all([process], timeout_s)
    return code


def stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float = 20) -> list[int]:
    """`stop` for several servers at once: every group is signalled before any is waited for,
    so they shut down together."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    return [process.returncode for process in processes]


@contextmanager
def own_bentoml_home(shared: Path) -> Iterator[Path]:
    """A BENTOML_HOME for one server that shares `shared`'s model store and bentos but not its
    metrics: BentoML 1.4 keeps Prometheus multiprocess files in $BENTOML_HOME/
    prometheus_multiproc_dir and empties that folder whenever a server starts, so a second server
    on the same home wipes the first one's /metrics (its workers go on writing to deleted files)
    and adds its own to them."""
    for store in ("models", "bentos"):  # linked even when empty: what the server saves lands here
        (shared / store).mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="credit-risk-served-home-"))
    try:
        for entry in shared.iterdir():
            if entry.name != "prometheus_multiproc_dir":
                (home / entry.name).symlink_to(entry.resolve())
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)  # removes the links, never what they point to


@contextmanager
def served(
    env: Mapping[str, str] | None = None,
    *,
    log_path: Path,
    service: str = DEFAULT_SERVICE,
    extra_args: tuple[str, ...] = (),
    ready_timeout_s: float = 120,
    ready_path: str = "/readyz",
    command: list[str] | None = None,
    cwd: Path = PROJECT_ROOT,
    tls_ca_file: Path | None = None,
) -> Iterator[ServedProcess]:
    """A ready server; raises RuntimeError with the server's log if it never gets ready.

    `tls_ca_file`: the server speaks HTTPS (`extra_args` give it `--ssl-certfile` and
    `--ssl-keyfile`) with a certificate this CA signed; its URL is https:// and readiness is
    checked over verified TLS.

    Unless `env` sets it, the server stops without a SIGTERM drain delay (tests start and stop
    dozens of servers; those that test draining set CREDIT_RISK_DRAIN_DELAY_S)."""
    env = {"CREDIT_RISK_DRAIN_DELAY_S": "0", **(env or {})}
    shared_home = env.get("BENTOML_HOME") or os.environ.get("BENTOML_HOME")
    with own_bentoml_home(Path(shared_home) if shared_home else Path.home() / "bentoml") as home:
        env["BENTOML_HOME"] = str(home)
        port = free_port()
        argv = command or [
            sys.executable, "-m", "bentoml", "serve", service,
            "--host", "127.0.0.1", "--port", str(port), *extra_args,
        ]  # fmt: skip
        argv = [part.replace("{port}", str(port)) for part in argv]
        env = {name: value.replace("{port}", str(port)) for name, value in env.items()}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, "BENTOML_DO_NOT_TRACK": "true", **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        scheme = "http" if tls_ca_file is None else "https"
        server = ServedProcess(process, port, log_path, scheme)
        context = None if tls_ca_file is None else ssl.create_default_context(cafile=tls_ca_file)
        try:
            if not wait_ready(server.url, process, ready_timeout_s, ready_path, context):
                code = process.poll()
                raise RuntimeError(
                    f"server on port {port} never became ready"
                    + (f" (exited with code {code})" if code is not None else "")
                    + f":\n{server.log()[-4000:]}"
                )
            yield server
        finally:
            stop(process)

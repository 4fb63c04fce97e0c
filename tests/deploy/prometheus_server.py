"""A real Prometheus (Debian's `prometheus` binary) for tests: a temporary config and storage,
listening on a free loopback port, scraping given targets every second."""

import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.process import free_port

JOB = "credit-risk"  # the scrape job's name: the `job` label of every scraped series
SCRAPE_INTERVAL = "1s"


@dataclass(frozen=True)
class Prometheus:
    url: str
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; raises on a query Prometheus refuses."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health and last error."""
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def binary() -> str | None:
    return shutil.which("prometheus")


@contextmanager
def running(
    workdir: Path, targets: Sequence[str], rule_files: Sequence[Path] = ()
) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (host:port, plain HTTP /metrics) as job `JOB`, with
    `rule_files` loaded and evaluated every second; ready when yielded, stopped after."""
    prometheus = binary()
    if prometheus is None:
        raise RuntimeError("prometheus is not installed (apt-get install prometheus)")
    config = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": list(targets)}]}],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log_path)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _wait_ready(
    server: Prometheus, process: subprocess.Popen[bytes], timeout_s: float = 30
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"prometheus never became ready:\n{server.log_path.read_text()[-3000:]}")

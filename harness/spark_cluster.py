"""A Spark standalone cluster on loopback, started from the installed pyspark (tests, benchmarks).

pip's pyspark has no start-master.sh / start-worker.sh, but it has `sbin/spark-daemon.sh`, which
starts any daemon class; SPARK_HOME is the pyspark package folder. Every place a daemon writes
(logs, pid files, the worker's per-application folders) is pointed into one folder of ours, not
into site-packages or /tmp, and SPARK_LOCAL_IP keeps every socket and web UI on 127.0.0.1.

    with standalone_cluster(tmp_path, cores=1, memory="1g") as cluster:
        ... --master cluster.master_url ...
"""

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pyspark

from harness.process import free_port

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
LOOPBACK = "127.0.0.1"
CALLER_ONLY = ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_HOME")
IDENT = "credit-risk"  # SPARK_IDENT_STRING: part of the daemons' log and pid file names


class ClusterError(RuntimeError):
    """A daemon did not start or did not register; the message ends with its log's tail."""


@dataclass(frozen=True)
class StandaloneCluster:
    master_port: int
    master_ui_port: int
    folder: Path  # logs/, pids/, work/ of this cluster

    @property
    def master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.master_port}"

    def state(self) -> dict[str, object]:
        """The master's JSON view: status, aliveworkers, cores, activeapps, completedapps..."""
        url = f"http://{LOOPBACK}:{self.master_ui_port}/json/"
        with urlopen(url, timeout=5) as answer:
            return dict(json.loads(answer.read()))

    def logs(self) -> str:
        """Every daemon log and executor stderr of this cluster, for a failure message."""
        parts = []
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and (path.suffix == ".out" or path.name == "stderr"):
                text = path.read_text(errors="replace")
                parts.append(f"== {path.relative_to(self.folder)}\n{text[-4000:]}")
        return "\n".join(parts)


def spark_home() -> Path:
    return Path(pyspark.__file__).resolve().parent


def daemon_env(folder: Path) -> dict[str, str]:
    conf = folder / "conf"  # empty: no spark-defaults.conf or spark-env.sh from elsewhere
    conf.mkdir(parents=True, exist_ok=True)
    # Executors inherit the worker's environment: none of the caller's Python settings.
    inherited = {k: v for k, v in os.environ.items() if k not in CALLER_ONLY}
    return {
        **inherited,
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(conf),
        "SPARK_LOG_DIR": str(folder / "logs"),
        "SPARK_PID_DIR": str(folder / "pids"),
        "SPARK_WORKER_DIR": str(folder / "work"),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_IDENT_STRING": IDENT,
    }


def _daemon(folder: Path, action: str, daemon_class: str, instance: int, *args: str) -> None:
    """spark-daemon.sh keys its pid file by class and instance number."""
    script = spark_home() / "sbin" / "spark-daemon.sh"
    result = subprocess.run(
        ["bash", str(script), action, daemon_class, str(instance), *args],
        env=daemon_env(folder),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0 or "failed to launch" in result.stdout:
        raise ClusterError(
            f"spark-daemon.sh {action} {daemon_class} {instance}: {result.stdout[-2000:]}"
        )


def _pids(folder: Path) -> dict[Path, int]:
    found = {}
    for path in (folder / "pids").glob("*.pid"):
        try:
            found[path] = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return found


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def stop_cluster(folder: Path, timeout_s: float = 30) -> None:
    """Stops the worker (and with it its executors), then the master; SIGKILL what lingers."""
    pids = _pids(folder)
    # Pid files are named spark-IDENT-CLASS-INSTANCE.pid; workers first, the master last.
    for path in sorted(pids, key=lambda p: MASTER_CLASS in p.name):
        daemon_class, _, instance = path.stem.rpartition("-")
        daemon_class = daemon_class.removeprefix(f"spark-{IDENT}-")
        with suppress(ClusterError, subprocess.TimeoutExpired, OSError, ValueError):
            _daemon(folder, "stop", daemon_class, int(instance))
    for pid in pids.values():
        if not _wait_gone(pid, timeout_s):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_registered(cluster: StandaloneCluster, workers: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            state = cluster.state()
            if state.get("status") == "ALIVE" and state.get("aliveworkers") == workers:
                return
            last = {k: state.get(k) for k in ("status", "aliveworkers")}
        except (URLError, OSError, ValueError) as error:
            last = error
        time.sleep(0.5)
    raise ClusterError(
        f"{workers} worker(s) not registered after {timeout_s:.0f} s ({last})\n{cluster.logs()}"
    )


@contextmanager
def standalone_cluster(
    folder: Path, *, workers: int = 1, cores: int = 1, memory: str = "1g", timeout_s: float = 120
) -> Iterator[StandaloneCluster]:
    """A master and `workers` workers on 127.0.0.1 (free ports), each worker with `cores` cores
    and `memory`; stopped on exit, also when starting or the body fails. Logs stay in
    `folder`."""
    if any(char.isspace() for char in str(folder)):
        # spark-daemon.sh redirects to its log path unquoted: a blank breaks every start.
        raise ClusterError(f"the cluster folder must have no blanks in its path: {folder!r}")
    cluster = StandaloneCluster(
        master_port=free_port(), master_ui_port=free_port(), folder=Path(folder)
    )
    try:
        _daemon(
            cluster.folder,
            "start",
            MASTER_CLASS,
            1,
            *("--host", LOOPBACK, "--port", str(cluster.master_port)),
            *("--webui-port", str(cluster.master_ui_port)),
        )
        for number in range(1, workers + 1):
            _daemon(
                cluster.folder,
                "start",
                WORKER_CLASS,
                number,
                *(cluster.master_url, "--host", LOOPBACK, "--port", str(free_port())),
                *("--webui-port", str(free_port()), "--cores", str(cores), "--memory", memory),
                *("--work-dir", str(cluster.folder / "work")),
            )
        _wait_registered(cluster, workers, timeout_s)
        yield cluster
    finally:
        stop_cluster(cluster.folder)

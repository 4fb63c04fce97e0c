"""What a benchmark ran on: CPU, cores, load, versions and the git commit."""

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.process import PROJECT_ROOT

PACKAGES = ("bentoml", "onnxruntime", "xgboost", "locust", "gunicorn", "flask")


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """Short HEAD, with `+dirty` when tracked files differ from it."""
    git = ["git", "-C", str(PROJECT_ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, object]:
    """The machine and software a run is measured on (load average: how busy it was before)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "packages": {package: _version(package) for package in PACKAGES},
        "commit": git_commit(),
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }

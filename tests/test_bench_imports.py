"""Every benchmark script still imports: they run by hand, outside the suite, so a rename in
service/ or runners/ would otherwise break them unnoticed (bench.capacity and bench.spark did).
In child interpreters: importing Locust's file monkey-patches the process (gevent)."""

import subprocess
import sys

import pytest

from harness.process import PROJECT_ROOT

MODULES = sorted(path.stem for path in (PROJECT_ROOT / "bench").glob("*.py"))
GEVENT = {"locustfile"}  # each alone: it patches the interpreter it is imported in

CHECK = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module("bench." + name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.fixture(scope="module")
def imports() -> dict[str, subprocess.Popen[str]]:
    """Both child interpreters started at once (each import is seconds of CPU; 2 cores)."""
    groups = {
        "plain": [name for name in MODULES if name not in GEVENT],
        "gevent": sorted(GEVENT),
    }
    return {
        group: subprocess.Popen(
            [sys.executable, "-c", CHECK, *names],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        for group, names in groups.items()
    }


def _imported(child: subprocess.Popen[str]) -> None:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, out + err[-2000:]


def test_the_scripts_are_found() -> None:
    assert {"front_door", "capacity", "spark", "report", "locustfile"} <= set(MODULES), MODULES


def test_every_benchmark_module_imports(imports: dict[str, subprocess.Popen[str]]) -> None:
    _imported(imports["plain"])


def test_the_locust_file_imports(imports: dict[str, subprocess.Popen[str]]) -> None:
    _imported(imports["gevent"])

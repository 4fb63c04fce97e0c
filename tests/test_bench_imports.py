"""Every benchmark script still imports: they run by hand, outside the suite, so a rename in
service/ or runners/ would otherwise break them unnoticed (bench.capacity and bench.spark did).
In child interpreters: importing Locust's file monkey-patches the process (gevent)."""

import subprocess
import sys

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


def _import(names: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *names],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_the_scripts_are_found() -> None:
    assert {"front_door", "capacity", "spark", "report", "locustfile"} <= set(MODULES), MODULES


def test_every_benchmark_module_imports() -> None:
    _import([name for name in MODULES if name not in GEVENT])


def test_the_locust_file_imports() -> None:
    _import(sorted(GEVENT))

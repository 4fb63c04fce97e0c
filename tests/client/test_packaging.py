"""The client installs alone: the wheel `pip install ./client` builds holds only the client and
the features package it shares with the server, ships py.typed and the `credit-risk` console
script, declares every third-party package it imports and none of the server's (bentoml,
xgboost, onnxruntime, pyspark...), and runs with those server packages made unimportable."""

import ast
import email.parser
import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import features
from harness.process import PROJECT_ROOT

SERVER_ONLY = {
    "bentoml", "xgboost", "onnxruntime", "onnx", "onnxmltools", "pyspark", "scikit-learn",
    "prometheus-client", "uvicorn", "shap", "threadpoolctl",
}  # fmt: skip
SERVER_MODULES = {"bentoml", "xgboost", "onnxruntime", "onnx", "onnxmltools", "pyspark", "sklearn",
                  "prometheus_client", "uvicorn", "service", "runners", "export", "jobs"}  # fmt: skip
_BLOCKED_RUN = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the client imported {name}")
        return None
sys.meta_path.insert(0, Blocked())
import client, client.cli
from client import CreditRiskClient, AsyncCreditRiskClient
assert client.__file__.startswith(sys.argv[1]), client.__file__
try:
    client.cli.main(["--help"])
except SystemExit as done:
    assert done.code == 0, done.code
print("imported:", sorted({m.split(".")[0] for m in sys.modules}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel ./client`, offline, from a copy of the two source folders (the build writes
    into the project folder)."""
    source = tmp_path_factory.mktemp("client source")
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for folder in ("client", "features"):
        shutil.copytree(PROJECT_ROOT / folder, source / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheels")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", str(source / "client"), "--wheel-dir", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("credit_risk_client-*.whl")
    return built


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def _requirements(wheel: Path) -> set[str]:
    return {
        canonicalize_name(Requirement(r).name)
        for r in _metadata(wheel).get_all("Requires-Dist") or []
    }


def test_the_wheel_holds_the_client_and_features_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith("entry_points.txt")
        )
    packages = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert packages == {"client", "features"}
    assert "client/py.typed" in names
    shipped = {n for n in names if n.endswith(".py")}
    on_disk = {
        f"{folder}/{path.name}"
        for folder in ("client", "features")
        for path in (PROJECT_ROOT / folder).glob("*.py")
    }
    assert shipped == on_disk
    assert "credit-risk = client.cli:main" in entry_points
    assert _metadata(wheel)["Version"] == features.__version__


def test_the_wheel_declares_what_it_imports_and_nothing_of_the_server(wheel: Path) -> None:
    declared = _requirements(wheel)
    assert not declared & SERVER_ONLY, declared & SERVER_ONLY
    imported: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                for node in ast.walk(ast.parse(archive.read(name))):
                    if isinstance(node, ast.Import):
                        imported |= {alias.name.split(".")[0] for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"client", "features"}
    assert third_party, imported
    distributions = importlib.metadata.packages_distributions()
    for module in third_party:
        owners = {canonicalize_name(d) for d in distributions.get(module, [module])}
        assert owners & declared, f"{module} is imported but {owners} is not a dependency"


def test_the_wheel_runs_without_the_servers_packages(wheel: Path, tmp_path: Path) -> None:
    """Unpacked on its own path with site-packages behind it (no editable install of the
    project), every server package unimportable: the client and its command line load."""
    unpacked = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    code = f"BLOCKED = {sorted(SERVER_MODULES)!r}\n{_BLOCKED_RUN}"
    path = f"{unpacked}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(unpacked)],
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout


def test_the_version_is_written_once() -> None:
    """Both distributions read it from features/__init__.py; the server reports it from there."""
    from service import __version__

    assert __version__ is features.__version__
    for pyproject in (PROJECT_ROOT / "pyproject.toml", PROJECT_ROOT / "client" / "pyproject.toml"):
        project = tomllib.loads(pyproject.read_text())
        assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
        assert project["tool"]["setuptools"]["dynamic"]["version"] == {
            "attr": "features.__version__"
        }

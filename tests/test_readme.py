"""The README's first command serves the model from a fresh clone with an empty model store."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from harness.process import PROJECT_ROOT, served
from service.schemas import APPLICANT_EXAMPLE

pytestmark = pytest.mark.slow  # starts real server processes


def readme_commands() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a bash block of the two commands"
    return [line.split("#")[0].strip() for line in block.group(1).strip().splitlines()]


def test_readme_opens_with_serve_and_test_commands() -> None:
    assert readme_commands() == ["make serve", "make test"]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_serve_command_works_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True, timeout=120
    )
    # The install step itself is what `.ci/run` (make test) proves on a clean machine; here the
    # clone's .venv is a link to the project's installed one (-o: don't remake its stamp), so the
    # test stays quick, and the Makefile sees its own relative paths wherever the project lies
    # (a path with a space would not survive make's word splitting as VENV=...).
    (clone / ".venv").symlink_to(PROJECT_ROOT / ".venv", target_is_directory=True)
    serve = readme_commands()[0].split()
    command = [*serve, "-o", ".venv/.installed-stamp", "HOST=127.0.0.1", "PORT={port}"]
    store = tmp_path / "empty-bentoml-home"
    env = {"BENTOML_HOME": str(store), "PATH": os.environ["PATH"]}
    with served(
        env, log_path=tmp_path / "make-serve.log", command=command, cwd=clone, ready_timeout_s=300
    ) as server:
        answer = httpx.post(f"{server.url}/classify", json=APPLICANT_EXAMPLE, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"].startswith("credit_risk_onnx:")
    assert any((store / "models" / "credit_risk_onnx").iterdir()), (
        "make serve did not export a model"
    )
    shutil.rmtree(clone, ignore_errors=True)

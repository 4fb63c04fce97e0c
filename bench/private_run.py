"""How a benchmark module runs: in a private model store (BentoML reads BENTOML_HOME at first
use) and a scratch folder for logs, kept only if the run fails; its results written as JSON."""

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_and_write(name: str, output: Path, run: Callable[[Path], dict[str, Any]]) -> None:
    home = tempfile.mkdtemp(prefix=f"credit-risk-bench-{name}-home-")
    os.environ["BENTOML_HOME"] = home
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    workdir = Path(tempfile.mkdtemp(prefix=f"credit-risk-bench-{name}-"))
    try:
        results = run(workdir)
    except BaseException:
        print(f"server and load-generator logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(workdir, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {output}")

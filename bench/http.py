"""HTTP benchmark: each server mode in turn on a free loopback port, Locust at fixed user counts.

    python -m bench.http            # full run (~8 min), then `python -m bench.report`
    python -m bench.http --quick    # users 1 and 64, 5 s each
    python -m bench.http --modes onnx-adaptive,flask-gunicorn

Server and load generator share this machine's cores, so compare ratios within one run.
"""

import argparse
import csv
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from features.encoder import FeatureEncoder
from features.schema import FIELDS
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner
from service.process import PROJECT_ROOT, served

RESULTS = Path(__file__).parent / "results"
LOCUSTFILE = Path(__file__).parent / "locustfile.py"
USERS = (1, 16, 64, 256)
BULK_SIZES = (1_000, 10_000, 100_000)


@dataclass(frozen=True)
class Mode:
    description: str
    env: dict[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()


def _bentoml(service: str) -> tuple[str, ...]:
    return (
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        service,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    )


GUNICORN = (
    sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:{port}",
    "--log-level", "warning", "bench.baselines.flask_app:app",
)  # fmt: skip

MODES: dict[str, Mode] = {
    "onnx-adaptive": Mode("ONNX Runtime + in-process adaptive batcher (default)"),
    "onnx-bentoml-batching": Mode(
        "ONNX Runtime behind BentoML's batchable API (bentoml.depends)", {"CREDIT_RISK_BATCHING": "bentoml"}
    ),
    "onnx-unbatched": Mode("ONNX Runtime, one call per request", {"CREDIT_RISK_BATCHING": "none"}),
    "xgboost-adaptive": Mode("native XGBoost + adaptive batcher", {"CREDIT_RISK_ENGINE": "xgboost"}),
    "xgboost-unbatched": Mode(
        "native XGBoost, one call per request", {"CREDIT_RISK_ENGINE": "xgboost", "CREDIT_RISK_BATCHING": "none"}
    ),
    "bentoml-user-baseline": Mode(
        "course service the BentoML 1.4 way (bentoml.xgboost, DictVectorizer, plain API)",
        command=_bentoml("bench.baselines.bentoml_user_service:CreditRiskBaseline"),
    ),
    "flask-gunicorn": Mode(
        "module-5 Flask + gunicorn, 2 workers, OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}, GUNICORN
    ),
}  # fmt: skip


def run_locust(
    url: str, user_class: str, users: int, seconds: int, workdir: Path
) -> dict[str, float]:
    """One bounded headless Locust run; returns the aggregated row of its CSV stats."""
    prefix = workdir / f"{user_class}-{users}"
    processes = ["--processes", "2"] if users >= 16 else []
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), user_class, "--headless",
        "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "--host", url,
        "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "5",
        *processes,
    ]  # fmt: skip
    subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, timeout=seconds + 60, check=False)
    with open(f"{prefix}_stats.csv") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return {
        "users": users,
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
    }


WRK_SCRIPT = """
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = (i % #bodies) + 1
  return wrk.format("POST", "/classify", {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def run_wrk(
    url: str, connections: int, seconds: int, workdir: Path, records: list[dict[str, object]]
) -> dict[str, float] | None:
    """The same single-request load from wrk (C, one thread): far less CPU than Locust, so it
    shows what the server does when the load generator is not the bottleneck. Skipped without wrk."""
    if shutil.which("wrk") is None:
        return None
    bodies, script = workdir / "bodies.jsonl", workdir / "post.lua"
    bodies.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    script.write_text(WRK_SCRIPT)
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"{url}/classify",
    ]
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        env={**os.environ, "BENCH_BODIES": str(bodies)},
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        return None
    result: dict[str, float] = {"connections": connections, "rps": float(rps.group(1))}
    for pct in ("50", "99"):
        found = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if found:
            value, unit = float(found.group(1)), found.group(2)
            result[f"p{pct}_ms"] = (
                value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
            )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def bulk_end_to_end(
    url: str, records: list[dict[str, object]], repeats: int
) -> list[dict[str, float]]:
    results = []
    with httpx.Client(timeout=120) as client:
        for rows in BULK_SIZES:
            body = orjson.dumps(
                {name: [records[i % len(records)][name] for i in range(rows)] for name in FIELDS}
            )
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                answer = client.post(
                    f"{url}/classify_bulk",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                timings.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text[:300]
            results.append(
                {
                    "rows": rows,
                    "seconds": statistics.median(timings),
                    "rows_per_s": rows / statistics.median(timings),
                }
            )
    return results


def bulk_in_process(
    onnx_tag: str, native_tag: str, records: list[dict[str, object]]
) -> list[dict[str, float]]:
    """The limit: the engines alone on already-encoded rows, one thread, best of 5."""
    onnx = OnnxRunner.load(onnx_tag, threads=1, device="cpu")
    native = XgboostRunner.load(native_tag, threads=1, device="cpu")
    encoder = FeatureEncoder(onnx.stored.feature_names)
    results = []
    for rows in BULK_SIZES:
        features = encoder.encode_rows([records[i % len(records)] for i in range(rows)])
        entry: dict[str, float] = {"rows": rows}
        for name, runner in (("onnx", onnx), ("xgboost", native)):
            best = min(_timed(runner.predict, features) for _ in range(5))
            entry[f"{name}_rows_per_s"] = rows / best
        results.append(entry)
    return results


def _timed(call: object, *args: object) -> float:
    started = time.perf_counter()
    call(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo")
    names = (
        [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        if cpuinfo.exists()
        else []
    )
    git = ["git", "-C", str(PROJECT_ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": names[0] if names else platform.processor(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "commit": commit + ("+dirty" if dirty else ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="users 1 and 64, 5 s runs, 2 bulk repeats"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES)
    )
    parser.add_argument("--seconds", type=int, default=10, help="Locust run time per user count")
    parser.add_argument("--output", type=Path, default=RESULTS / "http.json")
    args = parser.parse_args()
    users = (1, 64) if args.quick else USERS
    seconds = 5 if args.quick else args.seconds

    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="credit-risk-bench-http-")
    exported = run_export()
    records = applicant_records(load_applicants())
    workdir = Path(tempfile.mkdtemp(prefix="credit-risk-locust-"))
    results: dict[str, object] = {
        "machine": machine(),
        "users": list(users),
        "seconds": seconds,
        "modes": {},
        "bulk": {},
    }
    base_env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "BASELINE_MODEL_TAG": exported.native_tag,
    }
    for name in args.modes.split(","):
        mode = MODES[name]
        print(f"== {name}: {mode.description}", flush=True)
        with served(
            {**base_env, **mode.env},
            log_path=workdir / f"{name}.log",
            command=list(mode.command) or None,
        ) as server:
            runs = []
            for count in users:
                run = run_locust(server.url, "ClassifyUser", count, seconds, workdir)
                print(
                    f"   {count:>3} users: {run['rps']:8.0f} req/s  p50 {run['p50_ms']:.0f} ms  p99 {run['p99_ms']:.0f} ms  failures {run['failures']}",
                    flush=True,
                )
                runs.append(run)
            wrk = run_wrk(server.url, 64, seconds, workdir, records)
            if wrk:
                print(
                    f"   wrk, 64 connections: {wrk['rps']:8.0f} req/s  p99 {wrk.get('p99_ms', 0):.1f} ms",
                    flush=True,
                )
            results["modes"][name] = {"description": mode.description, "runs": runs, "wrk": wrk}  # type: ignore[index]
            if name == "onnx-adaptive":
                results["bulk"] = {
                    "end_to_end": bulk_end_to_end(server.url, records, 2 if args.quick else 5),
                    "in_process": bulk_in_process(exported.onnx_tag, exported.native_tag, records),
                }
                print(f"   bulk: {results['bulk']}", flush=True)
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

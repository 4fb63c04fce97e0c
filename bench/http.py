"""HTTP benchmark: each server mode in turn on a free loopback port, Locust at fixed user counts.

    python -m bench.http                  # full run: 7 modes x 1/16/64/256 users, 15 s each (~12 min)
    python -m bench.http --quick          # users 1 and 64, 5 s each (~3 min), to bench/results/quick/
    python -m bench.http --modes onnx-adaptive,flask-gunicorn --users 64
    python -m bench.report                # then: bench/REPORT.md and plots from the JSON

For every mode: start the server (`harness.process.served`), check its answers against in-process
ONNX Runtime, run Locust's ClassifyUser at each user count (plus wrk at 64 connections when
installed), stop the server. For the default server also bulk scoring: one request at a time at
1k/10k/100k rows, two concurrent BulkUsers at 10k rows, and the engines alone in-process.
Server and load generator share this machine's cores, so compare ratios within one run.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench import bulk
from bench.loadgen import LoadError, run_locust, run_wrk, wrk_available
from bench.machine import describe
from bench.modes import DEFAULT_MODES, OURS, Mode, select
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from features.encoder import FeatureEncoder
from harness.process import served
from runners.onnx_runner import OnnxRunner

RESULTS = Path(__file__).parent / "results"
USERS = (1, 16, 64, 256)
QUICK_USERS = (1, 64)
WRK_CONNECTIONS = 64
CONCURRENT_BULK_ROWS = 10_000
CONCURRENT_BULK_USERS = 2  # one per API worker
PROBABILITY_TOLERANCE = 1e-4  # ONNX vs native XGBoost differ by < 1e-5 (the export's parity check)

Records = Sequence[Mapping[str, object]]


def course_status(probability: float) -> str:
    """The course's decision rule (independent of the service's own code)."""
    return "DECLINED" if probability > 0.5 else "MAYBE" if probability > 0.3 else "APPROVED"


def check_answers(url: str, records: Records, expected: Sequence[float]) -> None:
    """The server answers like the course service: the right status and probability."""
    with httpx.Client(timeout=30) as client:
        for record, probability in zip(records, expected, strict=True):
            answer = client.post(f"{url}/classify", json=record)
            if answer.status_code != 200:
                raise RuntimeError(f"/classify: {answer.status_code} {answer.text[:300]}")
            body = answer.json()
            close = abs(body["probability"] - probability) <= PROBABILITY_TOLERANCE
            if not close or body["status"] != course_status(probability):
                raise RuntimeError(f"/classify answered {body}, expected p={probability:.6f}")


def server_info(url: str) -> dict[str, Any] | None:
    """Our service's GET /info (engine, batching, bulk routing); None for the baselines."""
    try:
        answer = httpx.get(f"{url}/info", timeout=10)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def measure_mode(
    mode: Mode, url: str, args: argparse.Namespace, workdir: Path, records: Records
) -> dict[str, Any]:
    """Locust at every user count (a failed run is recorded, not fatal), then wrk."""
    entry: dict[str, Any] = {
        "description": mode.description,
        "env": dict(mode.env),
        "info": server_info(url) if mode.ours else None,
        "runs": [],
        "wrk": None,
    }
    for users in args.users:
        try:
            run = asdict(
                run_locust(
                    url,
                    "ClassifyUser",
                    users,
                    args.seconds,
                    workdir,
                    processes=args.locust_processes,
                )
            )
        except LoadError as error:
            print(f"   {users:>3} users: FAILED {error}", flush=True)
            entry["runs"].append({"users": users, "error": str(error)[-1000:]})
            continue
        print(
            f"   {users:>3} users: {run['rps']:8,.0f} req/s  p50 {run['p50_ms']:.0f}  p95 {run['p95_ms']:.0f}"
            f"  p99 {run['p99_ms']:.0f} ms  failures {run['failures']}",
            flush=True,
        )
        entry["runs"].append(run)
    if args.wrk:
        try:
            entry["wrk"] = run_wrk(url, WRK_CONNECTIONS, args.seconds, workdir, records)
            print(
                f"   wrk, {WRK_CONNECTIONS} connections: {entry['wrk']['rps']:8,.0f} req/s"
                f"  p99 {entry['wrk'].get('p99_ms', float('nan')):.1f} ms",
                flush=True,
            )
        except LoadError as error:
            print(f"   wrk: FAILED {error}", flush=True)
    return entry


def measure_bulk(
    url: str, args: argparse.Namespace, workdir: Path, records: Records
) -> dict[str, Any]:
    """End-to-end bulk rows/s, one request at a time and two at once."""
    result: dict[str, Any] = {
        "end_to_end": bulk.end_to_end(url, records, repeats=2 if args.quick else 5),
        "concurrent": None,
    }
    for row in result["end_to_end"]:
        print(
            f"   bulk {row['format']:>5} {row['rows']:>7,} rows: "
            f"{row['rows_per_s']:12,.0f} rows/s end to end",
            flush=True,
        )
    try:
        run = run_locust(
            url, "BulkUser", CONCURRENT_BULK_USERS, args.seconds, workdir,
            processes=1, env={"BENCH_BULK_ROWS": str(CONCURRENT_BULK_ROWS)},
        )  # fmt: skip
    except LoadError as error:
        print(f"   bulk, {CONCURRENT_BULK_USERS} users: FAILED {error}", flush=True)
        return result
    result["concurrent"] = {
        **asdict(run),
        "rows": CONCURRENT_BULK_ROWS,
        "rows_per_s": run.rps * CONCURRENT_BULK_ROWS,
    }
    print(
        f"   bulk {CONCURRENT_BULK_ROWS:,} rows x {CONCURRENT_BULK_USERS} users: "
        f"{result['concurrent']['rows_per_s']:12,.0f} rows/s, failures {run.failures}",
        flush=True,
    )
    return result


def run_all(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Export a model into the (temporary) store, then measure every selected mode."""
    started = time.monotonic()
    exported = run_export()
    records = applicant_records(load_applicants())
    onnx = OnnxRunner.load(exported.onnx_tag, threads=1, device="cpu")
    probes = records[:5]
    expected = onnx.predict(FeatureEncoder(onnx.stored.feature_names).encode_rows(probes)).tolist()
    results: dict[str, Any] = {
        "machine": describe(),
        "quick": args.quick,
        "users": list(args.users),
        "seconds": args.seconds,
        "locust_processes": args.locust_processes,
        "modes": {},
        "bulk": {},
    }
    env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "BASELINE_MODEL_TAG": exported.native_tag}
    for mode in args.modes:
        print(f"== {mode.name}: {mode.description}", flush=True)
        try:
            with served(
                {**env, **mode.env},
                log_path=workdir / f"{mode.name}.log",
                command=list(mode.command) or None,
            ) as server:
                check_answers(server.url, probes, expected)
                results["modes"][mode.name] = measure_mode(mode, server.url, args, workdir, records)
                if mode.name == OURS and args.bulk:
                    results["bulk"] = measure_bulk(server.url, args, workdir, records)
        except (RuntimeError, httpx.HTTPError) as error:  # never ready, wrong answers, bulk error
            print(f"   FAILED: {error}", flush=True)
            entry = results["modes"].setdefault(
                mode.name, {"description": mode.description, "runs": []}
            )
            entry["error"] = str(error)[-2000:]
        write(results, args.output)
    if results["bulk"]:
        results["bulk"]["in_process"] = bulk.in_process(
            exported.onnx_tag, exported.native_tag, records
        )
        for row in results["bulk"]["in_process"]:
            print(
                f"   in-process {row['rows']:>7,} rows: ONNX Runtime {row['onnx_rows_per_s']:12,.0f}"
                f"  XGBoost {row['xgboost_rows_per_s']:12,.0f} rows/s",
                flush=True,
            )
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def failed(results: Mapping[str, Any]) -> bool:
    """Whether any mode or any of its runs recorded an error."""
    return any(
        "error" in data or any("error" in run for run in data["runs"])
        for data in results["modes"].values()
    )


def write(results: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="users 1 and 64, 5 s runs, output under results/quick/"
    )
    parser.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help="comma-separated modes (default: %(default)s)",
    )
    parser.add_argument(
        "--users", help="comma-separated Locust user counts (default 1,16,64,256; quick 1,64)"
    )
    parser.add_argument(
        "--seconds", type=int, help="Locust/wrk run time per point (default 15; quick 5)"
    )
    parser.add_argument(
        "--locust-processes", type=int, default=2, help="Locust processes from 16 users"
    )
    parser.add_argument(
        "--no-wrk", dest="wrk", action="store_false", help="skip the wrk cross-check"
    )
    parser.add_argument("--no-bulk", dest="bulk", action="store_false", help="skip bulk scoring")
    parser.add_argument("--output", type=Path, help="results JSON (default results/http.json)")
    args = parser.parse_args(argv)
    try:
        args.modes = select(args.modes)
    except ValueError as error:
        parser.error(str(error))
    if args.users:
        args.users = tuple(int(n) for n in args.users.split(","))
    else:
        args.users = QUICK_USERS if args.quick else USERS
    args.seconds = args.seconds or (5 if args.quick else 15)
    args.output = args.output or RESULTS / ("quick" if args.quick else "") / "http.json"
    args.wrk = args.wrk and wrk_available()
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # A private model store (BentoML reads BENTOML_HOME lazily, at the first store access).
    home = tempfile.mkdtemp(prefix="credit-risk-bench-http-")
    os.environ["BENTOML_HOME"] = home
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    workdir = Path(tempfile.mkdtemp(prefix="credit-risk-locust-"))
    try:
        results = run_all(args, workdir)
    except BaseException:
        print(f"server and load-generator logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if failed(results):
        print(f"some runs failed; server and load-generator logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    write(results, args.output)
    print(f"wrote {args.output} ({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()

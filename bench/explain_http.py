"""Explanations and decision monitoring over HTTP (issue 12), in one run:

1. /explain against /classify on the same server, wrk at 64 connections, one applicant per
   request, interleaved rounds: each round's /explain req/s over its /classify req/s, and the
   median of those (issue 27's target: >= 0.75; issue 12's: p99 <= 25 ms);
2. the cost of decision monitoring: /classify on the default server against one with
   CREDIT_RISK_MONITORING=false, same rounds (target: <= 5%);
3. bulk with and without reason codes: 100,000-row Arrow requests, `reasons=0` and `reasons=4`,
   one at a time, rows/s.

    python -m bench.explain_http            # ~2 min
    python -m bench.report                  # its section in bench/REPORT.md
"""

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa

from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from bench.private_run import run_and_write
from client.wire import ARROW_STREAM, request_body
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from features.schema import FIELDS
from harness.process import served

RESULTS = Path(__file__).parent / "results" / "explain_http.json"
CONNECTIONS = 64
BULK_ROWS = 100_000


def _wrk(url: str, path: str, bodies: list[bytes], seconds: int, workdir: Path) -> dict[str, float]:
    return run_wrk_bodies(url, path, bodies, CONNECTIONS, seconds, workdir, name=path.strip("/"))


def _bulk_rows_per_s(url: str, body: bytes, reasons: int, repeats: int) -> float:
    timings = []
    with httpx.Client(timeout=120) as client:
        for _ in range(repeats + 1):  # the first warms up
            started = time.perf_counter()
            answer = client.post(
                f"{url}/classify_bulk?reasons={reasons}",
                content=body,
                headers={"content-type": ARROW_STREAM, "accept": ARROW_STREAM},
            )
            timings.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"bulk: {answer.status_code} {answer.text[:300]}")
    return BULK_ROWS / statistics.median(timings[1:])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    exported = run_export()
    records = applicant_records(load_applicants())
    bodies = [orjson.dumps(record) for record in records]
    rows = [records[i % len(records)] for i in range(BULK_ROWS)]
    bulk_body = request_body(pa.table({name: [row[name] for row in rows] for name in FIELDS}))
    results: dict[str, Any] = {"machine": describe(), "seconds": args.seconds}
    results["command"] = " ".join(["python -m bench.explain_http", *args.argv])
    env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}
    with ExitStack() as stack:
        default = stack.enter_context(served(env, log_path=workdir / "default.log"))
        unmonitored = stack.enter_context(
            served({**env, "CREDIT_RISK_MONITORING": "false"}, log_path=workdir / "plain.log")
        )
        runs: dict[str, list[dict[str, float]]] = {"classify": [], "explain": [], "unmonitored": []}
        for number in range(args.rounds):
            order = [
                ("classify", default.url, "/classify"),
                ("explain", default.url, "/explain"),
                ("unmonitored", unmonitored.url, "/classify"),
            ]
            for name, url, path in order if number % 2 == 0 else order[::-1]:
                run_ = _wrk(url, path, bodies, args.seconds, workdir)
                runs[name].append(run_)
                print(f"   round {number + 1} {name:>12}: {run_['rps']:9,.0f} req/s  p99 "
                      f"{run_.get('p99_ms', float('nan')):.1f} ms  non-2xx {run_['non_2xx']:.0f}",
                      flush=True)  # fmt: skip
            print(f"   round {number + 1} /explain / /classify: "
                  f"{runs['explain'][-1]['rps'] / runs['classify'][-1]['rps']:.2f}", flush=True)  # fmt: skip
        results["http"] = {
            name: {
                "rounds": found,
                "rps": statistics.median(r["rps"] for r in found),
                "p99_ms": statistics.median(r.get("p99_ms", float("nan")) for r in found),
            }
            for name, found in runs.items()
        }
        # Each round's /explain over the same round's /classify (the machine's speed drifts
        # between rounds; within one round both ran back to back on the same server).
        per_round = [
            explain["rps"] / classify["rps"]
            for classify, explain in zip(runs["classify"], runs["explain"], strict=True)
        ]
        results["bulk"] = {
            f"reasons={n}": _bulk_rows_per_s(default.url, bulk_body, n, args.repeats)
            for n in (0, 4)
        }
        print(f"   bulk {BULK_ROWS:,} rows: {results['bulk']}", flush=True)
    http = results["http"]
    results["ratios"] = {
        "explain_vs_classify": statistics.median(per_round),  # median of the rounds' ratios
        "explain_vs_classify_rounds": per_round,
        "monitoring_cost": 1 - http["classify"]["rps"] / http["unmonitored"]["rps"],
        "bulk_reasons_vs_plain": results["bulk"]["reasons=4"] / results["bulk"]["reasons=0"],
    }
    print(f"   ratios: {results['ratios']}", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    run_and_write("explain", args.output, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    main()

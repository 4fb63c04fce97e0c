"""What decision records cost, and whether PostgreSQL keeps up (issue 25).

1. /classify, one applicant per request, wrk at 64 connections for `--seconds`: our server
   without a decision log and with the Parquet log, alternating for `--rounds` rounds, which
   goes first alternating too (the machine's speed drifts: compare each round's pair, and the
   median of the pairs). Each
   round also reads the server's CPU seconds (its processes, from /proc) per answered request,
   and how they split between the two workers: the kernel hands wrk's 64 connections to
   whichever worker accepts first, and a round where one worker got most of them batches
   differently, so its rate moves by tens of percent either way; CPU per request moves much
   less, and off/parquet of it is the capacity the log costs. After the rounds, the log is
   checked: one record per 2xx answer wrk counted (within the answers that raced the end of
   a run).
2. The same load on a server logging to PostgreSQL (a throwaway local cluster): the writer's
   lag and the spool, read on /metrics during the run, and the rows in the table after it.
   PostgreSQL keeps up when the lag stays below a couple of flush intervals and nothing is
   spooled.

   With `--control`, a second server without a log takes part in every round (an A/A pair):
   its ratio to the first is what the bench reads where nothing differs, the resolution of
   the parquet/off ratios of the same run.

    python -m bench.records [--seconds 4] [--rounds 8] [--control]   # bench/results/records.json
"""

import argparse
import contextlib
import os
import statistics
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg
import pyarrow.dataset as ds

from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from bench.private_run import run_and_write
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.process import ServedProcess, served
from tests.metrics_text import metric_total
from tests.records.postgres import PostgresCluster

RESULTS = Path(__file__).parent / "results" / "records.json"
CONNECTIONS = 64


def _cpu_s(server: ServedProcess) -> dict[int, float]:
    """User + system CPU seconds so far of each of the server's processes (arbiter, workers)."""
    seconds = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(server.process.pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                seconds[process.pid] = times.user + times.system
    return seconds


def _round(
    server: ServedProcess, bodies: list[bytes], seconds: int, workdir: Path, name: str
) -> dict[str, float]:
    before = _cpu_s(server)
    run = run_wrk_bodies(server.url, "/classify", bodies, CONNECTIONS, seconds, workdir, name=name)
    used = {pid: cpu - before.get(pid, 0.0) for pid, cpu in _cpu_s(server).items()}
    total = sum(used.values())
    answered = max(run["requests"] - run["non_2xx"], 1.0)
    run["cpu_us_per_request"] = round(total / answered * 1e6, 1)
    run["busiest_process_share"] = round(max(used.values(), default=0.0) / max(total, 1e-9), 3)
    run["load_average_1m"] = round(os.getloadavg()[0], 2)
    return run


def _watch_lag(server: ServedProcess, stop: threading.Event, seen: list[float]) -> None:
    while not stop.wait(0.5):
        try:
            text = httpx.get(f"{server.url}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        seen.append(metric_total(text, "credit_risk_decision_log_lag_seconds"))


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    exported = run_export()
    bodies = [orjson.dumps(r) for r in applicant_records(load_applicants())]
    base = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, "CREDIT_RISK_WORKERS": str(args.workers)}
    log = workdir / "decisions"
    results: dict[str, Any] = {
        "machine": describe(),
        "seconds": args.seconds,
        "workers": args.workers,
    }
    with ExitStack() as stack:
        plain = stack.enter_context(served(base, log_path=workdir / "plain.log"))
        files = stack.enter_context(
            served({**base, "CREDIT_RISK_DECISION_LOG": str(log)}, log_path=workdir / "files.log")
        )
        cases = [("off", plain), ("parquet", files)]
        if args.control:
            again = stack.enter_context(served(base, log_path=workdir / "again.log"))
            cases.append(("off again", again))
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name, _ in cases}
        for number in range(args.rounds):
            shift = number % len(cases)  # each round starts with another case: drift hits all
            for name, server in cases[shift:] + cases[:shift]:
                run = _round(server, bodies, args.seconds, workdir, name)
                rounds[name].append(run)
                print(f"   round {number + 1} {name:>8}: {run['rps']:9,.0f} req/s  "
                      f"p99 {run.get('p99_ms', float('nan')):.1f} ms  "
                      f"cpu {run['cpu_us_per_request']:.0f} us/req  "
                      f"busiest process {run['busiest_process_share']:.0%}  "
                      f"load {run['load_average_1m']:.1f}", flush=True)  # fmt: skip
        pairs = list(zip(rounds["off"], rounds["parquet"], strict=True))
        ratios = [p["rps"] / o["rps"] for o, p in pairs]
        cpu_ratios = [o["cpu_us_per_request"] / p["cpu_us_per_request"] for o, p in pairs]
    # Both servers stopped (SIGTERM: the drain writes every record): count them.
    answered = sum(r["requests"] - r["non_2xx"] for r in rounds["parquet"])
    recorded = ds.dataset(log, format="parquet").count_rows()
    if args.control:
        control = [
            a["rps"] / o["rps"] for o, a in zip(rounds["off"], rounds["off again"], strict=True)
        ]
        control_cpu = [
            o["cpu_us_per_request"] / a["cpu_us_per_request"]
            for o, a in zip(rounds["off"], rounds["off again"], strict=True)
        ]
        results["control"] = {
            "off_again_vs_off_per_round": control,
            "off_again_vs_off_median": statistics.median(control),
            "cpu_off_over_off_again_median": statistics.median(control_cpu),
        }
        print(f"   control, off again / off per round: {', '.join(f'{r:.3f}' for r in control)} "
              f"(median {statistics.median(control):.3f}); CPU per request: median "
              f"{statistics.median(control_cpu):.3f}", flush=True)  # fmt: skip
    results["classify_64"] = {
        "rounds": rounds,
        "parquet_vs_off_per_round": ratios,
        "parquet_vs_off_median": statistics.median(ratios),
        # CPU per request without the log / with it: the share of capacity the log leaves
        "cpu_off_over_parquet_per_round": cpu_ratios,
        "cpu_off_over_parquet_median": statistics.median(cpu_ratios),
        "answered_2xx": answered,
        "recorded": recorded,
    }
    print(f"   parquet / off per round: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(median {statistics.median(ratios):.3f}); CPU per request off / parquet: "
          f"{', '.join(f'{r:.3f}' for r in cpu_ratios)} (median {statistics.median(cpu_ratios):.3f}); "
          f"{recorded:,} records for {answered:,.0f} answers", flush=True)  # fmt: skip

    cluster = PostgresCluster.create()
    try:
        cluster.start()
        env = {**base, "CREDIT_RISK_DECISION_LOG": cluster.dsn,
               "CREDIT_RISK_DECISION_LOG_SPOOL_DIR": str(workdir / "spool")}  # fmt: skip
        lags: list[float] = []
        with served(env, log_path=workdir / "postgres.log") as server:
            stop = threading.Event()
            watcher = threading.Thread(target=_watch_lag, args=(server, stop, lags))
            watcher.start()
            run = _round(server, bodies, args.seconds, workdir, "postgres")
            stop.set()
            watcher.join()
            metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        with psycopg.connect(cluster.dsn) as connection:
            (rows,) = connection.execute(
                "SELECT count(*) FROM credit_risk_decisions"
            ).fetchone() or (0,)
    finally:
        cluster.destroy()
    results["postgres"] = {
        "run": run,
        "answered_2xx": run["requests"] - run["non_2xx"],
        "rows": rows,
        "max_lag_s": max(lags, default=0.0),
        "spooled": metric_total(metrics, "credit_risk_decision_records_spooled_total"),
        "dropped": metric_total(metrics, "credit_risk_decision_records_dropped_total"),
    }
    print(f"   postgres: {run['rps']:,.0f} req/s, {rows:,} rows for "
          f"{results['postgres']['answered_2xx']:,.0f} answers, writer lag max "
          f"{results['postgres']['max_lag_s']:.2f} s, spooled {results['postgres']['spooled']:.0f}",
          flush=True)  # fmt: skip
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=int, default=4, help="wrk run per server and round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--control", action="store_true", help="add a second server without a log (A/A)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="per server (1: no split of wrk's connections between workers, and a core for wrk)",
    )
    args = parser.parse_args(argv)
    run_and_write("records", args.output, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    main()

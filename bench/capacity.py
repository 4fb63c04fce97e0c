"""Capacity model for Kubernetes sizing: scoring per CPU core, and the cost of a balancer hop.

    python -m bench.capacity            # ~4 min; writes bench/results/capacity.json
    python -m bench.capacity --seconds 5 --output /tmp/capacity.json   # a quick look

In one run, on loopback, wrk (C, one thread) as the load generator:
1. /classify on one server with one worker at 1, 4, 16 and 64 connections: requests per second
   and latency percentiles, and the CPU seconds the server's processes used (psutil), so
   "per core" is requests per CPU-second of the server, not per machine core;
2. the balancer hop: one server with two workers against two one-worker replicas behind HAProxy
   (harness/haproxy.py), both at 64 connections, with the CPU of servers and HAProxy;
3. bulk: Arrow IPC bodies of 100,000 rows, one request at a time, to the one-worker server
   (CREDIT_RISK_BULK_THREADS=1): rows per second and per CPU-second.
Server, balancer and wrk share this machine's cores, so absolute figures are low and noisy;
compare ratios within one run. `python -m bench.report` adds the results to bench/REPORT.md.
"""

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.bulk import arrow_body
from bench.loadgen import run_wrk, wrk_available
from bench.machine import describe
from bench.private_run import run_and_write
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.haproxy import balanced
from harness.process import ServedProcess, served
from service.http.media import ARROW_STREAM

RESULTS = Path(__file__).parent / "results"
CONNECTIONS = (1, 4, 16, 64)
HOP_CONNECTIONS = 64
BULK_ROWS = 100_000
BULK_REPEATS = 5

Records = Sequence[Mapping[str, object]]


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes and all their descendants so far."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = process.cpu_times()
                    total += times.user + times.system
    return total


def measured(run: Callable[[], dict[str, float]], pids: Mapping[str, Sequence[int]]) -> dict:
    """`run()`'s result plus the CPU cores each group of processes used meanwhile."""
    before = {name: cpu_seconds(group) for name, group in pids.items()}
    started = time.monotonic()
    result: dict[str, Any] = dict(run())
    wall = time.monotonic() - started
    for name, group in pids.items():
        result[f"{name}_cores"] = (cpu_seconds(group) - before[name]) / wall
    return result


def wrk(url: str, connections: int, seconds: int, workdir: Path, records: Records) -> dict:
    result = run_wrk(url, connections, seconds, workdir, records)
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"wrk saw failures: {result}")
    return result


def per_core(run: Mapping[str, Any], rate_key: str, groups: Sequence[str]) -> float:
    cores = sum(run[f"{group}_cores"] for group in groups)
    return float(run[rate_key]) / cores if cores else 0.0


@contextmanager
def server(env: Mapping[str, str], workdir: Path, name: str) -> Iterator[ServedProcess]:
    with served(env, log_path=workdir / f"{name}.log") as process:
        yield process


def classify_sweep(url: str, pid: int, args: argparse.Namespace, records: Records) -> list:
    runs = []
    for connections in args.connections:
        run = measured(
            partial(wrk, url, connections, args.seconds, args.workdir, records), {"server": [pid]}
        )
        run["rps_per_core"] = per_core(run, "rps", ["server"])
        runs.append(run)
        print(
            f"   /classify 1 worker, {connections:>3} connections: {run['rps']:8,.0f} req/s, "
            f"p99 {run.get('p99_ms', 0):6.1f} ms, server {run['server_cores']:.2f} cores, "
            f"{run['rps_per_core']:8,.0f} req/s per core",
            flush=True,
        )
    return runs


def bulk_runs(url: str, pid: int, records: Records) -> dict:
    body = arrow_body(records, BULK_ROWS)
    headers = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
    with httpx.Client(timeout=120) as client:

        def one() -> dict[str, float]:
            started = time.perf_counter()
            answer = client.post(f"{url}/classify_bulk", content=body, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"bulk: {answer.status_code} {answer.text[:300]}")
            return {"seconds": time.perf_counter() - started}

        one()  # warm-up
        runs = [measured(one, {"server": [pid]}) for _ in range(BULK_REPEATS)]
    seconds = statistics.median(r["seconds"] for r in runs)
    cpu = statistics.median(r["server_cores"] * r["seconds"] for r in runs)
    result = {
        "rows": BULK_ROWS,
        "median_s": seconds,
        "rows_per_s": BULK_ROWS / seconds,
        "rows_per_cpu_s": BULK_ROWS / cpu,
        "server_cores": cpu / seconds,
    }
    print(
        f"   bulk Arrow {BULK_ROWS:,} rows: {result['rows_per_s']:,.0f} rows/s, "
        f"{result['rows_per_cpu_s']:,.0f} rows per CPU-second",
        flush=True,
    )
    return result


def hop(args: argparse.Namespace, env: Mapping[str, str], records: Records) -> dict:
    """Two workers in one server against two one-worker replicas behind HAProxy."""
    c, seconds, workdir = HOP_CONNECTIONS, args.seconds, args.workdir
    results: dict[str, Any] = {}
    with server({**env, "CREDIT_RISK_WORKERS": "2"}, workdir, "two-workers") as two:
        wrk(two.url, c, 2, workdir, records)  # warm-up
        run = measured(
            lambda: wrk(two.url, c, seconds, workdir, records), {"server": [two.process.pid]}
        )
        results["one_server_two_workers"] = run
    with (
        server(env, workdir, "replica-a") as a,
        server(env, workdir, "replica-b") as b,
        balanced([a.port, b.port], log_path=workdir / "haproxy.log", spare=0) as balancer,
    ):
        wrk(balancer.url, c, 2, workdir, records)
        run = measured(
            lambda: wrk(balancer.url, c, seconds, workdir, records),
            {"server": [a.process.pid, b.process.pid], "balancer": [balancer.process.pid]},
        )
        results["two_replicas_behind_haproxy"] = run
    for name, run in results.items():
        groups = ["server", "balancer"] if "balancer_cores" in run else ["server"]
        run["rps_per_core"] = per_core(run, "rps", groups)
        print(
            f"   {name}: {run['rps']:8,.0f} req/s, p50 {run.get('p50_ms', 0):.1f} ms, "
            f"p99 {run.get('p99_ms', 0):.1f} ms, cores: server {run['server_cores']:.2f}"
            + (f" + HAProxy {run['balancer_cores']:.2f}" if "balancer_cores" in run else "")
            + f"; {run['rps_per_core']:,.0f} req/s per core",
            flush=True,
        )
    return results


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {"machine": describe(), "seconds": args.seconds}
    exported = run_export()
    records = applicant_records(load_applicants())
    env = {
        "CREDIT_RISK_MODEL_TAG": exported.onnx_tag,
        "CREDIT_RISK_WORKERS": "1",
        "CREDIT_RISK_BULK_THREADS": "1",
    }
    with server(env, args.workdir, "one-worker") as one:
        wrk(one.url, 16, 2, args.workdir, records)  # warm-up
        results["classify_one_worker"] = classify_sweep(one.url, one.process.pid, args, records)
        results["bulk_one_worker"] = bulk_runs(one.url, one.process.pid, records)
    results["hop"] = hop(args, env, records)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk run time per point")
    parser.add_argument(
        "--connections",
        default=",".join(map(str, CONNECTIONS)),
        help="connection counts of the /classify sweep (default %(default)s)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "capacity.json")
    args = parser.parse_args(argv)
    args.connections = tuple(int(n) for n in args.connections.split(","))
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not wrk_available():
        sys.exit("bench.capacity needs wrk: apt-get install -y wrk")

    def run(workdir: Path) -> dict[str, Any]:
        args.workdir = workdir
        return run_all(args)

    run_and_write("capacity", args.output, run)


if __name__ == "__main__":
    main()

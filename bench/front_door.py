"""The front door's targets (issue 9), measured in one run on this machine:

1. Half the HTTP limit: one applicant per request, wrk at 64 connections, against the no-op
   ASGI app (the HTTP limit: uvicorn + uvloop + httptools, 2 workers), our server (`bentoml
   serve`, 2 workers, defaults) and MLServer 1.7.1 at its best setting; interleaved rounds, the
   median round reported, ratios within the run.
2. Overload: 2,048 connections on /classify for 15 s: wrk (2 threads, 5 s timeout) floods
   2,040 of them (socket errors, timeouts, every answer's latency) while our raw-socket client
   samples the other 8 (latency per status: admitted 200s apart from refusals); then one
   request on a new connection right after.

    python -m bench.front_door                   # ~4 min (MLServer's venv: minutes, once)
    python -m bench.front_door --no-mlserver --seconds 8 --rounds 2
    python -m bench.front_door --compare CREDIT_RISK_COALESCE_WRITES=false   # a setting's cost
    git worktree add --detach /tmp/before <commit>   # a change's cost: ours before and after it
    python -m bench.front_door --no-mlserver --no-overload --before /tmp/before --output /tmp/ba.json
    python -m bench.report                       # the section in bench/REPORT.md

Server and load generator share the machine's cores: compare ratios within one run.
"""

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.baselines import mlserver_setup
from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from bench.private_run import run_and_write
from export.dataset import applicant_records, load_applicants
from export.pipeline import ExportSummary, run_export
from features.encoder import FeatureEncoder
from harness.process import ServedProcess, served
from harness.rawhttp import post_request, run_load
from runners.model_store import get_stored_model

RESULTS = Path(__file__).parent / "results" / "front_door.json"
CONNECTIONS = 64
OVERLOAD_CONNECTIONS = 2048
OVERLOAD_SECONDS = 15
CLIENT_TIMEOUT_S = 5.0
PROBE_CONNECTIONS = 8
NOOP_COMMAND = [
    sys.executable, "-m", "uvicorn", "bench.baselines.noop_app:app", "--workers", "2",
    "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    "--host", "127.0.0.1", "--port", "{port}",
]  # fmt: skip


@dataclass(frozen=True)
class Target:
    """A server under test: how to post one applicant to it."""

    name: str
    description: str
    server: ServedProcess
    path: str
    bodies: list[bytes]


@contextmanager
def _targets(
    exported: ExportSummary,
    records: list[dict[str, Any]],
    workdir: Path,
    mlserver: bool,
    compare: Sequence[str] = (),
    before: Path | None = None,
) -> Iterator[list[Target]]:
    """The no-op app, our server, one more of ours per `compare` setting (NAME=VALUE), ours
    served from the checkout `before` (another commit), and MLServer."""
    applicants = [orjson.dumps(record) for record in records]
    with ExitStack() as stack:
        noop = stack.enter_context(served(log_path=workdir / "noop.log", command=NOOP_COMMAND))
        ours = stack.enter_context(
            served({"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}, log_path=workdir / "ours.log")
        )
        targets = [
            Target("noop-asgi", "raw ASGI app, fixed answer (the HTTP limit)", noop,
                   "/classify", applicants),
            Target("ours", "our server, defaults (bentoml serve, 2 workers)", ours,
                   "/classify", applicants),
        ]  # fmt: skip
        for setting in compare:
            name, _, value = setting.partition("=")
            env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag, name: value}
            log = workdir / f"ours-{name}.log"
            targets.append(
                Target(f"ours {setting}", f"our server, defaults but {setting}",
                       stack.enter_context(served(env, log_path=log)), "/classify", applicants)
            )  # fmt: skip
        if before is not None:
            env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}
            old = stack.enter_context(served(env, log_path=workdir / "before.log", cwd=before))
            targets.append(
                Target("ours before", f"our server from {before}", old, "/classify", applicants)
            )
        if mlserver:
            folder = mlserver_setup.write_repository(exported.native_tag, workdir / "mlserver")
            server = stack.enter_context(
                served(
                    {"MLSERVER_HTTP_PORT": "{port}"},
                    log_path=workdir / "mlserver.log",
                    command=mlserver_setup.command(folder),
                    ready_path=mlserver_setup.READY_PATH,
                )
            )
            encoder = FeatureEncoder(get_stored_model(exported.onnx_tag).feature_names)
            features = encoder.encode_rows(records)
            bodies = [orjson.dumps(mlserver_setup.infer_body(row.tolist())) for row in features]
            targets.append(
                Target("mlserver", "MLServer 1.7.1, XGBoost runtime, adaptive batching, "
                       "pre-encoded tensors (1 process)", server, mlserver_setup.INFER_PATH,
                       bodies)
            )  # fmt: skip
        yield targets


def _check(target: Target) -> None:
    answer = httpx.post(
        f"{target.server.url}{target.path}",
        content=target.bodies[0],
        headers={"content-type": "application/json"},
        timeout=30,
    )
    if answer.status_code != 200:
        raise RuntimeError(f"{target.name}: {answer.status_code} {answer.text[:300]}")


def limit_rounds(
    targets: list[Target], seconds: int, rounds: int, workdir: Path, wrk_threads: int = 1
) -> dict[str, Any]:
    """Every target at 64 connections from `wrk_threads` wrk threads, `rounds` times in turn;
    the median round per target."""
    runs: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
    for number in range(rounds):
        for target in targets:
            run = run_wrk_bodies(
                target.server.url, target.path, target.bodies, CONNECTIONS, seconds, workdir,
                threads=wrk_threads, name=target.name,
            )  # fmt: skip
            runs[target.name].append(run)
            print(f"   round {number + 1} {target.name:>10}: {run['rps']:9,.0f} req/s  "
                  f"p99 {run.get('p99_ms', float('nan')):.1f} ms  non-2xx {run['non_2xx']:.0f}",
                  flush=True)  # fmt: skip
    out: dict[str, Any] = {}
    for target in targets:
        median_rps = statistics.median(r["rps"] for r in runs[target.name])
        out[target.name] = {
            "description": target.description,
            "rounds": runs[target.name],
            "rps": median_rps,
            "p99_ms": statistics.median(r.get("p99_ms", float("nan")) for r in runs[target.name]),
        }
    noop = out["noop-asgi"]["rps"]
    for entry in out.values():
        entry["vs_noop"] = entry["rps"] / noop
    return out


def _is_decision(body: bytes) -> bool:
    return "probability" in orjson.loads(body)


def overload(server: ServedProcess, records: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """2,048 connections for 15 s: wrk floods 2,040 of them (its socket errors and timeouts,
    all answers' latency), while our raw-socket client on the other 8 samples what a client
    sees, per status (a flood of our Python client would measure its own event loop)."""
    flood = OVERLOAD_CONNECTIONS - PROBE_CONNECTIONS
    bodies = [orjson.dumps(r) for r in records]
    with ThreadPoolExecutor(2) as pool:

        def pool_accept_queue(port: int) -> Future[int]:
            return pool.submit(_accept_queue_midway, port)

        wrk_run = pool.submit(
            run_wrk_bodies, server.url, "/classify", bodies, flood, OVERLOAD_SECONDS, workdir,
            threads=2, timeout_s=CLIENT_TIMEOUT_S, name="overload",
        )  # fmt: skip
        # The sample's connections open with the flood's, so the sample measures admission
        # also for the no-op app, whose uvicorn accepts about one connection per loop turn
        # under the flood (its accept queue below); ours accepts all of them (accept.py).
        request = post_request("/classify", orjson.dumps(records[0]))
        backlog = pool_accept_queue(server.port)
        probe = run_load(
            server.port, request, PROBE_CONNECTIONS, OVERLOAD_SECONDS - 1.0, _is_decision,
            CLIENT_TIMEOUT_S,
        )  # fmt: skip
        wrk = wrk_run.result()
    not_accepted = backlog.result()
    after = _one_request_ms(server, records[1])
    drained_s = _accept_queue_drained(server.port)
    after_drained = _one_request_ms(server, records[2])
    refused = probe.statuses[503] + probe.statuses[429]
    sampled = sum(probe.statuses.values())
    result = {
        "connections": OVERLOAD_CONNECTIONS,
        "seconds": OVERLOAD_SECONDS,
        "probe": {
            "connections": PROBE_CONNECTIONS,
            "statuses": {str(k): v for k, v in probe.statuses.items()},
            "other_5xx": sum(v for k, v in probe.statuses.items() if k >= 500 and k != 503),
            "admitted_share": probe.statuses[200] / sampled if sampled else 0.0,
            "admitted_p50_ms": probe.p(200, 50) * 1000,
            "admitted_p99_ms": probe.p(200, 99) * 1000,
            "admitted_max_ms": max(probe.latencies.get(200, [0.0])) * 1000,
            "refused_p50_ms": probe.p(503, 50) * 1000,
            "refused_p99_ms": probe.p(503, 99) * 1000,
            "refused": refused,
            "retry_after": dict(probe.retry_after),
            "timeouts": probe.timeouts,
            "socket_errors": len(probe.failures) - probe.timeouts,
        },
        "wrk": wrk,
        "one_request_after_ms": after,
        "accept_queue_drained_s": drained_s,
        "one_request_after_drained_ms": after_drained,
        "accept_queue_midway": not_accepted,
    }
    sample = result["probe"]
    print(
        f"   overload, wrk flood: {wrk['rps']:,.0f} answers/s, non-2xx {wrk['non_2xx']:.0f}, "
        f"p50 {wrk.get('p50_ms', 0):.0f} ms, p99 {wrk.get('p99_ms', 0):.0f} ms (all answers), "
        f"socket errors {wrk['socket_errors']:.0f} (timeouts {wrk['timeouts']:.0f})",
        flush=True,
    )
    print(f"   overload, probe: admitted {sample['admitted_share']:.0%} (p50 "
          f"{sample['admitted_p50_ms']:.0f}, p99 {sample['admitted_p99_ms']:.0f} ms), refusal p99 "
          f"{sample['refused_p99_ms']:.0f} ms, timeouts {sample['timeouts']}, socket errors "
          f"{sample['socket_errors']}, other 5xx {sample['other_5xx']}; next request "
          f"{after:.1f} ms, {after_drained:.1f} ms once the accept queue drained "
          f"({drained_s:.2f} s)", flush=True)  # fmt: skip
    return result


def _accept_queue_midway(port: int) -> int:
    """Connections waiting in the listening socket's accept queue halfway through the flood:
    established by the kernel, not yet accepted by any worker (`ss`, Recv-Q of the listener)."""
    time.sleep(OVERLOAD_SECONDS / 2)
    return _accept_queue(port)


def _accept_queue(port: int) -> int:
    """Connections in the listening socket's accept queue now (`ss`, its Recv-Q; -1 unread)."""
    shown = subprocess.run(
        ["ss", "-tlnH", f"( sport = :{port} )"], capture_output=True, text=True, timeout=10
    ).stdout.split()
    return int(shown[1]) if len(shown) > 1 and shown[1].isdigit() else -1


def _accept_queue_drained(port: int, limit_s: float = 30.0) -> float:
    """Seconds until the accept queue is empty again after the flood."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if _accept_queue(port) == 0:
            break
        time.sleep(0.05)
    return time.monotonic() - started


def _one_request_ms(server: ServedProcess, record: dict[str, Any]) -> float:
    """One request on a new connection, right after a load run."""
    started = time.perf_counter()
    answer = httpx.post(f"{server.url}/classify", json=record, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"after the overload: {answer.status_code} {answer.text[:200]}")
    return elapsed


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    exported = run_export()
    records = applicant_records(load_applicants())
    results: dict[str, Any] = {
        "machine": describe(),
        "seconds": args.seconds,
        "wrk_threads": args.wrk_threads,
    }
    with _targets(exported, records, workdir, args.mlserver, args.compare, args.before) as targets:
        for target in targets:
            _check(target)
        print("== the HTTP limit, 64 connections", flush=True)
        results["limit"] = limit_rounds(
            targets, args.seconds, args.rounds, workdir, args.wrk_threads
        )
        results["overload"] = {}
        if args.overload:
            print(f"== overload, {OVERLOAD_CONNECTIONS} connections", flush=True)
        for target in (
            targets[:2] if args.overload else []
        ):  # ours and, for the same flood, the no-op app
            print(f"   -- {target.name}", flush=True)
            results["overload"][target.name] = overload(target.server, records, workdir)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.front_door", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=int, default=10, help="wrk run per target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=1,
        help="wrk threads for the 64-connection rounds (issue 27's own table used 2)",
    )
    parser.add_argument("--no-mlserver", dest="mlserver", action="store_false")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="NAME=VALUE",
        help="also our server with this setting changed (e.g. CREDIT_RISK_REUSE_PORT=false)",
    )  # fmt: skip
    parser.add_argument("--no-overload", dest="overload", action="store_false")
    parser.add_argument(
        "--before", type=Path, metavar="CHECKOUT",
        help="also our server served from this checkout (a worktree of another commit)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run_and_write("door", args.output, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    main()

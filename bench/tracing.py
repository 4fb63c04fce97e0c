"""What BentoML's tracing costs on /classify (issue 22): one server with tracing off, one with
BentoML's `tracing` configuration at sample rate 0.01 exporting OTLP/HTTP to a loopback sink,
alternating wrk rounds of one-applicant requests (no traceparent: the sampler decides), median
round per case.

    python -m bench.tracing                       # ~2 min
    python -m bench.tracing --seconds 5 --rounds 2

Server, sink and load generator share the machine's cores: compare within one run.
"""

import argparse
import json
import os
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import run_wrk_bodies
from bench.machine import describe
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.process import ServedProcess, served

RESULTS = Path(__file__).parent / "results" / "tracing.json"
CONNECTIONS = 64
SAMPLE_RATE = 0.01


class _Sink(BaseHTTPRequestHandler):
    """Takes OTLP/HTTP exports and answers 200 (the spans are not kept)."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        _Sink.received += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _sink() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _servers(model_tag: str, workdir: Path, sink_port: int) -> Iterator[dict[str, ServedProcess]]:
    config = workdir / "bentoml-tracing.yaml"
    config.write_text(
        "services:\n  credit_risk:\n    tracing:\n      exporter_type: otlp\n"
        f"      sample_rate: {SAMPLE_RATE}\n      otlp:\n        protocol: http\n"
        f"        endpoint: http://127.0.0.1:{sink_port}/v1/traces\n"
    )
    env = {"CREDIT_RISK_MODEL_TAG": model_tag}
    with ExitStack() as stack:
        yield {
            "off": stack.enter_context(served(env, log_path=workdir / "off.log")),
            f"sample rate {SAMPLE_RATE}": stack.enter_context(
                served({**env, "BENTOML_CONFIG": str(config)}, log_path=workdir / "on.log")
            ),
        }


def rounds(model_tag: str, seconds: int, count: int, workdir: Path) -> dict[str, Any]:
    bodies = [orjson.dumps(r) for r in applicant_records(load_applicants())[:500]]
    runs: dict[str, list[dict[str, float]]] = {}
    with _sink() as port, _servers(model_tag, workdir, port) as servers:
        for number in range(count):
            for name, server in servers.items():
                run = run_wrk_bodies(
                    server.url, "/classify", bodies, CONNECTIONS, seconds, workdir,
                    threads=2, name=name.replace(" ", "-"),
                )  # fmt: skip
                runs.setdefault(name, []).append(run)
                print(f"   round {number + 1} {name:>18}: {run['rps']:9,.0f} req/s  "
                      f"p99 {run.get('p99_ms', float('nan')):.1f} ms  "
                      f"non-2xx {run['non_2xx']:.0f}", flush=True)  # fmt: skip
    out: dict[str, Any] = {"exports_received": _Sink.received}
    for name, case_runs in runs.items():
        out[name] = {
            "rounds": case_runs,
            "rps": statistics.median(r["rps"] for r in case_runs),
            "p99_ms": statistics.median(r.get("p99_ms", float("nan")) for r in case_runs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    machine = describe()
    with tempfile.TemporaryDirectory(prefix="credit-risk-bench-tracing-") as tmp:
        workdir = Path(tmp)
        os.environ["BENTOML_HOME"] = str(workdir / "home")  # a model store of its own
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        summary = run_export()
        http = rounds(summary.onnx_tag, args.seconds, args.rounds, workdir)
    result = {"machine": machine, "load_average_at_end": os.getloadavg(),
              "connections": CONNECTIONS, "seconds": args.seconds, "http": http}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    off = http["off"]["rps"]
    for name, entry in http.items():
        if isinstance(entry, dict):
            print(f"{name:>18}: {entry['rps']:9,.0f} req/s ({entry['rps'] / off:.3f}x off)  "
                  f"p99 {entry['p99_ms']:.1f} ms")  # fmt: skip
    print(f"OTLP exports received: {http['exports_received']}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

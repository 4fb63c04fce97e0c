"""The in-process private touch-points' worth (issue 22), each as an A/B in one run: the public
way and ours, timed in alternating rounds, median per-call microseconds of each.

- ONNX Runtime: `InferenceSession.run` (public: re-checks names and options on every call)
  against the compiled session's `_sess.run` (runners/onnx_runner.py), one row and 64 rows.
- prometheus-client in multiprocess mode (as BentoML runs it: a lock, a pid check and an mmap
  write per call): a histogram's and a counter's public `observe`/`inc` per request, against
  service/metrics.py's buffered children (a list increment per request, one write per flush
  through the pinned version's `_buckets`/`_sum`), in a child interpreter with
  PROMETHEUS_MULTIPROC_DIR set before prometheus_client is imported.

The HTTP-level hooks have their own A/Bs: `python -m bench.front_door --compare
CREDIT_RISK_PRIVATE_HOOKS=off` (and the other settings in service/bentoml_fixes.py's
docstring), `python -m bench.tracing` (the door's tracer against BentoML's sampler).

    python -m bench.private_hooks                 # ~1 min
    python -m bench.private_hooks --rounds 3 --calls 2000
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from bench.private_run import run_and_write

RESULTS = Path(__file__).parent / "results" / "private_hooks.json"

# Run in a child interpreter: prometheus_client picks its value class at import.
_METRICS_CHILD = """
import json, sys, time
from prometheus_client import Counter, Histogram
from service.metrics import SECONDS_BUCKETS, BufferedCounter, BufferedHistogram
rounds, calls = int(sys.argv[1]), int(sys.argv[2])
histogram = Histogram("bench_seconds", "x", ["endpoint"], buckets=SECONDS_BUCKETS, registry=None)
counter = Counter("bench_requests", "x", ["endpoint"], registry=None)
public_h, public_c = histogram.labels("/a"), counter.labels("/a")
ours_h, ours_c = BufferedHistogram(histogram.labels("/b")), BufferedCounter(counter.labels("/b"))
values = [0.0003 * (i % 17) for i in range(calls)]

def public():
    for value in values:
        public_h.observe(value)
        public_c.inc()

def ours():
    for value in values:
        ours_h.observe(value)
        ours_c.count += 1
    ours_h.flush()
    ours_c.flush()

out = {"public": [], "ours": []}
for _ in range(rounds):
    for name, call in (("public", public), ("ours", ours)):
        start = time.perf_counter()
        call()
        out[name].append((time.perf_counter() - start) / calls * 1e6)
print(json.dumps(out))
"""


def _alternate(
    cases: dict[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, list[float]]:
    """Microseconds per call of each case, one entry per round, the cases alternating."""
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            timings[name].append((time.perf_counter() - start) / calls * 1e6)
    return timings


def _summary(timings: dict[str, list[float]]) -> dict[str, Any]:
    medians = {name: statistics.median(values) for name, values in timings.items()}
    return {
        "us_per_call": {name: [round(v, 3) for v in values] for name, values in timings.items()},
        "median_us": {name: round(value, 3) for name, value in medians.items()},
        "saved_us": round(medians["public"] - medians["ours"], 3),
    }


def _onnx(rounds: int, calls: int) -> dict[str, Any]:
    from export.dataset import applicant_records, load_applicants
    from export.pipeline import run_export
    from features.encoder import FeatureEncoder
    from runners.onnx_runner import OnnxRunner

    summary = run_export()
    runner = OnnxRunner.load(summary.onnx_tag, threads=1, device="cpu")
    encoder = FeatureEncoder(runner.stored.feature_names)
    records = applicant_records(load_applicants())
    session = runner.session
    name = session.get_inputs()[0].name
    outputs = [session.get_outputs()[1].name]
    results = {}
    for rows in (1, 64):
        features = encoder.encode_rows([records[i % len(records)] for i in range(rows)])
        public = session.run(outputs, {name: features})[0]
        ours = runner.predict(features)
        assert np.array_equal(public[:, 1], ours)  # the same answer both ways

        def public_way(f: np.ndarray = features) -> object:
            return np.ascontiguousarray(session.run(outputs, {name: f})[0][:, 1])

        def our_way(f: np.ndarray = features) -> object:
            return runner.predict(f)

        timings = _alternate({"public": public_way, "ours": our_way}, rounds, calls)
        results[f"{rows}_rows"] = _summary(timings)
    return results


def _metrics(rounds: int, calls: int, workdir: Path) -> dict[str, Any]:
    folder = workdir / "prometheus"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", _METRICS_CHILD, str(rounds), str(calls)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    )
    return _summary(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    def run(workdir: Path) -> dict[str, Any]:
        loadavg = os.getloadavg()
        results = {
            "machine": describe(),
            "load_average_at_start": [round(v, 2) for v in loadavg],
            "rounds": args.rounds,
            "calls_per_round": args.calls,
            "onnxruntime_sess_run": _onnx(args.rounds, args.calls),
            "prometheus_buffered_per_request": _metrics(args.rounds, args.calls, workdir),
        }
        print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=2))
        return results

    run_and_write("private-hooks", args.output, run)


if __name__ == "__main__":
    main()

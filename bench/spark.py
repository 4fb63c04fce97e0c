"""The Spark scoring job against Spark's own cost, the engines alone and the HTTP bulk path.

    python -m bench.spark [--sizes 2000000,10000000] [--repeats 2]
    python -m bench.spark --cluster-vs-local 300000   # only the cluster row (kept beside)
    python -m bench.report        # adds the section and plot to bench/REPORT.md

Per size, in one run: JVM start-up on its own; the no-op pass (bench.spark_noop) and the job
(`python -m jobs.score`) cold, each in a fresh process (JVM start-up included: what an
operator waits for), and warm, both on one already started session whose Python workers have
run once; the engines alone in-process (encoded rows through ChunkedPredictor, one thread);
and the HTTP path (a real server, 2 workers, Arrow bodies of 100,000 rows, two requests in
flight). The cold and warm pairs run in ABBA order (no-op, job, job, no-op) so that a machine
getting busier or quieter during the run weighs on both alike; ratios use the means.
Results: bench/results/spark.json.

`--cluster-vs-local ROWS` measures only this, and keeps the other results of the file: the same
input (one Parquet file of one row group) scored on local[2] and on a standalone cluster on
loopback (harness.spark_cluster: a master and one worker of 2 cores), one warm session each,
each pass both spread over the cores (the job's default) and read as laid out
(`--keep-layout`), in ABBA order.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from bench.machine import describe
from bench.spark_data import make_lake
from bench.spark_noop import noop_pass
from features.columns import category_codes, from_arrow
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS
from features.validation import find_invalid_rows
from harness.process import PROJECT_ROOT, served
from harness.spark_cluster import standalone_cluster
from jobs.engine import ModelBundle
from jobs.scoring import BatchScorer
from service.arrow_io import table_as_ipc
from service.http.media import ARROW_STREAM

RESULTS = Path(__file__).parent / "results" / "spark.json"
HTTP_REQUEST_ROWS = 100_000
HTTP_IN_FLIGHT = 2  # one request per server worker
GOAL_RATIO = 1.25


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _last_json(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    return dict(json.loads(lines[-1]))


def _process(args: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of a fresh `python -m ...` process, and its JSON summary line."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {result.stderr[-2000:]}")
    return seconds, _last_json(result.stdout)


def job_args(lake: Path, work: Path, tag: str) -> list[str]:
    return [
        "--input", str(lake), "--output", str(work / "job-out"),
        "--rejects", str(work / "job-rejects"), "--model", tag, "--overwrite",
    ]  # fmt: skip


def cold(lake: Path, work: Path, tag: str, repeats: int) -> dict[str, Any]:
    """Fresh processes, ABBA order: each run pays Python, JVM start-up and the pass."""
    out: dict[str, list[float]] = {"noop_s": [], "job_s": [], "noop_spark_start_s": []}
    out |= {"job_spark_start_s": []}
    summaries = []
    for kind in ["noop", "job", "job", "noop"] * (repeats // 2) or ["noop", "job"]:
        if kind == "noop":
            seconds, report = _process(
                ["bench.spark_noop", "--input", str(lake), "--output", str(work / "noop-out")]
            )
            out["noop_spark_start_s"].append(report["spark_start_s"])
        else:
            seconds, report = _process(["jobs.score", *job_args(lake, work, tag)])
            out["job_spark_start_s"].append(report["spark_start_s"])
            summaries.append(report)
        out[f"{kind}_s"].append(round(seconds, 3))
        print(f"   cold {kind}: {seconds:.1f} s", flush=True)
    return {**out, "job_summary": summaries[-1]}


def warm(spark: Any, lake: Path, work: Path, tag: str, repeats: int) -> dict[str, Any]:
    """One started session whose Python workers already ran both passes once."""
    from jobs.score import parse_args, run

    out: dict[str, Any] = {"noop_s": [], "job_s": []}
    for kind in ["noop", "job", "job", "noop"] * (repeats // 2) or ["noop", "job"]:
        if kind == "noop":
            seconds = noop_pass(spark, str(lake), str(work / "noop-out"))
        else:
            seconds, summary = _timed(lambda: run(parse_args(job_args(lake, work, tag)), spark))
            out["job_summary"] = summary
        out[f"{kind}_s"].append(round(seconds, 3))
        print(f"   warm {kind}: {seconds:.1f} s", flush=True)
    return out


def _valid_columns(lake: Path, rows: int) -> pa.Table:
    """The first `rows` applicants of the lake that pass validation, the 13 form fields only."""
    table = pads.dataset(lake).head(rows, columns=list(FIELDS)).combine_chunks()
    batch = table.to_batches()[0]
    invalid = find_invalid_rows(from_arrow(batch))
    return table.filter(pa.array(~invalid.mask))


def engine_alone(lake: Path, rows: int, tag: str) -> dict[str, Any]:
    """Encoded rows through the job's predictor (ONNX < 256 rows, XGBoost from 256), one
    thread: the limit one core can score at, without Spark."""
    scorer = BatchScorer.from_bundle(ModelBundle.read(tag))
    table = _valid_columns(lake, rows)
    batch = table.combine_chunks().to_batches()[0]
    encode_s, features = _timed(
        lambda: scorer.encoder.encode_columns(
            {
                **{n: np.asarray(batch.column(n), dtype=np.float64) for n in NUMERIC_FIELDS},
                **{n: category_codes(n, batch.column(n)) for n in CATEGORICAL_FIELDS},
            }
        )
    )
    predict_s, _ = _timed(lambda: scorer.predictor.predict(features))
    return {
        "rows": len(features),
        "encode_s": round(encode_s, 3),
        "predict_s": round(predict_s, 3),
        "predict_rows_per_s": round(len(features) / predict_s),
    }


def http_bulk(lake: Path, rows: int, tag: str, work: Path) -> dict[str, Any]:
    """A real server, Arrow bodies of HTTP_REQUEST_ROWS, HTTP_IN_FLIGHT at a time; the wall
    time to get every decision back (bodies serialised beforehand)."""
    table = _valid_columns(lake, rows)
    bodies = [
        table_as_ipc(table.slice(start, HTTP_REQUEST_ROWS))
        for start in range(0, table.num_rows, HTTP_REQUEST_ROWS)
    ]
    headers = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
    env = {"CREDIT_RISK_MODEL_TAG": tag, "CREDIT_RISK_WORKERS": "2"}
    with served(env, log_path=work / "serve.log") as server, httpx.Client(timeout=300) as client:

        def post(body: bytes) -> int:
            answer = client.post(f"{server.url}/classify_bulk", content=body, headers=headers)
            answer.raise_for_status()
            return int(pa.ipc.open_stream(answer.content).read_all().num_rows)

        post(bodies[0])  # warm-up: first request of each worker builds its caches
        with ThreadPoolExecutor(HTTP_IN_FLIGHT) as pool:
            seconds, answered = _timed(lambda: sum(pool.map(post, bodies)))
    if answered != table.num_rows:
        raise RuntimeError(f"HTTP bulk answered {answered} of {table.num_rows} rows")
    return {
        "rows": table.num_rows,
        "requests": len(bodies),
        "seconds": round(seconds, 3),
        "rows_per_s": round(table.num_rows / seconds),
    }


def _passes(spark: Any, master: str, lake: Path, work: Path, tag: str) -> dict[str, Any]:
    """One warm session: spread and laid-out passes in ABBA order, after a warm-up pass."""
    from jobs.score import parse_args, run

    def one(kind: str) -> tuple[float, dict[str, Any]]:
        args = [*job_args(lake, work, tag), "--master", master]
        return _timed(lambda: run(parse_args([*args, *(["--keep-layout"] * (kind == "kept"))]),
                                  spark))  # fmt: skip

    one("spread")  # warm-up: Python workers import the project and build the engines
    out: dict[str, Any] = {"spread_s": [], "kept_s": []}
    for kind in ("spread", "kept", "kept", "spread"):
        seconds, summary = one(kind)
        out[f"{kind}_s"].append(round(seconds, 3))
        out[f"{kind}_summary"] = {
            k: summary[k] for k in ("rows_in", "rejected", "partitions", "tasks", "spread_to")
        }
        print(f"   {master} {kind}: {seconds:.1f} s, {summary['tasks']} task(s)", flush=True)
    out["spread_over_kept"] = round(
        statistics.mean(out["spread_s"]) / statistics.mean(out["kept_s"]), 3
    )
    return out


def cluster_vs_local(rows: int, data_dir: Path, tag: str) -> dict[str, Any]:
    """The same one-row-group file on local[2] and on a loopback standalone cluster of one
    2-core worker; session start-up and warm passes for each."""
    from jobs.session import start_session

    lake = make_lake(data_dir / f"lake-{rows}", rows)  # up to ROWS_PER_FILE: one row group
    work = Path(tempfile.mkdtemp(prefix="spark-cluster-bench-", dir=data_dir))
    result: dict[str, Any] = {"rows": rows, "input": "one Parquet file of one row group"}
    try:
        start_s, spark = _timed(lambda: start_session("local[2]"))
        try:
            result["local"] = {"master": "local[2]", "session_start_s": round(start_s, 3)}
            result["local"] |= _passes(spark, "local[2]", lake, work, tag)
        finally:
            spark.stop()
        with standalone_cluster(work / "cluster", cores=2, memory="2g") as cluster:
            start_s, spark = _timed(lambda: start_session(cluster.master_url))
            try:
                result["cluster"] = {
                    "master": "standalone, 1 worker, 2 cores, 2g (loopback)",
                    "session_start_s": round(start_s, 3),
                }
                result["cluster"] |= _passes(spark, cluster.master_url, lake, work, tag)
            finally:
                spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["cluster_over_local"] = round(
        statistics.mean(result["cluster"]["spread_s"])
        / statistics.mean(result["local"]["spread_s"]),
        3,
    )
    return result


def _model_tag() -> str:
    from export.pipeline import run_export
    from export.store import has_onnx_model
    from runners.model_store import get_stored_model

    if not has_onnx_model():
        run_export()
    return get_stored_model("credit_risk_onnx:latest").tag


def measure(size: int, args: argparse.Namespace, spark: Any, tag: str) -> dict[str, Any]:
    lake = make_lake(args.data_dir / f"lake-{size}", size)
    work = Path(tempfile.mkdtemp(prefix=f"spark-bench-{size}-", dir=args.data_dir))
    try:
        result: dict[str, Any] = {"rows": size}
        if size <= args.cold_max_rows:
            print(f"{size:,} rows, cold", flush=True)
            result["cold"] = cold(lake, work, tag, args.repeats)
        print(f"{size:,} rows, warm", flush=True)
        result["warm"] = warm(spark, lake, work, tag, args.repeats)
        result["engine"] = engine_alone(lake, min(size, args.engine_rows), tag)
        print(f"   engine alone: {result['engine']}", flush=True)
        if not args.skip_http:
            result["http"] = http_bulk(lake, min(size, args.http_rows), tag, work)
            print(f"   HTTP bulk: {result['http']}", flush=True)
        for phase in ("cold", "warm"):
            if phase in result:
                ratio = statistics.mean(result[phase]["job_s"]) / statistics.mean(
                    result[phase]["noop_s"]
                )
                result[phase]["ratio"] = round(ratio, 3)
                print(f"   {phase} job / no-op: {ratio:.2f}", flush=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.spark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="2000000,10000000")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind (even: ABBA)")
    parser.add_argument(
        "--cold-max-rows", type=int, default=2_000_000, help="cold runs only up to this size"
    )
    parser.add_argument("--engine-rows", type=int, default=2_000_000)
    parser.add_argument("--http-rows", type=int, default=2_000_000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "credit-risk-spark-bench",
        help="where the generated lakes are kept between runs",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--cluster-vs-local",
        type=int,
        default=0,
        metavar="ROWS",
        help="measure only local[2] vs a loopback standalone cluster on ROWS rows",
    )
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    started = time.perf_counter()
    machine = describe()
    tag = _model_tag()
    if args.cluster_vs_local:
        kept = json.loads(args.out.read_text()) if args.out.exists() else {}
        kept["cluster_vs_local"] = {
            "machine": machine,
            "command": "python -m bench.spark " + " ".join(argv or sys.argv[1:]),
            "model": tag,
            **cluster_vs_local(args.cluster_vs_local, args.data_dir, tag),
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(kept, indent=2) + "\n")
        print(f"wrote {args.out}")
        return

    from jobs.session import start_session

    jvm_start_s, spark = _timed(lambda: start_session("local[*]"))
    print(f"JVM + session start-up: {jvm_start_s:.1f} s", flush=True)
    try:
        warmup = make_lake(args.data_dir / "lake-warmup", 20_000)
        warm(spark, warmup, Path(tempfile.mkdtemp(dir=args.data_dir)), tag, 2)
        sizes = {
            str(size): measure(size, args, spark, tag) for size in map(int, args.sizes.split(","))
        }
    finally:
        spark.stop()
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = {
        **(
            {"cluster_vs_local": previous["cluster_vs_local"]}
            if "cluster_vs_local" in previous
            else {}
        ),
        "machine": machine,
        "command": "python -m bench.spark " + " ".join(argv or sys.argv[1:]),
        "model": tag,
        "jvm_start_s": round(jvm_start_s, 3),
        "goal_ratio": GOAL_RATIO,
        "sizes": sizes,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

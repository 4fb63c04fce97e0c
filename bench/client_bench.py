"""The Python client's `score_table` on 1M rows against the single-request bulk figure.

    python -m bench.client_bench            # ~3-5 min: bench/results/client.json
    python -m bench.report                  # then: its table in bench/REPORT.md
    python -m bench.client_bench --rows 200000 --rounds 1 --output /tmp/client.json  # a check

Starts the default server (`onnx-adaptive`: 2 workers, each scoring one bulk request at a time)
on a free loopback port, with a fresh export in a private model store, and measures in
`--rounds` interleaved rounds, all against that one server:
- single: one pre-serialised 100,000-row Arrow request at a time on a kept-alive connection
  (`bench.bulk.end_to_end`, median of 5), the figure of the bulk table in the report;
- `CreditRiskClient.score_table` on a 1M-row Arrow table with an application id column to carry,
  for each chunk size x concurrency of the grid (the client's defaults among them): wall time
  from the call to the aligned result, so building bodies and reading answers count;
- the same rows from a Parquet file (read incrementally), client defaults;
- the CLI, Parquet to Parquet (`python -m client score`): the rows/s of its own JSON summary
  (reading, scoring and writing; not the interpreter's start).
Every result is checked: every row, in input order (its id), a probability for each.
Server and client share this machine's cores: compare ratios within one run.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench import bulk
from bench.machine import describe
from bench.private_run import run_and_write
from client import CreditRiskClient, TableInput
from client.protocol import DEFAULT_CHUNK_ROWS, DEFAULT_CONCURRENCY
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from harness.process import PROJECT_ROOT, served

RESULTS = Path(__file__).parent / "results"
SINGLE_ROWS = 100_000
CHUNK_ROWS = (25_000, 50_000, 100_000)
CONCURRENCY = (1, 2, 4)


def input_table(records: bulk.Records, rows: int) -> pa.Table:
    """`rows` applicants (the dataset, repeated) and an application_id, one contiguous chunk."""
    block = bulk.arrow_table(records, len(records))
    table = pa.concat_tables([block] * (rows // len(records) + 1)).slice(0, rows)
    table = table.append_column("application_id", pa.array(np.arange(rows, dtype=np.int64)))
    return table.combine_chunks()


def check(result: pa.Table, rows: int) -> None:
    ids = result.column("application_id").to_numpy()
    if result.num_rows != rows or not np.array_equal(ids, np.arange(rows)):
        raise RuntimeError("score_table answered rows out of order or lost some")
    if result.column("probability").null_count:
        raise RuntimeError("score_table answered rows without a probability")


def time_score_table(
    url: str, source: TableInput, rows: int, chunk_rows: int, concurrency: int
) -> float:
    with CreditRiskClient(url) as risk:
        started = time.perf_counter()
        result = risk.score_table(
            source, chunk_rows=chunk_rows, concurrency=concurrency, progress=False
        )
        seconds = time.perf_counter() - started
    check(result, rows)
    return rows / seconds


def time_cli(url: str, source: Path, out: Path, rows: int) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "client", "score", str(source), str(out), "--url", url, "--no-progress"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"python -m client score failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.splitlines()[-1])
    check(pq.read_table(out), rows)
    return float(summary["rows_per_s"])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    machine = describe()  # the load average before this run's own work
    exported = run_export()
    records = applicant_records(load_applicants())
    table = input_table(records, args.rows)
    parquet = workdir / "applicants.parquet"
    pq.write_table(table, parquet)
    grid = [(c, n) for c in args.chunk_rows for n in args.concurrency]
    if (DEFAULT_CHUNK_ROWS, DEFAULT_CONCURRENCY) not in grid:
        grid.append((DEFAULT_CHUNK_ROWS, DEFAULT_CONCURRENCY))
    runs: dict[str, dict[str, Any]] = {}

    def record(name: str, rows_per_s: float, **fields: Any) -> None:
        entry = runs.setdefault(name, {**fields, "rows_per_s": []})
        entry["rows_per_s"].append(rows_per_s)
        print(f"   {name:<40} {rows_per_s:12,.0f} rows/s", flush=True)

    defaults = {"chunk_rows": DEFAULT_CHUNK_ROWS, "concurrency": DEFAULT_CONCURRENCY}
    with served(
        {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}, log_path=workdir / "server.log"
    ) as server:
        for round_number in range(1, args.rounds + 1):
            print(f"== round {round_number} of {args.rounds}", flush=True)
            (single,) = bulk.end_to_end(
                server.url, records, sizes=(SINGLE_ROWS,), formats=("arrow",)
            )
            record("single", cast(float, single["rows_per_s"]), input="one 100k-row Arrow request")
            for chunk_rows, concurrency in grid:
                rate = time_score_table(server.url, table, args.rows, chunk_rows, concurrency)
                record(
                    f"arrow {chunk_rows}x{concurrency}",
                    rate,
                    input="Arrow table",
                    chunk_rows=chunk_rows,
                    concurrency=concurrency,
                )
            rate = time_score_table(
                server.url, parquet, args.rows, DEFAULT_CHUNK_ROWS, DEFAULT_CONCURRENCY
            )
            record("parquet defaults", rate, input="Parquet file", **defaults)
            rate = time_cli(server.url, parquet, workdir / "decisions.parquet", args.rows)
            record("cli defaults", rate, input="CLI, Parquet to Parquet", **defaults)
    for entry in runs.values():
        entry["median_rows_per_s"] = statistics.median(entry["rows_per_s"])
    return {
        "machine": machine,
        "rows": args.rows,
        "rounds": args.rounds,
        "defaults": defaults,
        "command": " ".join(["python -m bench.client_bench", *args.argv]),
        "runs": runs,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.client_bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows scored per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--chunk-rows", type=lambda s: [int(x) for x in s.split(",")], default=list(CHUNK_ROWS)
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=list(CONCURRENCY)
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "client.json")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    run_and_write("client", args.output, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    main()

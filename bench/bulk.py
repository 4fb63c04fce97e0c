"""Bulk scoring rows/s: end to end over HTTP, and the engines alone in-process (the limit)."""

import argparse
import csv
import functools
import io
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pyarrow as pa

from bench.machine import describe
from bench.private_run import run_and_write
from client.errors import ServerError
from client.wire import ARROW_STREAM, read_answer, request_body
from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from features.encoder import FeatureEncoder
from features.schema import FIELDS
from harness.process import served
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

SIZES = (1_000, 10_000, 100_000)
Records = Sequence[Mapping[str, object]]


def _columns(records: Records, rows: int) -> dict[str, list[object]]:
    """`rows` applicants (the records, repeated), one list per field."""
    return {name: [records[i % len(records)][name] for i in range(rows)] for name in FIELDS}


def columnar_body(records: Records, rows: int) -> bytes:
    """/classify_bulk's column-wise JSON."""
    return orjson.dumps(_columns(records, rows))


def csv_body(records: Records, rows: int) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    columns = _columns(records, rows)
    writer.writerow(FIELDS)
    writer.writerows(zip(*columns.values(), strict=True))
    return text.getvalue().encode()


def arrow_table(records: Records, rows: int) -> pa.Table:
    """`rows` applicants with the types Arrow infers (int64/double numbers, string categories),
    as a batch job writing a dataframe would have them."""
    return pa.table(_columns(records, rows))


def arrow_body(records: Records, rows: int) -> bytes:
    """The Arrow IPC stream the client (`client.CreditRiskClient.score_table`) sends."""
    return request_body(arrow_table(records, rows))


@dataclass(frozen=True)
class BodyFormat:
    content_type: str
    build: Callable[[Records, int], bytes]
    accept: str = "application/json"  # Arrow clients ask for Arrow decisions back

    def answers(self, content: bytes, rows: int) -> int:
        """How many decisions an answer holds (an Arrow answer is read and checked as the
        client reads it)."""
        if self.accept == ARROW_STREAM:
            try:
                return read_answer(content, rows).rows
            except ServerError as error:  # a wrong answer fails the run as any other does
                raise RuntimeError(str(error)) from error
        return len(orjson.loads(content)["probability"])


BODY_FORMATS = {
    "json": BodyFormat("application/json", columnar_body),
    "csv": BodyFormat("text/csv", csv_body),
    "arrow": BodyFormat(ARROW_STREAM, arrow_body, accept=ARROW_STREAM),
}


def end_to_end(
    url: str,
    records: Records,
    *,
    sizes: Sequence[int] = SIZES,
    repeats: int = 5,
    formats: Sequence[str] = tuple(BODY_FORMATS),
) -> list[dict[str, object]]:
    """Median wall time of one /classify_bulk request per body format and size, body already
    serialised, one request at a time on a kept-alive connection; every answer is checked
    for length."""
    results: list[dict[str, object]] = []
    with httpx.Client(timeout=120) as client:
        for name in formats:
            body_format = BODY_FORMATS[name]
            headers = {"content-type": body_format.content_type, "accept": body_format.accept}
            for rows in sizes:
                body = body_format.build(records, rows)
                timings = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    answer = client.post(f"{url}/classify_bulk", content=body, headers=headers)
                    timings.append(time.perf_counter() - started)
                    where = f"/classify_bulk [{name}, {rows}]"
                    if answer.status_code != 200:
                        raise RuntimeError(f"{where}: {answer.status_code} {answer.text[:300]}")
                    if body_format.answers(answer.content, rows) != rows:
                        raise RuntimeError(f"{where}: wrong number of answers")
                median = statistics.median(timings)
                results.append(
                    {
                        "format": name,
                        "rows": rows,
                        "body_bytes": len(body),
                        "answer_bytes": len(answer.content),
                        "seconds": median,
                        "rows_per_s": rows / median,
                    }
                )
    return results


def _best_seconds(
    call: Callable[[np.ndarray], object], features: np.ndarray, repeats: int
) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call(features)
        best = min(best, time.perf_counter() - started)
    return best


def in_process(
    onnx_tag: str,
    native_tag: str,
    records: Records,
    *,
    sizes: Sequence[int] = SIZES,
    repeats: int = 5,
) -> list[dict[str, float]]:
    """Each engine alone on already-encoded rows, one thread, best of `repeats` (the limit for
    end-to-end bulk scoring: no HTTP, JSON, validation or encoding)."""
    onnx = OnnxRunner.load(onnx_tag, threads=1, device="cpu")
    native = XgboostRunner.load(native_tag, threads=1, device="cpu")
    encoder = FeatureEncoder(onnx.stored.feature_names)
    results = []
    for rows in sizes:
        features = encoder.encode_rows([records[i % len(records)] for i in range(rows)])
        entry: dict[str, float] = {"rows": rows}
        for name, runner in (("onnx", onnx), ("xgboost", native)):
            entry[f"{name}_rows_per_s"] = rows / _best_seconds(runner.predict, features, repeats)
        results.append(entry)
    return results


def per_row_overhead(
    url: str,
    records: Records,
    *,
    rows: int = 100_000,
    rounds: int = 9,
    formats: Sequence[str] = tuple(BODY_FORMATS),
) -> list[dict[str, object]]:
    """/classify_bulk on all-valid input, refusing by default against per-row verdicts
    (`?per_row=true`): one request at a time, the two modes alternating (which goes first
    alternates too), median wall time of each. `ratio` is per-row's median over the default's
    (1.05 = 5% slower)."""
    results: list[dict[str, object]] = []
    paths = {"default": f"{url}/classify_bulk", "per_row": f"{url}/classify_bulk?per_row=true"}
    with httpx.Client(timeout=120) as client:
        for name in formats:
            body_format = BODY_FORMATS[name]
            headers = {"content-type": body_format.content_type, "accept": body_format.accept}
            body = body_format.build(records, rows)
            timings: dict[str, list[float]] = {mode: [] for mode in paths}
            for mode in paths:  # one untimed request each: connection and caches warm
                client.post(paths[mode], content=body, headers=headers)
            for round_number in range(rounds):
                order = list(paths) if round_number % 2 == 0 else list(reversed(paths))
                for mode in order:
                    started = time.perf_counter()
                    answer = client.post(paths[mode], content=body, headers=headers)
                    timings[mode].append(time.perf_counter() - started)
                    if (
                        answer.status_code != 200
                        or body_format.answers(answer.content, rows) != rows
                    ):
                        raise RuntimeError(f"/classify_bulk [{name}, {mode}]: {answer.text[:300]}")
            medians = {mode: statistics.median(values) for mode, values in timings.items()}
            results.append(
                {
                    "format": name,
                    "rows": rows,
                    "rounds": rounds,
                    "default_s": medians["default"],
                    "per_row_s": medians["per_row"],
                    "ratio": medians["per_row"] / medians["default"],
                }
            )
    return results


def lone_vs_xgboost(
    servers: Mapping[str, str],
    records: Records,
    native_tag: str,
    *,
    rows: int = 100_000,
    rounds: int = 5,
    repeats: int = 5,
) -> dict[str, object]:
    """A lone `rows`-row Arrow request end to end (Arrow answer, checked) on each server against
    native XGBoost predicting the same rows in this process on one thread (already encoded: no
    parsing, checks or encoding), in alternating rounds: each round times every contender
    `repeats` times (median), the order turning round by round. A round's ratio for a server is
    XGBoost's seconds over the server's (above 1: the request end to end beats the engine)."""
    native = XgboostRunner.load(native_tag, threads=1, device="cpu")
    features = FeatureEncoder(native.stored.feature_names).encode_rows(
        [records[i % len(records)] for i in range(rows)]
    )
    body = arrow_body(records, rows)
    arrow = BODY_FORMATS["arrow"]
    headers = {"content-type": arrow.content_type, "accept": arrow.accept}

    def timed(call: Callable[[], object]) -> float:
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)

    with httpx.Client(timeout=120) as client:

        def request(url: str) -> None:
            answer = client.post(f"{url}/classify_bulk", content=body, headers=headers)
            if answer.status_code != 200 or arrow.answers(answer.content, rows) != rows:
                raise RuntimeError(f"{url}/classify_bulk: {answer.status_code} {answer.text[:300]}")

        contenders: dict[str, Callable[[], object]] = {
            "xgboost_1_thread": lambda: native.predict(features)
        }
        for name, url in servers.items():
            request(url)  # untimed: connection, caches and pieces' threads warm
            contenders[name] = functools.partial(request, url)
        per_round: list[dict[str, float]] = []
        for number in range(rounds):
            names = list(contenders)
            order = names[number % len(names) :] + names[: number % len(names)]
            seconds = {name: timed(contenders[name]) for name in order}
            entry = {f"{name}_rows_per_s": rows / seconds[name] for name in names}
            for name in servers:
                entry[f"{name}_vs_xgboost"] = seconds["xgboost_1_thread"] / seconds[name]
            per_round.append(entry)
            print(
                f"   round {number + 1}: "
                + "  ".join(f"{name} {rows / seconds[name]:,.0f} rows/s" for name in names)
                + "  ratios "
                + "  ".join(f"{name} {entry[f'{name}_vs_xgboost']:.2f}" for name in servers),
                flush=True,
            )
    return {
        "rows": rows,
        "rounds": per_round,
        "repeats": repeats,
        "median_vs_xgboost": {
            name: statistics.median(entry[f"{name}_vs_xgboost"] for entry in per_round)
            for name in servers
        },
    }


RESULTS = Path(__file__).parent / "results"


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.bulk`: on servers of their own (2 workers) over a fresh export in a private
    model store, (1) a lone 100,000-row Arrow request against in-process native XGBoost on one
    thread, alternating rounds (bench/results/bulk_lone.json), the default server beside one per
    `--compare` setting; (2) per-row verdicts against the default (bench/results/per_row.json)."""
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=main.__doc__)
    parser.add_argument("part", nargs="?", choices=("all", "lone", "per-row"), default="all")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9, help="per-row rounds")
    parser.add_argument("--lone-rounds", type=int, default=5)
    parser.add_argument("--lone-repeats", type=int, default=5)
    parser.add_argument(
        "--compare",
        action="append",
        metavar="NAME=VALUE",
        help="a setting of a second server for the lone request (default "
        "CREDIT_RISK_BULK_THREADS=1: one engine thread per request, as before issue 27)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "per_row.json")
    parser.add_argument("--lone-output", type=Path, default=RESULTS / "bulk_lone.json")
    args = parser.parse_args(argv)
    command = " ".join(["python -m bench.bulk", *(sys.argv[1:] if argv is None else argv)])
    compare = args.compare if args.compare is not None else ["CREDIT_RISK_BULK_THREADS=1"]

    def lone(workdir: Path) -> dict[str, object]:
        machine = describe()
        exported = run_export()
        records = applicant_records(load_applicants())
        env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}
        with ExitStack() as stack:
            servers = {"ours": stack.enter_context(served(env, log_path=workdir / "ours.log")).url}
            for number, setting in enumerate(compare):
                name, _, value = setting.partition("=")
                server = served({**env, name: value}, log_path=workdir / f"compare{number}.log")
                servers[setting] = stack.enter_context(server).url
            result = lone_vs_xgboost(
                servers,
                records,
                exported.native_tag,
                rows=args.rows,
                rounds=args.lone_rounds,
                repeats=args.lone_repeats,
            )
        medians = result["median_vs_xgboost"]
        print(f"   median vs XGBoost on one thread: {medians}", flush=True)
        return {"machine": machine, "command": command, "lone": result}

    def per_row(workdir: Path) -> dict[str, object]:
        machine = describe()
        exported = run_export()
        records = applicant_records(load_applicants())
        env = {"CREDIT_RISK_MODEL_TAG": exported.onnx_tag}
        with served(env, log_path=workdir / "server.log") as server:
            rows = per_row_overhead(server.url, records, rows=args.rows, rounds=args.rounds)
        for row in rows:
            print(
                f"{row['format']:<6} {row['rows']:>8,} rows  default {row['default_s']:.3f} s  "
                f"per_row {row['per_row_s']:.3f} s  ratio {row['ratio']:.3f}",
                flush=True,
            )
        return {"machine": machine, "command": command, "per_row": rows}

    if args.part in ("all", "lone"):
        run_and_write("bulk-lone", args.lone_output, lone)
    if args.part in ("all", "per-row"):
        run_and_write("per-row", args.output, per_row)


if __name__ == "__main__":
    main()

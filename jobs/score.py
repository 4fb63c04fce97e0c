"""Bulk scoring on Spark: applicants in a Parquet or CSV lake -> decisions and rejects in Parquet.

    python -m jobs.score --input IN --output OUT --rejects REJ [--model TAG] [--master URL]

Every input column is carried through. OUT gets each valid row + `probability` (float32, the
server's number), `status` and `model`; REJ gets each invalid row + `error` (the first failing
field and its rule). One pass over the input: Spark reads it and hands Arrow batches to the
tasks (`mapInArrow`), which validate, encode and score them with the server's encoder and
engines and write both outputs (jobs.outputs). The job then checks rows in = scored + rejected
from the written files' footers and prints a JSON summary as its last stdout line; Spark's
progress bar runs on stderr meanwhile. Any failure is one `jobs.score: error: ...` line on
stderr and exit status 1.
"""

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from jobs.columns import InputSchemaError, check_input_schema
from jobs.engine import ModelBundle
from jobs.java import JavaError, check_java
from jobs.outputs import (
    Destination,
    OutputError,
    abandon,
    commit,
    footer_rows,
    mark_complete,
    prepare,
)
from jobs.scoring import ADDED_NAMES, reason_fields, rejects_schema, scored_schema
from jobs.session import start_session
from jobs.task import SUMMARY_DDL, ScoringTask
from runners.model_store import ModelLoadError

DEFAULT_MODEL = "credit_risk_onnx:latest"
DEFAULT_MASTER = "local[*]"
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
logger = logging.getLogger("jobs.score")


class JobError(RuntimeError):
    """The job cannot finish; the message is the one line the operator sees."""


class ReconciliationError(JobError):
    """The written outputs do not account for every input row."""


@dataclass(frozen=True)
class Options:
    input: str
    output: str
    rejects: str
    model: str
    master: str
    input_format: str
    overwrite: bool
    conf: dict[str, str]
    reasons: int = 0


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.score",
        description="Score applicants in Parquet or CSV with Spark; decisions and rejects "
        "to Parquet. The last stdout line is a JSON summary.",
    )
    parser.add_argument("--input", required=True, help="Parquet file or folder, or CSV")
    parser.add_argument("--output", required=True, help="folder for the decisions (Parquet)")
    parser.add_argument("--rejects", required=True, help="folder for the invalid rows (Parquet)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="ONNX model tag in the store")
    parser.add_argument(
        "--master", default=DEFAULT_MASTER, help="Spark master: local[*], spark://, yarn, k8s://"
    )
    parser.add_argument(
        "--format", dest="input_format", choices=("auto", "parquet", "csv"), default="auto"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace outputs that exist and are not empty"
    )
    parser.add_argument(
        "--reasons",
        type=int,
        default=0,
        choices=range(0, 14),
        metavar="N",
        help="add reason_1 ... reason_N: each MAYBE or DECLINED row's top reason codes (0-13)",
    )
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting (repeatable), e.g. spark.executor.memory=4g",
    )
    args = parser.parse_args(argv)
    conf: dict[str, str] = {}
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--conf {item!r}: expected KEY=VALUE")
        conf[key] = value
    return Options(
        input=args.input,
        output=args.output,
        rejects=args.rejects,
        model=args.model,
        master=args.master,
        input_format=args.input_format,
        overwrite=args.overwrite,
        conf=conf,
        reasons=args.reasons,
    )


def input_format(path: str, requested: str) -> str:
    """csv for a .csv file or a local folder of them; parquet otherwise."""
    if requested != "auto":
        return requested
    if path.lower().endswith(CSV_SUFFIXES):
        return "csv"
    folder = Path(path)
    if folder.is_dir() and any(p.name.lower().endswith(CSV_SUFFIXES) for p in folder.iterdir()):
        return "csv"
    return "parquet"


def run(options: Options, spark: SparkSession | None = None) -> dict[str, Any]:
    """The whole job; with `spark` given, scores on that session and leaves it running."""
    started = time.perf_counter()
    java = check_java()
    logger.info("Java %d at %s", java.major, java.path)
    bundle = ModelBundle.read(options.model)
    logger.info("model %s (native twin %s)", bundle.tag, bundle.native.tag)
    if options.reasons:
        bundle.explaining()  # a model that cannot give reasons fails here, before Spark starts
    scored_dest, rejects_dest = Destination.of(options.output), Destination.of(options.rejects)
    prepare((scored_dest, rejects_dest), overwrite=options.overwrite)
    fmt = input_format(options.input, options.input_format)

    run_id = uuid.uuid4().hex[:12]
    try:
        counts, spark_start_s = _score_and_commit(options, fmt, bundle, run_id, spark)
    except BaseException:
        abandon(scored_dest, run_id)
        abandon(rejects_dest, run_id)
        raise
    seconds = time.perf_counter() - started
    return {
        **counts,  # rows_in, scored, rejected, partitions
        "seconds": round(seconds, 3),
        "rows_per_s": round(counts["rows_in"] / seconds, 1),
        "model": bundle.tag,
        "master": options.master,
        "spark_start_s": round(spark_start_s, 3),
        "input_format": fmt,
        "output": options.output,
        "rejects": options.rejects,
    }


def _score_and_commit(
    options: Options, fmt: str, bundle: ModelBundle, run_id: str, spark: SparkSession | None
) -> tuple[dict[str, int], float]:
    """Scores on Spark, commits both outputs, reconciles and marks them complete; returns the
    counts and the session's start-up seconds."""
    scored_dest, rejects_dest = Destination.of(options.output), Destination.of(options.rejects)
    schema, summaries, spark_start_s = _score_on_spark(options, fmt, bundle, run_id, spark)
    scored_files = commit(
        scored_dest,
        run_id,
        _files(summaries, "scored_file"),
        scored_schema(schema, options.reasons),
    )
    rejects_files = commit(
        rejects_dest, run_id, _files(summaries, "rejects_file"), rejects_schema(schema)
    )
    counts = reconcile(
        rows_in=sum(row["rows_in"] for row in summaries),
        scored=footer_rows(scored_dest, scored_files),
        rejected=footer_rows(rejects_dest, rejects_files),
        reported=(
            sum(row["scored"] for row in summaries),
            sum(row["rejected"] for row in summaries),
        ),
    )
    mark_complete(scored_dest)
    mark_complete(rejects_dest)
    return {**counts, "partitions": len(summaries)}, spark_start_s


def reconcile(
    *, rows_in: int, scored: int, rejected: int, reported: tuple[int, int]
) -> dict[str, int]:
    """rows_in (counted by the tasks as rows arrived) must equal scored + rejected (read from
    the written files' footers), and the files must hold what the tasks said they wrote."""
    if rows_in != scored + rejected or reported != (scored, rejected):
        raise ReconciliationError(
            f"rows in {rows_in} != scored {scored} + rejected {rejected} in the written files "
            f"(tasks reported {reported[0]} + {reported[1]}); outputs left unmarked (no _SUCCESS)"
        )
    return {"rows_in": rows_in, "scored": scored, "rejected": rejected}


def _score_on_spark(
    options: Options, fmt: str, bundle: ModelBundle, run_id: str, given: SparkSession | None
) -> tuple[pa.Schema, list[Any], float]:
    """One pass: the input's Arrow schema, one summary row per task, the session's start-up."""
    started = time.perf_counter()
    spark = given or start_session(options.master, options.conf)
    spark_start_s = time.perf_counter() - started
    logger.info("Spark %s on %s, ready after %.1f s", spark.version, options.master, spark_start_s)
    try:
        if fmt == "csv":  # every column as text: no schema inference pass over the data
            frame = spark.read.options(header=True, inferSchema=False).csv(options.input)
        else:
            frame = spark.read.parquet(options.input)
        schema = _arrow_schema(frame.schema)
        _check_columns(schema, text_numbers=fmt == "csv", reasons=options.reasons)
        shipped = spark.sparkContext.broadcast(bundle)
        task = ScoringTask(
            tag=bundle.tag,
            bundle=shipped,
            scored=Destination.of(options.output),
            rejects=Destination.of(options.rejects),
            run_id=run_id,
            reasons=options.reasons,
        )
        logger.info("scoring %s (%s)", options.input, fmt)
        summaries = frame.mapInArrow(task, SUMMARY_DDL).collect()
        shipped.destroy()  # a session that runs more jobs keeps no stale model copies
    except (PySparkException, Py4JError) as error:
        raise JobError(f"cannot score {options.input}: {_spark_message(error)}") from error
    finally:
        if given is None:
            spark.stop()
    return schema, summaries, spark_start_s


def _arrow_schema(spark_schema: Any) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        return to_arrow_schema(spark_schema)
    except Exception as error:  # an input column type Arrow cannot carry
        raise JobError(f"input has a column type Arrow cannot carry: {error}") from error


def _check_columns(schema: pa.Schema, *, text_numbers: bool, reasons: int) -> None:
    check_input_schema(schema, text_numbers=text_numbers)
    added = ADDED_NAMES | {field.name for field in reason_fields(reasons)}
    clash = sorted(added & set(schema.names))
    if clash:
        raise InputSchemaError(
            f"{clash[0]}: the input already has a column of this name, which the job's output "
            "adds; rename it"
        )


def _files(summaries: list[Any], key: str) -> dict[int, str]:
    return {row["partition"]: row[key] for row in summaries if row[key] is not None}


def _spark_message(error: BaseException) -> str:
    """The first line of the deepest cause Spark reports, without its stack trace."""
    getter = getattr(error, "getMessage", None)
    text = getter() if callable(getter) else str(error)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("Caused by:")]
    chosen = causes[-1].removeprefix("Caused by:").strip() if causes else (lines or ["?"])[0]
    return chosen[:500]


def main(argv: Sequence[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("jobs.score: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    options = parse_args(argv)
    try:
        summary = run(options)
    except (JobError, JavaError, InputSchemaError, ModelLoadError, OutputError, OSError) as error:
        print(f"jobs.score: error: {error}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    sys.exit(main())

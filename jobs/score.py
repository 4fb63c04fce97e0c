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

Before Spark starts, the input is checked (jobs.inputs) and so are Java, the model and the output
folders; once it has started, one tiny task per core checks that the executors' Python imports
the project (jobs.probe). A Parquet input with fewer row groups than the session has cores
(one large row group is common) is spread over the cores with a repartition.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from jobs.columns import InputSchemaError, check_input_schema
from jobs.engine import ModelBundle
from jobs.inputs import InputError, InputLayout, check_input
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
from jobs.probe import ExecutorSetupError, probe_executors
from jobs.scoring import ADDED_NAMES, reason_fields, rejects_schema, scored_schema
from jobs.session import ARROW_BATCH_ROWS, DRIVER_PYTHON_CONF, start_session
from jobs.spark_errors import spark_message
from jobs.task import SUMMARY_DDL, ScoringTask
from runners.model_store import ModelLoadError

DEFAULT_MODEL = "credit_risk_onnx:latest"
DEFAULT_MASTER = "local[*]"
# Rows from which an input read by fewer tasks than cores is spread over all of them: below
# this a shuffle's fixed cost outweighs what the extra cores save.
MIN_SPREAD_ROWS = 2 * ARROW_BATCH_ROWS
MIN_SPREAD_BYTES = 4 << 20  # the same for CSV, whose rows are unknown beforehand
# Set in the environment of the process the job re-starts under spark.pyspark.driver.python.
REEXEC_MARK = "_CREDIT_RISK_JOB_DRIVER_PYTHON"
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
    spread: bool = True
    challenger: str | None = None  # another ONNX tag: its probability and status beside


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
        "--challenger",
        metavar="TAG",
        help="another ONNX model tag: add challenger_probability and challenger_status "
        "(back-testing a challenger in the same pass)",
    )
    parser.add_argument(
        "--keep-layout",
        action="store_true",
        help="read the input as its files are laid out: no spreading over the cores",
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
        spread=not args.keep_layout,
        challenger=args.challenger,
    )


def run(options: Options, spark: SparkSession | None = None) -> dict[str, Any]:
    """The whole job; with `spark` given, scores on that session and leaves it running."""
    started = time.perf_counter()
    layout = check_input(options.input, options.input_format)
    if not layout.checked:
        logger.info("input %s is read by Spark alone (pyarrow cannot open it)", options.input)
    if layout.schema is not None:
        _check_columns(layout.schema, text_numbers=layout.format == "csv", reasons=options.reasons)
    java = check_java()
    logger.info("Java %d at %s", java.major, java.path)
    bundle = ModelBundle.read(options.model)
    logger.info("model %s (native twin %s)", bundle.tag, bundle.native.tag)
    if options.reasons:
        bundle.explaining()  # a model that cannot give reasons fails here, before Spark starts
    challenger = ModelBundle.read(options.challenger) if options.challenger else None
    if challenger is not None and challenger.onnx.feature_names != bundle.onnx.feature_names:
        raise ModelLoadError(f"challenger {challenger.tag} has other features than {bundle.tag}")
    scored_dest, rejects_dest = Destination.of(options.output), Destination.of(options.rejects)
    absent = prepare((scored_dest, rejects_dest), overwrite=options.overwrite)

    run_id = uuid.uuid4().hex[:12]
    try:
        counts, spark_facts = _score_and_commit(options, layout, bundle, run_id, spark, challenger)
    except BaseException:
        abandon(scored_dest, run_id, created=scored_dest in absent)
        abandon(rejects_dest, run_id, created=rejects_dest in absent)
        raise
    seconds = time.perf_counter() - started
    return {
        **counts,  # rows_in, scored, rejected, partitions, tasks
        "seconds": round(seconds, 3),
        "rows_per_s": round(counts["rows_in"] / seconds, 1),
        "model": bundle.tag,
        **({"challenger": challenger.tag} if challenger is not None else {}),
        "master": options.master,
        **spark_facts,  # spark_start_s, spread_to, executor_python
        "input_format": layout.format,
        "output": options.output,
        "rejects": options.rejects,
    }


def _score_and_commit(
    options: Options,
    layout: InputLayout,
    bundle: ModelBundle,
    run_id: str,
    spark: SparkSession | None,
    challenger: ModelBundle | None = None,
) -> tuple[dict[str, int], dict[str, Any]]:
    """Scores on Spark, commits both outputs, reconciles and marks them complete; returns the
    counts and what the run learnt of Spark."""
    scored_dest, rejects_dest = Destination.of(options.output), Destination.of(options.rejects)
    schema, summaries, facts = _score_on_spark(options, layout, bundle, run_id, spark, challenger)
    scored_files = commit(
        scored_dest,
        run_id,
        _files(summaries, "scored_file"),
        scored_schema(schema, options.reasons, challenger is not None),
        replace=options.overwrite,
    )
    rejects_files = commit(
        rejects_dest,
        run_id,
        _files(summaries, "rejects_file"),
        rejects_schema(schema),
        replace=options.overwrite,
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
    # Tasks that really scored rows: a Parquet split without a row group's midpoint reads none.
    tasks = sum(1 for row in summaries if row["rows_in"] > 0)
    facts["executor_python"] = sorted({row["python"] for row in summaries})
    return {**counts, "partitions": len(summaries), "tasks": tasks}, facts


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
    options: Options,
    layout: InputLayout,
    bundle: ModelBundle,
    run_id: str,
    given: SparkSession | None,
    challenger: ModelBundle | None = None,
) -> tuple[pa.Schema, list[Any], dict[str, Any]]:
    """One pass: the input's Arrow schema, one summary row per task, and the session's
    start-up seconds and spreading."""
    started = time.perf_counter()
    spark = given or start_session(options.master, options.conf)
    spark_start_s = time.perf_counter() - started
    logger.info("Spark %s on %s, ready after %.1f s", spark.version, options.master, spark_start_s)
    try:
        _probe(spark)
        if layout.format == "csv":  # every column as text: no schema inference pass
            frame = spark.read.options(header=True, inferSchema=False).csv(options.input)
        else:
            frame = spark.read.parquet(options.input)
        schema = _arrow_schema(frame.schema)
        _check_columns(schema, text_numbers=layout.format == "csv", reasons=options.reasons)
        spread_to = 0
        if options.spread:
            cores = spark.sparkContext.defaultParallelism
            spread_to = spread(layout, cores, frame.rdd.getNumPartitions())
        if spread_to:
            logger.info("%s pieces of input, spread over %d tasks", layout.pieces, spread_to)
            frame = frame.repartition(spread_to)
        shipped = spark.sparkContext.broadcast(bundle)
        other = spark.sparkContext.broadcast(challenger) if challenger is not None else None
        task = ScoringTask(
            tag=bundle.tag,
            bundle=shipped,
            scored=Destination.of(options.output),
            rejects=Destination.of(options.rejects),
            run_id=run_id,
            reasons=options.reasons,
            challenger=other,
        )
        logger.info("scoring %s (%s)", options.input, layout.format)
        summaries = frame.mapInArrow(task, SUMMARY_DDL).collect()
        shipped.destroy()  # a session that runs more jobs keeps no stale model copies
        if other is not None:
            other.destroy()
    except (PySparkException, Py4JError) as error:
        raise JobError(f"cannot score {options.input}: {spark_message(error)}") from error
    finally:
        if given is None:
            spark.stop()
    return schema, summaries, {"spark_start_s": round(spark_start_s, 3), "spread_to": spread_to}


def _probe(spark: SparkSession) -> None:
    """Fails fast when the executors' Python cannot import the project, or cannot start."""
    try:
        probe = probe_executors(spark)
    except (PySparkException, Py4JError) as error:
        python = os.environ.get("PYSPARK_PYTHON", "python3")
        raise ExecutorSetupError(
            f"executors cannot run Python {python}: {spark_message(error)}"
        ) from error
    logger.info("executors' Python: %s (%d probe tasks)", ", ".join(probe.pythons), probe.tasks)


def spread(layout: InputLayout, cores: int, partitions: int) -> int:
    """The partitions to repartition into (0: read as laid out). Spark splits files by bytes,
    packing small ones together, and gives each Parquet row group (each compressed CSV file)
    to one task: fewer of those than cores leave cores idle, and a large enough input is then
    shuffled into one partition per core."""
    working = partitions if layout.pieces is None else min(layout.pieces, partitions)
    if working >= cores:
        return 0
    if layout.rows is not None:
        return cores if layout.rows >= MIN_SPREAD_ROWS else 0
    return cores if layout.size >= MIN_SPREAD_BYTES else 0


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


def restart_under_driver_python(options: Options, argv: Sequence[str]) -> None:
    """With --conf spark.pyspark.driver.python=PATH (as spark-submit honours it), the job
    re-starts itself once under that interpreter; it returns when this is already it."""
    wanted = options.conf.get(DRIVER_PYTHON_CONF)
    if not wanted or os.environ.get(REEXEC_MARK) == wanted:
        return
    found = shutil.which(wanted)
    if found is None:
        raise JobError(f"{DRIVER_PYTHON_CONF}={wanted}: no such executable")
    if os.path.abspath(found) == os.path.abspath(sys.executable):
        return
    logger.info("re-starting under %s (%s)", found, DRIVER_PYTHON_CONF)
    os.environ[REEXEC_MARK] = wanted
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(found, [found, "-m", "jobs.score", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("jobs.score: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(arguments)
    try:
        restart_under_driver_python(options, arguments)
        summary = run(options)
    except (
        JobError,
        JavaError,
        InputError,
        InputSchemaError,
        ExecutorSetupError,
        ModelLoadError,
        OutputError,
        OSError,
    ) as error:
        print(f"jobs.score: error: {error}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    sys.exit(main())

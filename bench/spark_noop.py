"""Spark's own cost, the yardstick of the scoring job: read Parquet, pass every Arrow batch
through a Python `mapInArrow` that carries the columns and adds three constant ones (the shape
of the job's decisions), write Parquet. Same session settings as the job.

    python -m bench.spark_noop --input LAKE --output OUT [--master local[*]]
(last stdout line: JSON with spark_start_s and pass_s)
"""

import argparse
import json
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql.types import FloatType, StringType, StructField, StructType

from jobs.session import start_session


def _constant_decisions(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        n = batch.num_rows
        yield pa.RecordBatch.from_arrays(
            [
                *batch.columns,
                pa.array(np.zeros(n, dtype=np.float32)),
                pa.repeat(pa.scalar("APPROVED"), n),
                pa.repeat(pa.scalar("model"), n),
            ],
            names=[*batch.schema.names, "probability", "status", "model"],
        )


def noop_pass(spark: SparkSession, source: str, output: str) -> float:
    """Seconds for one read -> Python mapInArrow -> write pass."""
    started = time.perf_counter()
    frame = spark.read.parquet(source)
    schema = StructType(
        [
            *frame.schema.fields,
            StructField("probability", FloatType()),
            StructField("status", StringType()),
            StructField("model", StringType()),
        ]
    )
    frame.mapInArrow(_constant_decisions, schema).write.mode("overwrite").parquet(output)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_noop", description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--master", default="local[*]")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    spark = start_session(args.master)
    spark_start_s = time.perf_counter() - started
    try:
        pass_s = noop_pass(spark, args.input, args.output)
    finally:
        spark.stop()
    print(json.dumps({"spark_start_s": round(spark_start_s, 3), "pass_s": round(pass_s, 3)}))


if __name__ == "__main__":
    main()

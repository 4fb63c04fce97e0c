"""What one Spark task runs (through `mapInArrow`): score its partition's Arrow batches, write
its decisions and its rejects, and report one summary row to the driver."""

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark import TaskContext

from jobs.engine import BundleSource
from jobs.outputs import Destination, PartWriter
from jobs.scoring import BatchScorer

# One row per task: the driver's only data from the executors.
SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int64()),
        pa.field("rows_in", pa.int64()),
        pa.field("scored", pa.int64()),
        pa.field("rejected", pa.int64()),
        pa.field("scored_file", pa.string()),
        pa.field("rejects_file", pa.string()),
        pa.field("python", pa.string()),  # the executor's interpreter
    ]
)
SUMMARY_DDL = (
    "partition long, rows_in long, scored long, rejected long, "
    "scored_file string, rejects_file string, python string"
)

# This Python worker's scorer per model tag: PySpark reuses a worker for many tasks, and each
# would otherwise rebuild both engines from the broadcast bytes.
_SCORERS: dict[tuple[str, int, str], BatchScorer] = {}


def cached_scorer(
    tag: str, bundle: BundleSource, reasons: int = 0, challenger: BundleSource | None = None
) -> BatchScorer:
    key = (tag, reasons, challenger.value.tag if challenger is not None else "")
    scorer = _SCORERS.get(key)
    if scorer is None:
        other = challenger.value if challenger is not None else None
        scorer = _SCORERS[key] = BatchScorer.from_bundle(bundle.value, reasons, other)
    return scorer


@dataclass(frozen=True)
class ScoringTask:
    """The function given to `mapInArrow`; pickled once by Spark, its fields are small (the
    model itself travels as a broadcast)."""

    tag: str
    bundle: BundleSource
    scored: Destination
    rejects: Destination
    run_id: str
    reasons: int = 0
    challenger: BundleSource | None = None  # --challenger: its broadcast bundle

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        context = TaskContext.get()
        partition = context.partitionId() if context else 0
        attempt = context.taskAttemptId() if context else 0
        scorer = cached_scorer(self.tag, self.bundle, self.reasons, self.challenger)
        scored = PartWriter(*self.scored.staging_file(self.run_id, partition, attempt))
        rejects = PartWriter(*self.rejects.staging_file(self.run_id, partition, attempt))
        rows_in = 0
        for batch in batches:
            rows_in += batch.num_rows
            result = scorer.score(batch)
            scored.write(result.scored)
            rejects.write(result.rejects)
        scored_file, rejects_file = scored.close(), rejects.close()
        yield pa.RecordBatch.from_pylist(
            [
                {
                    "partition": partition,
                    "rows_in": rows_in,
                    "scored": scored.rows,
                    "rejected": rejects.rows,
                    "scored_file": scored_file,
                    "rejects_file": rejects_file,
                    "python": sys.executable,
                }
            ],
            schema=SUMMARY_SCHEMA,
        )

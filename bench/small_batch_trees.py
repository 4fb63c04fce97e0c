"""Why the model call costs more in the server than in a loop (issue 27's next lever): ONNX
Runtime's tree walk on merged batches of a few rows, rows that differ call to call (as real
applicants do) against the same rows again and again (what a naive micro-benchmark times: the
branch predictor learns their paths), and a branch-free evaluation of the same trees from the
explainer's contribution table (each tree's 8 direction bits index a per-tree table of leaf
margins; the margins are the table's contributions summed per pattern). The branch-free one is
a measurement, not an engine: it is not served. Its largest probability difference from ONNX
Runtime is printed beside the times. Median of alternating rounds, µs a call, one thread.

    python -m bench.small_batch_trees            # ~1 min
"""

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from export.dataset import applicant_records, load_applicants
from export.pipeline import run_export
from features.encoder import FeatureEncoder
from runners.contribution_table import ContributionTable
from runners.explainer import Explainer
from runners.onnx_runner import OnnxRunner

SIZES = (1, 4, 12, 32, 64)


def branch_free(table: ContributionTable) -> Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]]:
    leaf_margins = table.table.sum(axis=1, dtype=np.float64)  # (trees * PATTERNS,)

    def predict(features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        index = table.tree_patterns(features) + table.tree_offsets[:, None]
        margin = table.bias + leaf_margins[index].sum(axis=0)
        return (1.0 / (1.0 + np.exp(-margin))).astype(np.float32)

    return predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args()
    tag = run_export().onnx_tag
    onnx = OnnxRunner.load(tag, threads=1, device="cpu")
    table = Explainer.load(tag, device="cpu", method="table")._table
    assert table is not None
    encoder = FeatureEncoder(tuple(onnx.stored.feature_names))
    pool = encoder.encode_rows(applicant_records(load_applicants()))
    rng = np.random.default_rng(3)
    engines = {"onnx": onnx.predict, "branch-free": branch_free(table)}
    gap = float(np.abs(engines["onnx"](pool) - engines["branch-free"](pool)).max())
    print(f"{len(pool):,} applicants: largest |onnx - branch-free| probability {gap:.2e}")
    for rows in SIZES:
        varied = [pool[rng.choice(len(pool), rows, replace=False)] for _ in range(args.calls)]
        same = [varied[0]] * args.calls
        times: dict[str, list[float]] = {}
        for number in range(args.rounds):
            order = list(engines.items())[number % 2 :] + list(engines.items())[: number % 2]
            for name, engine in order:
                for kind, batches in (("varied", varied), ("same", same)):
                    started = time.perf_counter()
                    for batch in batches:
                        engine(batch)
                    elapsed = (time.perf_counter() - started) / args.calls * 1e6
                    times.setdefault(f"{name} {kind}", []).append(elapsed)
        cells = "  ".join(f"{key} {statistics.median(v):6.1f}" for key, v in times.items())
        print(f"{rows:3d} rows: {cells}  (µs a call)")


if __name__ == "__main__":
    main()

"""Bulk scoring rows/s: end to end over HTTP, and the engines alone in-process (the limit)."""

import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import httpx
import numpy as np
import orjson

from features.encoder import FeatureEncoder
from features.schema import FIELDS
from runners.onnx_runner import OnnxRunner
from runners.xgboost_runner import XgboostRunner

SIZES = (1_000, 10_000, 100_000)
Records = Sequence[Mapping[str, object]]


def columnar_body(records: Records, rows: int) -> bytes:
    """`rows` applicants (the records, repeated) as /classify_bulk's column-wise JSON."""
    return orjson.dumps(
        {name: [records[i % len(records)][name] for i in range(rows)] for name in FIELDS}
    )


def end_to_end(
    url: str, records: Records, *, sizes: Sequence[int] = SIZES, repeats: int = 5
) -> list[dict[str, float]]:
    """Median wall time of one /classify_bulk request per size, body already serialised,
    one request at a time on a kept-alive connection; every answer is checked for length."""
    results = []
    with httpx.Client(timeout=120) as client:
        for rows in sizes:
            body = columnar_body(records, rows)
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                answer = client.post(
                    f"{url}/classify_bulk",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                timings.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise RuntimeError(
                        f"/classify_bulk [{rows}]: {answer.status_code} {answer.text[:300]}"
                    )
                if len(orjson.loads(answer.content)["probability"]) != rows:
                    raise RuntimeError(f"/classify_bulk [{rows}]: wrong number of answers")
            median = statistics.median(timings)
            results.append(
                {
                    "rows": rows,
                    "body_bytes": len(body),
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

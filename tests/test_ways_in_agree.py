"""Every way in gives the same verdict on the same applicant (hypothesis-generated).

Batches of applicants (dataset rows with a few fields replaced by awkward values: integers past
2^53, fractions in integer columns, -0.0, huge and tiny numbers, empty, padded and odd-case
categories, nulls, numbers sent as strings) go through /classify one by one (the reference),
/classify_batch, /classify_bulk as JSON, CSV and Arrow (per-row verdicts), the Open Inference
Protocol as JSON and binary tensors, and the Spark job in local mode. Everywhere: accepted
exactly where the reference accepts, with the same status and probability (1e-6); refused
naming a field the reference finds bad; never a 5xx, never a failed job.

Each column of a batch has one type, as in Arrow or Parquet: integers, floats, or text (numbers
sent as strings); a few sets of column types, so the Spark job runs once per set, over every
row generated with it. CSV carries no types (`30` and `"30"` are the same text), so a batch with a
text column is not sent as CSV; binary tensors carry no nulls, so a batch with a null is not
sent as binary tensors.
"""

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from export.pipeline import ExportSummary
from features.columns import InputSchemaError
from features.schema import CATEGORICAL_FIELDS, FIELDS, NUMERIC_FIELDS, categories
from harness.process import ServedProcess
from jobs.score import parse_args, run
from jobs.session import start_session

pytestmark = pytest.mark.slow  # a real server and a Spark session

EXAMPLES = 12  # batches; each goes through every way in (Spark: once per column kinds)
MAX_ROWS = 30
WHOLE_FIELDS = ("seniority", "time", "age", "expenses", "amount")
TOLERANCE = 1e-6
JSON = "application/json"
ARROW = "application/vnd.apache.arrow.stream"
INT64 = (-(2**63), 2**63 - 1)
AWKWARD_INTEGERS = st.one_of(
    st.integers(2**53 - 2, 2**53 + 4),
    st.integers(*INT64),
    st.sampled_from([0, 17, 18, 120, 121, -1, 10**9, 10**9 + 1, 2**62]),
)
AWKWARD_FLOATS = st.one_of(
    st.sampled_from([-0.0, 0.0, 5e-324, 1e-300, 1e300, 17.5, 18.0, 120.0, 120.25, -1e-9, 0.5]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(0, 200, allow_nan=False),
)
AWKWARD_TEXT = st.one_of(
    st.sampled_from(["30", " 30", "3e1", "30.5", "", "-1", "abc", "0x1e"]),
    st.integers(0, 200).map(str),
)


@dataclass(frozen=True)
class Batch:
    kinds: dict[str, str]  # numeric field -> "int" | "float" | "text"
    rows: list[dict[str, Any]]

    def column(self, name: str) -> list[Any]:
        return [row[name] for row in self.rows]

    @property
    def has_null(self) -> bool:
        return any(value is None for row in self.rows for value in row.values())

    @property
    def has_text_numbers(self) -> bool:
        return "text" in self.kinds.values()


def _as_kind(value: Any, kind: str) -> Any:
    """A dataset value in a column of `kind` (the dataset's numbers are whole)."""
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


LAKE = {name: "int" if name in WHOLE_FIELDS else "float" for name in NUMERIC_FIELDS}
# The column types of a batch: as in a lake (whole-number fields as integers), all floats, or
# with two fields' numbers sent as strings. Few, so the Spark job runs once per kind.
KINDS: dict[str, dict[str, str]] = {
    "lake": LAKE,
    "floats": dict.fromkeys(NUMERIC_FIELDS, "float"),
    "text": {**LAKE, "age": "text", "income": "text"},
}


@st.composite
def batches(draw: st.DrawFn, records: list[dict[str, Any]]) -> Batch:
    kinds = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    nullable = {name: draw(st.booleans()) and draw(st.booleans()) for name in FIELDS}
    awkward = {"int": AWKWARD_INTEGERS, "float": AWKWARD_FLOATS, "text": AWKWARD_TEXT}
    rows = []
    for _ in range(draw(st.integers(1, MAX_ROWS))):
        base = records[draw(st.integers(0, len(records) - 1))]
        row = {
            name: base[name] if name in CATEGORICAL_FIELDS else _as_kind(base[name], kinds[name])
            for name in FIELDS
        }
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)):
            if nullable[name] and draw(st.integers(0, 3)) == 0:
                row[name] = None
            elif name in CATEGORICAL_FIELDS:
                valid = categories(name)
                row[name] = draw(
                    st.one_of(
                        st.sampled_from(valid),
                        st.sampled_from(valid).map(str.upper),
                        st.sampled_from(valid).map(str.title),
                        st.sampled_from(valid).map(lambda v: f" {v}"),
                        st.sampled_from(valid).map(lambda v: f"{v} "),
                        st.sampled_from(["", "castle", "-"]),
                    )
                )
            else:
                row[name] = draw(awkward[kinds[name]])
        rows.append(row)
    return Batch(kinds, rows)


@dataclass(frozen=True)
class Verdict:
    """A way's answer for one row: its status and probability, or the field it refused."""

    status: str | None = None
    probability: float | None = None
    field: str | None = None


FIELD_NAME = re.compile(r"(?:\[\d+\]\.)?([a-z_]+)")


def _field(location: str) -> str:
    """`income`, `income[3]`, `[3].income`, `income: ...` -> `income`."""
    match = FIELD_NAME.match(location.strip())
    assert match, location
    return match.group(1)


def _arrow_table(batch: Batch, with_id: bool = False) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    if with_id:
        columns["application_id"] = pa.array([f"A{i:04d}" for i in range(len(batch.rows))])
    types = {"int": pa.int64(), "float": pa.float64(), "text": pa.string()}
    for name in FIELDS:
        kind = pa.string() if name in CATEGORICAL_FIELDS else types[batch.kinds[name]]
        columns[name] = pa.array(batch.column(name), type=kind)
    return pa.table(columns)


class Ways:
    """One shared server and Spark session; each method sends a batch one way."""

    def __init__(self, client: httpx.Client, spark: SparkSession, tag: str, tmp: Path) -> None:
        self.client, self.spark, self.tag, self.tmp = client, spark, tag, tmp
        self.jobs = 0

    def _post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        answer = self.client.post(path, content=content, headers=headers)
        assert answer.status_code < 500, (path, answer.status_code, answer.text[:500])
        return answer

    def _refused(self, answer: httpx.Response, rows: int) -> list[Verdict]:
        """A whole request refused: each row refused naming the field the error names."""
        assert 400 <= answer.status_code < 500, answer.text[:300]
        field = _field(answer.json()["error"])
        return [Verdict(field=field)] * rows

    def classify(self, row: dict[str, Any]) -> tuple[Verdict, set[str]]:
        """The reference: the verdict and every field the answer finds bad."""
        answer = self._post("/classify", orjson.dumps(row), {"content-type": JSON})
        if answer.status_code == 200:
            body = answer.json()
            return Verdict(body["status"], body["probability"]), set()
        assert answer.status_code == 422, answer.text[:300]
        bad = {_field(detail["location"]) for detail in answer.json()["details"]}
        return Verdict(field=_field(answer.json()["error"])), bad

    def classify_batch(self, batch: Batch, accepted: list[bool]) -> list[Verdict | None]:
        """The accepted rows in one batch; each refused row alone (a batch is refused whole)."""
        verdicts: list[Verdict | None] = [None] * len(batch.rows)
        chosen = [i for i, ok in enumerate(accepted) if ok]
        if chosen:
            body = orjson.dumps([batch.rows[i] for i in chosen])
            answer = self._post("/classify_batch", body, {"content-type": JSON})
            assert answer.status_code == 200, answer.text[:300]
            for i, decision in zip(chosen, answer.json(), strict=True):
                verdicts[i] = Verdict(decision["status"], decision["probability"])
        for i, ok in enumerate(accepted):
            if not ok:
                body = orjson.dumps([batch.rows[i]])
                answer = self._post("/classify_batch", body, {"content-type": JSON})
                verdicts[i] = self._refused(answer, 1)[0]
        return verdicts

    def _bulk(self, content: bytes, content_type: str, rows: int) -> list[Verdict]:
        headers = {"content-type": content_type, "accept": JSON}
        answer = self._post("/classify_bulk?per_row=true", content, headers)
        if answer.status_code != 200:
            return self._refused(answer, rows)
        body = answer.json()
        return [
            Verdict(field=_field(error)) if status == "INVALID" else Verdict(status, probability)
            for status, probability, error in zip(
                body["status"], body["probability"], body["error"], strict=True
            )
        ]

    def bulk_json(self, batch: Batch) -> list[Verdict]:
        columns = {name: batch.column(name) for name in FIELDS}
        return self._bulk(orjson.dumps(columns), JSON, len(batch.rows))

    def bulk_csv(self, batch: Batch) -> list[Verdict]:
        text = io.BytesIO()
        pacsv.write_csv(_arrow_table(batch), text)
        return self._bulk(text.getvalue(), "text/csv", len(batch.rows))

    def bulk_arrow(self, batch: Batch) -> list[Verdict]:
        table = _arrow_table(batch)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return self._bulk(sink.getvalue().to_pybytes(), ARROW, len(batch.rows))

    def _v2_answer(self, answer: httpx.Response, rows: int) -> list[Verdict]:
        if answer.status_code != 200:
            return self._refused(answer, rows)
        head = answer.content
        length = answer.headers.get("inference-header-content-length")
        raw = b""
        if length is not None:
            head, raw = answer.content[: int(length)], answer.content[int(length) :]
        outputs = {o["name"]: o for o in orjson.loads(head)["outputs"]}
        assert not raw, "asked for JSON outputs"
        return [
            Verdict(field=_field(error)) if status == "INVALID" else Verdict(status, probability)
            for status, probability, error in zip(
                outputs["status"]["data"],
                outputs["probability"]["data"],
                outputs["error"]["data"],
                strict=True,
            )
        ]

    def v2_json(self, batch: Batch) -> list[Verdict]:
        # Numbers sent as strings go in an FP64 tensor, as a client that forgot to convert would.
        datatypes = {"int": "INT64", "float": "FP64", "text": "FP64"}
        inputs = [
            {
                "name": name,
                "shape": [len(batch.rows)],
                "datatype": "BYTES" if name in CATEGORICAL_FIELDS else datatypes[batch.kinds[name]],
                "data": batch.column(name),
            }
            for name in FIELDS
        ]
        body = orjson.dumps({"inputs": inputs, "parameters": {"per_row": True}})
        answer = self._post("/v2/models/credit_risk/infer", body, {"content-type": JSON})
        return self._v2_answer(answer, len(batch.rows))

    def v2_binary(self, batch: Batch) -> list[Verdict]:
        inputs, raw = [], []
        for name in FIELDS:
            values = batch.column(name)
            kind = "text" if name in CATEGORICAL_FIELDS else batch.kinds[name]
            if kind == "text":
                data = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
                datatype = "BYTES"
            elif kind == "int":
                data, datatype = np.array(values, dtype="<i8").tobytes(), "INT64"
            else:
                data, datatype = np.array(values, dtype="<f8").tobytes(), "FP64"
            inputs.append(
                {"name": name, "shape": [len(values)], "datatype": datatype,
                 "parameters": {"binary_data_size": len(data)}}
            )  # fmt: skip
            raw.append(data)
        head = orjson.dumps({"inputs": inputs, "parameters": {"per_row": True}})
        headers = {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        }
        answer = self._post("/v2/models/credit_risk/infer", head + b"".join(raw), headers)
        return self._v2_answer(answer, len(batch.rows))

    def spark_job(self, batch: Batch) -> list[Verdict]:
        """One job over every row of `batch`."""
        self.jobs += 1
        folder = self.tmp / f"job-{self.jobs}"
        folder.mkdir()
        pq.write_table(_arrow_table(batch, with_id=True), folder / "applicants.parquet")
        out, rejects = folder / "decisions", folder / "rejects"
        args = ["--input", str(folder / "applicants.parquet"), "--output", str(out),
                "--rejects", str(rejects), "--model", self.tag]  # fmt: skip
        try:
            summary = run(parse_args(args), self.spark)  # raises on a failed job
        except InputSchemaError as error:  # a column of the wrong type: no row is scored
            return [Verdict(field=_field(str(error)))] * len(batch.rows)
        assert summary["rows_in"] == len(batch.rows), summary
        verdicts: dict[str, Verdict] = {}
        for row in pq.read_table(out).to_pylist():
            verdicts[row["application_id"]] = Verdict(row["status"], row["probability"])
        for row in pq.read_table(rejects).to_pylist():
            verdicts[row["application_id"]] = Verdict(field=_field(row["error"]))
        return [verdicts[f"A{i:04d}"] for i in range(len(batch.rows))]


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = start_session("local[2]")
    yield session
    session.stop()


Reference = tuple[Verdict, set[str]]  # /classify's verdict and every field it finds bad


def _compare(
    way: str,
    batch: Batch,
    verdicts: list[Verdict] | list[Verdict | None],
    references: list[Reference],
    seen: dict[str, int],
) -> None:
    seen[way] = seen.get(way, 0) + len(verdicts)
    for i, (verdict, (reference, bad)) in enumerate(zip(verdicts, references, strict=True)):
        assert verdict is not None
        where = (way, i, batch.rows[i], verdict, reference)
        if reference.status is None:
            assert verdict.status is None, where
            assert verdict.field in bad, where
        else:
            assert verdict.status == reference.status, where
            assert verdict.probability is not None and reference.probability is not None
            assert abs(verdict.probability - reference.probability) <= TOLERANCE, where


def test_every_way_in_gives_the_same_verdict(
    server: ServedProcess,
    spark: SparkSession,
    exported: ExportSummary,
    records: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    seen: dict[str, int] = {}
    for_spark: dict[tuple[tuple[str, str], ...], list[tuple[Batch, list[Reference]]]] = {}

    with httpx.Client(base_url=server.url, timeout=60) as client:
        ways = Ways(client, spark, exported.onnx_tag, tmp_path)

        @given(batch=batches(records))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the job runs after
        )
        def agree(batch: Batch) -> None:
            references = [ways.classify(row) for row in batch.rows]
            accepted = [verdict.status is not None for verdict, _ in references]
            results: dict[str, list[Verdict | None]] = {
                "/classify_batch": ways.classify_batch(batch, accepted),
                "/classify_bulk JSON": list(ways.bulk_json(batch)),
                "/classify_bulk Arrow": list(ways.bulk_arrow(batch)),
                "V2 JSON": list(ways.v2_json(batch)),
            }
            if not batch.has_text_numbers:
                results["/classify_bulk CSV"] = list(ways.bulk_csv(batch))
            if not batch.has_null:
                results["V2 binary"] = list(ways.v2_binary(batch))
            for way, verdicts in results.items():
                _compare(way, batch, verdicts, references, seen)
            for_spark.setdefault(tuple(batch.kinds.items()), []).append((batch, references))
            seen["accepted"] = seen.get("accepted", 0) + sum(accepted)
            seen["refused"] = seen.get("refused", 0) + len(accepted) - sum(accepted)

        agree()
        for kinds, pending in for_spark.items():  # one job per column kinds, all their rows
            batch = Batch(dict(kinds), [row for b, _ in pending for row in b.rows])
            references = [reference for _, refs in pending for reference in refs]
            _compare("Spark job", batch, ways.spark_job(batch), references, seen)
    print(f"\nrows per way: {seen}")
    assert seen["accepted"] > 0 and seen["refused"] > 0
    assert {"/classify_bulk CSV", "V2 binary", "Spark job"} <= set(seen)

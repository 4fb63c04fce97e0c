"""CreditRiskClient and its async twin against a real server: answers equal in-process ONNX
Runtime, in input order, with the input's own columns carried through."""

import asyncio

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from client import AsyncCreditRiskClient, CreditRiskClient, RequestRejectedError
from export.pipeline import ExportSummary
from harness.process import ServedProcess
from tests.client.conftest import CHUNK_ROWS, Applicants

TOLERANCE = 1e-6
CONCURRENCY = 3

pytestmark = pytest.mark.slow


def _status(p: float) -> str:
    return "DECLINED" if p > 0.5 else "MAYBE" if p > 0.3 else "APPROVED"


def _check_scored(result: pa.Table, applicants: Applicants, model: str) -> None:
    """Every row answered, in input order, beside its own carried columns."""
    assert result.column_names == ["application_id", "branch", "probability", "status", "model"]
    assert result.column("application_id").to_pylist() == applicants.ids
    assert [int(b) for b in result.column("branch").to_pylist()] == (
        applicants.table.column("branch").to_pylist()
    )
    probability = result.column("probability").to_numpy()
    np.testing.assert_allclose(probability, applicants.expected, atol=TOLERANCE)
    assert result.column("status").to_pylist() == [_status(p) for p in probability]
    assert set(result.column("model").to_pylist()) == {model}


def test_classify_and_classify_many_match_in_process(
    server: ServedProcess, records, expected_probability, exported: ExportSummary
) -> None:
    with CreditRiskClient(server.url) as risk:
        for i in (0, 1, 2_345):
            decision = risk.classify(records[i])
            assert decision.probability == pytest.approx(expected_probability[i], abs=TOLERANCE)
            assert decision.status == _status(decision.probability)
            assert decision.model == exported.onnx_tag
        decisions = risk.classify_many(iter(records))  # 5 batches, the last one short
    assert len(decisions) == len(records)
    probability = [d.probability for d in decisions]
    np.testing.assert_allclose(probability, expected_probability, atol=TOLERANCE)
    assert [d.status for d in decisions] == [_status(p) for p in probability]


def test_classify_many_names_a_bad_applicant_by_its_index(server: ServedProcess, records) -> None:
    applicants = [dict(r) for r in records[:2_600]]
    applicants[2_345]["home"] = "castle"
    with CreditRiskClient(server.url) as risk, pytest.raises(RequestRejectedError) as raised:
        risk.classify_many(applicants)
    assert raised.value.status == 422
    assert raised.value.error.startswith("[2345].home: Input should be")
    assert raised.value.details[0]["location"] == "[2345].home"


@pytest.mark.parametrize("kind", ["frame", "arrow", "parquet", "parquet-folder", "csv"])
def test_score_table_every_input_kind(
    kind: str, server: ServedProcess, applicants: Applicants, exported: ExportSummary, tmp_path
) -> None:
    """Chunked over five requests, three at a time; ids and rows stay together."""
    table = applicants.table
    source: object = table
    if kind == "frame":
        source = table.to_pandas()
    elif kind == "parquet":
        source = tmp_path / "applicants.parquet"
        pq.write_table(table, source, row_group_size=1_000)
    elif kind == "parquet-folder":
        source = tmp_path / "applicants"
        source.mkdir()
        for part, start in enumerate(range(0, table.num_rows, 5_000)):
            pq.write_table(table.slice(start, 5_000), source / f"part-{part}.parquet")
    elif kind == "csv":
        source = tmp_path / "applicants.csv"
        pcsv.write_csv(table, source)
    with CreditRiskClient(server.url) as risk:
        result = risk.score_table(
            source, chunk_rows=CHUNK_ROWS, concurrency=CONCURRENCY, progress=False
        )
    _check_scored(result, applicants, exported.onnx_tag)


def test_score_frame_answers_on_the_frame_index(
    server: ServedProcess, applicants: Applicants, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = applicants.table.to_pandas().set_index("application_id")
    with CreditRiskClient(server.url) as risk:
        scores = risk.score_frame(
            frame, chunk_rows=CHUNK_ROWS, concurrency=CONCURRENCY, progress=True
        )
    assert "scoring: 100%" in capsys.readouterr().err  # the forced progress bar, finished
    assert scores.index.equals(frame.index)
    assert list(scores.columns) == ["branch", "probability", "status", "model"]
    np.testing.assert_allclose(scores["probability"], applicants.expected, atol=TOLERANCE)


def test_score_table_names_a_bad_row_by_its_place_in_the_whole_input(
    server: ServedProcess, applicants: Applicants
) -> None:
    """Row 9,876 is row 1,376 of the fourth request: the error says 9876."""
    income = applicants.table.column("income").to_pylist()
    income[9_876] = -5.0
    table = applicants.table.set_column(
        applicants.table.schema.get_field_index("income"), "income", pa.array(income)
    )
    with CreditRiskClient(server.url) as risk, pytest.raises(RequestRejectedError) as raised:
        risk.score_table(table, chunk_rows=CHUNK_ROWS, concurrency=CONCURRENCY)
    assert raised.value.status == 422
    assert raised.value.error.startswith("income[9876]: Input should be a finite number")
    assert "income[9876]" in str(raised.value)
    assert raised.value.details[0]["location"] == "income[9876]"


def test_empty_input_sends_nothing(applicants: Applicants) -> None:
    """An input without rows gets a result without rows (nothing listens on this port)."""
    with CreditRiskClient("http://127.0.0.1:9") as risk:
        result = risk.score_table(applicants.table.slice(0, 0))
    assert result.num_rows == 0
    assert result.column_names == ["application_id", "branch", "probability", "status", "model"]


def test_async_twin(
    server: ServedProcess, records, expected_probability, applicants, exported
) -> None:
    async def run() -> None:
        async with AsyncCreditRiskClient(server.url) as risk:
            decision = await risk.classify(records[7])
            assert decision.probability == pytest.approx(expected_probability[7], abs=TOLERANCE)
            decisions = await risk.classify_many(records, concurrency=3)
            np.testing.assert_allclose(
                [d.probability for d in decisions], expected_probability, atol=TOLERANCE
            )
            result = await risk.score_table(
                applicants.table, chunk_rows=CHUNK_ROWS, concurrency=CONCURRENCY
            )
            _check_scored(result, applicants, exported.onnx_tag)
            pieces = [
                piece.num_rows
                async for piece in risk.iter_scores(applicants.table, chunk_rows=5_000)
            ]
            assert pieces == [5_000, 5_000, 2_000]
            bad = [dict(r) for r in records[:1_500]]
            bad[1_234]["age"] = 7
            with pytest.raises(RequestRejectedError, match=r"\[1234\]\.age"):
                await risk.classify_many(bad)

    asyncio.run(run())

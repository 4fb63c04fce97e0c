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
    assert raised.value.error == "income[9876]: must be a number from 0 to 1e+09; got -5"
    assert "income[9876]" in str(raised.value)
    assert raised.value.details[0]["location"] == "income[9876]"


# Row -> (field, value, the error the rejects must give it): across chunk boundaries (2,500
# rows each), a float 5.0 quoted as the client sent it ("got 5"), an int64 above 2**53.
BAD_ROWS = {
    0: ("age", 5.0, "age: must be a number from 18 to 120; got 5"),
    2_499: ("home", "castle", "home: must be one of unk, rent, owner, private, ignore, parents, "
            "other; got 'castle'"),
    2_500: ("income", None, "income: missing value"),
    7_777: ("price", 2**60, f"price: must be a number from 0 to 1e+09; got {2**60}"),
    11_999: ("job", "pilot", "job: must be one of unk, fixed, partime, freelance, others; got "
             "'pilot'"),
}  # fmt: skip


def _with_bad_rows(table: pa.Table) -> pa.Table:
    for row, (field, value, _) in BAD_ROWS.items():
        values = table.column(field).to_pylist()
        values[row] = value
        table = table.set_column(
            table.schema.get_field_index(field),
            field,
            pa.array(values, table.schema.field(field).type),
        )
    return table


def _check_rejects(scored: pa.Table, rejects: pa.Table, table: pa.Table, applicants) -> None:
    """Valid rows scored in input order; the invalid ones rejected whole, with their errors."""
    valid = [i for i in range(table.num_rows) if i not in BAD_ROWS]
    ids = applicants.ids
    assert scored.column("application_id").to_pylist() == [ids[i] for i in valid]
    np.testing.assert_allclose(
        scored.column("probability").to_numpy(), applicants.expected[valid], atol=TOLERANCE
    )
    assert rejects.column_names == [*table.column_names, "error"]
    assert rejects.column("application_id").to_pylist() == [ids[i] for i in BAD_ROWS]
    assert rejects.column("error").to_pylist() == [bad[2] for bad in BAD_ROWS.values()]
    assert rejects.drop_columns(["error"]).equals(table.take(list(BAD_ROWS)))


def test_score_table_with_rejects_scores_every_valid_row(
    server: ServedProcess, applicants: Applicants, tmp_path
) -> None:
    table = _with_bad_rows(applicants.table)
    rejects = tmp_path / "rejects.parquet"
    with CreditRiskClient(server.url) as risk:
        scored = risk.score_table(
            table, chunk_rows=CHUNK_ROWS, concurrency=CONCURRENCY, rejects=rejects
        )
    _check_rejects(scored, pq.read_table(rejects), table, applicants)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejects.parquet"]


def test_async_iter_scores_with_rejects(
    server: ServedProcess, applicants: Applicants, tmp_path
) -> None:
    table = _with_bad_rows(applicants.table)
    written: list[pa.Table] = []

    class Collected:
        def write(self, piece: pa.Table) -> None:
            written.append(piece)

    async def run() -> list[pa.Table]:
        async with AsyncCreditRiskClient(server.url) as risk:
            return [
                piece
                async for piece in risk.iter_scores(
                    table, chunk_rows=CHUNK_ROWS, concurrency=CONCURRENCY, rejects=Collected()
                )
            ]

    pieces = asyncio.run(run())
    _check_rejects(pa.concat_tables(pieces), pa.concat_tables(written), table, applicants)


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

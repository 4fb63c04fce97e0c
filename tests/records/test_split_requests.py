"""Records of requests whose rows are not all scored together: each record's row_index is the
applicant's place in the request (a canary's groups, a bulk input's valid rows among invalid
ones), and its reason codes come from the model that decided it (the challenger's rows of a
canary split, the new champion's after a models switch), the same the answer gave. In
process: two real models, the real switch and recorder."""

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from export.pipeline import ExportSummary
from features.schema import FIELDS
from service.records.assemble import ModelReasons
from service.settings import ServiceSettings
from service.wiring import Worker, build_worker, model_switch
from tests.inprocess import app_for_worker, client_for_app

REASONS = [f"reason_{k}" for k in range(1, 5)]


def _canary_worker(champion: str, challenger: str, models: Path, log: Path) -> Worker:
    """A worker whose models file splits applicants half and half, recording to `log`."""
    models.write_text(
        f"champion {champion}\nchallenger {challenger}\nmode canary\ncanary_fraction 0.5\n"
    )
    settings = ServiceSettings(
        model_tag=champion, models_file=models, decision_log=str(log), drain_delay_s=0
    )
    return build_worker(settings)


def test_each_record_has_the_reasons_of_the_model_that_decided(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    models, log = tmp_path / "models", tmp_path / "decision log"
    worker = _canary_worker(exported.onnx_tag, other_model, models, log)
    switch = model_switch(worker)
    assert switch is not None
    body = {field: [record[field] for record in records[:400]] for field in FIELDS}

    async def go() -> list[tuple[str, dict[str, Any]]]:
        stack = app_for_worker(worker)
        answers = []
        async with client_for_app(stack.app) as client:
            for promote in (False, True):
                if promote:  # the challenger becomes the only model
                    models.write_text(f"champion {other_model}\n")
                    assert await switch.check()
                answer = await client.post("/classify_bulk?reasons=4", json=body)
                assert answer.status_code == 200, answer.text
                answers.append((answer.headers["x-request-id"], answer.json()))
        return answers

    answers = asyncio.run(go())
    worker.scorer.close()  # every record written
    table = ds.dataset(log, format="parquet").to_table().to_pylist()
    split, promoted = answers
    assert set(split[1]["row_model"]) == {exported.onnx_tag, other_model}
    assert promoted[1]["model"] == other_model and "row_model" not in promoted[1]
    for request_id, answer in answers:
        rows = sorted(
            (r for r in table if r["request_id"] == request_id), key=lambda r: r["row_index"]
        )
        assert len(rows) == 400
        deciders = answer.get("row_model") or [answer["model"]] * 400
        for i, row in enumerate(rows):
            assert row["model"] == deciders[i]
            assert [row[name] for name in REASONS] == [answer[name][i] for name in REASONS], (
                request_id,
                i,
                row["model"],
            )


def test_a_row_wise_batch_split_by_a_canary_keeps_places_and_reasons(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    """/explain_batch through a canary: each group is recorded with the places of its rows in
    the request, and the reason codes the answer gave (the deciding model's)."""
    models, log = tmp_path / "models", tmp_path / "decision log"
    worker = _canary_worker(exported.onnx_tag, other_model, models, log)

    async def go() -> tuple[str, list[dict[str, Any]]]:
        stack = app_for_worker(worker)
        async with client_for_app(stack.app) as client:
            answer = await client.post("/explain_batch", json=records[:200])
            assert answer.status_code == 200, answer.text
            return answer.headers["x-request-id"], answer.json()

    request_id, answer = asyncio.run(go())
    worker.scorer.close()
    assert {decision["model"] for decision in answer} == {exported.onnx_tag, other_model}
    table = ds.dataset(log, format="parquet").to_table().to_pylist()
    by_index = {r["row_index"]: r for r in table if r["request_id"] == request_id}
    assert sorted(by_index) == list(range(200))
    for i, decision in enumerate(answer):
        row = by_index[i]
        assert row["model"] == decision["model"] and row["status"] == decision["status"]
        codes = [reason["code"] for reason in decision["reasons"]]
        assert [row[name] for name in REASONS] == codes + [None] * (4 - len(codes))


def test_valid_rows_among_invalid_ones_keep_their_places(
    exported: ExportSummary, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    log = tmp_path / "decision log"
    settings = ServiceSettings(model_tag=exported.onnx_tag, decision_log=str(log), drain_delay_s=0)
    worker = build_worker(settings)
    body = {field: [record[field] for record in records[:20]] for field in FIELDS}
    invalid = {3, 4, 11}
    for i in invalid:
        body["age"][i] = 12  # below 18: that row is INVALID, the others are scored

    async def go() -> tuple[str, dict[str, Any]]:
        stack = app_for_worker(worker)
        async with client_for_app(stack.app) as client:
            answer = await client.post("/classify_bulk?per_row=true&reasons=4", json=body)
            assert answer.status_code == 200, answer.text
            return answer.headers["x-request-id"], answer.json()

    request_id, answer = asyncio.run(go())
    worker.scorer.close()
    table = ds.dataset(log, format="parquet").to_table().to_pylist()
    by_index = {r["row_index"]: r for r in table if r["request_id"] == request_id}
    assert sorted(by_index) == [i for i in range(20) if i not in invalid]
    for i, row in by_index.items():
        assert row["age"] == body["age"][i]
        assert np.float32(row["probability"]) == np.float32(answer["probability"][i])
        assert [row[name] for name in REASONS] == [answer[name][i] for name in REASONS]


def test_model_reasons_keep_the_last_models_added() -> None:
    reasons = ModelReasons(keep=2)
    codes = {tag: (lambda features, tag=tag: [tag]) for tag in ("a", "b", "c")}
    for tag in ("a", "b", "a", "c"):  # a again: it becomes the newest
        reasons.add(tag, codes[tag])  # type: ignore[arg-type]
    assert reasons("b") is None and reasons("a") is codes["a"] and reasons("c") is codes["c"]

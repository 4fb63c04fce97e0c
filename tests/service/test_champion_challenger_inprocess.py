"""Shadow work under overload, in process (real models, the worker's own door and recorder):
while the door sheds load the challenger's work is dropped, and the champion's decisions are
still recorded, without challenger columns."""

import asyncio
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from export.pipeline import ExportSummary
from service.settings import ServiceSettings
from service.wiring import build_worker
from tests.inprocess import app_for_worker, client_for_app


def test_shadow_is_dropped_under_pressure_and_the_decisions_still_recorded(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    challenger = other_model
    models, log = tmp_path / "models", tmp_path / "decision log"
    models.write_text(f"champion {exported.onnx_tag}\nchallenger {challenger}\nmode shadow\n")
    settings = ServiceSettings(
        model_tag=exported.onnx_tag, models_file=models, decision_log=str(log), drain_delay_s=0
    )
    worker = build_worker(settings)
    assert worker.info()["models"]["mode"] == "shadow"  # type: ignore[index]
    shedding = [True]

    async def go() -> tuple[str, str]:
        stack = app_for_worker(worker)
        # The door's overload signal, as it would read while shedding (then not).
        worker.scorer.shadow_pressure = lambda: shedding[0]
        ids = []
        async with client_for_app(stack.app) as client:
            for shed in (True, False):
                shedding[0] = shed
                answer = await client.post("/classify_batch", json=records[:50])
                assert answer.status_code == 200
                assert {d["model"] for d in answer.json()} == {exported.onnx_tag}
                ids.append(answer.headers["x-request-id"])
        await worker.scorer.finish_shadow()
        return ids[0], ids[1]

    dropped, shadowed = asyncio.run(go())
    worker.scorer.close()  # every record written
    table = ds.dataset(log, format="parquet").to_table().to_pylist()
    by_request: dict[str, list[dict[str, Any]]] = {}
    for row in table:
        by_request.setdefault(row["request_id"], []).append(row)
    assert len(by_request[dropped]) == 50 and len(by_request[shadowed]) == 50
    assert {r["challenger_model"] for r in by_request[dropped]} == {None}
    assert {r["challenger_model"] for r in by_request[shadowed]} == {challenger}
    assert all(r["challenger_probability"] is not None for r in by_request[shadowed])

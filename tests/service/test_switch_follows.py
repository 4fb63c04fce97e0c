"""What the door built from the served models follows a models-file switch, in process (real
models, the real switch): the batcher queue bound a route checks before parsing (the new
champion's batcher, not the replaced one's), the OpenAPI document's model tag and version, and
the queue-depth gauge's reading."""

import asyncio
from pathlib import Path
from typing import Any

from export.pipeline import ExportSummary
from service.model_switch import ModelSwitch
from service.settings import ServiceSettings
from service.wiring import Worker, _load_readings, build_worker, model_switch
from tests.inprocess import app_for_worker, client_for_app


def _watched_worker(champion: str, models: Path) -> tuple[Worker, ModelSwitch]:
    """A worker serving `champion` from the models file `models`, and its watch of the file."""
    models.write_text(f"champion {champion}\n")
    settings = ServiceSettings(model_tag=champion, models_file=models, drain_delay_s=0)
    worker = build_worker(settings)
    switch = model_switch(worker)
    assert switch is not None
    return worker, switch


def test_a_switch_serves_the_new_champions_queue_bound_and_document(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    worker, switch = _watched_worker(exported.onnx_tag, models)

    async def go() -> None:
        stack = app_for_worker(worker)
        readings = _load_readings(stack.door, worker)  # as the door's gauges read at start-up
        async with client_for_app(stack.app) as client:

            async def refused_before_parsing() -> bool:
                """A body that parsing would refuse with 400: a 503 means the queue bound
                refused it first."""
                answer = await client.post("/classify", content=b"{not json")
                assert answer.status_code in (400, 503), answer.text
                return answer.status_code == 503

            document = (await client.get("/docs.json")).json()
            assert document["info"]["version"] == exported.onnx_tag
            first = (await client.get("/v2/models/credit_risk")).json()["versions"][0]
            assert first in (await client.get("/docs.json")).text
            replaced = worker.batcher
            assert replaced is not None

            models.write_text(f"champion {other_model}\n")
            assert await switch.check()
            served = worker.batcher
            assert served is not None and served is not replaced
            answer = await client.post("/classify", json=records[0])
            assert answer.status_code == 200 and answer.json()["model"] == other_model

            # A full queue on the replaced batcher no longer refuses; on the served one it does.
            replaced._queued_rows = replaced.max_queue_rows
            assert not await refused_before_parsing()
            replaced._queued_rows = 0
            served._queued_rows = served.max_queue_rows
            assert await refused_before_parsing()
            # The queue-depth gauge reads the served batcher.
            assert readings.queued_rows["score"]() == served.max_queue_rows
            served._queued_rows = 0
            assert readings.queued_rows["score"]() == 0

            # The document names the served model, and its versioned paths the served version.
            text = (await client.get("/docs.json")).text
            second = (await client.get("/v2/models/credit_risk")).json()["versions"][0]
            assert second != first and second in text and first not in text
            assert (await client.get("/docs.json")).json()["info"]["version"] == other_model

    asyncio.run(go())
    worker.scorer.close()


def test_a_failing_follower_neither_undoes_the_switch_nor_stops_the_others(
    exported: ExportSummary, other_model: str, tmp_path: Path, caplog: Any
) -> None:
    models = tmp_path / "models"
    worker, switch = _watched_worker(exported.onnx_tag, models)
    followed = []

    def broken() -> None:
        raise RuntimeError("a follower's bug")

    worker.on_switch[:0] = [broken]  # first: the built-in followers come after it
    worker.on_switch.append(lambda: followed.append(worker.scorer.model_tag))

    async def go() -> bool:
        app_for_worker(worker)
        models.write_text(f"champion {other_model}\n")
        return await switch.check()

    assert asyncio.run(go())
    assert worker.scorer.model_tag == other_model and followed == [other_model]
    assert "after the models switch, " in caplog.text and "RuntimeError" in caplog.text
    worker.scorer.close()

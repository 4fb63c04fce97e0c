"""The Open Inference Protocol under a canary, in process (two real models): the answer names
the model that decided each row (`row_model`, as /classify_bulk's column), unasked when the
challenger decided any of them and whenever it is asked for; the model metadata lists it."""

import asyncio
from pathlib import Path
from typing import Any

from export.pipeline import ExportSummary
from features.schema import FIELDS
from service.settings import ServiceSettings
from service.wiring import build_worker
from tests.bodies import applicant_columns, v2_inputs
from tests.inprocess import app_for_worker, client_for_app

INFER = "/v2/models/credit_risk/infer"


def test_v2_names_the_model_that_decided_each_row(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.write_text(
        f"champion {exported.onnx_tag}\nchallenger {other_model}\n"
        "mode canary\ncanary_fraction 0.5\n"
    )
    settings = ServiceSettings(model_tag=exported.onnx_tag, models_file=models, drain_delay_s=0)
    worker = build_worker(settings)
    applicants = records[:60]

    async def go() -> None:
        stack = app_for_worker(worker)
        async with client_for_app(stack.app) as client:
            metadata = (await client.get("/v2/models/credit_risk")).json()
            assert "row_model" in [output["name"] for output in metadata["outputs"]]
            columns = {name: [a[name] for a in applicants] for name in FIELDS}
            bulk = (await client.post("/classify_bulk", json=columns)).json()
            assert set(bulk["row_model"]) == {exported.onnx_tag, other_model}

            answer = (
                await client.post(INFER, json={"inputs": v2_inputs(applicant_columns(applicants))})
            ).json()
            outputs = {output["name"]: output["data"] for output in answer["outputs"]}
            assert list(outputs) == ["probability", "status", "row_model"]
            assert outputs["row_model"] == bulk["row_model"]

            for tag in (exported.onnx_tag, other_model):  # one applicant that model decides
                one = v2_inputs(applicant_columns([applicants[bulk["row_model"].index(tag)]]))
                asked = {"inputs": one, "outputs": [{"name": "row_model"}]}
                answer = (await client.post(INFER, json=asked)).json()
                assert answer["outputs"][0]["data"] == [tag]
                unasked = (await client.post(INFER, json={"inputs": one})).json()
                names = [output["name"] for output in unasked["outputs"]]
                challenger = tag == other_model  # the answer's model names the champion
                assert names == ["probability", "status"] + ["row_model"] * challenger

    asyncio.run(go())
    worker.scorer.close()

"""The V2 protocol follows a models switch (the models file promoting another champion): model
metadata, the versioned paths and the answers' `model_version` name the version served now; the
replaced version's paths get the V2 404 naming the served one. In process, the worker's own
door; the promoted champion is the same model under another tag (what is under test is the
version, not the model's loading)."""

import asyncio
import dataclasses
from typing import Any

from export.pipeline import ExportSummary
from service.scoring import ServedModels
from service.settings import ServiceSettings
from service.wiring import build_worker
from tests.bodies import applicant_columns, v2_inputs
from tests.inprocess import app_for_worker, client_for_app

MODEL = "/v2/models/credit_risk"


def test_v2_names_the_version_served_now(
    exported: ExportSummary, records: list[dict[str, Any]]
) -> None:
    worker = build_worker(ServiceSettings(model_tag=exported.onnx_tag, drain_delay_s=0))
    first = exported.onnx_tag.split(":", 1)[1]
    promoted_tag = f"{exported.onnx_tag.split(':', 1)[0]}:promoted"
    body = {"inputs": v2_inputs(applicant_columns(records[:1]))}

    async def go() -> None:
        stack = app_for_worker(worker)
        async with client_for_app(stack.app) as client:
            assert (await client.get(MODEL)).json()["versions"] == [first]
            before = await client.post(f"{MODEL}/versions/{first}/infer", json=body)
            assert before.status_code == 200, before.text
            assert before.json()["model_version"] == first

            champion = dataclasses.replace(worker.scorer.served, model_tag=promoted_tag)
            worker.scorer.switch(ServedModels(champion))

            assert (await client.get(MODEL)).json()["versions"] == ["promoted"]
            assert (await client.get(f"{MODEL}/versions/promoted")).status_code == 200
            assert (await client.get(f"{MODEL}/versions/promoted/ready")).status_code == 200
            after = await client.post(f"{MODEL}/versions/promoted/infer", json=body)
            assert after.status_code == 200, after.text
            assert after.json()["model_version"] == "promoted"
            assert after.json()["parameters"]["model"] == promoted_tag
            assert after.json()["outputs"] == before.json()["outputs"]  # the same model
            unversioned = await client.post(f"{MODEL}/infer", json=body)
            assert unversioned.json()["model_version"] == "promoted"
            old = await client.post(f"{MODEL}/versions/{first}/infer", json=body)
            assert old.status_code == 404, old.text
            assert "no such model, version or path" in old.json()["error"]

    asyncio.run(go())
    worker.scorer.close()

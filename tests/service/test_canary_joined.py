"""A canary's two models in one session, in process with two real models: joined at start and
by a models-file switch, each applicant answered with its model's own probability to the bit;
CREDIT_RISK_CANARY_JOINED_CALLS=false keeps one call per model."""

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from export.pipeline import ExportSummary
from runners.batcher import JoinedModel
from service.scoring import CreditScorer
from service.settings import ServiceSettings
from service.wiring import Worker, build_worker, model_switch


def _canary(path: Path, champion: str, challenger: str) -> Path:
    path.write_text(
        f"champion {champion}\nchallenger {challenger}\nmode canary\ncanary_fraction 0.5\n"
    )
    return path


def _challenger_model(scorer: CreditScorer) -> object:
    challenger = scorer.models.challenger
    assert challenger is not None
    return challenger.predict_rows.keywords["model"]  # type: ignore[attr-defined]


def _assert_own_answers(worker: Worker, applicants: list[dict[str, Any]]) -> None:
    """Concurrent single applicants (merged flushes of both models): each answer is the
    probability its named model gives alone."""
    scorer = worker.scorer
    engines = worker.engines
    assert engines is not None and engines.challenger is not None
    runners = {e.runner.tag: e.runner for e in engines.engines()}

    async def ask() -> list[dict[str, Any]]:
        bodies = [orjson.dumps(applicant) for applicant in applicants]
        return [orjson.loads(a) for a in await asyncio.gather(*map(scorer.classify_json, bodies))]

    answers = asyncio.run(ask())
    features = scorer.encoder.encode_rows(applicants)
    alone = {tag: runner.predict(features) for tag, runner in runners.items()}
    assert {answer["model"] for answer in answers} == set(runners)  # both decided some
    for i, answer in enumerate(answers):
        assert np.float32(answer["probability"]) == alone[answer["model"]][i]


def test_a_canary_joins_its_models_and_answers_each_applicant_by_its_own(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    models = _canary(tmp_path / "models", exported.onnx_tag, other_model)
    worker = build_worker(ServiceSettings(model_tag=exported.onnx_tag, models_file=models))
    assert isinstance(_challenger_model(worker.scorer), JoinedModel)
    _assert_own_answers(worker, records[:300])
    worker.scorer.close()

    settings = ServiceSettings(
        model_tag=exported.onnx_tag, models_file=models, canary_joined_calls=False
    )
    apart = build_worker(settings)
    assert not isinstance(_challenger_model(apart.scorer), JoinedModel)
    apart.scorer.close()


def test_a_switch_to_a_canary_joins_its_models(
    exported: ExportSummary, other_model: str, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.write_text(f"champion {exported.onnx_tag}\n")
    worker = build_worker(ServiceSettings(model_tag=exported.onnx_tag, models_file=models))
    switch = model_switch(worker)
    assert switch is not None
    _canary(models, exported.onnx_tag, other_model)
    assert asyncio.run(switch.check())
    assert isinstance(_challenger_model(worker.scorer), JoinedModel)
    _assert_own_answers(worker, records[:300])
    worker.scorer.close()

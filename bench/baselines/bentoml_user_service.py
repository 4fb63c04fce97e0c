"""Baseline: the course service written the way a BentoML 1.4 user would write it today.

    BASELINE_MODEL_TAG=credit_risk_model:latest \
        bentoml serve bench.baselines.bentoml_user_service:CreditRiskBaseline

BentoML's own XGBoost model loading (`bentoml.models.BentoModel` + `bentoml.xgboost.load_model`),
the stored DictVectorizer, the raw JSON object in (any fields), a plain non-batchable
`@bentoml.api`, DictVectorizer + DMatrix + predict per request. No validation, no lean routes,
default BentoML settings; 2 workers, like every other server in the benchmark.
"""

import os
from typing import Any

import bentoml
import xgboost as xgb
from pydantic import RootModel


class RawApplicant(RootModel[dict[str, Any]]):
    """The request body is the applicant object itself, any fields (the course's client format).

    Not `BaseModel` with `extra="allow"`: BentoML passes only declared fields to the method, so
    every applicant would arrive as an empty dict (and score the same).
    """


@bentoml.service(workers=2)
class CreditRiskBaseline:
    model_ref = bentoml.models.BentoModel(
        os.environ.get("BASELINE_MODEL_TAG", "credit_risk_model:latest")
    )

    def __init__(self) -> None:
        self.booster = bentoml.xgboost.load_model(self.model_ref)
        self.vectorizer = self.model_ref.custom_objects["dict_vectorizer"]

    @bentoml.api(route="/classify", input_spec=RawApplicant)
    def classify(self, root: dict[str, Any]) -> dict[str, Any]:
        features = self.vectorizer.transform([root])
        probability = float(self.booster.predict(xgb.DMatrix(features))[0])
        status = "DECLINED" if probability > 0.5 else "MAYBE" if probability > 0.3 else "APPROVED"
        return {"status": status, "probability": probability}

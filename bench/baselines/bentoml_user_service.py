"""Baseline: the course service written the way a BentoML 1.4 user would write it today.

BentoML's own XGBoost model loading, the stored DictVectorizer, raw JSON in (any fields),
a plain non-batchable API. No validation, no lean routes, default BentoML settings.
"""

import os
from typing import Any

import bentoml
import xgboost as xgb
from pydantic import BaseModel, ConfigDict


class RawApplicant(BaseModel):
    model_config = ConfigDict(extra="allow")


@bentoml.service(workers=2)
class CreditRiskBaseline:
    model_ref = bentoml.models.BentoModel(
        os.environ.get("BASELINE_MODEL_TAG", "credit_risk_model:latest")
    )

    def __init__(self) -> None:
        self.booster = bentoml.xgboost.load_model(self.model_ref)
        self.vectorizer = self.model_ref.custom_objects["dict_vectorizer"]

    @bentoml.api(route="/classify", input_spec=RawApplicant)
    def classify(self, **applicant: Any) -> dict[str, Any]:
        features = self.vectorizer.transform([applicant])
        probability = float(self.booster.predict(xgb.DMatrix(features))[0])
        status = "DECLINED" if probability > 0.5 else "MAYBE" if probability > 0.3 else "APPROVED"
        return {"status": status, "probability": probability}

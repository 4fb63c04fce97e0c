"""Baseline: the module-5 style Flask app, served by gunicorn (2 workers, OMP_NUM_THREADS=1).

    OMP_NUM_THREADS=1 gunicorn --workers 2 --bind 127.0.0.1:9696 bench.baselines.flask_app:app

Written the way the course writes it: the DictVectorizer and the booster loaded at import,
`request.get_json()`, DictVectorizer + DMatrix + predict per request, `jsonify`. The model
comes from the BentoML store (BASELINE_MODEL_TAG) instead of a pickle, so every server in the
benchmark scores with the same model. `/readyz` is only for the benchmark's readiness probe.
"""

import os

import bentoml
import xgboost as xgb
from flask import Flask, Response, jsonify, request

model = bentoml.models.get(os.environ.get("BASELINE_MODEL_TAG", "credit_risk_model:latest"))
booster = bentoml.xgboost.load_model(model)
dv = model.custom_objects["dict_vectorizer"]
app = Flask("credit-risk")


@app.route("/classify", methods=["POST"])
def classify() -> Response:
    client = request.get_json()
    X = dv.transform([client])
    probability = float(booster.predict(xgb.DMatrix(X))[0])
    status = "DECLINED" if probability > 0.5 else "MAYBE" if probability > 0.3 else "APPROVED"
    return jsonify({"status": status, "probability": probability})


@app.route("/readyz")
def readyz() -> str:
    return "ok"

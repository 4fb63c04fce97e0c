"""Baseline: the module-5 style Flask app, served by gunicorn (2 workers, OMP_NUM_THREADS=1)."""

import os

import bentoml
import xgboost as xgb
from flask import Flask, jsonify, request

model = bentoml.models.get(os.environ.get("BASELINE_MODEL_TAG", "credit_risk_model:latest"))
booster = bentoml.xgboost.load_model(model)
vectorizer = model.custom_objects["dict_vectorizer"]
app = Flask("credit-risk")


@app.route("/classify", methods=["POST"])
def classify() -> object:
    features = vectorizer.transform([request.get_json()])
    probability = float(booster.predict(xgb.DMatrix(features))[0])
    status = "DECLINED" if probability > 0.5 else "MAYBE" if probability > 0.3 else "APPROVED"
    return jsonify({"status": status, "probability": probability})


@app.route("/readyz")
def readyz() -> str:
    return "ok"

"""The servers the HTTP benchmark starts: our service in each mode, and the two baselines."""

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

BASELINE = "bentoml-user-baseline"
FLASK = "flask-gunicorn"
OURS = "onnx-adaptive"


@dataclass(frozen=True)
class Mode:
    """One server configuration. An empty `command` means our service (`service.app`)."""

    name: str
    description: str
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    default: bool = True  # part of a plain `python -m bench.http` run

    @property
    def ours(self) -> bool:
        """Our service (it has /info and /classify_bulk), not a baseline."""
        return not self.command


def _bentoml_serve(service: str) -> tuple[str, ...]:
    return (
        sys.executable, "-m", "bentoml", "serve", service,
        "--host", "127.0.0.1", "--port", "{port}",
    )  # fmt: skip


_GUNICORN = (
    sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:{port}",
    "--log-level", "warning", "bench.baselines.flask_app:app",
)  # fmt: skip

MODES: tuple[Mode, ...] = (
    Mode(OURS, "ONNX Runtime + in-process adaptive batcher (the default server)"),
    Mode(
        "onnx-bentoml-batching",
        "ONNX Runtime behind BentoML's batchable API (bentoml.depends)",
        {"CREDIT_RISK_BATCHING": "bentoml"},
    ),
    Mode("onnx-unbatched", "ONNX Runtime, one model call per request", {"CREDIT_RISK_BATCHING": "none"}),
    Mode("xgboost-adaptive", "native XGBoost + adaptive batcher", {"CREDIT_RISK_ENGINE": "xgboost"}),
    Mode(
        "xgboost-unbatched",
        "native XGBoost, one model call per request",
        {"CREDIT_RISK_ENGINE": "xgboost", "CREDIT_RISK_BATCHING": "none"},
    ),
    Mode(
        BASELINE,
        "course service the BentoML 1.4 way (bentoml.xgboost, DictVectorizer, plain API)",
        command=_bentoml_serve("bench.baselines.bentoml_user_service:CreditRiskBaseline"),
    ),
    Mode(
        FLASK,
        "module-5 Flask + gunicorn, 2 sync workers, one OpenMP thread each",
        {"OMP_NUM_THREADS": "1"},
        _GUNICORN,
    ),
    # Optional ablations, run only when named in --modes.
    Mode(
        "xgboost-adaptive-offload",
        "native XGBoost + adaptive batcher, model calls in a worker thread",
        {"CREDIT_RISK_ENGINE": "xgboost", "CREDIT_RISK_OFFLOAD_MODEL_CALLS": "true"},
        default=False,
    ),
)  # fmt: skip

MODES_BY_NAME: dict[str, Mode] = {mode.name: mode for mode in MODES}
DEFAULT_MODES: tuple[str, ...] = tuple(mode.name for mode in MODES if mode.default)


def select(names: str) -> list[Mode]:
    """Modes from a comma-separated list; raises ValueError naming an unknown one."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MODES_BY_NAME]
    if unknown:
        raise ValueError(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(MODES_BY_NAME)}")
    return [MODES_BY_NAME[name] for name in chosen]

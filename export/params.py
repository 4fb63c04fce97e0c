"""Training parameters chosen on the command line (`--param NAME=VALUE`), checked before training.

Only parameters that change which trees are grown are accepted: the objective, the evaluation
metric and the thread count stay the course's, so every model version outputs P(default) from
binary:logistic and converts to ONNX the same way. No overrides means the course model.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from export.train import NUM_BOOST_ROUND, XGB_PARAMS

ParamValue = int | float


class ParamError(ValueError):
    """A `--param` assignment that cannot be used; the message names the parameter."""


@dataclass(frozen=True)
class ParamSpec:
    kind: type[int] | type[float]
    low: float
    high: float
    low_open: bool = False  # True: the value must be strictly above `low`

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        if self.low_open:
            return f"must be {noun} above {self.low:g}, at most {self.high:g}"
        return f"must be {noun} from {self.low:g} to {self.high:g}"

    def parse(self, name: str, text: str) -> ParamValue:
        try:
            value: ParamValue = int(text) if self.kind is int else float(text)
        except ValueError:
            raise ParamError(f"--param {name}: {self.describe()}; got {text!r}") from None
        above_low = value > self.low if self.low_open else value >= self.low
        # math.isfinite also refuses nan and inf, which compare False / pass the bounds oddly.
        if not (math.isfinite(value) and above_low and value <= self.high):
            raise ParamError(f"--param {name}: {self.describe()}; got {text!r}")
        return value


# XGBoost's own names (native API). Bounds are XGBoost's where it has them, otherwise a sane cap.
PARAM_SPECS: dict[str, ParamSpec] = {
    "eta": ParamSpec(float, 0.0, 1.0, low_open=True),
    "max_depth": ParamSpec(int, 1, 16),
    "min_child_weight": ParamSpec(float, 0.0, 1e6),
    "gamma": ParamSpec(float, 0.0, 1e6),
    "subsample": ParamSpec(float, 0.0, 1.0, low_open=True),
    "colsample_bytree": ParamSpec(float, 0.0, 1.0, low_open=True),
    "lambda": ParamSpec(float, 0.0, 1e6),
    "alpha": ParamSpec(float, 0.0, 1e6),
    "scale_pos_weight": ParamSpec(float, 0.0, 1e6, low_open=True),
    "seed": ParamSpec(int, 0, 2**31 - 1),
    "num_boost_round": ParamSpec(int, 1, 5000),
}


@dataclass(frozen=True)
class TrainingParams:
    """The overrides as given (`chosen`) on top of the course's parameters."""

    chosen: dict[str, ParamValue] = field(default_factory=dict)

    @property
    def xgb_params(self) -> dict[str, object]:
        overrides = {k: v for k, v in self.chosen.items() if k != "num_boost_round"}
        return {**XGB_PARAMS, **overrides}

    @property
    def num_boost_round(self) -> int:
        return int(self.chosen.get("num_boost_round", NUM_BOOST_ROUND))


COURSE_PARAMS = TrainingParams()


def parse_params(assignments: Iterable[str]) -> TrainingParams:
    """`NAME=VALUE` strings -> TrainingParams; raises ParamError naming the first bad one."""
    chosen: dict[str, ParamValue] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {assignment!r}: expected NAME=VALUE")
        spec = PARAM_SPECS.get(name)
        if spec is None:
            known = ", ".join(PARAM_SPECS)
            raise ParamError(f"--param {name}: unknown training parameter; known: {known}")
        if name in chosen:
            raise ParamError(f"--param {name}: given more than once")
        chosen[name] = spec.parse(name, text.strip())
    return TrainingParams(chosen)

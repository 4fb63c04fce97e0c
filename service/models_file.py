"""The models file (CREDIT_RISK_MODELS_FILE): which model decides, which one is tried beside it.

    # one setting a line, `#` starts a comment
    champion credit_risk_onnx:abc123
    challenger credit_risk_onnx:def456
    mode canary            # shadow (the default) or canary
    canary_fraction 0.05   # canary: the share of applicants the challenger answers

Parsing only: service/model_switch.py watches the file and switches the models.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["shadow", "canary"]
MODES: tuple[Mode, ...] = ("shadow", "canary")
KEYS = ("champion", "challenger", "mode", "canary_fraction")


class ModelsFileError(ValueError):
    """The models file cannot be used; the message names the file, the line and why."""


@dataclass(frozen=True)
class ModelsSpec:
    champion: str
    challenger: str | None = None
    mode: Mode = "shadow"
    canary_fraction: float = 0.0

    def as_info(self) -> dict[str, object]:
        return {
            "champion": self.champion,
            "challenger": self.challenger,
            "mode": self.mode if self.challenger is not None else None,
            "canary_fraction": self.canary_fraction,
        }


def parse_models(text: str, source: str = "models file") -> ModelsSpec:
    """`text` -> the spec; ModelsFileError naming `source`, the line and the setting."""
    values: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        where = f"{source}:{number}"
        if key not in KEYS:
            raise ModelsFileError(f"{where}: unknown setting {key!r} (one of {', '.join(KEYS)})")
        if not value or len(value.split()) != 1:
            raise ModelsFileError(f"{where}: {key} needs exactly one value; got {value!r}")
        if key in values:
            raise ModelsFileError(f"{where}: {key} is set twice (first on line {values[key][0]})")
        values[key] = (number, value)
    if "champion" not in values:
        raise ModelsFileError(f"{source}: no `champion TAG` line")
    mode = values.get("mode", (0, "shadow"))[1]
    if mode not in MODES:
        raise ModelsFileError(
            f"{source}:{values['mode'][0]}: mode must be shadow or canary; got {mode!r}"
        )
    fraction = 0.0
    if "canary_fraction" in values:
        number, text_value = values["canary_fraction"]
        try:
            fraction = float(text_value)
        except ValueError:
            fraction = math.nan
        if not 0.0 <= fraction <= 1.0:
            raise ModelsFileError(
                f"{source}:{number}: canary_fraction must be a number from 0 to 1; "
                f"got {text_value!r}"
            )
    challenger = values["challenger"][1] if "challenger" in values else None
    return ModelsSpec(values["champion"][1], challenger, mode, fraction)


def read_models(path: Path) -> ModelsSpec:
    """The file's spec; ModelsFileError when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelsFileError(f"models file {path}: cannot be read ({error})") from error
    return parse_models(text, str(path))

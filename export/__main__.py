"""`python -m export`: train and export; the last line printed is a one-line JSON summary."""

import argparse
import json
import logging
import sys
from pathlib import Path

from export.dataset import DATA_PATH
from export.onnx_convert import ParityError
from export.params import PARAM_SPECS, ParamError, parse_params
from export.pipeline import ModelQualityError, run_export
from export.store import ONNX_MODEL_NAME, has_onnx_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_PATH, help="CreditScoring CSV")
    parser.add_argument("--seed", type=int, default=1, help="seed of the 60/20/20 split")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an XGBoost training parameter instead of the course's (repeatable): "
        + ", ".join(PARAM_SPECS)
        + " (seed is the booster's)",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing if the model store already holds an ONNX model (used by `make serve`)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:  # checked before anything is trained or saved
        params = parse_params(args.param)
    except ParamError as error:
        print(f"export refused: {error}", file=sys.stderr)
        return 2  # argparse's code for bad usage
    if args.if_missing and has_onnx_model():
        print(json.dumps({"skipped": "model store already has " + ONNX_MODEL_NAME}), flush=True)
        return 0
    try:
        summary = run_export(args.data, args.seed, params)
    except (ParityError, ModelQualityError) as error:
        print(f"export refused: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Spark job's `--challenger TAG`: back-testing another model over the same rows in one pass."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from export.pipeline import ExportSummary, run_export
from features.schema import FIELDS
from features.thresholds import STATUSES, Thresholds
from jobs.score import parse_args, run
from runners.model_store import ModelLoadError
from service.settings import ServiceSettings
from tests.reference import reference_probabilities

pytestmark = pytest.mark.slow


def test_challenger_columns_are_the_challengers_own_decisions(
    spark, lake, exported: ExportSummary, tmp_path: Path
) -> None:
    challenger = run_export(seed=3)  # another model version in the same store
    out, rejects = tmp_path / "out", tmp_path / "rejects"
    args = ["--input", str(lake["parquet"]), "--output", str(out), "--rejects", str(rejects)]
    args += ["--model", exported.onnx_tag, "--challenger", challenger.onnx_tag]
    summary = run(parse_args(args), spark)
    assert summary["model"] == exported.onnx_tag
    assert summary["challenger"] == challenger.onnx_tag
    scored = pq.read_table(out).sort_by("application_id")
    assert scored.column_names[-3:] == ["model", "challenger_probability", "challenger_status"]
    rows = scored.take(list(range(0, scored.num_rows, 5)))
    fields = rows.select(list(FIELDS)).to_pylist()
    for column, model in (("probability", exported), ("challenger_probability", challenger)):
        np.testing.assert_allclose(
            rows.column(column).to_numpy(),
            reference_probabilities(model, fields),
            rtol=0,
            atol=1e-6,
        )
    settings = ServiceSettings()
    thresholds = Thresholds(settings.maybe_threshold, settings.declined_threshold)
    shadow = scored.column("challenger_probability").to_numpy()
    expected = STATUSES[thresholds.levels(shadow)].tolist()
    assert scored.column("challenger_status").to_pylist() == expected
    gap = np.abs(shadow - scored.column("probability").to_numpy())
    assert gap.max() > 1e-3  # really two models


def test_an_unknown_challenger_fails_before_spark(lake, exported, tmp_path: Path) -> None:
    args = ["--input", str(lake["parquet"]), "--output", str(tmp_path / "o")]
    args += ["--rejects", str(tmp_path / "r"), "--challenger", "credit_risk_onnx:nosuch"]
    with pytest.raises(ModelLoadError, match="nosuch"):
        run(parse_args(args))
    assert not (tmp_path / "o").exists()

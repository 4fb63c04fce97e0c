"""The recorder's promises: close() writes everything, a record is written within the flush
interval, a bad batch is counted, and reason codes are the ones /explain gives."""

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from export.pipeline import ExportSummary
from features.distributions import from_metadata, medians
from features.encoder import FeatureEncoder
from features.reasons import ReasonCoder
from features.schema import FIELDS
from runners.explainer import Explainer
from runners.model_store import get_stored_model
from service.records.assemble import assemble, explainer_reasons
from service.records.lookup import lookup
from service.records.parquet_sink import ParquetSink
from service.records.recorder import DecisionRecorder
from service.records.schema import DecisionBatch
from service.records.spool import Spool
from service.records.target import Target
from tests.records.helpers import make_batch


def parquet_recorder(directory: Path, flush_interval_s: float) -> DecisionRecorder:
    return DecisionRecorder(
        ParquetSink(directory, rotate_bytes=1 << 30, rotate_s=3600),
        Spool(directory / "_spool", 1 << 30),
        reasons=None,
        flush_interval_s=flush_interval_s,
        max_pending_rows=1_000_000,
        spool_full="refuse",
    )


def test_close_writes_every_enqueued_record(tmp_path: Path) -> None:
    recorder = parquet_recorder(tmp_path, flush_interval_s=1.0).start()
    per_thread = 400

    def load(worker: int) -> None:
        for i in range(per_thread):
            recorder.record(make_batch(f"{worker}-{i}", n=1 + i % 4, seed=i))

    threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()  # at once: most records are still queued
    expected = 6 * sum(1 + i % 4 for i in range(per_thread))
    table = ds.dataset(tmp_path, format="parquet").to_table(columns=["request_id", "row_index"])
    keys = set(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
    assert len(keys) == table.num_rows == expected
    assert recorder.stats.written == expected and recorder.stats.pending == 0


def test_a_record_is_written_within_the_flush_interval(tmp_path: Path) -> None:
    recorder = parquet_recorder(tmp_path, flush_interval_s=0.5).start()
    delays = []
    for i in range(3):
        recorder.record(make_batch(f"timed-{i}"))
        started = time.monotonic()
        while not lookup(Target(directory=tmp_path), f"timed-{i}"):
            assert time.monotonic() - started < 5
            time.sleep(0.02)
        delays.append(time.monotonic() - started)
    recorder.close()
    assert max(delays) < 1.0, delays


def test_an_unreadable_batch_is_counted_and_the_rest_kept(tmp_path: Path) -> None:
    recorder = parquet_recorder(tmp_path, flush_interval_s=1.0)
    good = make_batch("good", n=2)
    bad = make_batch("bad", n=2)
    broken = DecisionBatch(**{**{f: getattr(bad, f) for f in bad.__slots__}, "fields": {}})
    recorder.record(good)
    recorder.record(broken)
    recorder.close()
    assert recorder.stats.dropped == 2 and recorder.stats.written == 2
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 2


def test_reason_codes_are_the_explain_routes(
    exported: ExportSummary, records: list[dict[str, object]]
) -> None:
    """The writer's codes (matrix coder on the explainer's contributions) equal what /explain
    computes for each MAYBE and DECLINED applicant (ReasonCoder.top_reasons on raw values)."""
    stored = get_stored_model(exported.onnx_tag)
    explainer = Explainer.load(exported.onnx_tag)
    coder = ReasonCoder(medians(from_metadata(stored.metadata["field_distributions"])))
    encoder = FeatureEncoder(explainer.feature_names)
    rows = records[:600]
    features = encoder.encode_rows(rows)
    explained = explainer.contributions(features)
    probability = explained.probability
    status = ["DECLINED" if p > 0.5 else "MAYBE" if p > 0.3 else "APPROVED" for p in probability]
    batch = DecisionBatch(
        request_id="r",
        route="/explain_batch",
        client="-",
        model=exported.onnx_tag,
        decided_at=time.time(),
        probability=probability,
        status=status,
        fields={f: [row[f] for row in rows] for f in FIELDS},
        features=features,
    )
    table = assemble(
        [batch], explainer_reasons(explainer, coder.matrix_coder(explainer.feature_names), 4)
    )
    got = [[table.column(f"reason_{k}")[i].as_py() for k in range(1, 5)] for i in range(len(rows))]
    checked = 0
    for i, row in enumerate(rows):
        if status[i] == "APPROVED":
            assert got[i] == [None] * 4
            continue
        want = [r.code for r in coder.top_reasons(explained.contributions[i], row, 4)]
        assert got[i] == want + [None] * (4 - len(want))
        checked += 1
    assert checked > 100
    assert np.array_equal(table.column("probability").to_numpy(), probability)

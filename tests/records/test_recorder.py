"""The recorder's promises: close() writes everything, a record is written within the flush
interval, a bad batch is counted, and reason codes are the ones /explain gives."""

import gc
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
from service.records.assemble import ReasonCodes, assemble, explainer_reasons
from service.records.lookup import lookup
from service.records.parquet_sink import ParquetSink
from service.records.recorder import DecisionRecorder
from service.records.schema import DecisionBatch
from service.records.spool import Spool
from service.records.target import Target
from tests.records.helpers import column, make_batch


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
    codes = explainer_reasons(explainer, coder.matrix_coder(explainer.feature_names), 4)
    table = assemble([batch], lambda tag: codes if tag == exported.onnx_tag else None)
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


def _explaining(tag: str) -> tuple[Explainer, ReasonCodes]:
    stored = get_stored_model(tag)
    explainer = Explainer.load(tag)
    coder = ReasonCoder(medians(from_metadata(stored.metadata["field_distributions"])))
    return explainer, explainer_reasons(explainer, coder.matrix_coder(explainer.feature_names), 4)


def test_a_single_applicant_is_recorded_as_its_batch_would_be(
    exported: ExportSummary, records: list[dict[str, object]], tmp_path: Path
) -> None:
    """record_one (the /classify path: plain values in one list) writes the very record that
    record() of the same decision as a DecisionBatch writes, reason codes included."""
    explainer, reasons = _explaining(exported.onnx_tag)
    encoder = FeatureEncoder(explainer.feature_names)
    singles, batches = (
        DecisionRecorder(
            ParquetSink(tmp_path / name, rotate_bytes=1 << 30, rotate_s=3600),
            Spool(tmp_path / f"{name}-spool", 1 << 30),
            reasons=lambda tag: reasons,
            flush_interval_s=1.0,
            max_pending_rows=1_000_000,
            spool_full="refuse",
        )
        for name in ("singles", "batches")
    )
    statuses = []
    for i, row in enumerate(records[:400]):
        features = encoder.encode_one(row)
        probability = float(explainer.contributions(features).probability[0])
        status = "DECLINED" if probability > 0.5 else "MAYBE" if probability > 0.3 else "APPROVED"
        statuses.append(status)
        head = (f"r{i}", "/classify", "client-a", exported.onnx_tag, 1_800_000_000.0 + i / 7)
        singles.record_one(*head, probability, status, row, features)
        batches.record(
            DecisionBatch(*head, np.array([probability], np.float32), [status], [row], features)
        )
        if i == 150:  # records of both kinds in one flush, and in more than one
            singles.flush_now()
            batches.flush_now()
    singles.close()
    batches.close()
    assert {"APPROVED", "MAYBE", "DECLINED"} <= set(statuses)
    got, want = (
        ds.dataset(tmp_path / name, format="parquet").to_table().sort_by("request_id")
        for name in ("singles", "batches")
    )
    assert got.num_rows == want.num_rows == 400
    assert got.equals(want)
    assert got.column("reason_1").null_count == statuses.count("APPROVED")
    assert singles.stats.written == 400 and singles.stats.pending == 0


def test_recording_single_applicants_keeps_no_collected_objects(tmp_path: Path) -> None:
    """What record_one keeps until the writer takes it adds nothing to the garbage collector's
    count: thousands of kept containers a second would trigger collections that promote the
    requests in flight and soon walk the worker's whole heap (assemble.py)."""
    recorder = parquet_recorder(tmp_path, flush_interval_s=1.0)  # not started: nothing taken
    batch = make_batch("x")
    fields = dict(zip(FIELDS, [column(batch, f)[0] for f in FIELDS], strict=True))
    features = np.zeros((1, 29), dtype=np.float32)
    ids = [f"id-{i}" for i in range(5000)]
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        for i, request_id in enumerate(ids):
            recorder.record_one(
                request_id, "/classify", "-", "m:1", 1.0 + i, 0.4, "MAYBE", fields, features
            )
        kept = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert kept < 50, kept  # a DecisionBatch and its lists per call: over 10,000
    recorder.close()
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 5000


def test_an_unreadable_single_applicant_is_counted_and_the_rest_kept(tmp_path: Path) -> None:
    recorder = parquet_recorder(tmp_path, flush_interval_s=1.0)
    batch = make_batch("x")
    fields = dict(zip(FIELDS, [column(batch, f)[0] for f in FIELDS], strict=True))
    features = np.zeros((1, 29), dtype=np.float32)
    head = ("/classify", "-", "m:1", 1_800_000_000.0, 0.2, "APPROVED")
    recorder.record_one("good-1", *head, fields, features)
    recorder.record_one("no-field", *head, {f: fields[f] for f in FIELDS[1:]}, features)
    recorder.record_one("not-a-number", *head, {**fields, "income": "lots"}, features)
    recorder.record_one("good-2", *head, fields, features)
    recorder.close()
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert sorted(table.column("request_id").to_pylist()) == ["good-1", "good-2"]
    assert recorder.stats.dropped == 2 and recorder.stats.written == 2
    assert recorder.stats.pending == 0

"""The PostgreSQL sink on a real PostgreSQL 15: the table, COPY, an outage under load,
retention, and the spool-full policies."""

import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from service.records.assemble import assemble
from service.records.postgres_sink import PostgresSink
from service.records.recorder import DecisionRecorder, SpoolFullPolicy
from service.records.spool import Spool
from tests.records.helpers import ManualClock, column, make_batch
from tests.records.postgres import PostgresCluster


def rows_in(cluster: PostgresCluster) -> list[tuple[str, int]]:
    with psycopg.connect(cluster.dsn) as connection:
        found = connection.execute(
            "SELECT request_id, row_index FROM credit_risk_decisions"
        ).fetchall()
    return [(str(r), int(i)) for r, i in found]


def recorder_on(
    cluster: PostgresCluster,
    spool_dir: Path,
    *,
    spool_bytes: int = 1 << 30,
    policy: SpoolFullPolicy = "refuse",
    flush_interval_s: float = 0.1,
) -> DecisionRecorder:
    return DecisionRecorder(
        PostgresSink(cluster.dsn, connect_timeout_s=1),
        Spool(spool_dir, spool_bytes),
        reasons=None,
        flush_interval_s=flush_interval_s,
        max_pending_rows=1_000_000,
        spool_full=policy,
    )


def test_table_created_when_missing_and_rows_equal(postgres: PostgresCluster) -> None:
    batches = [make_batch(f"req-{i}", n=i + 1, seed=i) for i in range(4)]
    sink = PostgresSink(postgres.dsn)
    sink.write(assemble(batches, None))
    sink.close()
    with psycopg.connect(postgres.dsn) as connection:
        rows = connection.execute(
            "SELECT request_id, row_index, probability, status, income, home, decided_at, "
            "reason_1, challenger_status FROM credit_risk_decisions"
        ).fetchall()
    assert len(rows) == sum(len(b) for b in batches)
    by_key = {(r[0], r[1]): r for r in rows}
    for batch in batches:
        for i in range(len(batch)):
            _, _, probability, status, income, home, decided_at, reason, challenger = by_key[
                batch.request_id, i
            ]
            assert np.float32(probability) == batch.probability[i]  # real: float32 round-trips
            assert (status, income, home) == (
                batch.status[i],
                column(batch, "income")[i],
                column(batch, "home")[i],
            )
            assert decided_at.timestamp() == pytest.approx(batch.decided_at, abs=1e-6)
            assert reason is None and challenger is None


def test_outage_under_load_loses_nothing(postgres: PostgresCluster, tmp_path: Path) -> None:
    """PostgreSQL stopped while 4 threads record, started again: every record arrives, and
    no record() call waited on the outage."""
    recorder = recorder_on(postgres, tmp_path / "spool").start()
    sent = [0] * 4
    slowest = [0.0] * 4
    stop = threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            batch = make_batch(f"w{worker}-{i}", n=1 + i % 3, seed=i)
            started = time.perf_counter()
            recorder.record(batch)
            slowest[worker] = max(slowest[worker], time.perf_counter() - started)
            sent[worker] += len(batch)
            i += 1
            time.sleep(0.001)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    postgres.stop("fast")
    time.sleep(2.0)
    spooled_while_down = recorder.stats.spooled
    postgres.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    recorder.close()

    keys = rows_in(postgres)
    assert spooled_while_down > 0
    assert recorder.stats.replayed == recorder.stats.spooled
    assert len(set(keys)) == sum(sent)  # 0 missing
    assert len(keys) == sum(sent)  # and none twice
    assert recorder.stats.dropped == 0
    assert max(slowest) < 0.05  # an enqueue, never a wait on the database
    assert not list((tmp_path / "spool").glob("spool-*"))


def test_retention_deletes_old_rows(postgres: PostgresCluster, tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    day = 86_400.0
    sink = PostgresSink(postgres.dsn)
    sink.write(
        assemble(
            [make_batch(f"aged-{d}", decided_at=clock() - d * day) for d in (100, 8, 6, 0)], None
        )
    )
    recorder = DecisionRecorder(
        sink,
        Spool(tmp_path, 1 << 20),
        reasons=None,
        flush_interval_s=0.1,
        max_pending_rows=10,
        spool_full="drop",
        retention_days=7,
        clock=clock,
    )
    recorder.flush_now()
    assert sorted(r for r, _ in rows_in(postgres)) == ["aged-0", "aged-6"]
    recorder.close()


def test_spool_full_drop_counts_what_it_drops(postgres: PostgresCluster, tmp_path: Path) -> None:
    postgres.stop("fast")
    recorder = recorder_on(postgres, tmp_path, spool_bytes=40_000, policy="drop")
    sent = 0
    for i in range(30):
        batch = make_batch(f"d{i}", n=20, seed=i)
        recorder.record(batch)
        sent += len(batch)
        recorder.flush_now()
    stats = recorder.stats
    assert stats.dropped > 0 and stats.spooled > 0
    assert stats.spooled + stats.dropped == sent
    assert recorder.refusal() is None  # drop never refuses
    postgres.start()
    recorder.close()
    assert len(rows_in(postgres)) == stats.spooled == sent - stats.dropped


def test_spool_full_refuse_refuses_then_recovers(postgres: PostgresCluster, tmp_path: Path) -> None:
    postgres.stop("fast")
    recorder = recorder_on(postgres, tmp_path, spool_bytes=40_000, policy="refuse")
    sent = 0
    i = 0
    while recorder.refusal() is None:
        batch = make_batch(f"r{i}", n=20, seed=i)
        recorder.record(batch)
        sent += len(batch)
        recorder.flush_now()
        i += 1
        assert i < 100, "the spool never filled"
    assert "spool is full" in (recorder.refusal() or "")
    assert recorder.stats.dropped == 0
    assert recorder.stats.pending > 0  # held in memory, not lost
    postgres.start()
    recorder.flush_now()  # replays up to 16 spool files and writes what was held
    while recorder.stats.spooled > recorder.stats.replayed:
        recorder.flush_now()
    assert recorder.refusal() is None
    recorder.close()
    keys = rows_in(postgres)
    assert len(keys) == len(set(keys)) == sent

"""kill -9 of a recording process loses at most the last flush interval: every record older
than that is in the dataset once the next process has recovered the dead one's journal."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds

from harness.process import PROJECT_ROOT
from service.records.parquet_sink import ParquetSink

FLUSH_INTERVAL_S = 0.25
# One record every 2 ms, request ids 0, 1, 2, ... in order, until killed; each id is printed
# once recorded, with its decided_at, to the file argv[2].
WRITER = f"""
import sys, time
from pathlib import Path
from service.records.parquet_sink import ParquetSink
from service.records.recorder import DecisionRecorder
from service.records.spool import Spool
from tests.records.helpers import make_batch
directory = Path(sys.argv[1])
made = open(sys.argv[2], "w", buffering=1)
recorder = DecisionRecorder(
    ParquetSink(directory, rotate_bytes=1 << 30, rotate_s=0.7),
    Spool(directory / "_spool", 1 << 30), reasons=None, flush_interval_s={FLUSH_INTERVAL_S},
    max_pending_rows=1_000_000, spool_full="refuse",
).start()
print("ready", flush=True)
i = 0
while True:
    batch = make_batch(str(i), seed=i)
    recorder.record(batch)
    made.write(f"{{i}} {{batch.decided_at}}\\n")
    i += 1
    time.sleep(0.002)
"""


def kill_while_recording(directory: Path, run_s: float) -> float:
    """Seconds of records lost: from the newest record that survived the kill to the newest
    one recorded before it. (Not from the kill itself: on a busy machine the process may not
    have run at all in its last moments, and what it did not record, it could not lose.)"""
    made = directory.with_suffix(".made")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), str(made)], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    time.sleep(run_s)
    child.send_signal(signal.SIGKILL)
    child.wait()
    lines = made.read_text().splitlines()[:-1]  # the last may have been cut by the kill
    last_recorded = float(lines[-1].split()[1])
    ParquetSink(directory, rotate_bytes=1 << 30, rotate_s=3600)  # recovers the journal
    table = ds.dataset(directory, format="parquet").to_table(columns=["request_id", "decided_at"])
    ids = sorted(int(i) for i in table.column("request_id").to_pylist())
    assert ids == list(range(len(ids)))  # in order, no gap: only the newest were lost
    newest = max(t.timestamp() for t in table.column("decided_at").to_pylist())
    return last_recorded - newest


def test_kill_9_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    windows = [kill_while_recording(tmp_path / f"run{i}", run_s=1.5 + 0.4 * i) for i in range(3)]
    print(f"\nkill -9 lost the last {', '.join(f'{w * 1000:.0f}' for w in windows)} ms")
    # The flush interval, plus one write and scheduling on a busy 2-core machine.
    assert max(windows) < FLUSH_INTERVAL_S + 0.5

"""What service.metrics.RecordMetrics reads from a recorder."""

from service.metrics import RecordReadings
from service.records.recorder import DecisionRecorder


def record_readings(recorder: DecisionRecorder) -> RecordReadings:
    stats = recorder.stats
    return RecordReadings(
        written=lambda: stats.written,
        spooled=lambda: stats.spooled,
        dropped=lambda: stats.dropped,
        lag_s=recorder.lag_s,
        spool_bytes=lambda: stats.spool_bytes,
    )

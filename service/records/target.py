"""CREDIT_RISK_DECISION_LOG -> a sink, a spool and a recorder."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.records.assemble import ReasonsByModel
from service.records.parquet_sink import ParquetSink
from service.records.postgres_sink import PostgresSink
from service.records.recorder import DecisionRecorder
from service.records.sink import Sink
from service.records.spool import Spool
from service.settings import ServiceSettings

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SPOOL_NAME = "_spool"  # inside a Parquet directory, outside its dataset (a leading _)
DEFAULT_POSTGRES_SPOOL = Path("~/.local/state/credit-risk/decision-spool")


@dataclass(frozen=True)
class Target:
    """Where records go: a Parquet directory or a PostgreSQL DSN (never logged: it may hold a
    password)."""

    directory: Path | None = None
    dsn: str | None = None

    @classmethod
    def parse(cls, value: str) -> "Target":
        if not value.strip():
            raise ValueError("no decision log target")
        if value.startswith(POSTGRES_SCHEMES):
            return cls(dsn=value)
        return cls(directory=Path(value).expanduser())

    def default_spool(self) -> Path:
        if self.directory is not None:
            return self.directory / SPOOL_NAME
        return DEFAULT_POSTGRES_SPOOL.expanduser()


def open_sink(target: Target, settings: ServiceSettings, clock: Callable[[], float]) -> Sink:
    if target.dsn is not None:
        return PostgresSink(target.dsn)
    assert target.directory is not None
    return ParquetSink(
        target.directory,
        rotate_bytes=settings.decision_log_rotate_bytes,
        rotate_s=settings.decision_log_rotate_s,
        clock=clock,
    )


def build_recorder(
    settings: ServiceSettings,
    reasons: ReasonsByModel | None,
    clock: Callable[[], float] = time.time,
) -> DecisionRecorder | None:
    """The worker's recorder, started; None when CREDIT_RISK_DECISION_LOG is unset."""
    if not settings.decision_log.strip():
        return None
    target = Target.parse(settings.decision_log)
    spool = Spool(
        settings.decision_log_spool_dir or target.default_spool(),
        settings.decision_log_spool_max_bytes,
    )
    recorder = DecisionRecorder(
        open_sink(target, settings, clock),
        spool,
        reasons=reasons,
        flush_interval_s=settings.decision_log_flush_interval_s,
        max_pending_rows=settings.decision_log_max_pending_rows,
        spool_full=settings.decision_log_spool_full,
        retention_days=settings.decision_log_retention_days,
        clock=clock,
    )
    return recorder.start()

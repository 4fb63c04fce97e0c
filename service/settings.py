"""All serving configuration, read once from `CREDIT_RISK_*` environment variables.

bentofile.yaml's `envs:` sets the same variables inside a bento, so the operator changes
behaviour (model tag, engine, batching design, device, limits) without touching code.
"""

import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_", frozen=True)

    model_tag: str = Field(
        "credit_risk_onnx:latest",
        description="ONNX model tag to serve; its native twin is found through its metadata. "
        "Set an older version here to roll back.",
    )
    models_file: Path | None = Field(
        None,
        description="Champion and challenger: lines `champion TAG`, `challenger TAG`, `mode "
        "shadow|canary`, `canary_fraction F`, `#` comments. When set, its champion is served "
        "instead of `model_tag`; each worker rereads it and switches models without a restart "
        "(a file or tag that cannot be used keeps the current models, with one warning).",
    )
    models_reload_s: float = Field(
        5.0, gt=0, description="How often at most each worker checks the models file."
    )
    canary_joined_calls: bool = Field(
        True,
        description="A canary's champion and challenger (ONNX, on the CPU) joined in one ONNX "
        "Runtime session, checked at load to give each model's own answers to the bit: a merged "
        "batch holding applicants of both makes one model call, not two (runners/pair.py; "
        "bench/REPORT_NOTES.md, champion and challenger). false: one call per model.",
    )
    engine: Literal["onnx", "xgboost"] = Field(
        "onnx", description="Engine for /classify and /classify_batch."
    )
    bulk_engine: Literal["onnx", "xgboost", "auto"] = Field(
        "auto",
        description="Engine for bulk scoring; auto routes each chunk by its size "
        "(ONNX below `bulk_xgboost_min_rows`, native XGBoost above).",
    )
    bulk_xgboost_min_rows: int = Field(
        256, ge=1, description="Chunk size from which `auto` prefers native XGBoost."
    )
    batching: Literal["adaptive", "bentoml", "none"] = Field(
        "adaptive",
        description="adaptive: in-process asyncio micro-batcher; bentoml: BentoML's batchable "
        "API on a model service reached through bentoml.depends; none: one model call per request.",
    )
    offload_model_calls: bool = Field(
        False,
        description="Run model calls in a worker thread so the event loop keeps accepting "
        "requests meanwhile (helps expensive engines, costs a thread hop).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto uses CUDA when the engine build and a GPU allow it."
    )
    workers: int = Field(2, ge=1, description="API worker processes.")
    model_threads: int = Field(1, ge=1, description="Engine threads per worker.")
    max_batch_rows: int = Field(256, ge=1, description="Largest merged batch of requests.")
    max_queue_rows: int = Field(4096, ge=1, description="Rows queued per worker before 503.")
    max_queue_delay_ms: float = Field(
        500.0, gt=0, description="A request not dispatched within this long gets a 503."
    )
    bentoml_max_latency_ms: int = Field(
        500,
        ge=1,
        description="max_latency_ms of BentoML's batchable API (batching=bentoml): its "
        "dispatcher refuses requests it predicts would exceed this.",
    )
    model_service_timeout_s: float = Field(
        5.0,
        gt=0,
        description="batching=bentoml: a call to the model service not answered in this long "
        "gets a 503 with Retry-After, instead of holding the request until the request timeout.",
    )
    bulk_chunk_rows: int = Field(65_536, ge=1, description="Bulk inputs run in chunks of this.")
    bulk_threads: int = Field(
        0,
        ge=0,
        description="Threads one bulk request's rows are split across, one engine call each "
        "(each worker runs one bulk request at a time, so a lone request may use every core; "
        "concurrent ones in other workers share the cores through the OS scheduler); 0: this "
        "machine's cores.",
    )
    max_batch_items: int = Field(1_000, ge=1, description="Most applicants in /classify_batch.")
    max_bulk_rows: int = Field(200_000, ge=1, description="Most rows in one bulk request.")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="Largest request body.")
    max_bulk_bytes_in_flight: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Bytes of bulk request bodies a worker holds at once (being read, parsed or "
        "waiting for its one bulk thread; parsed, a body takes ~6x its size); a bulk request "
        "that would pass this gets 503 with Retry-After before its body is read. One request "
        "is always admitted when no other bulk request is in progress.",
    )
    reasons: int = Field(
        4, ge=0, le=13, description="Reasons in a MAYBE or DECLINED /explain answer (top fields)."
    )
    monitoring: bool = Field(
        True,
        description="Decision monitoring on /metrics: decisions by status, the probability "
        "histogram and the per-field input drift (PSI) gauges.",
    )
    drift_window_rows: int = Field(
        10_000,
        ge=100,
        description="Recent rows per worker over which the input drift (PSI) gauges are computed.",
    )
    maybe_threshold: float = Field(0.3, ge=0, le=1, description="p above this: MAYBE.")
    declined_threshold: float = Field(0.5, ge=0, le=1, description="p above this: DECLINED.")
    max_concurrency: int = Field(
        4096,
        ge=1,
        description="Requests in progress at once across all workers (BentoML's "
        "`traffic.max_concurrency`; each worker gets its share, rounded up): one more gets 429 "
        "with Retry-After before its body is read, so under overload the CPU goes to admitted "
        "requests (on the Swagger pages, BentoML's own 429). The health probes and /metrics "
        "are never refused.",
    )
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        description="BentoML's `traffic.timeout`: a request not answered within this long "
        "(reading its body included) gets 504, in the one error shape on every route the "
        "front door answers (BentoML's own 504 on the Swagger pages, probes and /metrics).",
    )
    drain_delay_s: float = Field(
        5.0,
        ge=0,
        description="After SIGTERM, keep serving this long (answering /readyz with 503 and "
        "every request with Connection: close) before stopping: the time a load balancer "
        "needs to stop sending new requests. Requests in progress are always finished.",
    )
    admission_target_lag_ms: float = Field(
        100.0,
        gt=0,
        description="Overload control: while the event loop runs later than this (the wait "
        "of a request before it is read) for a whole admission window, a worker admits only a "
        "fraction of new requests and answers the rest 503 before reading them.",
    )
    admission_window_ms: float = Field(
        100.0, gt=0, description="How long the lag must stand above target before shedding."
    )
    accept_interval_ms: float = Field(
        10.0,
        ge=0,
        description="Every this often each worker accepts all connections waiting on its "
        "listening socket (uvloop takes one per loop turn, which under overload leaves "
        "clients waiting seconds to be accepted); 0 leaves accepting to uvloop alone."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    reuse_port: bool = Field(
        True,
        description="Each worker also listens on a socket of its own (SO_REUSEPORT), so the "
        "kernel spreads new connections evenly over the workers; false leaves one socket "
        "shared by all workers, where the worker awake first takes most of a burst."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    coalesce_writes: bool = Field(
        True,
        description="Write each response's head and body to the socket in one write (uvicorn "
        "writes them apart: two syscalls and two TCP segments per answer)."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    private_hooks: Literal["auto", "off"] = Field(
        "auto",
        description="auto: on the BentoML and uvicorn versions this server was tested with "
        "(service/bentoml_fixes.py), extend their internals (the front door in front of "
        "BentoML's app, per-worker sockets, greedy accepts, coalesced writes, head limits); on "
        "any other version start without them, with one warning naming the versions. off: "
        "never: the front door stands behind BentoML's public middleware API, answering the "
        "same, slower.",
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After of 503 and 429 answers.")
    tracing_excluded_urls: str = Field(
        "/livez,/readyz,/metrics",
        description="Comma-separated URL patterns (regular expressions) not traced: BentoML's "
        "`tracing.excluded_urls`, for the front door's spans as for BentoML's. Tracing itself "
        "is BentoML's `tracing` configuration (exporter, sample rate).",
    )
    gc_thresholds: tuple[int, int, int] = Field(
        (50_000, 20, 100),
        description="Python GC thresholds for the API workers (gc.set_threshold); the "
        "defaults (700, 10, 10) collect so often under load that the pauses dominate p99.",
    )
    arrow_memory_pool: Literal["system", "mimalloc", "jemalloc"] = Field(
        "system",
        description="Arrow's memory pool in the API workers (pyarrow.set_memory_pool); system "
        "is glibc's malloc. pyarrow's own default, mimalloc, hands freed memory back to the OS "
        "and takes it again as fresh transparent huge pages, each zeroed on first touch: a "
        "decision-log rotation then costs a worker ~0.9 s of CPU, mostly system time, against "
        "~0.3 s with system (bench/REPORT_NOTES.md, decision records). Bulk scoring runs as "
        "fast on both.",
    )
    access_log: bool = Field(
        False,
        description="An access line per request on the `bentoml.access` logger (client, "
        "method, path, status, length, milliseconds), on every route but the health probes.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="text: BentoML's log lines, ending in [request_id=...] while serving a "
        "request; json: one JSON object a line (time, level, logger, message, request_id, "
        "trace_id, span_id, exception), for log shippers (service/log_format.py).",
    )
    # Decision records (service/records/): one row per scored applicant.
    decision_log: str = Field(
        "",
        description="Where decision records go: empty = off; a directory = Parquet files "
        "(created 0700, files 0600; one dataset for pyarrow.dataset or DuckDB); "
        "`postgresql://...` = a PostgreSQL database (table credit_risk_decisions, created when "
        "missing).",
    )
    decision_log_retention_days: float = Field(
        0,
        ge=0,
        description="Records decided longer ago than this are deleted (files whose newest "
        "record is older, or rows), checked hourly; 0 keeps them forever.",
    )
    decision_log_spool_dir: Path | None = Field(
        None,
        description="Where records wait while the sink is down (Arrow files, replayed when it "
        "is back); default: `_spool` inside a Parquet directory, or "
        "`~/.local/state/credit-risk/decision-spool` for PostgreSQL.",
    )
    decision_log_spool_max_bytes: int = Field(
        1024**3, ge=1024, description="Bound of the spool (all workers' files together)."
    )
    decision_log_spool_full: Literal["refuse", "drop"] = Field(
        "refuse",
        description="When the spool (or the in-memory queue) is full: refuse = scoring routes "
        "answer 503 with Retry-After until records can be kept again (no decision without its "
        "record); drop = keep answering and count the records lost "
        "(credit_risk_decision_records_dropped_total).",
    )
    decision_log_flush_interval_s: float = Field(
        0.5,
        gt=0,
        le=1,
        description="How often the writer thread writes queued records: a record reaches the "
        "sink (or the spool) within this plus the write; a kill -9 loses at most this much.",
    )
    decision_log_max_pending_rows: int = Field(
        200_000,
        ge=1,
        description="Records a worker holds in memory waiting for the writer (the spool-full "
        "policy applies beyond it).",
    )
    decision_log_rotate_bytes: int = Field(
        64 * 1024**2,
        ge=1024,
        description="Parquet sink: a worker's journal becomes a Parquet file at this size...",
    )
    decision_log_rotate_s: float = Field(
        60.0,
        gt=0,
        description="... or at this age. The Parquet dataset has a record within this long; "
        "the lookup command reads the journals too, so it finds a record within a flush.",
    )
    # Who may call: API keys, off when no key file is set (a developer's machine).
    api_keys_file: Path | None = Field(
        None,
        description="API keys, one client a line: `NAME KEY` or `NAME sha256:HEX` (the hex "
        "SHA-256 of the key), `#` comments. When set, every route but the health probes needs "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>` (401 otherwise); the client's "
        "NAME labels credit_risk_requests_total. Edits are picked up without a restart.",
    )
    api_keys_reload_s: float = Field(
        5.0, gt=0, description="How often at most the key file is checked for changes."
    )
    ops_routes: Literal["keyed", "open"] = Field(
        "keyed",
        description="With API keys on: whether /metrics, /info and the Swagger UI (/, "
        "/docs.json and its assets) need a key too (keyed) or answer anyone (open). /livez "
        "and /readyz are always open.",
    )
    # Limits of the HTTP layer below the app: what a client may cost before its
    # request reaches the API-key check.
    max_head_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) in bytes; a longer one "
        "gets 431 with Connection: close, without the rest being read or parsed."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    max_headers: int = Field(
        100,
        ge=8,
        description="Most header fields in one request; more gets 431 (closed)."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    head_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time a client has to send a whole request head, from the connection's "
        "start or the first byte of a head on a kept-alive connection: then 408 and closed (a "
        "new connection that sent nothing is closed without an answer)."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    keep_alive_s: float = Field(
        75.0,
        gt=0,
        description="Time a kept-alive connection may stay idle between requests before the "
        "server closes it (uvicorn's `timeout_keep_alive`, 5 s under BentoML). Keep it above "
        "the idle timeout of every client and proxy that reuses connections (httpx 5 s; nginx "
        "upstreams and cloud load balancers 60 s): a request sent on a connection the server is "
        "closing at that moment gets a reset, not an answer, and is not retried by most "
        "clients. A private hook: off with CREDIT_RISK_PRIVATE_HOOKS (then `bentoml serve "
        "--timeout-keep-alive`).",
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Time a client has to send a whole request body once its head is in: then "
        "408 (or, once answered, the connection closed). Bounds slow-body clients; a 32 MiB "
        "bulk body needs at least ~0.6 MB/s."
        " A private hook: off with CREDIT_RISK_PRIVATE_HOOKS.",
    )
    metrics_clients: str = Field(
        "",
        description="With API keys on: comma-separated client names (from the key file) that "
        "may read /metrics, which names every client and its request counts; another valid "
        "key gets 403. Empty: any valid key may (set it to e.g. `prometheus` in production).",
    )

    @property
    def bulk_engine_threads(self) -> int:
        if self.bulk_threads:
            return self.bulk_threads
        return len(os.sched_getaffinity(0))

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "ServiceSettings":
        if self.maybe_threshold > self.declined_threshold:
            raise ValueError("maybe_threshold must not exceed declined_threshold")
        return self


@lru_cache(maxsize=1)
def get_settings() -> ServiceSettings:
    return ServiceSettings()


# The README's settings table, generated from the fields above (tests/service/test_settings_doc.py
# fails when they differ): `python -m service.settings --readme README.md` rewrites it.
TABLE_START = "<!-- settings table: `python -m service.settings --readme README.md` writes it -->"
TABLE_END = "<!-- end of settings table -->"


def _shown(default: Any) -> str:
    """A default as it is written in the environment."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{json.dumps(list(default))}`"
    if default == "":
        return "empty"
    return f"`{default}`"


def markdown_table() -> str:
    """Every setting: its variable, its default, its description."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    prefix = ServiceSettings.model_config.get("env_prefix", "")
    for name, field in ServiceSettings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {_shown(field.default)} | {meaning} |")
    return "\n".join(rows) + "\n"


def with_table(document: str) -> str:
    """`document` with the text between the table's markers replaced by `markdown_table()`."""
    head, start, rest = document.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"the document has no {TABLE_START!r} ... {TABLE_END!r} markers")
    return f"{head}{TABLE_START}\n{markdown_table()}{TABLE_END}{tail}"


def main(argv: list[str]) -> int:
    if argv == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    if len(argv) == 2 and argv[0] == "--readme":
        path = Path(argv[1])
        path.write_text(with_table(path.read_text()))
        return 0
    print("usage: python -m service.settings --markdown | --readme README.md", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Decision records: one row per scored applicant, kept in Parquet files or PostgreSQL.

The request path hands each scored batch to `DecisionRecorder.record` (recorder.py; a single
applicant to `record_one`, as plain values: see assemble.py), which only enqueues it; a
writer thread adds reason codes, writes to the sink (parquet_sink.py, postgres_sink.py) within
one flush interval, and puts what the sink refuses in a bounded on-disk spool (spool.py) that
it replays when the sink is back. schema.py holds the columns,
target.py builds a recorder from the settings, retention.py deletes old records, lookup.py finds
the records of a request id (`python -m service.records lookup REQUEST_ID`).

Record contents (applicant values) never reach a log: errors are logged by type only.
"""

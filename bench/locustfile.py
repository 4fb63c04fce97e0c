"""Locust users: single /classify requests and bulk /classify_bulk requests.

    locust -f bench/locustfile.py ClassifyUser --headless -u 64 -r 64 -t 15s --host http://127.0.0.1:3000
    BENCH_BULK_ROWS=10000 locust -f bench/locustfile.py BulkUser --headless -u 2 -t 15s --host ...

Request bodies are serialised once at start-up (distinct applicants from the CreditScoring data),
so the load generator spends its CPU on HTTP rather than on JSON. Responses are not parsed (that
would make Locust the bottleneck sooner); non-2xx answers count as failures, and `bench.http`
checks every server's answers for correctness before loading it.
"""

import itertools
import os
import random

import orjson
from locust import FastHttpUser, constant, task

from export.dataset import applicant_records, load_applicants
from features.schema import FIELDS

RECORDS = applicant_records(load_applicants())
SINGLE_BODIES = [orjson.dumps(record) for record in RECORDS]
BULK_ROWS = int(os.environ.get("BENCH_BULK_ROWS", "1000"))
JSON = {"content-type": "application/json"}


def columnar_body(rows: int) -> bytes:
    """`rows` applicants (the dataset, repeated) as /classify_bulk's column-wise JSON."""
    return orjson.dumps(
        {name: [RECORDS[i % len(RECORDS)][name] for i in range(rows)] for name in FIELDS}
    )


class ClassifyUser(FastHttpUser):
    """One applicant per request, no think time; each user walks the dataset from its own start."""

    wait_time = constant(0)

    def on_start(self) -> None:
        start = random.randrange(len(SINGLE_BODIES))
        self.bodies = itertools.cycle(SINGLE_BODIES[start:] + SINGLE_BODIES[:start])

    @task
    def classify(self) -> None:
        # bytes bodies are documented ("String/bytes"); the annotation only says str
        self.client.post("/classify", data=next(self.bodies), headers=JSON)  # type: ignore[arg-type]


class BulkUser(FastHttpUser):
    """BENCH_BULK_ROWS applicants per request as column-wise JSON, no think time."""

    wait_time = constant(0)
    network_timeout = 120.0
    connection_timeout = 120.0

    def on_start(self) -> None:
        self.body = columnar_body(BULK_ROWS)

    @task
    def classify_bulk(self) -> None:
        self.client.post(
            "/classify_bulk",
            data=self.body,  # type: ignore[arg-type]
            headers=JSON,
            name=f"/classify_bulk[{BULK_ROWS}]",
        )

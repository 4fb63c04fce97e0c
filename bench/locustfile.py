"""Locust users: single /classify requests and bulk /classify_bulk requests.

Bodies are encoded once at start-up (distinct applicants from the dataset) so the load
generator spends its CPU on HTTP, not on JSON.
"""

import itertools
import os

import orjson
from locust import FastHttpUser, constant, task

from export.dataset import applicant_records, load_applicants
from features.schema import FIELDS

RECORDS = applicant_records(load_applicants())
SINGLE_BODIES = [orjson.dumps(record) for record in RECORDS]
BULK_ROWS = int(os.environ.get("BENCH_BULK_ROWS", "1000"))
BULK_BODY = orjson.dumps(
    {name: [RECORDS[i % len(RECORDS)][name] for i in range(BULK_ROWS)] for name in FIELDS}
)
JSON = {"content-type": "application/json"}


class ClassifyUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.bodies = itertools.cycle(
            SINGLE_BODIES[hash(self) % len(SINGLE_BODIES) :] + SINGLE_BODIES
        )

    @task
    def classify(self) -> None:
        self.client.post("/classify", data=next(self.bodies), headers=JSON)


class BulkUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def classify_bulk(self) -> None:
        self.client.post(
            "/classify_bulk", data=BULK_BODY, headers=JSON, name=f"/classify_bulk[{BULK_ROWS}]"
        )

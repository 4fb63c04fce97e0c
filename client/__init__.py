"""A Python client for the credit-risk server.

    from client import CreditRiskClient

    with CreditRiskClient("http://127.0.0.1:3000") as risk:
        risk.classify(applicant)                # Decision(status=..., probability=..., model=...)
        risk.classify_many(applicants)          # list[Decision], same order
        risk.score_table("applicants.parquet")  # Arrow: the input's other columns + decisions

`AsyncCreditRiskClient` is the asyncio twin. Command line: `python -m client score IN OUT --url
URL` and `python -m client classify --url URL '{...}'`. The client speaks HTTP only: it needs
this project's `features` package (the field names) but never the server's code.
"""

from client.async_client import AsyncCreditRiskClient
from client.decisions import Decision
from client.errors import (
    CreditRiskError,
    InputError,
    OverloadedError,
    RequestRejectedError,
    ServerError,
    UnreachableError,
)
from client.inputs import TableInput
from client.results import as_frame
from client.retry import RetryPolicy
from client.sync_client import CreditRiskClient

__all__ = [
    "AsyncCreditRiskClient",
    "CreditRiskClient",
    "CreditRiskError",
    "Decision",
    "InputError",
    "OverloadedError",
    "RequestRejectedError",
    "RetryPolicy",
    "ServerError",
    "TableInput",
    "UnreachableError",
    "as_frame",
]

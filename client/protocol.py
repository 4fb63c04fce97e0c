"""What the sync and async clients share: routes, headers, bodies and answer parsing (no I/O)."""

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from client.decisions import DECISIONS, Decision
from client.errors import InputError, ServerError
from client.wire import ARROW_STREAM

USER_AGENT = "credit-risk-client/0.1"
JSON = "application/json"
JSON_HEADERS = {"content-type": JSON, "accept": JSON}
BULK_HEADERS = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
MAX_BATCH_ITEMS = 1_000  # the server's limit on /classify_batch (CREDIT_RISK_MAX_BATCH_ITEMS)
DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_CONCURRENCY = 2  # the server's default number of workers; each scores one bulk request
DEFAULT_TIMEOUT_S = 60.0
# The server's routes this client calls, and the content type it sends each.
CLASSIFY = "/classify"
CLASSIFY_BATCH = "/classify_batch"
CLASSIFY_BULK = "/classify_bulk"
ENDPOINTS = {CLASSIFY: JSON, CLASSIFY_BATCH: JSON, CLASSIFY_BULK: ARROW_STREAM}


def client_headers(api_key: str | None) -> dict[str, str]:
    headers = {"user-agent": USER_AGENT}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def json_body(value: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> bytes:
    """JSON for an applicant or a list of them (numpy numbers allowed, as pandas gives them)."""
    payload = [dict(item) for item in value] if isinstance(value, Sequence) else dict(value)
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as error:
        raise InputError(f"applicant cannot be sent as JSON: {error}") from error


def decision(response: httpx.Response) -> Decision:
    try:
        return Decision.model_validate_json(response.content)
    except ValidationError as error:
        raise ServerError(f"unexpected answer from /classify: {error}") from error


def decisions(response: httpx.Response, sent: int) -> list[Decision]:
    try:
        answers = DECISIONS.validate_json(response.content)
    except ValidationError as error:
        raise ServerError(f"unexpected answer from /classify_batch: {error}") from error
    if len(answers) != sent:
        raise ServerError(f"/classify_batch answered {len(answers)} decisions for {sent}")
    return answers


def batched(items: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    """Lists of `size` items, the last shorter (itertools.batched arrives in Python 3.12)."""
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def check_bulk_options(chunk_rows: int, concurrency: int) -> None:
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")


def bulk_path(per_row: bool) -> str:
    """/classify_bulk, asking with `per_row` for per-row verdicts (invalid rows INVALID with
    their error, the rest scored) instead of a refusal of the whole request."""
    return f"{CLASSIFY_BULK}?per_row=true" if per_row else CLASSIFY_BULK


def bulk_what(offset: int, rows: int) -> str:
    """How a bulk request is named in logs and errors."""
    return f"/classify_bulk (input rows {offset}-{offset + rows - 1})"

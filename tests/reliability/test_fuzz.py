"""Fuzz the running server from its own OpenAPI schema, plus hand-written hostile inputs."""

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from harness.process import PROJECT_ROOT, ServedProcess
from service.http.routes import MODEL_VERSION
from service.registry import ENDPOINTS
from service.schemas import APPLICANT_EXAMPLE

pytestmark = pytest.mark.slow  # starts real server processes

EXAMPLES_PER_MODE = 60  # x 6 routes x 2 modes = 720 generated requests
# Every route of the registry that takes a body (the model's versioned paths aside).
SCORING_ROUTES = tuple(
    e.path for e in ENDPOINTS if e.media_types and not e.fallback and MODEL_VERSION not in e.path
)
CLI_EXAMPLES = 25  # per operation and phase, for the all-checks run of the CLI


# Beyond "no 5xx": a request the schema says is invalid must be refused, and every answer must
# match the documented response schema and content type; with them, every 4xx must say what was
# wrong (`says_what_was_wrong`). Every other check runs in test_every_check_of_the_cli_passes.
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    response_schema_conformance,
    content_type_conformance,
]


def says_what_was_wrong(status: int, body: dict[str, object]) -> bool:
    """A 4xx body names the problem: the bad field's location for 422 (the first detail's),
    the body for 400, the limit for 413, the content type for 415."""
    error = body.get("error")
    if not isinstance(error, str) or not error:
        return False
    if status == 422:  # "location: message", the location being the first detail's
        details = body.get("details")
        return ": " in error and (not details or str(details[0]["location"]) in error)  # type: ignore[index]
    expected = {400: "body", 413: "limit", 415: "content-type", 405: "POST"}.get(status)
    return expected is None or expected in error


def _check(case: schemathesis.Case, response: Response, counts: Counter[str]) -> None:
    status = response.status_code
    counts[f"{status // 100}xx"] += 1
    case.validate_response(response, checks=CHECKS)
    if status >= 400:
        body = response.json()
        assert says_what_was_wrong(status, body), (status, body)


def test_schema_driven_fuzzing_never_gets_a_5xx(server: ServedProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/docs.json")
    # per_row=true answers invalid rows 200 (INVALID) by design: negative data needs the
    # default, refusing mode (as schemathesis.toml sets for the CLI run).
    schema.config.update(parameters={"query.per_row": "false"})
    counts: Counter[str] = Counter()
    operations = [
        result.ok() for result in schema.get_all_operations() if result.ok().path in SCORING_ROUTES
    ]
    assert {op.path for op in operations} == set(SCORING_ROUTES)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: schemathesis.Case) -> None:
                _check(case, case.call(base_url=server.url, timeout=30), counts)

            fuzz()
    total = sum(counts.values())
    print(f"\nfuzzed {total} requests: {dict(counts)}")
    assert total >= len(SCORING_ROUTES) * 2 * EXAMPLES_PER_MODE
    assert counts["2xx"] > 0 and counts["4xx"] > 0


def test_every_check_of_the_cli_passes(server: ServedProcess) -> None:
    """`st run <url>/docs.json --checks all`, as a user would, with the repository's
    schemathesis.toml (which states the two rules JSON Schema cannot): nothing found."""
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/docs.json",
         "--checks", "all", "--max-examples", str(CLI_EXAMPLES), "--seed", "1", "--no-color"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout, result.stdout[-3000:]


HOSTILE = [
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("non-utf8", b'{"home": "\xff\xfe"}', "application/json"),
    ("NaN literal", b'{"age": NaN}', "application/json"),
    ("Infinity literal", b'{"age": Infinity}', "application/json"),
    ("truncated", b'{"age": 3', "application/json"),
    ("empty body", b"", "application/json"),
    ("json but text/plain", b"{}", "text/plain"),
    ("xml", b"<applicant/>", "application/xml"),
    ("csv with no rows", b"seniority,home\n", "text/csv"),
    ("binary csv", bytes(range(256)) * 10, "text/csv"),
    ("noise as arrow stream", bytes(range(256)) * 10, "application/vnd.apache.arrow.stream"),
    ("json as arrow file", b'{"age": [30]}', "application/vnd.apache.arrow.file"),
    ("arrow magic, then nothing", b"ARROW1\x00\x00", "application/vnd.apache.arrow.file"),
    ("nested in a field", b'{"age": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json"),
    ("100k-digit number", b'{"age": 1' + b"0" * 100_000 + b"}", "application/json"),
    ("NUL in a string", b'{"home": "\x00"}', "application/json"),
    ("UTF-8 BOM", b'\xef\xbb\xbf{"age": 30}', "application/json"),
    ("top-level scalar", b"42", "application/json"),
]


@pytest.mark.parametrize(("name", "body", "content_type"), HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("route", SCORING_ROUTES)
def test_hostile_bodies_get_a_clear_4xx(
    server: ServedProcess, route: str, name: str, body: bytes, content_type: str
) -> None:
    answer = httpx.post(
        f"{server.url}{route}", content=body, headers={"content-type": content_type}, timeout=30
    )
    assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:300])
    assert says_what_was_wrong(answer.status_code, answer.json()), answer.text[:300]


def test_body_over_the_limit_is_413(server: ServedProcess) -> None:
    huge = b'{"pad": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    answer = httpx.post(
        f"{server.url}/classify_bulk",
        content=huge,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 413
    assert "over the limit" in answer.json()["error"]


def test_streamed_body_over_the_limit_is_413(server: ServedProcess) -> None:
    """Chunked upload, no Content-Length: refused as soon as the bytes read pass the limit."""

    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(40):  # 40 MiB, over the 32 MiB default
            yield b"x" * (1 << 20)
        yield b'"}'

    for route in ("/classify", "/classify_bulk"):
        answer = httpx.post(
            f"{server.url}{route}",
            content=chunks(),
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert answer.status_code == 413, answer.text[:300]
        assert "over the limit of 33554432 bytes" in answer.json()["error"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_gets_a_json_405(server: ServedProcess, method: str) -> None:
    answer = httpx.request(method, f"{server.url}/classify", timeout=30)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert says_what_was_wrong(405, answer.json()), answer.text


def test_duplicated_keys_last_one_wins(server: ServedProcess) -> None:
    """Documented choice: like most JSON parsers (and Python's json), the last duplicate wins."""
    fields = ", ".join(
        f'"{k}": {httpx.Request("POST", "/", json=v).content.decode()}'
        for k, v in APPLICANT_EXAMPLE.items()
    )
    twice = f'{{{fields}, "age": -5, "age": 26}}'.encode()
    once_bad = f'{{{fields}, "age": 26, "age": -5}}'.encode()
    ok = httpx.post(
        f"{server.url}/classify",
        content=twice,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    bad = httpx.post(
        f"{server.url}/classify",
        content=once_bad,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    assert bad.status_code == 422 and "age" in bad.json()["error"]


def test_extra_fields_are_named(server: ServedProcess) -> None:
    answer = httpx.post(
        f"{server.url}/classify", json={**APPLICANT_EXAMPLE, "ssn": "123"}, timeout=30
    )
    assert answer.status_code == 422
    assert "ssn" in answer.json()["error"]

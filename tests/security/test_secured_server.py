"""One secured server, started the documented way (`make serve SSL_CERT=... SSL_KEY=...`) with
an API-key file, every logger at DEBUG and the access log on, serving a model that fails on
one input value with that value in its error (as ONNX Runtime's errors do). Against it: HTTPS
with a throwaway CA, API keys and their rotation, request ids, the client, and a grep of the
server's whole output for the applicant values it was sent."""

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import bentoml
import httpx
import numpy as np
import onnx
import orjson
import pyarrow as pa
import pytest
import trustme
from onnx import TensorProto, helper, numpy_helper

from client import CreditRiskClient, RequestRejectedError
from export.pipeline import ExportSummary
from harness.process import ServedProcess, served
from service.arrow_io import table_as_ipc
from service.logs import WITHHELD
from tests.contract_cases import GOOD
from tests.security.conftest import KEY_FILE, PARTNER_KEY, WEBFORM_KEY

pytestmark = pytest.mark.slow

# Applicant values that must never reach a log line. INCOME and CATEGORY go through every
# route, good and bad; FAILING_ASSETS makes the model fail with "idx=7777777 ..." in its error.
INCOME = 123456.789
CATEGORY = "zzmarkerzz"
FAILING_ASSETS = 7777777
MARKERS = ("123456", CATEGORY, str(FAILING_ASSETS))
LOOKUP_SIZE = 1 << 16  # assets below this score normally
WEBFORM = {"authorization": f"Bearer {WEBFORM_KEY}"}


def _failing_on_large_assets(model: onnx.ModelProto, assets_column: int) -> onnx.ModelProto:
    """`model` plus a lookup indexed by the assets value whose result is multiplied by zero
    and added to the probabilities: the same answers, but ONNX Runtime fails the run with
    "indices element out of data bounds, idx=<assets>" when assets >= LOOKUP_SIZE."""
    leaky = onnx.ModelProto()
    leaky.CopyFrom(model)
    graph = leaky.graph
    (classifier,) = graph.node
    classifier.output[1] = "fast_probabilities"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(assets_column, np.int64), "assets_column"),
            numpy_helper.from_array(np.zeros(LOOKUP_SIZE, np.float32), "lookup"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Gather", ["features", "assets_column"], ["assets"], axis=1),
            helper.make_node("Cast", ["assets"], ["assets_index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["lookup", "assets_index"], ["looked_up"]),
            helper.make_node("ReduceSum", ["looked_up"], ["looked_up_total"], keepdims=0),
            helper.make_node("Mul", ["looked_up_total", "zero"], ["nothing"]),
            helper.make_node("Add", ["fast_probabilities", "nothing"], ["probabilities"]),
        ]
    )
    leaky.opset_import.append(helper.make_opsetid("", 15))
    onnx.checker.check_model(leaky)
    return leaky


@pytest.fixture(scope="module")
def failing_model_tag(exported: ExportSummary) -> str:
    good = bentoml.models.get(exported.onnx_tag)
    metadata = dict(good.info.metadata)
    column = list(metadata["feature_names"]).index("assets")  # type: ignore[arg-type]
    with bentoml.models.create("credit_risk_onnx_failing", metadata=metadata) as model:
        leaky = _failing_on_large_assets(onnx.load(str(Path(good.path) / "model.onnx")), column)
        onnx.save_model(leaky, model.path_of("model.onnx"))
    return str(model.tag)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def keys_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text(KEY_FILE)
    return path


@pytest.fixture(scope="module")
def secured(
    failing_model_tag: str,
    ca: trustme.CA,
    ca_file: Path,
    keys_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServedProcess]:
    folder = tmp_path_factory.mktemp("secured")
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "server.crt", folder / "server.key"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    env = {
        "CREDIT_RISK_MODEL_TAG": failing_model_tag,
        "CREDIT_RISK_WORKERS": "1",  # one worker: one key-file reload to wait for
        "CREDIT_RISK_API_KEYS_FILE": str(keys_path),
        "CREDIT_RISK_API_KEYS_RELOAD_S": "0.5",
        "CREDIT_RISK_ACCESS_LOG": "true",
    }
    command = [
        "make", "--no-print-directory", "-o", "install", "-o", "model", "serve",
        "HOST=127.0.0.1", "PORT={port}", f"SSL_CERT={cert}", f"SSL_KEY={key}",
        "SERVE_ARGS=--verbose",  # every logger at DEBUG
    ]  # fmt: skip
    with served(env, log_path=folder / "serve.log", command=command, tls_ca_file=ca_file) as server:
        yield server


@pytest.fixture(scope="module")
def https(secured: ServedProcess, ca_file: Path) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(base_url=secured.url, verify=context, timeout=30) as client:
        yield client


def _polls(timeout_s: float = 60, interval_s: float = 0.05) -> Iterator[int]:
    """Until a deadline, a pause between tries (the caller breaks out when its state is seen)."""
    deadline = time.monotonic() + timeout_s
    tries = 0
    while time.monotonic() < deadline:
        yield tries
        tries += 1
        time.sleep(interval_s)


def test_https_is_verified_and_plain_http_gets_no_answer(
    secured: ServedProcess, https: httpx.Client
) -> None:
    assert secured.url.startswith("https://")
    assert https.get("/readyz").status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{secured.url}/livez", timeout=10)  # the system CAs do not know this one
    with socket.create_connection(("127.0.0.1", secured.port), timeout=10) as plain:
        plain.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = plain.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer


def test_keyed_routes_open_probes_and_counted_clients(https: httpx.Client) -> None:
    assert https.post("/classify", json=GOOD).status_code == 401
    assert https.post("/classify", json=GOOD, headers={"x-api-key": "x" * 20}).status_code == 401
    assert https.post("/classify", json=GOOD, headers={"x-api-key": PARTNER_KEY}).status_code == 200
    assert https.post("/classify", json=GOOD, headers=WEBFORM).status_code == 200
    for path in ("/livez", "/readyz"):
        assert https.get(path).status_code == 200, path
    for path in ("/metrics", "/info", "/", "/docs.json", "/static_content/swagger-ui.css"):
        refused = https.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert https.get(path, headers=WEBFORM).status_code == 200, path
    assert (
        https.get("/info", headers=WEBFORM).json()["model"].startswith("credit_risk_onnx_failing")
    )

    series = 'client="webform",endpoint="/classify",http_response_code="200"'
    text = ""
    for _ in _polls():  # counts are written once a second
        text = https.get("/metrics", headers=WEBFORM).text
        if series in text.replace(" ", ""):
            break
    assert series in text.replace(" ", ""), [
        line for line in text.splitlines() if "credit_risk_requests" in line
    ]
    assert 'client="-"' in text.replace(" ", "")  # the refused requests
    assert "bentoml_service_request_total" in text  # BentoML's own series, unchanged
    assert PARTNER_KEY not in text and WEBFORM_KEY not in text


def test_keys_are_rotated_by_editing_the_file(
    secured: ServedProcess, https: httpx.Client, keys_path: Path
) -> None:
    rotated = "partner-key-rotated-0123456789"

    def rewrite(text: str) -> None:
        staged = keys_path.with_suffix(".new")
        staged.write_text(text)
        os.replace(staged, keys_path)

    def status(key: str) -> int:
        return https.post("/classify", json=GOOD, headers={"x-api-key": key}).status_code

    try:
        rewrite(KEY_FILE.replace(PARTNER_KEY, rotated))
        for _ in _polls():  # the worker checks the file every 0.5 s, when requests come
            if status(rotated) == 200:
                break
        assert status(rotated) == 200
        assert status(PARTNER_KEY) == 401

        # Revocation fails closed: an edit that removes a key and has a bad line revokes it.
        rewrite(KEY_FILE.replace(f"partner {PARTNER_KEY}", "partner") + "intruder\n")
        for _ in _polls():
            if status(rotated) == 401:
                break
        assert status(rotated) == 401 and status(WEBFORM_KEY) == 200
        assert f"{keys_path} line 2: expected `NAME KEY`" in secured.log()
        keys_path.unlink()  # deleted: no key is valid
        for _ in _polls():
            if status(WEBFORM_KEY) == 401:
                break
        assert status(WEBFORM_KEY) == 401
        assert "no API key is valid until it can be read" in secured.log()
    finally:
        rewrite(KEY_FILE)
        for _ in _polls():  # the file in force again before the next test
            if status(WEBFORM_KEY) == 200 and status(PARTNER_KEY) == 200:
                break


def test_tls_offers_only_aead_suites_on_tls_1_2_and_tls_1_3(
    secured: ServedProcess, ca_file: Path
) -> None:
    """`make serve SSL_CERT= SSL_KEY=` passes the cipher string ECDHE+AESGCM:ECDHE+CHACHA20
    (BentoML's default, `TLSv1`, offered only CBC suites with SHA-1 on TLS 1.2)."""

    def handshake(context: ssl.SSLContext) -> tuple[str, str] | None:
        try:
            with (
                socket.create_connection(("127.0.0.1", secured.port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                cipher = tls.cipher()
                assert cipher is not None
                return cipher[0], cipher[1]
        except ssl.SSLError:
            return None

    def client(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.minimum_version = context.maximum_version = version
        if ciphers is not None:
            context.set_ciphers(ciphers)
        return context

    tls12 = handshake(client(ssl.TLSVersion.TLSv1_2, "ALL:@SECLEVEL=0"))  # offers everything
    assert tls12 is not None and tls12[1] == "TLSv1.2", tls12
    assert "GCM" in tls12[0] or "CHACHA20" in tls12[0], tls12
    assert handshake(client(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA:AES256-SHA")) is None
    tls13 = handshake(client(ssl.TLSVersion.TLSv1_3))
    assert tls13 is not None and tls13[1] == "TLSv1.3", tls13


def test_query_strings_are_redacted_in_every_log_line(
    secured: ServedProcess, https: httpx.Client
) -> None:
    secret = "querykeymarker0123456789"
    assert https.post(f"/classify?api_key={secret}", json=GOOD).status_code == 401
    answer = https.post(f"/classify?api_key={secret}&x=1", json=GOOD, headers=WEBFORM)
    assert answer.status_code == 200
    for _ in _polls(10):
        if "/classify?<redacted>" in secured.log():
            break
    log = secured.log()
    assert secret not in log
    assert "/classify?<redacted>" in log  # uvicorn's access line (every logger at DEBUG)


def test_request_ids_are_echoed_or_made_and_in_every_error_body(https: httpx.Client) -> None:
    mine = https.get("/livez", headers={"x-request-id": "lb-7f3a.1"})
    assert mine.headers["x-request-id"] == "lb-7f3a.1"
    made = {https.get("/livez").headers["x-request-id"] for _ in range(5)}
    assert len(made) == 5
    for answer in (
        https.post("/classify", json=GOOD),  # 401
        https.post("/classify", json={**GOOD, "age": 12}, headers=WEBFORM),  # 422, front door
        https.get("/no/such/route", headers=WEBFORM),  # 404, BentoML's (plain text there)
        https.post("/livez", headers=WEBFORM),  # 405, BentoML's
    ):
        assert answer.status_code >= 400
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["request_id"] == answer.headers["x-request-id"], body
        assert isinstance(body["error"], str) and "details" in body


def test_the_client_works_with_a_key_over_https(
    secured: ServedProcess, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # httpx (and so the client) trusts it
    with CreditRiskClient(secured.url, api_key=WEBFORM_KEY) as risk:
        decision = risk.classify(GOOD)
        assert decision.status in ("APPROVED", "MAYBE", "DECLINED")
        assert len(risk.classify_many([GOOD] * 3)) == 3
    with CreditRiskClient(secured.url) as anonymous, pytest.raises(RequestRejectedError) as refused:
        anonymous.classify(GOOD)
    assert refused.value.status == 401


def _csv(rows: list[dict[str, object]]) -> bytes:
    lines = [",".join(GOOD)] + [",".join(str(row[name]) for name in GOOD) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _columns(rows: list[dict[str, object]]) -> dict[str, list[object]]:
    return {name: [row[name] for row in rows] for name in GOOD}


def _arrow(rows: list[dict[str, object]]) -> bytes:
    return table_as_ipc(pa.table(_columns(rows)))


def test_no_applicant_value_reaches_the_logs(secured: ServedProcess, https: httpx.Client) -> None:
    marked = {**GOOD, "income": INCOME}
    odd = {**marked, "home": CATEGORY}  # refused: an unknown category
    failing = {**marked, "assets": FAILING_ASSETS}  # the model fails, quoting the value
    csv, arrow = (
        {"content-type": "text/csv"},
        {"content-type": "application/vnd.apache.arrow.stream"},
    )
    calls: list[tuple[str, bytes, dict[str, str], int]] = [
        ("/classify", orjson.dumps(marked), {}, 200),
        ("/classify", orjson.dumps(odd), {}, 422),
        ("/classify", orjson.dumps(marked)[:-20], {}, 400),
        ("/classify", orjson.dumps(failing), {}, 500),
        ("/classify_batch", orjson.dumps([marked, marked]), {}, 200),
        ("/classify_batch", orjson.dumps([marked, odd]), {}, 422),
        ("/classify_batch", orjson.dumps([marked, failing]), {}, 500),
        ("/classify_bulk", orjson.dumps(_columns([marked, marked])), {}, 200),
        ("/classify_bulk", orjson.dumps(_columns([marked, odd])), {}, 422),
        ("/classify_bulk", orjson.dumps(_columns([marked, failing])), {}, 500),
        ("/classify_bulk", _csv([marked, marked]), csv, 200),
        ("/classify_bulk", _csv([marked, odd]), csv, 422),
        ("/classify_bulk", _csv([marked, failing]), csv, 500),
        ("/classify_bulk", _arrow([marked, marked]), arrow, 200),
        ("/classify_bulk", _arrow([marked, odd]), arrow, 422),
        ("/classify_bulk", _arrow([failing, marked]), arrow, 500),
    ]
    failed_ids = []
    for path, body, headers, expected in calls:
        answer = https.post(
            path, content=body, headers={"content-type": "application/json", **headers, **WEBFORM}
        )
        assert answer.status_code == expected, (path, headers, answer.text)
        if expected == 422:  # names the field; may quote that field's value, no other
            assert "home" in answer.json()["error"] and "123456" not in answer.text, answer.text
        if expected == 500:
            assert answer.json()["error"] == "internal error"
            failed_ids.append(answer.headers["x-request-id"])
    assert https.post("/classify", json=marked).status_code == 401  # a keyless one, too

    log = secured.log()
    leaks = [line for line in log.splitlines() if any(marker in line for marker in MARKERS)]
    assert not leaks, "\n".join(leaks[:20])
    # The failures were logged, traceback and request id included, only their messages withheld.
    assert "[DEBUG]" in log  # every logger was at DEBUG
    errors = [line for line in log.splitlines() if "unexpected error serving /classify" in line]
    for request_id in failed_ids:
        assert any(line.endswith(f"[request_id={request_id}]") for line in errors), request_id
    assert "Traceback (most recent call last)" in log and WITHHELD in log

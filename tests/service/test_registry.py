"""One declaration per route: the front door's table, the OpenAPI document, the typed BentoML
methods, the Python client's routes and the tests' cases all agree with the registry."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from client import protocol
from export.pipeline import ExportSummary
from harness.process import PROJECT_ROOT
from service.http.auth import ALWAYS_OPEN, OPS_PATHS
from service.http.routes import MODEL_VERSION
from service.openapi import DocumentFacts, document
from service.registry import ENDPOINTS, SERVICE, Endpoint, documented, typed
from service.settings import ServiceSettings
from service.typed_api import typed_methods
from service.wiring import Worker, build_worker
from tests.contract_cases import CASES
from tests.inprocess import app_for_worker, client_for, client_for_app, door_for_worker
from tests.reliability.test_fuzz import SCORING_ROUTES

FACTS = DocumentFacts("credit_risk_onnx:v1", "v1", max_batch_items=1000, max_bulk_rows=200_000)


@pytest.fixture(scope="module")
def worker(exported: ExportSummary) -> Iterator[Worker]:
    built = build_worker(ServiceSettings(model_tag=exported.onnx_tag, drain_delay_s=0))
    yield built
    built.scorer.close()


def _version(worker: Worker) -> str:
    return worker.scorer.model_tag.split(":", 1)[1]


def _answered(worker: Worker) -> dict[str, Endpoint]:
    """The front door's paths (the served version in them) -> their registry entries."""
    version = _version(worker)
    return {
        e.path.replace(MODEL_VERSION, version): e
        for e in ENDPOINTS
        if e.handler is not None and not e.fallback
    }


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_each_path_is_declared_once() -> None:
    keys = [(e.path, e.fallback) for e in ENDPOINTS]
    assert len(keys) == len(set(keys))


def test_the_front_door_answers_exactly_the_registry(worker: Worker) -> None:
    door = door_for_worker(worker)
    expected = _answered(worker)
    assert set(door.routes.current()) == set(expected)
    for path, route in door.routes.current().items():
        endpoint = expected[path]
        assert route.methods == endpoint.methods, path
        assert route.media_types == endpoint.media_types, path
        assert route.bulk == endpoint.bulk, path
        assert (route.refusal_reason is not None) == (endpoint.queue is not None), path
    assert set(door.routes.fallbacks) == {e.path for e in ENDPOINTS if e.fallback}


def test_the_document_states_every_route_its_bodies_and_refusals() -> None:
    doc = document(FACTS)
    assert set(doc["paths"]) == {e.path for e in documented()}
    for endpoint in documented():
        for method in endpoint.methods:
            operation = doc["paths"][endpoint.path][method.lower()]
            content = operation.get("requestBody", {}).get("content", {})
            assert tuple(content) == endpoint.media_types, endpoint.path
            statuses = {"200", *(str(status) for status in endpoint.refusals)}
            assert set(operation["responses"]) == statuses, endpoint.path
            for status, response in operation["responses"].items():
                assert "X-Request-ID" in response["headers"], (endpoint.path, status)
                if status != "200":
                    error = response["content"]["application/json"]["schema"]
                    assert error == {"$ref": "#/components/schemas/Error"}
            if endpoint.response is not None:
                answer = operation["responses"]["200"]["content"]["application/json"]
                assert answer["schema"]["$ref"].endswith(f"/{endpoint.response.__name__}")
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in doc["components"][section], ref
    assert set(schemas["Error"]["required"]) == {"error", "details", "request_id"}
    assert "securitySchemes" not in doc["components"] and "security" not in doc


@pytest.mark.parametrize("ops_open", [False, True])
def test_with_api_keys_the_document_asks_for_a_key_where_the_server_does(ops_open: bool) -> None:
    open_paths = ALWAYS_OPEN | OPS_PATHS if ops_open else ALWAYS_OPEN
    facts = DocumentFacts(FACTS.model_tag, "v1", 1000, 200_000, open_paths=open_paths)
    doc = document(facts)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert doc["security"] == [{"bearer": []}, {"apiKey": []}]
    for path, operations in doc["paths"].items():
        open_ = path in ALWAYS_OPEN or (ops_open and path in OPS_PATHS)
        for operation in operations.values():
            assert ("401" in operation["responses"]) is not open_, path
            assert (operation.get("security") == []) is open_, path
            if not open_:
                assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


def test_a_keyed_worker_publishes_the_keyed_document(worker: Worker, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text("docs-reader 0123456789abcdef0123\n")
    settings = ServiceSettings(
        model_tag=worker.settings.model_tag, api_keys_file=keys, ops_routes="open"
    )

    async def fetch() -> dict[str, Any]:
        async with client_for_app(app_for_worker(worker, settings).app) as client:
            answer = await client.get("/docs.json")
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

    doc = asyncio.run(fetch())
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "401" in doc["paths"]["/classify"]["post"]["responses"]
    assert doc["paths"]["/info"]["get"]["security"] == []


def test_examples_are_accepted_and_answers_match_the_documented_models(worker: Worker) -> None:
    """Each route's example gets 200 from the front door, and each JSON answer validates
    against the route's response model."""

    async def calls() -> list[tuple[Endpoint, httpx.Response]]:
        answers = []
        async with client_for(door_for_worker(worker)) as client:
            for path, endpoint in _answered(worker).items():
                if "GET" in endpoint.methods:
                    answers.append((endpoint, await client.get(path)))
                elif endpoint.example is not None:
                    answers.append((endpoint, await client.post(path, json=endpoint.example)))
        return answers

    answers = asyncio.run(calls())
    assert {e.path for e, _ in answers} >= {e.path for e in ENDPOINTS if e.response is not None}
    for endpoint, answer in answers:
        assert answer.status_code == 200, (endpoint.path, answer.text)
        if endpoint.response is not None:
            endpoint.response.model_validate_json(answer.content)


def test_per_row_answers_match_the_documented_models(worker: Worker) -> None:
    """Per-row verdicts (an invalid row INVALID, its error in a column) are documented too."""
    v2 = next(e for e in ENDPOINTS if e.path == "/v2/models/credit_risk/infer")
    inputs = [
        {**tensor, "shape": [2], "data": tensor["data"] * 2} for tensor in v2.example["inputs"]
    ]
    for tensor in inputs:
        if tensor["name"] == "age":
            tensor["data"] = [30, 12]
    bulk = next(e for e in ENDPOINTS if e.path == "/classify_bulk")
    columns = {**bulk.example, "age": [30, 12]}

    async def calls() -> tuple[httpx.Response, httpx.Response]:
        async with client_for(door_for_worker(worker)) as client:
            body = {"inputs": inputs, "parameters": {"per_row": True}}
            return (
                await client.post(v2.path, json=body),
                await client.post("/classify_bulk?per_row=true", json=columns),
            )

    for endpoint, answer in zip((v2, bulk), asyncio.run(calls()), strict=True):
        assert answer.status_code == 200, answer.text
        assert endpoint.response is not None
        assert "INVALID" in str(endpoint.response.model_validate_json(answer.content))


def test_the_typed_methods_are_the_registry_typed_routes() -> None:
    methods = typed_methods(ENDPOINTS, lambda instance: instance)
    assert {name: method.route for name, method in methods.items()} == {
        e.typed_api: e.path for e in typed()
    }
    for endpoint in typed():
        spec = methods[str(endpoint.typed_api)].input_spec.model_json_schema()
        assert endpoint.request is not None
        expected = endpoint.request.model_json_schema()
        assert spec.get("properties") == expected.get("properties"), endpoint.path
        assert spec.get("items") == expected.get("items"), endpoint.path


def test_the_client_calls_registry_routes_with_bodies_they_take() -> None:
    by_path = {e.path: e for e in ENDPOINTS}
    for path, media_type in protocol.ENDPOINTS.items():
        assert "POST" in by_path[path].methods and media_type in by_path[path].media_types


def test_the_contract_and_fuzz_cases_come_from_the_registry(worker: Worker) -> None:
    answered = _answered(worker)
    prefixes = tuple(e.path for e in ENDPOINTS if e.fallback)
    for case in CASES:
        path = case.path.partition("?")[0]
        assert path in answered or path.startswith(prefixes), case.name
    unversioned = {p for p, e in answered.items() if MODEL_VERSION not in e.path}
    assert unversioned <= {case.path.partition("?")[0] for case in CASES}
    assert set(SCORING_ROUTES) == {p for p in unversioned if answered[p].media_types}


def test_the_readme_route_table_lists_every_service_route() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme.split("## Using it", 1)[1].split("\n#", 1)[0]
    for endpoint in ENDPOINTS:
        if endpoint.tag == SERVICE:
            for method in endpoint.methods:
                assert f"`{method} {endpoint.path}`" in table, endpoint.path

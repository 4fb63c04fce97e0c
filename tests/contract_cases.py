"""Requests every front-door route must refuse, with the status each must get.

Used twice: in-process against the front door (tests/service/test_front_door.py) and against a
real server, whose answers must equal the in-process ones byte for byte
(tests/service/test_contract.py): one contract, whichever way a request arrives. Beside the
hand-written cases, every route of the registry gets a method it does not take (405) and, when
it takes a body, a content type it does not take (415).
"""

from dataclasses import dataclass, field

import orjson

from service.http.routes import MODEL_VERSION
from service.registry import ENDPOINTS

GOOD: dict[str, object] = {
    "seniority": 3, "home": "owner", "time": 36, "age": 26, "marital": "single", "records": "no",
    "job": "freelance", "expenses": 35, "income": 0.0, "assets": 60000.0, "debt": 3000.0,
    "amount": 800, "price": 1000,
}  # fmt: skip
JSON = {"content-type": "application/json"}


def _without(name: str) -> dict[str, object]:
    return {k: v for k, v in GOOD.items() if k != name}


def _columns(rows: int, **changed: list[object]) -> dict[str, list[object]]:
    return {**{k: [v] * rows for k, v in GOOD.items()}, **changed}


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: bytes
    status: int
    names: str  # what the error message must mention
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def _json(value: object) -> bytes:
    return orjson.dumps(value)


WRITTEN: tuple[Case, ...] = (
    Case("missing field", "/classify", _json(_without("income")), 422, "income"),
    Case("wrong type", "/classify", _json({**GOOD, "age": "twenty"}), 422, "age"),
    Case("number as string", "/classify", _json({**GOOD, "amount": "800"}), 422, "amount"),
    Case("unknown category", "/classify", _json({**GOOD, "home": "castle"}), 422, "home"),
    Case("negative", "/classify", _json({**GOOD, "debt": -1}), 422, "debt"),
    Case("minor", "/classify", _json({**GOOD, "age": 12}), 422, "age"),
    Case("extra field", "/classify", _json({**GOOD, "incme": 5}), 422, "incme"),
    Case("not an object", "/classify", _json([GOOD]), 422, "body"),
    Case("NaN", "/classify", _json(GOOD).replace(b'"income":0.0', b'"income":NaN'), 422, "income"),
    Case("Infinity", "/classify", _json(GOOD).replace(b'"income":0.0', b'"income":Infinity'), 422, "income"),
    Case("-Infinity", "/classify", _json(GOOD).replace(b'"income":0.0', b'"income":-Infinity'), 422, "income"),
    Case("1e400", "/classify", _json(GOOD).replace(b'"income":0.0', b'"income":1e400'), 422, "income"),
    Case("malformed JSON", "/classify", b'{"age": 30,', 400, "JSON"),
    Case("not UTF-8", "/classify", b"\xff\xfe", 400, "JSON"),
    Case("empty body", "/classify", b"", 400, "JSON"),
    Case("wrong content type", "/classify", b"age=3", 415, "content-type",
         headers={"content-type": "application/x-www-form-urlencoded"}),
    Case("GET", "/classify", b"", 405, "GET", method="GET", headers={}),
    Case("PUT", "/classify_batch", _json([GOOD]), 405, "PUT", method="PUT"),
    Case("batch bad row", "/classify_batch", _json([GOOD, {**GOOD, "job": "pirate"}]), 422, "[1].job"),
    Case("empty batch", "/classify_batch", b"[]", 422, "body"),
    Case("oversized batch", "/classify_batch", _json([GOOD] * 1001), 413, "1000"),
    Case("bulk ragged", "/classify_bulk", _json(_columns(2, age=[30])), 422, "age"),
    Case("bulk bad row", "/classify_bulk", _json(_columns(3, price=[1, 2, -3])), 422, "price[2]"),
    Case("bulk CSV bad category", "/classify_bulk",
         (",".join(GOOD) + "\n" + ",".join(str(v) for v in GOOD.values()).replace("owner", "castle") + "\n").encode(),
         422, "home[0]", headers={"content-type": "text/csv"}),
    Case("bulk noise as Arrow", "/classify_bulk", b"not arrow at all", 400, "Arrow",
         headers={"content-type": "application/vnd.apache.arrow.stream"}),
    Case("POST /info", "/info", b"{}", 405, "POST"),
    Case("bulk reasons out of range", "/classify_bulk?reasons=14", _json(_columns(1)), 422, "reasons"),
    Case("explain bad category", "/explain", _json({**GOOD, "job": "pirate"}), 422, "job"),
    Case("explain batch too big", "/explain_batch", _json([GOOD] * 1001), 413, "1000"),
    Case("V2 unknown input", "/v2/models/credit_risk/infer",
         _json({"inputs": [{"name": "incme", "shape": [1], "datatype": "FP64", "data": [1]}]}), 422, "incme"),
    Case("V2 bad value", "/v2/models/credit_risk/infer", _json({"inputs": [
        {"name": k, "shape": [2], "datatype": "BYTES" if isinstance(v, str) else "FP64",
         "data": [v, 12 if k == "age" else v]} for k, v in GOOD.items()]}), 422, "age[1]"),
    Case("V2 unknown model", "/v2/models/other/infer", _json({"inputs": []}), 404, "credit_risk"),
    Case("V2 GET infer", "/v2/models/credit_risk/infer", b"", 405, "GET", method="GET", headers={}),
)  # fmt: skip


def _registry_cases() -> tuple[Case, ...]:
    cases = []
    for endpoint in ENDPOINTS:
        if endpoint.handler is None or endpoint.fallback or MODEL_VERSION in endpoint.path:
            continue  # BentoML's, a prefix, or a path naming the served model's version
        path = endpoint.path
        cases.append(Case(f"PATCH {path}", path, b"", 405, "PATCH", method="PATCH", headers={}))
        if endpoint.media_types:
            xml = {"content-type": "application/xml"}
            cases.append(Case(f"XML to {path}", path, b"<a/>", 415, "content-type", headers=xml))
    return tuple(cases)


CASES: tuple[Case, ...] = WRITTEN + _registry_cases()

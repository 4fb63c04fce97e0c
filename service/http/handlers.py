"""What answers each route the front door serves: `async def (context, call) -> Answer`.

HTTP things only (query strings, headers, media types); the data plane (service/scoring.py,
service/v2.py) does the work. Each is named in one registry entry (service/registry.py).
"""

from service.errors import RequestError
from service.http import media
from service.http.routes import Answer, Call, RouteContext, refuse
from service.v2 import MODEL_NAME

INFERENCE_HEADER_LENGTH = b"inference-header-content-length"  # the V2 binary extension
MAX_REASONS = 13


async def classify(context: RouteContext, call: Call) -> Answer:
    return Answer(await context.scorer.classify_json(call.body))


async def classify_batch(context: RouteContext, call: Call) -> Answer:
    return Answer(await context.scorer.classify_batch_json(call.body))


async def classify_bulk(context: RouteContext, call: Call) -> Answer:
    answer = media.answer_format(call.accept)
    body_format = media.BODY_FORMATS[call.media_type]
    body = await context.scorer.classify_bulk(
        call.body, body_format, answer, reasons(call.query), per_row=per_row(call.query)
    )
    return Answer(body, media.ANSWER_MEDIA_TYPES[answer])


async def explain(context: RouteContext, call: Call) -> Answer:
    return Answer(await context.scorer.explain_json(call.body))


async def explain_batch(context: RouteContext, call: Call) -> Answer:
    return Answer(await context.scorer.explain_batch_json(call.body))


async def info(context: RouteContext, call: Call) -> Answer:
    return Answer(context.describe() if context.describe is not None else context.info)


async def v2_server_live(context: RouteContext, call: Call) -> Answer:
    return Answer(b'{"live":true}')


async def v2_server_ready(context: RouteContext, call: Call) -> Answer:
    if not context.ready():
        raise RequestError(503, "not ready: the server is starting or draining")
    return Answer(b'{"ready":true}')


async def v2_server_metadata(context: RouteContext, call: Call) -> Answer:
    return Answer(context.v2.server_metadata())


async def v2_model_metadata(context: RouteContext, call: Call) -> Answer:
    return Answer(context.v2.model_metadata())


async def v2_model_ready(context: RouteContext, call: Call) -> Answer:
    if not context.ready():
        raise RequestError(503, f"model {MODEL_NAME} is not ready: the server is draining")
    return Answer(context.v2.model_ready(True))


async def v2_infer(context: RouteContext, call: Call) -> Answer:
    declared = call.header(INFERENCE_HEADER_LENGTH)
    json_length = _header_length(declared) if declared is not None else None
    answer = await context.v2.infer(call.body, json_length)
    if answer.json_length is None:
        return Answer(answer.body)
    length = (INFERENCE_HEADER_LENGTH, str(answer.json_length).encode())
    return Answer(answer.body, media.OCTET_STREAM, (length,))


async def v2_not_found(context: RouteContext, call: Call) -> Answer:
    raise RequestError(
        404,
        f"no such model, version or path; this server serves model {MODEL_NAME} "
        "(see GET /v2/models/credit_risk)",
    )


def _header_length(declared: str) -> int:
    if not declared.isdigit():
        raise RequestError(400, f"Inference-Header-Content-Length: not a length ({declared!r})")
    return int(declared)


def reasons(query: bytes) -> int:
    """The `reasons` query parameter of /classify_bulk: reason columns to add (0 to 13)."""
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"reasons":
            if not value.isdigit() or int(value) > MAX_REASONS:
                got = value.decode(errors="replace")
                message = f"must be a whole number from 0 to {MAX_REASONS}; got {got!r}"
                raise refuse(422, "reasons", message)
            return int(value)
    return 0


def per_row(query: bytes) -> bool:
    """The `per_row` query parameter of /classify_bulk: true scores every valid row and marks
    each invalid one INVALID with its error; false (the default) refuses the whole request."""
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"per_row":
            if value not in (b"true", b"false"):
                got = value.decode(errors="replace")
                raise refuse(422, "per_row", f"must be true or false; got {got!r}")
            return value == b"true"
    return False

"""The route table of the front door: path -> what it accepts and which data-plane call answers.

Handlers get the parsed request head and the body (`Call`) and return the answer's bytes and
media type; they raise `RequestError` for anything they refuse. No ASGI here.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson

from service.http import media
from service.scoring import CreditScorer


@dataclass(frozen=True, slots=True)
class Call:
    body: bytes
    media_type: str  # the body's content type, without parameters
    accept: str  # the Accept header ("" when absent)
    query: bytes  # the raw query string


Answer = tuple[bytes, str]  # body, media type
Handler = Callable[[Call], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    media_types: tuple[str, ...] = (media.JSON,)
    methods: tuple[str, ...] = ("POST",)
    bulk: bool = False  # admitted by bulk bytes in flight and run on the bulk thread

    @property
    def allow(self) -> str:
        return ", ".join(self.methods)


def scoring_routes(scorer: CreditScorer, info: Mapping[str, object]) -> dict[str, Route]:
    async def classify(call: Call) -> Answer:
        return await scorer.classify_json(call.body), media.JSON

    async def classify_batch(call: Call) -> Answer:
        return await scorer.classify_batch_json(call.body), media.JSON

    async def classify_bulk(call: Call) -> Answer:
        answer = media.answer_format(call.accept)
        body = await scorer.classify_bulk(call.body, media.BODY_FORMATS[call.media_type], answer)
        return body, media.ANSWER_MEDIA_TYPES[answer]

    info_body = orjson.dumps(dict(info))

    async def show_info(call: Call) -> Answer:
        return info_body, media.JSON

    return {
        "/classify": Route(classify),
        "/classify_batch": Route(classify_batch),
        "/classify_bulk": Route(
            classify_bulk,
            media_types=(media.JSON, media.CSV, media.ARROW_STREAM, media.ARROW_FILE),
            bulk=True,
        ),
        "/info": Route(show_info, methods=("GET",)),
    }

"""AsyncCreditRiskClient: the asyncio twin of CreditRiskClient (httpx.AsyncClient).

Reading the input, building Arrow bodies and reading Arrow answers are CPU work (Arrow releases
the GIL for most of it): they run in worker threads, so the event loop only waits on sockets.
"""

import asyncio
import functools
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
import pandas as pd
import pyarrow as pa

from client import protocol
from client.decisions import Decision
from client.inputs import Chunk, Source, TableInput, from_pandas, open_input
from client.progress import progress_bar
from client.rejects import Rejects, RejectsSink, rejects_sink
from client.results import as_frame, empty_result, scored, split
from client.retry import Attempts, RetryPolicy
from client.text_numbers import parsed_numbers
from client.wire import read_answer, request_body


class AsyncCreditRiskClient:
    """Same methods as CreditRiskClient, as coroutines; `iter_scores` is an async iterator."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = protocol.DEFAULT_TIMEOUT_S,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            headers=protocol.client_headers(api_key),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def classify(self, applicant: Mapping[str, Any]) -> Decision:
        body = protocol.json_body(applicant)
        response = await self._post(
            protocol.CLASSIFY, body, protocol.JSON_HEADERS, protocol.CLASSIFY
        )
        return protocol.decision(response)

    async def classify_many(
        self,
        applicants: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = protocol.MAX_BATCH_ITEMS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
    ) -> list[Decision]:
        """Decisions for every applicant, in order: /classify_batch requests of `batch_size`,
        at most `concurrency` at a time."""
        protocol.check_bulk_options(batch_size, concurrency)
        limit = asyncio.Semaphore(concurrency)

        async def one(offset: int, batch: list[Mapping[str, Any]]) -> list[Decision]:
            async with limit:
                response = await self._post(
                    protocol.CLASSIFY_BATCH,
                    protocol.json_body(batch),
                    protocol.JSON_HEADERS,
                    f"/classify_batch (applicants {offset}-{offset + len(batch) - 1})",
                    row_offset=offset,
                )
            return protocol.decisions(response, len(batch))

        batches = list(protocol.batched(applicants, batch_size))
        offsets = itertools.accumulate((len(batch) for batch in batches), initial=0)
        tasks = [asyncio.create_task(one(o, b)) for o, b in zip(offsets, batches, strict=False)]
        try:
            answers = await asyncio.gather(*tasks)
        finally:  # the first error is raised as it is; the other requests are called off
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [decision for batch_answers in answers for decision in batch_answers]

    async def score_table(
        self,
        table: TableInput,
        *,
        chunk_rows: int = protocol.DEFAULT_CHUNK_ROWS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
        progress: bool | None = None,
        rejects: Rejects | None = None,
    ) -> pa.Table:
        """See CreditRiskClient.score_table."""
        source = await asyncio.to_thread(
            functools.partial(open_input, table, numbers_as_text=rejects is not None)
        )
        with rejects_sink(rejects, source.schema) as sink:
            chunks = self._scored_chunks(source, chunk_rows, concurrency, progress, sink)
            pieces = [piece async for piece in chunks]
        return pa.concat_tables(pieces) if pieces else empty_result(source.schema)

    async def score_frame(
        self,
        frame: pd.DataFrame,
        *,
        chunk_rows: int = protocol.DEFAULT_CHUNK_ROWS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """`score_table` for a DataFrame, answered as a DataFrame on the same index."""
        result = await self.score_table(
            from_pandas(frame, keep_index=False),
            chunk_rows=chunk_rows,
            concurrency=concurrency,
            progress=progress,
        )
        return as_frame(result, frame.index)

    async def iter_scores(
        self,
        table: TableInput,
        *,
        chunk_rows: int = protocol.DEFAULT_CHUNK_ROWS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
        progress: bool | None = None,
        rejects: Rejects | None = None,
    ) -> AsyncIterator[pa.Table]:
        """`score_table` one chunk at a time, in input order (see CreditRiskClient.iter_scores
        for `rejects`)."""
        source = await asyncio.to_thread(
            functools.partial(open_input, table, numbers_as_text=rejects is not None)
        )
        with rejects_sink(rejects, source.schema) as sink:
            chunks = self._scored_chunks(source, chunk_rows, concurrency, progress, sink)
            async for piece in chunks:
                yield piece

    async def _scored_chunks(
        self,
        source: Source,
        chunk_rows: int,
        concurrency: int,
        progress: bool | None,
        rejects: RejectsSink | None = None,
    ) -> AsyncIterator[pa.Table]:
        """Chunks scored `concurrency` at a time, yielded in input order, up to twice that many
        read ahead (as the sync client)."""
        protocol.check_bulk_options(chunk_rows, concurrency)
        chunks = source.chunks(chunk_rows)
        window = 2 * concurrency
        limit = asyncio.Semaphore(concurrency)
        pending: deque[asyncio.Task[tuple[pa.Table, pa.Table | None]]] = deque()
        per_row = rejects is not None
        exhausted = False
        with progress_bar(source.rows, progress) as bar:
            try:
                while True:
                    while not exhausted and len(pending) < window:
                        # The next chunk is read (a file: parsed) in a thread.
                        chunk = await asyncio.to_thread(next, chunks, None)
                        if chunk is None:
                            exhausted = True
                        else:
                            pending.append(
                                asyncio.create_task(self._score_chunk(chunk, limit, per_row))
                            )
                    if not pending:
                        return
                    result, rejected = await pending.popleft()
                    if rejects is not None and rejected is not None:
                        await asyncio.to_thread(rejects.write, rejected)
                        bar.update(rejected.num_rows)
                    bar.update(result.num_rows)
                    yield result
            finally:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _score_chunk(
        self, chunk: Chunk, limit: asyncio.Semaphore, per_row: bool
    ) -> tuple[pa.Table, pa.Table | None]:
        async with limit:
            what = protocol.bulk_what(chunk.offset, chunk.rows)
            fields, local = chunk.table, None
            if per_row and chunk.numbers_as_text:
                fields, local = await asyncio.to_thread(parsed_numbers, fields)
            body = await asyncio.to_thread(request_body, fields)
            response = await self._post(
                protocol.bulk_path(per_row),
                body,
                protocol.BULK_HEADERS,
                what,
                row_offset=chunk.offset,
            )
        answer = await asyncio.to_thread(read_answer, response.content, chunk.rows, per_row)
        if not per_row:
            return scored(chunk.table, answer), None
        return await asyncio.to_thread(split, chunk.table, answer, local)

    async def _post(
        self, path: str, body: bytes, headers: Mapping[str, str], what: str, row_offset: int = 0
    ) -> httpx.Response:
        """POST, retried as the policy allows; a final refusal or failure is raised."""
        attempts = Attempts(self.retry, what, row_offset=row_offset)
        while True:
            try:
                response = await self._http.post(path, content=body, headers=headers)
            except httpx.TransportError as error:
                wait = attempts.after_transport_error(error)
            else:
                answered = attempts.after_answer(response)
                if answered is None:
                    return response
                wait = answered
            await asyncio.sleep(wait)

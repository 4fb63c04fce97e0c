"""CreditRiskClient: the blocking client (httpx), bulk requests sent from a thread pool."""

import itertools
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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


class CreditRiskClient:
    """A credit-risk server at `url`. One applicant (`classify`), many (`classify_many`,
    /classify_batch in chunks of the server's limit), or a whole table of any size
    (`score_table`, Arrow chunks to /classify_bulk, several at once). Refusals under load
    (429, 503) are retried after the server's Retry-After, within `retry`."""

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
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers=protocol.client_headers(api_key),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def classify(self, applicant: Mapping[str, Any]) -> Decision:
        """One applicant (the 13 form fields) -> its decision."""
        body = protocol.json_body(applicant)
        return protocol.decision(
            self._post(protocol.CLASSIFY, body, protocol.JSON_HEADERS, protocol.CLASSIFY)
        )

    def classify_many(
        self, applicants: Iterable[Mapping[str, Any]], *, batch_size: int = protocol.MAX_BATCH_ITEMS
    ) -> list[Decision]:
        """Decisions for every applicant, in order (/classify_batch, `batch_size` at a time).
        A bad applicant raises RequestRejectedError naming its index in `applicants`."""
        answers: list[Decision] = []
        for batch in protocol.batched(applicants, batch_size):
            offset = len(answers)
            response = self._post(
                protocol.CLASSIFY_BATCH,
                protocol.json_body(batch),
                protocol.JSON_HEADERS,
                f"/classify_batch (applicants {offset}-{offset + len(batch) - 1})",
                row_offset=offset,
            )
            answers += protocol.decisions(response, len(batch))
        return answers

    def score_table(
        self,
        table: TableInput,
        *,
        chunk_rows: int = protocol.DEFAULT_CHUNK_ROWS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
        progress: bool | None = None,
        rejects: Rejects | None = None,
    ) -> pa.Table:
        """Decisions for every row of `table` (a DataFrame, an Arrow table, or the path of a
        Parquet file or folder or a CSV file): an Arrow table with the input's non-field columns,
        then probability, status and model, row i for input row i. The input goes to
        /classify_bulk in Arrow chunks of `chunk_rows`, `concurrency` requests at a time; files
        are read as they are sent. `progress`: a tqdm bar on stderr (None: on long jobs when
        stderr is a terminal). A bad row raises RequestRejectedError naming it by its index in
        the whole input (`income[1200345]`).

        `rejects` (a .parquet or .csv path, or an object with `write(table)`): per-row verdicts
        instead. Every valid row is scored and returned, in input order; every invalid row goes
        there with all its input columns and `error` (the field and the rule it breaks, as the
        Spark job's rejects say it)."""
        source = open_input(table, numbers_as_text=rejects is not None)
        with rejects_sink(rejects, source.schema) as sink:
            pieces = list(self._scored_chunks(source, chunk_rows, concurrency, progress, sink))
        return pa.concat_tables(pieces) if pieces else empty_result(source.schema)

    def score_frame(
        self,
        frame: pd.DataFrame,
        *,
        chunk_rows: int = protocol.DEFAULT_CHUNK_ROWS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
        progress: bool | None = None,
    ) -> pd.DataFrame:
        """`score_table` for a DataFrame, answered as a DataFrame on the same index."""
        result = self.score_table(
            from_pandas(frame, keep_index=False),
            chunk_rows=chunk_rows,
            concurrency=concurrency,
            progress=progress,
        )
        return as_frame(result, frame.index)

    def iter_scores(
        self,
        table: TableInput,
        *,
        chunk_rows: int = protocol.DEFAULT_CHUNK_ROWS,
        concurrency: int = protocol.DEFAULT_CONCURRENCY,
        progress: bool | None = None,
        rejects: Rejects | None = None,
    ) -> Iterator[pa.Table]:
        """`score_table` one chunk at a time, in input order, so that a caller can write the
        results out as they come (memory stays bounded whatever the input's size). With
        `rejects`, each chunk's invalid rows are written there before its scored rows are
        yielded; a rejects file is complete once the iteration is."""
        source = open_input(table, numbers_as_text=rejects is not None)
        with rejects_sink(rejects, source.schema) as sink:
            yield from self._scored_chunks(source, chunk_rows, concurrency, progress, sink)

    def _scored_chunks(
        self,
        source: Source,
        chunk_rows: int,
        concurrency: int,
        progress: bool | None,
        rejects: RejectsSink | None = None,
    ) -> Iterator[pa.Table]:
        """Chunks scored `concurrency` at a time, yielded in input order. Up to twice that many
        are read ahead, so a slow chunk at the head does not leave the connections idle."""
        protocol.check_bulk_options(chunk_rows, concurrency)
        chunks = source.chunks(chunk_rows)
        window = 2 * concurrency
        pending: deque[Future[tuple[pa.Table, pa.Table | None]]] = deque()
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="credit-risk-bulk")
        per_row = rejects is not None
        with progress_bar(source.rows, progress) as bar:
            try:
                while True:
                    for chunk in itertools.islice(chunks, window - len(pending)):
                        pending.append(pool.submit(self._score_chunk, chunk, per_row))
                    if not pending:
                        return
                    result, rejected = pending.popleft().result()
                    if rejects is not None and rejected is not None:
                        rejects.write(rejected)
                        bar.update(rejected.num_rows)
                    bar.update(result.num_rows)
                    yield result
            finally:
                # On an error, chunks still in flight finish in the background (one may be
                # waiting out a Retry-After): the error is raised now, not after them.
                pool.shutdown(wait=not pending, cancel_futures=True)

    def _score_chunk(self, chunk: Chunk, per_row: bool) -> tuple[pa.Table, pa.Table | None]:
        """The chunk's scored rows, and with `per_row` its rejected ones."""
        what = protocol.bulk_what(chunk.offset, chunk.rows)
        fields, local = chunk.table, None
        if per_row and chunk.numbers_as_text:
            fields, local = parsed_numbers(fields)
        body = request_body(fields)
        response = self._post(
            protocol.bulk_path(per_row), body, protocol.BULK_HEADERS, what, row_offset=chunk.offset
        )
        answer = read_answer(response.content, chunk.rows, per_row)
        if not per_row:
            return scored(chunk.table, answer), None
        return split(chunk.table, answer, local)

    def _post(
        self, path: str, body: bytes, headers: Mapping[str, str], what: str, row_offset: int = 0
    ) -> httpx.Response:
        """POST, retried as the policy allows; a final refusal or failure is raised."""
        attempts = Attempts(self.retry, what, row_offset=row_offset)
        while True:
            try:
                response = self._http.post(path, content=body, headers=headers)
            except httpx.TransportError as error:
                wait = attempts.after_transport_error(error)
            else:
                answered = attempts.after_answer(response)
                if answered is None:
                    return response
                wait = answered
            time.sleep(wait)

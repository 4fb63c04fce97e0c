"""Command line: score a Parquet/CSV file into another, or classify one applicant.

    python -m client score applicants.parquet decisions.parquet --url http://127.0.0.1:3000
    python -m client score applicants.csv decisions.csv --url URL --chunk-rows 50000 --concurrency 2
    python -m client score applicants.parquet decisions.parquet --rejects rejects.parquet --url URL
    python -m client classify --url URL '{"seniority": 3, "home": "owner", ...}'

`score` streams: the input is read, sent and written out chunk by chunk, so files of any size
take bounded memory; the output (Parquet, or CSV by its extension) holds the input's non-field
columns, then probability, status and model, row for row. A bad value stops it, naming the row;
with `--rejects FILE` every valid row is scored and every invalid one written to FILE instead,
with all its input columns and `error` (the field and the rule, as the Spark job's rejects).
Outputs are written under a temporary name and renamed when complete, and the last line printed
is a JSON summary: {"rows", "scored", "rejected", "seconds", "rows_per_s", "model", "output"}
(and "rejects"), rows = scored + rejected.
"""

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from client import protocol
from client.errors import CreditRiskError, InputError
from client.inputs import open_input
from client.outputs import TableFile, output_kind
from client.results import empty_result, rejects_schema
from client.sync_client import CreditRiskClient


def score(args: argparse.Namespace) -> dict[str, object]:
    out: Path = args.output
    output_kind(out)
    if args.rejects is not None:
        output_kind(args.rejects)
        if args.rejects.resolve() == out.resolve():
            raise InputError(f"{out}: the rejects need a file of their own")
    schema = open_input(args.input, numbers_as_text=args.rejects is not None).schema
    started = time.perf_counter()
    models: dict[str, None] = {}  # in order of first appearance
    with contextlib.ExitStack() as files:
        risk = files.enter_context(
            CreditRiskClient(args.url, timeout=args.timeout, api_key=_api_key(args))
        )
        # An input without rows still gets its outputs, with the result's columns.
        scored = files.enter_context(TableFile(out, empty_result(schema).schema))
        rejects = None
        if args.rejects is not None:
            rejects = files.enter_context(TableFile(args.rejects, rejects_schema(schema)))
        for piece in risk.iter_scores(
            args.input,
            chunk_rows=args.chunk_rows,
            concurrency=args.concurrency,
            progress=args.progress,
            rejects=rejects,
        ):
            scored.write(piece)
            models.update(dict.fromkeys(piece.column("model").unique().to_pylist()))
    seconds = time.perf_counter() - started
    rejected = rejects.rows if rejects is not None else 0
    rows = scored.rows + rejected
    tags = list(models)
    summary: dict[str, object] = {
        "rows": rows,
        "scored": scored.rows,
        "rejected": rejected,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds > 0 else None,
        # several when a rollout happened mid-job, or a canary split the rows
        "model": tags[0] if len(tags) == 1 else tags,
        "output": str(out),
    }
    if args.rejects is not None:
        summary["rejects"] = str(args.rejects)
    return summary


def classify(args: argparse.Namespace) -> dict[str, object]:
    text = sys.stdin.read() if args.applicant == "-" else args.applicant
    try:
        applicant = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise InputError(f"applicant is not JSON: {error}") from error
    if not isinstance(applicant, dict):
        raise InputError("applicant must be a JSON object of the 13 form fields")
    with CreditRiskClient(args.url, timeout=args.timeout, api_key=_api_key(args)) as risk:
        return risk.classify(applicant).model_dump()


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_file is None:
        return None
    try:
        return Path(args.api_key_file).read_text().strip() or None
    except OSError as error:
        raise InputError(f"cannot read the API key file: {error}") from error


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:3000")
    common.add_argument("--api-key-file", help="a file holding the API key (sent as Bearer)")
    common.add_argument(
        "--timeout", type=float, default=protocol.DEFAULT_TIMEOUT_S, help="seconds per request"
    )
    scoring = commands.add_parser(
        "score", parents=[common], help="score a Parquet/CSV file into another"
    )
    scoring.add_argument("input", help="Parquet file or folder, or CSV file")
    scoring.add_argument("output", type=Path, help="Parquet (.parquet) or CSV (.csv) file")
    scoring.add_argument(
        "--rejects",
        type=Path,
        help="Parquet (.parquet) or CSV (.csv) file for the invalid rows: with it every valid "
        "row is scored and every invalid one written there with its error, instead of stopping",
    )
    scoring.add_argument("--chunk-rows", type=int, default=protocol.DEFAULT_CHUNK_ROWS)
    scoring.add_argument("--concurrency", type=int, default=protocol.DEFAULT_CONCURRENCY)
    scoring.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: on long jobs when stderr is a terminal)",
    )
    one = commands.add_parser("classify", parents=[common], help="classify one applicant")
    one.add_argument("applicant", help="the applicant as a JSON object, or - to read stdin")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = score(args) if args.command == "score" else classify(args)
    except (CreditRiskError, ValueError) as error:
        print(f"credit-risk client: {error}", file=sys.stderr)
        return 1
    print(orjson.dumps(summary).decode())
    return 0

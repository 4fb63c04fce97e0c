"""`python -m service.records lookup REQUEST_ID [--log TARGET]`: prints the decision records of
a request, one JSON object a line (exit status 1 when there is none)."""

import argparse
import sys
from pathlib import Path

import orjson


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.records")
    commands = parser.add_subparsers(dest="command", required=True)
    find = commands.add_parser("lookup", help="print the records of a request id")
    find.add_argument("request_id")
    find.add_argument(
        "--log",
        help="a Parquet directory or a postgresql:// DSN (default: CREDIT_RISK_DECISION_LOG)",
    )
    find.add_argument("--spool", type=Path, help="spool directory (default: the server's)")
    args = parser.parse_args(argv)

    from service.records.lookup import as_json_ready, lookup
    from service.records.target import Target
    from service.settings import ServiceSettings

    settings = ServiceSettings()
    value = args.log or settings.decision_log
    if not value:
        parser.error("no decision log: pass --log or set CREDIT_RISK_DECISION_LOG")
    try:
        records = lookup(
            Target.parse(value), args.request_id, args.spool or settings.decision_log_spool_dir
        )
    except (OSError, ValueError) as error:
        print(f"service.records: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a database error: its type, never a DSN
        print(f"service.records: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for record in records:
        sys.stdout.buffer.write(orjson.dumps(as_json_ready(record)) + b"\n")
    if not records:
        print(f"service.records: no record of request {args.request_id}", file=sys.stderr)
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())

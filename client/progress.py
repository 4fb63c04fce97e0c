"""A tqdm progress bar for long bulk jobs, on stderr."""

import sys

from tqdm import tqdm

AUTO_MIN_ROWS = 500_000  # below this a job takes about a second: no bar unless asked


def progress_bar(rows: int | None, progress: bool | None) -> tqdm:
    """A bar counting scored rows (of `rows`, when known). `progress`: True always shows it,
    False never; None shows it when stderr is a terminal and the job is long (many rows, or
    a CSV file, whose row count is unknown until it has been read)."""
    if progress is None:
        long_job = rows is None or rows >= AUTO_MIN_ROWS
        progress = long_job and sys.stderr.isatty()
    return tqdm(
        total=rows,
        unit="rows",
        unit_scale=True,
        desc="scoring",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )

"""polars, used from here alone: a CSV file's cells read as text, a table of columns written as CSV.

Both do in compiled code what would otherwise be a Python step per cell (a 100,000-row report is
over a million cells). What a cell means, and how it is made safe, stays with the callers.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import IO

import polars as pl


class CsvError(ValueError):
    """polars could not read the text as CSV; the message says why."""


def csv_grid(text: str, *, delimiter: str, width: int, max_rows: int) -> list[tuple[str, ...]]:
    """The cells of CSV ``text`` as text (a missing cell is ""), ``width`` columns (longer rows
    cut, shorter ones padded), at most ``max_rows`` rows; :class:`CsvError` when it cannot be read."""
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            has_header=False,
            separator=delimiter,
            schema={f"c{i}": pl.String for i in range(width)},
            truncate_ragged_lines=True,
            quote_char='"',
            n_rows=max_rows,
            missing_columns="insert",
        )
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise CsvError(str(exc)) from None
    return list(zip(*(_texts(column) for column in frame.fill_null("").get_columns()), strict=True))


def _texts(column: pl.Series) -> list[str]:
    """The cells of ``column`` as Python text, a value that repeats (a country, a currency, a
    method, a department) as one shared object: on a large file most cells repeat."""
    values: list[str] = column.to_list()
    if column.n_unique() > len(values) // 2:
        return values
    shared: dict[str, str] = {}
    return [shared.setdefault(value, value) for value in values]


WRITE_CHUNK = 20_000  # rows put in one frame and written at once


def write_csv_columns(
    out: IO[bytes],
    columns: Sequence[Sequence[str] | Sequence[int]],
    *,
    keep: str,
    change: Callable[[str], str],
) -> None:
    """Write the rows of ``columns`` (two or more, all of one length, each all text or all whole
    numbers: a column's first cell decides which) to ``out`` as UTF-8 CSV lines ending in CRLF,
    quoted only where needed, as the csv module writes them (which quotes the empty cell of a
    one-column row: not done here). A text cell that the regular expression ``keep`` matches (Rust syntax, searched) is
    written as it is; any other is written as ``change`` returns it, called in Python."""
    rows = len(columns[0]) if columns else 0
    for start in range(0, rows, WRITE_CHUNK):  # a chunk at a time: the frame's copy of the text stays small
        chunk = {
            f"c{i}": _series(column[start : start + WRITE_CHUNK], keep, change) for i, column in enumerate(columns)
        }
        pl.DataFrame(chunk).write_csv(
            out, include_header=False, line_terminator="\r\n", null_value="", quote_style="necessary"
        )


def _series(column: Sequence[str] | Sequence[int], keep: str, change: Callable[[str], str]) -> pl.Series:
    if column and not isinstance(column[0], str):
        return pl.Series(column, dtype=pl.Int64)
    series = pl.Series(column, dtype=pl.String)
    others = (~series.str.contains(keep)).arg_true()  # positions of the cells to change
    if len(others):
        series = series.scatter(others, [change(text) for text in series.gather(others).to_list()])
    # an empty cell is written as nothing, as the csv module does (polars quotes an empty text)
    return series.replace("", None)

"""Write one workbook with a long table, in a process of its own as the command line does (and
where a Ctrl-C can be sent to it alone), for ``tests/test_two_writers.py``:

    python tests/two_writers.py HOW ORDER ROWS OUT.xlsx

HOW: ``one`` (the whole table written by this process), ``two`` (the rows after the first half
written by a helper process), ``helper-raises`` / ``helper-killed`` (the helper fails: raises, or
is killed halfway), ``short`` (the first part holds fewer rows than it says), ``miscounted`` (the
later part yields fewer rows than it says). ORDER: ``same`` (both halves meet the cell looks in
the same order) or ``other`` (the second half starts with looks the first half meets late).
Prints ``joined N rows`` when the helper's rows were joined to this process's.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` is importable, not just this folder

from batch_payouts.sheets import xlsx_write
from batch_payouts.sheets.spec import LaterRows, SheetSpec
from batch_payouts.sheets.write import write_xlsx

HEADERS = ["name", "amount", "currency", "when", "reason", "count"]
FORMATS = {"KES": "#,##0.00", "UGX": "#,##0", "GHS": "#,##0.00 [$GHS]"}
NAMES = ["Amina", "=1+1", "a_x0041_b", "tab\there", "<r>rich</r>", "Zoë 😀", "  spaced  ", "+254712345678"]


def row(i: int, order: str, half: int) -> list[Any]:
    currencies = list(FORMATS)
    if order == "other" and i >= half:
        currencies.reverse()  # the second half meets GHS first, KES last
    currency = currencies[(i // 7) % len(currencies)]
    reason = "a reason long enough to wrap over more than one line of the column " * (1 + i % 3) if i % 5 == 0 else ""
    return [
        f"{NAMES[i % len(NAMES)]} {i}",
        Decimal(i) / 4,
        currency,
        dt.datetime(2026, 1, 1) + dt.timedelta(minutes=i) if i % 4 else None,
        reason,
        i,
    ]


def formats_of(cells: Sequence[Any]) -> list[str | None]:
    return [None, FORMATS[cells[2]], None, None, None, None]


def later_rows(order: str, how: str, parent: int, half: int, end: int) -> Iterator[list[Any]]:
    """The rows from ``half`` on; in the helper (a process other than ``parent``), failing as told."""
    in_helper = os.getpid() != parent
    for i in range(half, end - 1 if how == "miscounted" else end):
        if in_helper and how == "helper-raises":
            raise RuntimeError("the helper cannot read its rows")
        if in_helper and how == "helper-killed" and i == half + 50:
            os.kill(os.getpid(), signal.SIGKILL)
        yield row(i, order, half)


def sheet(how: str, order: str, rows: int) -> SheetSpec:
    half = rows // 2
    common: dict[str, Any] = {
        "text_columns": {"name"},
        "format_of": formats_of,
        "table_header": True,
        "bold_rows": frozenset({3, half + 3, rows - 1}),
        "wrap": frozenset({5}),
        "widths": {5: 30.0},
    }
    if how == "one":
        return SheetSpec("Results", HEADERS, (row(i, order, half) for i in range(rows)), **common)
    first = half - 1 if how == "short" else half
    make = functools.partial(later_rows, order, how, os.getpid(), half, rows)
    later = LaterRows(half, rows - half, make)
    return SheetSpec("Results", HEADERS, (row(i, order, half) for i in range(first)), later=later, **common)


def _telling(append: Any) -> Any:
    def append_and_tell(ws: Any, looks: Any, part: Any, next_row: int) -> None:
        append(ws, looks, part, next_row)
        print(f"joined {part.count} rows")

    return append_and_tell


if __name__ == "__main__":
    from tests import two_writers as this  # functions a helper can find by name (not as __main__'s)

    how, order, rows, out = sys.argv[1:5]
    xlsx_write._append_part = _telling(xlsx_write._append_part)  # type: ignore[attr-defined]
    table = this.sheet(how, order, int(rows))
    write_xlsx(Path(out), [table, SheetSpec("After", ["a"], [["the sheet after the table"]])])

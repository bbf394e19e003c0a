"""Write one workbook with a long table, in a process of its own (a fork is only made from a process
with a single thread, which a test run is not), for ``tests/test_two_writers.py``:

    python tests/two_writers.py HOW ORDER OUT.xlsx

HOW: ``one`` (the whole table written by this process), ``two`` (the rows after the first half
written by a helper process), ``helper-raises`` / ``helper-killed`` (the helper fails: raises, or
is killed halfway), ``short`` (the first part holds fewer rows than it says). ORDER: ``same``
(both halves meet the cell looks in the same order) or ``other`` (the second half starts with
looks the first half meets late).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `tests` is importable, not just this folder

from batch_payouts.sheets.spec import LaterRows, SheetSpec
from batch_payouts.sheets.write import write_xlsx

ROWS = 600
HALF = ROWS // 2
HEADERS = ["name", "amount", "currency", "when", "reason", "count"]
FORMATS = {"KES": "#,##0.00", "UGX": "#,##0", "GHS": "#,##0.00 [$GHS]"}
NAMES = ["Amina", "=1+1", "a_x0041_b", "tab\there", "<r>rich</r>", "Zoë 😀", "  spaced  ", "+254712345678"]


def row(i: int, order: str) -> list[Any]:
    currencies = list(FORMATS)
    if order == "other" and i >= HALF:
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


def later_rows(order: str, how: str, parent: int) -> Iterator[list[Any]]:
    for i in range(HALF, ROWS):
        if os.getpid() != parent and how == "helper-raises":
            raise RuntimeError("the helper cannot read its rows")
        if os.getpid() != parent and how == "helper-killed" and i == HALF + 50:
            os.kill(os.getpid(), signal.SIGKILL)
        yield row(i, order)


def sheet(how: str, order: str) -> SheetSpec:
    common: dict[str, Any] = {
        "text_columns": {"name"},
        "format_of": formats_of,
        "table_header": True,
        "bold_rows": frozenset({3, HALF + 3, ROWS - 1}),
        "wrap": frozenset({5}),
        "widths": {5: 30.0},
    }
    if how == "one":
        return SheetSpec("Results", HEADERS, (row(i, order) for i in range(ROWS)), **common)
    first = HALF - 1 if how == "short" else HALF
    parent = os.getpid()
    later = LaterRows(HALF, lambda: later_rows(order, how, parent))
    return SheetSpec("Results", HEADERS, (row(i, order) for i in range(first)), later=later, **common)


if __name__ == "__main__":
    how, order, out = sys.argv[1:4]
    write_xlsx(Path(out), [sheet(how, order), SheetSpec("After", ["a"], [["the sheet after the table"]])])

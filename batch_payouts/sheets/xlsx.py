"""The one place that uses openpyxl: read a workbook's grid as text, write result workbooks.

openpyxl parses through defusedxml (asserted at import), formulas are read as their cached
values and reported, never evaluated; text cells are always written as strings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import openpyxl.xml
from defusedxml import ElementTree as SafeXml
from openpyxl.chart import BarChart, Reference
from openpyxl.utils import get_column_letter
from openpyxl.utils.escape import escape as xml_escape
from openpyxl.utils.escape import unescape as xml_unescape

from batch_payouts.errors import InputFileError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")

if not openpyxl.xml.DEFUSEDXML:  # pragma: no cover - guarded by the dependency list
    raise ImportError("defusedxml must be installed so that openpyxl parses workbooks safely")


def cell_text(value: Any) -> str:
    """A cell value as the text a person sees; integral floats lose their ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.time() != dt.time() else value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    text = str(value)
    return xml_unescape(text) if "_x" in text else text


def read_grid(
    path: Path, sheet: str | None, max_rows: int
) -> tuple[list[list[str]], dict[tuple[int, int], str], list[str], list[int]]:
    """All cells of one sheet as text, the formulas found (by 0-based row, column), notes, and the
    hidden rows (1-based sheet row numbers)."""
    notes: list[str] = []
    try:
        values = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
        formulas_wb = openpyxl.load_workbook(path, read_only=True, data_only=False, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds for damaged files
        cause = str(exc).replace(str(path), path.name).splitlines()[0] if str(exc) else ""
        raise InputFileError(str(path), f"not a readable workbook ({type(exc).__name__}: {cause})") from None
    try:
        names = values.sheetnames
        if sheet is not None and sheet not in names:
            raise InputFileError(str(path), f"no sheet named {sheet!r}; the sheets are: {', '.join(names)}")
        visible = [n for n in names if getattr(values[n], "sheet_state", "visible") == "visible"]
        if sheet is None and not visible:
            raise InputFileError(str(path), "every sheet of the workbook is hidden")
        name = sheet or visible[0]
        if sheet is None and len(names) > 1:
            skipped = [n for n in names[: names.index(name)]]
            hidden = f"; hidden sheets skipped: {', '.join(skipped)}" if skipped else ""
            notes.append(f"read the first visible sheet {name!r} (use --sheet to pick another){hidden}")
        grid = _rows(values[name], max_rows, path)
        layout_notes, hidden_rows = _layout_notes(formulas_wb[name], len(grid))
        notes += layout_notes
        formulas: dict[tuple[int, int], str] = {}
        for r, row in enumerate(formulas_wb[name].iter_rows(values_only=True)):
            if r >= len(grid):
                break
            for c, v in enumerate(row):
                if isinstance(v, str) and v.startswith("="):
                    formulas[(r, c)] = v
    finally:
        values.close()
        formulas_wb.close()
    if formulas:
        notes.append(f"{len(formulas)} cells hold formulas; their saved values were used, "
                     "nothing was calculated")
    return grid, formulas, notes, hidden_rows


def _layout(ws: Any) -> tuple[list[int], list[str]]:
    """Hidden rows (1-based sheet row numbers) and merged ranges ("A1:E1"), streamed from the
    sheet's XML: read-only openpyxl does not keep either."""
    part = getattr(ws, "_worksheet_path", None)
    if part is None:  # pragma: no cover - openpyxl keeps the part path on read-only sheets
        return [], []
    hidden: list[int] = []
    merged: list[str] = []
    with ws.parent._archive.open(part) as stream:
        for _, element in SafeXml.iterparse(stream, events=("end",)):
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "row":
                if element.get("hidden") in ("1", "true") and (number := element.get("r", "")).isdigit():
                    hidden.append(int(number))
                element.clear()
            elif tag == "mergeCell" and element.get("ref"):
                merged.append(str(element.get("ref")))
    return hidden, merged


def _layout_notes(ws: Any, rows: int) -> tuple[list[str], list[int]]:
    """Sentences about what a reader of the sheet might not see (hidden rows, merged cells), and
    the hidden rows' numbers."""
    hidden, merged = _layout(ws)
    hidden = [r for r in hidden if 1 < r <= rows]
    notes = []
    if hidden:
        shown = ", ".join(map(str, hidden[:20])) + (" …" if len(hidden) > 20 else "")
        notes.append(f"{len(hidden)} rows are hidden in the sheet (rows {shown}); they were read and "
                     "will be paid like any other row; unhide them to check")
    if merged:
        shown = ", ".join(merged[:10]) + (" …" if len(merged) > 10 else "")
        notes.append(f"{len(merged)} merged cell ranges ({shown}): only the first cell of each holds "
                     "its value, the others were read as empty")
    return notes, hidden


def _rows(ws: Any, max_rows: int, path: Path) -> list[list[str]]:
    if hasattr(ws, "reset_dimensions"):
        ws.reset_dimensions()  # never trust the size the sheet claims for itself
    grid: list[list[str]] = []
    for row in ws.iter_rows(values_only=True):
        grid.append([cell_text(v) for v in row])
        if len(grid) > max_rows:
            raise InputFileError(str(path), f"more than {max_rows} rows; refused")
    while grid and not any(c.strip() for c in grid[-1]):
        grid.pop()
    return grid


@dataclass
class SheetSpec:
    """One sheet to write: headers, rows of cells, which columns are forced to text."""

    title: str
    headers: list[str]
    rows: Sequence[Sequence[Any]]
    text_columns: set[str] = field(default_factory=set)
    chart: tuple[str, int, int] | None = None  # (title, value column, rows) for a bar chart
    blank_text_rows: int = 0  # empty rows below the data pre-formatted as text (templates)


def write_workbook(path: Path, sheets: list[SheetSpec]) -> None:
    """Write ``sheets`` to ``path`` (the caller makes it atomic)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for spec in sheets:
        ws = wb.create_sheet(spec.title[:31])
        ws.append(spec.headers)
        text_idx = {i for i, h in enumerate(spec.headers) if h in spec.text_columns}
        for r, values in enumerate(spec.rows, start=2):
            for c, value in enumerate(values, start=1):
                cell = ws.cell(row=r, column=c)
                if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
                    cell.value = value
                else:
                    text = "" if value is None else str(value)
                    # control characters as _xHHHH_, as Excel does (XML would turn CR into LF)
                    cell.value = xml_escape(text) if _CONTROL.search(text) else text
                    cell.data_type = "s"  # never a formula, whatever the text starts with
                if (c - 1) in text_idx:
                    cell.number_format = "@"
        for c, header in enumerate(spec.headers, start=1):
            ws.column_dimensions[get_column_letter(c)].width = max(10, min(40, len(header) + 4))
            if (c - 1) in text_idx:
                for r in range(len(spec.rows) + 2, len(spec.rows) + 2 + spec.blank_text_rows):
                    ws.cell(row=r, column=c).number_format = "@"
        if spec.chart and spec.rows:
            title, value_col, count = spec.chart
            chart = BarChart()
            chart.title = title
            chart.add_data(Reference(ws, min_col=value_col, min_row=1, max_row=count + 1), titles_from_data=True)
            chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=count + 1))
            ws.add_chart(chart, f"{get_column_letter(len(spec.headers) + 2)}2")
    wb.save(path)

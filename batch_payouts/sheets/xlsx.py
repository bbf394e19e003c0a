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
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.escape import escape as xml_escape
from openpyxl.utils.escape import unescape as xml_unescape
from openpyxl.worksheet.datavalidation import DataValidation

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


@dataclass(frozen=True)
class ChartSpec:
    """A bar chart of one column against the category labels beside it (1-based columns, data rows
    from 2 to ``last_row``), placed at ``anchor``."""

    title: str
    category_column: int
    value_column: int
    last_row: int
    anchor: str
    y_title: str = ""


@dataclass(frozen=True)
class ListCheck:
    """A drop-down on one column (1-based) of rows 2..``last_row``. ``strict`` refuses anything else;
    otherwise other values are allowed after a warning."""

    column: int
    options: tuple[str, ...]
    last_row: int
    strict: bool
    prompt: str = ""


@dataclass
class SheetSpec:
    """One sheet to write: headers, rows of cells, which columns are forced to text, and how it
    looks: per-cell number formats, a bold frozen filtered header, print settings, a chart."""

    title: str
    headers: list[str]
    rows: Sequence[Sequence[Any]]
    text_columns: set[str] = field(default_factory=set)
    chart: ChartSpec | None = None
    blank_text_rows: int = 0  # empty rows below the data pre-formatted as text (templates)
    formats: Sequence[Sequence[str | None]] | None = None  # number format per data cell
    table_header: bool = False  # bold, frozen, filtered header row
    printable: bool = False  # landscape, one page wide, header row repeated on every page
    bold_rows: frozenset[int] = frozenset()  # 0-based indexes into ``rows``
    widths: dict[int, float] | None = None  # 1-based column -> width; else from the content
    checks: Sequence[ListCheck] = ()
    active: bool = False  # the sheet a spreadsheet opens on
    wrap: frozenset[int] = frozenset()  # 1-based columns whose text wraps inside the cell


DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_WRAP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")


def write_workbook(path: Path, sheets: list[SheetSpec]) -> None:
    """Write ``sheets`` to ``path`` (the caller makes it atomic)."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for spec in sheets:
        ws = wb.create_sheet(spec.title[:31])
        _fill(ws, spec)
        _style(ws, spec)
        if spec.chart and spec.rows:
            _chart(ws, spec.chart)
        for check in spec.checks:
            _list_check(ws, check)
    active = next((i for i, spec in enumerate(sheets) if spec.active), 0)
    wb.active = active
    for i, ws in enumerate(wb.worksheets):
        ws.sheet_view.tabSelected = i == active
    wb.save(path)


def _put(cell: Any, value: Any) -> None:
    if isinstance(value, Decimal | int | float | dt.datetime | dt.date) and not isinstance(value, bool):
        cell.value = value
        if isinstance(value, dt.datetime | dt.date):
            cell.number_format = DATE_FORMAT
        return
    text = "" if value is None else str(value)
    # control characters as _xHHHH_, as Excel does (XML would turn CR into LF)
    cell.value = xml_escape(text) if _CONTROL.search(text) else text
    cell.data_type = "s"  # never a formula, whatever the text starts with


def _fill(ws: Any, spec: SheetSpec) -> None:
    offset = 1 if spec.headers else 0
    for c, header in enumerate(spec.headers, start=1):
        _put(ws.cell(row=1, column=c), header)
    text_idx = {i for i, h in enumerate(spec.headers) if h in spec.text_columns}
    for r, values in enumerate(spec.rows, start=1 + offset):
        formats = spec.formats[r - 1 - offset] if spec.formats else ()
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c)
            _put(cell, value)
            if (c - 1) in text_idx:
                cell.number_format = "@"
            elif c - 1 < len(formats) and formats[c - 1]:
                cell.number_format = formats[c - 1]
            if (r - 1 - offset) in spec.bold_rows:
                cell.font = _BOLD
            if c in spec.wrap:
                cell.alignment = _WRAP
            elif spec.wrap:
                cell.alignment = _TOP  # level with the first line of the wrapped cells
    for c in text_idx:
        for r in range(len(spec.rows) + 1 + offset, len(spec.rows) + 1 + offset + spec.blank_text_rows):
            ws.cell(row=r, column=c + 1).number_format = "@"


def _style(ws: Any, spec: SheetSpec) -> None:
    columns = max([len(spec.headers), *(len(r) for r in spec.rows)], default=0)
    for c in range(1, columns + 1):
        if spec.widths and c in spec.widths:
            width = spec.widths[c]
        else:
            longest = max([len(str(ws.cell(row=r, column=c).value or "")) for r in range(1, min(ws.max_row, 200) + 1)],
                          default=0)
            width = max(6, min(24, longest + 2))
        ws.column_dimensions[get_column_letter(c)].width = width
    _wrapped_heights(ws, spec)
    if spec.table_header and spec.headers:
        for c in range(1, len(spec.headers) + 1):
            ws.cell(row=1, column=c).font = _BOLD
            ws.cell(row=1, column=c).fill = _HEADER_FILL
        ws.freeze_panes = "A2"
        last = max(len(spec.rows), spec.blank_text_rows) + 1
        ws.auto_filter.ref = f"A1:{get_column_letter(len(spec.headers))}{last}"
    if spec.printable:
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        if spec.headers:
            ws.print_title_rows = "1:1"


def _wrapped_heights(ws: Any, spec: SheetSpec) -> None:
    """Rows tall enough for their wrapped text (spreadsheets do not all measure it themselves)."""
    if not spec.wrap:
        return
    for r in range(2 if spec.headers else 1, ws.max_row + 1):
        lines = 1
        for c in spec.wrap:
            width = ws.column_dimensions[get_column_letter(c)].width or 10
            text = str(ws.cell(row=r, column=c).value or "")
            lines = max(lines, -(-len(text) // int(width)) or 1)
        if lines > 1:
            ws.row_dimensions[r].height = 15 * lines


def _chart(ws: Any, spec: ChartSpec) -> None:
    chart = BarChart()
    chart.type = "bar"  # horizontal bars: long category labels stay readable
    chart.title = spec.title
    chart.y_axis.title = spec.y_title
    chart.legend = None
    chart.x_axis.scaling.orientation = "maxMin"  # the first category on top, as in the table
    chart.height = max(7.5, 0.9 * spec.last_row)
    chart.width = 18
    chart.add_data(Reference(ws, min_col=spec.value_column, min_row=1, max_row=spec.last_row), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=spec.category_column, min_row=2, max_row=spec.last_row))
    ws.add_chart(chart, spec.anchor)


def _list_check(ws: Any, check: ListCheck) -> None:
    letter = get_column_letter(check.column)
    rule = DataValidation(type="list", formula1='"' + ",".join(check.options) + '"', allow_blank=True,
                          errorStyle="stop" if check.strict else "warning", showErrorMessage=True,
                          showInputMessage=bool(check.prompt))
    rule.error = "Pick a value from the list." if check.strict else "Not in the list; keep it only if you are sure."
    rule.errorTitle = "Check this cell"
    rule.prompt = check.prompt
    ws.add_data_validation(rule)
    rule.add(f"{letter}2:{letter}{check.last_row}")

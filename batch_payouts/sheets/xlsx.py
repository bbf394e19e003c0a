"""The one place that uses openpyxl: openpyxl's rules for what a cell value means (dates,
shared formulas), the text a person sees for a value, and writing result workbooks.

Reading a sheet is one streaming pass in ``xlsx_read.py``; openpyxl never parses an input file
(defusedxml is still asserted at import, should it ever). Text cells are always written as
strings, never as formulas.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import openpyxl.xml
from openpyxl.chart import BarChart, Reference
from openpyxl.formula.translate import Translator
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.styles.numbers import builtin_format_code, is_date_format, is_timedelta_format
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import column_index_from_string
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel, from_ISO8601
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


# -- what a cell means, by openpyxl's rules (used by ``xlsx_read.py``) --------------------------

def builtin_format(number_format: int) -> str | None:
    """The format code of one of Excel's built-in number formats, if it is one."""
    code = builtin_format_code(number_format)
    return None if code is None else str(code)


def date_kind(code: str | None) -> str | None:
    """``"date"`` or ``"duration"`` when a number format shows dates or durations, else None."""
    if not is_date_format(code):
        return None
    return "duration" if is_timedelta_format(code) else "date"


def excel_date(serial: float, mac_epoch: bool, duration: bool) -> Any:
    """An Excel date serial as openpyxl reads it; ``"#VALUE!"`` when it is no date at all."""
    try:
        return from_excel(serial, CALENDAR_MAC_1904 if mac_epoch else CALENDAR_WINDOWS_1900, timedelta=duration)
    except (OverflowError, ValueError):
        return "#VALUE!"


def iso_date(text: str) -> Any:
    """A cell of type ``d`` (ISO 8601 text) as openpyxl reads it."""
    return from_ISO8601(text)


def column_index(letters: str, path: Path) -> int:
    """1-based column number of ``"A"``, ``"AB"``...; a bad reference is a damaged workbook."""
    try:
        return int(column_index_from_string(letters))
    except ValueError:
        raise InputFileError(str(path), f"not a readable workbook (cell column {letters[:10]!r})") from None


def formula_translator(formula: str, origin: str) -> Callable[[str], str]:
    """A function giving the shared formula written at ``origin`` as it applies at another cell."""
    translator = Translator(formula, origin)

    def at(cell: str) -> str:
        return str(translator.translate_formula(cell))

    return at


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

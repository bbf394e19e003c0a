"""The one place that uses openpyxl: openpyxl's rules for what a cell value means (dates,
shared formulas), the text a person sees for a value, and writing result workbooks.

Reading a sheet is one streaming pass in ``xlsx_read.py``; openpyxl never parses an input file
(defusedxml is still asserted at import, should it ever). Text cells are always written as
strings, never as formulas.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import openpyxl.xml
from openpyxl.cell import WriteOnlyCell
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
from openpyxl.worksheet.worksheet import Worksheet

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
    looks: per-cell number formats, a bold frozen filtered header, print settings, a chart.

    ``rows`` may be any iterable (a generator streams a large table to the file, read once);
    each row's number formats come from ``formats`` (a sequence, row by row) or ``format_of``
    (a function of the row's cells)."""

    title: str
    headers: list[str]
    rows: Iterable[Sequence[Any]]
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
    format_of: Callable[[Sequence[Any]], Sequence[str | None]] | None = None  # number formats of a row


DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
WIDTH_SAMPLE = 200  # rows (the header included) whose content sets a column's width
_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_WRAP = Alignment(wrap_text=True, vertical="top")
_TOP = Alignment(vertical="top")


def write_workbook(path: Path, sheets: list[SheetSpec]) -> None:
    """Write ``sheets`` to ``path`` (the caller makes it atomic), streaming each sheet's rows to
    the file as they come (openpyxl's write-only mode): memory does not grow with the rows."""
    wb = openpyxl.Workbook(write_only=True)
    active = next((i for i, spec in enumerate(sheets) if spec.active), 0)
    for i, spec in enumerate(sheets):
        ws = wb.create_sheet(spec.title[:31])
        ws.sheet_view.tabSelected = i == active
        _write_sheet(ws, spec)
    wb.active = active
    wb.save(path)


def _value(value: Any) -> Any:
    """What a cell holds: numbers and dates as they are, anything else as text."""
    if isinstance(value, Decimal | int | float | dt.datetime | dt.date) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value)
    # control characters as _xHHHH_, as Excel does (XML would turn CR into LF)
    return xml_escape(text) if _CONTROL.search(text) else text


def _width(value: Any) -> int:
    return len(str(value or ""))


def _write_sheet(ws: Any, spec: SheetSpec) -> None:
    offset = 1 if spec.headers else 0
    rows = iter(spec.rows)
    first = [[_value(v) for v in row] for row in itertools.islice(rows, WIDTH_SAMPLE - offset)]
    widths = _widths(spec, first)
    for c, width in widths.items():
        ws.column_dimensions[get_column_letter(c)].width = width
    if spec.table_header and spec.headers:
        ws.freeze_panes = "A2"
    if spec.printable:  # before the rows: the sheet's properties come first in the file
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        if spec.headers:
            ws.print_title_rows = "1:1"
    text_idx = {i for i, h in enumerate(spec.headers) if h in spec.text_columns}
    looks = _Looks(ws)
    if spec.headers:
        ws.append([looks.cell(h, header=spec.table_header) for h in spec.headers])
    count = 0
    values = itertools.chain(first, ([_value(v) for v in row] for row in rows))
    for r, cells in enumerate(values):
        formats = spec.formats[r] if spec.formats else spec.format_of(cells) if spec.format_of else ()
        height = _wrapped_height(spec, widths, cells)
        if height:
            ws.row_dimensions[r + 1 + offset].height = height
        # a row of one line needs no alignment but the wrapped column's: top and bottom are the same
        ws.append(
            [
                looks.cell(
                    v,
                    text=c in text_idx,
                    number_format=formats[c] if c < len(formats) else None,
                    bold=r in spec.bold_rows,
                    align=_WRAP if c + 1 in spec.wrap else _TOP if spec.wrap and height else None,
                )
                for c, v in enumerate(cells)
            ]
        )
        count += 1
    for _ in range(spec.blank_text_rows):
        ws.append([looks.cell(None, text=True) if c in text_idx else None for c in range(len(spec.headers))])
    _finish(ws, spec, count)


class _Looks:
    """Cells of a sheet, each look (number format, font, fill, alignment) worked out once and copied
    to every cell that has it; a cell with no look and no risk of being read as a formula is given
    as its plain value (openpyxl writes those several times faster)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.styles: dict[tuple[Any, ...], Any] = {}

    def cell(
        self,
        value: Any,
        *,
        header: bool = False,
        text: bool = False,
        number_format: str | None = None,
        bold: bool = False,
        align: Alignment | None = None,
    ) -> Any:
        dated = isinstance(value, dt.datetime | dt.date)
        fmt = "@" if text else number_format or (DATE_FORMAT if dated else None)
        look = (fmt, header, bold or header, id(align) if align is not None else None)
        formula_like = isinstance(value, str) and value.startswith("=")
        if look == (None, False, False, None) and not formula_like:
            return None if value == "" else value  # an empty cell is no cell: read back the same
        if look not in self.styles:
            self.styles[look] = self._style(fmt, header, bold, align)
        cell = WriteOnlyCell(self.ws, value=value)
        cell._style = copy.copy(self.styles[look])
        if isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever the text starts with
        return cell

    def _style(self, fmt: str | None, header: bool, bold: bool, align: Alignment | None) -> Any:
        model = WriteOnlyCell(self.ws)
        if fmt:
            model.number_format = fmt
        if header or bold:
            model.font = _BOLD
        if header:
            model.fill = _HEADER_FILL
        if align is not None:
            model.alignment = align
        return model._style


def _widths(spec: SheetSpec, first: list[list[Any]]) -> dict[int, float]:
    """1-based column -> width: given, or from the longest text of the first rows (6 to 24)."""
    sample = [spec.headers, *first] if spec.headers else first
    columns = max([len(spec.headers), *(len(r) for r in first)], default=0)
    out = {}
    for c in range(1, columns + 1):
        if spec.widths and c in spec.widths:
            out[c] = spec.widths[c]
        else:
            longest = max([_width(r[c - 1]) for r in sample if c <= len(r)], default=0)
            out[c] = float(max(6, min(24, longest + 2)))
    return out


def _wrapped_height(spec: SheetSpec, widths: dict[int, float], cells: Sequence[Any]) -> float | None:
    """A row tall enough for its wrapped text (spreadsheets do not all measure it themselves)."""
    lines = 1
    for c in spec.wrap:
        text = str(cells[c - 1] or "") if c <= len(cells) else ""
        lines = max(lines, -(-len(text) // int(widths.get(c) or 10)) or 1)
    return 15.0 * lines if lines > 1 else None


def _finish(ws: Any, spec: SheetSpec, count: int) -> None:
    """What comes after the rows: the filter, the chart, drop-downs."""
    if spec.table_header and spec.headers:
        last = max(count, spec.blank_text_rows) + 1
        ws.auto_filter.ref = f"A1:{get_column_letter(len(spec.headers))}{last}"
    if spec.chart and count:
        _chart(ws, spec.chart)
    for check in spec.checks:
        _list_check(ws, check)


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
    rule = DataValidation(
        type="list",
        formula1='"' + ",".join(check.options) + '"',
        allow_blank=True,
        errorStyle="stop" if check.strict else "warning",
        showErrorMessage=True,
        showInputMessage=bool(check.prompt),
    )
    rule.error = "Pick a value from the list." if check.strict else "Not in the list; keep it only if you are sure."
    rule.errorTitle = "Check this cell"
    rule.prompt = check.prompt
    ws.data_validations.append(rule)
    rule.add(f"{letter}2:{letter}{check.last_row}")

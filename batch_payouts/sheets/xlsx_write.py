"""Write workbooks: the one module that uses XlsxWriter, in its constant-memory mode (each row goes
to a scratch file as soon as the next one starts: memory does not grow with the rows).

What a cell holds never changes on the way:

* every text is written as a string (``write_string``, never ``write``; the options that turn
  strings into numbers, formulas or links are off as well), so no text becomes a formula;
* text reads back exactly as given, control characters included: XlsxWriter escapes them itself
  (``_xHHHH_``, as Excel does), and the rare text its escaping would not give back exactly (text
  that already looks like such an escape, or like rich-text XML) is written as runs of rich text
  that it leaves alone (:func:`_write_text`);
* a number is written as a number only when it reads back as the same value (XlsxWriter writes
  a float with 16 significant digits); a Decimal, int or float that would lose a digit is written
  as its text instead.

The usual rows of a table (text, amounts, whole numbers, times, blanks) are written as XML straight
into the sheet's scratch file, exactly as XlsxWriter writes them (a test compares the two), at a
fraction of the cost of XlsxWriter's cell by cell path: see "rows written directly" below. A long
table (a sheet with ``later`` rows) is written by two processes at once: see "a table written by
two processes" below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import io
import itertools
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

import xlsxwriter
from xlsxwriter.exceptions import FileCreateError
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.xmlwriter import XMLwriter

from batch_payouts.helper import HelperProcess
from batch_payouts.sheets.spec import DATE_FORMAT, WIDTH_SAMPLE, ChartSpec, LaterRows, ListCheck, SheetSpec
from batch_payouts.sheets.xlsx import cell_text

_OPTIONS = {
    "constant_memory": True,
    "strings_to_numbers": False,
    "strings_to_formulas": False,
    "strings_to_urls": False,
}
_HEADER_FILL = "#DDE4EE"
_A4 = 9  # XlsxWriter's paper size code
_CM = 96 / 2.54  # pixels in a centimetre (XlsxWriter sizes charts in pixels at 96 dpi)
_EXACT_INT = 10**15  # an int below this in size has at most 15 digits: 16 significant digits keep it
# What XlsxWriter escapes itself, as Excel does: a control character (not tab or line feed), and
# text that is already such an escape (its "_" becomes "_x005F_").
_escape_like_xlsxwriter: Callable[[str], str] = XMLwriter._escape_control_characters
# What cannot stand in the file as it is, and a "_" that would start an escape a reader undoes.
_UNWRITABLE = "\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff"
_ESCAPED_HERE = re.compile(rf"[{_UNWRITABLE}]|_(?=x[0-9A-Fa-f]{{4}}[_{_UNWRITABLE}])")
_ESCAPE_START = re.compile(r"(?=_x[0-9A-Fa-f]{4}_)")


def write_workbook(path: Path, sheets: list[SheetSpec]) -> None:
    """Write ``sheets`` to ``path`` (the caller makes it atomic), streaming each sheet's rows to
    the file as they come. XlsxWriter's scratch files live in a private folder removed at the end;
    a failure to write the file is the ``OSError`` itself (a full disk, a missing folder)."""
    with tempfile.TemporaryDirectory(prefix="batch-payouts-xlsx-") as scratch, path.open("wb") as out:
        book = xlsxwriter.Workbook(out, {**_OPTIONS, "tmpdir": scratch})
        try:
            _write_sheets(book, sheets, scratch)
            book.close()
        except FileCreateError as exc:  # XlsxWriter wraps the OSError of writing the file
            _close_scratch(book)
            cause = exc.args[0] if exc.args else None
            raise cause if isinstance(cause, OSError) else exc from None
        except BaseException:
            _close_scratch(book)
            raise


def _write_sheets(book: Any, sheets: list[SheetSpec], scratch: str) -> None:
    looks = _Looks(book)
    active = next((i for i, spec in enumerate(sheets) if spec.active), 0)
    for i, spec in enumerate(sheets):
        ws = book.add_worksheet(spec.title[:31])
        if i == active:
            ws.activate()
        _write_sheet(ws, spec, looks, scratch)


def _close_scratch(book: Any) -> None:
    """Close the sheets' scratch files after a failure (XlsxWriter closes them only on success)."""
    for ws in book.worksheets():
        with contextlib.suppress(Exception):
            ws._opt_close()


# -- looks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RowLook:
    """Per column, the format of a cell of this row (None: no look at all), the format of a date in
    it (a date shows as a date unless its column says otherwise), and the font of rich-text runs."""

    plain: list[Any]
    dated: list[Any]
    font: Any


class _Looks:
    """Formats of a workbook, each look (number format, bold, header fill, alignment) made once."""

    def __init__(self, book: Any) -> None:
        self.book = book
        self.formats: dict[tuple[str | None, bool, bool, str | None], Any] = {}

    def format(
        self, number_format: str | None, *, header: bool = False, bold: bool = False, align: str | None = None
    ) -> Any:
        key = (number_format, header, bold or header, align)
        if key == (None, False, False, None):
            return None
        if key not in self.formats:
            props: dict[str, Any] = {}
            if number_format:
                props["num_format"] = number_format
            if bold or header:
                props["bold"] = True
            if header:
                props.update(pattern=1, bg_color=_HEADER_FILL)
            if align == "wrap":
                props.update(text_wrap=True, valign="top")
            elif align == "top":
                props["valign"] = "top"
            self.formats[key] = self.book.add_format(props)
        return self.formats[key]

    def font(self, bold: bool) -> Any:
        """The font of a rich-text run in a cell that is (or is not) bold."""
        key = ("font", bold, False, None)
        if key not in self.formats:
            self.formats[key] = self.book.add_format({"bold": bold})
        return self.formats[key]

    def numbered(self) -> dict[int, tuple[str | None, bool, bool, str | None]]:
        """The number (XF index) in the file of each cell look used so far, and that look's key."""
        return {fmt.xf_index: key for key, fmt in self.formats.items() if key[0] != "font" and fmt.xf_index is not None}

    def number_of(self, key: tuple[str | None, bool, bool, str | None]) -> int:
        """The number in the file of the look ``key`` (given one if it has none yet)."""
        number_format, header, bold, align = key
        return int(self.format(number_format, header=header, bold=bold, align=align)._get_xf_index())


class _SheetLooks:
    """The looks of one sheet's rows, worked out once per kind of row (its number formats, bold,
    tall) instead of once per cell."""

    def __init__(self, looks: _Looks, spec: SheetSpec) -> None:
        self.looks = looks
        self.text_at = frozenset(i for i, h in enumerate(spec.headers) if h in spec.text_columns)
        self.wrap_at = frozenset(c - 1 for c in spec.wrap)
        self.rows: dict[tuple[tuple[str | None, ...], bool, bool, int], _RowLook] = {}

    def row(self, formats: Sequence[str | None], bold: bool, tall: bool, width: int) -> _RowLook:
        key = (tuple(formats), bold, tall, width)
        look = self.rows.get(key)
        if look is None:
            look = self.rows[key] = self._row(key[0], bold, tall, width)
        return look

    def _row(self, formats: tuple[str | None, ...], bold: bool, tall: bool, width: int) -> _RowLook:
        plain, dated = [], []
        for c in range(width):
            fmt = "@" if c in self.text_at else formats[c] if c < len(formats) else None
            # a row of one line needs no alignment but the wrapped column's: top and bottom are the same
            align = "wrap" if c in self.wrap_at else "top" if self.wrap_at and tall else None
            plain.append(self.looks.format(fmt, bold=bold, align=align))
            dated.append(self.looks.format(fmt or DATE_FORMAT, bold=bold, align=align))
        return _RowLook(plain, dated, self.looks.font(bold))


# -- one sheet ---------------------------------------------------------------------------------------


def _write_sheet(ws: Any, spec: SheetSpec, looks: _Looks, scratch: str) -> None:
    offset = 1 if spec.headers else 0
    rows = iter(spec.rows)
    first = [list(row) for row in itertools.islice(rows, WIDTH_SAMPLE - offset)]
    widths = _widths(spec, first)
    for c, width in widths.items():
        ws.set_column(c - 1, c - 1, width)
    if spec.table_header and spec.headers:
        ws.freeze_panes(1, 0)
    if spec.printable:
        ws.set_landscape()
        ws.set_paper(_A4)
        ws.fit_to_pages(1, 0)
        if spec.headers:
            ws.repeat_rows(0)
    if spec.headers:
        look = [looks.format(None, header=spec.table_header)] * len(spec.headers)
        header = _RowLook(look, look, looks.font(spec.table_header))
        _write_row(ws, 0, spec.headers, header)
    sheet_looks = _SheetLooks(looks, spec)
    helper = _start_part(spec, widths, offset, scratch) if spec.later else None
    try:
        count = _write_rows(ws, spec, sheet_looks, widths, itertools.chain(first, rows), offset)
        if spec.later:
            count += _write_later(ws, spec, sheet_looks, widths, offset, count, helper)
    except BaseException:
        if helper is not None:
            helper.cancel()
        raise
    for r in range(offset + count, offset + count + spec.blank_text_rows):
        for c in sorted(sheet_looks.text_at):
            ws.write_blank(r, c, None, looks.format("@"))
    # the row still waiting is written now, not when the file is put together (after the later
    # sheets' rows): cell looks are numbered in the order the sheets use them, direct rows or not
    ws._write_single_row(ws.previous_row + 1)
    _finish(ws, spec, count, looks.book)


def _write_rows(
    ws: Any,
    spec: SheetSpec,
    looks: _SheetLooks,
    widths: dict[int, float],
    rows: Iterable[Sequence[Any]],
    offset: int,
    start: int = 0,
) -> int:
    """Write data rows ``start``, ``start + 1``... (0-based, as ``bold_rows`` counts them) at sheet
    row ``offset + start`` on; the number of rows written."""
    count = 0
    direct = _DirectRows(ws)
    for i, cells in enumerate(rows, start):
        formats = spec.formats[i] if spec.formats else spec.format_of(cells) if spec.format_of else ()
        height = _wrapped_height(spec, widths, cells) if spec.wrap else None
        look = looks.row(formats, i in spec.bold_rows, bool(height), len(cells))
        if height:
            ws.set_row(offset + i, height)
            _write_row(ws, offset + i, cells, look)
        elif not direct.write(offset + i, cells, look):
            _write_row(ws, offset + i, cells, look)
        count += 1
    return count


# -- rows written directly ------------------------------------------------------------------------------
#
# In constant-memory mode XlsxWriter keeps the row being written in a table and, when the next row
# starts, writes it as XML to the sheet's scratch file, each cell through several calls (about ten
# microseconds a cell: most of the time of a 100,000-row workbook). A row whose cells are all
# usual is written here instead, as one piece of the very XML XlsxWriter would have written:
#
# * text with nothing XlsxWriter would escape as ``_xHHHH_`` (control characters, text like an
#   escape), not like rich-text XML, and short enough never to be cut:
#   ``<c r="B7" s="3" t="inlineStr"><is><t>text</t></is></c>``, with ``&``, ``<`` and ``>``
#   escaped and ``xml:space="preserve"`` on ``<t>`` when it starts or ends with white space;
# * a number that keeps every digit (see ``_float_of``), a time (its Excel serial number):
#   ``<c r="C7" s="4"><v>12.5</v></c>`` (16 significant digits, as XlsxWriter formats them);
# * nothing: no cell, or ``<c r="D7" s="5"/>`` when the column has a look.
#
# A row with any other cell, or a row with its own height, goes through XlsxWriter's own path.
# XlsxWriter's row in waiting is written first; the sheet's dimensions are kept as its own cell
# writers keep them; a cell's look is numbered when it is first written, as XlsxWriter numbers it.

_DIRECT_TEXT_LIMIT = 16_383  # characters: XlsxWriter cuts text over 32,767 UTF-16 units, never this
_NOT_DIRECT = re.compile(rf"[{_UNWRITABLE}]|_x")


class _DirectRows:
    """Writes usual rows of one sheet straight into its scratch file (see above)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.columns: list[str] = []

    def write(self, r: int, cells: Sequence[Any], look: _RowLook) -> bool:
        """Write row ``r`` (0-based) if every cell is usual; False (nothing written) otherwise."""
        self.ws._write_single_row(r)  # XlsxWriter's row in waiting goes first (its looks numbered first)
        parts: list[str] = []
        first = last = -1
        refs = self._references(len(cells))
        number = str(r + 1)
        for c, value in enumerate(cells):
            kind = type(value)
            if kind is str and value:
                if len(value) > _DIRECT_TEXT_LIMIT or value.startswith("<r>") or _NOT_DIRECT.search(value):
                    return False
                fmt = look.plain[c]
                style = "" if fmt is None else f' s="{fmt._get_xf_index()}"'
                if "&" in value or "<" in value or ">" in value:
                    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                space = ' xml:space="preserve"' if value[0].isspace() or value[-1].isspace() else ""
                parts.append(f'<c r="{refs[c]}{number}"{style} t="inlineStr"><is><t{space}>{value}</t></is></c>')
            elif kind is Decimal or kind is int:
                shown = _float_of(value) if kind is Decimal else value if -_EXACT_INT < value < _EXACT_INT else None
                if shown is None:
                    return False
                fmt = look.plain[c]
                style = "" if fmt is None else f' s="{fmt._get_xf_index()}"'
                parts.append(f'<c r="{refs[c]}{number}"{style}><v>{shown:.16G}</v></c>')
            elif kind is dt.datetime:
                fmt = look.dated[c] or self.ws.default_date_format
                serial = self.ws._convert_date_time(value)
                parts.append(f'<c r="{refs[c]}{number}" s="{fmt._get_xf_index()}"><v>{serial:.16G}</v></c>')
            elif value is None or (kind is str and not value):
                fmt = look.plain[c]
                if fmt is None:
                    continue
                parts.append(f'<c r="{refs[c]}{number}" s="{fmt._get_xf_index()}"/>')
            else:
                return False
            if first < 0:
                first = c
            last = c
        if r >= self.ws.xls_rowmax:  # past a sheet's last row: XlsxWriter's way (it refuses the cells)
            return False
        self._put(r, first, last, parts)
        return True

    def _put(self, r: int, first: int, last: int, parts: list[str]) -> None:
        ws = self.ws
        if not parts:
            return
        ws._check_dimensions(r, first)
        ws._check_dimensions(r, last)
        ws.fh.write(f'<row r="{r + 1}">{"".join(parts)}</row>')

    def _references(self, width: int) -> list[str]:
        """The column letters of columns 0 .. ``width`` - 1."""
        while len(self.columns) < width:
            self.columns.append(xl_col_to_name(len(self.columns)))
        return self.columns


# -- a table written by two processes ------------------------------------------------------------------
#
# A helper process (``helper.py``) writes the rows of ``spec.later`` with XlsxWriter into a sheet
# of a workbook of its own, never closed: XlsxWriter keeps a constant-memory sheet's rows as XML
# in a scratch file, which the helper hands over. This process writes ``spec.rows`` meanwhile,
# then appends the helper's rows to its own sheet's scratch file. Cell looks are numbered in each
# workbook in the order they are first used, so the helper also says which look each of its
# numbers stands for, and its rows are renumbered on the way. Whatever goes wrong with the helper
# (it cannot start, fails, is killed, or wrote another number of rows than ``later.count``), this
# process writes the later rows itself.


@dataclass(frozen=True)
class _Part:
    """What the helper wrote: its scratch file of row XML, how many rows, the first and last sheet
    row and column it wrote to (0-based; None for no cell), and the look behind each XF number."""

    path: str
    count: int
    corners: tuple[tuple[int, int], tuple[int, int]] | None
    looks: dict[int, tuple[str | None, bool, bool, str | None]]


def _start_part(spec: SheetSpec, widths: dict[int, float], offset: int, scratch: str) -> HelperProcess[_Part] | None:
    later = spec.later
    assert later is not None
    alone = dataclasses.replace(spec, rows=(), later=None)  # what the helper needs of the sheet
    return HelperProcess.start(functools.partial(_write_part, alone, later, widths, offset, scratch))


def _write_part(
    spec: SheetSpec, later: LaterRows[Sequence[Any]], widths: dict[int, float], offset: int, scratch: str
) -> _Part:
    """In the helper: write data rows ``later.after``... to a sheet of a workbook of its own."""
    book = xlsxwriter.Workbook(io.BytesIO(), {**_OPTIONS, "tmpdir": scratch})
    ws = book.add_worksheet()
    looks = _Looks(book)
    count = _write_rows(ws, spec, _SheetLooks(looks, spec), widths, later.rows(), offset, later.after)
    ws._write_single_row()  # the last row still waiting
    ws._opt_close()
    corners = None
    if ws.dim_rowmin is not None:
        corners = ((ws.dim_rowmin, ws.dim_colmin), (ws.dim_rowmax, ws.dim_colmax))
    return _Part(ws.row_data_filename, count, corners, looks.numbered())


def _write_later(
    ws: Any,
    spec: SheetSpec,
    looks: _SheetLooks,
    widths: dict[int, float],
    offset: int,
    count: int,
    helper: HelperProcess[_Part] | None,
) -> int:
    """The rows of ``spec.later``, after the ``count`` rows written here: the helper's, or written
    here when there is no helper, it failed, or either part did not hold the rows it said."""
    later = spec.later
    assert later is not None
    if helper is not None and count == later.after:
        part = helper.result()
        if part is not None and part.count == later.count:
            _append_part(ws, looks.looks, part, offset + count)
            return part.count
    elif helper is not None:
        helper.cancel()
    return _write_rows(ws, spec, looks, widths, later.rows(), offset, count)


_CELL_LOOK = re.compile(r'(<c r="[A-Z]+[0-9]+" s=")([0-9]+)"')


def _append_part(ws: Any, looks: _Looks, part: _Part, next_row: int) -> None:
    """Append the helper's rows (from sheet row ``next_row``) to ``ws``'s scratch file."""
    ws._write_single_row(next_row)  # this process's last row goes first
    renumber = {theirs: looks.number_of(key) for theirs, key in part.looks.items()}
    with open(part.path, encoding="utf-8") as rows:  # renumbered even where they agree (with a header, never)
        for text in _whole_rows(rows):
            ws.row_data_fh.write(_CELL_LOOK.sub(lambda m: f'{m[1]}{renumber.get(int(m[2]), m[2])}"', text))
    os.unlink(part.path)
    if part.corners:
        for row, column in part.corners:
            ws._check_dimensions(row, column)
        ws.previous_row = part.corners[1][0]


def _whole_rows(rows: TextIO, size: int = 1 << 20) -> Iterator[str]:
    """The text of ``rows`` in pieces that each end with a whole row (no cell is cut in two)."""
    rest = ""
    while chunk := rows.read(size):
        text = rest + chunk
        cut = text.rfind("</row>")
        if cut < 0:
            rest = text
            continue
        cut += len("</row>")
        yield text[:cut]
        rest = text[cut:]
    if rest:
        yield rest


def _write_row(ws: Any, r: int, cells: Sequence[Any], look: _RowLook) -> None:
    """One row of cells. This is the inner loop: the usual cells (plain text, an amount, a whole
    number, a time) are written here, any other by :func:`_write_cell`. It calls XlsxWriter's cell
    writers without the decorator of the public ones, which only reads "A1"-style addresses (this
    loop gives row and column numbers) and cost a few per cent of the time."""
    write_string, write_number, write_datetime = ws._write_string, ws._write_number, ws._write_datetime
    plain = look.plain
    for c, value in enumerate(cells):
        kind = type(value)
        if kind is str:
            if value and "_x" not in value and not value.startswith("<r>"):
                write_string(r, c, value, plain[c])
                continue
        elif kind is Decimal:
            number = _float_of(value)
            if number is not None:
                write_number(r, c, number, plain[c])
                continue
        elif kind is int:
            if -_EXACT_INT < value < _EXACT_INT:
                write_number(r, c, value, plain[c])
                continue
        elif kind is dt.datetime:
            write_datetime(r, c, value, look.dated[c])
            continue
        _write_cell(ws, r, c, value, look)


def _write_cell(ws: Any, r: int, c: int, value: Any, look: _RowLook) -> None:
    """One cell by the type of its value: numbers that keep every digit as numbers, dates as dates,
    nothing as a blank cell with its look (or no cell), anything else as its text."""
    fmt = look.plain[c]
    if value is None or value == "":
        if fmt is not None:
            ws.write_blank(r, c, None, fmt)
    elif isinstance(value, str | bool):  # True is no number here: it is written as its text
        _write_text(ws, r, c, str(value), fmt, look.font)
    elif isinstance(value, Decimal | int | float):
        number = _number(value)
        if number is None:
            _write_text(ws, r, c, str(value), fmt, look.font)
        else:
            ws.write_number(r, c, number, fmt)
    elif isinstance(value, dt.datetime | dt.date):
        ws.write_datetime(r, c, value, look.dated[c])
    else:
        _write_cell(ws, r, c, str(value), look)


def _number(value: Decimal | int | float) -> int | float | None:
    """What XlsxWriter can write for ``value`` so that it reads back equal to it; None when there is
    nothing (more digits than a float holds, or not finite): the value is then written as text."""
    if type(value) is int:
        return value if -_EXACT_INT < value < _EXACT_INT else None
    if isinstance(value, float):
        return value if math.isfinite(value) and float(format(value, ".16G")) == value else None
    return _float_of(Decimal(value))


def _float_of(value: Decimal) -> float | None:
    """The float that XlsxWriter writes (16 significant digits) and a reader takes back as ``value``."""
    return _finite_float_of(value) if value.is_finite() else None


@lru_cache(maxsize=4096)  # amounts and fees repeat
def _finite_float_of(value: Decimal) -> float | None:
    number = float(value)  # infinite when the value is past a float's range (1E+400)
    return number if math.isfinite(number) and _read_back(format(number, ".16G")) == value else None


def _read_back(shown: str) -> Decimal:
    """The value a reader (openpyxl, ``xlsx_read``) takes from a number cell's text."""
    number = float(shown) if "." in shown or "E" in shown or "e" in shown else int(shown)
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


# -- text that XlsxWriter's own escaping would not give back ---------------------------------------------


def _write_text(ws: Any, r: int, c: int, text: str, fmt: Any, font: Any) -> None:
    """Write ``text`` so that it reads back exactly. XlsxWriter escapes control characters and text
    that looks like an escape, but not every such text comes back (``"_x0041_x0042_"``: two
    escapes sharing a ``_``), and it writes text that looks like rich-text XML (``<r>...</r>``)
    as XML, unescaped. Those texts are written as rich text instead: the exact escaped text,
    cut into runs where no run holds a whole escape, so that XlsxWriter changes none of them; a
    reader joins the runs and undoes the escapes."""
    rich_looking = text.startswith("<r>") and text.endswith("</r>")
    if not rich_looking and cell_text(_escape_like_xlsxwriter(text)) == text:
        ws.write_string(r, c, text, fmt)
        return
    tokens: list[Any] = []
    for run in _runs(_escaped(text)):
        tokens += [font, run]
    if fmt is not None:
        tokens.append(fmt)
    if ws.write_rich_string(r, c, *tokens) != 0:  # longer than a cell holds: cut, as XlsxWriter cuts
        ws.write_string(r, c, text, fmt)


def _escaped(text: str) -> str:
    """``text`` escaped the way ``cell_text`` undoes exactly: each character that cannot stand in
    the file as it is becomes ``_xHHHH_``, and so does a ``_`` that would otherwise start one."""
    escaped = _ESCAPED_HERE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    assert cell_text(escaped) == text
    return escaped


def _runs(escaped: str) -> list[str]:
    """``escaped`` cut just after the ``_`` of every escape, and in two runs at least (a rich text
    has two or more)."""
    cuts = [m.start() + 1 for m in _ESCAPE_START.finditer(escaped)] or [1]
    bounds = [0, *cuts, len(escaped)]
    return [escaped[a:b] for a, b in itertools.pairwise(bounds) if a < b]


# -- around the rows ------------------------------------------------------------------------------------


def _width(value: Any) -> int:
    return len(str(value or ""))


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


def _finish(ws: Any, spec: SheetSpec, count: int, book: Any) -> None:
    """What comes after the rows: the filter, the chart, drop-downs."""
    if spec.table_header and spec.headers:
        last = max(count, spec.blank_text_rows)
        ws.autofilter(0, 0, last, len(spec.headers) - 1)
    if spec.chart and count:
        _chart(ws, spec.chart, book)
    for check in spec.checks:
        _list_check(ws, check)


def _chart(ws: Any, spec: ChartSpec, book: Any) -> None:
    """Horizontal bars (long category labels stay readable), the first category on top as in the table."""
    chart = book.add_chart({"type": "bar"})
    sheet = ws.get_name()
    chart.add_series(
        {
            "name": [sheet, 0, spec.value_column - 1],
            "categories": [sheet, 1, spec.category_column - 1, spec.last_row - 1, spec.category_column - 1],
            "values": [sheet, 1, spec.value_column - 1, spec.last_row - 1, spec.value_column - 1],
        }
    )
    chart.set_title({"name": spec.title})
    chart.set_x_axis({"name": spec.y_title} if spec.y_title else {})  # a bar chart's values run across
    chart.set_y_axis({"reverse": True})
    chart.set_legend({"none": True})
    chart.set_size({"width": round(18 * _CM), "height": round(max(7.5, 0.9 * spec.last_row) * _CM)})
    ws.insert_chart(spec.anchor, chart)


_STRICT = "Pick a value from the list."
_WARNING = "Not in the list; keep it only if you are sure."


def _list_check(ws: Any, check: ListCheck) -> None:
    """A drop-down on rows 2..``last_row`` of one column; a value not in the list is refused
    (``strict``) or allowed after a warning."""
    column = check.column - 1
    options: dict[str, Any] = {
        "validate": "list",
        "source": list(check.options),
        "ignore_blank": True,
        "error_type": "stop" if check.strict else "warning",
        "error_title": "Check this cell",
        "error_message": _STRICT if check.strict else _WARNING,
        "show_input": bool(check.prompt),
    }
    if check.prompt:
        options["input_message"] = check.prompt
    if ws.data_validation(1, column, check.last_row - 1, column, options) != 0:
        raise ValueError(f"a drop-down XlsxWriter refused: {check}")

"""Read one sheet of a workbook in a single streaming pass: cell values as text, hidden rows,
merged ranges and formulas together.

Runs only after ``guard.scan_workbook`` has inflated every part under its caps and refused any
XML that declares a DTD; the expat parsers here refuse a DTD again and never resolve entities.
The workbook's own parts (sheet list, relationships, shared strings, number formats) are small
and read the same way. What a cell's value means (dates, formulas shared between cells) is
decided by openpyxl's rules through ``xlsx.py``, so the text is the one openpyxl would give.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers import expat

from batch_payouts.errors import InputFileError
from batch_payouts.sheets import xlsx

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELS = "http://schemas.openxmlformats.org/package/2006/relationships}"
DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_DIGITS = "0123456789"


class _Refused(Exception):
    """An XML part declared a DTD or an entity."""


def _parser(
    start: Callable[[str, dict[str, str]], None] | None = None,
    end: Callable[[str], None] | None = None,
    text: Callable[[str], None] | None = None,
    *,
    namespaces: bool = True,
) -> Any:
    """An expat parser that refuses DTDs, entities and external references."""
    parser = expat.ParserCreate(namespace_separator="}") if namespaces else expat.ParserCreate()
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse(*_: object) -> int:
        raise _Refused

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    if start is not None:
        parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if text is not None:
        parser.CharacterDataHandler = text
    return parser


def _parse(archive: zipfile.ZipFile, part: str, parser: Any, path: Path) -> None:
    try:
        with archive.open(part) as stream:
            parser.ParseFile(stream)
    except KeyError:
        raise InputFileError(str(path), f"not a readable workbook (part {part} is missing)") from None
    except _Refused:
        raise InputFileError(
            str(path),
            f"part {part} declares a DTD (XML entities can expand without bound "
            "or read other files); refused as unsafe",
        ) from None
    except expat.ExpatError as exc:
        raise InputFileError(str(path), f"not a readable workbook (part {part}: {exc})") from None


# -- the workbook's own parts ---------------------------------------------------------------------


@dataclass
class Book:
    """Sheets in order (name, state, part), shared strings, date styles, the date system."""

    sheets: list[tuple[str, str, str]] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    date_styles: dict[int, bool] = field(default_factory=dict)  # style index -> a duration, not a date
    mac_epoch: bool = False


def _relationships(archive: zipfile.ZipFile, part: str, path: Path) -> dict[str, tuple[str, str]]:
    """Relationship id -> (type, part path) of the part whose .rels file this is."""
    found: dict[str, tuple[str, str]] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == RELS + "Relationship" and attrs.get("TargetMode") != "External":
            target = attrs.get("Target", "")
            where = (
                target[1:]
                if target.startswith("/")
                else posixpath.normpath(posixpath.join(posixpath.dirname(part), target))
            )
            found[attrs.get("Id", "")] = (attrs.get("Type", ""), where)

    rels = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
    if rels in set(archive.namelist()):
        _parse(archive, rels, _parser(start), path)
    return found


def read_book(archive: zipfile.ZipFile, path: Path) -> Book:
    """Sheet list, shared strings and date styles of the workbook (``xl/workbook.xml``)."""
    book = Book()
    rels = _relationships(archive, "xl/workbook.xml", path)
    listed: list[tuple[str, str, str]] = []

    def on_workbook(name: str, attrs: dict[str, str]) -> None:
        if name == MAIN + "sheet":
            listed.append((attrs.get("name", ""), attrs.get("state", "visible"), attrs.get(DOC_RELS + "id", "")))
        elif name == MAIN + "workbookPr":
            book.mac_epoch = attrs.get("date1904", "").lower() in ("1", "true")

    _parse(archive, "xl/workbook.xml", _parser(on_workbook), path)
    book.sheets = [(name, state, rels[rid][1]) for name, state, rid in listed if rid in rels]
    by_type = {kind.rsplit("/", 1)[-1]: part for kind, part in rels.values()}
    if "sharedStrings" in by_type:
        book.strings = _shared_strings(archive, by_type["sharedStrings"], path)
    if "styles" in by_type:
        book.date_styles = _date_styles(archive, by_type["styles"], path)
    return book


# Element names in the two big parts (sheet, shared strings), read without namespace processing
# for speed: a prefix such as ``x:c`` is set aside, the local name decides.
ROW, CELL, VALUE, FORMULA, INLINE, TEXT, RUN_PHONETIC, MERGE, STRING_ITEM, OTHER = range(10)
_LOCAL_NAMES = {
    "row": ROW,
    "c": CELL,
    "v": VALUE,
    "f": FORMULA,
    "is": INLINE,
    "t": TEXT,
    "rPh": RUN_PHONETIC,
    "mergeCell": MERGE,
    "si": STRING_ITEM,
}


class _Names(dict[str, int]):
    """Qualified element name -> code, learnt as names are met."""

    def __missing__(self, name: str) -> int:
        code = self[name] = _LOCAL_NAMES.get(name.rpartition(":")[2], OTHER)
        return code


class _RichText:
    """Text of an ``<si>`` or ``<is>`` element as openpyxl gives it: the plain ``<t>`` and the
    runs' ``<t>``, never the phonetic guide (``<rPh>``)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.collecting = False
        self.phonetic = 0

    def start(self, code: int) -> None:
        if code == RUN_PHONETIC:
            self.phonetic += 1
        elif code == TEXT and not self.phonetic:
            self.collecting = True

    def end(self, code: int) -> None:
        if code == RUN_PHONETIC:
            self.phonetic -= 1
        elif code == TEXT:
            self.collecting = False

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts = []
        return text


def _shared_strings(archive: zipfile.ZipFile, part: str, path: Path) -> list[str]:
    """The shared strings, each already as the text a cell shows (``_xHHHH_`` escapes undone)."""
    strings: list[str] = []
    rich = _RichText()
    names = _Names()

    def start(name: str, _attrs: dict[str, str]) -> None:
        rich.start(names[name])

    def end(name: str) -> None:
        code = names[name]
        if code == STRING_ITEM:
            strings.append(xlsx.cell_text(rich.take().replace("x005F_", "")))
        else:
            rich.end(code)

    def text(data: str) -> None:
        if rich.collecting:
            rich.parts.append(data)

    _parse(archive, part, _parser(start, end, text, namespaces=False), path)
    return strings


def _date_styles(archive: zipfile.ZipFile, part: str, path: Path) -> dict[int, bool]:
    """Cell style index -> True for a duration format, False for a date; other styles absent."""
    custom: dict[int, str] = {}
    cell_formats: list[int] = []
    depth = {"cellXfs": 0}

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == MAIN + "numFmt":
            custom[_int(attrs.get("numFmtId"))] = attrs.get("formatCode", "")
        elif name == MAIN + "cellXfs":
            depth["cellXfs"] += 1
        elif name == MAIN + "xf" and depth["cellXfs"]:
            cell_formats.append(_int(attrs.get("numFmtId")))

    def end(name: str) -> None:
        if name == MAIN + "cellXfs":
            depth["cellXfs"] -= 1

    _parse(archive, part, _parser(start, end), path)
    styles: dict[int, bool] = {}
    for index, number_format in enumerate(cell_formats):
        code = custom.get(number_format) or xlsx.builtin_format(number_format)
        kind = xlsx.date_kind(code)
        if kind is not None:
            styles[index] = kind == "duration"
    return styles


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


# -- the sheet -----------------------------------------------------------------------------------


@dataclass
class Sheet:
    """What one pass over a sheet part found; rows are 1-based as the sheet numbers them."""

    grid: list[list[str]]
    formulas: dict[tuple[int, int], str]  # (0-based row, 0-based column) -> "=..."
    hidden: list[int]
    merged: list[str]


class _SheetReader:
    """expat handlers that fill the grid cell by cell."""

    def __init__(self, book: Book, max_rows: int, path: Path) -> None:
        self.book = book
        self.max_rows = max_rows
        self.path = path
        self.names = _Names()
        self.grid: list[list[str]] = []
        self.formulas: dict[tuple[int, int], str] = {}
        self.shared_formulas: dict[str, Callable[[str], str]] = {}
        self.hidden: list[int] = []
        self.merged: list[str] = []
        self.row: list[str] = []
        self.row_number = 0
        self.skip_row = False
        self.column = 0
        self.columns: dict[str, int] = {}
        self.date_styles = {str(index): duration for index, duration in book.date_styles.items()}
        # the cell being read
        self.kind = "n"
        self.ref: str | None = None
        self.style: str | None = None
        self.value: list[str] | None = None
        self.formula: list[str] | None = None
        self.formula_attrs: dict[str, str] = {}
        self.inline: _RichText | None = None
        self.collect: list[str] | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        code = self.names[name]
        if code == CELL:
            self.kind = attrs.get("t", "n")
            self.ref = attrs.get("r")
            self.style = attrs.get("s")
            self.value = self.formula = self.inline = None
        elif code == VALUE:  # the first <v> is the value (openpyxl's findtext)
            if self.value is None:
                self.value = self.collect = []
        elif self.inline is not None:
            self.inline.start(code)
            self.collect = self.inline.parts if self.inline.collecting else None
        elif code == ROW:
            self._start_row(attrs)
        elif code == FORMULA:
            self.formula = self.collect = []
            self.formula_attrs = attrs
        elif code == INLINE:
            self.inline = _RichText()
        elif code == MERGE and attrs.get("ref"):
            self.merged.append(attrs["ref"])

    def end(self, name: str) -> None:
        code = self.names[name]
        if code == CELL:
            self._end_cell()
        elif code == ROW:
            if not self.skip_row:
                self.grid.append(self.row)
        elif self.inline is not None and code != INLINE:
            self.inline.end(code)
            self.collect = self.inline.parts if self.inline.collecting else None
        else:
            self.collect = None

    def text(self, data: str) -> None:
        if self.collect is not None:
            self.collect.append(data)

    def _start_row(self, attrs: dict[str, str]) -> None:
        number = attrs.get("r")
        self.row_number = _row_number(number, self.path) if number else self.row_number + 1
        if self.row_number > self.max_rows:
            raise InputFileError(str(self.path), f"more than {self.max_rows} rows; refused")
        while len(self.grid) < self.row_number - 1:
            self.grid.append([])  # rows the sheet leaves out are empty
        # a row numbered at or before one already read is left out, as openpyxl leaves it out
        self.skip_row = len(self.grid) >= self.row_number
        if attrs.get("hidden") in ("1", "true"):
            self.hidden.append(self.row_number)
        self.row = []
        self.column = 0

    def _end_cell(self) -> None:
        ref = self.ref
        if ref:
            letters = ref.rstrip(_DIGITS)
            column = self.columns.get(letters)
            if column is None:
                column = self.columns[letters] = xlsx.column_index(letters, self.path)
            self.column = column
        else:
            self.column += 1
        text = self._text()
        row, index = self.row, self.column - 1
        if len(row) == index:
            row.append(text)
        elif len(row) < index:
            row.extend([""] * (index - len(row)))
            row.append(text)
        else:
            row[index] = text
        if self.formula is not None:
            formula = self._formula()
            if formula is not None and not self.skip_row:
                self.formulas[(self.row_number - 1, index)] = formula
        self.collect = self.inline = None

    def _text(self) -> str:
        """The cell's value as the text a person sees (``xlsx.cell_text`` of openpyxl's value)."""
        kind = self.kind
        if kind == "inlineStr":
            return xlsx.cell_text(self.inline.take()) if self.inline is not None else ""
        raw = "".join(self.value) if self.value else ""
        if not raw:
            return ""
        try:
            if kind == "s":
                return self.book.strings[int(raw)]
            if kind == "n":
                if "." in raw or "E" in raw or "e" in raw:
                    number: int | float = float(raw)
                else:
                    number = int(raw)
                duration = self.date_styles.get(self.style) if self.style else None
                if duration is not None:
                    return xlsx.cell_text(xlsx.excel_date(number, self.book.mac_epoch, duration))
                return str(number) if type(number) is int else xlsx.cell_text(number)
            if kind == "b":
                return xlsx.cell_text(bool(int(raw)))
            if kind == "d":
                return xlsx.cell_text(xlsx.iso_date(raw))
        except (ValueError, IndexError):
            where = f"cell {self.ref}" if self.ref else f"row {self.row_number}"
            raise InputFileError(
                str(self.path),
                f"not a readable workbook ({where} holds {raw[:40]!r}, which is not a valid value of type {kind!r})",
            ) from None
        return xlsx.cell_text(raw)  # "str", "e" and unknown types: the text as written

    def _formula(self) -> str | None:
        """The formula as openpyxl reports it: shared formulas translated to this cell, array and
        data-table formulas left out."""
        kind = self.formula_attrs.get("t")
        if kind in ("array", "dataTable"):
            return None
        text = "=" + "".join(self.formula or [])
        if kind == "shared":
            group = self.formula_attrs.get("si", "")
            translate = self.shared_formulas.get(group)
            if translate is not None and self.ref:
                return translate(self.ref)
            if text != "=" and self.ref:
                self.shared_formulas[group] = xlsx.formula_translator(text, self.ref)
        return text


def _row_number(text: str, path: Path) -> int:
    try:
        value = float(text)
    except ValueError:
        raise InputFileError(str(path), f"not a readable workbook (row number {text[:20]!r})") from None
    if not value.is_integer() or value < 1:
        raise InputFileError(str(path), f"not a readable workbook (row number {text[:20]!r})")
    return int(value)


def read_sheet_part(archive: zipfile.ZipFile, part: str, book: Book, max_rows: int, path: Path) -> Sheet:
    """One pass over ``part``: values, formulas, hidden rows and merged ranges together."""
    reader = _SheetReader(book, max_rows, path)
    _parse(archive, part, _parser(reader.start, reader.end, reader.text, namespaces=False), path)
    grid = reader.grid
    while grid and not "".join(grid[-1]).strip():
        grid.pop()
    formulas = {at: text for at, text in reader.formulas.items() if at[0] < len(grid)}
    return Sheet(grid, formulas, reader.hidden, reader.merged)


# -- the entry point -------------------------------------------------------------------------------


def read_grid(
    path: Path, sheet: str | None, max_rows: int
) -> tuple[list[list[str]], dict[tuple[int, int], str], list[str], list[int]]:
    """All cells of one sheet as text, the formulas found (by 0-based row, column), notes, and the
    hidden rows (1-based sheet row numbers)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputFileError(str(path), f"not a readable workbook ({exc})") from None
    with archive:
        book = read_book(archive, path)
        names = [name for name, _, _ in book.sheets]
        if sheet is not None and sheet not in names:
            raise InputFileError(str(path), f"no sheet named {sheet!r}; the sheets are: {', '.join(names)}")
        visible = [name for name, state, _ in book.sheets if state == "visible"]
        if sheet is None and not visible:
            raise InputFileError(str(path), "every sheet of the workbook is hidden")
        name = sheet or visible[0]
        notes: list[str] = []
        if sheet is None and len(names) > 1:
            skipped = names[: names.index(name)]
            hidden = f"; hidden sheets skipped: {', '.join(skipped)}" if skipped else ""
            notes.append(f"read the first visible sheet {name!r} (use --sheet to pick another){hidden}")
        part = next(p for n, _, p in book.sheets if n == name)
        found = read_sheet_part(archive, part, book, max_rows, path)
    notes += _layout_notes(found.hidden, found.merged, len(found.grid))
    if found.formulas:
        notes.append(f"{len(found.formulas)} cells hold formulas; their saved values were used, nothing was calculated")
    return found.grid, found.formulas, notes, [r for r in found.hidden if 1 < r <= len(found.grid)]


def _layout_notes(hidden: list[int], merged: list[str], rows: int) -> list[str]:
    """Sentences about what a reader of the sheet might not see: hidden rows, merged cells."""
    hidden = [r for r in hidden if 1 < r <= rows]
    notes = []
    if hidden:
        shown = ", ".join(map(str, hidden[:20])) + (" …" if len(hidden) > 20 else "")
        notes.append(
            f"{len(hidden)} rows are hidden in the sheet (rows {shown}); they were read and are held, "
            "not paid, unless hidden rows are included (--include-hidden); unhide them to check them"
        )
    if merged:
        shown = ", ".join(merged[:10]) + (" …" if len(merged) > 10 else "")
        notes.append(
            f"{len(merged)} merged cell ranges ({shown}): only the first cell of each holds "
            "its value, the others were read as empty"
        )
    return notes

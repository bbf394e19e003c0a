"""The one place that uses openpyxl: openpyxl's rules for what a cell value means (dates,
shared formulas) and the text a person sees for a value. What a workbook to write holds is in
``spec.py`` (no spreadsheet library: a command that writes no workbook loads none).

Reading a sheet is one streaming pass in ``xlsx_read.py``; openpyxl never parses an input file
(defusedxml is still asserted at import, should it ever). Workbooks are written by
``xlsx_write.py`` (XlsxWriter), text cells always as strings, never as formulas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import openpyxl.xml
from openpyxl.formula.translate import Translator
from openpyxl.styles.numbers import builtin_format_code, is_date_format, is_timedelta_format
from openpyxl.utils.cell import column_index_from_string
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel, from_ISO8601
from openpyxl.utils.escape import unescape as xml_unescape

from batch_payouts.errors import InputFileError

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

"""Write reports and results as CSV or XLSX: formula-safe, atomic, private (mode 0600).

Text that a spreadsheet would run as a formula is prefixed with an apostrophe; text that
already starts with an apostrophe gets one more, so :func:`unescape_cell` undoes it exactly.
Plain numbers and E.164 phone numbers are left as they are.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import errno
import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from batch_payouts.sheets.spec import SheetSpec

_DANGER = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_E164 = re.compile(r"^\+\d{7,15}$")
# First characters after which escape_cell returns text as it is (ASCII, not a formula start, not
# '); write_csv checks them inline so that the usual cell costs one set look-up, not three calls.
_PLAIN_HEADS = frozenset(chr(c) for c in range(128)) - {*_DANGER, "'"}
# The cells escape_cell returns as they are, in the terms polars searches with (Rust regex; "\z" is
# the very end, where Python's "$" also allows a last newline): empty, a first character of
# _PLAIN_HEADS, an E.164 number, a plain number. Only the other cells are passed to escape_cell.
_KEPT_AS_IS = r"\A(?:\z|[^=+\-@\t\r\n\x00'\x{80}-\x{10FFFF}]|\+[0-9]{7,15}\z|[+-]?[0-9]+(?:\.[0-9]+)?\z)"


def escape_cell(text: str) -> str:
    """Neutralise text a spreadsheet would execute; reversible with :func:`unescape_cell`."""
    if not text:
        return text
    if text[0] in _PLAIN_HEADS:
        return text  # the usual cell: NFKC leaves an ASCII character as it is
    if _number_or_phone(text):
        return text
    first = unicodedata.normalize("NFKC", text[0])[:1]
    if first in _DANGER or text[0] in _DANGER or text[0] == "'":
        return "'" + text
    return text


def _number_or_phone(text: str) -> bool:
    """A plain number or an E.164 phone number: kept as it is, though it starts with + or -."""
    return bool(_PLAIN_NUMBER.match(text) or _E164.match(text))


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell`."""
    return text[1:] if text.startswith("'") else text


def _safe(value: Any) -> Any:
    if type(value) is str:  # the usual cell first
        return escape_cell(value)
    if value is None:
        return ""
    if isinstance(value, Decimal | int | float | dt.datetime | dt.date) and not isinstance(value, bool):
        return value
    return escape_cell(str(value))


def _csv_cell(value: Any) -> str:
    """One cell's CSV text, formula-safe."""
    return _csv_text(_safe(value))


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Report a failed write against ``path`` itself, not the private temporary file behind it."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A private temporary file beside ``path`` to write; on success it is synced and renamed over
    ``path`` (mode 0600), on failure removed. A failed write is reported against ``path``."""
    with _naming(path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file stands where a folder of the path should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            os.close(fd)
            yield Path(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a private temporary file and an atomic rename."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def safe_sheet(spec: SheetSpec) -> SheetSpec:
    """``spec`` with every header and cell made formula-safe (numbers and dates kept as they are);
    the rows are made safe as they are written."""
    return dataclasses.replace(
        spec,
        headers=[escape_cell(h) for h in spec.headers],
        rows=_safe_rows(spec.rows),
        text_columns={escape_cell(h) for h in spec.text_columns},
        later=spec.later.then(_safe_rows) if spec.later else None,  # a module-level step: it pickles
    )


def _safe_rows(rows: Iterable[Sequence[Any]]) -> Iterator[list[Any]]:
    # the usual text cell (empty, or a first character of _PLAIN_HEADS) is safe as it is: kept
    # without a call (a 100,000-row workbook has two million cells)
    heads = _PLAIN_HEADS
    return ([v if type(v) is str and (not v or v[0] in heads) else _safe(v) for v in row] for row in rows)


def write_xlsx(path: Path, sheets: list[SheetSpec]) -> None:
    """Write ``sheets`` as one workbook, formula-safe, atomically, mode 0600; rows given as a
    generator are streamed to the file."""
    from batch_payouts.sheets.xlsx_write import write_workbook  # the XLSX libraries load only to write one

    with atomic_file(path) as tmp:
        write_workbook(tmp, [safe_sheet(spec) for spec in sheets])


def write_csv(path: Path, headers: list[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write one table as UTF-8 CSV (with BOM, CRLF), formula-safe, atomically, mode 0600; rows
    are written as they come."""
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow([escape_cell(h) for h in headers])
        plain, e164 = _PLAIN_HEADS, _E164.match
        writer.writerows(
            [
                v
                if type(v) is str and (not v or v[0] in plain or (v[0] == "+" and e164(v)))
                else str(v)
                if type(v) is int
                else _csv_cell(v)
                for v in row
            ]
            for row in rows
        )


def write_csv_columns(path: Path, headers: list[str], columns: Sequence[Sequence[str] | Sequence[int]]) -> None:
    """As :func:`write_csv`, byte for byte, for a table given as columns (two or more, each all text
    or all whole numbers): the cells are written by compiled code, and only those that may need
    escaping are looked at one by one."""
    from batch_payouts.sheets import frames  # polars loads only to write such a table

    header = io.StringIO()
    csv.writer(header, lineterminator="\r\n").writerow([escape_cell(h) for h in headers])
    with atomic_file(path) as tmp, tmp.open("wb") as fh:
        fh.write(header.getvalue().encode("utf-8-sig"))
        frames.write_csv_columns(fh, columns, keep=_KEPT_AS_IS, change=escape_cell)


def write_columns(
    path: Path, headers: list[str], columns: Sequence[Sequence[str] | Sequence[int]], *, text_columns: set[str]
) -> None:
    """Write one table given as columns (each all text or all whole numbers) to ``.csv`` or
    ``.xlsx`` by suffix."""
    if path.suffix.lower() == ".xlsx":
        write_table(path, headers, list(zip(*columns, strict=True)), text_columns=text_columns)
        return
    write_csv_columns(path, headers, columns)


def write_table(
    path: Path,
    headers: list[str],
    rows: Sequence[Sequence[Any]],
    *,
    text_columns: set[str] | None = None,
    extra: list[SheetSpec] | None = None,
    title: str = "Results",
    blank_text_rows: int = 0,
) -> None:
    """Write one table (plus extra sheets in XLSX) to ``.csv`` or ``.xlsx`` by suffix."""
    if path.suffix.lower() == ".xlsx":
        first = SheetSpec(
            title, headers, rows, text_columns or set(), blank_text_rows=blank_text_rows, table_header=True
        )
        write_xlsx(path, [first, *(extra or [])])
        return
    write_csv(path, headers, rows)

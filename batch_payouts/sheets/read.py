"""Read a payout spreadsheet (CSV with polars through ``frames.py``, XLSX through ``xlsx_read.py``) as text rows.

Every cell comes back as text and every row keeps its sheet row number, so each problem can be
shown where the finance team will look for it. The header row is found even below title lines.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batch_payouts.errors import InputFileError, MissingColumns
from batch_payouts.sheets import columns, frames
from batch_payouts.sheets.guard import Limits, scan_workbook, sniff

HEADER_SEARCH_ROWS = 30


@dataclass(frozen=True)
class RawRow:
    """One data row: its sheet row number and every cell as text, keyed by original header."""

    row: int
    cells: dict[str, str]


@dataclass
class RawSheet:
    """What was read: original headers, the canonical mapping, rows, and notes about the file."""

    path: str
    kind: str
    headers: list[str]
    mapping: dict[str, str]
    rows: list[RawRow]
    notes: list[str] = field(default_factory=list)
    formula_cells: dict[tuple[int, str], str] = field(default_factory=dict)
    hidden_rows: frozenset[int] = frozenset()  # sheet row numbers of data rows hidden in Excel


def read_sheet(
    path: str | Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    mapping: dict[str, str] | None = None,
    limits: Limits | None = None,
) -> RawSheet:
    """Read ``path`` into a :class:`RawSheet`, or raise :class:`InputFileError` saying why not."""
    p = Path(path)
    lim = limits or Limits()
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise InputFileError(str(p), f"cannot be read ({exc.strerror or exc})") from None
    if size > lim.max_file_bytes:
        raise InputFileError(
            str(p),
            f"the file is {size // (1024 * 1024)} MiB, more than the {lim.max_file_bytes // (1024 * 1024)} MiB limit",
        )
    if size == 0:
        raise InputFileError(str(p), "the file is empty")
    kind = sniff(p, head, forced_encoding=encoding)
    grid: Sequence[Sequence[str]]
    if kind == "xlsx":
        scan_workbook(p, lim)
        from batch_payouts.sheets import xlsx_read

        grid, formulas, notes, hidden = xlsx_read.read_grid(p, sheet, lim.max_rows + HEADER_SEARCH_ROWS)
    else:
        grid, notes = _csv_grid(p, encoding, delimiter, lim)
        formulas, hidden = {}, []
    read = _from_grid(str(p), kind, grid, formulas, notes, mapping or {}, lim)
    read.hidden_rows = frozenset(hidden) & {r.row for r in read.rows}
    return read


def _from_grid(
    path: str,
    kind: str,
    grid: Sequence[Sequence[str]],
    formulas: dict[tuple[int, int], str],
    notes: list[str],
    explicit: dict[str, str],
    lim: Limits,
) -> RawSheet:
    header_index = _find_header(grid, explicit)
    if header_index is None:
        raise InputFileError(path, "no header row found: name the columns, e.g. name, phone, amount, currency, country")
    headers = _unique_headers(list(grid[header_index]))
    mapping = columns.map_headers(headers, explicit)
    missing = [c for c in columns.REQUIRED if c not in mapping]
    if "country" not in mapping and "currency" not in mapping:
        missing.append("country or currency")
    if missing:
        raise MissingColumns(path, missing, headers)
    width = len(headers)
    padding = ("",) * width
    rows: list[RawRow] = []
    for index in range(header_index + 1, len(grid)):
        cells = grid[index]
        if not "".join(cells).strip():
            continue
        if len(cells) < width:
            cells = (*cells, *padding[len(cells) :])
        rows.append(RawRow(index + 1, dict(zip(headers, cells, strict=False))))
    if not rows:
        raise InputFileError(path, "no data rows under the header")
    if len(rows) > lim.max_rows:
        raise InputFileError(path, f"the file has more than {lim.max_rows} rows, the limit (see --max-rows)")
    formula_cells = {
        (r + 1, headers[c]): text
        for (r, c), text in sorted(formulas.items())
        if r > header_index and c < width and "".join(grid[r]).strip()
    }
    return RawSheet(path, kind, headers, mapping, rows, notes, formula_cells)


def _find_header(grid: Sequence[Sequence[str]], explicit: dict[str, str]) -> int | None:
    wanted = {columns.squash(h) for h in explicit.values()}
    best, best_score = None, 1
    for index, cells in enumerate(grid[:HEADER_SEARCH_ROWS]):
        score = columns.header_score(cells) + sum(columns.squash(c) in wanted for c in cells if c)
        if score > best_score:
            best, best_score = index, score
    return best


def _unique_headers(cells: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(cells):
        name = raw.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    while out and out[-1].startswith("column_") and all(not c.strip() for c in cells[len(out) - 1 :]):
        out.pop()
    return out


# -- CSV ---------------------------------------------------------------------------------------


def decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    """Text and the encoding used: forced, else BOM, else UTF-8, else Windows-1252."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot be decoded as {encoding} ({exc})") from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def detect_delimiter(text: str) -> str:
    """Comma, semicolon or tab: whichever splits the first lines most consistently."""
    lines = [ln for ln in text.splitlines()[:HEADER_SEARCH_ROWS] if ln.strip()]
    best, best_key = ",", (0, 0)
    for delim in (",", ";", "\t"):
        counts = [len(next(csv.reader([ln], delimiter=delim))) for ln in lines]
        widest = max(counts, default=1)
        key = (sum(c == widest for c in counts) if widest > 1 else 0, widest)
        if key > best_key:
            best, best_key = delim, key
    return best


def _csv_grid(
    path: Path, encoding: str | None, delimiter: str | None, lim: Limits
) -> tuple[list[tuple[str, ...]], list[str]]:
    """The cells of a CSV file as text, and notes about how it was read."""
    data = path.read_bytes()
    try:
        text, used = decode(data, encoding)
    except ValueError as exc:
        raise InputFileError(str(path), str(exc)) from None
    notes = []
    if used == "cp1252" and not encoding:
        lost = text.count("\ufffd")
        notes.append(
            "the file is not UTF-8; it was read as Windows-1252 (cp1252): check accented names, or "
            "pass --encoding" + (f"; {lost} bytes could not be read and show as \ufffd" if lost else "")
        )
    if "\x00" in text:
        raise InputFileError(str(path), "not a spreadsheet: the text contains NUL bytes (wrong --encoding?)")
    try:
        delim = delimiter or detect_delimiter(text)
        if delim in ("\\t", "tab"):
            delim = "\t"
        head_rows = _first_records(text, delim)
    except csv.Error as exc:
        raise InputFileError(
            str(path),
            f"not a readable CSV file: {exc} (a cell longer than {csv.field_size_limit()} characters is refused)",
        ) from None
    width = max((len(r) for r in head_rows), default=1)
    try:
        grid = frames.csv_grid(text, delimiter=delim, width=width, max_rows=lim.max_rows + HEADER_SEARCH_ROWS + 1)
    except frames.CsvError as exc:
        raise InputFileError(str(path), f"not a readable CSV file ({exc})") from None
    return grid, notes


def _first_records(text: str, delim: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text[:1_000_000]), delimiter=delim)
    out = []
    for record in reader:
        out.append(record)
        if len(out) >= HEADER_SEARCH_ROWS:
            break
    return out

"""Pre-scan of a workbook before any parser sees it (docs/architecture.md).

An XLSX is a zip archive: we count members, inflate each one in chunks counting the bytes
(never trusting the sizes the archive claims), cap the compression ratio, and refuse external
links, nested archives, macros and anything that is not a plain workbook.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from batch_payouts.errors import InputFileError

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
DTD_MARKERS = (b"<!doctype", b"<!entity")  # a workbook's XML never needs a DTD; entities can expand
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Limits:
    """Caps on what we agree to read. Sizes in bytes."""

    max_file_bytes: int = 50 * 1024 * 1024
    max_rows: int = 200_000
    max_members: int = 500
    max_inflated_bytes: int = 300 * 1024 * 1024
    max_ratio: float = 100.0
    max_sheets: int = 100


def sniff(path: Path, head: bytes, *, forced_encoding: str | None = None) -> str:
    """``"xlsx"`` or ``"csv"`` by content, whatever the file is called; refuse the rest."""
    suffix = path.suffix.lower()
    if head.startswith(OLE_MAGIC):
        raise InputFileError(
            str(path), "this is an encrypted workbook or an old .xls file; save it as an unprotected .xlsx or as CSV"
        )
    if head.startswith(ZIP_MAGIC):
        if suffix in (".xlsm", ".xlsb"):
            raise InputFileError(str(path), f"{suffix} workbooks are not accepted; save as .xlsx or CSV")
        return "xlsx"
    if suffix in (".xlsx", ".xlsm", ".xls", ".xlsb"):
        lower = head[:512].lower()
        if b"<html" in lower or b"<!doctype" in lower or b"<table" in lower:
            raise InputFileError(
                str(path), "this is a web page saved with a spreadsheet name, not a workbook; save it as .xlsx or CSV"
            )
        raise InputFileError(str(path), f"not a spreadsheet: the file is called {suffix} but is not a workbook")
    if b"\x00" in head and not forced_encoding and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        if head[1::2].count(0) > len(head) // 4 or head[0::2].count(0) > len(head) // 4:
            raise InputFileError(
                str(path),
                "this looks like UTF-16 text without a byte-order mark; "
                "read it with --encoding utf-16-le (or utf-16-be)",
            )
        raise InputFileError(str(path), "not a spreadsheet: the file is binary")
    return "csv"


def scan_workbook(path: Path, limits: Limits) -> None:
    """Refuse a workbook that is a zip bomb, links outside itself, or hides other archives."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputFileError(str(path), f"not a readable workbook ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise InputFileError(
                str(path), f"the workbook has {len(members)} parts (more than {limits.max_members}); refused as unsafe"
            )
        names = [m.filename for m in members]
        if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
            raise InputFileError(str(path), "not a spreadsheet: a zip archive but not an .xlsx workbook")
        if "xl/workbook.xml" not in names:
            kind = "a binary .xlsb workbook" if "xl/workbook.bin" in names else "missing its xl/workbook.xml part"
            raise InputFileError(str(path), f"not a readable .xlsx workbook: {kind}; save it as .xlsx or CSV")
        if any("externalLink" in n for n in names):
            raise InputFileError(
                str(path),
                "the workbook links to other workbooks (external links); remove the links or save the values as CSV",
            )
        if any(n.lower().endswith(("vbaproject.bin",)) for n in names):
            raise InputFileError(str(path), "the workbook contains macros; save it as a plain .xlsx")
        sheets = [n for n in names if n.startswith("xl/worksheets/sheet")]
        if len(sheets) > limits.max_sheets:
            raise InputFileError(
                str(path), f"the workbook has {len(sheets)} sheets (more than {limits.max_sheets}); refused as unsafe"
            )
        total = 0
        for member in members:
            if member.flag_bits & 0x1:
                raise InputFileError(str(path), "the workbook is encrypted; save it without a password")
            if member.filename.lower().endswith((".zip", ".xlsx", ".xlsm", ".jar", ".7z", ".gz")):
                raise InputFileError(
                    str(path), f"the workbook contains another archive ({member.filename}); refused as unsafe"
                )
            total += _inflate_counting(archive, member, limits, total, path)


def _inflate_counting(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits, so_far: int, path: Path
) -> int:
    """Inflate one member in chunks, stopping at the caps; return its real size."""
    inflated = 0
    compressed = max(member.compress_size, 1)
    is_xml = member.filename.lower().endswith((".xml", ".rels", ".vml"))
    tail = b""
    try:
        with archive.open(member) as stream:
            while chunk := stream.read(64 * 1024):
                inflated += len(chunk)
                if is_xml:
                    tail = _refuse_a_dtd(tail + chunk.lower(), member.filename, path)
                if so_far + inflated > limits.max_inflated_bytes:
                    raise InputFileError(
                        str(path),
                        "the workbook inflates to more than "
                        f"{limits.max_inflated_bytes // (1024 * 1024)} MiB; refused "
                        "as a zip bomb",
                    )
                if inflated > 1024 * 1024 and inflated / compressed > limits.max_ratio:
                    raise InputFileError(
                        str(path),
                        f"part {member.filename} is compressed more than "
                        f"{limits.max_ratio:.0f}:1; refused as a zip bomb",
                    )
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InputFileError(str(path), f"the workbook is damaged ({exc})") from None
    return inflated


def _refuse_a_dtd(window: bytes, part: str, path: Path) -> bytes:
    """Refuse XML that declares a DTD (entity expansion, external entities); return the bytes to
    carry into the next chunk so a marker split across chunks is still seen."""
    if any(marker in window for marker in DTD_MARKERS):
        raise InputFileError(
            str(path),
            f"part {part} declares a DTD (XML entities can expand without bound "
            "or read other files); refused as unsafe",
        )
    return window[-16:]

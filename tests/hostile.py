"""A generator of hostile input files: each one a way a spreadsheet can hurt a payout tool."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl

HEADER = "name,phone,country,amount,currency\n"
GOOD_ROW = "Wanjiru Kamau,+254712345678,KE,1500,KES\n"


def _xlsx_bytes(rows: list[list[object]] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows or [
        ["name", "phone", "country", "amount", "currency"],
        ["Wanjiru Kamau", "+254712345678", "KE", "1500", "KES"],
    ]:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _rezip(data: bytes, change: Callable[[dict[str, bytes]], None], *, stored: bool = False) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    change(parts)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for name, blob in parts.items():
            z.writestr(name, blob)
    return out.getvalue()


def _sheet_xml(parts: dict[str, bytes], body: bytes) -> None:
    parts["xl/worksheets/sheet1.xml"] = body


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
)
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "' + b"x" * 50_000 + b'">]>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>' + b"&a;" * 20_000 + b"</t></is></c></row></sheetData></worksheet>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>&e;</t></is></c></row></sheetData></worksheet>'
)


def _lying_sizes(data: bytes) -> bytes:
    """A member whose headers claim 100 bytes but which inflates to 50 MB."""
    big = b"0" * (50 * 1024 * 1024)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
        z.writestr("xl/media/image1.png", big)
    blob = bytearray(out.getvalue())
    name = b"xl/media/image1.png"
    for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = 0
        while (i := blob.find(sig, i)) != -1:
            name_len = struct.unpack(
                "<H", blob[i + (26 if sig == b"PK\x03\x04" else 28) : i + (28 if sig == b"PK\x03\x04" else 30)]
            )[0]
            start = i + (30 if sig == b"PK\x03\x04" else 46)
            if blob[start : start + name_len] == name:
                blob[i + size_at : i + size_at + 4] = struct.pack("<I", 100)
            i += 4
    return bytes(blob)


def generate(folder: Path) -> dict[str, Path]:
    """Write every hostile file into ``folder``; return name -> path."""
    good = _xlsx_bytes()
    files: dict[str, bytes] = {
        "zip-bomb-ratio.xlsx": _rezip(good, lambda p: p.update({"xl/media/pad.bin": b"\0" * (30 * 1024 * 1024)})),
        "zip-bomb-lying-sizes.xlsx": _lying_sizes(good),
        "zip-bomb-total.xlsx": _rezip(
            good, lambda p: p.update({f"xl/media/p{i}.bin": bytes(range(256)) * 4096 * 2 for i in range(200)})
        ),
        "too-many-members.xlsx": _rezip(good, lambda p: p.update({f"xl/media/m{i}.txt": b"x" for i in range(800)})),
        "nested-archive.xlsx": _rezip(good, lambda p: p.update({"xl/embeddings/inner.zip": good})),
        "nested-xlsx.xlsx": _rezip(good, lambda p: p.update({"xl/embeddings/inner.xlsx": good})),
        "billion-laughs.xlsx": _rezip(good, lambda p: _sheet_xml(p, LAUGHS)),
        "quadratic-blowup.xlsx": _rezip(good, lambda p: _sheet_xml(p, QUADRATIC)),
        "external-entity.xlsx": _rezip(good, lambda p: _sheet_xml(p, XXE)),
        "external-link.xlsx": _rezip(
            good, lambda p: p.update({"xl/externalLinks/externalLink1.xml": b"<externalLink/>"})
        ),
        "shared-strings-bomb.xlsx": _rezip(
            good,
            lambda p: p.update(
                {"xl/sharedStrings.xml": b"<sst>" + b"<si><t>aaaaaaaaaa</t></si>" * 3_000_000 + b"</sst>"}
            ),
        ),
        "dimension-claim.xlsx": _rezip(
            good,
            lambda p: p.update(
                {
                    "xl/worksheets/sheet1.xml": p["xl/worksheets/sheet1.xml"].replace(
                        b'<dimension ref="A1:E2"/>', b'<dimension ref="A1:XFD1048576"/>'
                    )
                }
            ),
        ),
        "encrypted.xlsx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 4096,
        "old-xls-renamed.xlsx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x01" * 4096,
        "xlsb-renamed.xlsx": _rezip(
            good, lambda p: (p.pop("xl/workbook.xml"), p.update({"xl/workbook.bin": b"\x83\x01\x00"}))
        ),
        "macro.xlsm": _rezip(good, lambda p: p.update({"xl/vbaProject.bin": b"\0" * 100})),
        "html-renamed.xlsx": b"<html><body><table><tr><td>name</td></tr></table></body></html>",
        "csv-renamed.xlsx": (HEADER + GOOD_ROW).encode(),
        "not-a-zip.xlsx": b"PK\x03\x04" + b"\xff" * 200,
        "utf16-no-bom.csv": (HEADER + GOOD_ROW).encode("utf-16-le"),
        "binary-garbage.csv": bytes(range(256)) * 20,
        "empty.csv": b"",
        "header-only.csv": HEADER.encode(),
        "too-large.csv": (HEADER + GOOD_ROW * 1).encode() + b"#" * (9 * 1024 * 1024),
        "too-many-rows.csv": (HEADER + GOOD_ROW * 300).encode(),
        "row-101-breaks-type.csv": (
            HEADER
            + "".join(f"P{i},+2547123456{i % 100:02d},KE,{100 + i},KES\n" for i in range(100))
            + "P100,+254712345600,KE,one hundred,KES\n"
        ).encode(),
        "lookalike-digits.csv": (HEADER + "A,+２５４７１２３４５６７８,KE,١٥٠٠,KES\n").encode(),
        "zero-width.csv": (HEADER + "A\u200b,+254\u200b712345678,KE,15\u200b00,KES\n").encode(),
        "cp1252.csv": (HEADER + "Zoë Ñandú,+254712345678,KE,1500,KES\n").encode("cp1252"),
        "hidden-first-sheet.xlsx": _hidden_first_sheet(),
        "merged-cells.xlsx": _merged(),
        "hidden-rows.xlsx": _hidden_rows(),
        "thousands-of-sheets.xlsx": _many_sheets(),
        "formula-no-cache.xlsx": _xlsx_bytes(
            [["name", "phone", "country", "amount", "currency"], ["A", "+254712345678", "KE", "=1000+500", "KES"]]
        ),
        "huge-cell.csv": (HEADER + "A" * 5_000_000 + ",+254712345678,KE,1500,KES\n").encode(),
        "ten-thousand-columns.csv": (
            ",".join(["name", "phone", "country", "amount", "currency"] + [f"x{i}" for i in range(10_000)])
            + "\n"
            + "A,+254712345678,KE,1500,KES"
            + ",y" * 10_000
            + "\n"
        ).encode(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
        out[name] = folder / name
    return out


def _hidden_rows() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["name", "phone", "country", "amount", "currency"])
    for i in range(5):
        ws.append([f"Payee {i}", f"+25471234560{i}", "KE", "1500", "KES"])
    ws.row_dimensions[3].hidden = True
    ws.row_dimensions[5].hidden = True
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _hidden_first_sheet() -> bytes:
    wb = openpyxl.Workbook()
    secret = wb.active
    secret.title = "Extra"
    secret.append(["name", "phone", "country", "amount", "currency"])
    secret.append(["Hidden Payee", "+254712000999", "KE", "999999", "KES"])
    secret.sheet_state = "hidden"
    shown = wb.create_sheet("Payouts")
    shown.append(["name", "phone", "country", "amount", "currency"])
    shown.append(["Wanjiru Kamau", "+254712345678", "KE", "1500", "KES"])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _merged() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["November payouts", "", "", "", ""])
    ws.merge_cells("A1:E1")
    ws.append(["name", "phone", "country", "amount", "currency"])
    ws.append(["Wanjiru Kamau", "+254712345678", "KE", "1500", "KES"])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _many_sheets() -> bytes:
    wb = openpyxl.Workbook()
    for i in range(400):
        wb.create_sheet(f"S{i}")
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()

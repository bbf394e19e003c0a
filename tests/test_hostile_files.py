"""Hostile files, each read in a child process with a memory cap and a clock: refused with a
sentence naming the cause, or read (repaired) with the problems reported. Nothing persisted."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from tests import hooks
from tests.figures import record
from tests.hostile import generate

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

CHILD = r"""
import json, resource, sys, time
from batch_payouts.errors import InputFileError
from batch_payouts.sheets.guard import Limits
from batch_payouts.sheets.read import read_sheet
sys.path.insert(0, sys.argv[2])
from tests.hooks import remove_guards
remove_guards(sys.argv[3:])  # a build without these guards (pytest --without-guard)
started = time.perf_counter()
try:
    sheet = read_sheet(sys.argv[1], limits=Limits(max_rows=200, max_file_bytes=8 * 1024 * 1024))
    outcome = {"outcome": "read", "rows": len(sheet.rows), "notes": sheet.notes,
               "cells": [list(r.cells.values())[:5] for r in sheet.rows[:2]]}
except InputFileError as exc:
    outcome = {"outcome": "refused", "message": exc.cause}
outcome["seconds"] = time.perf_counter() - started
outcome["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(outcome))
"""
ROOT = Path(__file__).resolve().parent.parent
AS_CAP = 2048 * 1024 * 1024  # address space (polars reserves much it never touches); RSS is checked below


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_CAP, AS_CAP))


def read_in_child(path: Path) -> dict[str, Any]:
    """One file read by a fresh process under the memory cap; what it found, its time and its peak."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(ROOT), *sorted(hooks.removed)],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=_cap,
        check=False,
    )
    assert done.returncode == 0, f"{path.name}: the reader crashed: {done.stderr[-800:]}"
    return dict(json.loads(done.stdout))


REFUSED = {
    "zip-bomb-ratio.xlsx": "compressed more than 100:1; refused as a zip bomb",
    "zip-bomb-lying-sizes.xlsx": "the workbook is damaged",
    "zip-bomb-total.xlsx": "compressed more than 100:1",
    "too-many-members.xlsx": "parts (more than 500); refused as unsafe",
    "nested-archive.xlsx": "contains another archive (xl/embeddings/inner.zip)",
    "nested-xlsx.xlsx": "contains another archive (xl/embeddings/inner.xlsx)",
    "billion-laughs.xlsx": "part xl/worksheets/sheet1.xml declares a DTD (XML entities can expand without bound "
    "or read other files); refused as unsafe",
    "quadratic-blowup.xlsx": "part xl/worksheets/sheet1.xml declares a DTD",
    "external-entity.xlsx": "part xl/worksheets/sheet1.xml declares a DTD",
    "external-link.xlsx": "links to other workbooks",
    "shared-strings-bomb.xlsx": "refused as a zip bomb",
    "encrypted.xlsx": "encrypted workbook or an old .xls file",
    "old-xls-renamed.xlsx": "encrypted workbook or an old .xls file",
    "xlsb-renamed.xlsx": "not a readable .xlsx workbook: a binary .xlsb workbook; save it as .xlsx or CSV",
    "macro.xlsm": ".xlsm workbooks are not accepted",
    "html-renamed.xlsx": "a web page saved with a spreadsheet name",
    "csv-renamed.xlsx": "not a spreadsheet: the file is called .xlsx but is not a workbook",
    "not-a-zip.xlsx": "not a readable workbook",
    "utf16-no-bom.csv": "UTF-16 text without a byte-order mark; read it with --encoding utf-16-le",
    "binary-garbage.csv": "not a spreadsheet: the file is binary",
    "empty.csv": "the file is empty",
    "header-only.csv": "no data rows under the header",
    "too-large.csv": "more than the 8 MiB limit",
    "too-many-rows.csv": "the file has more than 200 rows, the limit",
    "huge-cell.csv": "a cell longer than 131072 characters is refused",
    "thousands-of-sheets.xlsx": "sheets (more than 100); refused as unsafe",
    "ten-thousand-columns.csv": None,  # read: one row, many columns, nothing lost
}
READ = {
    "dimension-claim.xlsx",
    "row-101-breaks-type.csv",
    "lookalike-digits.csv",
    "zero-width.csv",
    "cp1252.csv",
    "hidden-first-sheet.xlsx",
    "hidden-rows.xlsx",
    "merged-cells.xlsx",
    "formula-no-cache.xlsx",
    "ten-thousand-columns.csv",
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def reads(hostile: dict[str, Path]) -> Iterator[dict[str, Future[dict[str, Any]]]]:
    """Every file read in its own capped child, two children at a time (each mostly starts up);
    each test waits for its own file's read."""
    with ThreadPoolExecutor(2) as pool:
        yield {name: pool.submit(read_in_child, path) for name, path in sorted(hostile.items())}


def test_there_are_at_least_thirty_hostile_files(hostile: dict[str, Path]) -> None:
    assert len(hostile) >= 30
    assert set(hostile) == {k for k, v in REFUSED.items() if v} | READ


@pytest.mark.parametrize("name", sorted(k for k, v in REFUSED.items() if v))
def test_a_hostile_file_is_refused_with_a_sentence_within_caps(
    reads: dict[str, Future[dict[str, Any]]], name: str
) -> None:
    result = reads[name].result()
    record(
        "hostile_files",
        1,
        file=name,
        outcome=result["outcome"],
        peak_mib=result["peak_mib"],
        seconds=result["seconds"],
        message=result.get("message"),
    )
    assert result["outcome"] == "refused", result
    assert REFUSED[name] in result["message"]
    assert result["seconds"] < 5 and result["peak_mib"] < 256, result


@pytest.mark.parametrize("name", sorted(k for k, v in REFUSED.items() if v))
def test_running_a_refused_file_persists_nothing(hostile: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Through the command, in-process: the guards refuse these files before anything is inflated or
    stored (the memory caps are measured by the child-process reads above)."""
    state = tmp_path / "ledger.sqlite3"
    done = CliRunner().invoke(
        main,
        [
            "run",
            str(hostile[name]),
            "--sandbox",
            "--yes",
            "--quiet",
            "--max-rows",
            "200",
            "--max-file-mb",
            "8",
            "--state",
            str(state),
        ],
        catch_exceptions=False,
    )
    assert done.exit_code == 2, done.output[-800:]
    assert REFUSED[name] in " ".join(done.stderr.split())
    assert not state.exists() or _batches(state) == 0, "a refused file left a batch in the ledger"


def _batches(state: Path) -> int:
    from batch_payouts.ledger import Ledger

    ledger = Ledger(state)
    try:
        return len(ledger.batches())
    finally:
        ledger.close()


@pytest.mark.parametrize("name", sorted(READ))
def test_a_strange_but_readable_file_is_read_within_caps(reads: dict[str, Future[dict[str, Any]]], name: str) -> None:
    result = reads[name].result()
    record(
        "hostile_files",
        1,
        file=name,
        outcome=result["outcome"],
        peak_mib=result["peak_mib"],
        seconds=result["seconds"],
        message="; ".join(result.get("notes", [])),
    )
    assert result["outcome"] == "read", result
    assert result["seconds"] < 5 and result["peak_mib"] < 256, result
    if name == "hidden-first-sheet.xlsx":
        assert result["cells"][0][0] == "Wanjiru Kamau"
        assert "hidden sheets skipped: Extra" in result["notes"][0]
    if name == "hidden-rows.xlsx":
        assert result["rows"] == 5 and result["cells"][1][0] == "Payee 1"
        assert result["notes"] == [
            "2 rows are hidden in the sheet (rows 3, 5); they were read and are held, not "
            "paid, unless hidden rows are included (--include-hidden); unhide them to check "
            "them"
        ]
    if name == "cp1252.csv":
        assert result["cells"][0][0] == "Zoë Ñandú"
        assert result["notes"] == [
            "the file is not UTF-8; it was read as Windows-1252 (cp1252): check accented names, or pass --encoding"
        ]
    if name == "merged-cells.xlsx":
        assert result["cells"][0][0] == "Wanjiru Kamau"
        assert result["notes"] == [
            "1 merged cell ranges (A1:E1): only the first cell of each holds its value, the others were read as empty"
        ]
    if name == "row-101-breaks-type.csv":
        assert result["rows"] == 101 and result["cells"][0][3] == "100"

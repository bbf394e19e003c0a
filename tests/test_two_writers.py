"""A long table is written by two processes at once (a helper writes the later rows) and the
workbook is the one a single process writes: the same cells, looks, heights and order. When the
helper fails, this process writes those rows itself. Each workbook is written by a fresh process
(``tests/two_writers.py``), as the command line writes one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from batch_payouts import forked
from batch_payouts.ledger import Ledger
from batch_payouts.sheets.spec import LaterRows, SheetSpec
from batch_payouts.sheets.xlsx_write import write_workbook
from tests.test_large_batches import ROUTES, store

SCRIPT = Path(__file__).resolve().parent / "two_writers.py"
ROOT = Path(__file__).resolve().parent.parent


def written(tmp_path: Path, how: str, order: str = "same") -> Path:
    out = tmp_path / f"{how}-{order}.xlsx"
    subprocess.run([sys.executable, str(SCRIPT), how, order, str(out)], check=True, timeout=120)
    return out


def parts(path: Path) -> dict[str, bytes]:
    """Every part of the workbook but its creation time."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if name != "docProps/core.xml"}


def cells(path: Path) -> list[list[tuple[Any, ...]]]:
    """Each cell of the table as value, number format, bold, wrapped; with each row's height."""
    ws = openpyxl.load_workbook(path)["Results"]
    return [
        [(ws.row_dimensions[r[0].row].height,)]
        + [(c.value, c.number_format, c.font.b, c.alignment.wrap_text, c.alignment.vertical) for c in r]
        for r in ws.iter_rows()
    ]


def test_a_table_written_by_two_processes_is_the_workbook_one_process_writes(tmp_path: Path) -> None:
    assert parts(written(tmp_path, "two")) == parts(written(tmp_path, "one"))


def test_cells_of_the_helper_keep_their_looks_when_it_met_them_in_another_order(tmp_path: Path) -> None:
    one, two = written(tmp_path, "one", "other"), written(tmp_path, "two", "other")
    assert cells(two) == cells(one)
    with zipfile.ZipFile(two) as archive:
        assert b'<dimension ref="A1:F601"/>' in archive.read("xl/worksheets/sheet1.xml")


@pytest.mark.parametrize("how", ["helper-raises", "helper-killed"])
def test_when_the_helper_fails_this_process_writes_its_rows(tmp_path: Path, how: str) -> None:
    assert parts(written(tmp_path, how)) == parts(written(tmp_path, "one"))


def test_when_the_first_part_is_short_the_rows_follow_it_with_no_gap(tmp_path: Path) -> None:
    short, one = cells(written(tmp_path, "short")), cells(written(tmp_path, "one"))
    missing = 1 + 299  # the header, then the first part's last row, which it did not hold
    values = [[cell[0] for cell in row[1:]] for row in short]
    assert values == [[cell[0] for cell in row[1:]] for row in one[:missing] + one[missing + 1 :]]


def test_with_more_than_one_thread_the_table_is_written_here_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise AssertionError("a fork with threads running")

    monkeypatch.setattr(os, "fork", no_fork)
    waiting = threading.Event()
    other = threading.Thread(target=waiting.wait)
    other.start()
    try:
        assert not forked.can_fork()
        rows = [[f"row {i}"] for i in range(10)]
        later = LaterRows(4, lambda: iter(rows[4:]))
        write_workbook(tmp_path / "t.xlsx", [SheetSpec("Results", ["h"], rows[:4], later=later)])
    finally:
        waiting.set()
        other.join()
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx")["Results"]
    assert [c.value for (c,) in ws.iter_rows()] == ["h", *(f"row {i}" for i in range(10))]


# -- the helper process ----------------------------------------------------------------------------------


HELPER_RESULTS = """
import os
from batch_payouts.forked import Forked
helper = Forked.start(lambda: {"rows": 3, "parent": os.getppid()})
print(helper.result() == {"rows": 3, "parent": os.getpid()})
def fails():
    raise RuntimeError("in the helper")
print(Forked.start(fails).result())
"""


def test_a_helper_gives_back_what_its_function_returned_or_none_when_it_failed_and_prints_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HELPER_RESULTS], capture_output=True, text=True, check=True, timeout=60
    )
    assert (done.stdout, done.stderr) == ("True\nNone\n", "")


HELPER_OUTLIVES_NOTHING = """
import os, sys, time
from batch_payouts.forked import Forked
helper = Forked.start(lambda: time.sleep(60))
print(helper.pid, flush=True)
time.sleep(60)
"""


def test_a_helper_dies_with_the_process_that_made_it() -> None:
    with subprocess.Popen([sys.executable, "-c", HELPER_OUTLIVES_NOTHING], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        helper = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel's kill of an orphan takes a moment, not a fixed time
    assert not _alive(helper), "the helper outlived the process that made it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # reaped by init soon after: a zombie is dead
        return stat.read().split(")")[-1].split()[0] != "Z"


# -- a results file from the ledger ----------------------------------------------------------------------

RESULTS_IN_A_PROCESS = """
import sys
from pathlib import Path
from batch_payouts.engine import results
from batch_payouts.ledger import Ledger
ledger = Ledger(Path(sys.argv[1]))
results.write_results(ledger, "b1", Path(sys.argv[2]), split_from=int(sys.argv[3]))
"""


def test_a_results_workbook_read_in_two_parts_is_the_one_read_whole(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.sqlite3"
    with Ledger(ledger_path) as ledger:
        kinds: list[dict[str, object]] = [
            {"state": state, "currency": currency, "amount": amount, "fee": None, "received": "amount"}
            for state in ROUTES
            for currency in ("KES", "UGX", "GHS")
            for amount in (Decimal("100.50"), Decimal(7))
        ]
        store(ledger, "b1", [*kinds, {"country": "ZZ", "currency": "", "amount": "abc"}] * 4)
    out: dict[str, Path] = {}
    for name, split_from in (("whole", 10**9), ("parts", 2)):
        out[name] = tmp_path / f"{name}.xlsx"
        command = [sys.executable, "-c", RESULTS_IN_A_PROCESS, str(ledger_path), str(out[name]), str(split_from)]
        subprocess.run(command, check=True, timeout=120, cwd=ROOT)
    whole, two = parts(out["whole"]), parts(out["parts"])
    assert two["xl/worksheets/sheet1.xml"] == whole["xl/worksheets/sheet1.xml"]
    assert openpyxl.load_workbook(out["parts"])["Results"].max_row == 1 + len(kinds) * 4 + 4


def test_the_later_rows_are_read_through_a_connection_that_cannot_write(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        store(ledger, "b1", [{"country": "KE", "currency": "KES", "amount": "1"}] * 5)
        reader = Ledger(ledger.path, read_only=True)
        try:
            assert [r.row for r in reader.stream_rows("b1", rows=(4, None))] == [4, 5, 6]
            assert [r.row for r in reader.stream_rows("b1", rows=(3, 5))] == [3, 4]
            assert (reader.row_number_at("b1", 2), reader.row_number_at("b1", 5)) == (4, None)
            with pytest.raises(Exception, match="readonly"):
                reader.db.execute("DELETE FROM rows")
        finally:
            reader.close()

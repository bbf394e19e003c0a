"""A long table is written by two processes at once (a helper writes the later rows) and the
workbook is the one a single process writes: the same cells, looks, heights and order. When the
helper fails, this process writes those rows itself. Each workbook is written by a fresh process
(``tests/two_writers.py``), as the command line writes one."""

from __future__ import annotations

import functools
import importlib.util
import io
import operator
import os
import signal
import subprocess
import sys
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

import batch_payouts
from batch_payouts.engine import results
from batch_payouts.helper import HelperProcess
from batch_payouts.ledger import Ledger
from batch_payouts.model import SETTLED_STATES
from batch_payouts.sheets import xlsx_write
from batch_payouts.sheets.spec import LaterRows, SheetSpec
from batch_payouts.sheets.xlsx_write import write_workbook
from tests.test_large_batches import ROUTES, store

SCRIPT = Path(__file__).resolve().parent / "two_writers.py"
ROOT = Path(__file__).resolve().parent.parent


def written(tmp_path: Path, how: str, order: str = "same", rows: int = 600) -> tuple[Path, str]:
    """The workbook, and what the writing process printed."""
    out = tmp_path / f"{how}-{order}-{rows}.xlsx"
    command = [sys.executable, str(SCRIPT), how, order, str(rows), str(out)]
    done = subprocess.run(command, check=True, timeout=120, cwd=ROOT, capture_output=True, text=True)
    assert done.stderr == ""
    return out, done.stdout


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
    (two, said), (one, _) = written(tmp_path, "two"), written(tmp_path, "one")
    assert said == "joined 300 rows\n", "the helper wrote the later half"
    assert parts(two) == parts(one)


def test_cells_of_the_helper_keep_their_looks_when_it_met_them_in_another_order(tmp_path: Path) -> None:
    (two, said), (one, _) = written(tmp_path, "two", "other"), written(tmp_path, "one", "other")
    assert said == "joined 300 rows\n"
    assert cells(two) == cells(one)
    with zipfile.ZipFile(two) as archive:
        assert b'<dimension ref="A1:F601"/>' in archive.read("xl/worksheets/sheet1.xml")


def test_a_long_later_part_is_renumbered_piece_by_piece_without_cutting_a_cell(tmp_path: Path) -> None:
    (two, said), (one, _) = written(tmp_path, "two", "other", 12_000), written(tmp_path, "one", "other", 12_000)
    assert said == "joined 6000 rows\n"
    assert parts(two)["xl/worksheets/sheet1.xml"] == parts(one)["xl/worksheets/sheet1.xml"]


@pytest.mark.parametrize("how", ["helper-raises", "helper-killed"])
def test_when_the_helper_fails_this_process_writes_its_rows(tmp_path: Path, how: str) -> None:
    (failed, said), (one, _) = written(tmp_path, how), written(tmp_path, "one")
    assert said == "", "nothing of the helper's was used"
    assert parts(failed) == parts(one)


def test_when_the_first_part_is_short_the_later_rows_follow_it_with_no_gap(tmp_path: Path) -> None:
    (short, said), (one, _) = written(tmp_path, "short"), written(tmp_path, "one")
    assert said == "", "the helper's rows would have started one row too low"
    missing = 1 + 299  # the header, then the first part's last row, which it did not hold
    values = [[cell[0] for cell in row[1:]] for row in cells(short)]
    assert values == [[cell[0] for cell in row[1:]] for row in cells(one)[:missing] + cells(one)[missing + 1 :]]


def test_when_the_helper_wrote_another_number_of_rows_than_said_its_part_is_not_used(tmp_path: Path) -> None:
    (miscounted, said), (one, _) = written(tmp_path, "miscounted"), written(tmp_path, "one")
    assert said == ""
    assert [row[1:] for row in cells(miscounted)] == [row[1:] for row in cells(one)[:-1]]


def test_rows_that_cannot_be_sent_to_a_helper_are_written_here(tmp_path: Path) -> None:
    rows = [[f"row {i}"] for i in range(10)]
    later = LaterRows(4, 6, lambda: iter(rows[4:]))  # a lambda does not pickle
    write_workbook(tmp_path / "t.xlsx", [SheetSpec("Results", ["h"], rows[:4], later=later)])
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx")["Results"]
    assert [c.value for (c,) in ws.iter_rows()] == ["h", *(f"row {i}" for i in range(10))]


# -- the helper process ----------------------------------------------------------------------------------


def test_a_helper_gives_back_what_its_job_returned_or_none_when_it_failed(capfd: pytest.CaptureFixture[str]) -> None:
    adding = HelperProcess.start(functools.partial(operator.add, 40, 2))
    assert adding is not None and adding.result() == 42
    failing = HelperProcess.start(functools.partial(int, "not a number"))
    assert failing is not None and failing.result() is None
    assert HelperProcess.start(lambda: 1) is None, "a job that does not pickle starts no helper"
    assert capfd.readouterr() == ("", ""), "a helper never prints"


HELPER_OUTLIVES_NOTHING = """
import functools, time
from batch_payouts.helper import HelperProcess
helper = HelperProcess.start(functools.partial(time.sleep, 60))
print(helper._process.pid, flush=True)
time.sleep(60)
"""


def test_a_helper_dies_with_the_process_that_started_it() -> None:
    command = [sys.executable, "-c", HELPER_OUTLIVES_NOTHING]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as parent:
        assert parent.stdout is not None
        helper = int(parent.stdout.readline())
        time.sleep(0.5)  # the helper has set itself to die with its parent by then
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel's kill of an orphan takes a moment, not a fixed time
    assert not _alive(helper), "the helper outlived the process that started it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # reaped by init soon after: a zombie is dead
        return stat.read().split(")")[-1].split()[0] != "Z"


# -- a results file from the ledger ----------------------------------------------------------------------


def test_a_results_workbook_read_in_two_parts_is_the_one_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    joined: list[int] = []
    append = xlsx_write._append_part

    def spy(ws: Any, looks: Any, part: Any, next_row: int) -> None:
        joined.append(part.count)
        append(ws, looks, part, next_row)

    monkeypatch.setattr(xlsx_write, "_append_part", spy)
    kinds: list[dict[str, object]] = [
        {"state": state, "currency": currency, "amount": amount, "fee": None, "received": "amount"}
        for state in ROUTES
        if state in SETTLED_STATES
        for currency in ("KES", "UGX", "GHS")
        for amount in (Decimal("100.50"), Decimal(7))
    ]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        store(ledger, "b1", [*kinds, {"country": "ZZ", "currency": "", "amount": "abc"}] * 4)
        results.write_results(ledger, "b1", tmp_path / "whole.xlsx", split_from=10**9)
        assert joined == []
        results.write_results(ledger, "b1", tmp_path / "parts.xlsx", split_from=2)
    rows = (len(kinds) + 1) * 4
    assert joined == [rows - rows // 2], "the helper wrote the later half"
    whole, two = parts(tmp_path / "whole.xlsx"), parts(tmp_path / "parts.xlsx")
    assert two["xl/worksheets/sheet1.xml"] == whole["xl/worksheets/sheet1.xml"]
    assert openpyxl.load_workbook(tmp_path / "parts.xlsx")["Results"].max_row == 1 + rows


def test_a_batch_that_may_still_change_is_read_whole_in_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr(xlsx_write, "_start_part", lambda *args: started.append(args))
    rows: list[dict[str, object]] = [
        {"state": state, "currency": "KES", "amount": Decimal(5), "fee": None, "received": "none"} for state in ROUTES
    ]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        store(ledger, "b1", rows * 3)
        results.write_results(ledger, "b1", tmp_path / "running.xlsx", split_from=2)
    assert started == [], "rows ready or in flight: no second read a moment later"
    assert openpyxl.load_workbook(tmp_path / "running.xlsx")["Results"].max_row == 1 + len(rows) * 3


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


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_the_helpers_rows_are_read_in_pieces_of_whole_rows(size: int) -> None:
    rows = "".join(f'<row r="{r}"><c r="A{r}" s="{r % 3}"><v>{r}</v></c></row>' for r in range(2, 60))
    pieces = list(xlsx_write._whole_rows(io.StringIO(rows), size))
    assert "".join(pieces) == rows
    assert all(piece.endswith("</row>") for piece in pieces)


def test_a_helper_is_stopped_when_waiting_for_it_is_interrupted() -> None:
    helper = HelperProcess.start(functools.partial(time.sleep, 60))
    assert helper is not None

    def interrupt(signum: int, frame: object) -> None:
        raise TimeoutError("interrupted")  # as Ctrl-C's KeyboardInterrupt would be, while waiting

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(TimeoutError):
            helper.result()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert helper._process.returncode == -signal.SIGKILL, "stopped and reaped, not left running"


def test_a_helper_runs_the_code_of_the_process_that_started_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoy = tmp_path / "batch_payouts"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('another copy of the package ran')\n")
    (tmp_path / "functools.py").write_text("raise SystemExit('a file of the working folder ran')\n")
    monkeypatch.chdir(tmp_path)  # wherever the tool is run from, whatever stands there
    monkeypatch.delenv("PYTHONPATH", raising=False)
    helper = HelperProcess.start(functools.partial(importlib.util.find_spec, "batch_payouts"))
    assert helper is not None
    found = helper.result()
    assert found is not None and found.origin == batch_payouts.__file__


def test_ctrl_c_while_both_write_stops_both_and_leaves_no_scratch_files(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = [sys.executable, str(SCRIPT), "two", "same", "100000", str(tmp_path / "t.xlsx")]
    env = {**os.environ, "TMPDIR": str(scratch)}
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as writer:
        helper = _first_child(writer.pid)
        os.killpg(writer.pid, signal.SIGINT)  # what Ctrl-C at a terminal sends: the whole foreground group
        _, errors = writer.communicate(timeout=30)
    assert writer.returncode != 0 and errors.count("KeyboardInterrupt") == 1, "only this process was interrupted"
    assert not _alive(helper), "the helper was stopped"
    assert list(scratch.iterdir()) == [] and not (tmp_path / "t.xlsx").exists()


def _first_child(pid: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            found = children.read().split()
        if found:
            return int(found[0])
        time.sleep(0.05)  # the helper starts once the first rows are read
    raise AssertionError("no helper was started")

"""Nothing executable in any output, exact round trips, and no secret anywhere."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import time
import urllib.parse
import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_payouts.cli import main
from batch_payouts.sandbox import SandboxClock, SandboxState, serve_in_thread
from batch_payouts.sheets import frames
from batch_payouts.sheets.read import read_sheet
from batch_payouts.sheets.write import escape_cell, unescape_cell, write_csv, write_csv_columns
from tests.figures import record
from tests.support import SandboxProcess, tool_command, tool_env

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "canary-api-key-9f3e1c"
SECRET = "canary-webhook-secret-0b7d"
PAYLOADS = [
    '=HYPERLINK("http://evil.example","click")',
    "@SUM(1+1)",
    "+cmd|' /C calc'!A0",
    "-1+1",
    "\tleading tab",
    "\rcarriage",
    "＝1+1",
    "'=already quoted",
    "plain name",
]
DANGER = ("=", "+", "-", "@", "\t", "\r")


def seeded_file(path: Path) -> Path:
    rows = [["name", "phone", "country", "amount", "currency", "narration", "cost centre"]]
    for i, payload in enumerate(PAYLOADS):
        rows.append([payload, f"+2547120001{i:02d}", "KE", str(100 + i), "KES", payload, payload])
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


def test_escaping_round_trips_exactly() -> None:
    for text in [*PAYLOADS, "", "'", "''", "-", "+254712345678", "-1500", "1500.50"]:
        assert unescape_cell(escape_cell(text)) == text
    assert escape_cell("+254712345678") == "+254712345678" and escape_cell("-1500") == "-1500"


# cells a spreadsheet or a CSV writer treats specially, and text around them
CELL_TEXT = st.text(
    st.sampled_from([*"=+-@'\t\r\n\x00\",; .0123456789aZé", "＝", "＋", "﹣", "\u00a0", "\u2028", "👍"]),
    max_size=8,
) | st.sampled_from(["+254712345678", "-1500", "1500.50", "-1500\n", "+2547123\n", "=1+1", ""])


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.lists(CELL_TEXT, min_size=2, max_size=2), max_size=6),
    numbers=st.lists(st.integers(-(2**40), 2**40), min_size=6, max_size=6),
    headers=st.lists(CELL_TEXT, min_size=3, max_size=3),
)
def test_a_table_written_as_columns_is_byte_for_byte_the_table_written_as_rows(
    tmp_path_factory: pytest.TempPathFactory, texts: list[list[str]], numbers: list[int], headers: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("columns")
    rows = [[first, number, second] for (first, second), number in zip(texts, numbers, strict=False)]
    write_csv(folder / "rows.csv", headers, rows)
    write_csv_columns(
        folder / "columns.csv", headers, [list(column) for column in zip(*rows, strict=True)] or [[], [], []]
    )
    assert (folder / "columns.csv").read_bytes() == (folder / "rows.csv").read_bytes()


def test_a_table_longer_than_one_chunk_is_written_whole_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "WRITE_CHUNK", 2)
    rows = [[f"=row {i}", i, "" if i % 3 else "+254712345678"] for i in range(7)]
    write_csv(tmp_path / "rows.csv", ["a", "b", "c"], rows)
    write_csv_columns(tmp_path / "columns.csv", ["a", "b", "c"], [list(column) for column in zip(*rows, strict=True)])
    assert (tmp_path / "columns.csv").read_bytes() == (tmp_path / "rows.csv").read_bytes()
    assert (tmp_path / "columns.csv").read_text(encoding="utf-8-sig").splitlines()[1:3] == [
        "'=row 0,0,+254712345678",
        "'=row 1,1,",
    ]


def test_no_executable_cell_in_any_output_and_retry_reads_back_the_originals(tmp_path: Path) -> None:
    data = seeded_file(tmp_path / "p.csv")
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    with serve_in_thread(state) as sb:
        for suffix in ("csv", "xlsx"):
            result = CliRunner().invoke(
                main,
                [
                    "run",
                    str(data),
                    "--base-url",
                    sb.base_url,
                    "--yes",
                    "--quiet",
                    "--state",
                    str(tmp_path / "l.db"),
                    "--results",
                    str(tmp_path / f"out.{suffix}"),
                    "--poll-interval",
                    "0.2",
                ],
                env={"KOTANI_API_KEY": KEY},
            )
            assert result.exit_code == 0, result.output
    wb = openpyxl.load_workbook(tmp_path / "out.xlsx")
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    executable = [
        c.coordinate
        for c in cells
        if c.data_type == "f"
        or (
            isinstance(c.value, str)
            and c.value.startswith(DANGER)
            and not c.value.lstrip("+-").replace(".", "").isdigit()
        )
    ]
    csv_text = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    executable += [
        cell
        for row in csv.reader(io.StringIO(csv_text))
        for cell in row
        if cell.startswith(DANGER) and not cell.lstrip("+-").replace(".", "").isdigit()
    ]
    record("executable_output_cells", len(executable))
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert not [
        c.value
        for c in cells
        if isinstance(c.value, str)
        and c.value.startswith(DANGER)
        and c.value not in ("-",)
        and not c.value.lstrip("+-").replace(".", "").isdigit()
    ]
    text = (tmp_path / "out.csv").read_text(encoding="utf-8-sig")
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(DANGER) or cell.lstrip("+-").replace(".", "").isdigit(), cell
    for suffix in ("csv", "xlsx"):
        sheet = read_sheet(tmp_path / f"out.{suffix}")
        names = [unescape_cell(r.cells["name"]) for r in sheet.rows]
        centres = [unescape_cell(r.cells["cost centre"]) for r in sheet.rows]
        record("round_trip_differences", sum(a != b for a, b in zip(names, PAYLOADS, strict=True)))
        assert names == PAYLOADS, suffix
        assert centres == names


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        raw.hex().encode(),
        urllib.parse.quote(secret).encode(),
        json.dumps(secret).encode()[1:-1],
    ]


def _artifact_bytes(paths: list[Path]) -> bytes:
    out = b""
    for path in paths:
        if not path.exists():
            continue
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in z.namelist())
        out += data
    return out


@pytest.mark.slow  # a real process watched from outside (its command line, its files)
def test_no_secret_in_any_artifact_and_private_files(tmp_path: Path) -> None:
    data = seeded_file(tmp_path / "p.csv")
    with SandboxProcess(KEY, speed=20, webhook_secret=SECRET) as sandbox:
        env = tool_env(KEY, sandbox.url, KOTANI_WEBHOOK_SECRET=SECRET)
        args = [
            "run",
            str(data),
            "--state",
            str(tmp_path / "l.db"),
            "--yes",
            "--events",
            str(tmp_path / "ev.jsonl"),
            "--results",
            str(tmp_path / "out.xlsx"),
            "--poll-interval",
            "0.2",
        ]
        proc = subprocess.Popen(tool_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes() if Path(f"/proc/{proc.pid}").exists() else b""
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        bad = subprocess.run(
            tool_command("run", str(tmp_path / "missing.csv"), "--state", str(tmp_path / "l.db")),
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    artifacts = (
        out
        + err
        + cmdline
        + bad.stdout
        + bad.stderr
        + _artifact_bytes([tmp_path / "l.db", tmp_path / "l.db-wal", tmp_path / "ev.jsonl", tmp_path / "out.xlsx"])
    )
    hits = [form for s in (KEY, SECRET) for form in _forms(s) if form in artifacts]
    record("secret_hits", len(hits))
    assert hits == []
    assert (tmp_path / "l.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out.xlsx").stat().st_mode & 0o777 == 0o600

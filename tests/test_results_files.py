"""Results an auditor accepts: the workbook, the CSV, the final outcome across retries and the PDF,
all from batches paid through the engine against the sandbox, checked against the ledger and the
sandbox's own books."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import re
import shutil
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pypdf
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from batch_payouts.cli import main
from batch_payouts.engine import results
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from batch_payouts.sheets.report import Line, totals
from batch_payouts.vocabulary import STATE_WORDS
from tests.support import FAST

KEY = "results-key-5d1"
HEADER = "name,phone,country,network,amount,currency\n"
EARLIER = "Earlier Pay,+254712000301,KE,,100,KES\n"
# Row number in the file -> (cells, the word the row must end with).
ROWS = {
    2: ("Paid Kenya,0712000302,KE,,1500,KES", "paid"),
    3: ("Paid Uganda,+256772000303,UG,,45000,UGX", "paid"),
    4: ("Failed First,+254712000304,KE,,900,KES", "failed"),
    5: ("Held Review,+254712000305,KE,,700,KES", "held (needs a decision)"),
    6: ("Waiting Long,+254712000306,KE,,600,KES", "waiting for the provider"),
    7: ("Ghana Unsent,+233241000307,GH,MTN,50.25,GHS", "not sent yet"),
    8: ("Earlier Pay,+254712000301,KE,,100,KES", "not paid (repeat)"),
    9: ("Bad Amount,+254712000309,KE,,abc,KES", "invalid"),
    10: ("Bad Phone,0712,KE,,250,KES", "invalid"),
}
SCRIPTS = {
    "+254712000304": [(0.5, "FAILED")],
    "+254712000305": [(0.5, "REQUIRE_REVIEW")],
    "+254712000306": [(0.5, "ON_HOLD_BY_PARTNER")],
}
HTTP_TERMS = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) /|/api/v\d|answered \d{3}|\b\w+(Error|Timeout)\b|HTTP")


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"KOTANI_API_KEY": KEY}, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def batch_of(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("batch "))


@dataclass
class Scenario:
    tmp: Path
    state: SandboxState
    batch: str
    retry: str
    xlsx: Path
    csv: Path

    def ledger(self) -> Ledger:
        return Ledger(self.tmp / "l.db")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """One earlier batch paying +254712000301, then a file whose rows end in every word; row 4 is
    then retried and paid."""
    tmp = tmp_path_factory.mktemp("results")
    state = SandboxState(
        api_key=KEY, clock=SandboxClock(speed=20), balances={"GHS": Decimal(0)}, knobs=Knobs(scripts=SCRIPTS)
    )
    earlier, data = tmp / "earlier.csv", tmp / "payouts.csv"
    earlier.write_text(HEADER + EARLIER)
    data.write_text(HEADER + "".join(cells + "\n" for cells, _ in ROWS.values()))
    where = ["--base-url", "", "--state", str(tmp / "l.db")]
    with serve_in_thread(state) as sb:
        where[1] = sb.base_url
        assert cli("run", str(earlier), *where, *FAST)[0] == 0
        code, out = cli(
            "run",
            str(data),
            *where,
            *FAST,
            "--allow-partial",
            "--wait-timeout",
            "3",
            "--results",
            str(tmp / "payouts.results.xlsx"),
        )
        assert code in (3, 4), out
        batch = batch_of(out)
        ledger = Ledger(tmp / "l.db")
        try:
            results.write_results(ledger, batch, tmp / "payouts.results.csv")
        finally:
            ledger.close()
        state.knobs.scripts = {k: v for k, v in SCRIPTS.items() if k != "+254712000304"}
        code, out = cli(
            "retry",
            batch,
            "--cooloff",
            "0",
            *where,
            *FAST,
            "--wait-timeout",
            "3",
            "--results",
            str(tmp / "retry.results.xlsx"),
        )
        retry = next(line.split()[1] for line in out.splitlines() if line.startswith("batch r"))
    return Scenario(tmp, state, batch, retry, tmp / "payouts.results.xlsx", tmp / "payouts.results.csv")


def sheet_dicts(ws: Any) -> list[dict[str, Any]]:
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def cover_totals(ws: Any) -> dict[str, dict[str, tuple[Any, Any]]]:
    """The Cover's totals table: line label -> currency -> (rows, amount)."""
    grid = [list(r) for r in ws.iter_rows(values_only=True)]
    start = next(i for i, r in enumerate(grid) if r[0] == "Totals per currency")
    currencies = [str(c).removesuffix(" rows") for c in grid[start][1::2] if c]
    table: dict[str, dict[str, tuple[Any, Any]]] = {}
    for r in grid[start + 1 :]:
        if not r[0]:
            break
        table[r[0]] = {cur: (r[1 + 2 * i], r[2 + 2 * i]) for i, cur in enumerate(currencies)}
    return table


def provider_paid(state: SandboxState, batch: str) -> list[dict[str, Any]]:
    return [p for p in state.ledger()["payouts"] if p["reference"].startswith(batch) and p["status"] == "SUCCESSFUL"]


# -- the rows end where the file says ------------------------------------------------------------------


def test_every_row_ends_in_its_word_and_the_ledger_agrees(scenario: Scenario) -> None:
    ws = openpyxl.load_workbook(scenario.xlsx)["Results"]
    by_row = {r["row"]: r for r in sheet_dicts(ws)}
    assert {n: r["status"] for n, r in by_row.items()} == {n: word for n, (_, word) in ROWS.items()}
    with scenario.ledger() as ledger:
        states = {r.row: r.state for r in ledger.rows(scenario.batch)}
    assert states == {
        2: RowState.SUCCEEDED,
        3: RowState.SUCCEEDED,
        4: RowState.FAILED,
        5: RowState.NEEDS_REVIEW,
        6: RowState.SUBMITTED,
        7: RowState.READY,
        8: RowState.BLOCKED,
        9: RowState.INVALID,
        10: RowState.INVALID,
    }


def test_results_sheet_formats_dates_panes_filter_and_print_setup(scenario: Scenario) -> None:
    ws = openpyxl.load_workbook(scenario.xlsx)["Results"]
    headers = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(headers)}
    assert headers[:6] == ["name", "phone", "country", "network", "amount", "currency"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(headers))}{len(ROWS) + 1}"
    assert all(ws.cell(row=1, column=c).font.b for c in range(1, len(headers) + 1))
    assert ws.page_setup.orientation == "landscape"
    # one page wide (a missing fitToWidth is 1, the file format's default), as many pages tall as it takes
    assert (ws.page_setup.fitToWidth or 1, ws.page_setup.fitToHeight) == (1, 0)
    assert ws.page_setup.paperSize == 9, "A4"
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.print_title_rows == "$1:$1"
    kes, ghs = 2, 7  # sheet rows of file rows 2 (KES) and 7 (GHS): the file's rows, in order
    assert ws.cell(row=kes, column=col["result_amount"]).value == 1500
    assert ws.cell(row=kes, column=col["result_amount"]).number_format == "#,##0"
    assert ws.cell(row=kes, column=col["fee"]).number_format == "#,##0"
    assert ws.cell(row=ghs, column=col["result_amount"]).value == pytest.approx(50.25)
    assert ws.cell(row=ghs, column=col["result_amount"]).number_format == "#,##0.00"
    sent = ws.cell(row=kes, column=col["sent_at_utc"])
    assert isinstance(sent.value, dt.datetime) and sent.number_format == "yyyy-mm-dd hh:mm:ss"
    assert isinstance(ws.cell(row=kes, column=col["final_at_utc"]).value, dt.datetime)


def test_results_carry_the_number_paid_the_provider_reference_and_receipt(scenario: Scenario) -> None:
    rows = {r["row"]: r for r in sheet_dicts(openpyxl.load_workbook(scenario.xlsx)["Results"])}
    assert rows[2]["phone"] == "0712000302" and rows[2]["paid_to"] == "+254712000302"
    paid = {p["reference"]: p for p in provider_paid(scenario.state, scenario.batch)}
    assert set(paid) == {rows[2]["reference_id"], rows[3]["reference_id"]}
    for n in (2, 3):
        assert rows[n]["receipt"].startswith("SK") and rows[n]["provider_reference"]
        assert Decimal(str(rows[n]["fee"])) == paid[rows[n]["reference_id"]]["fee"]


def test_every_unpaid_row_has_a_plain_reason_and_failed_rows_no_fee(scenario: Scenario) -> None:
    wb = openpyxl.load_workbook(scenario.xlsx)
    rows = {r["row"]: r for r in sheet_dicts(wb["Results"])}
    assert all(rows[n]["reason"] for n in ROWS if ROWS[n][1] != "paid")
    assert rows[4]["reason"] == "scripted", "the provider's own message, word for word"
    assert rows[6]["reason"] == "sent; the provider has not given a final answer yet (status ON_HOLD_BY_PARTNER)"
    assert rows[7]["reason"].startswith("the payout balance does not cover it")
    assert rows[8]["reason"].startswith("already paid KES 100 to this payee in batch ")
    assert rows[9]["reason"] == "amount: the amount is not a number" and rows[9]["result_amount"] == "abc"
    with scenario.ledger() as ledger:
        assert ledger.row(scenario.batch, 4).fee is not None, "the provider did report a fee on the failed row"
    assert rows[4]["fee"] is None and rows[4]["received"] is None
    texts = [str(c.value) for ws in wb.worksheets for r in ws.iter_rows() for c in r if c.value is not None]
    assert [t for t in texts if HTTP_TERMS.search(t)] == []


def test_cover_totals_reconcile_with_the_ledger_and_the_provider(scenario: Scenario) -> None:
    wb = openpyxl.load_workbook(scenario.xlsx)
    assert wb.active.title == "Cover" and wb.sheetnames[0] == "Results"
    table = cover_totals(wb["Cover"])
    words = [
        "paid",
        "failed",
        "held (needs a decision)",
        "waiting for the provider",
        "not sent yet",
        "not paid (repeat)",
        "invalid",
    ]
    for cur, in_file in table["Rows in file (the lines above)"].items():
        assert in_file[0] == sum(table[w][cur][0] for w in words)
        assert in_file[1] == sum(Decimal(str(table[w][cur][1])) for w in words)
    assert sum(v[0] for v in table["Rows in file (the lines above)"].values()) == len(ROWS)
    assert table["paid"]["KES"] == (1, 1500) and table["paid"]["UGX"] == (1, 45000)
    assert table["failed"]["KES"] == (1, 900) and table["held (needs a decision)"]["KES"] == (1, 700)
    assert table["waiting for the provider"]["KES"] == (1, 600)
    assert table["not sent yet"]["GHS"] == (1, pytest.approx(50.25))
    assert table["not paid (repeat)"]["KES"] == (1, 100)
    assert table["invalid"]["KES"] == (2, 250), "the unreadable amount is counted in rows, not taken as 0"
    assert table["of which invalid with an unreadable amount"]["KES"] == (1, "not counted")
    paid = provider_paid(scenario.state, scenario.batch)
    for cur in ("KES", "UGX"):
        mine = [p for p in paid if p["currency"] == cur]
        assert Decimal(str(table["Fees (paid rows)"][cur][1])) == sum(p["fee"] for p in mine)
        assert Decimal(str(table["Total debited from the wallet"][cur][1])) == sum(p["debit"] for p in mine)
        assert Decimal(str(table["Total received by recipients"][cur][1])) == sum(p["amount"] - p["fee"] for p in mine)
    notes = [str(r[0]) for r in wb["Cover"].iter_rows(values_only=True) if r and r[0]]
    assert any("KES: row 9 invalid with an amount that cannot be read" in n for n in notes)


def test_cover_names_the_run_the_file_and_its_digest(scenario: Scenario) -> None:
    import hashlib

    grid = {r[0]: r[1] for r in openpyxl.load_workbook(scenario.xlsx)["Cover"].iter_rows(values_only=True) if r[0]}
    with scenario.ledger() as ledger:
        env = ledger.environment(ledger.batch(scenario.batch).env_id)
    assert env is not None and env.host.startswith("127.0.0.1:") and env.account
    assert (grid["Environment"], grid["Host"], grid["Account"]) == (env.kind, env.host, env.account)
    assert grid["Batch"] == scenario.batch
    assert grid["Source file SHA-256"] == hashlib.sha256((scenario.tmp / "payouts.csv").read_bytes()).hexdigest()
    assert grid["Run by"] == getpass.getuser()  # the command line's user; approvals come from the console
    assert grid["Approved by"] == "not recorded"
    assert grid["Written by"].startswith("batch-payouts ")
    for key in ("Batch created", "First payout sent", "Last answer from the provider"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", grid[key]), key


def test_problems_sheet_lists_every_unpaid_row_with_what_to_do(scenario: Scenario) -> None:
    ws = openpyxl.load_workbook(scenario.xlsx)["Problems"]
    problems = {r["Row"]: r for r in sheet_dicts(ws)}
    assert set(problems) == {n for n, (_, word) in ROWS.items() if word != "paid"}
    assert problems[4]["Name"] == "Failed First" and problems[4]["Phone or account"] == "+254712000304"
    assert problems[4]["Amount"] == 900 and ws.cell(row=2, column=4).number_format == "#,##0"
    assert problems[9]["Amount"] == "abc (unreadable)"
    assert all(p["Reason"] and p["What to do"] for p in problems.values())
    assert ws.freeze_panes == "A2" and ws.print_title_rows == "$1:$1"


def test_the_chart_categories_name_currency_and_status(scenario: Scenario) -> None:
    ws = openpyxl.load_workbook(scenario.xlsx)["Summary"]
    (chart,) = ws._charts
    ref = chart.series[0].cat.strRef.f if chart.series[0].cat.strRef else chart.series[0].cat.numRef.f
    first, last = (int(x) for x in re.findall(r"\$(\d+)", ref))
    labels = [ws.cell(row=r, column=1).value for r in range(first, last + 1)]
    assert labels == [
        "GHS not sent",
        "KES paid",
        "KES failed",
        "KES held",
        "KES waiting",
        "KES repeat",
        "KES invalid",
        "UGX paid",
    ]
    counts = [ws.cell(row=r, column=4).value for r in range(first, last + 1)]
    assert counts == [1, 1, 1, 1, 1, 1, 2, 1]


def test_csv_results_carry_the_same_columns_and_values_as_the_results_sheet(scenario: Scenario) -> None:
    sheet = list(openpyxl.load_workbook(scenario.xlsx)["Results"].iter_rows(values_only=True))
    lines = list(csv.reader(scenario.csv.read_text(encoding="utf-8-sig").splitlines()))
    assert lines[0] == list(sheet[0])
    volatile = {lines[0].index(h) for h in ("sent_at_utc", "final_at_utc")}

    def text(value: Any) -> str:
        if value is None:
            return ""
        return str(value)

    for got, want in zip(lines[1:], sheet[1:], strict=True):
        assert [g for i, g in enumerate(got) if i not in volatile] == [
            text(w) if not isinstance(w, float) else got[i] for i, w in enumerate(want) if i not in volatile
        ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[1][lines[0].index("sent_at_utc")])


# -- after retries: one line per row of the original file -------------------------------------------------


def test_final_outcome_has_one_line_per_row_of_the_file_and_the_batches_it_went_through(scenario: Scenario) -> None:
    with scenario.ledger() as ledger:
        path = results.write_final_results(ledger, scenario.retry, scenario.tmp / "final.csv")
        xlsx = results.write_final_results(ledger, scenario.batch, scenario.tmp / "final.xlsx")
        retried = ledger.row(scenario.retry, 4)
    rows = {int(r["row"]): r for r in csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines())}
    assert sorted(rows) == sorted(ROWS)
    assert retried.state is RowState.SUCCEEDED
    assert rows[4]["status"] == "paid" and rows[4]["reference_id"] == retried.reference
    assert rows[4]["batches"] == f"{scenario.batch} > {scenario.retry}" and rows[4]["attempts"] == "2"
    assert rows[4]["name"] == "Failed First" and rows[4]["fee"] and rows[4]["reason"] == ""
    assert rows[2]["batches"] == scenario.batch and rows[2]["status"] == "paid"
    assert {n: r["status"] for n, r in rows.items() if n != 4} == {n: w for n, (_, w) in ROWS.items() if n != 4}
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["Final outcome", "Cover", "Problems", "Summary"]
    table = cover_totals(wb["Cover"])
    assert table["paid"]["KES"] == (2, 2400) and table["failed"]["KES"] == (0, 0)
    cover = {r[0]: r[1] for r in wb["Cover"].iter_rows(values_only=True) if r[0]}
    assert cover["Batches (first run, then retries)"] == f"{scenario.batch} > {scenario.retry}"


# -- the one-page PDF -------------------------------------------------------------------------------------


def test_pdf_summary_is_one_page_with_the_totals_and_the_problem_rows(scenario: Scenario) -> None:
    with scenario.ledger() as ledger:
        pdf = results.write_summary_pdf(ledger, scenario.batch, scenario.tmp / "summary.pdf")
    reader = pypdf.PdfReader(pdf)
    assert len(reader.pages) == 1
    text = " ".join(reader.pages[0].extract_text().split())
    with scenario.ledger() as ledger:
        env = ledger.environment(ledger.batch(scenario.batch).env_id)
    assert env is not None
    assert f"Payout summary — {env.kind}" in text  # a loopback host is not the provider's sandbox: LIVE
    assert f"host {env.host} · account {env.account}" in text
    paid = provider_paid(scenario.state, scenario.batch)
    kes_fee = sum(p["fee"] for p in paid if p["currency"] == "KES")
    # KES rows 2, 4, 5, 6, 8, 9, 10: in file, paid, failed, held, waiting, not sent, repeat, invalid
    assert "KES rows 7 1 1 1 1 0 1 2" in text
    assert f"amount 4,050 1,500 900 700 600 0 100 250 {kes_fee:,} 1,500 {1500 - kes_fee:,}" in text
    assert "GHS rows 1 0 0 0 0 1 0 0" in text and "amount 50.25 0.00 0.00 0.00 0.00 50.25 0.00 0.00" in text
    assert "Rows not paid: 7" in text
    assert "Failed First" in text and "abc (unreadable)" in text and "Held Review" in text
    assert "Approved by not recorded" in text


def test_pdf_summary_renders_to_a_picture(scenario: Scenario) -> None:
    with scenario.ledger() as ledger:
        pdf = results.write_summary_pdf(ledger, scenario.batch, scenario.tmp / "render.pdf")
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm is missing: apt-get install -y poppler-utils"
    subprocess.run(
        [pdftoppm, "-png", "-r", "40", "-singlefile", str(pdf), str(scenario.tmp / "render")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    png = (scenario.tmp / "render.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > height > 100, "one landscape page"


def test_total_debited_follows_the_fee_arrangement(tmp_path: Path) -> None:
    """Fee paid from the wallet: debited = amount + fee, received = amount (the sandbox's books agree)."""
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=Knobs(fee_mode="integrator"))
    data = tmp_path / "p.csv"
    data.write_text(HEADER + "A,+254712000401,KE,,1000,KES\nB,+256772000402,UG,,20000,UGX\n")
    with serve_in_thread(state) as sb:
        code, out = cli(
            "run",
            str(data),
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
            "--results",
            str(tmp_path / "r.xlsx"),
        )
    assert code == 0, out
    table = cover_totals(openpyxl.load_workbook(tmp_path / "r.xlsx")["Cover"])
    for payout in state.ledger()["payouts"]:
        cur = payout["currency"]
        assert payout["debit"] == payout["amount"] + payout["fee"] > payout["amount"]
        assert Decimal(str(table["Total debited from the wallet"][cur][1])) == payout["debit"]
        assert Decimal(str(table["Total received by recipients"][cur][1])) == payout["amount"]
        assert Decimal(str(table["Fees (paid rows)"][cur][1])) == payout["fee"]


@pytest.mark.parametrize(
    ("base_url", "built_in", "kind", "host"),
    [
        ("https://api.kotanipay.com", False, "LIVE", "api.kotanipay.com"),
        ("", True, "SANDBOX", "built-in sandbox"),
    ],
)
def test_cover_and_pdf_say_live_or_sandbox_host_account_and_approver(
    tmp_path: Path, base_url: str, built_in: bool, kind: str, host: str
) -> None:
    from batch_payouts.environment import environment
    from batch_payouts.ledger import NewRow
    from batch_payouts.model import MobileMoneyPayout

    env = environment(base_url, "acct-77", built_in_sandbox=built_in)
    ledger = Ledger(tmp_path / "l.db")
    try:
        ledger.register_environment(env)
        payout = MobileMoneyPayout(
            row=2, name="A", amount=Decimal(100), currency="KES", country="KE", phone="+254712000501"
        )
        ledger.create_batch(
            "bIDENTITY001",
            env_id=env.id,
            fingerprint="bIDENTITY001",
            label="May",
            source=str(tmp_path / "x.csv"),
            options={
                "mapping": {"name": "name"},
                "wallets": {"KES": "w-kes-1"},
                "ran_by": "Otieno",
                "approved_by": "Achieng",
            },
            headers=["name"],
            rows=[NewRow(2, RowState.READY, payout, {"name": "A"}, [])],
        )
        results.write_results(ledger, "bIDENTITY001", tmp_path / "r.xlsx")
        results.write_summary_pdf(ledger, "bIDENTITY001", tmp_path / "s.pdf")
    finally:
        ledger.close()
    cover = {
        r[0]: r[1] for r in openpyxl.load_workbook(tmp_path / "r.xlsx")["Cover"].iter_rows(values_only=True) if r[0]
    }
    assert (cover["Environment"], cover["Host"], cover["Account"]) == (kind, host, "acct-77")
    assert cover["Wallet per currency"] == "KES: w-kes-1"
    assert (cover["Run by"], cover["Approved by"]) == ("Otieno", "Achieng")
    assert cover["Source file SHA-256"] == "not recorded (the file is no longer at this path)"
    text = " ".join(pypdf.PdfReader(tmp_path / "s.pdf").pages[0].extract_text().split())
    assert f"Payout summary — {kind}" in text and f"host {host} · account acct-77" in text
    assert "Approved by Achieng" in text and "KES: w-kes-1" in text


# -- the totals reconcile for any mix of rows ---------------------------------------------------------------


@st.composite
def lines(draw: st.DrawFn) -> list[Line]:
    out = []
    for n in range(draw(st.integers(0, 30))):
        state = draw(st.sampled_from(list(RowState)))
        currency = draw(st.sampled_from(["KES", "GHS", ""]))
        unreadable = state is RowState.INVALID and draw(st.booleans())
        amount = None if unreadable else Decimal(draw(st.integers(1, 10**7))) / 100
        fee = Decimal(draw(st.integers(0, 500))) / 100 if draw(st.booleans()) else None
        out.append(
            Line(
                row=n + 2,
                cells={},
                state=state,
                word=STATE_WORDS[state],
                reason="",
                what_to_do="",
                name="x",
                amount=amount,
                amount_text="abc" if unreadable else str(amount),
                currency=currency,
                fee=fee,
                received=(amount - fee) if amount is not None and fee is not None else None,
                paid_to="",
                reference_id="",
                provider_reference="",
                receipt="",
                provider_id="",
                provider_status="",
                batch="b",
                attempt=1,
                sent_at=None,
                final_at=None,
            )
        )
    return out


@given(lines())
def test_rows_and_amounts_in_file_are_the_sum_of_the_words_for_any_rows(rows: list[Line]) -> None:
    found = totals(rows)
    assert sum(t.in_file.rows for t in found) == len(rows)
    assert sum(t.in_file.amount for t in found) == sum(r.amount for r in rows if r.amount is not None)
    assert sum(len(t.unreadable) for t in found) == sum(r.amount is None for r in rows)
    for t in found:
        paid = [r for r in rows if r.currency == t.currency and STATE_WORDS[r.state] == "paid"]
        assert t.fees == sum((r.fee or 0 for r in paid), Decimal(0))
        assert t.debited == sum((r.amount for r in paid if r.amount is not None), Decimal(0))

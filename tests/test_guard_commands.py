"""The payroll guardrails as a user meets them in `validate`, `plan` and `run`: every held row is
listed with its row, column, value and reason (never cut short), a held row is stored HELD and
not paid, and it is paid once a person accepts it or passes the option that lets it through."""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState
from tests.support import results_file, run_tool

HEADER = ["name", "phone", "country", "amount", "currency", "method", "reference"]


def student(n: int, amount: int = 2000, reference: str | None = None) -> list[str]:
    return [
        f"Student {n}",
        f"+2547120{n:05d}",
        "KE",
        str(amount),
        "KES",
        "mobile_money",
        f"NOV-{n:03d}" if reference is None else reference,
    ]


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def stipends(tmp_path: Path) -> Path:
    """Five stipends, a 1,000,000 typo (row 7) and Student 1 again with the same amount and no
    reference of its own (row 8)."""
    rows = [student(n) for n in range(1, 6)] + [student(6, 1_000_000), student(1, reference="")]
    return write_csv(tmp_path / "stipends.csv", rows)


OUTLIER = (
    "  held: row 7, amount: pays KES 1,000,000, 500 times the file's typical KES amount (the median of its 7 "
    "KES rows is KES 2,000): held until you accept it (saw '1000000')"
)
DUPLICATE = (
    "  held: row 8, amount: pays the same recipient the same amount (KES 2,000) by the same method as row 2: "
    "held as a likely duplicate, not paid; pass --allow-duplicates if both payments are intended (saw '2000')"
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, list[str], str]:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout.splitlines(), result.stderr


def batch_of(ledger_path: Path) -> str:
    ledger = Ledger(ledger_path)
    try:
        (batch,) = ledger.batches()
        return batch.id
    finally:
        ledger.close()


def states(ledger_path: Path) -> dict[int, RowState]:
    ledger = Ledger(ledger_path)
    try:
        (batch,) = ledger.batches()
        return {r.row: r.state for r in ledger.rows(batch.id)}
    finally:
        ledger.close()


# -- validate -------------------------------------------------------------------------------------------


def test_validate_lists_every_hold_with_its_row_column_and_value(runner: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(runner, "validate", str(stipends(tmp_path)), "--sandbox", "--state", str(tmp_path / "l.db"))
    assert code == 3, "a held row needs a decision: the file is not ready as it stands"
    assert (
        "7 rows: 7 valid, 0 invalid, 0 warnings; 2 of the valid rows held, not paid until a person accepts them" in out
    )
    assert [line for line in out if line.startswith("  held: ")] == [OUTLIER, DUPLICATE]


def test_holds_are_never_cut_short_like_other_problems(runner: CliRunner, tmp_path: Path) -> None:
    rows = [student(n) for n in range(1, 21)] + [student(n, reference="") for n in range(1, 21)]
    rows += [student(40 + n, amount=0) for n in range(20)]  # 20 invalid amounts: more problems than shown
    code, out, _ = invoke(
        runner, "validate", str(write_csv(tmp_path / "f.csv", rows)), "--sandbox", "--state", str(tmp_path / "l.db")
    )
    held = [line for line in out if line.startswith("  held: ")]
    assert code == 3 and len(held) == 20
    assert held[0] == (
        "  held: row 22, amount: pays the same recipient the same amount (KES 2,000) by the same "
        "method as row 2: held as a likely duplicate, not paid; pass --allow-duplicates if both "
        "payments are intended (saw '2000')"
    )
    assert "  ... and 5 more (write them all with --report)" in out, "the other problems are cut at 15"


def test_the_flags_let_holds_through_and_limits_are_per_currency(runner: CliRunner, tmp_path: Path) -> None:
    path = stipends(tmp_path)
    code, out, _ = invoke(
        runner,
        "validate",
        str(path),
        "--sandbox",
        "--state",
        str(tmp_path / "l.db"),
        "--allow-duplicates",
        "--max-row-amount",
        "KES=50000",
        "--max-row-amount",
        "UGX=10",
    )
    assert [line for line in out if line.startswith(("  held: ", "  warning: "))] == [
        "  held: row 7, amount: pays KES 1,000,000, more than the KES 50,000 limit per row: held, not paid "
        "(saw '1000000')",
        OUTLIER,
        "  warning: row 8, amount: pays the same recipient the same amount (KES 2,000) by the same method as row 2; "
        "both are paid because duplicates are allowed (saw '2000')",
    ]
    assert code == 3


def test_a_limit_without_its_currency_is_refused_with_a_sentence(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(
        runner,
        "validate",
        str(stipends(tmp_path)),
        "--sandbox",
        "--state",
        str(tmp_path / "l.db"),
        "--max-row-amount",
        "50000",
    )
    assert code == 2
    assert err == "error: --max-row-amount: '50000' should look like KES=200000\n"


def test_the_policy_file_sets_the_guardrails(runner: CliRunner, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[duplicates]\nallow = true\n[outliers]\nfile_multiple = 0\n")
    code, out, _ = invoke(
        runner,
        "validate",
        str(stipends(tmp_path)),
        "--sandbox",
        "--state",
        str(tmp_path / "l.db"),
        "--policy",
        str(policy),
    )
    assert code == 0 and not [line for line in out if line.startswith("  held: ")]


def test_rows_hidden_in_excel_are_held_unless_included(runner: CliRunner, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(1, 4):
        ws.append(student(n))
    ws.row_dimensions[3].hidden = True
    path = tmp_path / "hidden.xlsx"
    wb.save(path)
    code, out, _ = invoke(runner, "validate", str(path), "--sandbox", "--state", str(tmp_path / "l.db"))
    assert code == 3
    assert out[1] == (
        "note: 1 rows are hidden in the sheet (rows 3); they were read and are held, not paid, unless "
        "hidden rows are included (--include-hidden); unhide them to check them"
    )
    assert [line for line in out if line.startswith("  held: ")] == [
        "  held: row 3: is hidden in the spreadsheet: held, not paid; unhide it to check it, or pass --include-hidden "
        "to pay hidden rows"
    ]
    code, out, _ = invoke(
        runner, "validate", str(path), "--sandbox", "--state", str(tmp_path / "l.db"), "--include-hidden"
    )
    assert code == 0
    assert "  warning: row 3: is hidden in the spreadsheet; paid because hidden rows are included" in out


def test_validate_without_an_api_key_uses_the_built_in_lists_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOTANI_", "BATCH_PAYOUTS_"))}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    path = write_csv(
        tmp_path / "f.csv", [student(1), ["Kenya Person", "0712000777", "Kenya", "1500", "KES", "mobile_money", "X-1"]]
    )
    done = run_tool(["validate", str(path), "--state", str(tmp_path / "l.db")], env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "note: no API key: the file was checked against the sandbox's built-in list of countries, "
        "currencies, networks and banks; Kotani's live lists were not asked. Set KOTANI_API_KEY to "
        "check against them"
    )
    assert lines[1] == "2 rows: 2 valid, 0 invalid, 1 warnings"
    assert "  warning: row 3, country: country 'Kenya' read as KE" in lines
    assert not (tmp_path / "l.db").exists(), "nothing is recorded without a provider"


# -- run ------------------------------------------------------------------------------------------------


def test_run_stores_held_rows_and_pays_them_once_accepted_or_let_through(runner: CliRunner, tmp_path: Path) -> None:
    path, state = stipends(tmp_path), str(tmp_path / "l.db")
    code, out, _ = invoke(runner, "run", str(path), "--sandbox", "--yes", "--quiet", "--state", state)
    assert code == 3 and [line for line in out if line.startswith("  held: ")] == [OUTLIER, DUPLICATE]
    assert states(tmp_path / "l.db") == {
        2: RowState.SUCCEEDED,
        3: RowState.SUCCEEDED,
        4: RowState.SUCCEEDED,
        5: RowState.SUCCEEDED,
        6: RowState.SUCCEEDED,
        7: RowState.HELD,
        8: RowState.HELD,
    }
    results = {
        r["row"]: r
        for r in csv.DictReader(results_file(tmp_path, "stipends").read_text(encoding="utf-8-sig").splitlines())
    }
    assert (results["7"]["status"], results["7"]["reason"]) == (
        "held (needs a decision)",
        "Row 7 pays KES 1,000,000, 500 times the file's typical KES amount (the median "
        "of its 7 KES rows is KES 2,000): held until you accept it.",
    )

    code, out, _ = invoke(runner, "run", str(path), "--sandbox", "--yes", "--quiet", "--state", state)
    batch = next(line.split()[7] for line in out if line.startswith("this file was already paid"))
    assert out[-2:] == [
        "held, not paid: rows 7, 8. To pay a held row, run the same file again with --accept-name "
        "ROW[,ROW…] (your decision is recorded)",
        f"results: {results_file(tmp_path, 'stipends')}",
    ]

    code, out, _ = invoke(
        runner,
        "run",
        str(path),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        state,
        "--allow-duplicates",
        "--accept-name",
        "7",
    )
    assert (
        f"released: row 8 of batch {batch} is no longer held under this run's options and will be paid; your "
        "decision is recorded" in out
    )
    assert f"accepted: row 7 of batch {batch} will be paid; your acceptance is recorded" in out
    assert code == 0 and set(states(tmp_path / "l.db").values()) == {RowState.SUCCEEDED}
    ledger = Ledger(tmp_path / "l.db")
    assert [(a.row, a.what) for a in ledger.acceptances(batch)] == [(8, "held"), (7, "held")]
    ledger.close()


def test_a_held_row_accepted_in_the_first_run_is_paid_by_it(runner: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(
        runner,
        "run",
        str(stipends(tmp_path)),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        str(tmp_path / "l.db"),
        "--accept-name",
        "8",
    )
    assert code == 3, "row 7 is still held"
    assert f"accepted: row 8 of batch {batch_of(tmp_path / 'l.db')} will be paid; your acceptance is recorded" in out
    assert states(tmp_path / "l.db")[8] is RowState.SUCCEEDED and states(tmp_path / "l.db")[7] is RowState.HELD


def test_accepting_a_row_that_is_not_held_sends_nothing(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(
        runner,
        "run",
        str(stipends(tmp_path)),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        str(tmp_path / "l.db"),
        "--accept-name",
        "3",
    )
    assert code == 2
    assert err.startswith("error: only held rows can be accepted, and in batch b")
    assert err.endswith(" row 3 is ready; nothing was accepted\n")
    ledger = Ledger(tmp_path / "l.db")
    assert ledger.batches() == []
    ledger.close()


def test_a_continued_batch_holds_rows_a_tighter_limit_now_catches(runner: CliRunner, tmp_path: Path) -> None:
    """Rows never sent of a batch continued are held under the options of the run that continues it,
    an accepted row too when the new hold is not the one accepted."""
    path, state = stipends(tmp_path), str(tmp_path / "l.db")
    invoke(
        runner,
        "run",
        str(path),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        state,
        "--allow-duplicates",
        "--accept-name",
        "7",
        "--wait-timeout",
        "0",
    )
    never_sent = [n for n, s in states(tmp_path / "l.db").items() if s is RowState.READY]
    assert 7 in never_sent, "stopped before paying the accepted row"
    code, out, _ = invoke(
        runner,
        "run",
        str(path),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        state,
        "--allow-duplicates",
        "--max-row-amount",
        "KES=1000",
    )
    assert code == 3
    batch = batch_of(tmp_path / "l.db")
    assert (
        f"held now: rows {', '.join(map(str, never_sent))} of batch {batch}, never sent, are held under this "
        "run's options" in out
    )
    assert all(states(tmp_path / "l.db")[n] is RowState.HELD for n in never_sent)


# -- confirmation of payee before a run: validate --verify, plan -------------------------------------------

PAYEES = [
    ["doe, JANÉ mary", "+254700000001"],  # JANE MARY DOE: word order, case and accents aside
    ["John Otiéno", "+254700000008"],  # OTIENO JOHN, no score from Kotani: ours
    ["Wanjiru Kamau", "+254700000030"],  # registered to PETER OKELLO MUSA
    ["Jane Doe", "+254700000003"],  # no such account
    ["Jane Doe", "+254700000032"],  # frozen
    ["Jane Doe", "+254700000004"],
]  # a corridor without name checks


def payees(tmp_path: Path) -> Path:
    rows = [
        [name, phone, "KE", str(1500 + 100 * i), "KES", "mobile_money", f"P-{i}"]
        for i, (name, phone) in enumerate(PAYEES)
    ]
    return write_csv(tmp_path / "payees.csv", rows)


VERDICT_LINES = [
    "name check (Kotani asked): 6 rows: 2 names match, 2 held, 1 invalid, 1 paid with a note",
    "  held: row 4: The account holder is PETER OKELLO MUSA, not Wanjiru Kamau (Kotani's score 20 of 100, 70 needed): "
    "held, not paid unless you accept the name.",
    "  invalid: row 5: Kotani found no account for this phone number (Kotani: No account is registered to this "
    "number): not paid. Check the details with the recipient.",
    "  held: row 6: The account behind this phone number is frozen: held, not paid. Ask the recipient for another "
    "account.",
    "  note: row 7: Name not checked: Kotani cannot check names for this kind of account. Paid on the details in the "
    "file.",
]


def test_validate_verify_shows_each_verdict_and_writes_it_in_the_report(runner: CliRunner, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    code, out, err = invoke(
        runner,
        "validate",
        str(payees(tmp_path)),
        "--sandbox",
        "--state",
        str(tmp_path / "l.db"),
        "--verify",
        "--report",
        str(report),
    )
    assert code == 3 and "payee checks: 6 of 6 rows" in err
    start = out.index(VERDICT_LINES[0])
    assert out[start : start + 5] == VERDICT_LINES
    rows = {r["row"]: r for r in csv.DictReader(report.read_text(encoding="utf-8-sig").splitlines())}
    assert [(rows[n]["name_check"], rows[n]["registered_name"], rows[n]["name_score"]) for n in "234567"] == [
        ("payable", "JANE MARY DOE", "100 (Kotani)"),
        ("payable", "OTIENO JOHN", "100 (ours)"),
        ("held: name differs", "PETER OKELLO MUSA", "20 (Kotani)"),
        ("invalid: not found", "", ""),
        ("held: frozen", "JANE DOE", ""),
        ("payable: name not checked", "", ""),
    ]


def test_validate_without_verify_asks_nothing(runner: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(runner, "validate", str(payees(tmp_path)), "--sandbox", "--state", str(tmp_path / "l.db"))
    assert code == 0 and not any(line.startswith("name check") for line in out)


def test_validate_verify_needs_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOTANI_", "BATCH_PAYOUTS_"))}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    done = run_tool(["validate", str(payees(tmp_path)), "--verify", "--state", str(tmp_path / "l.db")], env)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "Error: --verify asks Kotani whose account each row pays: it needs an API "
        "key (KOTANI_API_KEY or --api-key-file) or --sandbox"
    )


def test_plan_shows_the_verdicts_and_leaves_held_rows_out_of_its_totals(runner: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(runner, "plan", str(payees(tmp_path)), "--sandbox", "--state", str(tmp_path / "l.db"))
    assert code == 3
    start = out.index(VERDICT_LINES[0])
    assert out[start : start + 5] == VERDICT_LINES
    plan = out[out.index("Plan") :]
    assert any([c.strip() for c in line.split("│")[1:4]] == ["KES", "3", "5,100"] for line in plan), plan
    code, out, _ = invoke(
        runner, "plan", str(payees(tmp_path)), "--sandbox", "--state", str(tmp_path / "l.db"), "--no-name-check"
    )
    assert not any(line.startswith("name check") for line in out)


def test_plan_leaves_more_payees_than_the_reads_allowance_checks_quickly_to_the_run_and_says_so(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 payees take over an hour to ask at Kotani's reads allowance: plan does not wait on
    them in silence. Past ``ASK_FIRST_WITHIN`` seconds of asking, it asks nothing, says how long
    asking would take and who asks instead, and plans every row (none is held by a name)."""
    from batch_payouts.app import namecheck

    monkeypatch.setattr(namecheck, "ASK_FIRST_WITHIN", 0.2)  # 6 payees at 20 reads a second: 0.3 s
    state = tmp_path / "l.db"
    code, out, _ = invoke(runner, "plan", str(payees(tmp_path)), "--sandbox", "--state", str(state))
    assert code == 0, out
    assert [line for line in out if line.startswith("name check")] == [
        "name check: 6 payees not asked now: at Kotani's reads allowance that takes about 1 s. run asks "
        "about each payee as it pays it (a name that differs holds its row, unpaid); validate --verify asks "
        "about them all first."
    ]
    plan = out[out.index("Plan") :]
    assert any([c.strip() for c in line.split("│")[1:4]] == ["KES", "6", "10,500"] for line in plan), plan
    with sqlite3.connect(state) as db:
        assert not db.execute("SELECT 1 FROM audit WHERE path LIKE '%/validate/%'").fetchall()


def test_validate_verify_says_how_long_asking_about_many_payees_takes_before_it_starts(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate --verify asks about every payee however many there are (100,000: over an hour at
    the reads allowance), and first says so; a short wait gets no such line."""
    from batch_payouts.app import namecheck

    state = str(tmp_path / "l.db")
    code, out, _ = invoke(runner, "validate", str(payees(tmp_path)), "--verify", "--sandbox", "--state", state)
    assert code == 3 and not any(line.startswith("asking Kotani") for line in out)
    monkeypatch.setattr(namecheck, "ASK_FIRST_WITHIN", 0.2)
    code, out, _ = invoke(runner, "validate", str(payees(tmp_path)), "--verify", "--sandbox", "--state", state)
    assert code == 3 and not any(line.startswith("asking Kotani") for line in out)  # all kept from the first
    code, out, _ = invoke(
        runner, "validate", str(payees(tmp_path)), "--verify", "--sandbox", "--state", str(tmp_path / "new.db")
    )
    assert code == 3
    assert [line for line in out if line.startswith("asking Kotani")] == [
        "asking Kotani whose account each of 6 payees is: about 1 s at its reads allowance "
        "(Ctrl-C stops; answers so far are kept)"
    ]


# -- the confirmation screen ------------------------------------------------------------------------------


def screen(out: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(out) if line.startswith("Before any money moves: "))
    end = next(i for i, line in enumerate(out) if line.startswith("batch b"))
    return out[start:end]


WALLET = r"  KES: (\d) rows, KES ([\d,]+) to send from wallet [0-9a-f]{24} \(payout balance KES ([\d,]+)\)"


def test_the_screen_says_where_from_which_wallet_what_it_costs_and_every_row_to_look_at(
    runner: CliRunner, tmp_path: Path
) -> None:
    state = str(tmp_path / "l.db")
    code, out, _ = invoke(runner, "run", str(stipends(tmp_path)), "--sandbox", "--yes", "--quiet", "--state", state)
    shown = screen(out)
    assert shown[0] == f"Before any money moves: {out[0]}" and out[0].startswith(
        "SANDBOX · built-in sandbox · account "
    )
    assert re.fullmatch(WALLET, shown[1]) is not None
    assert re.fullmatch(WALLET, shown[1]).groups() == ("5", "10,000", "10,000,000")  # type: ignore[union-attr]
    assert shown[2:] == [
        "    fees: unknown: Kotani publishes no fee table, and this account has no earlier KES payouts recorded here",
        "    the wallet is debited: KES 10,000, plus the fees if your wallet pays them (Kotani does not say which)",
        "Rows to look at before you confirm (2):",
        "  row 7 · Student 6 · KES 1,000,000 · held (outlier): Row 7 pays KES 1,000,000, 500 times the file's typical "
        "KES amount (the median of its 7 KES rows is KES 2,000): held until you accept it.",
        "  row 8 · Student 1 · KES 2,000 · held (duplicate): Row 8 pays the same recipient the same amount (KES 2,000) "
        "by the same method as row 2: held as a likely duplicate, not paid; pass --allow-duplicates if both payments "
        "are intended.",
        "The payee of each of the other 5 rows is checked with Kotani as it is paid; a name that differs holds its row.",
    ]
    assert code == 3

    # the next month: fees estimated from what was paid, the debit as those payouts show, verdicts kept
    rows = [student(n, 2500) for n in range(1, 5)] + [student(n, 2500) for n in range(10, 12)]
    again = write_csv(tmp_path / "december.csv", rows)
    code, out, _ = invoke(
        runner,
        "run",
        str(again),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        state,
        "--label",
        "2026-12",
        "--allow-duplicates",
    )
    shown = screen(out)
    assert re.fullmatch(WALLET, shown[1]).groups() == ("6", "15,000", "9,990,000")  # type: ignore[union-attr]
    assert shown[2:] == [
        "    fees: about KES 150, an estimate from the fees of 5 earlier payouts in KES of this account",
        "    the wallet is debited: KES 15,000 (earlier payouts took the fee out of what the recipient received, so "
        "the wallet is debited the amounts)",
        "The payee of each of the other 2 rows is checked with Kotani as it is paid; a name that differs holds its row.",
    ]
    assert code == 0


def test_the_screen_lists_a_name_that_differs_known_from_an_earlier_check(runner: CliRunner, tmp_path: Path) -> None:
    state, path = str(tmp_path / "l.db"), payees(tmp_path)
    invoke(runner, "validate", str(path), "--sandbox", "--state", state, "--verify")  # answers kept: rows 2, 3, 4
    code, out, _ = invoke(runner, "run", str(path), "--sandbox", "--yes", "--quiet", "--state", state)
    shown = screen(out)
    assert re.fullmatch(WALLET, shown[1]).groups() == ("6", "10,500", "10,000,000")  # type: ignore[union-attr]
    assert (
        shown[2] == "    fees: unknown: Kotani publishes no fee table, and this account has no earlier KES "
        "payouts recorded here"
    )
    assert shown[4] == "Rows to look at before you confirm (1):"
    assert shown[5] == (
        "  row 4 · Wanjiru Kamau · KES 1,700 · held (name differs): The account holder is PETER OKELLO "
        "MUSA, not Wanjiru Kamau (Kotani's score 20 of 100, 70 needed): held, not paid unless you "
        f"accept the name. (Looked up on {time.strftime('%Y-%m-%d', time.gmtime())}, reused.)"
    )
    assert shown[6] == (
        "The payee of each of the other 3 rows is checked with Kotani as it is paid; a name that differs holds its row."
    )
    assert code == 3


def test_the_results_workbook_says_what_to_do_with_a_row_a_guardrail_held(runner: CliRunner, tmp_path: Path) -> None:
    results = tmp_path / "results.xlsx"
    invoke(
        runner,
        "run",
        str(stipends(tmp_path)),
        "--sandbox",
        "--yes",
        "--quiet",
        "--state",
        str(tmp_path / "l.db"),
        "--results",
        str(results),
    )
    sheet = openpyxl.load_workbook(results)["Problems"]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[7][5:] == (
        "held (needs a decision)",
        "Row 7 pays KES 1,000,000, 500 times the file's typical KES amount (the median of its 7 KES rows is KES "
        "2,000): held until you accept it.",
        "Check the reason given. If the payment is right, accept the row (--accept-name ROW) or run the same file "
        "again with the option the reason names; if not, correct the file.",
    )

"""What a user sees: messages, files and exit codes of the commands."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.sandbox import SandboxClock, SandboxState, serve_in_thread
from tests.conftest import ROOT
from tests.support import results_file

SAMPLES = ROOT / "samples"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_validate_a_clean_file_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(
        runner, "validate", str(SAMPLES / "payouts.csv"), "--sandbox", "--state", str(tmp_path / "l.db")
    )
    assert code == 0
    assert "22 rows: 22 valid, 0 invalid" in out


def test_validate_reads_the_built_in_sandbox_in_process_without_serving_it_on_a_port(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate pays nothing: its catalog, wallets and name checks are asked of the built-in sandbox
    answering in this process (starting and stopping a server took a third of a second). Its calls
    are in the audit trail as any other."""
    from batch_payouts import serve

    def no_port(*args: object, **kwargs: object) -> None:
        raise AssertionError("validate served the sandbox on a port")

    monkeypatch.setattr(serve, "in_thread", no_port)
    state = tmp_path / "l.db"
    code, out, _ = invoke(
        runner, "validate", str(SAMPLES / "payouts.csv"), "--sandbox", "--verify", "--state", str(state)
    )
    assert code == 0 and "22 rows: 22 valid, 0 invalid" in out
    with sqlite3.connect(state) as db:
        paths = {path for (path,) in db.execute("SELECT path FROM audit")}
    assert {"/api/v3/customer/support/countries", "/api/v3/customer/validate/mobile-money"} <= paths


def test_validate_a_messy_file_exits_3_and_writes_the_full_report(runner: CliRunner, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    code, out, _ = invoke(
        runner,
        "validate",
        str(SAMPLES / "messy.csv"),
        "--sandbox",
        "--state",
        str(tmp_path / "l.db"),
        "--report",
        str(report),
    )
    assert code == 3
    assert "error: row 7, phone: this is not a valid Kenya phone number (saw '0712')" in out
    rows = read_csv(report)
    assert rows[0]["row"] == "3" and rows[0]["valid"] == "yes" and rows[0]["normalised_phone"] == "+254712345678"
    assert {"Full Name", "Notes", "row", "valid", "problems", "normalised_phone"} <= set(rows[0])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"name,amount,currency\n", "no data rows under the header"),
        (b"foo,bar\n1,2\n", "no header row found"),
        (b"name,phone\nA,+254712345678\n", "required columns missing: amount, country or currency"),
    ],
)
def test_unusable_files_exit_2_naming_the_cause(
    runner: CliRunner, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    code, _, err = invoke(runner, "validate", str(path), "--sandbox", "--state", str(tmp_path / "l.db"))
    assert code == 2
    assert f"error: {path}: {message}" in " ".join(err.split())


def test_a_missing_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(runner, "validate", str(tmp_path / "nope.csv"), "--sandbox")
    assert code == 2 and "cannot be read (No such file or directory)" in err


def test_run_the_sample_on_the_sandbox(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "payouts.csv"
    src.write_bytes((SAMPLES / "payouts.csv").read_bytes())
    code, out, err = invoke(runner, "run", str(src), "--sandbox", "--yes", "--quiet", "--state", str(tmp_path / "l.db"))
    assert code == 3, out + err  # the sample holds sandbox numbers that end FAILED
    rows = {r["reference"]: r for r in read_csv(results_file(tmp_path, "payouts"))}
    assert rows["NOV-001"]["status"] == "paid" and rows["NOV-001"]["receipt"]
    assert rows["NOV-004"]["status"] == "failed" and rows["NOV-004"]["reason"] == "Recipient account not found"
    assert rows["NOV-005"]["status"] == "failed" and rows["NOV-005"]["reason"] == "Cancelled by customer"
    assert rows["NOV-016"]["status"] == "failed" and rows["NOV-016"]["reason"] == "Transaction limit exceeded"
    assert rows["NOV-022"]["status"] == "paid"
    assert rows["NOV-019"]["result_amount"] == "1250.50" and rows["NOV-019"]["department"] == "Finance"
    assert sum(r["status"] == "paid" for r in rows.values()) == 18


def test_a_quiet_run_sums_no_amounts_for_a_progress_bar_nobody_sees(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Summing a batch's amounts reads every row (100,000 of them, in a large batch)."""
    from batch_payouts.ledger import Ledger

    sums: list[str] = []
    totals = Ledger.totals
    monkeypatch.setattr(Ledger, "totals", lambda self, batch_id: sums.append(batch_id) or totals(self, batch_id))
    src = two_countries_file(tmp_path)
    code, _, _ = invoke(runner, "run", src, "--sandbox", "--yes", "--quiet", "--state", str(tmp_path / "l.db"))
    assert code == 0 and sums == []
    invoke(runner, "run", src, "--sandbox", "--yes", "--state", str(tmp_path / "other.db"))
    assert sums, "a run that shows its progress sums the amounts it shows"


def two_countries_file(folder: Path) -> str:
    """Two payees in two countries: a run of it settles in a second or two."""
    path = folder / "two.csv"
    path.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\nB,+256772123456,UG,5000,UGX\n")
    return str(path)


def test_run_reads_the_wallets_and_the_whole_catalog_in_one_round_trip(runner: CliRunner, tmp_path: Path) -> None:
    """The first payout waits for as few round trips as can be: the wallets (balances, wallet ids),
    the bank lists and the networks of the countries the tool expects are read with the countries
    list, before its answer is in, and once for the whole command, not again before each check."""
    state = tmp_path / "l.db"
    code, _, _ = invoke(
        runner, "run", two_countries_file(tmp_path), "--sandbox", "--yes", "--quiet", "--state", str(state)
    )
    assert code == 0
    with sqlite3.connect(state) as db:
        calls = db.execute("SELECT path, at - duration, at FROM audit ORDER BY id").fetchall()
    [(_, _, listed)] = [call for call in calls if call[0].endswith("/support/countries")]
    wallets = [started for path, started, _ in calls if path.endswith("/wallet/fiat")]
    together = [started for path, started, _ in calls if "/support/networks/" in path or "/support/banks" in path]
    assert len(wallets) == 1, calls
    assert len(together) == 12 + 2, "every country's networks and both bank lists, once"
    assert max([*wallets, *together]) < listed, "all sent before the countries list came back"


def test_run_twice_continues_the_same_batch_and_pays_nothing_more(runner: CliRunner, tmp_path: Path) -> None:
    """Both runs talk to one provider, whose own ledger shows what the second run sent: nothing."""
    src = tmp_path / "p.csv"
    src.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\n")
    args = ["run", str(src), "--yes", "--quiet", "--state", str(tmp_path / "l.db"), "--poll-interval", "0.2"]
    with (
        serve_in_thread(SandboxState(api_key="k", clock=SandboxClock(speed=20))) as sb,
        httpx.Client(base_url=sb.base_url, headers={"Authorization": "Bearer k"}) as provider,
    ):
        first = runner.invoke(
            main, [*args, "--base-url", sb.base_url], env={"KOTANI_API_KEY": "k"}, catch_exceptions=False
        )
        after_first = provider.get("/__sandbox__/ledger").json()["data"]
        second = runner.invoke(
            main, [*args, "--base-url", sb.base_url], env={"KOTANI_API_KEY": "k"}, catch_exceptions=False
        )
        after_second = provider.get("/__sandbox__/ledger").json()["data"]
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    batch = next(line for line in first.stdout.splitlines() if line.startswith("batch "))
    assert batch in second.stdout
    assert [p["status"] for p in after_first["payouts"]] == ["SUCCESSFUL"]
    assert after_second["posts"] == after_first["posts"], "the second run sent no payout request"
    assert after_second["payouts"] == after_first["payouts"]


def test_run_without_yes_and_without_a_terminal_refuses(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\n")
    code, _, err = invoke(runner, "run", str(src), "--sandbox", "--quiet", "--state", str(tmp_path / "l.db"))
    assert code == 2 and "confirmation needed: run in a terminal, or pass --yes" in err


def test_a_key_file_readable_by_others_is_refused(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KOTANI_API_KEY", raising=False)
    key = tmp_path / "key"
    key.write_text("secret-key")
    key.chmod(0o644)
    code, _, err = invoke(
        runner,
        "banks",
        "--api-key-file",
        str(key),
        "--base-url",
        "http://127.0.0.1:9",
        "--state",
        str(tmp_path / "l.db"),
    )
    assert code == 2
    assert f"the key file {key} is readable by others (mode 0644); run: chmod 600 {key}" in " ".join(err.split())


def test_listen_on_a_port_in_use_says_so(runner: CliRunner, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke(runner, "listen", "--listen", f"127.0.0.1:{port}", "--state", str(tmp_path / "l.db"))
    assert code == 2
    assert " ".join(err.split()) == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_the_sandbox_command_serves_the_documented_walkthrough(tmp_path: Path) -> None:
    from tests.support import SandboxProcess

    with SandboxProcess("test-key", speed=10) as sb:
        sb.log.seek(0)
        said = sb.log.read().decode()
        assert said.count("Kotani sandbox listening on") == 1, said  # one line, with the port really bound
        assert ":0 " not in said and sb.url.rsplit(":", 1)[1] != "0"
        auth = {"Authorization": "Bearer test-key"}
        import httpx

        with httpx.Client(base_url=sb.url, headers=auth) as http:
            kes = next(w for w in http.get("/api/v3/wallet/fiat").json()["data"] if w["currency"] == "KES")
            key = http.post(
                "/api/v3/customer/mobile-money", json={"phone_number": "+254700000011", "country_code": "KE"}
            ).json()["data"]["customer_key"]
            created = http.post(
                "/api/v3/withdraw/mobile-money",
                json={"customer_key": key, "amount": 1500, "walletId": kes["id"], "referenceId": "walk-1"},
            )
            assert created.status_code == 201
            assert http.get(f"/api/v3/wallet/fiat/{kes['id']}").json()["data"]["balance"] == kes["balance"] - 1500
            http.post("/__sandbox__/clock", json={"seconds": 10})
            assert http.get("/api/v3/withdraw/status/walk-1").json()["data"]["status"] == "FAILED"
            assert http.get(f"/api/v3/wallet/fiat/{kes['id']}").json()["data"]["balance"] == kes["balance"]


def test_plan_shows_the_shortfall_and_exits_3(runner: CliRunner, tmp_path: Path) -> None:
    from decimal import Decimal

    src = tmp_path / "p.csv"
    src.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,1500,KES\nB,+254722345678,KE,700,KES\n")
    with serve_in_thread(SandboxState(api_key="k", balances={"KES": Decimal(1000)})) as sb:
        result = runner.invoke(
            main,
            ["plan", str(src), "--base-url", sb.base_url, "--state", str(tmp_path / "l.db")],
            env={"KOTANI_API_KEY": "k"},
        )
    assert result.exit_code == 3
    line = next(line for line in result.stdout.splitlines() if "KES" in line and "1,000" in line)
    assert "2,200" in line and "1,200" in line  # to send, balance, shortfall


def test_status_and_results_of_a_finished_batch(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\nB,+254700000011,KE,100,KES\n")
    state = str(tmp_path / "l.db")
    code, out, _ = invoke(runner, "run", str(src), "--sandbox", "--yes", "--quiet", "--state", state)
    assert code == 3
    batch = next(line.split()[1] for line in out.splitlines() if line.startswith("batch "))
    code, out, _ = invoke(runner, "status", batch, "--state", state)
    assert code == 3 and "paid" in out and "failed" in out
    code, out, _ = invoke(runner, "status", "--state", state)
    assert code == 0 and batch in out
    assert invoke(runner, "results", batch, "-o", str(tmp_path / "r.xlsx"), "--state", state)[0] == 0
    code, _, err = invoke(runner, "results", "nope", "-o", str(tmp_path / "r.csv"), "--state", state)
    assert code == 1 and "error: no batch 'nope' in the ledger" in err


def test_progress_shows_amounts_per_currency_in_finance_words_cut_to_the_width() -> None:
    from decimal import Decimal

    from batch_payouts import render
    from batch_payouts.app.payouts import RunProgress

    p = RunProgress(
        "b",
        {"succeeded": 3, "failed": 1, "submitted": 1, "ready": 2},
        7,
        4,
        2,
        2.0,
        (
            ("succeeded", "KES", Decimal("2500000.50")),
            ("failed", "KES", Decimal(700)),
            ("submitted", "KES", Decimal(300)),
            ("unknown", "KES", Decimal(5)),
            ("ready", "KES", Decimal(1200)),
            ("succeeded", "ZAR", Decimal("99.99")),
        ),
    )
    assert render.amount_lines(p) == [
        "KES paid 2,500,000.50 · failed 700 · waiting 305 · not sent 1,200",
        "ZAR paid 99.99",
    ]
    assert render.amount_lines(p, width=40) == ["KES paid 2,500,000.50 · failed 700", "ZAR paid 99.99"]
    done = RunProgress("b", {"succeeded": 7}, 7, 7, 0, 0.0, (("succeeded", "KES", Decimal(700)),))
    with render.err.capture() as captured, render.progress_bar(quiet=False) as show:
        show(p)
        show(done)
        show(done)  # the loop's last pass and the run's end report the same: told once
    assert captured.get() == (
        "batch b: 4/7 settled · paid 3 · failed 1 · waiting 1 · not sent 2 · ETA 0:02 · "
        "KES paid 2,500,000.50 · failed 700 · waiting 305 · not sent 1,200 · ZAR paid 99.99\n"
        "batch b: 7/7 settled · paid 7 · all sent · KES paid 700\n"
    )


def test_progress_fits_80_columns_in_finance_words_and_prints_plain_lines_when_piped() -> None:
    from batch_payouts import render
    from batch_payouts.app.payouts import RunProgress

    now = [0.0]
    lines: list[str] = []
    with render.err.capture() as captured, render.progress_bar(quiet=False, clock=lambda: now[0]) as show:
        big = RunProgress(
            "b0123456789a",
            {
                "succeeded": 99_812,
                "failed": 1_203,
                "held": 12,
                "submitted": 4_511,
                "ready": 94_462,
                "blocked": 7,
                "invalid": 3,
            },
            200_010,
            101_037,
            94_462,
            94_462.0,
        )
        show(big)  # the first report is printed at once
        now[0] = 5.0
        show(big)  # and the next only after ten seconds
        now[0] = 10.0
        show(big)
    lines = captured.get().splitlines()
    assert len(lines) == 2
    line = render.progress_line(big)
    assert line == (
        "paid 99812 · failed 1203 · held 12 · waiting 4511 · not sent 94462 · repeat 7 · invalid 3 · ETA 1574:22"
    )
    assert lines[0] == f"batch b0123456789a: 101037/200010 settled · {line}"
    assert len(render.progress_line(RunProgress("b", {"succeeded": 1000, "ready": 10}, 1010, 1000, 10, 9.0))) <= 60


def test_payee_checks_tell_how_far_they_are_when_piped_every_ten_seconds_and_at_the_end() -> None:
    """`validate --verify` of 100,000 rows waits over an hour on the reads allowance; it printed
    nothing meanwhile."""
    from batch_payouts import render

    now = [0.0]
    with render.err.capture() as captured, render.checks_progress(clock=lambda: now[0]) as heard:
        for done, at in ((1, 1.0), (900, 9.9), (1000, 10.0), (1500, 15.0), (2200, 20.5), (2500, 21.0)):
            now[0] = at
            heard(done, 2500)
    assert captured.get() == (
        "payee checks: 1,000 of 2,500 rows\npayee checks: 2,200 of 2,500 rows\npayee checks: 2,500 of 2,500 rows\n"
    )

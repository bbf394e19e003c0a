"""Following payouts to the end: polling, webhooks, forged deliveries, results, retries."""

from __future__ import annotations

import csv
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.engine import receiver_server
from batch_payouts.engine.receiver import Receiver
from batch_payouts.kotani import webhooks
from batch_payouts.ledger import Ledger, NewRow
from batch_payouts.model import RowState
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests.figures import record
from tests.hooks import reporting_to
from tests.support import FAST, results_file

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "settle-key-2a9"
SECRET = "whsec-settle-77"


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"KOTANI_API_KEY": KEY, **(env or {})}, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))


def provider_states(state: SandboxState) -> dict[str, str]:
    return {p["reference"]: p["status"] for p in state.ledger()["payouts"] if p["executed"]}


def tool_states(state_path: Path) -> dict[str, str]:
    ledger = Ledger(state_path)
    try:
        (batch,) = ledger.batches()
        return {str(r.reference): str(r.provider_status) for r in ledger.rows(batch.id)}
    finally:
        ledger.close()


def mixed_file(path: Path) -> Path:
    """Successes, failures and a cancellation."""
    lines = ["name,phone,country,amount,currency"]
    for i, ending in enumerate(
        ["712000001", "700000011", "712000002", "700000013", "712000003", "700000012", "712000004", "712000005"]
    ):
        lines.append(f"Person {i},+254{ending},KE,{100 + i},KES")
    path.write_text("\n".join(lines) + "\n")
    return path


# -- polling, webhooks, both ------------------------------------------------------------------------


def test_polling_alone_completes_a_batch(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    started = time.monotonic()
    with serve_in_thread(state) as sb:
        code, out = cli(
            "run",
            str(mixed_file(tmp_path / "p.csv")),
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
        )
    record("time_to_terminal_poll_only", time.monotonic() - started)
    assert code == 3, out
    assert tool_states(tmp_path / "l.db") == provider_states(state)
    assert state.ledger()["webhooks"] == [], "no webhooks were involved"


def _webhook_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, knobs: Knobs, *extra: str
) -> tuple[int, str, SandboxState]:
    """A run whose receiver listens on a port of its own choosing; the sandbox is told where."""
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), webhook_secret=SECRET, knobs=knobs, seed_value=5)

    def deliver_to(url: str) -> None:
        with state.lock:
            state.webhook_url = f"{url}/kotani"

    monkeypatch.setattr(receiver_server, "serve_receiver", reporting_to(receiver_server.serve_receiver, deliver_to))
    with serve_in_thread(state) as sb:
        code, out = cli(
            "run",
            str(mixed_file(tmp_path / "p.csv")),
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            "--listen",
            "127.0.0.1:0",
            *FAST,
            *extra,
            env={"KOTANI_WEBHOOK_SECRET": SECRET},
        )
    return code, out, state


def test_webhooks_alone_complete_a_batch_with_the_poller_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started = time.monotonic()
    code, out, state = _webhook_run(monkeypatch, tmp_path, Knobs(), "--no-poll", "--wait-timeout", "60")
    record("time_to_terminal_webhooks_only", time.monotonic() - started)
    assert code == 3, out
    assert tool_states(tmp_path / "l.db") == provider_states(state)
    ledger = Ledger(tmp_path / "l.db")
    events = ledger.events()
    ledger.close()
    assert events and all(e["verified"] for e in events)


def test_without_webhooks_and_without_polling_the_run_waits_then_exits_4(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    with serve_in_thread(state) as sb:
        code, out = cli(
            "run",
            str(mixed_file(tmp_path / "p.csv")),
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
            "--no-poll",
            "--wait-timeout",
            "1",
        )
    assert code == 4
    assert "8 rows still pending; continue with: batch-payouts resume" in out


def test_half_dropped_the_rest_duplicated_and_reordered_still_match_the_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    knobs = Knobs(webhook_drop=0.5, webhook_duplicate=1.0, webhook_reorder=1.0, webhook_replay=0.3)
    started = time.monotonic()
    code, out, state = _webhook_run(monkeypatch, tmp_path, knobs)
    record("time_to_terminal_half_dropped", time.monotonic() - started)
    ours, theirs = tool_states(tmp_path / "l.db"), provider_states(state)
    record("ledger_rows_checked", len(theirs))
    record("ledger_rows_disagreeing", sum(ours.get(k) != v for k, v in theirs.items()))
    assert code == 3, out
    assert ours == theirs


# -- forged deliveries --------------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> tuple[Receiver, Ledger, str]:
    """A receiver over a ledger holding one submitted row with reference bX-2-1."""
    ledger = Ledger(tmp_path / "l.db")
    from batch_payouts.model import MobileMoneyPayout

    payout = MobileMoneyPayout(
        row=2, name="A", amount=Decimal(100), currency="KES", country="KE", phone="+254712345678"
    )
    ledger.create_batch(
        "bX",
        env_id="e",
        fingerprint="f",
        label="",
        source="s",
        options={},
        headers=[],
        rows=[NewRow(2, RowState.READY, payout, {}, [])],
    )
    ledger.move("bX", 2, RowState.SUBMITTING)
    ledger.move("bX", 2, RowState.SUBMITTED, next_check=1e12)
    return Receiver(ledger, [SECRET], lambda: 1000.0), ledger, "bX-2-1"


def deliver(rcv: Receiver, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=rcv.app)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as c:
            return await c.post("/kotani", content=body, headers={"Content-Type": "application/json", **headers})

    import anyio

    return anyio.run(go)


def genuine(reference: str, status: str = "SUCCESSFUL", secret: str = SECRET) -> tuple[bytes, str]:
    data = {
        "status": status,
        "referenceId": reference,
        "referenceNumber": 1,
        "id": "x",
        "amount": 100,
        "walletId": "w",
        "transactionAmount": 99,
        "transactionCost": 1,
        "customerKey": "c",
    }
    return webhooks.signed_body(webhooks.WITHDRAWAL_EVENT, data, secret)


FORGERIES = {
    "unsigned": lambda body, sig: (body, {}),
    "wrong secret": lambda body, sig: (
        genuine("bX-2-1", secret="guess")[0],
        {"X-Kotani-Signature": genuine("bX-2-1", secret="guess")[1]},
    ),
    "body changed after signing": lambda body, sig: (
        body.replace(b'"amount":100', b'"amount":900'),
        {"X-Kotani-Signature": sig},
    ),
    "upper-case signature": lambda body, sig: (body, {"X-Kotani-Signature": sig.upper()}),
    "truncated signature": lambda body, sig: (body, {"X-Kotani-Signature": sig[:-2]}),
    "extra member": lambda body, sig: (body.replace(b'{"event"', b'{"x":1,"event"'), {"X-Kotani-Signature": sig}),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_forged_deliveries_are_refused_with_401_and_change_nothing(receiver: Any, forgery: str) -> None:
    rcv, ledger, ref = receiver
    body, sig = genuine(ref)
    forged_body, headers = FORGERIES[forgery](body, sig)
    before = ledger.row("bX", 2)
    response = deliver(rcv, forged_body, headers)
    assert (response.status_code, response.json()) == (401, {"message": "invalid signature"})
    assert ledger.row("bX", 2) == before
    assert ledger.events()[-1]["outcome"] == "refused: bad or missing signature"


def test_a_genuine_success_applies_and_its_replay_changes_nothing(receiver: Any) -> None:
    rcv, ledger, ref = receiver
    body, sig = genuine(ref)
    assert deliver(rcv, body, {"X-Kotani-Signature": sig}).status_code == 200
    after = ledger.row("bX", 2)
    assert after.state is RowState.SUCCEEDED
    assert deliver(rcv, body, {"X-Kotani-Signature": sig}).status_code == 200
    assert ledger.row("bX", 2) == after


def test_a_genuine_failure_only_schedules_a_confirming_read(receiver: Any) -> None:
    rcv, ledger, ref = receiver
    body, sig = genuine(ref, "FAILED")
    assert deliver(rcv, body, {"X-Kotani-Signature": sig}).status_code == 200
    row = ledger.row("bX", 2)
    assert row.state is RowState.SUBMITTED and row.confirm and row.next_check == 1000.0


def test_receiver_limits_content_type_and_size(receiver: Any) -> None:
    rcv, _, ref = receiver
    body, sig = genuine(ref)
    transport = httpx.ASGITransport(app=rcv.app)

    async def go() -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as c:
            a = await c.post("/k", content=body, headers={"Content-Type": "text/plain", "X-Kotani-Signature": sig})
            b = await c.post("/k", content=b"{" + b" " * 70000 + b"}", headers={"Content-Type": "application/json"})
            return [a.status_code, b.status_code]

    import anyio

    assert anyio.run(go) == [415, 413]


def test_without_a_secret_a_callback_only_schedules_a_read(tmp_path: Path, receiver: Any) -> None:
    _, ledger, ref = receiver
    open_receiver = Receiver(ledger, [], lambda: 5.0)
    body = json.dumps({"referenceId": ref, "status": "SUCCESSFUL"}).encode()
    assert deliver(open_receiver, body, {}).status_code == 200
    row = ledger.row("bX", 2)
    assert row.state is RowState.SUBMITTED and row.confirm and row.next_check == 5.0
    other = json.dumps({"referenceId": "not-ours-1-1", "status": "SUCCESSFUL"}).encode()
    deliver(open_receiver, other, {})
    assert ledger.events()[-1]["outcome"] == "ignored: not one of our references"


# -- results, retries ---------------------------------------------------------------------------


def _run_mixed(tmp_path: Path, state: SandboxState, sb_url: str, name: str = "Person 0") -> tuple[int, str]:
    data = mixed_file(tmp_path / "p.csv")
    rows = list(csv.reader(data.read_text().splitlines()))
    rows[1][0] = name
    with data.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return cli(
        "run",
        str(data),
        "--base-url",
        sb_url,
        "--state",
        str(tmp_path / "l.db"),
        *FAST,
        "--results",
        str(tmp_path / "p.results.xlsx"),
    )


def test_results_xlsx_matches_the_ledger_and_neutralises_formulas(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    payload = '=HYPERLINK("http://evil","x")'
    with serve_in_thread(state) as sb:
        code, out = _run_mixed(tmp_path, state, sb.base_url, name=payload)
    assert code == 3, out
    wb = openpyxl.load_workbook(tmp_path / "p.results.xlsx")
    assert wb.sheetnames == ["Results", "Cover", "Problems", "Summary"]
    ws = wb["Results"]
    headers = [c.value for c in ws[1]]
    rows = [dict(zip(headers, [c.value for c in r], strict=True)) for r in ws.iter_rows(min_row=2)]
    assert all(c.data_type != "f" for r in ws.iter_rows() for c in r)
    assert rows[0]["name"] == "'" + payload
    assert {r["reference_id"]: r["status"] for r in rows} == {
        ref: {"SUCCESSFUL": "paid"}.get(s, "failed") for ref, s in provider_states(state).items()
    }
    problems = list(wb["Problems"].iter_rows(min_row=2, values_only=True))
    assert {p[0] for p in problems} == {3, 5, 7}


def test_retry_pays_only_the_failed_rows_once(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    with serve_in_thread(state) as sb:
        _run_mixed(tmp_path, state, sb.base_url)
        code, out = cli(
            "retry",
            str(tmp_path / "p.results.xlsx"),
            "--cooloff",
            "0",
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
        )
        assert code == 3, out  # the same sandbox numbers fail again
        paid = [p["reference"] for p in state.ledger()["payouts"]]
        assert len(paid) == 8 + 3 and len(set(paid)) == 11
        retried = sorted(p.rsplit("-", 2)[1] for p in paid[8:])
        assert retried == ["3", "5", "7"]
        again = cli(
            "retry",
            paid[0].rsplit("-", 2)[0],
            "--cooloff",
            "0",
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
        )
        assert len(state.ledger()["payouts"]) == 11 + 3, again[1]  # only the still-failed rows, once more


def test_a_results_file_edited_to_mark_paid_rows_failed_and_change_amounts_pays_nothing_extra(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    with serve_in_thread(state) as sb:
        data = mixed_file(tmp_path / "p.csv")
        cli("run", str(data), "--base-url", sb.base_url, "--state", str(tmp_path / "l.db"), *FAST)
        rows = read_csv(results_file(tmp_path, "p"))
        for r in rows:
            r["status"] = "failed"
            r["amount"] = "99999"
        failed_row = next(r for r in rows if r["row"] == "3")
        failed_row["phone"] = "+254712999001"  # the team fixed the number
        rows.append({**rows[0], "row": "99"})  # a row the batch has not
        edited = tmp_path / "edited.csv"
        with edited.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        before = len(state.ledger()["payouts"])
        _code, out = cli(
            "retry", str(edited), "--cooloff", "0", "--base-url", sb.base_url, "--state", str(tmp_path / "l.db"), *FAST
        )
    assert "refused: row 2: marked failed in the file but succeeded in the ledger; not paid again" in out
    assert "refused: a row of the file (99) is not in batch" in out
    assert "correction: row 3: phone '+254700000011' -> '+254712999001'" in out
    assert "correction: row 3: the change to amount is ignored (amounts and currencies come from the ledger)" in out
    new = state.ledger()["payouts"][before:]
    assert sorted((p["payee"], p["amount"]) for p in new) == [
        ("+254700000012", 105),
        ("+254700000013", 103),
        ("+254712999001", 101),
    ]


def test_a_failed_attempt_corrected_after_its_retry_is_reported_as_paid_twice(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    data = tmp_path / "p.csv"
    data.write_text("name,phone,country,amount,currency\nA,+254712000111,KE,100,KES\n")
    with serve_in_thread(state) as sb:
        state.knobs.scripts = {"+254712000111": [(0.5, "CANCELLED"), (400, "SUCCESSFUL")]}
        code, _ = cli("run", str(data), "--base-url", sb.base_url, "--state", str(tmp_path / "l.db"), *FAST)
        assert code == 3
        state.knobs.scripts = {}
        code, out = cli(
            "retry",
            str(results_file(tmp_path, "p")),
            "--cooloff",
            "0",
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
        )
        assert code == 0, out
        state.clock.advance(500)
        retry_batch = next(line.split()[1] for line in out.splitlines() if line.startswith("batch r"))
        code, out = cli("reconcile", retry_batch, "--base-url", sb.base_url, "--state", str(tmp_path / "l.db"))
    assert code == 5
    assert "PAID TWICE: row 2 of batch " in out


def one_payee(tmp_path: Path, phone: str) -> tuple[SandboxState, Path]:
    """A sandbox and a one-row payout file for ``phone``."""
    data = tmp_path / "p.csv"
    data.write_text(f"name,phone,country,amount,currency\nA,{phone},KE,100,KES\n")
    return SandboxState(api_key=KEY, clock=SandboxClock(speed=20)), data


def test_running_retry_twice_on_one_results_file_pays_nothing_twice(tmp_path: Path) -> None:
    state, data = one_payee(tmp_path, "+254712000121")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        state.knobs.scripts = {"+254712000121": [(0.5, "FAILED")]}
        assert cli("run", str(data), *where, *FAST)[0] == 3
        state.knobs.scripts = {}
        assert cli("retry", str(results_file(tmp_path, "p")), "--cooloff", "0", *where, *FAST)[0] == 0
        code, out = cli("retry", str(results_file(tmp_path, "p")), "--cooloff", "0", *where, *FAST)
    first_retry = [p["reference"] for p in state.ledger()["payouts"]][1].rsplit("-", 2)[0]
    assert code == 3
    assert f"refused: row 2: already retried in batch {first_retry} (succeeded); not paid again" in out
    assert "nothing to retry" in out
    assert sorted(p["status"] for p in state.ledger()["payouts"]) == ["FAILED", "SUCCESSFUL"]


def test_a_row_whose_retry_failed_too_is_retried_as_attempt_3_after_both_are_read_again(tmp_path: Path) -> None:
    state, data = one_payee(tmp_path, "+254712000122")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        state.knobs.scripts = {"+254712000122": [(0.5, "FAILED")]}
        assert cli("run", str(data), *where, *FAST)[0] == 3
        assert cli("retry", str(results_file(tmp_path, "p")), "--cooloff", "0", *where, *FAST)[0] == 3
        state.knobs.scripts = {}
        code, out = cli("retry", str(results_file(tmp_path, "p")), "--cooloff", "0", *where, *FAST)
        reads = list(state.ledger()["payouts"])
    assert code == 0, out
    assert [p["reference"].rsplit("-", 1)[1] for p in reads] == ["1", "2", "3"]
    assert [p["status"] for p in reads] == ["FAILED", "FAILED", "SUCCESSFUL"]


def test_a_retry_is_refused_when_an_older_attempt_turned_out_paid(tmp_path: Path) -> None:
    state, data = one_payee(tmp_path, "+254712000123")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        state.knobs.scripts = {"+254712000123": [(0.5, "CANCELLED"), (300, "SUCCESSFUL")]}
        assert cli("run", str(data), *where, *FAST)[0] == 3
        state.knobs.scripts = {"+254712000123": [(0.5, "FAILED")]}
        assert cli("retry", str(results_file(tmp_path, "p")), "--cooloff", "0", *where, *FAST)[0] == 3
        state.clock.advance(400)  # the first attempt is corrected to SUCCESSFUL at the provider
        state.knobs.scripts = {}
        code, out = cli("retry", str(results_file(tmp_path, "p")), "--cooloff", "0", *where, *FAST)
        payouts = state.ledger()["payouts"]
    assert len(payouts) == 2, "no third payout: the first attempt was read again and found paid"
    assert code == 3
    ledger = Ledger(tmp_path / "l.db")
    try:
        errors = [r.error for b in ledger.batches() for r in ledger.rows(b.id) if r.attempt == 3]
    finally:
        ledger.close()
    assert errors == [f"not re-sent: the earlier attempt {payouts[0]['reference']} is SUCCESSFUL at Kotani"], out

"""The fault matrix, one knob of the sandbox at a time, each run through the CLI: reused references
in each provider mode, dripped answers, 429 in every style, an absurd wait, existing customers in
each provider mode, scripted status histories, and a receiver committing beside the runner."""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState, state_for_status
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests.figures import record
from tests.support import SandboxProcess, kill, payout_file, results_file, start_tool, tool_env

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "matrix-key-2c9"
SECRET = "matrix-secret-77"
FAST = [
    "--yes",
    "--quiet",
    "--reads-rate",
    "2000/5",
    "--rate",
    "6000/60,1000/5",
    "--visibility-lag",
    "0.5",
    "--attempt-timeout",
    "1",
    "--poll-interval",
    "0.2",
]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"KOTANI_API_KEY": KEY}, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def run(tmp_path: Path, url: str, data: Path, *extra: str, command: str = "run") -> tuple[int, str]:
    return cli(command, str(data), "--base-url", url, "--state", str(tmp_path / "l.db"), *FAST, *extra)


def executed(state: SandboxState) -> Counter[str]:
    return Counter(p["reference"] for p in state.ledger()["payouts"] if p["executed"])


def results(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))


def ledger_rows(tmp_path: Path) -> list[Any]:
    ledger = Ledger(tmp_path / "l.db")
    try:
        (batch,) = ledger.batches()
        return ledger.rows(batch.id)
    finally:
        ledger.close()


def assert_paid_once_and_agreeing(tmp_path: Path, state: SandboxState, rows: int) -> None:
    paid = executed(state)
    provider = {p["reference"]: p["status"] for p in state.ledger()["payouts"] if p["executed"]}
    ours = ledger_rows(tmp_path)
    disagreeing = [r.row for r in ours if r.state is not state_for_status(provider.get(str(r.reference), ""))]
    record("double_paid_rows", sum(1 for n in paid.values() if n > 1))
    record("lost_rows", rows - len(paid))
    record("ledger_rows_checked", len(ours))
    record("ledger_rows_disagreeing", len(disagreeing))
    assert len(paid) == rows and max(paid.values()) == 1, paid
    assert disagreeing == []


# -- reused references: the provider refuses, parks or silently pays them -----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reject", "park", "accept"])
def test_ambiguous_answers_are_safe_whatever_the_provider_does_with_a_reused_reference(
    tmp_path: Path, mode: str
) -> None:
    knobs = Knobs(duplicate_mode=mode, p_5xx_before=0.2, p_5xx_after=0.2, visibility_delay=10, rate_limits=False)
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=knobs, seed_value=7)
    with serve_in_thread(state) as sandbox:
        code, out = run(tmp_path, sandbox.base_url, payout_file(tmp_path / "p.csv", 30))
    assert code == 0, out[-2000:]
    assert_paid_once_and_agreeing(tmp_path, state, 30)
    resends = Counter(p["reference"] for p in state.ledger()["posts"])
    assert max(resends.values()) > 1, "some reference was sent again after a provable non-recording"


# -- dripped answers: the attempt deadline bounds the whole answer, not each byte ---------------------


def test_a_dripped_answer_is_abandoned_at_the_attempt_deadline_and_reconciled(tmp_path: Path) -> None:
    knobs = Knobs(drip_delay=0.05, rate_limits=False)  # a payout answer would take ~15 s to arrive
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=knobs)
    with serve_in_thread(state) as sandbox:
        code, out = run(tmp_path, sandbox.base_url, payout_file(tmp_path / "p.csv", 4), "--concurrency", "4")
    assert code == 0, out[-2000:]
    assert_paid_once_and_agreeing(tmp_path, state, 4)
    assert len(state.ledger()["posts"]) == 4, "one POST per row: the abandoned answers were reconciled, not resent"
    notes = {r.row: r.note for r in ledger_rows(tmp_path)}
    assert all(note for note in notes.values()), notes


# -- 429 in every style: no request of that class before the advertised wait --------------------------


@pytest.mark.slow
@pytest.mark.parametrize("style", ["body", "header_seconds", "header_date"])
def test_no_request_is_sent_before_the_wait_a_429_advertised(tmp_path: Path, style: str) -> None:
    # 100 ms of network latency, as a real link has: the catalog's parallel reads are then on
    # their way together, and only a request sent after a 429 was answered counts as early
    knobs = Knobs(p_429=0.15, retry_after=1, rate_limit_style=style, rate_limits=False, latency=0.1)
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=1), knobs=knobs, seed_value=5)
    with serve_in_thread(state) as sandbox:
        code, out = run(tmp_path, sandbox.base_url, payout_file(tmp_path / "p.csv", 12), "--concurrency", "1")
    seen = state.ledger()
    assert code == 0, out[-2000:]
    assert sum(seen["rate_limited"].values()) >= 2, "the knob did send 429s"
    assert seen["early_requests"] == {"money": 0, "reads": 0}
    assert_paid_once_and_agreeing(tmp_path, state, 12)


def test_an_absurd_wait_for_payouts_pauses_the_batch_with_a_message_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    state = SandboxState(
        api_key=KEY, clock=SandboxClock(speed=20), knobs=Knobs(p_429=0.0, retry_after=86_400, rate_limits=False)
    )
    data = payout_file(tmp_path / "p.csv", 3)
    with serve_in_thread(state) as sandbox:
        original = state.check_rate

        def payouts_refused(klass: Any, arrived: tuple[float, int] | None = None) -> None:
            if klass == "money":
                raise state._too_many(86_400, klass)
            original(klass, arrived)

        state.check_rate = payouts_refused  # type: ignore[method-assign]
        started = time.monotonic()
        code, out = run(tmp_path, sandbox.base_url, data)
        waited = time.monotonic() - started
        state.check_rate = original  # type: ignore[method-assign]
        again, out_again = run(tmp_path, sandbox.base_url, data)
    assert code == 1
    assert (
        "Kotani asked us to wait 86400 s before sending more (payouts); the batch is paused, resume it "
        "later. Continue with: batch-payouts resume"
    ) in " ".join(out.split())
    assert waited < 60, "it stopped instead of sleeping for a day"
    assert again == 0, out_again[-2000:]
    assert_paid_once_and_agreeing(tmp_path, state, 3)


def test_an_absurd_wait_before_anything_is_sent_says_so(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, knobs=Knobs(p_429=1.0, retry_after=86_400, rate_limits=False))
    with serve_in_thread(state) as sandbox:
        code, out = run(tmp_path, sandbox.base_url, payout_file(tmp_path / "p.csv", 3))
    assert code == 1
    # A run's first reads go out together: the wallets list (whose account the key is) and the
    # countries list; whichever 429 is heard first is the one named.
    assert re.search(
        r"error: Kotani asked us to wait 86400 s before sending more \(GET "
        r"/api/v3/(wallet/fiat|customer/support/countries)\); nothing more was sent\. Run the same "
        r"command again later$",
        " ".join(out.split()),
    ), out
    assert state.ledger()["posts"] == []


# -- customers that already exist at the provider --------------------------------------------------------


@pytest.mark.parametrize("mode", ["return", "reject", "duplicate"])
def test_payees_who_are_already_customers_are_paid_once_in_every_provider_mode(tmp_path: Path, mode: str) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=Knobs(rate_limits=False))
    data = payout_file(tmp_path / "p.csv", 6)
    phones = [r["phone"] for r in csv.DictReader(data.read_text().splitlines()) if r["phone"]]
    with state.lock:
        for phone in phones[:3]:
            state.create_customer({"phone_number": phone, "country_code": "KE"})
    state.knobs.existing_customer_mode = mode
    with serve_in_thread(state) as sandbox:
        code, out = run(tmp_path, sandbox.base_url, data)
    assert code == 0, out[-2000:]
    assert_paid_once_and_agreeing(tmp_path, state, 6)


# -- scripted status histories ------------------------------------------------------------------------

HISTORIES = {
    "+254712000201": [(0.5, "CANCELLED"), (2.0, "SUCCESSFUL")],  # a failure the provider corrects
    "+254712000202": [(0.5, "EXPIRED"), (2.0, "SUCCESSFUL")],
    "+254712000203": [(0.5, "ON_HOLD_BY_PARTNER")],  # a status no document names
    "+254712000204": [(0.5, "SUCCESSFUL"), (600.0, "REVERSED")],  # reversed long after the run
}


@pytest.mark.slow
def test_scripted_histories_end_where_the_provider_ends(tmp_path: Path) -> None:
    data = tmp_path / "p.csv"
    data.write_text(
        "name,phone,country,amount,currency\n"
        + "".join(f"P{i},{phone},KE,{100 + i},KES\n" for i, phone in enumerate(HISTORIES))
    )
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=Knobs(rate_limits=False, scripts=HISTORIES))
    with serve_in_thread(state) as sandbox:
        code, out = run(tmp_path, sandbox.base_url, data, "--wait-timeout", "8")
        assert code == 4, out[-2000:]  # the unknown status is still in flight when the wait ends
        by_phone = {r["phone"]: r for r in results(results_file(tmp_path, "p"))}
        assert by_phone["+254712000203"]["status"] == "waiting for the provider"
        assert by_phone["+254712000203"]["provider_status"] == "ON_HOLD_BY_PARTNER"
        state.clock.advance(700)
        batch = ledger_rows(tmp_path)[0].batch_id
        code, out = cli("reconcile", batch, "--base-url", sandbox.base_url, "--state", str(tmp_path / "l.db"))
    assert code == 3
    assert (
        "corrected by the provider: row 5: SUCCESSFUL became REVERSED at Kotani; succeeded -> failed here"
        in " ".join(out.split())
    )
    states = {r.row: r.state for r in ledger_rows(tmp_path)}
    assert states == {2: RowState.SUCCEEDED, 3: RowState.SUCCEEDED, 4: RowState.SUBMITTED, 5: RowState.FAILED}
    assert max(executed(state).values()) == 1


# -- a receiver process and the runner commit to one ledger at once -------------------------------------


@pytest.mark.slow
def test_a_separate_receiver_and_the_runner_share_the_ledger_without_locking_errors(tmp_path: Path) -> None:
    state_path = tmp_path / "l.db"
    data = payout_file(tmp_path / "p.csv", 120)
    env = tool_env(KEY, "http://127.0.0.1:9", KOTANI_WEBHOOK_SECRET=SECRET)  # the receiver calls nobody
    receiver, receiver_url = start_receiver(env, state_path, tmp_path / "listen.log")
    with SandboxProcess(
        KEY,
        speed=20,
        knobs={"rate_limits": False, "webhook_duplicate": 0.5},
        webhook_secret=SECRET,
        webhook_url=f"{receiver_url}/kotani",
    ) as sandbox:
        env = tool_env(KEY, sandbox.url, KOTANI_WEBHOOK_SECRET=SECRET)
        try:
            runner = start_tool(
                [
                    "run",
                    str(data),
                    "--state",
                    str(state_path),
                    *FAST,
                    "--concurrency",
                    "16",
                    "--callback-url",
                    f"{receiver_url}/kotani",
                ],
                env,
                tmp_path / "run.log",
            )
            assert runner.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-2000:]
            time.sleep(1.0)  # let the last deliveries land while the receiver still runs
            assert receiver.poll() is None, "the receiver died"
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
        delivered = [w for w in sandbox.ledger()["webhooks"] if w.get("outcome") == "delivered"]
        executed_refs = Counter(p["reference"] for p in sandbox.ledger()["payouts"] if p["executed"])
    logs = (tmp_path / "run.log").read_text() + (tmp_path / "listen.log").read_text()
    assert "locked" not in logs and "Traceback" not in logs, logs[-2000:]
    assert len(delivered) > 50, "webhooks were committed by the receiver while the runner ran"
    assert len(executed_refs) == 120 and max(executed_refs.values()) == 1
    ledger = Ledger(state_path)
    try:
        record("integrity_checks", 1, ok=ledger.integrity_ok())
        assert ledger.integrity_ok()
        assert len(ledger.events()) >= len(delivered)
    finally:
        ledger.close()


def start_receiver(env: dict[str, str], state: Path, log: Path) -> tuple[Any, str]:
    """A `listen` process on a port of its own choosing; its URL is the one it says it receives on."""
    proc = start_tool(["listen", "--listen", "127.0.0.1:0", "--state", str(state)], env, log)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if said := re.search(r"receiving webhooks on (http://\S+)", log.read_text()):
            return proc, said.group(1)
        time.sleep(0.02)  # waiting on another process's start-up
    kill(proc)
    raise AssertionError("the receiver could not start: " + log.read_text()[-2000:])

"""Guards around a run: one runner per batch, repeats across batches, interruptions, events."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.ledger import Ledger, NewRow
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests.support import SandboxProcess, payout_file, tool_command, tool_env

KEY = "guard-key-c4"
FAST = ["--yes", "--quiet", "--reads-rate", "2000/5", "--rate", "3000/60,500/5", "--poll-interval", "0.2"]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"KOTANI_API_KEY": KEY}, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_a_second_runner_on_the_same_batch_is_refused(tmp_path: Path) -> None:
    data = payout_file(tmp_path / "p.csv", 2)
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    with serve_in_thread(state) as sb:
        base = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db"), *FAST]
        code, out = cli("run", str(data), *base)
        assert code == 0
        batch = next(line.split()[1] for line in out.splitlines() if line.startswith("batch b"))
        ledger = Ledger(tmp_path / "l.db")
        host = socket.gethostname()
        ledger.db.execute(
            "UPDATE batches SET lease_owner = ?, lease_expires = ?", (f"pid 1 on {host}", time.time() + 60)
        )
        ledger.close()
        code, out = cli("resume", batch, *base)
    assert code == 1
    assert f"error: batch {batch} is being run by pid 1 on {host}; wait for it to finish" in out


def test_a_repeat_of_an_earlier_batch_is_blocked_unless_allowed(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    first = tmp_path / "nov.csv"
    first.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\n")
    second = tmp_path / "nov-again.csv"
    second.write_text("name,phone,country,amount,currency,note\nA,+254712345678,KE,100,KES,copy\n")
    with serve_in_thread(state) as sb:
        base = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db"), *FAST]
        assert cli("run", str(first), *base)[0] == 0
        code, out = cli("run", str(second), *base)
        assert code == 3 and "not paid (repeat): 1 row (2) already paid or being paid for this label" in out
        assert "to pay one again on purpose: --pay-again ROW --reason TEXT" in out
        assert len(state.ledger()["payouts"]) == 1
        assert cli("run", str(second), *base, "--label", "december")[0] == 0
        assert len(state.ledger()["payouts"]) == 2


def test_customers_are_looked_up_once_and_reused_across_batches(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=Knobs(existing_customer_mode="duplicate"))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\nA,+254712345678,KE,200,KES\n")
    b.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,300,KES\n")
    with serve_in_thread(state) as sb:
        base = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db"), *FAST, "--concurrency", "1"]
        cli("run", str(a), *base)
        cli("run", str(b), *base, "--label", "bonus")
    assert len(state.ledger()["customers"]) == 1, "one customer even though the sandbox would duplicate"
    assert len(state.ledger()["payouts"]) == 3


def test_events_are_written_as_json_lines(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    with serve_in_thread(state) as sb:
        cli(
            "run",
            str(payout_file(tmp_path / "p.csv", 3)),
            "--base-url",
            sb.base_url,
            "--state",
            str(tmp_path / "l.db"),
            *FAST,
            "--events",
            str(tmp_path / "events.jsonl"),
        )
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines and lines[-1]["counts"] == {"succeeded": 3}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_130_and_the_batch_resumes(tmp_path: Path) -> None:
    data = payout_file(tmp_path / "p.csv", 30)
    with SandboxProcess(KEY, speed=5, knobs={"latency": 0.2, "rate_limits": False}) as sandbox:
        env = tool_env(KEY, sandbox.url)
        args = ["run", str(data), "--state", str(tmp_path / "l.db"), *FAST, "--concurrency", "1"]
        proc = subprocess.Popen(tool_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not sandbox.ledger()["payouts"] and time.monotonic() < deadline:
            time.sleep(0.05)  # interrupt once payouts are leaving
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, out + err
        assert "interrupted; " in err and " had already left and are recorded; nothing is lost" in " ".join(err.split())
        done = subprocess.run(tool_command(*args), env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        refs = [p["reference"] for p in sandbox.ledger()["payouts"]]
        assert len(refs) == 30 == len(set(refs))


def test_a_payout_that_never_left_is_retried_with_backoff_within_a_budget(tmp_path: Path) -> None:
    from decimal import Decimal

    import anyio

    from batch_payouts.engine.submit import Context, RunState, Settings, pay
    from batch_payouts.kotani.client import ApiKey, KotaniClient
    from batch_payouts.model import RowState, TillPayout
    from batch_payouts.ratelimit import READS_DEFAULT, Limiter, Window

    ledger = Ledger(tmp_path / "l.db")
    till = TillPayout(row=2, name="Shop", amount=Decimal(100), currency="KES", country="KE", till_number="174379")
    ledger.create_batch(
        "bN",
        env_id="e",
        fingerprint="f",
        label="",
        source="s",
        options={},
        headers=[],
        rows=[NewRow(2, RowState.READY, till, {}, [])],
    )
    now = [1000.0]

    async def go(nobody_listens: str) -> None:
        async with KotaniClient(nobody_listens, ApiKey("k")) as client:
            ctx = Context(
                ledger,
                client,
                Limiter((Window(1000, 1.0),), margin=0, klass="money"),
                Limiter(READS_DEFAULT),
                Settings(send_budget=3),
                env_id="e",
                clock=lambda: now[0],
                run=RunState(wallets={"KES": "w"}),
            )
            for expected in (1, 2, 3):
                await pay(ctx, ledger.row("bN", 2))
                row = ledger.row("bN", 2)
                assert row.state is RowState.READY and row.next_check > now[0]
                assert ctx.run.tries[2] == expected
            assert ctx.run.gave_up == {2}
            assert ledger.row("bN", 2).note == "not sent: ConnectError 3 times; run the batch again later"

    with socket.socket() as bound_not_listening:  # held for the whole test: connections to it are refused
        bound_not_listening.bind(("127.0.0.1", 0))
        anyio.run(go, f"http://127.0.0.1:{bound_not_listening.getsockname()[1]}")
    ledger.close()

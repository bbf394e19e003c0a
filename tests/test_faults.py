"""The fault matrix of the pay-exactly-once issue, run through the CLI against a served sandbox."""

from __future__ import annotations

import csv
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests.figures import record
from tests.support import payout_file, results_file

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "fault-key-81c"
FAST = [
    "--yes",
    "--quiet",
    "--reads-rate",
    "2000/5",
    "--visibility-lag",
    "0.5",
    "--attempt-timeout",
    "1",
    "--poll-interval",
    "0.2",
    "--concurrency",
    "8",
]


def run_cli(tmp_path: Path, state: SandboxState, data: Path, *extra: str) -> tuple[int, str]:
    with serve_in_thread(state) as sandbox:
        result = CliRunner().invoke(
            main,
            ["run", str(data), "--base-url", sandbox.base_url, "--state", str(tmp_path / "l.db"), *FAST, *extra],
            env={"KOTANI_API_KEY": KEY},
            catch_exceptions=False,
        )
    return result.exit_code, result.stdout + result.stderr


def executed(state: SandboxState) -> Counter[str]:
    return Counter(p["reference"] for p in state.ledger()["payouts"] if p["executed"])


def read_results(path: Path) -> list[dict[str, Any]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))


@pytest.mark.slow
def test_five_hundred_rows_under_every_fault_are_paid_exactly_once(tmp_path: Path) -> None:
    knobs = Knobs(
        p_5xx_before=0.10,
        p_5xx_after=0.05,
        p_drop_after=0.05,
        p_hang_after=0.05,
        hang_seconds=5,
        p_garbled_after=0.02,
        p_429=0.03,
        retry_after=1,
        duplicate_mode="accept",
        visibility_delay=20,
        rate_limits=False,
    )
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=knobs, seed_value=3)
    data = payout_file(tmp_path / "p.csv", 500)
    code, output = run_cli(tmp_path, state, data, "--rate", "6000/60,1000/5")
    assert code == 0, output[-3000:]
    paid = executed(state)
    record("double_paid_rows", sum(1 for n in paid.values() if n > 1))
    record("lost_rows", 500 - len(paid))
    assert len(paid) == 500 and max(paid.values()) == 1
    outcomes = Counter(p["outcome"].split(" ")[0] for p in state.ledger()["posts"])
    assert outcomes["500"] > 20, "5xx before recording were injected (and retried)"
    assert outcomes["recorded"] == 500, "ambiguous answers never led to a second payout"
    assert {r["status"] for r in read_results(results_file(tmp_path, "p"))} == {"paid"}


def test_insufficient_balance_pauses_that_currency_and_the_others_complete(tmp_path: Path) -> None:
    state = SandboxState(
        api_key=KEY, clock=SandboxClock(speed=20), balances={"KES": Decimal(400)}, knobs=Knobs(rate_limits=False)
    )
    data = payout_file(tmp_path / "p.csv", 12, currency_mix=True)
    code, output = run_cli(tmp_path, state, data, "--allow-partial")
    assert code == 3
    assert (
        "KES rows paused: Insufficient funds in fiat wallet. Top up the KES payout balance, then run again." in output
    )
    rows = read_results(results_file(tmp_path, "p"))
    ugx = [r for r in rows if r["currency"] == "UGX"]
    kes = [r for r in rows if r["currency"] == "KES"]
    assert ugx and all(r["status"] == "paid" for r in ugx)
    assert any(r["status"] == "not sent yet" and "Insufficient funds" in r["reason"] for r in kes)
    assert sum(Decimal(r["result_amount"]) for r in kes if r["status"] == "paid") <= 400


def test_a_plan_the_balance_cannot_cover_is_refused_without_allow_partial(tmp_path: Path) -> None:
    state = SandboxState(api_key=KEY, balances={"KES": Decimal(100)})
    code, output = run_cli(tmp_path, state, payout_file(tmp_path / "p.csv", 3))
    assert code == 3
    assert (
        "error: the payout balance does not cover this run; top up, or use --allow-partial to pay what it covers"
        in output
    )
    assert state.ledger()["posts"] == []


def test_a_provider_refusal_with_a_reason_rejects_the_row(tmp_path: Path) -> None:
    """The payout goes to a wallet id the provider does not hold: the provider's own 404 and its
    reason end the row as rejected, and nothing was paid."""
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20))
    data = tmp_path / "p.csv"
    data.write_text("name,country,amount,currency,method,till_number\nShop,KE,100,KES,till,174379\n")
    code, _output = run_cli(tmp_path, state, data, "--allow-partial", "--wallet", "KES=wallet-closed-last-year")
    assert code == 3
    (row,) = read_results(results_file(tmp_path, "p"))
    assert row["status"] == "failed" and row["reason"] == "Wallet Not Found"
    seen = state.ledger()
    assert [p["outcome"] for p in seen["posts"]] == ["404 Wallet Not Found"], "the refusal came from the provider"
    assert seen["payouts"] == []


def test_a_wrong_key_stops_the_run_and_nothing_is_lost(tmp_path: Path) -> None:
    state = SandboxState(api_key="another-key")
    code, output = run_cli(tmp_path, state, payout_file(tmp_path / "p.csv", 2))
    assert code == 1
    assert "Kotani answered 401: Invalid API Key" in output
    assert KEY not in output


def test_a_payout_answered_5xx_and_slow_to_appear_is_never_resent(tmp_path: Path) -> None:
    """The grace rule: "not found" right after an ambiguous answer is not believed."""
    knobs = Knobs(p_5xx_after=0.3, duplicate_mode="accept", visibility_delay=20, rate_limits=False)
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=knobs, seed_value=3)
    code, output = run_cli(tmp_path, state, payout_file(tmp_path / "p.csv", 40), "--rate", "6000/60,1000/5")
    paid = executed(state)
    record("double_paid_rows", sum(1 for n in paid.values() if n > 1))
    assert code == 0, output[-2000:]
    assert len(paid) == 40 and max(paid.values()) == 1

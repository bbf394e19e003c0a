"""With the limiter at the provider's numbers, a run draws no 429 (the bench measures the rate)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests.figures import record

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures


@pytest.mark.slow
def test_no_429_with_the_limiter_at_the_providers_numbers(tmp_path: Path) -> None:
    state = SandboxState(
        api_key="k",
        clock=SandboxClock(speed=1.0),
        balances={"KES": Decimal(10**9)},
        knobs=Knobs(money_per_minute=600, money_burst=20, reads_per_5s=100, settle_seconds=0.5),
    )
    data = tmp_path / "p.csv"
    data.write_text(
        "name,country,amount,currency,method,till_number\n"
        + "".join(f"Shop {i},KE,{100 + i},KES,till,{174000 + i}\n" for i in range(45))
    )
    with serve_in_thread(state) as sb:
        result = CliRunner().invoke(
            main,
            [
                "run",
                str(data),
                "--base-url",
                sb.base_url,
                "--state",
                str(tmp_path / "l.db"),
                "--yes",
                "--quiet",
                "--rate",
                "600/60,20/5",
                "--reads-rate",
                "100/5",
                "--poll-interval",
                "0.5",
            ],
            env={"KOTANI_API_KEY": "k"},
        )
    record("rate_limited_429s", state.rate_limited["money"] + state.rate_limited["reads"])
    assert result.exit_code == 0, result.output
    assert state.rate_limited == {"money": 0, "reads": 0}
    assert len(state.ledger()["payouts"]) == 45


def test_one_record_of_holds_serves_the_clients_and_the_limiters_of_a_session() -> None:
    from batch_payouts.ratelimit import MONEY, READS, Holds, Limiter, Window

    now = [0.0]
    holds = Holds(clock=lambda: now[0], max_hold=900)
    payouts = Limiter((Window(60, 60.0),), klass=MONEY, holds=holds, clock=lambda: now[0], margin=0)
    reads = Limiter((Window(100, 5.0),), klass=READS, holds=holds, clock=lambda: now[0], margin=0)
    holds.hold(READS, 30)  # as the client records a 429 on a status read
    assert (reads.delay(), payouts.delay()) == (30.0, 0.0)
    payouts.pause(10)  # as the engine notes a 429 on a payout
    now[0] = 12.0
    assert (reads.delay(), payouts.delay(), holds.held_for(MONEY)) == (18.0, 0.0, 0.0)
    assert payouts.name == "payouts" and reads.name == "reads"
    assert holds.too_long(901) and not holds.too_long(900)

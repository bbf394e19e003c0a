"""Money safety with real processes: kills at random moments, and a sandbox that accepts reused
references silently and hides new payouts for a while, so only our reconciliation keeps money safe."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState
from tests.figures import record, scale, shard
from tests.hooks import BROKEN_VAR
from tests.support import SandboxProcess, kill, payout_file, run_tool, start_tool, tool_env

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "kill-test-key-5d1"
UNSAFE_SANDBOX = {
    "duplicate_mode": "accept",
    "visibility_delay": 20,
    "latency": 0.08,
    "p_5xx_after": 0.1,
    "rate_limits": False,
}
FAST = [
    "--yes",
    "--quiet",
    "--rate",
    "3000/60,600/5",
    "--reads-rate",
    "2000/5",
    "--visibility-lag",
    "3",
    "--attempt-timeout",
    "2",
    "--poll-interval",
    "0.3",
    "--concurrency",
    "2",
]


def campaign(
    tmp_path: Path, *, rows: int, kills: int, seed: int, broken: str = "", duplicate_mode: str = "accept"
) -> dict[str, Any]:
    data = payout_file(tmp_path / "payouts.csv", rows)
    state = tmp_path / "ledger.sqlite3"
    rng = random.Random(seed)
    with SandboxProcess(KEY, speed=10, knobs={**UNSAFE_SANDBOX, "duplicate_mode": duplicate_mode}) as sandbox:
        env = tool_env(KEY, sandbox.url, **({BROKEN_VAR: broken} if broken else {}))
        args = ["run", str(data), "--state", str(state), *FAST]
        done, killed, attempts = False, 0, 0
        while killed < kills and attempts < kills * 3:
            attempts += 1
            proc = start_tool(args, env, tmp_path / "runs.log")
            time.sleep(rng.uniform(0.9, 2.2))
            if proc.poll() is not None:
                done = True
                break
            kill(proc)
            killed += 1
        final = run_tool(args, env, timeout=240)
        return {"sandbox": sandbox.ledger(), "state": state, "killed": killed, "final": final, "finished_early": done}


def executed_per_reference(sandbox_ledger: dict[str, Any]) -> Counter[str]:
    return Counter(p["reference"] for p in sandbox_ledger["payouts"] if p["executed"])


@pytest.mark.slow
@pytest.mark.parametrize("duplicate_mode", ["accept", "reject"], ids=["protection-off", "protection-on"])
def test_twenty_kills_pay_every_row_exactly_once(tmp_path: Path, duplicate_mode: str) -> None:
    for round_ in my_rounds(scale(1, 50)):
        where = tmp_path / f"round{round_}"
        where.mkdir()
        result = campaign(where, rows=200, kills=20, seed=11 + round_, duplicate_mode=duplicate_mode)
        check_campaign(result, kind=f"random, protection {'off' if duplicate_mode == 'accept' else 'on'}")


def my_rounds(rounds: int) -> list[int]:
    """The rounds this process runs (its shard of them)."""
    index, count = shard()
    return [r for r in range(rounds) if r % count == index]


def check_campaign(result: dict[str, Any], *, kind: str) -> None:
    assert result["final"].returncode == 0, result["final"].stderr[-2000:]
    assert result["killed"] >= 20 and not result["finished_early"]
    paid = executed_per_reference(result["sandbox"])
    ledger = Ledger(result["state"])
    try:
        integrity = ledger.integrity_ok()
        (batch,) = ledger.batches()
        rows = ledger.rows(batch.id)
        refs = {r.reference for r in rows}
        provider = {p["reference"]: p["status"] for p in result["sandbox"]["payouts"]}
        posts = Counter(p["reference"] for p in result["sandbox"]["posts"] if p["reference"] in refs)
        record("kill_points", result["killed"], kind=kind)
        record("double_paid_rows", sum(1 for n in paid.values() if n > 1))
        record("lost_rows", len(refs - set(paid)))
        record("ledger_rows_checked", len(rows))
        record("ledger_rows_disagreeing", sum(1 for r in rows if r.provider_status != provider.get(r.reference)))
        record("integrity_checks", 1, ok=integrity)
        record("posts_per_row_attempt", sum(posts.values()) / max(len(refs), 1))
        assert integrity
        assert len(rows) == 200
        assert refs == set(paid), "every valid row paid, nothing else"
        assert max(paid.values()) == 1, f"paid twice: {[r for r, n in paid.items() if n > 1]}"
        assert all(r.state is RowState.SUCCEEDED for r in rows)
    finally:
        ledger.close()


@pytest.mark.slow
def test_the_same_campaign_against_a_build_without_reconciliation_pays_twice(tmp_path: Path) -> None:
    # 200 rows and 10 kills, like the campaign's own size: with 60 rows a faster run could pay
    # everything between the 5 kills and never be caught resending (seen once in CI)
    result = campaign(tmp_path, rows=200, kills=10, seed=11, broken="reconciliation")
    paid = executed_per_reference(result["sandbox"])
    record("unsafe_resends_in_broken_build", sum(n - 1 for n in paid.values()))
    assert max(paid.values()) > 1, "the kill test must catch a build that resends unknown rows blindly"

"""Named crash points: the process is SIGKILLed at each point, on its first or third pass, then
restarted until the run ends. Every case proves its kill struck (exit by SIGKILL, and the launcher's
line naming the point and pass), and the provider must show every valid row paid exactly once."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_payouts.crash import POINTS
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState, state_for_status
from tests.figures import long_profile, record
from tests.hooks import CRASH_MARK, CRASH_VAR
from tests.support import SandboxProcess, WebhookRelay, run_tool, tool_env

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "crash-key-6b0"
SECRET = "crash-secret-e1"
ONCE = {"after_validation", "after_batch_persisted", "while_writing_results"}
PASSES = (1, 2, 3, 5, 8) if long_profile() else (1, 3)  # which pass (row position) the kill strikes
CASES = [(p, n) for p in POINTS for n in ((1,) if p in ONCE else PASSES)]
# 20 rows, 17 of them new mobile payees, and a 502 after every second payout: every per-row point is
# passed at least 8 times in a run (the long profile's last kill position): the answer point by the ten
# clean answers, the reconcile point by the ten ambiguous ones
ROWS = """name,phone,country,amount,currency,method,till_number,bank_code,account_number
A,+2547120{i:02d}301,KE,101,KES,,,,
B,+2547120{i:02d}302,KE,102,KES,,,,
C,+254700000011,KE,103,KES,,,,
D,,KE,104,KES,till,174301,,
E,+2547120{i:02d}305,KE,105,KES,,,,
F,,KE,106,KES,bank,,68,0123456789
G,+2567720{i:02d}307,UG,1007,UGX,,,,
H,+2547120{i:02d}308,KE,108,KES,,,,
I,+2547120{i:02d}309,KE,109,KES,,,,
J,+2547120{i:02d}310,KE,110,KES,,,,
K,+2547120{i:02d}311,KE,111,KES,,,,
L,+2547120{i:02d}312,KE,112,KES,,,,
M,+2547120{i:02d}313,KE,113,KES,,,,
N,+2547120{i:02d}314,KE,114,KES,,,,
O,+2547120{i:02d}315,KE,115,KES,,,,
P,+2547120{i:02d}316,KE,116,KES,,,,
Q,+2547120{i:02d}317,KE,117,KES,,,,
R,+2547120{i:02d}318,KE,118,KES,,,,
S,+2547120{i:02d}319,KE,119,KES,,,,
T,+2547120{i:02d}320,KE,120,KES,,,,
"""


@pytest.fixture(scope="module")
def rig() -> Iterator[tuple[SandboxProcess, WebhookRelay]]:
    """One sandbox for every case, delivering signed webhooks to a relay that forwards them to the
    receiver of whichever run is alive (each run listens on a port of its own choosing)."""
    knobs = {
        "duplicate_mode": "accept",
        "visibility_delay": 10,
        "latency": 0.05,
        "rate_limits": False,
        "fault_every": 2,
    }
    with (
        WebhookRelay() as relay,
        SandboxProcess(KEY, speed=10, knobs=knobs, webhook_secret=SECRET, webhook_url=relay.url) as sandbox,
    ):
        yield sandbox, relay


@pytest.mark.slow
@pytest.mark.parametrize(("point", "nth"), CASES, ids=[f"{p}:{n}" for p, n in CASES])
def test_a_kill_at_a_named_point_loses_nothing_and_pays_nothing_twice(
    tmp_path: Path, rig: tuple[SandboxProcess, WebhookRelay], point: str, nth: int
) -> None:
    sandbox, relay = rig
    data = tmp_path / "p.csv"
    data.write_text(ROWS.format(i=CASES.index((point, nth))))  # new payees: customer creation happens
    args = [
        "run",
        str(data),
        "--state",
        str(tmp_path / "l.db"),
        "--label",
        f"{point}-{nth}",
        "--yes",
        "--quiet",
        "--listen",
        "127.0.0.1:0",
        "--visibility-lag",
        "1.5",
        "--attempt-timeout",
        "2",
        "--poll-interval",
        "0.2",
        "--rate",
        "3000/60,500/5",
        "--reads-rate",
        "2000/5",
    ]
    env = tool_env(KEY, sandbox.url, KOTANI_WEBHOOK_SECRET=SECRET, **relay.hook_env())
    crashed = run_tool(args, {**env, CRASH_VAR: f"{point}:{nth}"})
    struck = crashed.returncode == -9 and f"{CRASH_MARK}{point}:{nth}" in crashed.stderr
    record("kill_points", 1 if struck else 0, kind="named crash points")
    record("crash_point_reached", 1 if struck else 0, point=point, nth=nth)
    assert struck, f"the kill at {point}:{nth} never happened (exit {crashed.returncode}): {crashed.stderr[-1500:]}"
    final: subprocess.CompletedProcess[str] | None = None
    for _ in range(5):
        final = run_tool(args, env)
        if final.returncode in (0, 3):
            break
    assert final is not None and final.returncode == 3, (crashed.returncode, final and final.stderr[-1500:])
    ledger = Ledger(tmp_path / "l.db")
    try:
        integrity = ledger.integrity_ok()
        record("integrity_checks", 1, ok=integrity)
        assert integrity
        batches = ledger.batches()
        assert len(batches) == 1
        rows = ledger.rows(batches[0].id)
        refs = {r.reference for r in rows}
        paid = Counter(p["reference"] for p in sandbox.ledger()["payouts"] if p["executed"] and p["reference"] in refs)
        record("double_paid_rows", sum(1 for n in paid.values() if n > 1))
        record("lost_rows", len(refs - set(paid)))
        assert set(paid) == refs and max(paid.values()) == 1
        provider = {p["reference"]: p["status"] for p in sandbox.ledger()["payouts"] if p["reference"] in refs}
        disagree = [r.row for r in rows if r.state is not state_for_status(provider[r.reference])]
        record("ledger_rows_checked", len(rows))
        record("ledger_rows_disagreeing", len(disagree))
        assert not disagree
        assert sum(r.state is RowState.FAILED for r in rows) == 1
    finally:
        ledger.close()

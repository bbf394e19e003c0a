"""The shipped package holds only inert hook points: no environment variable can kill an installed
copy at a crash point or switch off a money-safety guard. (The tests install those hooks themselves:
in-process with monkeypatch, in real processes through tests/launch.py.)"""

from __future__ import annotations

import csv
import importlib
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from batch_payouts import crash
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests import hooks
from tests.support import payout_file, results_file, tool_env

KEY = "shipped-key-4e2"
SWITCHES = {
    # what the package once read, and what the test launcher reads: every point, every guard
    "BATCH_PAYOUTS_CRASH": ",".join(f"{p}:1" for p in crash.POINTS),
    "BATCH_PAYOUTS_BROKEN": ",".join(hooks.GUARDS),
    hooks.CRASH_VAR: ",".join(f"{p}:1" for p in crash.POINTS),
    hooks.BROKEN_VAR: ",".join(hooks.GUARDS),
}


def installed_tool() -> Path:
    path = Path(sys.executable).parent / "batch-payouts"
    if not path.exists():
        pytest.fail(f"the installed console script is missing ({path}): install the package with pip first")
    return path


def pay(tmp_path: Path, name: str, extra_env: dict[str, str]) -> tuple[int, str, Counter[str], list[str]]:
    """Run the installed tool on 4 rows against a provider that answers 502 to every payout it records
    and pays a reused reference again (so only reconciliation keeps money safe)."""
    where = tmp_path / name
    where.mkdir()
    data = payout_file(where / "p.csv", 4)
    knobs = Knobs(fault_every=1, duplicate_mode="accept", rate_limits=False)
    state = SandboxState(api_key=KEY, clock=SandboxClock(speed=20), knobs=knobs)
    with serve_in_thread(state) as sb:
        url = sb.base_url
        done = subprocess.run(
            [
                str(installed_tool()),
                "run",
                str(data),
                "--state",
                str(where / "l.db"),
                "--yes",
                "--quiet",
                "--visibility-lag",
                "0.5",
                "--attempt-timeout",
                "2",
                "--poll-interval",
                "0.2",
                "--reads-rate",
                "2000/5",
                "--rate",
                "3000/60,500/5",
            ],
            env={**tool_env(KEY, sb.base_url), **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    paid = Counter(p["reference"] for p in state.ledger()["payouts"] if p["executed"])
    statuses = [
        r["status"] for r in csv.DictReader(results_file(where, "p").read_text(encoding="utf-8-sig").splitlines())
    ]
    said = (
        (done.stdout + done.stderr).replace(str(where), "<folder>").replace(url.removeprefix("http://"), "<provider>")
    )
    said = re.sub(r"\bb[0-9a-f]{8,}\b", "<batch>", said)  # the batch id names the provider's address too
    return done.returncode, said, paid, statuses


def test_an_installed_copy_ignores_every_crash_and_broken_build_switch(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as both:  # two processes at once: each mostly waits on its start-up
        plain_run = both.submit(pay, tmp_path, "plain", {})
        switched_run = both.submit(pay, tmp_path, "switched", SWITCHES)
        (plain, plain_said, plain_paid, plain_statuses) = plain_run.result()
        (switched, switched_said, switched_paid, switched_statuses) = switched_run.result()
    assert plain == 0, plain_said[-2000:]
    assert switched == plain, switched_said[-2000:]
    assert switched_said == plain_said
    assert switched_statuses == plain_statuses == ["paid"] * 4
    assert sorted(switched_paid.values()) == sorted(plain_paid.values()) == [1] * 4, (
        "reconciliation was still on: every ambiguous payout was read back, none sent again"
    )


def test_the_hook_points_are_inert_by_default() -> None:
    assert crash.on_point is None
    for name in crash.POINTS:
        crash.point(name)  # returns: nothing is installed


def test_the_package_holds_no_broken_build_switch() -> None:
    assert not hasattr(crash, "broken") and not hasattr(crash, "removed_guards")
    for module, function, unsafe in hooks.REMOVALS.values():
        assert getattr(importlib.import_module(module), function) is not unsafe

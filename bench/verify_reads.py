"""Confirmation of payee at real concurrency: how much of the provider's reads allowance 1,000
look-ups use, and whether any drew a 429.

`validate FILE --verify` runs as its own process, as a user runs it, against the sandbox served
in this process at real speed with its rate limits on (100 reads per 5 s, the provider's figure)
and a latency per request. The file has ROWS different payees, so every row is one look-up. The
sandbox records when each look-up reached it; from those times:

* used: look-ups per 5 s over the whole verification (first to last look-up), against the limit;
* busiest: the most look-ups in any 5-s window (never above the limit, or the sandbox says 429);
* 429s: reads the sandbox refused (should be 0).

Run: python bench/verify_reads.py [--rows 1000] [--latency 0.05]   (about a minute for 1,000 rows)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-verify-key"
LIMIT, WINDOW = 100, 5.0  # the provider's reads allowance


def payees_file(path: Path, rows: int) -> Path:
    lines = ["name,phone,country,amount,currency,method"]
    lines += [f"Person {i},+25471{3000000 + i:07d},KE,{1000 + i},KES,mobile_money" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def busiest(times: list[float], window: float) -> int:
    """The most events in any ``window``-second span."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def once(tree: Path, rows: int, latency: float, folder: Path) -> dict[str, float]:
    state = SandboxState(
        api_key=KEY,
        clock=SandboxClock(speed=1.0),
        balances={"KES": Decimal(10**9)},
        knobs=Knobs(reads_per_5s=LIMIT, latency=latency),
    )
    data = payees_file(folder / "payees.csv", rows)
    with serve_in_thread(state, deliver_webhooks=False) as sandbox:
        env = {**os.environ, "PYTHONPATH": str(tree), "KOTANI_API_KEY": KEY}
        args = [
            sys.executable,
            "-m",
            "batch_payouts",
            "validate",
            str(data),
            "--verify",
            "--base-url",
            sandbox.base_url,
            "--state",
            str(folder / f"{time.monotonic_ns()}.db"),
        ]
        started = time.perf_counter()
        done = subprocess.run(args, env=env, cwd=tree, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(done.stderr)
    times = sorted(x["at"] for x in state.lookups)
    span = times[-1] - times[0]
    used = (len(times) - 1) / span * WINDOW if span else float(len(times))
    return {
        "lookups": len(times),
        "span": span,
        "used": used,
        "busiest": busiest(times, WINDOW),
        "429s": state.rate_limited["reads"],
        "elapsed": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request at the sandbox")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        f = once(ROOT, opts.rows, opts.latency, Path(tmp))
        print(
            f"{f['lookups']:.0f} look-ups in {f['span']:.1f} s "
            f"({opts.latency * 1000:.0f} ms latency; the command took {f['elapsed']:.1f} s): "
            f"{f['used']:.1f} reads per {WINDOW:g} s = {f['used'] / LIMIT:.1%} of the limit of {LIMIT}; "
            f"busiest {WINDOW:g} s: {f['busiest']} (limit {LIMIT}); 429s: {f['429s']}"
        )


if __name__ == "__main__":
    main()

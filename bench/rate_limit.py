"""Achieved payout rate against the configured limit, side by side with a naive sequential client.

The sandbox enforces N payouts per minute (and 20 per 5 s); the tool runs with the same N.
A naive client sends one request after another and, on a 429, sleeps what it is told.
Run: python bench/rate_limit.py [N] [ROWS]   (takes a little over two minutes at N=60)
"""

from __future__ import annotations

import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx
from click.testing import CliRunner

from batch_payouts.cli import main as cli
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread

KEY = "bench-key"


def payouts_file(path: Path, rows: int) -> None:
    lines = ["name,country,amount,currency,method,till_number"]
    lines += [f"Shop {i},KE,{100 + i},KES,till,{174000 + i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def busiest_minute(state: SandboxState) -> int:
    """The most payouts the provider recorded in any 60-second window."""
    times = sorted(p["at"] for p in state.posts if p["outcome"] == "recorded")
    return max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)


def achieved(state: SandboxState) -> tuple[int, float, int]:
    posts = [p for p in state.posts]
    ok = [p["at"] for p in posts if p["outcome"] == "recorded"]
    limited = sum(1 for p in posts if p["outcome"].startswith("429"))
    span = (max(ok) - min(ok)) if len(ok) > 1 else 1.0
    return len(ok), span, limited


def sandbox_state(n: int) -> SandboxState:
    return SandboxState(
        api_key=KEY,
        clock=SandboxClock(speed=1.0),
        balances={"KES": Decimal(10**9)},
        knobs=Knobs(money_per_minute=n, money_burst=20, settle_seconds=0.5),
    )


def ours(n: int, rows: int, tmp: Path) -> tuple[int, float, int, int]:
    state = sandbox_state(n)
    data = tmp / "p.csv"
    payouts_file(data, rows)
    with serve_in_thread(state) as sb:
        res = CliRunner().invoke(
            cli,
            [
                "run",
                str(data),
                "--base-url",
                sb.base_url,
                "--state",
                str(tmp / "l.db"),
                "--yes",
                "--quiet",
                "--rate",
                f"{n}/60,20/5",
                "--poll-interval",
                "1",
            ],
            env={"KOTANI_API_KEY": KEY},
        )
    limited = state.rate_limited["money"]
    count, span, _ = achieved(state)
    print(f"batch-payouts busiest 60 s window: {busiest_minute(state)} payouts (limit {n})")
    return count, span, limited, res.exit_code


def naive(n: int, rows: int) -> tuple[int, float, int]:
    state = sandbox_state(n)
    limited = 0
    with (
        serve_in_thread(state) as sb,
        httpx.Client(base_url=sb.base_url, headers={"Authorization": f"Bearer {KEY}"}) as http,
    ):
        wallet = next(w["id"] for w in http.get("/api/v3/wallet/fiat").json()["data"] if w["currency"] == "KES")
        for i in range(rows):
            while True:
                r = http.post(
                    "/api/v3/withdraw/lipa-na-mpesa",
                    json={
                        "amount": 100 + i,
                        "walletId": wallet,
                        "referenceId": f"naive-{i}",
                        "lipaNaMpesaDetails": {"businessShortcode": str(174000 + i)},
                    },
                )
                if r.status_code != 429:
                    break
                limited += 1
                time.sleep(float(r.json()["data"].get("retryAfter", 1)))
        ok = [p["at"] for p in state.posts if p["outcome"] == "recorded"]
        limited = state.rate_limited["money"]
    print(f"naive busiest 60 s window: {busiest_minute(state)} payouts (limit {n})")
    return len(ok), max(ok) - min(ok), limited


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 90
    with tempfile.TemporaryDirectory() as tmp:
        count, span, limited, code = ours(n, rows, Path(tmp))
    rate = (count - 1) / span * 60
    print(f"limit N = {n}/min (burst 20 per 5 s), {rows} payouts")
    print(
        f"batch-payouts: {count} payouts in {span:5.1f} s = {rate:5.1f}/min = {rate / n:5.1%} of N, 429s: {limited}, exit {code}"
    )
    ncount, nspan, nlimited = naive(n, rows)
    nrate = (ncount - 1) / nspan * 60
    print(
        f"naive client : {ncount} payouts in {nspan:5.1f} s = {nrate:5.1f}/min = {nrate / n:5.1%} of N, 429s: {nlimited}"
    )
    print(f"ratio ours/naive rate: {rate / nrate:4.2f}x; 429s avoided: {nlimited - limited}")


if __name__ == "__main__":
    main()

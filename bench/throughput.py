"""Unthrottled throughput: `run` at concurrency 64 against a naive sequential loop, 100 ms latency.

The sandbox runs as its own process with its rate limits lifted, 100 ms of latency on every
request and payouts settling 0.2 s after they are made. Both clients do the same work per row
against the same sandbox: look the payee's customer up by phone, create it, send the payout, read
its status until it is final.

* batch-payouts: `run FILE --concurrency 64` with the tool's limits lifted (`--rate`,
  `--reads-rate`) and no name check; rows per second from the sandbox receiving the first payout
  to the process's exit (the results file written included; start-up and the catalog left out).
* naive: one request after another with one HTTP connection, reading the status again at once
  until it is final.

    python bench/throughput.py [--rows 1000] [--naive-rows 30] [--compare /work/main]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository, for tests.support

from tests.support import SandboxProcess  # noqa: E402

KEY = "bench-throughput-key"
KNOBS = {"latency": 0.1, "rate_limits": False, "settle_seconds": 0.2}
FINAL = {"SUCCESSFUL", "FAILED", "CANCELLED", "EXPIRED", "REVERSED", "REQUIRE_REVIEW"}
FLAT_OUT = [
    "--rate",
    "1000000/1",
    "--reads-rate",
    "1000000/1",
    "--no-name-check",
    "--poll-interval",
    "0.2",
    "--visibility-lag",
    "1",
]


def payout_file(path: Path, rows: int, first: int) -> Path:
    lines = ["name,phone,country,amount,currency"]
    lines += [f"Person {i},+2547{first + i:08d},KE,{100 + i % 50},KES" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def tool(tree: Path, rows: int, concurrency: int, folder: Path) -> tuple[float, int]:
    """Rows per second of `run` from the first payout to the end, and its exit code."""
    with SandboxProcess(KEY, speed=1, knobs=KNOBS) as sandbox:
        data = payout_file(folder / f"t{time.monotonic_ns()}.csv", rows, 20_000_000)
        env = {**os.environ, "PYTHONPATH": str(tree), "KOTANI_API_KEY": KEY}
        args = [
            sys.executable,
            "-m",
            "batch_payouts",
            "run",
            str(data),
            "--base-url",
            sandbox.url,
            "--state",
            str(folder / f"{time.monotonic_ns()}.db"),
            "--yes",
            "--quiet",
            "--concurrency",
            str(concurrency),
            *FLAT_OUT,
        ]
        proc = subprocess.Popen(args, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first = None
        while first is None and proc.poll() is None:
            with httpx.Client() as probe:
                said = probe.get(
                    sandbox.url + "/__sandbox__/ledger", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
                ).json()["data"]
            if said["posts"]:
                first = time.perf_counter()
            time.sleep(0.02)  # polling another process, not a timed wait of the measured work
        _, err = proc.communicate(timeout=3600)
        if first is None:
            raise RuntimeError(f"no payout reached the sandbox: {err.decode()[-2000:]}")
        return rows / (time.perf_counter() - first), proc.returncode


def naive(rows: int) -> float:
    """Rows per second of a sequential loop doing the same per row."""
    with (
        SandboxProcess(KEY, speed=1, knobs=KNOBS) as sandbox,
        httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http,
    ):
        wallet = next(w["id"] for w in http.get("/api/v3/wallet/fiat").json()["data"] if w["currency"] == "KES")
        started = time.perf_counter()
        for i in range(rows):
            phone = f"+2547{30_000_000 + i:08d}"
            found = http.get(f"/api/v3/customer/mobile-money/phone/{phone}")
            if found.status_code == 404:
                found = http.post(
                    "/api/v3/customer/mobile-money",
                    json={"phone_number": phone, "country_code": "KE", "account_name": f"Person {i}"},
                )
            key = found.json()["data"]["customer_key"]
            ref = f"naive-{i}"
            http.post(
                "/api/v3/withdraw/mobile-money",
                json={"customer_key": key, "amount": 100, "walletId": wallet, "referenceId": ref},
            ).raise_for_status()
            while True:
                status = http.get(f"/api/v3/withdraw/status/{ref}")
                if status.status_code == 200 and status.json()["data"]["status"] in FINAL:
                    break
        return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--naive-rows", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--compare", type=Path)
    opts = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("compare", opts.compare.resolve())] if opts.compare else [])
    with tempfile.TemporaryDirectory() as tmp:
        baseline = naive(opts.naive_rows)
        print(f"naive sequential loop: {baseline:6.2f} rows/s ({opts.naive_rows} rows)")
        for label, tree in trees:
            rate, code = tool(tree, opts.rows, opts.concurrency, Path(tmp))
            print(
                f"[{label}] run, concurrency {opts.concurrency}, {opts.rows} rows: {rate:6.1f} rows/s "
                f"= {rate / baseline:5.1f}x naive (exit {code}); goal >= 50x"
            )
        again = naive(opts.naive_rows)
        print(f"naive sequential loop again: {again:6.2f} rows/s (load drift check)")


if __name__ == "__main__":
    main()

"""Start to first payout: `run` on the 22-row sample against the sandbox with 100 ms of latency.

The time is from starting the `run` process to the sandbox receiving its first payout POST (the
sandbox's ledger is polled every 20 ms). Printed next to the floor measured in the same run: the
tool's own start-up (`--version`) plus the round trips that must happen one after another before
any payout can leave: the catalog (the countries list, with the wallets, the bank lists and the
networks of the expected countries read alongside it), the check of the payee's account, the
payout itself (3 x latency; a mobile-money payee new to the account also needs its customer looked
up and created first, and a country the tool does not expect costs one more catalog round trip).
Both are measured with the package's bytecode compiled first (`compileall`), as after any first
run on a user's machine: this machine sets PYTHONDONTWRITEBYTECODE=1, so without it every start
compiles the package's 19,000 lines again (about 0.3 s). `--cold` removes the package's bytecode
first and measures without it.
`--compare TREE` times another checkout the same way. Run:
    python bench/first_payout.py [--latency 0.1] [--compare /work/main]
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

from validate_100k import set_bytecode  # noqa: E402

from tests.support import SandboxProcess  # noqa: E402

KEY = "bench-first-payout-key"
SEQUENTIAL_ROUND_TRIPS = 3


def first_post(sandbox: SandboxProcess, proc: subprocess.Popen[bytes], started: float, deadline: float) -> float:
    while time.perf_counter() < deadline and proc.poll() is None:
        try:
            if sandbox.ledger()["posts"]:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError("no payout reached the sandbox")


def once(tree: Path, latency: float, folder: Path) -> float:
    with SandboxProcess(KEY, speed=1, knobs={"latency": latency}) as sandbox:
        env = {**os.environ, "PYTHONPATH": str(tree), "KOTANI_API_KEY": KEY}
        state = folder / f"{time.monotonic_ns()}.db"
        args = [
            sys.executable,
            "-m",
            "batch_payouts",
            "run",
            str(ROOT / "samples" / "payouts.csv"),
            "--base-url",
            sandbox.url,
            "--state",
            str(state),
            "--yes",
            "--quiet",
            "--results",
            str(folder / "out.csv"),
        ]
        started = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return first_post(sandbox, proc, started, started + 60)
        finally:
            proc.terminate()
            proc.wait(10)


def startup(tree: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "batch_payouts", "--version"], env=env, cwd=tree, stdout=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--cold", action="store_true", help="do not compile the package's bytecode first")
    opts = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("compare", opts.compare.resolve())] if opts.compare else [])
    with tempfile.TemporaryDirectory() as tmp:
        for label, tree in trees:
            set_bytecode(tree, compiled=not opts.cold)
            start = min(startup(tree) for _ in range(opts.runs))
            best = min(once(tree, opts.latency, Path(tmp)) for _ in range(opts.runs))
            floor = start + SEQUENTIAL_ROUND_TRIPS * opts.latency
            print(
                f"[{label}] start to first payout, 22 rows, {opts.latency * 1000:.0f} ms latency: {best:5.2f} s "
                f"(best of {opts.runs}); floor {floor:4.2f} s (start-up {start:4.2f} s + "
                f"{SEQUENTIAL_ROUND_TRIPS} x latency) = {best / floor:4.2f}x floor{' (cold)' if opts.cold else ''}; goal <= 1.5 s: "
                f"{'ok' if best <= 1.5 else 'over'}"
            )


if __name__ == "__main__":
    main()

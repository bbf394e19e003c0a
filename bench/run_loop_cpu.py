"""The run loop's cost while it waits on the rate limit: CPU and memory of `run` paying at the
provider's allowance (60 payouts a minute, 20 per 5 s), a small batch against a 100,000-row one.

The sandbox runs as its own process with the provider's rate limits and no latency. `run FILE
--yes --quiet` pays against it; once the first minute's allowance is spent (the sandbox has seen
61 payouts: from then on every payout waits for the window), the tool's own CPU time (user +
system, from /proc) is read at the start and the end of a window of wall time, with the payouts
the sandbox received meanwhile and the tool's resident memory. The window pays about one row a
second whatever the batch size, so the difference between the two sizes is what the batch's size
costs the loop. Then the run is stopped like Ctrl-C (SIGTERM).

`--compare TREE` measures another checkout the same way, after this one, in the same run.

    python bench/run_loop_cpu.py [--rows 100000] [--small 150] [--window 60] [--name-check] [--compare TREE]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository, for tests.support

from tests.support import SandboxProcess  # noqa: E402

KEY = "bench-run-loop-key"
STEADY = 61  # payouts seen before measuring: the first minute's allowance spent
TICKS = os.sysconf("SC_CLK_TCK")


def payout_file(path: Path, rows: int) -> Path:
    lines = ["name,phone,country,amount,currency"]
    lines += [f"Person {i},+2547{10_000_000 + i:08d},KE,{100 + i % 50},KES" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def posts(sandbox: SandboxProcess) -> int:
    return len(sandbox.ledger()["posts"])


def measure(tree: Path, rows: int, window: float, name_check: bool, folder: Path) -> tuple[float, int, float, float]:
    """CPU share of one core, payouts made and resident MiB over ``window`` seconds of paying;
    and seconds from start to the first minute's allowance spent."""
    with SandboxProcess(KEY, speed=1, balances={"KES": "1000000000"}) as sandbox:
        data = payout_file(folder / f"p{rows}.csv", rows)
        args = [sys.executable, "-m", "batch_payouts", "run", str(data), "--base-url", sandbox.url]
        args += ["--state", str(folder / f"l{rows}.db"), "--yes", "--quiet", "--results", str(folder / "out.csv")]
        if not name_check:
            args.append("--no-name-check")
        assert rows > STEADY, "the batch must outlast the first minute"
        env = {**os.environ, "PYTHONPATH": str(tree), "KOTANI_API_KEY": KEY}
        started = time.monotonic()
        proc = subprocess.Popen(args, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while posts(sandbox) < STEADY:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode()[-2000:] if proc.stderr else "run ended")
                time.sleep(0.5)  # watching another process, not timing the measured work
            ready = time.monotonic() - started
            cpu0, wall0, paid0 = cpu_seconds(proc.pid), time.monotonic(), posts(sandbox)
            time.sleep(window)
            cpu1, wall1, paid1 = cpu_seconds(proc.pid), time.monotonic(), posts(sandbox)
            rss = resident_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        return (cpu1 - cpu0) / (wall1 - wall0), paid1 - paid0, rss, ready


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=150)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--name-check", action="store_true", help="check each payee's name too (look-ups)")
    parser.add_argument("--compare", type=Path, help="another checkout to measure the same way")
    opts = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("compare", opts.compare.resolve())] if opts.compare else [])
    with tempfile.TemporaryDirectory() as tmp:
        for label, tree in trees:
            found = {}
            for rows in (opts.small, opts.rows):
                share, paid, rss, ready = measure(tree, rows, opts.window, opts.name_check, Path(tmp))
                found[rows] = share
                print(
                    f"[{label}] {rows:>7} rows: {share * 100:5.2f} % of a core over {opts.window:.0f} s of paying "
                    f"({paid} payouts, {share * opts.window / max(paid, 1) * 1000:4.1f} ms of CPU each; "
                    f"allowance spent {ready:5.1f} s after start), resident {rss:6.1f} MiB"
                )
            extra = (found[opts.rows] - found[opts.small]) * 100
            print(
                f"[{label}] what {opts.rows:,} rows cost beyond {opts.small}: {extra:+.2f} % of a core; "
                f"goal < 2 % of a core at {opts.rows:,} rows: {'met' if found[opts.rows] < 0.02 else 'not met'}"
            )


if __name__ == "__main__":
    main()

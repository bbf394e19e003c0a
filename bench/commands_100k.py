"""`status`, `resume --sandbox` and `results` on a settled batch, next to the tool's own start-up.

Give a ledger holding one settled batch (made by `bench/fixture.py`, or by `bench/scale.py`);
each command is its own process, timed from start to exit with its peak RSS (`getrusage` of a
fresh parent), several times, the best and the median printed; the start-up (`--version`) is
measured in between the commands, in the same run, and each figure is given as a multiple of it.

`resume` is timed on a copy of the ledger and its sandbox books. The first resume writes the
batch's results file, as the run that settled the batch did (printed, not counted); each resume
after it finds the file up to date. `--compare TREE` times another checkout on its own copy (e.g. /work/main, the code before).
`--only NAME` (repeatable) times only the commands named, e.g. `--only "results -o out.xlsx"`.
Each tree's bytecode is removed first (every start compiles the package, as on this machine, which
sets PYTHONDONTWRITEBYTECODE=1); `--compiled` compiles it instead (a user's machine after the
first run, or any wheel installed by pip).

    python bench/scale.py --rows 100000 --state /tmp/scale/ledger.sqlite3
    python bench/commands_100k.py --state /tmp/scale/ledger.sqlite3 [--runs 3] [--compare /work/main]
    python bench/commands_100k.py --state /tmp/scale/ledger.sqlite3 --only "results -o out.xlsx"
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from validate_100k import set_bytecode, timed

ROOT = Path(__file__).resolve().parent.parent
GOALS = {
    "status": (3.0, 500),
    "resume --sandbox": (3.0, 500),
    "results -o out.xlsx": (25.0, 500),
    "results -o out.csv": (25.0, 500),
}


def only_batch(ledger: Path) -> tuple[str, int]:
    db = sqlite3.connect(ledger)
    try:
        ((batch,),) = db.execute("SELECT id FROM batches").fetchall()
        return str(batch), int(db.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
    finally:
        db.close()


def copy_ledger(ledger: Path, folder: Path) -> Path:
    """The ledger, its write-ahead log and its sandbox books, copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in ledger.parent.glob(ledger.name + "*"):
        if not path.name.endswith(".lock"):
            shutil.copy2(path, folder / path.name)
    return folder / ledger.name


def commands(batch: str, state: Path, out: Path) -> dict[str, list[str]]:
    where = ["--state", str(state)]
    return {
        "status": ["status", batch, *where],
        "resume --sandbox": [
            "resume",
            batch,
            "--sandbox",
            "--yes",
            "--quiet",
            "--results",
            str(out / "resumed.csv"),
            *where,
        ],
        "results -o out.xlsx": ["results", batch, "-o", str(out / "out.xlsx"), *where],
        "results -o out.csv": ["results", batch, "-o", str(out / "out.csv"), *where],
    }


def measure(label: str, tree: Path, ledger: Path, runs: int, folder: Path, only: list[str]) -> None:
    state = copy_ledger(ledger, folder / "ledger")
    batch, rows = only_batch(state)
    starts: list[float] = []
    print(f"[{label}] batch {batch}, {rows} rows")
    for name, args in commands(batch, state, folder).items():
        if only and name not in only:
            continue
        if name.startswith("resume"):
            took, mib, code, _ = timed(args, tree)  # the results file a run leaves, written once (not counted)
            print(f"[{label}] {name:20} first, results file written: {took:6.2f} s, peak {mib:4.0f} MiB, exit {code}")
        seconds, peaks = [], []
        for _ in range(runs):
            starts.append(timed(["--version"], tree)[0])
            took, mib, code, _ = timed(args, tree)
            seconds.append(took)
            peaks.append(mib)
        start = statistics.median(starts)
        ratio, limit = statistics.median(seconds) / start, GOALS[name]
        verdict = "ok" if ratio <= limit[0] and max(peaks) < limit[1] else "over"
        print(
            f"[{label}] {name:20} median {statistics.median(seconds):6.2f} s (best {min(seconds):6.2f}) = "
            f"{ratio:5.1f}x start-up (goal <= {limit[0]:g}x), peak {max(peaks):4.0f} MiB (goal < {limit[1]}), "
            f"exit {code}: {verdict}"
        )
    print(f"[{label}] start-up (--version): median {statistics.median(starts):5.2f} s of {len(starts)} runs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True, help="a ledger holding one settled batch")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another checkout to time the same way (e.g. main)")
    parser.add_argument("--compare-runs", type=int, default=1, help="runs of each command of the other checkout")
    parser.add_argument("--only", action="append", choices=list(GOALS), default=[], help="time only this command")
    parser.add_argument(
        "--compiled", action="store_true", help="compile each tree's bytecode first (default: remove it: cold starts)"
    )
    opts = parser.parse_args()
    trees = [("this tree", ROOT, opts.runs)] + (
        [("compare", opts.compare.resolve(), opts.compare_runs)] if opts.compare else []
    )
    with tempfile.TemporaryDirectory(dir=opts.state.parent) as tmp:
        for label, tree, runs in trees:
            set_bytecode(tree, compiled=opts.compiled)
            print(f"[{label}] bytecode {'compiled' if opts.compiled else 'removed (cold starts)'}")
            measure(label, tree, opts.state, runs, Path(tmp) / label.replace(" ", "-"), opts.only)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

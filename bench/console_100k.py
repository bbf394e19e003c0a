"""The web console with a 100,000-row file: each page and step a finance team uses, timed and
measured, next to the tool's own start-up and `validate` of the same file measured in the same run.

Every step is its own process (the console's workspace opened on one ledger, as a restarted
server would), signs in through the console's own pages with starlette's test client, then times
one request: upload the file, open the draft's review page, submit the draft for approval, open
the batch's page (first page of rows, then the "failed" filter), open the batches list, read the
progress the live page streams, approve the batch (by typing its total) and let it run 30 s while
its progress is read every second. Each step's seconds count that request alone; its peak RSS is the
whole process's, and the page's size is printed. The goals (the issue sets none for the console;
these are the command line's): a page that reads a batch ≤ 3x the tool's start-up (as `status`);
the draft's review, which reads, checks and plans the whole file, ≤ 2x `validate --sandbox` of it
(a whole process, start-up included); submitting, which also writes every row to the ledger,
≤ 3x that; every step < 500 MiB.

    python bench/console_100k.py [--rows 100000] [--folder /tmp/console100k]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
STEPS = ("upload", "draft", "submit", "batch", "batch failed", "batches", "progress", "approve")
RUNNING_FOR = 30.0  # seconds the approved batch runs while its progress is read
GOALS = {"draft": ("validate", 2.0), "submit": ("validate", 3.0)}  # others: 3x start-up
MEMORY_GOAL = 500  # MiB


def payout_file(path: Path, rows: int) -> Path:
    lines = ["name,phone,country,amount,currency,reference"]
    lines += [f"Person {i},+2547{10_000_000 + i:08d},KE,{100 + i % 900},KES,S-{i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def step(name: str, folder: Path) -> dict[str, object]:
    """One step in this process; what it measured."""
    from starlette.testclient import TestClient

    from batch_payouts.app import passwords, serving
    from batch_payouts.app.session import SessionOptions
    from batch_payouts.app.workspace import WorkspaceOptions
    from batch_payouts.console import build_app

    notes = folder / "notes.json"
    known = json.loads(notes.read_text()) if notes.exists() else {}
    options = SessionOptions(state_path=folder / "ledger.sqlite3", sandbox=True)
    with serving.workspace(options, WorkspaceOptions()) as ws:
        if name == "upload":
            ws.session.sandbox.state.wallets["KES"].balance = Decimal(10**9)  # type: ignore[union-attr]
            with ws.ledger() as ledger:
                for who, role in (("amina", "maker"), ("brian", "approver")):
                    if ledger.user(who) is None:
                        hashed = passwords.hash_password(PASSWORD)
                        ledger.add_user(who, role=role, password_hash=hashed, totp_secret=None)
        client = TestClient(build_app(ws), follow_redirects=False)
        csrf = CSRF.search(client.get("/login").text).group(1)  # type: ignore[union-attr]
        who = "brian" if name == "approve" else "amina"
        signed = client.post("/login", data={"username": who, "password": PASSWORD, "csrf": csrf})
        assert signed.status_code == 303, signed.text[:300]
        csrf = CSRF.search(client.get("/batches").text).group(1)  # type: ignore[union-attr]
        started = time.perf_counter()
        if name == "upload":
            content = (folder / "pay.csv").read_bytes()
            answer = client.post(
                "/upload", data={"csrf": csrf, "label": "bench"}, files={"file": ("pay.csv", content, "text/csv")}
            )
            known["draft"] = answer.headers["location"]
        elif name == "draft":
            answer = client.get(known["draft"])
        elif name == "submit":
            answer = client.post(f"{known['draft']}/submit", data={"csrf": csrf})
            known["batch"] = answer.headers["location"]
        elif name == "batch":
            answer = client.get(known["batch"])
        elif name == "batch failed":
            answer = client.get(known["batch"] + "?show=failed")
        elif name == "batches":
            answer = client.get("/batches")
        elif name == "approve":
            total = re.search(r"Expected total: <strong>([^<]+)</strong>", client.get(known["batch"]).text)
            started = time.perf_counter()
            answer = client.post(f"{known['batch']}/approve", data={"csrf": csrf, "total": total.group(1)})  # type: ignore[union-attr]
            seconds = time.perf_counter() - started
            reads = while_running(ws, known["batch"].removeprefix("/batches/"))
            print(json.dumps({"seconds": seconds, "bytes": 0, "mib": peak_mib(), "reads": reads}), flush=True)
            os._exit(0)  # (the run goes on in a worker thread; stopping here is a crash it recovers from)
        else:
            person = ws.person("amina")
            assert person is not None
            answer = None
            ws.progress(person, known["batch"].removeprefix("/batches/"))
        seconds = time.perf_counter() - started
    notes.write_text(json.dumps(known))
    status = answer.status_code if answer is not None else 200
    assert status in (200, 303), (name, status, answer.text[:500] if answer is not None else "")
    return {
        "seconds": seconds,
        "bytes": len(answer.content) if answer is not None else 0,
        "mib": peak_mib(),
    }


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def while_running(ws: Any, batch_id: str, seconds: float = RUNNING_FOR) -> list[float]:
    """The seconds of each read of the progress the live page streams, every second while the
    approved batch runs for ``seconds``."""
    person = ws.person("brian")
    reads, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        ws.progress(person, batch_id)
        reads.append(time.perf_counter() - started)
        time.sleep(1.0)
    return reads


def in_child(args: list[str], *, check: bool = True) -> tuple[float, str]:
    """Wall seconds of a fresh process and its output (``check``: it must exit 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=check).stdout
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.folder)))
        return
    folder = args.folder or Path(tempfile.mkdtemp(prefix="console100k-"))
    folder.mkdir(parents=True, exist_ok=True)
    payout_file(folder / "pay.csv", args.rows)
    measured = {}
    for name in STEPS:
        _, out = in_child([sys.executable, __file__, "--folder", str(folder), "--step", name])
        measured[name] = json.loads(out.splitlines()[-1])
    start_up = min(in_child([sys.executable, "-m", "batch_payouts", "--version"])[0] for _ in range(3))
    check = [sys.executable, "-m", "batch_payouts", "validate", str(folder / "pay.csv"), "--sandbox"]
    validate = min(in_child([*check, "--state", str(folder / f"v{n}.sqlite3")], check=False)[0] for n in range(2))
    yardsticks = {"start-up": start_up, "validate": validate}
    print(f"{args.rows} rows; start-up (--version) {start_up:.2f} s; validate --sandbox of the file {validate:.2f} s")
    print(f"{'step':<14} {'seconds':>8} {'ratio':>17} {'page KB':>8} {'peak MiB':>9}  goal")
    for name, m in measured.items():
        seconds, mib = float(m["seconds"]), float(m["mib"])  # type: ignore[arg-type]
        against, goal = GOALS.get(name, ("start-up", 3.0))
        ratio = seconds / yardsticks[against]
        met = ratio <= goal and mib < MEMORY_GOAL
        print(
            f"{name:<14} {seconds:>8.2f} {ratio:>5.1f}x {against:<10} {int(m['bytes']) / 1024:>8.0f} {mib:>9.0f}"  # type: ignore[call-overload]
            f"  {'met' if met else 'over'} (≤ {goal:.0f}x {against}, < {MEMORY_GOAL} MiB)"
        )
    reads = sorted(measured["approve"]["reads"])  # type: ignore[arg-type]
    print(
        f"while the approved batch ran {RUNNING_FOR:.0f} s: {len(reads)} reads of its progress, median "
        f"{reads[len(reads) // 2]:.3f} s, slowest {reads[-1]:.3f} s; peak {measured['approve']['mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()

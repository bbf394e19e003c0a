"""The money-safety campaign and its report.

    python bench/reliability.py            # quick profile (CI): a few minutes
    python bench/reliability.py --long     # by hand: >= 1,000 kill points per mode; about 40 minutes on 2 cores

Runs the campaign (every test marked ``campaign``, fast and slow: the kill tests, the fault
matrix, webhooks, hostile files, output safety, the state machine, ...) with figure recording on,
then runs each guard's test against a deliberately broken build (pytest ``--without-guard GUARD``,
which the tests install in-process and pass to the processes they start through tests/launch.py)
and expects it to fail. Writes docs/reliability.md and exits non-zero when any bad figure is not
zero. This script owns the campaign's slow tests in CI (.ci/run's slow step leaves them out), so
the kill tests run once. The long profile splits the campaign over parallel pytest processes (the
kill rounds are mostly waiting on real time).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ["-m", "campaign", "-n", "0"]  # the marker selects the campaign's tests, fast and slow (see pyproject.toml)
BROKEN_BUILDS = {
    "reconciliation": [
        "tests/test_faults.py::test_five_hundred_rows_under_every_fault_are_paid_exactly_once",
        "tests/test_stateful.py",
    ],
    # The stateful model no longer meets the build without the grace rule in its quick profile, since
    # ambiguous rows are read again soon (a payout found early ends the wait): the dedicated test does.
    "grace": ["tests/test_faults.py::test_a_payout_answered_5xx_and_slow_to_appear_is_never_resent"],
    "constant_time_compare": ["tests/test_webhooks.py::test_verification_goes_through_the_constant_time_compare"],
    "output_escaping": [
        "tests/test_output_safety.py::test_no_executable_cell_in_any_output_and_retry_reads_back_the_originals"
    ],
    "zip_cap": ["tests/test_hostile_files.py", "-k", "zip-bomb"],
    "send_time_claim": [
        "tests/test_money_truth.py::test_only_the_claim_at_the_moment_of_sending_stops_a_resumed_batch",
        "tests/test_large_batches.py::test_a_row_paid_again_on_purpose_is_paid_once_whichever_retry_is_retried_again",
    ],
}
KILL_TEST = "tests/test_exactly_once.py::test_twenty_kills_pay_every_row_exactly_once"
KILL_SHARDS = 2
BAD = [
    "stateful_double_paid",
    "batch_graph_double payments",
    "batch_graph_false paid",
    "double_paid_rows",
    "lost_rows",
    "ledger_rows_disagreeing",
    "forged_accepted",
    "genuine_rejected",
    "state_regressions",
    "rate_limited_429s",
    "executable_output_cells",
    "round_trip_differences",
    "secret_hits",
]


def pytest_command(args: list[str]) -> list[str]:
    """pytest on campaign tests: ``-m campaign`` replaces the default ``-m 'not slow'``, so the slow ones run."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CAMPAIGN, *args]


def pytest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pytest_command(args), cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def commit() -> str:
    """The commit the campaign ran on (with "+changes" when the tree differs from it)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return (head.stdout.strip() or "unknown") + (" +changes" if dirty.stdout.strip() else "")


def long_jobs() -> list[tuple[list[str], dict[str, str]]]:
    """The campaign as parallel pytest runs: each kill mode in shards, the two state machines in
    shards, the rest."""
    machines = ("tests/test_stateful.py", "tests/test_batch_graph.py")
    jobs: list[tuple[list[str], dict[str, str]]] = [
        ([machine, f"--hypothesis-seed={i}"], {"BATCH_PAYOUTS_SHARD": f"{i}/2"})
        for machine in machines
        for i in range(2)
    ]
    for mode in ("protection-off", "protection-on"):
        jobs += [([f"{KILL_TEST}[{mode}]"], {"BATCH_PAYOUTS_SHARD": f"{i}/{KILL_SHARDS}"}) for i in range(KILL_SHARDS)]
    jobs.append(([*(f"--ignore={m}" for m in machines), "-k", "not twenty_kills"], {}))
    return jobs


def run_campaign(profile: str, env: dict[str, str]) -> bool:
    """Run the campaign tests; True when every one passed. Output tails go to stdout."""
    if profile == "quick":
        run = pytest([], env)
        print(run.stdout[-2000:])
        return run.returncode == 0
    ok = True
    with contextlib.ExitStack() as stack:
        procs = []
        for args, extra in long_jobs():
            log = stack.enter_context(tempfile.TemporaryFile(mode="w+"))
            procs.append(
                (
                    args,
                    log,
                    subprocess.Popen(
                        pytest_command(args),
                        cwd=ROOT,
                        env={**env, **extra},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        text=True,
                    ),
                )
            )
        for args, log, proc in procs:
            code = proc.wait()
            log.seek(0)
            print(f"--- {' '.join(args)[:120]}: exit {code}\n{log.read()[-1500:]}")
            ok = ok and code == 0
    return ok


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(figures: list[dict[str, Any]]) -> dict[str, Any]:
    sums: dict[str, float] = defaultdict(float)
    for f in figures:
        sums[f["name"]] += f["value"]
    posts = [f["value"] for f in figures if f["name"] == "posts_per_row_attempt"]
    integrity = [f for f in figures if f["name"] == "integrity_checks"]
    kills: dict[str, float] = defaultdict(float)
    for f in figures:
        if f["name"] == "kill_points":
            kills[f.get("kind", "other")] += f["value"]
    hostile = [f for f in figures if f["name"] == "hostile_files"]
    times = {
        k: max((f["value"] for f in figures if f["name"] == k), default=None)
        for k in ("time_to_terminal_webhooks_only", "time_to_terminal_poll_only", "time_to_terminal_half_dropped")
    }
    return {
        "sums": dict(sums),
        "posts_per_row_attempt": max(posts, default=0.0),
        "integrity_passed": sum(1 for f in integrity if f.get("ok")),
        "integrity_total": len(integrity),
        "hostile": hostile,
        "times": times,
        "kills": dict(kills),
    }


def broken_builds(env: dict[str, str]) -> dict[str, bool]:
    """guard -> True when its test failed against the build without it (as it must)."""
    caught = {}
    for guard, args in BROKEN_BUILDS.items():
        tests = [a for a in args if a.startswith("tests/")]
        flags = [a for a in args if not a.startswith("tests/")]
        # every test named for a guard must fail on its own against the build without it (exit 1: a test
        # failed; not 2-5, which would be a usage error, an interruption or no test collected)
        caught[guard] = all(
            pytest(["-x", test, *flags, "--without-guard", guard], {**env, "BATCH_PAYOUTS_FIGURES": ""}).returncode == 1
            for test in tests
        )
    return caught


def report(s: dict[str, Any], caught: dict[str, bool], profile: str, tests_ok: bool, seconds: float) -> str:
    sums = s["sums"]
    checked = int(sums.get("ledger_rows_checked", 0))
    disagreeing = int(sums.get("ledger_rows_disagreeing", 0))
    agreement = 100.0 * (checked - disagreeing) / checked if checked else 0.0
    refused = [h for h in s["hostile"] if h["outcome"] == "refused"]
    guards = ", ".join(f"{g}: {'caught' if c else 'NOT caught'}" for g, c in caught.items())
    worst_mem = max((h["peak_mib"] for h in s["hostile"]), default=0.0)
    worst_time = max((h["seconds"] for h in s["hostile"]), default=0.0)
    lines = [
        "# Reliability report",
        "",
        f"Profile: **{profile}**, run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min by "
        f"`bench/reliability.py` on commit {commit()}. Campaign tests " + ("passed." if tests_ok else "**FAILED**."),
        "",
        "| figure | value |",
        "|---|---|",
        f"| kill points (SIGKILL of real processes) | {int(sums.get('kill_points', 0))} ("
        + "; ".join(f"{kind}: {int(n)}" for kind, n in sorted(s["kills"].items()))
        + ") |",
        f"| double-paid rows | {int(sums.get('double_paid_rows', 0))} |",
        f"| lost rows | {int(sums.get('lost_rows', 0))} |",
        f"| ledger agreement with the provider under faults | {agreement:.2f} % of {checked} rows |",
        f"| unsafe resends (by our build) | {int(sums.get('double_paid_rows', 0))} |",
        f"| unsafe resends caught in the build without reconciliation | {int(sums.get('unsafe_resends_in_broken_build', 0))} |",
        f"| forged deliveries accepted | {int(sums.get('forged_accepted', 0))} of {int(sums.get('forged_deliveries', 0))} |",
        f"| genuine deliveries rejected | {int(sums.get('genuine_rejected', 0))} of {int(sums.get('genuine_deliveries', 0))} |",
        f"| state regressions (replays after the final state) | {int(sums.get('state_regressions', 0))} |",
        f"| 429s with the limiter at the provider's numbers | {int(sums.get('rate_limited_429s', 0))} |",
        f"| POSTs per row attempt (worst campaign; retries after 5xx/NotSent included) | {s['posts_per_row_attempt']:.2f} |",
        "| time to terminal, 8 rows, sandbox ×20 (webhooks only / poll only / half dropped) | "
        + " / ".join(f"{v:.1f} s" if v is not None else "n/a" for v in s["times"].values())
        + " |",
        f"| hostile files refused | {len(refused)} of {len(s['hostile'])} (the rest read and reported) |",
        f"| worst peak memory / time reading a hostile file | {worst_mem:.0f} MiB / {worst_time:.2f} s |",
        f"| executable output cells | {int(sums.get('executable_output_cells', 0))} |",
        f"| round-trip differences | {int(sums.get('round_trip_differences', 0))} |",
        f"| secret hits | {int(sums.get('secret_hits', 0))} |",
        f"| integrity checks passed | {s['integrity_passed']} of {s['integrity_total']} |",
        f"| stateful model (hypothesis, engine against the loopback sandbox): examples / steps | "
        f"{int(sums.get('stateful_examples', 0))} / {int(sums.get('stateful_steps', 0))} |",
        f"| double-paid rows seen by the stateful model | {int(sums.get('stateful_double_paid', 0))} |",
        "| batch graph (hypothesis, the commands over two accounts): examples / steps / double payments / false "
        f'"paid" | {int(sums.get("batch_graph_examples", 0))} / {int(sums.get("batch_graph_steps", 0))} / '
        f"{int(sums.get('batch_graph_double payments', 0))} / {int(sums.get('batch_graph_false paid', 0))} |",
        f"| guards whose test fails against a build without them | {sum(caught.values())} of {len(caught)} "
        f"({guards}) |",
        "",
        "## Hostile files",
        "",
        "| file | outcome | peak MiB | seconds | sentence |",
        "|---|---|---|---|---|",
    ]
    for h in sorted(s["hostile"], key=lambda h: h["file"]):
        lines.append(
            f"| {h['file']} | {h['outcome']} | {h['peak_mib']:.0f} | {h['seconds']:.2f} | "
            f"{(h.get('message') or '').replace('|', '/')} |"
        )
    lines += [
        "",
        "## Scope and limits",
        "",
        "* The quick profile (CI) runs a small share of the long one (`--long`, by hand: 50 rounds of 20",
        "  random kills per duplicate-protection mode, 5 kill positions per named crash point, 5,600",
        "  examples of up to 100 stateful steps, split over parallel processes).",
        "* The stateful model drives the engine's functions (submit, reconcile, poll, receiver) with an",
        "  injected clock, and the real run loop for a few injected seconds at a time, interrupted",
        "  wherever it stands; the loop's scheduling under a long real run is covered by the kill rounds.",
        "* The constant-time compare is shown by a spy (one hmac.compare_digest per accepted secret),",
        "  not by timing.",
        "* Hidden rows inside a visible sheet are read and paid like any other row, with a note naming them",
        "  (hidden sheets are skipped and named).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--long", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    args = parser.parse_args()
    profile = "long" if args.long else "quick"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        figures_path = Path(tmp) / "figures.jsonl"
        env = {**os.environ, "BATCH_PAYOUTS_FIGURES": str(figures_path), "BATCH_PAYOUTS_PROFILE": profile}
        tests_ok = run_campaign(profile, env)
        summary = summarise(load(figures_path))
    caught = broken_builds({**os.environ})
    text = report(summary, caught, profile, tests_ok, time.monotonic() - started)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    bad = {k: summary["sums"].get(k, 0) for k in BAD if summary["sums"].get(k, 0)}
    over_caps = [h["file"] for h in summary["hostile"] if h["peak_mib"] >= 256 or h["seconds"] >= 5]
    failures = []
    if not tests_ok:
        failures.append("campaign tests failed")
    if bad:
        failures.append(f"bad figures: {bad}")
    if over_caps:
        failures.append(f"hostile files over the caps: {over_caps}")
    if summary["integrity_passed"] != summary["integrity_total"]:
        failures.append("an integrity check failed")
    if not all(caught.values()):
        failures.append(f"guards not caught by their tests: {[g for g, c in caught.items() if not c]}")
    for failure in failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

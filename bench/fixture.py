"""A settled N-row batch made directly, for benchmarks only: a FIXTURE, not a run.

`bench/scale.py` settles a batch through the real engine over HTTP at ~50 rows/s on a loaded
2-core machine (35 minutes for 100,000 rows). This script leaves the same ledger and the same
sandbox books in a few minutes, by doing in-process what a run does for each row, through the
public APIs of the ledger, the engine and the sandbox's state (no SQL of its own):

* the file is checked, planned and stored as a batch exactly as `run` does (`engine.plan`);
* each row is claimed for sending (`Ledger.claim_for_sending`), its request body built by the
  engine (`submit.build_request`) and handed to the sandbox's state as the HTTP app would
  (`SandboxState.create_withdrawal`, the body encoded and decoded as on the wire), and the answer
  recorded as `submit.send` records it;
* the sandbox's clock is moved on until every payout is settled, and each row's status read is
  applied by the engine's own `settle.apply_read`;
* the books are saved where `--sandbox` keeps them (`<ledger>.sandbox.json`).

What differs from a real run, and why it does not matter for timing the commands on the batch:
no HTTP (so no audit trail of the calls), no intermediate status reads (a row's `checks` count is
0 and its times are those of this script), and the ledger's durable commits are not synced to
disk (a fixture needs no power-cut safety; `FixtureLedger`). `--compare` checks that a fixture
batch and a batch settled by `bench/scale.py` say the same through `status`, `results` and the
ledger's rows, field by field, apart from ids, times and counts of reads.

    python bench/fixture.py --rows 100000 --state /tmp/scale2/f100k/ledger.sqlite3
    python bench/fixture.py --rows 500 --state /tmp/f500/ledger.sqlite3 --compare /tmp/real500/ledger.sqlite3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
from scale import fund, payout_file, seed_customers

from batch_payouts.catalog import Catalog
from batch_payouts.catalog_reads import fetch_catalog
from batch_payouts.engine import plan as planning
from batch_payouts.engine import settle
from batch_payouts.engine.submit import Context, Settings, build_request
from batch_payouts.environment import BUILT_IN_SANDBOX_URL, environment
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.kotani.webhooks import compact_json
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState
from batch_payouts.ratelimit import Limiter, Window
from batch_payouts.sandbox import serve_in_thread
from batch_payouts.sandbox.persist import fresh, save
from batch_payouts.sandbox.state import SandboxState
from batch_payouts.sheets.read import read_sheet

KIND = {
    wire.MobileMoneyWithdrawal: "mobile-money",
    wire.LipaNaMpesaWithdrawal: "lipa-na-mpesa",
    wire.PaybillWithdrawal: "paybill",
    wire.BankWithdrawal: "bank",
}
POLL_INTERVAL = 0.05  # the settings bench/scale.py runs with
POLL_MAX = 0.2


class FixtureLedger(Ledger):
    """The ledger with no commit synced to disk: a fixture is rebuilt, never recovered."""

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        self.db.execute("PRAGMA synchronous = OFF")
        with super().transaction(durable=False) as db:
            yield db


def on_the_wire(data: Any) -> Any:
    """``data`` as the other side reads it: compact JSON, decimals kept exact."""
    return json.loads(compact_json(data), parse_float=Decimal)


def read_catalog(state: SandboxState) -> Catalog:
    """The catalog as `run` reads it (over HTTP, once)."""
    with serve_in_thread(state, deliver_webhooks=False) as sandbox:

        async def go() -> Catalog:
            async with KotaniClient(sandbox.base_url, ApiKey(state.api_key)) as client:
                return await fetch_catalog(client)

        return anyio.run(go)


def build(rows: int, state_path: Path) -> str:
    """Make the file, the batch and its settled rows; return the batch id."""
    state_path.parent.mkdir(parents=True, exist_ok=True)
    if state_path.exists():
        raise SystemExit(f"{state_path} exists: a fixture is built in a new ledger")
    data = payout_file(state_path.parent / f"scale-{rows}.csv", rows)
    books = state_path.with_name(state_path.name + ".sandbox.json")
    started = time.perf_counter()
    ledger = FixtureLedger(state_path)
    state = fresh(speed=2000.0)
    state.knobs.rate_limits = False
    state.knobs.settle_seconds = 1.0
    fund(state, rows)
    env = environment(BUILT_IN_SANDBOX_URL, state.integrator, built_in_sandbox=True)
    ledger.register_environment(env)
    seed_customers(state, ledger, env.id, rows)
    sheet = read_sheet(data)
    report = planning.check_sheet(sheet, read_catalog(state))
    batch_id = planning.batch_key(data.read_bytes(), "", env.id)
    new = planning.prepare_batch(ledger, batch_id, sheet, report, env_id=env.id, label="")
    planning.persist_batch(ledger, new, sheet, fingerprint=batch_id, options={"mapping": sheet.mapping}, who="bench")
    print(f"batch stored in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    unlimited = Limiter((Window(1_000_000, 1.0),), margin=0)
    settings = Settings(poll_interval=POLL_INTERVAL, poll_max_interval=POLL_MAX, verify=False)
    ctx = Context(ledger, None, unlimited, unlimited, settings, env_id=env.id)  # type: ignore[arg-type]
    ctx.run.wallets.update({w.currency.upper(): w.id for w in state.wallets.values()})
    owner = ledger.acquire_lease(batch_id)
    sent: dict[int, str] = {}
    for row in ledger.rows(batch_id, RowState.READY):
        assert row.payout is not None
        key = (
            ledger.customer(env.id, row.payout.phone, row.payout.country, getattr(row.payout, "network", None))
            if hasattr(row.payout, "phone")
            else None
        )
        body = build_request(ctx, row, key)
        if ledger.claim_for_sending(batch_id, row.row) is not None:
            continue
        payout = state.create_withdrawal(KIND[type(body)], json.loads(wire.encode_body(body), parse_float=Decimal))
        created = wire.WithdrawalCreated.model_validate(
            on_the_wire(
                {
                    "id": payout.id,
                    "referenceId": payout.reference,
                    "referenceNumber": payout.reference_number,
                    "message": "Withdrawal request sent successfully",
                }
            )
        )
        ledger.move(
            batch_id,
            row.row,
            RowState.SUBMITTED,
            provider_id=created.id or None,
            reference_number=created.reference_number,
            submitted_at=ctx.clock(),
            next_check=ctx.clock() + POLL_INTERVAL,
        )
        sent[row.row] = payout.reference
    print(f"{len(sent)} rows sent in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    state.clock.advance(state.knobs.expiry_seconds + state.knobs.slow_seconds + 60)
    state.tick()
    for number, reference in sent.items():
        payout = state.visible(reference)
        assert payout is not None
        status = wire.WithdrawalStatus.model_validate(on_the_wire(state.status_view(payout)))
        settle.apply_read(ledger, ledger.row(batch_id, number), status, ctx.clock(), POLL_INTERVAL, POLL_MAX)
    ledger.release_lease(batch_id, owner)
    ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()
    save(state, books)
    print(f"{rows} rows settled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return batch_id


# -- the check against a batch settled by the engine -------------------------------------------------

IGNORED = {
    "batch_id",
    "reference",
    "provider_id",
    "reference_number",
    "telco_receipt",
    "submitting_at",
    "submitted_at",
    "completed_at",
    "updated_at",
    "next_check",
    "checks",
    "obligation",
}


def only_batch(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        ((batch_id,),) = db.execute("SELECT id FROM batches").fetchall()
        return str(batch_id)
    finally:
        db.close()


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    """Each row of the ledger's one batch, with what differs between two runs by nature (ids,
    times, the number of reads) replaced by whether it is set."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        out = []
        for r in db.execute("SELECT * FROM rows ORDER BY row"):
            row = dict(r)
            out.append({k: (v is not None if k in IGNORED else v) for k, v in row.items()})
        return out
    finally:
        db.close()


def command(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "batch_payouts", *args], capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def compare(fixture: Path, real: Path) -> int:
    """0 when the fixture's batch says what the real one says; else 1, with the differences."""
    ours, theirs = only_batch(fixture), only_batch(real)
    problems: list[str] = []
    a, b = ledger_rows(fixture), ledger_rows(real)
    if len(a) != len(b):
        problems.append(f"{len(a)} rows in the fixture, {len(b)} in the real batch")
    for x, y in zip(a, b, strict=False):
        for k in x:
            if x[k] != y[k]:
                problems.append(f"row {x['row']}: {k} is {x[k]!r} in the fixture, {y[k]!r} in the real batch")
    code_a, out_a = command("status", ours, "--state", str(fixture))
    code_b, out_b = command("status", theirs, "--state", str(real))
    if (code_a, same_names(out_a, ours)) != (code_b, same_names(out_b, theirs)):
        problems.append(f"status differs:\n{out_a}\n---\n{out_b}")
    for suffix in (".csv", ".xlsx"):
        files = []
        for path, batch in ((fixture, ours), (real, theirs)):
            out = path.with_name(f"check{suffix}")
            code, said = command("results", batch, "-o", str(out), "--state", str(path))
            if code:
                problems.append(f"results {suffix} failed: {said}")
            files.append(out)
        if suffix == ".csv":
            problems += csv_differences(*files, ours, theirs)
    for p in problems[:40]:
        print(p)
    print(
        f"{len(a)} rows compared field by field, status and results files: "
        f"{'the same' if not problems else f'{len(problems)} differences'}"
    )
    return 1 if problems else 0


def same_names(text: str, batch: str) -> str:
    """``text`` with the batch id and the sandbox's account (each sandbox is its own account) made alike."""
    return re.sub(r"account [0-9a-f]+", "account A", text.replace(batch, "B"))


def csv_differences(a: Path, b: Path, ours: str, theirs: str) -> list[str]:
    import csv

    def read(path: Path, batch: str) -> list[dict[str, str]]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh))

    varying = {"reference_id", "provider_reference", "receipt", "provider_id", "batch", "sent_at_utc", "final_at_utc"}
    out = []
    for x, y in zip(read(a, ours), read(b, theirs), strict=True):
        for k in x:
            if k not in varying and x[k] != y[k]:
                out.append(f"results row {x['row']}: {k} is {x[k]!r} in the fixture, {y[k]!r} in the real batch")
            if k in varying and bool(x[k]) != bool(y[k]):
                out.append(f"results row {x['row']}: {k} is set in one file only")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--state", type=Path, required=True, help="a new ledger file to build the batch in")
    parser.add_argument("--compare", type=Path, help="a ledger holding one batch settled by bench/scale.py")
    args = parser.parse_args()
    batch = build(args.rows, args.state)
    if args.compare and compare(args.state, args.compare):
        sys.exit(1)
    print(f"batch {batch}")


if __name__ == "__main__":
    main()

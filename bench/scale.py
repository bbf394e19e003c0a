"""Build a settled N-row batch in the built-in sandbox's environment, for timing the commands on it.

Rows go through the real engine against the built-in sandbox (its books kept beside the ledger,
exactly as `--sandbox` keeps them), with the rate limits lifted and the sandbox's clock fast, so
that `status`, `resume --sandbox`, `results` and `reconcile --sandbox` can be timed on the batch
afterwards. The payees' customer records are made up front (a bench shortcut: the customer
look-up is not what is measured here). The last line printed is `batch <id>`.

    python bench/scale.py --rows 100000 --state /tmp/scale/ledger.sqlite3
    time batch-payouts status <id> --state /tmp/scale/ledger.sqlite3
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from decimal import Decimal
from pathlib import Path

import anyio

from batch_payouts.catalog_reads import fetch_catalog
from batch_payouts.engine import plan as planning
from batch_payouts.engine.run import run_batch
from batch_payouts.engine.submit import Context, Settings
from batch_payouts.environment import BUILT_IN_SANDBOX_URL, environment
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.ledger import Ledger
from batch_payouts.ratelimit import Limiter, Window
from batch_payouts.sandbox import serve_in_thread
from batch_payouts.sandbox.persist import held
from batch_payouts.sheets.read import read_sheet


def payout_file(path: Path, rows: int) -> Path:
    lines = ["name,phone,country,amount,currency,reference"]
    for i in range(rows):
        lines.append(f"Person {i},+2547{10_000_000 + i:08d},KE,{100 + i % 900},KES,S-{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


def fund(state: object, rows: int) -> None:
    """Enough KES in the sandbox's payout wallet for every row of ``payout_file`` (at most 999 each)."""
    wallet = state.wallets["KES"]  # type: ignore[attr-defined]
    wallet.balance = max(wallet.balance, Decimal(1000 * rows))


def seed_customers(state: object, ledger: Ledger, env_id: str, rows: int) -> None:
    """Customer records at the sandbox and in the ledger's cache, as a first run would leave them."""
    customers = state.customers  # type: ignore[attr-defined]
    rng = random.Random(7)
    with ledger.transaction() as db:
        for i in range(rows):
            phone = f"+2547{10_000_000 + i:08d}"
            key = "".join(rng.choice(string.ascii_letters) for _ in range(20))
            customers[key] = {
                "id": f"{i:024x}",
                "customer_key": key,
                "phone_number": phone,
                "country_code": "KE",
                "network": "MPESA",
                "account_name": f"Person {i}",
                "integrator": "bench",
            }
            db.execute(
                "INSERT OR REPLACE INTO customers VALUES (?,?,?,?,?,?)", (env_id, phone, "KE", "", key, time.time())
            )


def build(rows: int, state_path: Path, concurrency: int) -> str:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    data = payout_file(state_path.parent / f"scale-{rows}.csv", rows)
    books = state_path.with_name(state_path.name + ".sandbox.json")
    ledger = Ledger(state_path)
    with held(books, speed=2000.0) as state:
        state.knobs.rate_limits = False
        state.knobs.settle_seconds = 1.0
        fund(state, rows)
        env = environment(BUILT_IN_SANDBOX_URL, state.integrator, built_in_sandbox=True)
        ledger.register_environment(env)
        seed_customers(state, ledger, env.id, rows)
        with serve_in_thread(state, deliver_webhooks=False) as sandbox:

            async def go() -> str:
                async with KotaniClient(sandbox.base_url, ApiKey(state.api_key)) as client:
                    catalog = await fetch_catalog(client)
                    sheet = read_sheet(data)
                    report = planning.check_sheet(sheet, catalog)
                    batch_id = planning.batch_key(data.read_bytes(), "", env.id)
                    if not ledger.has_batch(batch_id):
                        new = planning.prepare_batch(ledger, batch_id, sheet, report, env_id=env.id, label="")
                        planning.persist_batch(
                            ledger, new, sheet, fingerprint=batch_id, options={"mapping": sheet.mapping}, who="bench"
                        )
                    unlimited = Limiter((Window(1_000_000, 1.0),), margin=0)
                    settings = Settings(
                        concurrency=concurrency,
                        visibility_lag=0.5,
                        poll_interval=0.05,
                        poll_max_interval=0.2,
                        tick=0.01,
                    )
                    if hasattr(settings, "verify"):
                        settings.verify = False  # confirmation of payee is measured elsewhere
                    ctx = Context(ledger, client, unlimited, unlimited, settings, env_id=env.id)
                    started = time.perf_counter()
                    result = await run_batch(ctx, batch_id, wait_timeout=3600.0)
                    print(
                        f"{rows} rows settled in {time.perf_counter() - started:.1f} s: {result.counts}",
                        file=sys.stderr,
                    )
                    return batch_id

            batch = anyio.run(go)
    ledger.close()
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--state", type=Path, required=True, help="the ledger file to build the batch in")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"batch {build(args.rows, args.state, args.concurrency)}")


if __name__ == "__main__":
    main()

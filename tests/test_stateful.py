"""A hypothesis state machine drives the engine in-process against the sandbox, with an injected
clock: submits, crashes and restarts, webhooks (genuine, duplicated, stale, forged), polls, time,
provider settlements and corrections, faults, results. Invariants hold after every step."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from batch_payouts.catalog import Catalog
from batch_payouts.catalog_reads import fetch_catalog
from batch_payouts.engine import retry, run, settle, submit
from batch_payouts.engine.receiver import Receiver
from batch_payouts.engine.results import STATUS_WORDS, write_results
from batch_payouts.engine.submit import Context, RunState, Settings
from batch_payouts.kotani import webhooks
from batch_payouts.kotani.client import ApiKey, KotaniClient, Timeouts
from batch_payouts.ledger import Ledger, NewRow
from batch_payouts.model import MobileMoneyPayout, RowState, StatusClass, classify
from batch_payouts.ratelimit import Limiter, Window
from batch_payouts.sandbox import Knobs, Sandbox, SandboxClock, SandboxState
from batch_payouts.sandbox.state import FAILURE
from batch_payouts.sheets.write import unescape_cell
from tests.figures import record, scale, shard

pytestmark = pytest.mark.campaign  # bench/reliability.py runs this file and reports its figures

KEY = "stateful-canary-key-41"
SECRET = "stateful-canary-secret-93"
ROWS = range(2, 6)
# row 5's first attempt fails; row 4's fails and is corrected to paid 40 s later ("terminal is not final")
FIRST_ATTEMPTS_THAT_FAIL = {"bS-5-1": [(1.0, "FAILED")], "bS-4-1": [(1.0, "CANCELLED"), (40.0, "SUCCESSFUL")]}
HEADERS = {c: c for c in ("name", "phone", "country", "amount", "currency")}
T = TypeVar("T")


async def let_requests_run() -> None:
    """Yield to the event loop a few times: in-process requests finish within a few passes, and
    no real time decides what happens (hypothesis must see the same run for the same choices)."""
    for _ in range(20):
        await anyio.sleep(0)


class PayoutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.now = 1_000_000.0
        self.sclock = SandboxClock(speed=0.0)
        self.state = SandboxState(
            api_key=KEY,
            clock=self.sclock,
            webhook_secret=SECRET,
            webhook_url="http://receiver.invalid/kotani",
            knobs=Knobs(
                rate_limits=False, duplicate_mode="accept", visibility_delay=2, scripts=FIRST_ATTEMPTS_THAT_FAIL
            ),
        )
        # the sandbox app served in-process over HTTP semantics: a cancelled request is cancelled
        # inside the app too, so nothing reaches the provider "later" behind the injected clock
        self.app = Sandbox(self.state, deliver_webhooks=False).app
        self.ledger = Ledger(self.tmp / "l.db", clock=lambda: self.now, secrets=(KEY, SECRET))
        rows = []
        for n in ROWS:
            payout = MobileMoneyPayout(
                row=n, name=f"P{n}", amount=Decimal(100 + n), currency="KES", country="KE", phone=f"+2547120005{n:02d}"
            )
            cells = {
                "name": f"P{n}",
                "phone": payout.phone,
                "country": "KE",
                "amount": str(payout.amount),
                "currency": "KES",
            }
            rows.append(NewRow(n, RowState.READY, payout, cells, []))
        self.ledger.create_batch(
            "bS",
            env_id="e",
            fingerprint="f",
            label="",
            source="s.csv",
            options={"mapping": HEADERS},
            headers=list(HEADERS),
            rows=rows,
        )
        self.catalog: Catalog | None = None
        self.receiver = Receiver(self.ledger, [SECRET], lambda: self.now)
        self.delivered: list[tuple[bytes, str]] = []
        self.wallets: dict[str, str] = {}
        self.steps = 0
        self.double_paid = 0

    def teardown(self) -> None:
        self.ledger.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        record("stateful_steps", self.steps)
        record("stateful_examples", 1)
        record("stateful_double_paid", self.double_paid)

    # -- plumbing ---------------------------------------------------------------------------------

    def engine(self, job: Callable[[Context], Awaitable[T]], tick: float = 0.1) -> T:
        async def go() -> T:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with KotaniClient(
                "http://sandbox.invalid", ApiKey(KEY), timeouts=Timeouts(attempt=2.0), transport=transport
            ) as client:
                fast = Limiter((Window(100_000, 1.0),), margin=0, klass="money")
                ctx = Context(
                    self.ledger,
                    client,
                    fast,
                    Limiter((Window(100_000, 1.0),), margin=0),
                    Settings(visibility_lag=3, grace_margin=1, poll_interval=1, tick=tick),
                    env_id="e",
                    clock=lambda: self.now,
                    run=RunState(wallets=dict(self.wallets)),
                )
                if not ctx.run.wallets:
                    await submit.discover_wallets(ctx)
                    self.wallets = dict(ctx.run.wallets)
                return await job(ctx)

        return anyio.run(go)

    def row(self, n: int) -> Any:
        return self.ledger.row("bS", n)

    # -- rules --------------------------------------------------------------------------------------

    @rule(n=st.sampled_from(list(ROWS)))
    def submit(self, n: int) -> None:
        self.steps += 1
        row = self.row(n)
        if row.state is RowState.READY:
            self.engine(lambda ctx: submit.pay(ctx, row))

    @rule(n=st.sampled_from(list(ROWS)))
    def submit_then_crash_before_the_answer_is_recorded(self, n: int) -> None:
        self.steps += 1
        row = self.row(n)
        if row.state is not RowState.READY:
            return

        async def job(ctx: Context) -> None:
            key = await submit.ensure_customer(ctx, row.payout)
            body = submit.build_request(ctx, row, key)
            ctx.ledger.move("bS", n, RowState.SUBMITTING, submitting_at=self.now)
            with contextlib.suppress(Exception):  # whatever came back dies with the process
                await ctx.client.withdraw(body)

        self.engine(job)
        self.restart()

    @rule()
    def restart(self) -> None:
        """A new process takes over: rows caught mid-send are unknown."""
        self.steps += 1
        for row in self.ledger.rows("bS", RowState.SUBMITTING):
            self.ledger.move("bS", row.row, RowState.UNKNOWN, next_check=self.now)

    @rule()
    def poll_and_reconcile(self) -> None:
        self.steps += 1
        for row in self.ledger.due_checks("bS", self.now):
            if row.state is RowState.UNKNOWN:

                def apply(current: Any, status: Any) -> None:
                    settle.apply_read(self.ledger, current, status, self.now, 1.0, 10.0)

                self.engine(lambda ctx, row=row, apply=apply: submit.reconcile(ctx, row, apply))  # type: ignore[misc]
            else:
                self.engine(lambda ctx, row=row: settle.poll_row(ctx, row))  # type: ignore[misc]

    @rule(seconds=st.floats(0.5, 30.0))
    def time_passes(self, seconds: float) -> None:
        self.steps += 1
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.sclock.advance(seconds)
        with self.state.lock:
            self.state.tick()

    @rule(seconds=st.floats(1.0, 4.0))
    def the_run_loop_runs_then_is_interrupted(self, seconds: float) -> None:
        """The real loop (take-over, submit, reconcile, poll) for a while of injected time; whatever
        is in flight when it stops is cancelled, as by Ctrl-C."""
        self.steps += 1

        async def tick(dt: float) -> None:
            self.advance(dt)
            await let_requests_run()

        self.engine(lambda ctx: run.run_batch(ctx, "bS", wait_timeout=seconds, sleep=tick), tick=0.5)

    @rule(duplicate=st.booleans(), reverse=st.booleans())
    def webhooks_arrive(self, duplicate: bool, reverse: bool) -> None:
        self.steps += 1
        with self.state.lock:
            self.state.tick()
            due = self.state.due_deliveries()
        if reverse:
            due.reverse()
        for delivery in due + (due if duplicate else []):
            response = self.receiver.accept(delivery["body"], delivery["headers"].get("X-Kotani-Signature"))
            assert response.status_code == 200
            self.delivered.append((delivery["body"], delivery["headers"]["X-Kotani-Signature"]))

    @rule(n=st.sampled_from(list(ROWS)))
    def a_webhook_lands_while_an_unknown_row_is_read(self, n: int) -> None:
        """The runner read an unknown row, then a webhook listener in another process settled it
        before the runner wrote what it found: the runner's write must not undo the listener's."""
        self.steps += 1
        row = self.row(n)
        if row.state is not RowState.UNKNOWN:
            return
        self.webhooks_arrive(duplicate=False, reverse=False)

        def apply(current: Any, status: Any) -> None:
            settle.apply_read(self.ledger, current, status, self.now, 1.0, 10.0)

        self.engine(lambda ctx: submit.reconcile(ctx, row, apply))

    @rule(pick=st.integers(0, 10_000))
    def stale_replay(self, pick: int) -> None:
        # no precondition and a fixed draw: which rules can run must not depend on what the
        # loopback timing produced, or hypothesis sees different draws for the same choices
        self.steps += 1
        if self.delivered:
            body, sig = self.delivered[pick % len(self.delivered)]
            assert self.receiver.accept(body, sig).status_code == 200

    @rule(seconds=st.floats(1.0, 4.0))
    def retry_the_failed_rows(self, seconds: float) -> None:
        """`retry` as the CLI does it: plan (a fresh read comes first), persist, run a while."""
        self.steps += 1
        if self.catalog is None:
            self.catalog = self.engine(lambda ctx: fetch_catalog(ctx.client))
        plan = retry.plan_retry(self.ledger, "bS", self.catalog, now=self.now, cooloff=0)
        if not plan.rows:
            return
        retry.persist_retry(self.ledger, plan, self.catalog, list(HEADERS))

        async def tick(dt: float) -> None:
            self.advance(dt)
            await let_requests_run()

        self.engine(lambda ctx: run.run_batch(ctx, plan.batch_id, wait_timeout=seconds, sleep=tick), tick=0.5)

    @rule(n=st.sampled_from(list(ROWS)), status=st.sampled_from(["SUCCESSFUL", "FAILED", "REVERSED"]))
    def forged_webhook(self, n: int, status: str) -> None:
        self.steps += 1
        before = self.row(n)
        body, _ = webhooks.signed_body(
            webhooks.WITHDRAWAL_EVENT, {"referenceId": f"bS-{n}-1", "status": status}, "a guessed secret"
        )
        assert self.receiver.accept(body, "sha256=" + "0" * 64).status_code == 401
        assert self.row(n) == before

    @rule(n=st.sampled_from(list(ROWS)), final=st.sampled_from(["SUCCESSFUL", "FAILED", "CANCELLED", "REVERSED"]))
    def provider_settles_or_corrects(self, n: int, final: str) -> None:
        """The provider moves (or corrects) a payout it holds, as Kotani may."""
        self.steps += 1
        with self.state.lock:
            payout = self.state.by_reference.get(f"bS-{n}-1")
            if payout is not None and not payout.parked:
                at = self.sclock.now() + 1
                self.state.schedule_status(payout, at, final, "" if final == "SUCCESSFUL" else "scripted")

    @rule(p=st.sampled_from([0.0, 0.3, 1.0]), kind=st.sampled_from(["p_5xx_after", "p_drop_after", "p_5xx_before"]))
    def faults(self, p: float, kind: str) -> None:
        self.steps += 1
        setattr(self.state.knobs, kind, p)

    @rule()
    def write_the_results(self) -> None:
        self.steps += 1
        path = write_results(self.ledger, "bS", self.tmp / "r.csv")
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
        ledger_rows = {r.row: r for r in self.ledger.rows("bS")}
        for r in rows:
            ours = ledger_rows[int(r["row"])]
            assert unescape_cell(r["status"]) == STATUS_WORDS[ours.state]
            assert r["reference_id"] == (ours.reference or "")

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def at_most_one_executed_payout_per_row_attempt(self) -> None:
        executed = Counter(p.reference for p in self.state.payouts if not p.parked)
        self.double_paid = max(self.double_paid, sum(1 for n in executed.values() if n > 1))
        assert all(n == 1 for n in executed.values()), executed

    @invariant()
    def a_row_is_paid_again_only_after_its_earlier_attempt_failed_at_the_provider(self) -> None:
        for batch in self.ledger.children("bS"):
            for row in self.ledger.rows(batch):
                again = self.state.by_reference.get(str(row.reference))
                if again is None or row.origin_batch is None or row.origin_row is None:
                    continue
                earlier = self.state.by_reference.get(str(self.ledger.row(row.origin_batch, row.origin_row).reference))
                if earlier is None or earlier.parked:
                    continue  # the earlier attempt never reached the provider
                failed_before = [(at, s) for at, s in earlier.history if s in FAILURE and at <= again.created_at]
                assert failed_before, f"row {row.row} was paid again while its earlier attempt had not failed"

    @invariant()
    def no_row_failed_without_a_confirming_read(self) -> None:
        for row in self.ledger.rows("bS"):
            if row.state is RowState.FAILED:
                assert row.provider_status and classify(row.provider_status) is StatusClass.FAILURE
            if row.state is RowState.READY and row.reference in self.state.by_reference:
                payout = self.state.by_reference[str(row.reference)]
                visible_since = payout.created_at + self.state.knobs.visibility_delay
                assert self.sclock.now() < visible_since or payout.parked, (
                    "a row became payable again while its payout was visible at the provider"
                )

    @invariant()
    def no_secret_in_the_ledger(self) -> None:
        dump = json.dumps(self.ledger.audit_rows() + self.ledger.events(), default=str)
        assert KEY not in dump and SECRET not in dump


PayoutMachine.TestCase.settings = settings(
    max_examples=scale(25, 5600) // shard()[1],
    stateful_step_count=scale(30, 100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPayoutMachine = PayoutMachine.TestCase


def test_a_webhook_settling_a_row_mid_reconcile_is_kept() -> None:
    """Directed case of the rule above: row 2 is sent, the process dies before the answer is
    recorded, the provider settles it and says so by webhook while the runner reads the row."""
    machine = PayoutMachine()
    try:
        machine.submit_then_crash_before_the_answer_is_recorded(2)
        assert machine.row(2).state is RowState.UNKNOWN
        machine.time_passes(10.0)
        machine.a_webhook_lands_while_an_unknown_row_is_read(2)
        assert machine.row(2).state is RowState.SUCCEEDED
        assert [p.reference for p in machine.state.payouts].count("bS-2-1") == 1
    finally:
        machine.teardown()


def test_reconcile_calls_a_row_sent_but_not_yet_heard_back_what_it_is() -> None:
    """A process died after sending row 2 and before recording the answer: the provider holds the
    payout, the ledger says unknown. Reconcile says so ("sent, not yet recorded"), not "paid but not
    recorded as sent", and leaves the row to its batch's resume."""
    from batch_payouts.engine.reconcile import compare

    machine = PayoutMachine()
    try:
        machine.submit_then_crash_before_the_answer_is_recorded(2)
        machine.time_passes(10.0)
        found = machine.engine(lambda ctx: compare(ctx.ledger, ctx.client, "bS"))
        assert found.paid_not_recorded == [] and len(found.sent_not_confirmed) == 1
        assert found.sent_not_confirmed[0].startswith("row 2 (bS-2-1: ") and machine.row(2).state is RowState.UNKNOWN
    finally:
        machine.teardown()


def test_reconcile_names_each_kind_of_disagreement_with_the_provider() -> None:
    """Row 2 agrees. Row 3 is recorded as paid, but the provider has no such payout. Row 4 was
    cancelled, then the provider turned it into a payment: a fresh read corrects it here. Row 5
    failed at the provider, yet is ready here (never sent). And the provider holds a payout of this
    batch that has no row."""
    from batch_payouts.engine.reconcile import compare

    machine = PayoutMachine()
    try:
        for n in ROWS:
            machine.submit(n)
        for _ in range(4):
            machine.advance(30.0)
            machine.poll_and_reconcile()
        done, failed = RowState.SUCCEEDED, RowState.FAILED
        assert [machine.row(n).state for n in ROWS] == [done, done, failed, failed]  # FIRST_ATTEMPTS_THAT_FAIL
        with machine.state.lock:
            books = machine.state
            books.payouts.remove(books.by_reference.pop("bS-3-1"))
            copy = dataclasses.replace(books.by_reference["bS-2-1"], reference="bS-9-1")
            books.payouts.append(copy)
            books.by_reference["bS-9-1"] = copy
        machine.ledger.db.execute("UPDATE rows SET state = 'ready' WHERE batch_id = 'bS' AND row = 5")
        found = machine.engine(lambda ctx: compare(ctx.ledger, ctx.client, "bS"))
        assert found.matched == 2
        assert found.recorded_unknown == ["row 3 (bS-3-1, succeeded)"]
        assert found.corrected == ["row 4: CANCELLED became SUCCESSFUL at Kotani; failed -> succeeded here"]
        assert found.paid_not_recorded == [
            "row 5 (bS-5-1: FAILED at Kotani, ready here)",
            "bS-9-1 (SUCCESSFUL at Kotani, no such row here)",
        ]
        assert found.status_differs == [] and found.sent_not_confirmed == []
        assert machine.row(4).state is RowState.SUCCEEDED
    finally:
        machine.teardown()

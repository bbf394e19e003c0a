"""Ties the stages together: lease, take-over, submit, reconcile, poll, until every row is settled.

Progress is reported through a callback; nothing here prints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from batch_payouts import errors
from batch_payouts.engine import settle, submit
from batch_payouts.engine.provider_status import read_status
from batch_payouts.engine.reconcile import PollTimes, refresh_origins
from batch_payouts.engine.submit import Context, RunStopped
from batch_payouts.engine.verify_stage import VerifyStage
from batch_payouts.kotani import wire
from batch_payouts.ledger import RowRecord
from batch_payouts.model import IN_FLIGHT_STATES, RowState, StatusClass, classify

LEASE_TTL = 30.0
PROGRESS_EVERY = 0.5  # seconds between progress reports, at least
PROGRESS_ROWS_PER_SECOND = 20_000  # and a second more per this many rows (counting is O(rows): 5 s at 100,000)
Progress = Callable[[dict[str, int]], None]


@dataclass
class RunResult:
    """How a run ended."""

    counts: dict[str, int]
    pending: int
    paused: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    timed_out: bool = False

    @property
    def exit_code(self) -> int:
        """0 all paid, 3 some not, 4 still pending (docs/row-lifecycle.md, "Exit codes")."""
        if self.stopped:
            return 1
        if self.timed_out and self.pending:
            return 4
        bad = sum(
            self.counts.get(s, 0) for s in ("failed", "rejected", "invalid", "blocked", "needs_review", "ready", "held")
        )
        return 3 if bad else 0


async def run_batch(
    ctx: Context,
    batch_id: str,
    *,
    wait_timeout: float = 3600.0,
    progress: Progress | None = None,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> RunResult:
    """Drive one batch until every row is settled, or ``wait_timeout`` seconds pass. With
    ``settings.verify``, each payee is checked before its row is paid (``verify_stage``)."""
    owner = ctx.ledger.acquire_lease(batch_id, ttl=LEASE_TTL)
    try:
        for row in ctx.ledger.rows(batch_id, RowState.SUBMITTING):
            # Whoever held these died between committing and hearing back: only a read can tell.
            ctx.ledger.move(
                batch_id,
                row.row,
                RowState.UNKNOWN,
                next_check=ctx.clock(),
                note="the previous run stopped while sending",
            )
        await submit.discover_wallets(ctx)
        stage = VerifyStage(ctx, batch_id, sleep=sleep) if ctx.settings.verify else None
        result = await _loop(ctx, batch_id, owner, wait_timeout, progress, sleep, stage)
        await refresh_origins(
            ctx.ledger,
            ctx.client,
            batch_id,
            reads=ctx.reads,
            clock=ctx.clock,
            poll=PollTimes(ctx.settings.poll_interval, ctx.settings.poll_max_interval),
        )
        return result
    finally:
        with contextlib.suppress(Exception):
            ctx.ledger.release_lease(batch_id, owner)


async def _loop(
    ctx: Context,
    batch_id: str,
    owner: str,
    wait_timeout: float,
    progress: Progress | None,
    sleep: Callable[[float], Awaitable[None]],
    stage: VerifyStage | None = None,
) -> RunResult:
    """Each pass asks the ledger only for the rows due now (by index), never for the whole batch,
    then sleeps until the next row falls due or something wakes it (``_nap``).
    With a verification ``stage``, only rows it found payable in this run are sent."""
    started = ctx.clock()
    last_renew = started
    report_every = max(PROGRESS_EVERY, sum(ctx.ledger.counts(batch_id).values()) / PROGRESS_ROWS_PER_SECOND)
    last_progress = -report_every
    active: set[int] = set()
    # payouts and status reads each have ``concurrency`` slots: a poll never waits behind payouts
    # (three round trips each) for a slot, nor a payout behind a wave of polls
    paying = anyio.Semaphore(max(1, ctx.settings.concurrency))
    reading = anyio.Semaphore(max(1, ctx.settings.concurrency))
    room = 2 * max(1, ctx.settings.concurrency)

    async def guarded(row: RowRecord, job: Callable[[], Awaitable[None]], slots: anyio.Semaphore) -> None:
        try:
            async with slots:
                await job()
        except RunStopped:
            pass  # recorded in ctx.run.stopped by whoever stopped the run
        finally:
            active.discard(row.row)
            ctx.run.wake()  # a slot came free

    timed_out = False
    async with anyio.create_task_group() as tg:
        if stage is not None:
            tg.start_soon(stage.run, reading)  # look-ups share the read slots with status reads
        while True:
            now = ctx.clock()
            if now - last_renew > LEASE_TTL / 3:
                ctx.ledger.renew_lease(batch_id, owner, ttl=LEASE_TTL)
                last_renew = now
            if ctx.run.stopped:
                break
            skip = active | ctx.run.gave_up
            if len(active) < room:
                for row in ctx.ledger.ready_to_send(
                    batch_id,
                    now,
                    skip_rows=skip,
                    skip_currencies=list(ctx.run.paused_currencies),
                    limit=room - len(active),
                    verified_in=stage.run_id if stage else None,
                ):
                    active.add(row.row)
                    tg.start_soon(guarded, row, _bind(pay_checked, ctx, row), paying)
            for row in ctx.ledger.due_checks(batch_id, now, poll=ctx.settings.poll, limit=room + len(active)):
                if row.row in active:
                    continue
                active.add(row.row)
                if row.state is RowState.UNKNOWN:
                    tg.start_soon(guarded, row, _bind_reconcile(ctx, row), reading)
                else:
                    tg.start_soon(guarded, row, _bind(settle.poll_row, ctx, row), reading)
            if progress and now - last_progress >= report_every:
                progress(ctx.ledger.counts(batch_id))
                last_progress = now
            idle = not active and not (stage and stage.busy)
            if idle and not ctx.ledger.still_open(
                batch_id, skip_rows=ctx.run.gave_up, skip_currencies=list(ctx.run.paused_currencies)
            ):
                break
            if now - started > wait_timeout:
                timed_out = True
                break
            await ctx.run.wake.nap(_nap(ctx, batch_id, now), sleep)
        tg.cancel_scope.cancel()
    counts = ctx.ledger.counts(batch_id)
    if progress:
        progress(counts)
    pending = sum(counts.get(s.value, 0) for s in IN_FLIGHT_STATES)
    return RunResult(counts, pending, dict(ctx.run.paused_currencies), ctx.run.stopped, timed_out)


def _nap(ctx: Context, batch_id: str, now: float) -> float:
    """Seconds the loop may sleep: until the next row falls due, at least a tick and at most an
    idle tick. Rows due already but not taken this pass need no tick: a freed slot, a payee found
    payable or a stop wakes the loop (``Wake``)."""
    longest = max(ctx.settings.tick, ctx.settings.idle_tick)
    due = ctx.ledger.next_due(batch_id, now, poll=ctx.settings.poll)
    return longest if due is None else min(longest, max(ctx.settings.tick, due - now))


async def pay_checked(ctx: Context, row: RowRecord) -> None:
    """Pay a row; a retry first re-reads every earlier attempt ("terminal is not final")."""
    for earlier in ctx.ledger.earlier_attempts(row):
        try:
            status = await read_status(ctx.client, earlier, ctx.reads)
        except (errors.NoAnswer, errors.ServerError, errors.RateLimited, errors.UnexpectedResponse):
            # cannot confirm now: try again after a status-read interval (a freed slot wakes the
            # loop at once, which would otherwise ask again and again while the provider is down)
            later = ctx.clock() + ctx.settings.poll_interval
            ctx.ledger.update(row.batch_id, row.row, expect=RowState.READY, next_check=later)
            return
        if status is not None:
            settle.apply_read(
                ctx.ledger, earlier, status, ctx.clock(), ctx.settings.poll_interval, ctx.settings.poll_max_interval
            )
        failed_before = earlier.state is RowState.REJECTED and status is None
        if not failed_before and (status is None or classify(status.status) is not StatusClass.FAILURE):
            seen = status.status if status else "not found"
            ctx.ledger.move(
                row.batch_id,
                row.row,
                RowState.REJECTED,
                completed_at=ctx.clock(),
                error=f"not re-sent: the earlier attempt {earlier.reference} is {seen} at Kotani",
            )
            return
    await submit.pay(ctx, row)


def _bind(
    fn: Callable[[Context, RowRecord], Awaitable[None]], ctx: Context, row: RowRecord
) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        await fn(ctx, row)

    return job


def _bind_reconcile(ctx: Context, row: RowRecord) -> Callable[[], Awaitable[None]]:
    def apply(current: RowRecord, status: wire.WithdrawalStatus) -> None:
        settle.apply_read(
            ctx.ledger,
            current,
            status,
            ctx.clock(),
            ctx.settings.poll_interval,
            ctx.settings.poll_max_interval,
        )

    async def job() -> None:
        await submit.reconcile(ctx, row, apply)

    return job

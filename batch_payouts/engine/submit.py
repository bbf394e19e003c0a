"""Customers and withdrawals under the exactly-once protocol (docs/exactly-once.md).

* ``submitting`` (with the row's reference) is committed before the request leaves;
* anything ambiguous (timeout after send, reset, 5xx, kill) makes the row ``unknown``;
* ``unknown`` is left only through a status read: found means it exists; "not found" is believed
  only when read twice, ``grace`` seconds apart, and then the row is resent with the same
  reference;
* only failures that provably never left this machine are retried straight away.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from batch_payouts import crash, errors
from batch_payouts.engine.provider_status import read_status
from batch_payouts.engine.wake import Wake
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.ledger import Ledger, RowFields, RowRecord
from batch_payouts.model import (
    BankPayout,
    MobileMoneyPayout,
    PaybillPayout,
    RowState,
    TillPayout,
)
from batch_payouts.ratelimit import Limiter


@dataclass
class Settings:
    """Engine settings. Times in seconds."""

    concurrency: int = 8
    visibility_lag: float = 60.0
    grace_margin: float = 1.0
    poll_interval: float = 5.0
    poll_max_interval: float = 120.0
    callback_url: str | None = None
    wallets: dict[str, str] = field(default_factory=dict)
    send_budget: int = 8  # tries per row and run after failures that never reached the provider
    tick: float = 0.1  # the run loop's shortest nap
    idle_tick: float = 0.5  # and its longest, when no row falls due sooner (lease, timeout, progress)
    poll: bool = True
    # Confirmation of payee (docs/confirmation-of-payee.md): check each payee's account before paying it.
    verify: bool = True
    allow_unverified: bool = False  # pay rows whose check timed out or failed instead of holding them
    verify_reuse_days: float = 30.0  # reuse a look-up this long (per environment)
    verify_tries: int = 3  # look-ups per account at most when Kotani times out or fails
    verify_threshold: float = 85.0  # our own name comparison's pass mark (0-100) when Kotani gives no score

    def grace(self, attempt_deadline: float) -> float:
        """How long "not found" must hold before it is believed."""
        return attempt_deadline + self.visibility_lag + self.grace_margin


class RunStopped(errors.BatchPayoutsError):
    """The run cannot go on (bad key, an absurd rate-limit wait); the batch is resumable."""


@dataclass
class RunState:
    """What one run learns as it goes: a fresh one per run. ``stop`` is the one way to end a run
    early (the loop sees ``stopped`` on its next pass)."""

    wallets: dict[str, str] = field(default_factory=dict)  # currency -> wallet id
    paused_currencies: dict[str, str] = field(default_factory=dict)  # currency -> why
    tries: dict[int, int] = field(default_factory=dict)  # row -> sends that never reached the provider
    gave_up: set[int] = field(default_factory=set)  # rows out of tries for this run
    refreshed_customers: set[int] = field(default_factory=set)  # rows whose cached customer was looked up again
    stopped: str | None = None  # why the run stops, in a sentence
    wake: Wake = field(default_factory=Wake)  # the run loop's wake-up call

    def stop(self, reason: str) -> RunStopped:
        """Stop the run for ``reason`` (the first reason wins); returns the error a step raises to unwind."""
        if self.stopped is None:
            self.stopped = reason
        self.wake()
        return RunStopped(self.stopped)


@dataclass(frozen=True)
class Context:
    """What every stage of a run shares: its dependencies (fixed) and the run's own state."""

    ledger: Ledger
    client: KotaniClient
    money: Limiter
    reads: Limiter
    settings: Settings
    env_id: str
    clock: Callable[[], float] = time.time
    run: RunState = field(default_factory=RunState)

    @property
    def grace(self) -> float:
        return self.settings.grace(self.client.timeouts.attempt)

    def note_rate_limit(self, limiter: Limiter, exc: errors.RateLimited) -> None:
        """A 429 holds the limiter's whole class (the client has held it already when it saw the
        answer; this also covers a caller without one); a wait too long to sit out stops the run."""
        wait = exc.retry_after if exc.retry_after is not None else 5.0
        if limiter.holds.too_long(wait):
            raise self.run.stop(
                f"Kotani asked us to wait {wait:.0f} s before sending more "
                f"({limiter.name}); the batch is paused, resume it later"
            )
        limiter.pause(wait)


def soon(checks: int) -> float:
    """Seconds until the next read of an ambiguous row: 1, 2, 4 … up to 30."""
    return float(min(2 ** min(checks, 5), 30))


def back_off(ctx: Context, row: RowRecord, reason: str, *, move: bool) -> None:
    """Try a READY row again later: exponential backoff with jitter, within a per-run budget."""
    tries = ctx.run.tries.get(row.row, 0) + 1
    ctx.run.tries[row.row] = tries
    delay = min(2.0**tries, 60.0) * random.uniform(0.5, 1.5)
    note = f"not sent yet ({reason}); try {tries} of {ctx.settings.send_budget}"
    if tries >= ctx.settings.send_budget:
        ctx.run.gave_up.add(row.row)
        note = f"not sent: {reason} {tries} times; run the batch again later"
    fields: RowFields = {"next_check": ctx.clock() + delay, "note": note}
    if move:
        ctx.ledger.move(row.batch_id, row.row, RowState.READY, **fields)
    else:
        ctx.ledger.update(row.batch_id, row.row, expect=RowState.READY, **fields)


def wallet_ids(wallets: Iterable[wire.Wallet]) -> dict[str, str]:
    """Currency -> the id of the account's first wallet in it."""
    found: dict[str, str] = {}
    for w in wallets:
        found.setdefault(w.currency.upper(), w.id)
    return found


async def discover_wallets(ctx: Context) -> None:
    """Wallet id per currency: ``--wallet`` overrides, then the wallets list (read now unless the
    run was given it, read a moment ago)."""
    if not ctx.run.wallets:
        await ctx.reads.acquire()
        ctx.run.wallets.update(wallet_ids(await ctx.client.list_wallets()))
    ctx.run.wallets.update({k.upper(): v for k, v in ctx.settings.wallets.items()})


# -- customers ---------------------------------------------------------------------------------


async def ensure_customer(ctx: Context, payout: MobileMoneyPayout) -> str:
    """The provider's customer key for this payee in this environment: cache, look-up by phone,
    or create. A key is only ever one the provider returned for this exact phone. Its reads are
    urgent: a payment waits for them, so they go before the look-ups of rows still to check."""
    cached = ctx.ledger.customer(ctx.env_id, payout.phone, payout.country, payout.network)
    if cached:
        return cached
    await ctx.reads.acquire(urgent=True, steps_left=2)  # the look-up, then perhaps the creation
    try:
        found = await ctx.client.get_customer_by_phone(payout.phone)
        crash.point("after_customer_lookup")
        key = _for_this_phone(found, payout)
    except errors.NotFound:
        crash.point("after_customer_lookup")
        await ctx.reads.acquire(urgent=True, steps_left=1)
        body = wire.CreateCustomer(
            phone_number=payout.phone, country_code=payout.country, network=payout.network, account_name=payout.name
        )
        try:
            key = _for_this_phone(await ctx.client.create_customer(body), payout)
        except errors.BadRequest:
            # perhaps created meanwhile: look once more before giving up
            await ctx.reads.acquire(urgent=True, steps_left=1)
            key = _for_this_phone(await ctx.client.get_customer_by_phone(payout.phone), payout)
        crash.point("after_customer_post")
    ctx.ledger.remember_customer(ctx.env_id, payout.phone, payout.country, payout.network, key)
    crash.point("after_customer_commit")
    return key


def _for_this_phone(customer: wire.Customer, payout: MobileMoneyPayout) -> str:
    """The customer's key, if the provider's record is for this payout's phone number."""
    theirs = "".join(ch for ch in (customer.phone_number or "") if ch.isdigit())
    ours = "".join(ch for ch in payout.phone if ch.isdigit())
    if theirs and theirs != ours:
        raise errors.BadRequest(
            400, f"the provider's customer record for {payout.phone} is for another phone number; not paid"
        )
    return customer.customer_key


# -- withdrawals -------------------------------------------------------------------------------


def _wallet(ctx: Context, currency: str) -> str:
    try:
        return ctx.run.wallets[currency]
    except KeyError:
        raise errors.BadRequest(400, f"no {currency} wallet on this Kotani account") from None


def build_request(ctx: Context, row: RowRecord, customer_key: str | None) -> wire.WithdrawalRequest:
    """The withdrawal body for this row attempt, with its deterministic reference."""
    p, ref, cb = row.payout, str(row.reference), ctx.settings.callback_url
    if isinstance(p, MobileMoneyPayout):
        return wire.MobileMoneyWithdrawal(
            customer_key=str(customer_key),
            amount=p.amount,
            wallet_id=_wallet(ctx, p.currency),
            reference_id=ref,
            callback_url=cb,
            network=p.network,
        )
    if isinstance(p, TillPayout):
        return wire.LipaNaMpesaWithdrawal(
            amount=p.amount,
            wallet_id=_wallet(ctx, p.currency),
            reference_id=ref,
            callback_url=cb,
            details=wire.LipaNaMpesaDetails(
                business_shortcode=p.till_number,
                account_reference=p.account_reference,
                transaction_desc=p.narration,
                phone_number=p.phone,
            ),
        )
    if isinstance(p, PaybillPayout):
        return wire.PaybillWithdrawal(
            amount=p.amount,
            wallet_id=_wallet(ctx, p.currency),
            reference_id=ref,
            callback_url=cb,
            details=wire.PaybillDetails(
                paybill_number=p.paybill_number,
                account_number=p.account_reference,
                phone_number=p.phone,
                remarks=p.narration,
            ),
        )
    if isinstance(p, BankPayout):
        return wire.BankWithdrawal(
            currency=p.currency,
            amount=p.amount,
            reference_id=ref,
            callback_url=cb,
            details=wire.BankDetails(
                name=p.name,
                bank_code=p.bank_code,
                account_number=p.account_number,
                country=p.country,
                bank_name=p.bank_name,
                phone_number=p.phone,
            ),
        )
    raise errors.LedgerError(f"row {row.row} has no payout to send")


async def pay(ctx: Context, row: RowRecord) -> None:
    """Send one READY row once, recording every outcome before anything else happens."""
    assert row.payout is not None and row.state is RowState.READY
    b, n = row.batch_id, row.row
    try:
        key = await ensure_customer(ctx, row.payout) if isinstance(row.payout, MobileMoneyPayout) else None
    except errors.RateLimited as exc:
        ctx.note_rate_limit(ctx.reads, exc)
        return
    except (errors.NoAnswer, errors.ServerError, errors.UnexpectedResponse) as exc:
        back_off(ctx, row, f"customer look-up: {exc}", move=False)  # no payout was sent
        return
    except (errors.BadRequest, errors.NotFound, errors.PermissionDenied) as exc:
        ctx.ledger.move(b, n, RowState.REJECTED, error=f"customer: {exc.message}", completed_at=ctx.clock())
        return
    try:
        body = build_request(ctx, row, key)
    except errors.BadRequest as exc:
        ctx.ledger.move(b, n, RowState.REJECTED, error=exc.message, completed_at=ctx.clock())
        return
    await ctx.money.acquire()
    if row.payout.currency in ctx.run.paused_currencies:
        return
    try:
        if ctx.ledger.claim_for_sending(b, n) is not None:
            return  # another batch pays this payee: the row is now BLOCKED, with the sentence
    except errors.IllegalTransition:
        return  # taken over by a newer batch of the same file since this pass began
    crash.point("after_submitting_commit")
    await send(ctx, row, body)


async def send(ctx: Context, row: RowRecord, body: wire.WithdrawalRequest) -> None:
    """POST the withdrawal of a SUBMITTING row and record what came back."""
    b, n = row.batch_id, row.row
    try:
        created = await ctx.client.withdraw(body)
    except errors.NotSent as exc:
        back_off(ctx, row, exc.reason, move=True)  # provably never left: same reference, later
        return
    except errors.RateLimited as exc:
        ctx.ledger.move(b, n, RowState.READY)  # refused before anything was created
        ctx.note_rate_limit(ctx.money, exc)
        return
    except errors.InsufficientFunds as exc:
        ctx.ledger.move(b, n, RowState.READY, note=f"waiting: {exc.message}")
        assert row.payout is not None
        ctx.run.paused_currencies[row.payout.currency] = exc.message
        return
    except errors.DuplicateReference:
        ctx.ledger.move(b, n, RowState.UNKNOWN, next_check=ctx.clock(), note="provider: duplicate reference")
        return
    except errors.AuthenticationError as exc:
        ctx.ledger.move(b, n, RowState.READY)
        raise ctx.run.stop(f"Kotani refused the API key: {exc.message}") from None
    except (errors.NoAnswer, errors.ServerError, errors.UnexpectedResponse) as exc:
        ctx.ledger.move(b, n, RowState.UNKNOWN, next_check=ctx.clock(), note=f"no clear answer: {exc}")
        return
    except (errors.BadRequest, errors.NotFound, errors.PermissionDenied) as exc:
        if _stale_customer(ctx, row, exc):
            return
        ctx.ledger.move(b, n, RowState.REJECTED, error=exc.message, completed_at=ctx.clock())
        return
    crash.point("after_response_before_commit")
    ctx.ledger.move(
        b,
        n,
        RowState.SUBMITTED,
        provider_id=created.id or None,
        reference_number=created.reference_number,
        submitted_at=ctx.clock(),
        next_check=ctx.clock() + ctx.settings.poll_interval,
    )


def _stale_customer(ctx: Context, row: RowRecord, exc: errors.ApiError) -> bool:
    """A refused payout whose cached customer key the provider does not know: forget the key
    and send again once (a refusal created nothing), after looking the payee up afresh."""
    p = row.payout
    if not isinstance(p, MobileMoneyPayout) or "customer" not in exc.message.lower():
        return False
    if row.row in ctx.run.refreshed_customers:
        return False
    ctx.run.refreshed_customers.add(row.row)
    ctx.ledger.forget_customer(ctx.env_id, p.phone, p.country, p.network)
    ctx.ledger.move(
        row.batch_id,
        row.row,
        RowState.READY,
        next_check=ctx.clock(),
        note="the provider did not know the cached customer; looked up again",
    )
    return True


# -- reconciliation ----------------------------------------------------------------------------


async def reconcile(ctx: Context, row: RowRecord, apply: Callable[[RowRecord, wire.WithdrawalStatus], None]) -> None:
    """Resolve an UNKNOWN row by asking the provider, never by guessing."""
    now = ctx.clock()
    try:
        status = await read_status(ctx.client, row, ctx.reads)
    except errors.RateLimited as exc:
        ctx.note_rate_limit(ctx.reads, exc)
        return
    except (errors.NoAnswer, errors.ServerError, errors.UnexpectedResponse):
        ctx.ledger.update(row.batch_id, row.row, expect=RowState.UNKNOWN, next_check=now + 1.0)
        return
    crash.point("inside_reconcile_after_read")
    if status is not None:
        found = ctx.ledger.move_if(
            row.batch_id,
            row.row,
            RowState.UNKNOWN,
            RowState.SUBMITTED,
            provider_id=status.id,
            not_found_at=None,
            checks=0,
            submitted_at=row.submitted_at or now,
        )
        if found is not None:  # else a webhook listener settled it meanwhile
            apply(found, status)
        return
    not_found(ctx, row, now)


def not_found(ctx: Context, row: RowRecord, now: float) -> None:
    """The provider does not know an UNKNOWN row's payout (``now`` in seconds): it is sent again
    only once "not found" has held from a first answer to one a grace period later, both long
    after the lost request could have landed; until then it is asked again, backing off."""
    sent_at = row.submitting_at or row.updated_at
    first = row.not_found_at
    if first is None or first < sent_at:
        first = now
    believe_at = max(first, sent_at) + ctx.grace
    if now >= believe_at and first < now:
        # Not found from first to last, a grace period apart, long after the lost request could have landed.
        ctx.ledger.move_if(
            row.batch_id,
            row.row,
            RowState.UNKNOWN,
            RowState.READY,
            not_found_at=None,
            checks=0,
            note="not found at the provider twice; resent with the same reference",
        )
        return
    # Look again soon, backing off: a payout that shows up ends the wait at once.
    ctx.ledger.update(
        row.batch_id,
        row.row,
        expect=RowState.UNKNOWN,
        not_found_at=first,
        checks=row.checks + 1,
        next_check=min(now + soon(row.checks), believe_at),
    )

"""Confirmation of payee inside a run: each row's payee is checked before the row is paid, beside payment.

The stage runs next to the run loop. Every READY row never sent is looked up (``lookup.verify_rows``,
on the reads budget, answers cached in the ledger per environment) and its verdict recorded on the
row as soon as it is back: payable rows are marked as checked by this run, and only such rows are
sent (``Ledger.ready_to_send(verified_in=…)``), so the first payout waits for its own look-up only.
Held rows become HELD with the verdict's sentence; rows whose account does not exist become INVALID.
Rows held by an earlier check are asked again. An operator's acceptance (:func:`accept_held`) moves
a held row back to READY; the next run pays it, unless the account now says something else.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import anyio

from batch_payouts import errors
from batch_payouts.engine.submit import Context, Settings
from batch_payouts.ledger import Acceptance, Ledger, RowFields, RowRecord
from batch_payouts.lookup import DAY, LedgerLookupCache, VerifySettings, verify_rows
from batch_payouts.model import RowState
from batch_payouts.policy import Policy
from batch_payouts.sheets.layout import NAME_CHECK_COLUMNS
from batch_payouts.verify import Decision, Verdict, accept, result_columns, verdict_from_json, verdict_to_json

RECHECK_EVERY = 5.0  # seconds between looks for rows accepted during the run, once the first pass is done
# rows read from the ledger at a time to look up: a 100,000-row batch is never held whole (a few MiB
# a page), and a page waits for its slowest look-up before the next starts (50 such waits in 100k)
VERIFY_PAGE = 2000
OTHER_HOLD = "held"  # what an acceptance names when the row was held for another reason (a guardrail)


def with_policy(settings: Settings, policy: Policy) -> Settings:
    """``settings`` with the policy's ``[verify]`` section (enabled, allow_unverified, reuse_days,
    tries, our_threshold)."""
    v = policy.verify
    return replace(
        settings,
        verify=v.enabled,
        allow_unverified=v.allow_unverified,
        verify_reuse_days=v.reuse_days,
        verify_tries=v.tries,
        verify_threshold=v.our_threshold,
    )


def verify_settings(ctx: Context) -> VerifySettings:
    """The look-up settings of a run: its environment, the engine settings, and one request slot
    fewer than the run's concurrency, so that a payment never waits for a slot behind look-ups."""
    s = ctx.settings
    return VerifySettings(
        ctx.env_id,
        allow_unverified=s.allow_unverified,
        max_age_seconds=s.verify_reuse_days * DAY,
        tries=s.verify_tries,
        our_threshold=s.verify_threshold,
        concurrency=max(1, s.concurrency - 1),
    )


class VerifyStage:
    """Checks the payees of one batch during one run (``run_id`` marks what this run checked)."""

    def __init__(self, ctx: Context, batch_id: str, *, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.ctx = ctx
        self.batch_id = batch_id
        self.sleep = sleep
        self.run_id = "v" + secrets.token_hex(8)
        self.busy = True  # a pass is under way (or the first has not started)

    async def run(self, slots: anyio.Semaphore | None = None) -> None:
        """Check every row this run has not checked, pass after pass (rows accepted meanwhile join
        the next pass, within ``RECHECK_EVERY`` seconds), until the run ends and cancels it.
        ``slots``: the run's request slots (``--concurrency``), shared with payment."""
        while True:
            after = 0
            while rows := self.ctx.ledger.rows_to_verify(self.batch_id, self.run_id, after=after, limit=VERIFY_PAGE):
                self.busy = True
                try:
                    await self.check(rows, slots)
                except (errors.AuthenticationError, errors.ConfigError) as exc:
                    self.ctx.run.stop(f"the payees could not be checked: {exc}")
                    self.busy = False
                    return
                after = rows[-1].row
            self.busy = False
            self.ctx.run.wake()  # a loop waiting for this pass to end (nothing else to do) ends now
            await self.sleep(max(self.ctx.settings.tick, RECHECK_EVERY))

    async def check(self, rows: Sequence[RowRecord], slots: anyio.Semaphore | None = None) -> None:
        """Look the payees of ``rows`` up and record each verdict as it comes back."""
        by_number = {r.row: r for r in rows}
        payouts = [r.payout for r in rows if r.payout is not None]
        ctx = self.ctx
        async with verify_rows(
            ctx.client,
            ctx.reads,
            payouts,
            LedgerLookupCache(ctx.ledger),
            verify_settings(ctx),
            clock=ctx.clock,
            sleep=self.sleep,
            slots=slots,
        ) as verdicts:
            async for verdict in verdicts:
                self.record(by_number[verdict.row], verdict)

    def record(self, row: RowRecord, verdict: Verdict) -> None:
        """Put ``verdict`` on the row: checked (payable), HELD with its sentence, or INVALID."""
        ledger, b, n = self.ctx.ledger, row.batch_id, row.row
        row = ledger.row(b, n)
        if row.state not in (RowState.READY, RowState.HELD) or row.submitting_at is not None:
            return  # the row moved on meanwhile (taken over by a newer batch of the same file): leave it
        if verdict.decision is Decision.HOLD:
            verdict = accepted(ledger, row, verdict)
        fields: RowFields = {"name_check": verdict_to_json(verdict), "verify_run": self.run_id}
        if verdict.decision is Decision.PAY:
            to = RowState.READY
            if row.state is RowState.HELD:
                fields["next_check"] = self.ctx.clock()
                fields["note"] = verdict.sentence
        elif verdict.decision is Decision.HOLD:
            to = RowState.HELD
            fields["note"] = verdict.sentence
        else:
            to = RowState.INVALID
            problem = {"column": "", "value": "", "message": verdict.sentence, "severity": "error"}
            fields["problems"] = json.dumps([*row.problems, problem])
            fields["note"] = verdict.sentence
        with contextlib.suppress(errors.IllegalTransition):  # moved on between the two reads: leave it
            ledger.move(b, n, to, **fields)
            if to is RowState.READY:
                self.ctx.run.wake()  # the loop pays it now, not on its next tick


def accepted(ledger: Ledger, row: RowRecord, verdict: Verdict) -> Verdict:
    """``verdict`` let through when an operator accepted this very hold (same finding, same
    registered name) on this row or an earlier attempt of it; else unchanged."""
    for attempt in [row, *ledger.earlier_attempts(row)]:
        for acceptance in ledger.acceptances(attempt.batch_id, attempt.row):
            if covers(acceptance, verdict):
                return accept(verdict, acceptance.who)
    return verdict


def covers(acceptance: Acceptance, verdict: Verdict) -> bool:
    return acceptance.what == verdict.finding.value and acceptance.registered_name == verdict.registered_name


def hold_of(row: RowRecord) -> tuple[str, str | None]:
    """What a held row is held for: (the check's finding, the registered name), or (``"held"``, None)
    when something other than the payee check held it."""
    if row.name_check:
        verdict = verdict_from_json(row.name_check)
        if verdict.decision is Decision.HOLD:
            return verdict.finding.value, verdict.registered_name
    return OTHER_HOLD, None


def accept_held(ledger: Ledger, batch_id: str, rows: Sequence[int], who: str) -> list[RowRecord]:
    """An operator (``who``) accepts held ``rows`` (sheet row numbers): each moves HELD -> READY
    and the acceptance is recorded with who, when and what was held, in one transaction; the next
    run or resume pays them. Raises :class:`errors.NotHeld` (and accepts none) if one is not held."""
    return ledger.accept_held(batch_id, rows, who=who, what=hold_of)


def name_check_columns(row: RowRecord) -> dict[str, str]:
    """The results-file columns of the row's payee check (blank when it was not checked)."""
    if not row.name_check:
        return dict.fromkeys(NAME_CHECK_COLUMNS, "")
    columns = result_columns(verdict_from_json(row.name_check))
    return {c: columns[c] for c in NAME_CHECK_COLUMNS}

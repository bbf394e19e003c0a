"""Paying a file: its batch id, the plan of what will actually be sent, the facts of a file
already run, creating the batch, running it (progress through a callback), and how it ended."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from batch_payouts import crash, errors
from batch_payouts.app import results, stages
from batch_payouts.app import status as facts
from batch_payouts.app.receiver import receiving
from batch_payouts.app.session import Session
from batch_payouts.engine import plan as planning
from batch_payouts.engine import results as results_mod
from batch_payouts.engine.plan import NewBatch, Plan
from batch_payouts.engine.run import RunResult
from batch_payouts.engine.run import run_batch as engine_run
from batch_payouts.engine.submit import Context, RunState, Settings, wallet_ids
from batch_payouts.engine.verify_stage import OTHER_HOLD, accept_held, hold_of, with_policy
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.ledger import BatchRecord, Ledger
from batch_payouts.model import OPEN_STATES, SETTLED_STATES, RowState
from batch_payouts.policy import Policy
from batch_payouts.ratelimit import MONEY, MONEY_DEFAULT, READS_DEFAULT, Limiter, Window
from batch_payouts.sheets.read import RawSheet
from batch_payouts.validate import Report

__all__ = [
    "AlreadyPaid",
    "NewBatch",
    "Plan",
    "Planned",
    "ResultsWritten",
    "RunOptions",
    "RunOutcome",
    "RunProgress",
    "RunResult",
    "batch_id_for",
    "create_batch",
    "finish",
    "needs_confirmation",
    "operator",
    "plan_batch",
    "plan_exit_code",
    "prepare_run",
    "require_covered",
    "resumable",
    "run_batch",
    "total_matches",
    "write_finished",
]
SANDBOX_VISIBILITY_LAG = 2.0  # seconds: the built-in sandbox shows a payout at once
SANDBOX_POLL_INTERVAL = 0.25  # seconds


@dataclass(frozen=True)
class RunOptions:
    """How to run a batch. Times in seconds; rates are limit/seconds windows; ``wallets``:
    currency -> the wallet to pay it from; ``listen``: serve the webhook receiver on (host, port)
    during the run; ``events_path``: append progress there as JSON lines."""

    concurrency: int = 8
    wait_timeout: float = 3600.0
    visibility_lag: float = 60.0
    poll_interval: float = 5.0
    money_rate: tuple[Window, ...] = MONEY_DEFAULT
    reads_rate: tuple[Window, ...] = READS_DEFAULT
    wallets: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    listen: tuple[str, int] | None = None
    poll: bool = True
    events_path: Path | None = None
    policy: Policy | None = None  # the [verify] section sets the name check's defaults
    name_check: bool = True  # confirmation of payee before each row is paid
    allow_unverified: bool = False  # pay rows whose name could not be checked


@dataclass(frozen=True)
class Planned:
    """What paying a file will do: the plan counts only the rows that will actually be sent.

    ``new`` is the batch to create (with its repeats and the rows it takes over), None when the
    file's batch exists and the plan is what is left of it (``continuing``)."""

    batch_id: str
    plan: Plan
    new: NewBatch | None
    continuing: bool = False
    released: list[int] = field(default_factory=list)  # held rows this run's options let through
    accepted: list[int] = field(default_factory=list)  # held rows a person accepts in this run
    reheld: list[int] = field(default_factory=list)  # rows never sent this run's guardrails hold


@dataclass(frozen=True)
class AlreadyPaid:
    """A file whose batch is finished: nothing more is sent. ``outcome``: status word -> rows."""

    batch: BatchRecord
    outcome: dict[str, int]
    label: str
    held: list[int] = field(default_factory=list)  # rows held, not paid until a person accepts them
    reheld: list[int] = field(default_factory=list)  # of them, rows this run's guardrails held


@dataclass(frozen=True)
class ResultsWritten:
    """A batch's results file, and how the command about it ends."""

    path: Path
    verdict: facts.Verdict


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: rows per state, how many are settled, and at least how many seconds
    the rows still to send need at the payout allowance."""

    batch_id: str
    counts: dict[str, int]
    rows: int
    settled: int
    to_send: int
    eta: float
    amounts: tuple[tuple[str, str, Decimal], ...] = ()  # (state, currency, amount in major units)


ProgressListener = Callable[[RunProgress], None]


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, its results file written. ``verdict.exit_code``: 5 a payee paid twice,
    1 stopped, 4 rows still pending, 3 rows not paid, 0 every row paid."""

    batch_id: str
    result: RunResult
    results_path: Path
    status: facts.BatchStatus
    results_current: bool = False  # the results file was already up to date: nothing changed since

    @property
    def verdict(self) -> facts.Verdict:
        return self.status.verdict

    @property
    def still_pending(self) -> int:
        """Rows still pending when the run stopped waiting."""
        return self.result.pending if self.result.timed_out else 0


def batch_id_for(session: Session, file: Path, label: str) -> str:
    """The batch a file pays in this environment: the same bytes and label continue one batch."""
    return planning.batch_key(file.read_bytes(), label, session.environment().id)


def plan_batch(
    session: Session,
    batch_id: str,
    sheet: RawSheet,
    report: Report,
    *,
    label: str,
    pay_again: dict[int, str] | None = None,
    continuing: bool = False,
    accepted: Collection[int] = (),
    held_by_check: Collection[int] = (),
) -> Planned:
    """The plan of the rows that will actually be sent: of a new batch (its repeats decided
    against every batch of the environment; ``pay_again``: row -> the operator's reason; rows a
    guardrail holds left out unless ``accepted``), or of what is left of an existing one. Rows
    ``held_by_check`` (the name check holds or refuses them) are left out of the totals."""
    money = session.balances()
    if session.ledger.has_batch(batch_id):
        with session.ledger.snapshot():
            to_send, in_flight = planning.open_rows(session.ledger, batch_id)
            to_send |= session.ledger.row_numbers(batch_id, RowState.HELD) & set(accepted)
        to_send -= set(held_by_check)
        return Planned(
            batch_id, planning.make_plan(report, money, sendable=to_send, in_flight=in_flight), None, continuing
        )
    new = planning.prepare_batch(
        session.ledger, batch_id, sheet, report, env_id=session.environment().id, label=label, pay_again=pay_again or {}
    )
    wrong = {n: next((r.state.value for r in new.rows if r.row == n), None) for n in accepted if n not in new.held}
    if wrong:
        raise errors.NotHeld(batch_id, wrong)
    sendable = (new.sendable | set(accepted)) - set(held_by_check)
    return Planned(
        batch_id, planning.make_plan(report, money, sendable=sendable), new, continuing, accepted=sorted(accepted)
    )


def guard_continued(
    session: Session, batch_id: str, report: Report, who: str | None = None
) -> tuple[list[int], list[int]]:
    """A batch continued under this run's guardrails: rows never sent that they now hold become
    HELD (unless a person accepted this very hold, the same sentences, before); rows a guardrail held that they now let
    through (say ``--allow-duplicates`` was given) are released, recorded as accepted by ``who``
    (default: the operator). Returns (rows held, rows released)."""
    ledger, held_now = session.ledger, report.held_rows()
    reheld, released = [], []
    # Only rows a hold may now start (ready, held now) or end (held) are read: at 100,000 rows
    # left to send, not the whole batch.
    with ledger.snapshot():  # (a row accepted between two reads would be in neither)
        maybe = ledger.row_numbers(batch_id, RowState.READY) & held_now.keys()
        rows = list(ledger.rows_numbered(batch_id, maybe | ledger.row_numbers(batch_id, RowState.HELD)))
    for row in rows:
        if row.submitting_at is not None or (row.state is RowState.HELD and hold_of(row)[0] != OTHER_HOLD):
            continue  # sent before, or held by the payee check: not the guardrails' to decide
        note = planning.hold_note(held_now.get(row.row, []))
        if (
            row.state is RowState.READY
            and note
            and note not in {a.sentence for a in ledger.acceptances(batch_id, row.row)}
        ):
            ledger.move(batch_id, row.row, RowState.HELD, note=note)
            reheld.append(row.row)
        elif row.state is RowState.HELD and row.row not in held_now:
            released.append(row.row)
    accept_held(ledger, batch_id, released, who or operator())
    return reheld, released


def plan_exit_code(planned: Planned, report: Report) -> int:
    """0 when the balance covers the plan and every row is valid, else 3."""
    return 0 if planned.plan.covered and len(report.valid_rows) == len(report.rows) else 3


def prepare_run(
    session: Session,
    file: Path,
    sheet: RawSheet,
    report: Report,
    *,
    label: str,
    pay_again: dict[int, str],
    strict: bool,
    accepted: Collection[int] = (),
) -> Planned | AlreadyPaid:
    """Before paying a checked file: refuse a file with nothing to pay (or, ``strict``, with
    invalid rows); a file whose batch is finished is AlreadyPaid; else the plan (``accepted``:
    held rows a person accepts in this run, counted in it). A batch continued is first brought
    under this run's guardrails (:func:`guard_continued`)."""
    crash.point("after_validation")
    if not report.valid_rows:
        raise errors.PlanRefused("no valid row in the file; nothing to pay")
    if strict and len(report.valid_rows) != len(report.rows):
        raise errors.PlanRefused("--strict: fix the invalid rows first")
    batch_id = batch_id_for(session, file, label)
    if not session.ledger.has_batch(batch_id):
        return plan_batch(session, batch_id, sheet, report, label=label, pay_again=pay_again, accepted=accepted)
    if pay_again:
        raise errors.OverrideOnOldBatch(batch_id)
    stages.require_approved(session.ledger, batch_id)  # the same file made in the console
    reheld, released = guard_continued(session, batch_id, report)
    states = session.ledger.counts(batch_id)  # counted by the ledger: a 100k batch is not decoded
    held = sorted(session.ledger.row_numbers(batch_id, RowState.HELD))  # (by number; none decoded)
    if not any(states.get(s.value) for s in OPEN_STATES) and not set(held) & set(accepted):
        counts: dict[str, int] = {}
        for state, n in states.items():
            word = results_mod.STATUS_WORDS[RowState(state)]
            counts[word] = counts.get(word, 0) + n
        return AlreadyPaid(session.ledger.batch(batch_id), counts, label, held, reheld)
    planned = plan_batch(session, batch_id, sheet, report, label=label, continuing=True, accepted=accepted)
    return replace(planned, released=released, reheld=reheld, accepted=[n for n in held if n in accepted])


def write_finished(session: Session, finished: AlreadyPaid, results_path: Path | None) -> ResultsWritten:
    """The finished batch's results file (``results_path`` None: named after the batch, next to
    its file), and the verdict its rows call for."""
    batch_id = finished.batch.id
    path = results.write(
        session.ledger, batch_id, results_path or results.default_path(finished.batch.source, batch_id)
    )
    return ResultsWritten(
        path, facts.verdict(session.ledger, batch_id, facts.exit_code_for(session.ledger.counts(batch_id)))
    )


def require_covered(planned: Planned, *, allow_partial: bool) -> None:
    """PlanRefused when the payout balance does not cover the plan, unless paying what it covers is allowed."""
    if not planned.plan.covered and not allow_partial:
        raise errors.PlanRefused(
            "the payout balance does not cover this run; top up, or use --allow-partial to pay what it covers"
        )


def needs_confirmation(planned: Planned) -> bool:
    """A new batch that will send money, or a batch continued with rows that were held, is
    confirmed by a person first (the typed total)."""
    changed = planned.new is not None or bool(planned.released) or bool(planned.accepted)
    return changed and bool(planned.plan.currencies)


def total_matches(typed: str, plan: Plan) -> bool:
    """The total a person typed, thousands separators, spacing and case aside."""

    def canon(text: str) -> str:
        return " ".join(text.replace(",", "").split()).upper()

    return canon(typed) == canon(plan.grand_total)


def operator() -> str:
    """Who is running this process, for the ledger's record of overrides."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def create_batch(session: Session, planned: Planned, sheet: RawSheet, *, who: str | None = None) -> None:
    """Store a new batch with its rows, claims, overrides (recorded as ``who``, default the
    operator) and the rows it takes over, in one transaction. Nothing for an existing batch."""
    if planned.new is None:
        return
    planning.persist_batch(
        session.ledger,
        planned.new,
        sheet,
        fingerprint=planned.batch_id,
        options={"mapping": sheet.mapping},
        who=who or operator(),
    )


def resumable(session: Session, batch_id: str) -> BatchRecord:
    """A batch to continue, if it belongs to this session's environment. A batch replaced by a
    newer run of its file (``replaced_by``) that still has rows never sent is not continued:
    BatchReplaced says where to go on (rows the newer file pays were taken over by it)."""
    batch = session.batch_here(batch_id)
    stages.require_approved(session.ledger, batch_id)
    if batch.replaced_by:
        unsent = [r.row for r in session.ledger.rows(batch_id, RowState.READY) if r.submitting_at is None]
        if unsent:
            raise errors.BatchReplaced(batch_id, batch.replaced_by, unsent)
    return batch


def settings_for(session: Session, options: RunOptions) -> Settings:
    """The engine's settings; the built-in sandbox shows payouts at once, so it is read sooner."""
    settings = Settings(
        concurrency=options.concurrency,
        visibility_lag=options.visibility_lag,
        poll_interval=options.poll_interval,
        callback_url=options.callback_url,
        wallets=dict(options.wallets),
        poll=options.poll,
    )
    if options.policy is not None:
        settings = with_policy(settings, options.policy)
    settings.verify = settings.verify and options.name_check
    settings.allow_unverified = settings.allow_unverified or options.allow_unverified
    if session.is_sandbox:
        settings.visibility_lag = min(settings.visibility_lag, SANDBOX_VISIBILITY_LAG)
        settings.poll_interval = min(settings.poll_interval, SANDBOX_POLL_INTERVAL)
    return settings


def accept_names(session: Session, batch_id: str, rows: Sequence[int], who: str | None = None) -> list[int]:
    """An operator accepts held rows of a batch of this environment (recorded with who and when);
    the run that follows pays them. Raises NotHeld, and accepts none, if one of them is not held."""
    resumable(session, batch_id)
    return [r.row for r in accept_held(session.ledger, batch_id, rows, who or operator())]


class AmountsByState:
    """The batch's amounts per state and currency, summed again only when the counts changed and at
    most once every ``every`` seconds (a sum reads every row: at 100,000 rows, not on every pass)."""

    def __init__(
        self, ledger: Ledger, batch_id: str, *, every: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ledger, self.batch_id, self.every, self.clock = ledger, batch_id, every, clock
        self.counts: dict[str, int] | None = None
        self.at = -every
        self.last: tuple[tuple[str, str, Decimal], ...] = ()

    def now(self, counts: dict[str, int]) -> tuple[tuple[str, str, Decimal], ...]:
        if counts != self.counts and self.clock() - self.at >= self.every:
            self.counts, self.at = dict(counts), self.clock()
            self.last = tuple(
                (state.value, currency, amount) for state, currency, _, amount in self.ledger.totals(self.batch_id)
            )
        return self.last


def run_batch(
    session: Session,
    batch_id: str,
    options: RunOptions,
    *,
    progress: ProgressListener | None = None,
    actor: str | None = None,
) -> RunResult:
    """Pay every row of the batch still to pay, once, and follow them until settled or
    ``options.wait_timeout`` seconds pass. One runner per batch (a lease in the ledger: a second
    runner is refused with BatchLocked). ``progress`` hears every pass of the run loop. The run is
    recorded in the batch's actions as started by ``actor`` (default: this process's user)."""
    session.ledger.record_action(batch_id, actor or operator(), stages.RUN_STARTED)
    settings = settings_for(session, options)
    money = Limiter(options.money_rate, klass=MONEY, holds=session.holds)
    env_id = session.environment().id
    wallets = wallet_ids(session.wallets())  # read a moment ago by the checks before the run, or now
    reads = session.reads_limiter(options.reads_rate)
    total = sum(session.ledger.counts(batch_id).values())
    amounts = AmountsByState(session.ledger, batch_id, every=total / 2_000)  # 50 s at 100,000 rows (O(rows))
    with contextlib.ExitStack() as stack:
        events = stack.enter_context(options.events_path.open("a")) if options.events_path else None

        def heard(counts: dict[str, int]) -> None:
            ready = counts.get("ready", 0)
            if progress is not None:
                settled = sum(counts.get(s.value, 0) for s in SETTLED_STATES)
                progress(
                    RunProgress(
                        batch_id,
                        counts,
                        total,
                        settled,
                        ready,
                        ready / max(money.rate_per_minute(), 1e-9) * 60,
                        amounts.now(counts),
                    )
                )
            if events is not None:
                events.write(json.dumps({"at": time.time(), "batch": batch_id, "counts": counts}) + "\n")
                events.flush()

        if options.listen is not None:
            host, port = options.listen
            stack.enter_context(receiving(session.ledger.path, host, port, session.secrets[1:]))

        async def go(client: KotaniClient) -> RunResult:
            run = RunState(wallets)
            ctx = Context(session.ledger, client, money, reads, settings, env_id=env_id, clock=session.clock, run=run)
            listened = progress is not None or events is not None  # counting a batch is O(rows): only when heard
            return await engine_run(
                ctx, batch_id, wait_timeout=options.wait_timeout, progress=heard if listened else None
            )

        return session.call(go)


def finish(session: Session, batch_id: str, result: RunResult, results_path: Path) -> RunOutcome:
    """Write the results file (unless the one at ``results_path`` is already up to date: a settled
    batch resumed) and gather how the run ended."""
    written = results.write_unless_current(session.ledger, batch_id, results_path)
    return RunOutcome(
        batch_id, result, results_path, facts.batch_status(session.ledger, batch_id, code=result.exit_code), not written
    )

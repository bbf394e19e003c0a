"""The web console's use cases: one long-lived session of a server (the built-in sandbox's books
held for the server's life), a ledger connection per request and per run, uploads, the pages'
facts (batches list, review, progress, results, audit log), approvals that start background
runs, retries, and downloads. Route handlers call these and render what they return."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from batch_payouts import errors
from batch_payouts.app import approvals, confirmation, drafts, files, payouts, stages
from batch_payouts.app import people as people_mod
from batch_payouts.app import results as app_results
from batch_payouts.app import retry as app_retry
from batch_payouts.app import status as facts
from batch_payouts.app.approvals import Stage
from batch_payouts.app.drafts import Draft
from batch_payouts.app.files import FileOptions
from batch_payouts.app.notify import Notifier
from batch_payouts.app.people import Action, Person, Throttle, require
from batch_payouts.app.runs import Runs, RunState
from batch_payouts.app.session import Session
from batch_payouts.engine.verify_stage import name_check_columns
from batch_payouts.ledger import Ledger, RowRecord
from batch_payouts.model import RowState
from batch_payouts.policy import Policy
from batch_payouts.sheets.columns import CANONICAL
from batch_payouts.sheets.guard import Limits
from batch_payouts.vocabulary import Word, word_for

UPLOADABLE = (".csv", ".xlsx")
RECENT_EVENTS = 8
ROWS_PER_PAGE = 100  # rows of a table on one page
SETTLED_WORDS = frozenset({Word.PAID, Word.FAILED, Word.INVALID, Word.REPEAT, Word.HELD})
DRAFT_FILTERS = ("all", "problems")  # a draft's rows: every one, or those to look at (not paid, a problem, a check)
_ATTENTION_SEVERITY = {"held": "held", "invalid": "error", "paid": "warning"}  # a row to look at, by its status
ROW_FILTERS: dict[str, frozenset[RowState]] = {  # the filters of a batch's rows: the states each shows
    "all": frozenset(),
    "failed": frozenset(s for s in RowState if word_for(s) is Word.FAILED),
    "held": frozenset(s for s in RowState if word_for(s) is Word.HELD),
    "paid": frozenset(s for s in RowState if word_for(s) is Word.PAID),
}
LIVE_RETRY_COOLOFF = 600.0  # seconds a failed row stays failed before a LIVE retry may pay it again


@dataclass(frozen=True)
class WorkspaceOptions:
    """How the console works: the policy (approval rule), runs, uploads (``max_file_bytes`` in
    bytes; ``uploads`` None: a folder beside the ledger), retries (``retry_cooloff`` seconds,
    None: 0 for the built-in sandbox, 600 otherwise), notifications."""

    policy: Policy = field(default_factory=Policy)
    run: payouts.RunOptions = field(default_factory=payouts.RunOptions)
    max_file_bytes: int = Limits.max_file_bytes
    uploads: Path | None = None
    retry_cooloff: float | None = None
    notify_url: str | None = None


@dataclass(frozen=True)
class BatchLine:
    """One batch in the list: ``name`` is its label or its file's name; ``totals`` e.g. "KES 300"."""

    batch_id: str
    name: str
    label: str
    file: str
    environment: str
    totals: str
    stage: str
    makers: tuple[str, ...]
    approvers: tuple[str, ...]
    created_at: float


@dataclass(frozen=True)
class RowLine:
    """A row as a page shows it: its cells in the file's column order, what happened, its problems
    (severity, sentence), the payee check's verdict and any error or note."""

    row: int
    cells: list[str]
    word: str
    kind: str  # the filter the row falls under: paid, failed, held, or its state
    problems: list[tuple[str, str]]
    name_check: str
    registered_name: str
    detail: str
    acceptable: bool  # held by the payee check: an approver may accept it


@dataclass(frozen=True)
class CurrencyLine:
    """The plan of one currency: rows to send, their total, the payout balance and what is missing;
    on a review, the estimated fees (None: unknown), what the estimate rests on, and the debit in words."""

    currency: str
    rows: int
    total: Decimal
    balance: Decimal | None
    shortfall: Decimal
    fee: Decimal | None = None
    fee_basis: str = ""
    debit: str = ""


@dataclass(frozen=True)
class ProgressView:
    """Counts and amounts per outcome word, the ETA in seconds, and the latest row changes."""

    running: bool
    lines: list[facts.SummaryLine]
    rows: int
    settled: int
    eta: float | None
    recent: list[tuple[int, str, str]]
    error: str | None


@dataclass(frozen=True)
class RowPages:
    """Where a table of ``total`` rows is: page ``page`` of ``pages`` (1-based, at least 1),
    starting at the ``offset``-th row (0-based)."""

    total: int
    page: int
    pages: int

    @classmethod
    def of(cls, total: int, page: int) -> RowPages:
        """``page`` of a table of ``total`` rows, brought within its pages."""
        pages = max(1, -(-total // ROWS_PER_PAGE))
        return cls(total, min(max(page, 1), pages), pages)

    @property
    def offset(self) -> int:
        return (self.page - 1) * ROWS_PER_PAGE

    @property
    def last(self) -> int:
        """The number (1-based) of the page's last row in the table."""
        return min(self.total, self.page * ROWS_PER_PAGE)


@dataclass(frozen=True)
class BatchView:
    batch_id: str
    name: str
    label: str
    file: str
    environment: str
    stage: Stage
    makers: tuple[str, ...]
    approvers: tuple[str, ...]
    headers: list[str]
    mapping: dict[str, str]
    rows: list[RowLine]
    plan: list[CurrencyLine]
    total_to_pay: str
    two_person: bool
    offers: frozenset[Action]
    parent: str | None
    children: list[str]
    progress: ProgressView
    show: str = "all"  # the filter of ``rows``
    shown: dict[str, int] = field(default_factory=dict)  # rows under each filter
    pages: RowPages = field(default_factory=lambda: RowPages(0, 1, 1))  # where ``rows`` are


@dataclass(frozen=True)
class Uploaded:
    """The draft an upload made, or the batch of the same file and label, with a ``note``."""

    batch_id: str | None
    note: str | None = None
    draft: str | None = None


@dataclass(frozen=True)
class DraftView:
    """An uploaded file under review: its rows (cells in the file's order, problems, whether each
    will be paid), ``mapping`` canonical column -> header as read, ``columns`` every canonical
    column, the plan per currency, and ``batch_id`` once submitted."""

    token: str
    name: str
    label: str
    file: str
    maker: str
    headers: list[str]
    mapping: dict[str, str]
    columns: list[str]
    rows: list[RowLine]
    plan: list[CurrencyLine]
    total: str
    notes: list[str]
    batch_id: str | None
    attention: list[confirmation.Attention] = field(default_factory=list)
    to_check: int = 0  # rows whose payee the run checks with Kotani as it pays them
    more_attention: int = 0  # rows to look at beyond ``attention``
    show: str = "all"  # the filter of ``rows``: one of DRAFT_FILTERS
    shown: dict[str, int] = field(default_factory=dict)  # rows under each filter
    pages: RowPages = field(default_factory=lambda: RowPages(0, 1, 1))  # where ``rows`` are

    @classmethod
    def of(
        cls,
        draft: Draft,
        *,
        headers: list[str],
        mapping: dict[str, str],
        notes: list[str],
        rows: list[RowLine] | None = None,
        plan: list[CurrencyLine] | None = None,
        total: str = "",
        attention: list[confirmation.Attention] | None = None,
        more_attention: int = 0,
        to_check: int = 0,
        show: str = "all",
        shown: dict[str, int] | None = None,
        pages: RowPages | None = None,
    ) -> DraftView:
        """The view of ``draft``: what the draft itself says, with what its review found."""
        return cls(
            draft.token,
            draft.name,
            draft.label,
            draft.file,
            draft.maker,
            headers,
            mapping,
            list(CANONICAL),
            rows or [],
            plan or [],
            total,
            notes,
            draft.batch_id,
            attention or [],
            to_check,
            more_attention,
            show,
            shown or {},
            pages or RowPages(0, 1, 1),
        )


@dataclass(frozen=True)
class Download:
    filename: str
    content: bytes
    media_type: str


@dataclass(frozen=True)
class AuditLine:
    at: float
    actor: str
    action: str
    detail: str


MEDIA = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class Workspace:
    """A server's use of the tool: ``session`` stays open for the server's life; each request and
    each run works on a ledger connection of its own through :meth:`acting`."""

    def __init__(self, session: Session, options: WorkspaceOptions) -> None:
        self.session = session
        self.options = options
        self.environment = session.environment()
        self.throttle = Throttle()
        self.notifier = Notifier(options.notify_url)
        self.uploads = options.uploads or session.ledger.path.with_name(session.ledger.path.name + ".uploads")
        self.runs = Runs(self.acting, options.run, on_finished=self._finished)

    # -- sessions ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def acting(self, actor: str | None) -> Iterator[Session]:
        """The server's session on a fresh ledger connection, its API calls recorded as ``actor``'s."""
        base = self.session
        with contextlib.closing(Ledger(base.ledger.path, clock=base.ledger.clock, secrets=base.secrets)) as ledger:
            yield dataclasses.replace(base, ledger=ledger, actor=actor, on_environment=None)

    @contextlib.contextmanager
    def ledger(self) -> Iterator[Ledger]:
        with self.acting(None) as session:
            yield session.ledger

    @property
    def banner(self) -> str:
        """What every page says first: SANDBOX, or LIVE with host and account."""
        if self.environment.kind == "SANDBOX":
            return "SANDBOX · built-in sandbox: no real money moves"
        return self.environment.describe()

    @property
    def is_sandbox(self) -> bool:
        return self.environment.kind == "SANDBOX"

    # -- the batches list ------------------------------------------------------------------------

    def batches(self, person: Person, limit: int = 50) -> list[BatchLine]:
        require(person, Action.READ)
        with self.ledger() as ledger:
            out = []
            for b in ledger.batches(limit, env_id=self.environment.id):
                who = approvals.people_of(ledger.actions(b.id))
                plan = approvals.to_pay(ledger, b.id)
                totals = _all_totals(ledger, b.id)
                out.append(
                    BatchLine(
                        b.id,
                        b.label or Path(b.source).name,
                        b.label,
                        Path(b.source).name,
                        self.environment.kind,
                        totals or plan.grand_total,
                        approvals.stage_of(ledger, b.id, running=self.runs.running(b.id)).value,
                        who.makers,
                        who.approvers,
                        b.created_at,
                    )
                )
            return out

    # -- upload --------------------------------------------------------------------------------------

    def upload(self, person: Person, filename: str, content: bytes, *, label: str) -> Uploaded:
        """A payout file a person sent: size-capped, saved as a draft under the uploads folder, read
        through the hostile-file guard. A file whose batch exists already leads to that batch."""
        require(person, Action.UPLOAD)
        name = safe_filename(filename)
        if len(content) > self.options.max_file_bytes:
            raise errors.InputFileError(
                name, f"is larger than the {self.options.max_file_bytes // (1024 * 1024)} MB limit for uploads"
            )
        draft = drafts.save(self.uploads, name, content, maker=person.name, label=label.strip())
        try:
            files.load(draft.path, self._file_options(draft))
        except errors.MissingColumns:
            return Uploaded(None, draft=draft.token)  # its review asks which column holds what
        with self.acting(person.name) as session:
            existing = payouts.batch_id_for(session, draft.path, draft.label)
            if session.ledger.has_batch(existing):
                drafts.submitted(draft, existing)
                return Uploaded(
                    existing, "this file was uploaded before with this label: here is its batch (nothing is paid twice)"
                )
        return Uploaded(None, draft=draft.token)

    def _file_options(self, draft: drafts.Draft) -> FileOptions:
        """The draft's mapping, the console's policy (guardrails) and upload cap."""
        return FileOptions(
            mapping=dict(draft.mapping), policy=self.options.policy, max_file_bytes=self.options.max_file_bytes
        )

    def drafts(self, person: Person) -> list[drafts.Draft]:
        """Uploaded files not yet submitted, newest first."""
        require(person, Action.READ)
        return drafts.waiting(self.uploads)

    def draft(self, person: Person, token: str, *, show: str = "all", page: int = 1) -> DraftView:
        """The review of an uploaded file: the plan per currency against the payout balance, the
        rows to look at (the first ``ROWS_PER_PAGE``), the column mapping, and one page (1-based) of
        the rows with their problems under the filter ``show`` (one of ``DRAFT_FILTERS``)."""
        require(person, Action.READ)
        draft = drafts.read(self.uploads, token)
        options = self._file_options(draft)
        try:
            sheet = files.load(draft.path, options)
        except errors.MissingColumns as exc:
            return self._to_map(draft, exc)
        with self.acting(person.name) as session:
            report = files.check(session, sheet, options)
            planned = payouts.plan_batch(
                session, payouts.batch_id_for(session, draft.path, draft.label), sheet, report, label=draft.label
            )
            screen = (
                confirmation.confirmation(session, planned, report, self.options.run, self.options.policy)
                if planned.plan.currencies
                else None
            )
        repeats: dict[int, list[str]] = {}
        for repeat in planned.new.repeats if planned.new else []:
            repeats.setdefault(repeat.row, []).append(repeat.sentence)
        by_row = {r.row: r for r in report.rows}
        sendable = planned.new.sendable if planned.new is not None else set()  # (a set made once, not per row)
        look_at = {a.row: a for a in screen.attention} if screen else {}
        show = show if show in DRAFT_FILTERS else "all"

        def to_look_at(number: int) -> bool:
            return number not in sendable or bool(by_row[number].problems) or number in repeats or number in look_at

        problem_rows = [raw for raw in sheet.rows if to_look_at(raw.row)]
        shown = {"all": len(sheet.rows), "problems": len(problem_rows)}
        in_table = problem_rows if show == "problems" else sheet.rows
        pages = RowPages.of(len(in_table), page)
        rows = []
        for raw in in_table[pages.offset : pages.offset + ROWS_PER_PAGE]:
            result = by_row[raw.row]
            attention = look_at.get(raw.row)
            problems: list[tuple[str, str]] = [
                (p.severity, (f"{p.column}: " if p.column else "") + p.message)
                for p in result.problems
                if attention is None or not p.rule  # (a guardrail's sentence is in the reason below)
            ]
            if attention is not None:
                problems.append((_ATTENTION_SEVERITY.get(attention.status, "warning"), attention.reason))
            problems += [("error", sentence) for sentence in repeats.get(raw.row, [])]
            will_pay = raw.row in sendable
            rows.append(
                RowLine(
                    raw.row,
                    [raw.cells.get(h, "") for h in sheet.headers],
                    "will be paid" if will_pay else "will not be paid",
                    "valid" if will_pay else "invalid",
                    problems,
                    "",
                    "",
                    "",
                    False,
                )
            )
        estimates = {line.currency: line for line in screen.currencies} if screen else {}
        plan = []
        for c in sorted(planned.plan.currencies.values(), key=lambda c: c.currency):
            line = estimates.get(c.currency)
            balance = line.balance if line else c.balance
            plan.append(
                CurrencyLine(
                    c.currency,
                    c.rows,
                    c.total,
                    balance,
                    max(Decimal(0), c.total - balance) if balance is not None else c.total,
                    line.fees.fee if line else None,
                    line.fees.basis if line else "",
                    line.fees.debit_sentence if line else "",
                )
            )
        return DraftView.of(
            draft,
            headers=sheet.headers,
            mapping=dict(sheet.mapping),
            notes=list(sheet.notes),
            rows=rows,
            plan=plan,
            total=planned.plan.grand_total,
            attention=screen.attention[:ROWS_PER_PAGE] if screen else [],
            more_attention=max(0, len(screen.attention) - ROWS_PER_PAGE) if screen else 0,
            to_check=screen.to_check if screen else 0,
            show=show,
            shown=shown,
            pages=pages,
        )

    def _to_map(self, draft: Draft, missing: errors.MissingColumns) -> DraftView:
        """The review of a file whose required columns were not all recognised: no rows yet, the
        file's own column names, and what to choose."""
        note = (
            f"{missing.cause}: choose below which column of the file holds "
            f"{' and '.join(missing.missing)}, then save the mapping"
        )
        return DraftView.of(draft, headers=missing.headers, mapping=dict(draft.mapping), notes=[note])

    def remap(self, person: Person, token: str, mapping: dict[str, str]) -> None:
        """A person's column mapping for a draft (canonical column -> header; empty: automatic),
        kept only when the file reads with it."""
        require(person, Action.UPLOAD)
        draft = drafts.read(self.uploads, token)
        if draft.batch_id is not None:
            raise errors.WrongStage(draft.batch_id, "submitted", "its column mapping can no longer change")
        chosen = {canon: header for canon, header in mapping.items() if header}
        try:
            headers = files.load(draft.path, self._file_options(draft)).headers
        except errors.MissingColumns as exc:
            headers = exc.headers
        for canon, header in chosen.items():
            if canon not in CANONICAL:
                raise errors.BadValue(f"{canon!r} is not a column batch-payouts knows", "mapping")
            if header not in headers:
                raise errors.BadValue(f"{header!r} is not a column of {draft.file}", "mapping")
        files.load(
            draft.path,
            FileOptions(mapping=chosen, policy=self.options.policy, max_file_bytes=self.options.max_file_bytes),
        )
        drafts.with_mapping(draft, chosen)

    def submit_draft(self, person: Person, token: str) -> str:
        """The draft becomes a batch awaiting approval (its rows decided against every other batch,
        the balance checked); the batch's id."""
        require(person, Action.SUBMIT)
        draft = drafts.read(self.uploads, token)
        if draft.batch_id is not None:
            raise errors.WrongStage(draft.batch_id, "submitted already", "open it from the batches list")
        options = self._file_options(draft)
        sheet = files.load(draft.path, options)
        with self.acting(person.name) as session:
            report = files.check(session, sheet, options)
            planned = payouts.prepare_run(
                session, draft.path, sheet, report, label=draft.label, pay_again={}, strict=False
            )
            if isinstance(planned, payouts.AlreadyPaid) or planned.new is None:
                batch_id = planned.batch.id if isinstance(planned, payouts.AlreadyPaid) else planned.batch_id
                drafts.submitted(draft, batch_id)
                raise errors.WrongStage(
                    batch_id, "made already from this file and label", "open it from the batches list"
                )
            payouts.require_covered(planned, allow_partial=False)
            payouts.create_batch(session, planned, sheet, who=draft.maker)
            session.ledger.record_action(planned.batch_id, draft.maker, stages.UPLOADED, draft.file)
            drafts.submitted(draft, planned.batch_id)
        self.submit(person, planned.batch_id)
        return planned.batch_id

    # -- one batch -------------------------------------------------------------------------------------

    def batch(
        self, person: Person, batch_id: str, *, show: str = "all", page: int = 1, with_balances: bool = True
    ) -> BatchView:
        """The batch's page: its facts, plan and progress, and one page (1-based, ``ROWS_PER_PAGE``
        rows) of its rows under the filter ``show`` (one of ``ROW_FILTERS``; another: "all")."""
        require(person, Action.READ)
        show = show if show in ROW_FILTERS else "all"
        with self.acting(person.name) as session:
            batch = session.batch_here(batch_id)
            ledger = session.ledger
            running = self.runs.running(batch_id)
            stage = approvals.stage_of(ledger, batch_id, running=running)
            who = approvals.people_of(ledger.actions(batch_id))
            plan = approvals.to_pay(ledger, batch_id)
            balances = (
                session.balances()
                if with_balances and stage in (Stage.DRAFT, Stage.AWAITING) and plan.currencies
                else {}
            )
            lines = [
                CurrencyLine(
                    c.currency,
                    c.rows,
                    c.total,
                    balances.get(c.currency),
                    max(Decimal(0), c.total - balances[c.currency]) if c.currency in balances else Decimal(0),
                )
                for c in sorted(plan.currencies.values(), key=lambda c: c.currency)
            ]
            counts = ledger.counts(batch_id)
            shown = _filter_counts(counts)
            pages = RowPages.of(shown[show], page)
            rows = [
                _row_line(r, batch.headers)
                for r in ledger.page_of_rows(batch_id, ROW_FILTERS[show], offset=pages.offset, limit=ROWS_PER_PAGE)
            ]
            two = approvals.needs_second_person(session, self.options.policy, batch_id)
            return BatchView(
                batch_id,
                batch.label or Path(batch.source).name,
                batch.label,
                Path(batch.source).name,
                self.banner,
                stage,
                who.makers,
                who.approvers,
                batch.headers,
                dict(batch.options.get("mapping", {})),
                rows,
                lines,
                plan.grand_total,
                two,
                self._offers(person, stage, counts, who, two),
                batch.parent,
                ledger.children(batch_id),
                self._progress(ledger, batch_id, running, counts),
                show,
                shown,
                pages,
            )

    def _offers(
        self, person: Person, stage: Stage, counts: dict[str, int], who: approvals.People, two: bool
    ) -> frozenset[Action]:
        """What this person may do to the batch now (the server checks again when they do it);
        ``counts``: the batch's rows per state."""
        offers = set()
        if stage is Stage.DRAFT and person.may(Action.SUBMIT):
            offers.add(Action.SUBMIT)
        if (
            stage in (Stage.AWAITING, Stage.APPROVED)
            and person.may(Action.APPROVE)
            and not (two and person.name in who.makers)
        ):
            offers.add(Action.APPROVE)
        if stage is Stage.FINISHED and person.may(Action.RETRY) and _filter_counts(counts)["failed"]:
            offers.add(Action.RETRY)
        if (
            stage is not Stage.RUNNING
            and person.may(Action.ACCEPT_HELD)
            and counts.get(RowState.HELD.value, 0)
            and not (two and person.name in who.makers)
        ):
            offers.add(Action.ACCEPT_HELD)
        return frozenset(offers)

    def progress(self, person: Person, batch_id: str) -> ProgressView:
        require(person, Action.READ)
        with self.acting(person.name) as session:
            session.batch_here(batch_id)
            return self._progress(session.ledger, batch_id, self.runs.running(batch_id))

    def _progress(
        self, ledger: Ledger, batch_id: str, running: bool, counts: dict[str, int] | None = None
    ) -> ProgressView:
        """Counted and summed by the ledger; only the latest rows are decoded (``counts``: the
        batch's rows per state, when the caller has them)."""
        state = self.runs.state(batch_id)
        counts = ledger.counts(batch_id) if counts is None else counts
        recent = ledger.latest_rows(batch_id, RECENT_EVENTS)
        progress = state.progress if state else None
        settled = sum(n for s, n in counts.items() if word_for(RowState(s)) in SETTLED_WORDS)
        return ProgressView(
            running,
            facts.summary(ledger, batch_id),
            sum(counts.values()),
            settled,
            progress.eta if progress and running else None,
            [(r.row, word_for(r.state).value, r.error or r.note or "") for r in recent],
            state.error if state else None,
        )

    def audit(self, person: Person, batch_id: str) -> list[AuditLine]:
        """Who did what to the batch, and when, oldest first (actions and acceptances of held rows)."""
        require(person, Action.READ)
        with self.acting(person.name) as session:
            session.batch_here(batch_id)
            return [AuditLine(a.at, a.actor, a.action, a.detail) for a in session.ledger.actions(batch_id)]

    # -- the steps -----------------------------------------------------------------------------------

    def submit(self, person: Person, batch_id: str) -> None:
        with self.acting(person.name) as session:
            approvals.submit(session, person, batch_id, running=self.runs.running(batch_id))
            total = approvals.to_pay(session.ledger, batch_id).grand_total
        self.notifier.tell(f"Batch {batch_id} ({total}) awaits approval; submitted by {person.name}.")

    def approve(self, person: Person, batch_id: str, typed: str) -> None:
        """Approve a batch awaiting approval (typed total, two-person rule), then pay it in the
        background. An approved batch that stopped (not running) is started again without a new approval."""
        with self.acting(person.name) as session:
            running = self.runs.running(batch_id)
            stage = approvals.stage_of(session.ledger, batch_id, running=running)
            if stage is Stage.APPROVED:
                approvals.resume(session, self.options.policy, person, batch_id)
            else:
                approvals.approve(session, self.options.policy, person, batch_id, typed, running=running)
        self.runs.start(batch_id, person.name)

    def accept_held(self, person: Person, batch_id: str, row: int) -> None:
        with self.acting(person.name) as session:
            approvals.accept_held(
                session, self.options.policy, person, batch_id, row, running=self.runs.running(batch_id)
            )
        self.runs.start(batch_id, person.name)

    def retry(self, person: Person, batch_id: str) -> str:
        """A new batch of the failed rows, submitted for approval by ``person``; its id."""
        require(person, Action.RETRY)
        if self.runs.running(batch_id):
            raise errors.WrongStage(batch_id, Stage.RUNNING.value, "wait for the run to finish before a retry")
        cooloff = self.options.retry_cooloff
        if cooloff is None:
            cooloff = 0.0 if self.is_sandbox else LIVE_RETRY_COOLOFF
        with self.acting(person.name) as session:
            planned = app_retry.plan_retry(session, batch_id, cooloff=cooloff)
            if not planned.plan.rows:
                raise errors.WrongStage(
                    batch_id,
                    "without a failed row that may be paid again yet",
                    f"rows failed less than {cooloff:.0f} s ago, or paid elsewhere, wait",
                )
            child = app_retry.create_retry(session, planned)
            session.ledger.record_action(batch_id, person.name, stages.RETRY_ASKED, f"retry batch {child}")
            session.ledger.record_action(
                child, person.name, stages.SUBMITTED, f"retry of {batch_id}, total {planned.totals.grand_total}"
            )
        self.notifier.tell(
            f"Retry batch {child} ({planned.totals.grand_total}) awaits approval; asked by {person.name}."
        )
        return child

    def _finished(self, batch_id: str, state: RunState) -> None:
        outcome = state.outcome
        if outcome is None:
            self.notifier.tell(f"Batch {batch_id} stopped: {state.error or 'unknown reason'}.")
            return
        lines = ", ".join(f"{s.rows} {s.status} ({s.currency} {s.amount})" for s in outcome.status.summary)
        self.notifier.tell(f"Batch {batch_id} finished: {lines}.")
        if outcome.verdict.paid_twice:
            pairs = "; ".join(
                f"row {p.row.row} and batch {p.other.batch_id} row {p.other.row}" for p in outcome.verdict.paid_twice
            )
            self.notifier.tell(f"PAID TWICE in batch {batch_id}: {pairs}.")

    # -- people (admins) -------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, code: str, address: str) -> Person:
        with self.ledger() as ledger:
            return people_mod.sign_in(ledger, self.throttle, name=name, password=password, code=code, address=address)

    def person(self, name: str) -> Person | None:
        """The person of a session while they exist and are not disabled."""
        with self.ledger() as ledger:
            return people_mod.active_person(ledger, name)

    def signed_out(self, person: Person) -> None:
        with self.ledger() as ledger:
            ledger.record_action(None, person.name, "signed out")

    def people(self, person: Person) -> list[people_mod.PersonLine]:
        require(person, Action.MANAGE_PEOPLE)
        with self.ledger() as ledger:
            return people_mod.people(ledger)

    def add_person(self, person: Person, name: str, role: str, password: str, *, totp: bool) -> people_mod.Added:
        require(person, Action.MANAGE_PEOPLE)
        with self.ledger() as ledger:
            return people_mod.add_person(
                ledger, name.strip().lower(), people_mod.role_of(role), password, totp=totp, by=person.name
            )

    def disable_person(self, person: Person, name: str) -> None:
        require(person, Action.MANAGE_PEOPLE)
        if name == person.name:
            raise errors.NotAllowed(person.name, person.role.value, "disable themselves")
        with self.ledger() as ledger:
            people_mod.disable_person(ledger, name, by=person.name)

    # -- downloads -----------------------------------------------------------------------------------

    def results_file(self, person: Person, batch_id: str, suffix: str) -> Download:
        """The batch's results (CSV or XLSX), also mid-run."""
        require(person, Action.READ)
        if suffix not in UPLOADABLE:
            raise errors.UnsupportedFormat(Path(f"results{suffix}"), "results file")
        with self.acting(person.name) as session, tempfile.TemporaryDirectory() as tmp:
            batch = session.batch_here(batch_id)
            path = app_results.write(session.ledger, batch_id, Path(tmp) / f"results{suffix}")
            return Download(f"{Path(batch.source).stem}.{batch_id}.results{suffix}", path.read_bytes(), MEDIA[suffix])

    def validation_report(self, person: Person, batch_id: str) -> Download:
        """Every row of the batch's file with its problems (CSV)."""
        require(person, Action.READ)
        with self.acting(person.name) as session, tempfile.TemporaryDirectory() as tmp:
            batch = session.batch_here(batch_id)
            options = FileOptions(
                mapping=dict(batch.options.get("mapping", {})),
                policy=self.options.policy,
                max_file_bytes=self.options.max_file_bytes,
            )
            source = Path(batch.source)
            if not source.exists():
                raise errors.InputFileError(source.name, "is no longer on this machine; the report needs the file")
            sheet = files.load(source, options)
            report = files.check(session, sheet, options)
            path = files.write_report(Path(tmp) / "report.csv", sheet, report)
            return Download(f"{source.stem}.{batch_id}.validation.csv", path.read_bytes(), MEDIA[".csv"])


def safe_filename(name: str) -> str:
    """The base name of an uploaded file with anything but letters, digits, '.', '_' and '-' replaced;
    InputFileError unless it is a .csv or .xlsx file."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name.replace("\\", "/")).name).lstrip(".") or "upload"
    if Path(base).suffix.lower() not in UPLOADABLE:
        raise errors.InputFileError(base[:80], "is not a .csv or .xlsx file")
    return base[:120]


def _all_totals(ledger: Ledger, batch_id: str) -> str:
    """Every payout of the batch, whatever became of it, per currency: e.g. "KES 300"."""
    sums: dict[str, Decimal] = {}
    for _, currency, _, total in ledger.totals(batch_id):
        if currency:
            sums[currency] = sums.get(currency, Decimal(0)) + total
    return ", ".join(f"{c} {t}" for c, t in sorted(sums.items()))


def _filter_counts(counts: dict[str, int]) -> dict[str, int]:
    """The rows under each filter of ``ROW_FILTERS``, from the rows per state."""
    return {
        name: sum(n for s, n in counts.items() if not states or RowState(s) in states)
        for name, states in ROW_FILTERS.items()
    }


def _row_line(r: RowRecord, headers: list[str]) -> RowLine:
    check = name_check_columns(r)
    return RowLine(
        r.row,
        [r.cells.get(h, "") for h in headers],
        word_for(r.state).value,
        _kind(r.state),
        [
            (p.get("severity", "error"), (f"{p['column']}: " if p.get("column") else "") + p.get("message", ""))
            for p in r.problems
        ],
        check.get("name_check", ""),
        check.get("registered_name", ""),
        r.error or r.note or "",
        r.state is RowState.HELD,
    )


def _kind(state: RowState) -> str:
    """paid, failed, held, or the state's own name."""
    word = word_for(state)
    if word is Word.PAID:
        return "paid"
    if word is Word.FAILED:
        return "failed"
    if word is Word.HELD:
        return "held"
    return state.value

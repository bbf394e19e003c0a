"""What the command line shows: every table, line and progress bar, on stdout or stderr.

The only module that uses rich. Nothing here decides anything: it shows the typed results of
``batch_payouts.app``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.table import Table

from batch_payouts.app.confirmation import Confirmation
from batch_payouts.app.files import Bank, RawSheet, Report
from batch_payouts.app.namecheck import Decision, Finding, NameChecks
from batch_payouts.app.payouts import AlreadyPaid, NewBatch, Plan, RunOutcome, RunProgress
from batch_payouts.app.people import Added, PersonLine
from batch_payouts.app.receiver import Receiving
from batch_payouts.app.reconcile import Reconciled
from batch_payouts.app.retry import PlannedRetry
from batch_payouts.app.status import BatchLine, BatchStatus, PaidTwice
from batch_payouts.environment import Environment
from batch_payouts.model import RowState
from batch_payouts.vocabulary import ORDER, SHORT, Word, word_for

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """``error: …`` on stderr."""
    err.print(f"[bold red]error:[/] {message}", markup=True)


def warning(text: str) -> None:
    err.print(f"warning: {text}")


def environment(env: Environment) -> None:
    """The LIVE or SANDBOX line, host and account, before anything about a batch."""
    out.print(f"[bold]{env.describe()}[/]", markup=True)


def note(text: str) -> None:
    """``note: …``: something the person should know about how the command worked."""
    out.print(f"note: {text}", markup=False)


def report(report: Report, sheet: RawSheet, first: int = 15) -> None:
    """Counts, valid totals per currency and method, every row a guardrail holds (row, column,
    value and why: never cut short), then the first ``first`` other problems."""
    valid, rows = len(report.valid_rows), len(report.rows)
    for line in sheet.notes:
        note(line)
    found = report.by_severity()  # one pass over a 100,000-row report, not one per kind of problem
    holds, errors, warnings = found["held"], found["error"], found["warning"]
    held = {p.row for p in holds}
    counts = f"{rows} rows: {valid} valid, {rows - valid} invalid, {len(warnings)} warnings"
    if held:
        counts += f"; {len(held)} of the valid rows held, not paid until a person accepts them"
    out.print(counts)
    table = Table("currency", "method", "rows", "total", title="Valid rows")
    totals = report.totals()
    for (cur, method), (count, total) in sorted(totals.items()):
        table.add_row(cur, method, str(count), f"{total:,}")
    if totals:
        out.print(table)
    for hold in holds:
        out.print(f"  held: {hold}", markup=False, soft_wrap=True)
    others = errors + warnings
    for problem in others[:first]:
        out.print(f"  {problem.severity}: {problem}", markup=False, soft_wrap=True)
    if len(others) > first:
        out.print(f"  ... and {len(others) - first} more (write them all with --report)")


_VERDICT_WORD = {Decision.HOLD: "held", Decision.REFUSE: "invalid", Decision.PAY: "note"}


def name_checks(checks: NameChecks) -> None:
    """How the payees' names compare (a count of each outcome), then one line for every row whose
    name is not plainly a match: held, invalid, or paid with a note."""
    verdicts = list(checks.verdicts.values())
    if checks.deferred:
        out.print(
            f"name check: {checks.deferred} payees not asked now: at Kotani's reads allowance that takes about "
            f"{_duration(checks.deferred_seconds)}. run asks about each payee as it pays it (a name that "
            "differs holds its row, unpaid); validate --verify asks about them all first.",
            markup=False,
        )
        if not verdicts:
            return
    matched = sum(v.finding is Finding.NAME_MATCHES and v.decision is Decision.PAY for v in verdicts)
    held = sum(v.decision is Decision.HOLD for v in verdicts)
    invalid = sum(v.decision is Decision.REFUSE for v in verdicts)
    source = "Kotani asked" if checks.asked else "from earlier look-ups kept in the ledger"
    out.print(
        f"name check ({source}): {len(verdicts)} rows: {matched} names match, {held} held, {invalid} invalid, "
        f"{len(verdicts) - matched - held - invalid} paid with a note",
        markup=False,
    )
    for verdict in sorted(verdicts, key=lambda v: v.row):
        if verdict.finding is not Finding.NAME_MATCHES or verdict.decision is not Decision.PAY:
            out.print(f"  {_VERDICT_WORD[verdict.decision]}: row {verdict.row}: {verdict.sentence}", markup=False)


def asking_names(payees: int, seconds: float) -> None:
    """Before a long wait on look-ups: how many payees and about how long (``validate --verify``)."""
    out.print(
        f"asking Kotani whose account each of {payees} payees is: about {_duration(seconds)} at its reads "
        "allowance (Ctrl-C stops; answers so far are kept)",
        markup=False,
    )


@contextlib.contextmanager
def checks_progress(*, clock: Callable[[], float] = time.monotonic) -> Iterator[Callable[[int, int], None]]:
    """How far the payee checks are (``validate --verify``), on stderr: a bar on a terminal, else a
    line every PLAIN_EVERY seconds and one at the end. Yields the listener of (rows checked, rows)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    live = err.is_terminal
    bar = Progress(
        TextColumn("payee checks"), BarColumn(bar_width=12), MofNCompleteColumn(), console=err, disable=not live
    )
    task: list[TaskID] = []
    last = [clock()]

    def heard(done: int, rows: int) -> None:
        if live:
            if not task:
                task.append(bar.add_task("payee checks", total=rows))
            bar.update(task[0], completed=done)
        elif clock() - last[0] >= PLAIN_EVERY or done == rows:
            last[0] = clock()
            err.print(f"payee checks: {done:,} of {rows:,} rows", markup=False)

    with bar:
        yield heard


def _duration(seconds: float) -> str:
    """``45 s``, ``4 min``, ``1 h 23 min``: a wait in words, rounded up."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = math.ceil(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h" + (f" {minutes % 60} min" if minutes % 60 else "")


def written(what: str, path: Path) -> None:
    """``report: PATH``, ``results: PATH``."""
    out.print(f"{what}: {path}")


def wrote(path: Path) -> None:
    out.print(f"wrote {path}")


def banks(currency: str, found: list[Bank]) -> None:
    table = Table("code", "name", title=f"Banks for {currency.upper()}")
    for bank in found:
        table.add_row(bank.code, bank.name)
    out.print(table)


def batch_status(status: BatchStatus) -> None:
    """Rows and amounts per status and currency, then the rows the provider corrected."""
    table = Table("status", "currency", "rows", "amount", title=f"Batch {status.batch_id}")
    for line in status.summary:
        table.add_row(line.status, line.currency, str(line.rows), f"{line.amount:,}")
    out.print(table)
    for row, note in status.corrections:
        out.print(f"row {row}: {note}")
    if status.more_corrections:
        out.print(
            f"… and {status.more_corrections:,} more rows the provider corrected: "
            f"`batch-payouts results {status.batch_id} -o FILE` lists every row."
        )


def paid_twice(pairs: list[PaidTwice]) -> None:
    """Said loudly: each payee paid twice for one obligation, and what to do."""
    for pair in pairs:
        row, other = pair.row, pair.other
        err.print(
            f"[bold red]PAID TWICE: row {row.row} of batch {row.batch_id} ({row.reference}) and row "
            f"{other.row} of batch {other.batch_id} ({other.reference}) both paid the same payee for this "
            "label. Recover the money from the recipient.[/]",
            markup=True,
        )


def recent_batches(lines: list[BatchLine]) -> None:
    table = Table("batch", "environment", "label", "source", "rows", "created", title="Recent batches")
    for b in lines:
        table.add_row(
            b.batch_id,
            b.environment,
            b.label,
            b.source,
            str(b.rows),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created_at)),
        )
    out.print(table)


def interrupted(sent: int | None, batch_id: str | None) -> None:
    """What Ctrl-C or SIGTERM says: how many payouts had already left, and how to go on."""
    if sent is None or batch_id is None:
        err.print("interrupted; everything done so far is saved. Run the same command again to continue.")
        return
    err.print(
        f"interrupted; {sent} payout{'s' if sent != 1 else ''} of batch {batch_id} had already "
        f"left and are recorded; nothing is lost. Continue with: batch-payouts resume {batch_id}"
    )


def plan(plan: Plan) -> None:
    """Per currency: rows and money to send, money in flight, the payout balance, the shortfall."""
    table = Table("currency", "rows", "to send", "in flight", "payout balance", "shortfall", title="Plan")
    for cp in sorted(plan.currencies.values(), key=lambda c: c.currency):
        table.add_row(
            cp.currency,
            str(cp.rows),
            f"{cp.total:,}",
            f"{cp.in_flight:,}",
            "?" if cp.balance is None else f"{cp.balance:,}",
            f"[red]{cp.shortfall:,}[/]" if cp.shortfall else "0",
        )
    out.print(table)


def repeats(new: NewBatch) -> None:
    """Repeats summed in one line (each row in the results file), edited amounts one by one, and
    the batches whose rows never sent this run takes over."""
    plain = [r for r in new.repeats if not r.edited_amount]
    if plain:
        rows = ", ".join(str(r.row) for r in plain[:12]) + (" …" if len(plain) > 12 else "")
        batches = sorted({r.other_batch for r in plain})
        out.print(
            f"not paid (repeat): {len(plain)} row{'s' if len(plain) != 1 else ''} ({rows}) already paid or "
            f"being paid for this label in batch{'es' if len(batches) > 1 else ''} {', '.join(batches)}; "
            "to pay one again on purpose: --pay-again ROW --reason TEXT",
            markup=False,
        )
    for r in new.repeats:
        if r.edited_amount:
            err.print(f"refused: row {r.row}: {r.sentence}", markup=False)
    taken = sorted({other for other, _, _ in new.supersede})
    if taken:
        out.print(
            f"this run takes over the rows never sent of batch{'es' if len(taken) > 1 else ''} "
            f"{', '.join(taken)}: resuming {'them' if len(taken) > 1 else 'it'} will not pay those rows",
            markup=False,
        )


def already_paid(finished: AlreadyPaid) -> None:
    """A file whose batch is finished, in one sentence: when, the outcome, how to pay it again."""
    outcome = ", ".join(f"{n} {word}" for word, n in sorted(finished.outcome.items()))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(finished.batch.created_at))
    hint = "another --label" if finished.label else "a --label, e.g. --label " + time.strftime("%Y-%m")
    out.print(
        f"this file was already paid as batch {finished.batch.id} on {when} ({outcome}); nothing more is "
        f"sent. To pay it again as a new disbursement, run it with {hint}.",
        markup=False,
    )
    if finished.held:
        out.print(
            f"held, not paid: {_rows(finished.held)}. To pay a held row, run the same file again with "
            "--accept-name ROW[,ROW…] (your decision is recorded)",
            markup=False,
        )


def continuing(batch_id: str) -> None:
    out.print(f"this file was already started as batch {batch_id}; continuing it")


def _rows(numbers: list[int]) -> str:
    return f"row{'s' if len(numbers) != 1 else ''} {', '.join(map(str, numbers))}"


def _are(numbers: list[int]) -> str:
    return "are" if len(numbers) != 1 else "is"


def guarded_again(batch_id: str, held: list[int], released: list[int]) -> None:
    """A batch continued under this run's guardrails: rows now held, rows now let through."""
    if held:
        out.print(
            f"held now: {_rows(held)} of batch {batch_id}, never sent, {_are(held)} held under this run's options",
            markup=False,
        )
    if released:
        out.print(
            f"released: {_rows(released)} of batch {batch_id} {_are(released)} no longer held under this "
            "run's options and will be paid; your decision is recorded",
            markup=False,
        )


def batch_started(batch_id: str) -> None:
    out.print(f"batch {batch_id}")


def replaced(batch_id: str, by: str) -> None:
    """A batch whose rows never sent were taken over by a later run of the same file."""
    out.print(
        f"batch {batch_id} was replaced by batch {by} (the same file run again): its rows never sent are "
        f"paid there, not here. Continue with: batch-payouts resume {by}",
        markup=False,
    )


def confirmation(screen: Confirmation) -> None:
    """What will happen, before the typed total: where, from which wallet, how much with fees and
    the debit per currency, then every row to look at, one line each (never cut short)."""
    out.print(f"Before any money moves: {screen.environment.describe()}", markup=False)
    for line in screen.currencies:
        fees, cur = line.fees, line.currency
        wallet = (
            f"from wallet {line.wallet} (payout balance {cur} {line.balance:,})"
            if line.wallet
            else f"from no {cur} wallet: this account has none"
        )
        fee = f"about {cur} {fees.fee:,}, {fees.basis}" if fees.fee is not None else fees.basis
        out.print(
            f"  {cur}: {line.rows} row{'s' if line.rows != 1 else ''}, {cur} {fees.amount:,} to send {wallet}",
            markup=False,
        )
        out.print(f"    fees: {fee}", markup=False)
        out.print(f"    the wallet is debited: {fees.debit_sentence}", markup=False)
    if screen.attention:
        out.print(f"Rows to look at before you confirm ({len(screen.attention)}):", markup=False)
    for row in screen.attention:
        out.print(
            f"  row {row.row} · {row.name} · {row.amount} · {row.status} ({', '.join(row.kinds)}): {row.reason}",
            markup=False,
        )
    if screen.to_check:
        rows = "the other row" if screen.to_check == 1 else f"each of the other {screen.to_check} rows"
        out.print(
            f"The payee of {rows} is checked with Kotani as it is paid; a name that differs holds its row.",
            markup=False,
        )


def confirm_again() -> None:
    err.print("that is not the total; type it again (thousands separators are fine)")


PLAIN_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def progress_line(p: RunProgress) -> str:
    """Rows per finance word (those present), and the least time the rows still to send need:
    short enough for an 80-column terminal next to the bar."""
    words: dict[Word, int] = {}
    for state, n in p.counts.items():
        word = word_for(RowState(state))
        words[word] = words.get(word, 0) + n
    parts = [f"{SHORT[w]} {words[w]}" for w in ORDER if words.get(w)]
    eta = f"ETA {int(p.eta // 60)}:{int(p.eta % 60):02d}" if p.to_send else "all sent"
    return " · ".join([*parts, eta])


def amount_lines(p: RunProgress, width: int = 80) -> list[str]:
    """One line per currency: the amount per finance word (``KES paid 24,000 · failed 2,000``),
    cut to ``width`` columns at a word boundary."""
    per: dict[str, dict[Word, Decimal]] = {}
    for state, currency, amount in p.amounts:
        words = per.setdefault(currency or "?", {})
        word = word_for(RowState(state))
        words[word] = words.get(word, Decimal(0)) + amount
    lines = []
    for currency, words in sorted(per.items()):
        line = currency
        for i, word in enumerate(w for w in ORDER if w in words):
            part = f"{SHORT[word]} {words[word]:,}"
            joined = f"{line} {part}" if i == 0 else f"{line} · {part}"
            if len(joined) > width:
                break
            line = joined
        lines.append(line)
    return lines


@contextlib.contextmanager
def progress_bar(
    *, quiet: bool, clock: Callable[[], float] = time.monotonic
) -> Iterator[Callable[[RunProgress], None]]:
    """A progress bar on stderr that fits 80 columns; when stderr is not a terminal, one plain
    line every PLAIN_EVERY seconds instead (nothing when ``quiet``). Yields the run's listener."""
    from rich.console import RenderableType
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
    from rich.text import Text

    live = err.is_terminal and not quiet
    amounts: list[str] = []

    class WithAmounts(Progress):
        def get_renderables(self) -> Iterable[RenderableType]:
            yield self.make_tasks_table(self.tasks)
            yield from (Text(line) for line in amounts)

    bar = WithAmounts(
        TextColumn("{task.description}"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        console=err,
        disable=not live,
        transient=False,
    )
    task: list[TaskID] = []
    last, printed = [-PLAIN_EVERY], [""]

    def show(p: RunProgress) -> None:
        line = progress_line(p)
        if live:
            amounts[:] = amount_lines(p, width=min(err.width, 80))
            if not task:
                task.append(bar.add_task(line, total=p.rows))
            bar.update(task[0], total=p.rows, completed=p.settled, description=line)
        elif not quiet and (clock() - last[0] >= PLAIN_EVERY or p.settled == p.rows):
            money = "".join(f" · {a}" for a in amount_lines(p, width=10_000))
            text = f"batch {p.batch_id}: {p.settled}/{p.rows} settled · {line}{money}"
            if p.settled == p.rows and text == printed[0]:
                return  # the end of the run, told once
            last[0], printed[0] = clock(), text
            err.print(text, markup=False, soft_wrap=True)

    with bar:
        yield show


def run_outcome(outcome: RunOutcome) -> None:
    """How a run ended: the batch's totals, its results file, PAID TWICE (which says nothing more),
    paused currencies, why it stopped, rows still pending."""
    batch_status(outcome.status)
    written(
        "results (already up to date: no row changed since it was written)" if outcome.results_current else "results",
        outcome.results_path,
    )
    paid_twice(outcome.verdict.paid_twice)
    if outcome.verdict.paid_twice:
        return
    for currency, reason in outcome.result.paused.items():
        err.print(f"{currency} rows paused: {reason}. Top up the {currency} payout balance, then run again.")
    if outcome.result.stopped:
        error(f"{outcome.result.stopped}. Continue with: batch-payouts resume {outcome.batch_id}")
    elif outcome.still_pending:
        err.print(f"{outcome.still_pending} rows still pending; continue with: batch-payouts resume {outcome.batch_id}")


def retry_plan(planned: PlannedRetry) -> None:
    """Corrections taken from the results file, rows refused or invalid, rows still cooling off."""
    plan = planned.plan
    for line in plan.corrections:
        out.print(f"correction: {line}", markup=False)
    for line in plan.refused + plan.invalid:
        err.print(f"refused: {line}", markup=False)
    for line in plan.waiting:
        out.print(f"waiting: {line}", markup=False)
    if not plan.rows:
        out.print("nothing to retry")
    else:
        out.print(f"retry {len(plan.rows)} rows of batch {planned.parent.id}: {planned.totals.grand_total}")


def retry_started(batch_id: str, parent: str) -> None:
    out.print(f"batch {batch_id} (retry of {parent})")


def reconciled(done: Reconciled) -> None:
    """Rows that agree; disagreements on stderr, status differences and corrections."""
    found = done.found
    out.print(f"{found.matched} rows agree with the provider")
    for line in found.paid_not_recorded:
        err.print(f"paid at Kotani but not recorded as sent here: {line}", markup=False)
    for line in found.recorded_unknown:
        err.print(f"recorded as sent here but unknown to Kotani: {line}", markup=False)
    for line in found.sent_not_confirmed:
        err.print(f"sent, its answer not yet recorded here (resume the batch to record it): {line}", markup=False)
    for line in found.status_differs:
        out.print(f"status differs: {line}", markup=False)
    for line in found.corrected:
        err.print(f"corrected by the provider: {line}", markup=False)
    paid_twice(done.verdict.paid_twice)


def receiving(where: Receiving) -> None:
    err.print(
        f"receiving webhooks on {where.url} ({'signed' if where.signed else 'unsigned: reads only'}); Ctrl-C stops"
    )


def sandbox_serving(url: str) -> None:
    err.print(f"Kotani sandbox listening on {url} (ledger at /__sandbox__/ledger)", markup=False, soft_wrap=True)


def accepted(batch_id: str, rows: list[int]) -> None:
    """Held rows the operator let through, before the run pays them."""
    listed = ", ".join(str(r) for r in rows)
    out.print(
        f"accepted: row{'s' if len(rows) != 1 else ''} {listed} of batch {batch_id} will be paid; "
        "your acceptance is recorded",
        markup=False,
    )


# -- people and the console -------------------------------------------------------------------------


def person_added(added: Added) -> None:
    """The new person; the second factor's URI once, to put into an authenticator app."""
    out.print(f"added {added.name} as {added.role.value}", markup=False)
    if added.totp_uri:
        out.print("second factor: add this to an authenticator app now; it is not shown again:", markup=False)
        out.print(added.totp_uri, markup=False, soft_wrap=True)


def people(lines: list[PersonLine]) -> None:
    if not lines:
        out.print("no people yet: add one with `batch-payouts users add NAME --role ROLE`")
        return
    table = Table("name", "role", "second factor", "status", "added")
    for p in lines:
        table.add_row(
            p.name,
            p.role,
            "yes" if p.second_factor else "no",
            "disabled" if p.disabled else "active",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(p.created_at)),
        )
    out.print(table)


def person_disabled(name: str) -> None:
    out.print(f"disabled {name}: they can no longer sign in", markup=False)


def console_listening(url: str) -> None:
    """The line scripts wait for (tests read the port from it)."""
    err.print(f"Console listening on {url}", markup=False)


def console_stopped() -> None:
    err.print(
        "console stopped; a run it had started goes on with `batch-payouts resume BATCH_ID` "
        "or from the console once it is served again",
        markup=False,
    )

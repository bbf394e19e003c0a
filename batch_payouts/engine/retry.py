"""Re-running failed rows: a new batch linked to the original, new attempts with new references.

Only rows whose attempt definitively failed (failed, or rejected before anything was created)
at least ``cooloff`` seconds ago are candidates; each is re-read from the provider right before
its new attempt is sent. A results file only selects rows and carries corrections; amounts,
references and verdicts come from the ledger and the provider.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from batch_payouts.catalog import Catalog
from batch_payouts.engine.plan import obligation_key
from batch_payouts.errors import LedgerError
from batch_payouts.ledger import Ledger, NewRow, RowRecord
from batch_payouts.model import LIVE_STATES, RETRYABLE_STATES, Payout, RowState
from batch_payouts.validate import Rules, validate_rows

EDITABLE = (
    "name",
    "phone",
    "network",
    "bank_code",
    "bank_name",
    "account_number",
    "till_number",
    "paybill_number",
    "account_reference",
    "narration",
)


@dataclass
class RetryPlan:
    parent: str
    batch_id: str
    rows: list[tuple[RowRecord, dict[str, str]]] = field(default_factory=list)  # (original, cells)
    refused: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def retry_batch_id(parent: str, ledger: Ledger) -> str:
    n = len(ledger.children(parent)) + 1
    return "r" + hashlib.sha256(f"{parent}/retry/{n}".encode()).hexdigest()[:11]


def plan_retry(
    ledger: Ledger,
    parent: str,
    catalog: Catalog,
    *,
    now: float,
    cooloff: float,
    selection: Iterable[dict[str, str]] | None = None,
) -> RetryPlan:
    """Which rows of ``parent`` to pay again, with any corrections from the rows of a results file
    (``selection``, read once)."""
    batch = ledger.batch(parent)
    mapping: dict[str, str] = batch.options.get("mapping", {})
    plan = RetryPlan(parent, retry_batch_id(parent, ledger))
    numbers = ledger.row_numbers(parent) if selection is not None else set()
    if selection is not None:
        selection = _worth_reading(ledger, parent, selection, numbers)
    marked_failed = {_row_number(cells) for cells in selection or () if _marked(cells) in MARKED_FAILED}
    originals, retried = _latest_attempts(ledger, parent, plan, also={n for n in marked_failed if n is not None})
    chosen: dict[int, dict[str, str]] = {}
    if selection is None:
        chosen = {n: dict(r.cells) for n, r in originals.items() if r.state in RETRYABLE_STATES}
    else:
        for cells in selection:
            number = _row_number(cells)
            if number in retried:
                continue  # already refused: a later attempt is paid or still under way
            original = originals.get(number) if number is not None else None
            if original is None:
                if number not in numbers:
                    plan.refused.append(f"a row of the file ({number}) is not in batch {parent}")
                continue  # (neither failed nor marked failed: nothing to do)
            marked = _marked(cells)
            if original.state in LIVE_STATES:
                if marked in MARKED_FAILED:
                    plan.refused.append(
                        f"row {number}: marked {marked} in the file but "
                        f"{original.state.value} in the ledger; not paid again"
                    )
                continue
            if original.state in RETRYABLE_STATES:
                chosen[original.row] = _apply_edits(original, cells, mapping, plan)
    for number, cells in sorted(chosen.items()):
        original = originals[number]
        elsewhere = (
            _paid_by_another_attempt(ledger, original)
            if ledger.override_of(original.batch_id, original.row)
            else _paid_elsewhere(ledger, batch.env_id, original)
        )
        if elsewhere:
            plan.refused.append(f"row {number}: {elsewhere}; not paid again")
            continue
        if original.completed_at is not None and now - original.completed_at < cooloff:
            plan.waiting.append(
                f"row {number}: failed {now - original.completed_at:.0f} s ago; "
                f"retry after the {cooloff:.0f} s cool-off"
            )
            continue
        plan.rows.append((original, cells))
    corrected = _revalidate(plan, mapping, catalog)
    _refuse_corrected_payees_paid_elsewhere(ledger, batch.env_id, batch.label, plan, corrected)
    return plan


def _refuse_corrected_payees_paid_elsewhere(
    ledger: Ledger, env_id: str, label: str, plan: RetryPlan, payouts: dict[int, Payout]
) -> None:
    """Refuse a row whose payee the results file corrected to one another batch pays or paid for
    this label (an override, decided for the first payee, does not pass it)."""
    keep = []
    for original, cells in plan.rows:
        payout = payouts[original.row]
        key = corrected_key(label, original, payout)
        if key in ledger.keys_of(original.batch_id, original.row):
            key = None  # a payee the row claims already (changed back): checked with its other claims
        live = [h for h in ledger.holders(env_id, [key]) if h.live] if key else []
        if live:
            plan.refused.append(
                f"row {original.row}: the corrected payee is already paid or being paid in batch "
                f"{live[0].batch_id} row {live[0].row}; not paid again"
            )
            continue
        keep.append((original, cells))
    plan.rows = keep


def corrected_key(label: str, original: RowRecord, payout: Payout) -> str | None:
    """The obligation of the payee a retry row was corrected to (None: the payee is unchanged)."""
    if original.payout is None or payout.payee() == original.payout.payee():
        return None
    discriminator = f"ref:{payout.reference.strip()}" if payout.reference else "n:1"
    return obligation_key(label, payout.payee(), payout.currency, discriminator)


def _worth_reading(
    ledger: Ledger, parent: str, selection: Iterable[dict[str, str]], numbers: set[int]
) -> list[dict[str, str]]:
    """The rows of a results file a retry acts on: those of rows failed in ``parent`` or with later
    attempts, those the file marks failed, and those that are not rows of ``parent`` (named as
    such). The rest (paid, or never sent) are passed over as they are read: a results file of
    100,000 paid rows is not held whole. ``numbers``: the row numbers of ``parent``."""
    acted_on = ledger.row_numbers(parent, *RETRYABLE_STATES)
    for child in ledger.descendants(parent):
        acted_on |= ledger.row_numbers(child)
    return [
        cells
        for cells in selection
        if (number := _row_number(cells)) is None
        or number not in numbers
        or number in acted_on
        or _marked(cells) in MARKED_FAILED
    ]


def _latest_attempts(
    ledger: Ledger, parent: str, plan: RetryPlan, *, also: set[int]
) -> tuple[dict[int, RowRecord], set[int]]:
    """Row number -> its latest attempt (the row in ``parent`` or in a retry batch below it), for
    the rows a retry may pick (failed in ``parent``, or with later attempts) and the rows ``also``
    (marked failed in a results file); and the rows refused because a later attempt is paid or
    still under way. No other row is read (at 100,000 rows, the whole batch decoded at once took
    hundreds of MiB).

    A row already retried is only retried again when every later attempt definitively failed;
    otherwise running ``retry`` twice on one results file would pay it twice."""
    later_attempts = ledger.later_attempts(parent)
    latest = {r.row: r for r in ledger.rows(parent, *RETRYABLE_STATES)}
    for number in sorted((later_attempts.keys() | also) - latest.keys()):
        with contextlib.suppress(LedgerError):  # a number the file gives that the batch has not
            latest[number] = ledger.row(parent, number)
    retried: set[int] = set()
    for number, later in sorted(later_attempts.items()):
        live = [r for r in later if r.state not in RETRYABLE_STATES]
        if live:
            plan.refused.append(
                f"row {number}: already retried in batch {live[0].batch_id} ({live[0].state.value}); not paid again"
            )
            latest.pop(number, None)
            retried.add(number)
        elif number in latest:
            latest[number] = max(later, key=lambda r: r.attempt)
    return latest, retried


def _paid_elsewhere(ledger: Ledger, env_id: str, original: RowRecord) -> str | None:
    """Another batch of the environment that pays, or paid, this row's obligation."""
    keys = ledger.keys_of(original.batch_id, original.row)
    for holder in ledger.holders(env_id, keys, exclude=(original.batch_id, original.row)):
        if holder.live:
            if holder.state is RowState.SUCCEEDED:
                return f"batch {holder.batch_id} row {holder.row} already paid this payee"
            return f"batch {holder.batch_id} row {holder.row} is already paying this payee ({holder.state.value})"
    return None


def _paid_by_another_attempt(ledger: Ledger, original: RowRecord) -> str | None:
    """Another attempt of this very row (an earlier one, or one in any retry of its first
    attempt's batch) that is paid, or may be: what a row paid again on purpose (an override, which
    lets it pass other batches' payments) still may not pass; the override chose to pay once
    more, not once per attempt."""
    earlier = ledger.earlier_attempts(original)
    first = earlier[-1] if earlier else original
    others = list(earlier)
    for batch_id in ledger.descendants(first.batch_id):
        with contextlib.suppress(LedgerError):  # (a retry batch without this row)
            attempt = ledger.row(batch_id, first.row)
            if attempt.batch_id != original.batch_id:
                others.append(attempt)
    for attempt in others:
        if attempt.state in LIVE_STATES:
            where = f"batch {attempt.batch_id} row {attempt.row} (attempt {attempt.attempt})"
            if attempt.state is RowState.SUCCEEDED:
                return f"{where} was paid"
            return f"{where} may still be paid ({attempt.state.value})"
    return None


MARKED_FAILED = ("failed", "rejected")  # statuses a results file gives a row it asks to pay again


def _marked(cells: dict[str, str]) -> str:
    """The status a results file gives a row, in lower case ("" for none)."""
    return (cells.get("status") or cells.get("result_status") or "").strip().lower()


def _row_number(cells: dict[str, str]) -> int | None:
    for key in ("row", "result_row"):
        value = (cells.get(key) or "").strip()
        if value.isdigit():
            return int(value)
    return None


def _apply_edits(
    original: RowRecord, cells: dict[str, str], mapping: dict[str, str], plan: RetryPlan
) -> dict[str, str]:
    """The original cells with the team's corrections to payee fields; never amounts."""
    out = dict(original.cells)
    for canon, header in mapping.items():
        if header not in cells or cells[header] == original.cells.get(header, ""):
            continue
        if canon in EDITABLE:
            out[header] = cells[header]
            plan.corrections.append(
                f"row {original.row}: {header} {original.cells.get(header, '')!r} -> {cells[header]!r}"
            )
        else:
            plan.corrections.append(
                f"row {original.row}: the change to {header} is ignored (amounts and currencies come from the ledger)"
            )
    return out


def _revalidate(plan: RetryPlan, mapping: dict[str, str], catalog: Catalog) -> dict[int, Payout]:
    """Keep the rows whose corrected cells still make a valid payout of the same amount; their
    payouts, by row."""
    keep: list[tuple[RowRecord, dict[str, str]]] = []
    payouts: dict[int, Payout] = {}
    inputs = [(o.row, {c: cells.get(h, "") for c, h in mapping.items()}) for o, cells in plan.rows]
    report = validate_rows(inputs, catalog, Rules())
    by_row = {r.row: r for r in report.rows}
    for original, cells in plan.rows:
        result = by_row[original.row]
        if not result.valid or result.payout is None or original.payout is None:
            plan.invalid.append(
                f"row {original.row}: " + "; ".join(p.message for p in result.problems if p.severity == "error")
            )
            continue
        if (result.payout.amount, result.payout.currency) != (original.payout.amount, original.payout.currency):
            plan.invalid.append(f"row {original.row}: amount differs from the ledger; not paid")
            continue
        keep.append((original, cells))
        payouts[original.row] = result.payout
    plan.rows = keep
    return payouts


def persist_retry(ledger: Ledger, plan: RetryPlan, catalog: Catalog, headers: list[str]) -> None:
    """Store the retry batch: each row a new attempt of its original's obligation (and of the
    corrected payee's, when the team fixed a phone or account), so no other batch pays it too."""
    parent = ledger.batch(plan.parent)
    mapping: dict[str, str] = parent.options.get("mapping", {})
    inputs = [(o.row, {c: cells.get(h, "") for c, h in mapping.items()}) for o, cells in plan.rows]
    report = validate_rows(inputs, catalog, Rules())
    payouts = {r.row: r.payout for r in report.rows}
    rows: list[NewRow] = []
    for original, cells in plan.rows:
        payout = payouts[original.row]
        keys = list(ledger.keys_of(original.batch_id, original.row))
        added = corrected_key(parent.label, original, payout) if payout is not None else None
        if added is not None:
            keys.append(added)
        rows.append(
            NewRow(
                original.row,
                RowState.READY,
                payout,
                cells,
                [],
                tuple(keys),
                origin=(original.batch_id, original.row, original.attempt + 1),
            )
        )
    ledger.create_batch(
        plan.batch_id,
        env_id=parent.env_id,
        fingerprint=parent.fingerprint,
        label=parent.label,
        source=parent.source,
        options=parent.options,
        headers=headers,
        rows=rows,
        parent=plan.parent,
    )
    _carry_overrides(ledger, plan)


def _carry_overrides(ledger: Ledger, plan: RetryPlan) -> None:
    """A row paid again by an operator's recorded decision stays so in its retry: the decision was
    about the payment, not about one attempt of it. (Were this lost to a crash just after the batch
    was stored, the retry row would be refused as a repeat: the safe side.)"""
    env_id = ledger.batch(plan.batch_id).env_id
    for original, _ in plan.rows:
        decided = ledger.override_of(original.batch_id, original.row)
        if decided is not None:
            ledger.record_override(
                env_id,
                plan.batch_id,
                original.row,
                who=decided["who"],
                why=f"{decided['why']} (decided for batch {original.batch_id} row {original.row})",
            )

"""Paying again the rows that definitively failed: from a batch id or its results file (which
selects rows and carries corrections to payee fields), as a new batch of new attempts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from batch_payouts import errors
from batch_payouts.app import status as facts
from batch_payouts.app.session import Session
from batch_payouts.catalog import Catalog
from batch_payouts.engine import retry as retry_mod
from batch_payouts.engine.plan import CurrencyPlan, Plan
from batch_payouts.engine.retry import RetryPlan
from batch_payouts.ledger import BatchRecord
from batch_payouts.sheets.read import RawRow, read_sheet
from batch_payouts.sheets.write import unescape_cell

__all__ = ["PlannedRetry", "RetryPlan", "create_retry", "nothing_to_retry", "plan_retry"]


@dataclass(frozen=True)
class PlannedRetry:
    """What a retry will pay: ``plan.rows`` (original, corrected cells), the lines the operator
    should read (``plan.corrections``, ``refused``, ``invalid``, ``waiting``), and the totals."""

    parent: BatchRecord
    plan: RetryPlan
    totals: Plan
    catalog: Catalog

    @property
    def batch_id(self) -> str:
        return self.plan.batch_id


def plan_retry(session: Session, source: str, *, cooloff: float) -> PlannedRetry:
    """The rows of a batch (``source``: its id, or its results file) to pay again: failed at
    least ``cooloff`` seconds ago, not paid or being paid by any other batch."""
    sheet = read_sheet(Path(source)) if Path(source).exists() else None
    parent = source
    if sheet is not None:
        parent = batch_of_results(
            unescape_cell(r.cells.get("reference_id") or "") or unescape_cell(r.cells.get("result_reference_id") or "")
            for r in sheet.rows
        )
    batch = session.batch_here(parent)
    selection = None
    if sheet is not None:
        selection = _selected(sheet.rows, batch)
    catalog = session.catalog()
    plan = retry_mod.plan_retry(
        session.ledger, parent, catalog, now=session.clock(), cooloff=cooloff, selection=selection
    )
    return PlannedRetry(batch, plan, _totals(plan), catalog)


# What a retry reads of a results row, besides the batch's own columns (edits to payee fields)
_READ_OF_A_RESULT = frozenset({"row", "result_row", "status", "result_status"})


def _selected(rows: Iterable[RawRow], batch: BatchRecord) -> Iterator[dict[str, str]]:
    """The rows of a results file, each cut to what a retry reads of it (row number, status, the
    batch's own columns), unescaped, one at a time: a file of 100,000 rows is not held twice."""
    keep = _READ_OF_A_RESULT | set(batch.options.get("mapping", {}).values())
    return ({h: unescape_cell(v) for h, v in r.cells.items() if h in keep} for r in rows)


def batch_of_results(references: Iterable[str]) -> str:
    """The batch a results file belongs to, from its rows' references."""
    refs = {ref.strip() for ref in references}
    batches = {ref.rsplit("-", 2)[0] for ref in refs if ref.count("-") >= 2}
    if len(batches) != 1:
        raise errors.InputFileError(
            "results file",
            "cannot tell which batch these results belong to (the reference_id column is missing or mixes batches)",
        )
    return batches.pop()


def _totals(plan: RetryPlan) -> Plan:
    """The money the retry sends per currency (amounts from the ledger, never from the file)."""
    totals: dict[str, Decimal] = {}
    for original, _ in plan.rows:
        assert original.payout is not None
        cur = original.payout.currency
        totals[cur] = totals.get(cur, Decimal(0)) + original.payout.amount
    return Plan(currencies={c: CurrencyPlan(c, 0, t, Decimal(0), None) for c, t in totals.items()})


def nothing_to_retry(session: Session, planned: PlannedRetry) -> facts.Verdict:
    """When no row is paid again: exit 3 if rows were refused or invalid, else 0 (PAID TWICE: 5)."""
    plan = planned.plan
    return facts.verdict(session.ledger, planned.parent.id, 3 if plan.refused or plan.invalid else 0)


def create_retry(session: Session, planned: PlannedRetry) -> str:
    """Store the retry batch (each row a new attempt of its original's obligation); its id."""
    retry_mod.persist_retry(session.ledger, planned.plan, planned.catalog, planned.parent.headers)
    return planned.batch_id

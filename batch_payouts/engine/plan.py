"""From a file to a persisted batch: validation, totals, the balance check, the repeat guard."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from batch_payouts import crash
from batch_payouts.catalog import Catalog
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState
from batch_payouts.sheets.read import RawSheet
from batch_payouts.validate import Problem, Report, Rules, validate_rows


def check_sheet(sheet: RawSheet, catalog: Catalog, rules: Rules | None = None) -> Report:
    """Validate every row of ``sheet``; formula cells are reported as warnings."""
    mapping = list(sheet.mapping.items())
    rows = [(r.row, {c: r.cells.get(h, "") for c, h in mapping}) for r in sheet.rows]
    report = validate_rows(rows, catalog, rules)
    by_row = {r.row: r for r in report.rows}
    for (number, header), formula in sheet.formula_cells.items():
        canon = next((c for c, h in sheet.mapping.items() if h == header), header)
        by_row[number].problems.append(Problem(
            number, canon, formula, "this cell is a formula; its saved value was used", "warning"))
    return report


def batch_key(content: bytes, label: str) -> str:
    """Short, stable id of (file content, label): the same file and label continue one batch."""
    return "b" + hashlib.sha256(content + b"\x00" + label.encode("utf-8")).hexdigest()[:11]


def payee_fingerprint(payee: str, amount: Decimal, currency: str, label: str) -> str:
    return hashlib.sha256(f"{payee}|{amount}|{currency}|{label}".encode()).hexdigest()[:24]


@dataclass
class CurrencyPlan:
    currency: str
    rows: int
    total: Decimal
    in_flight: Decimal
    balance: Decimal | None

    @property
    def shortfall(self) -> Decimal:
        if self.balance is None:
            return self.total
        return max(Decimal(0), self.total - self.balance)


@dataclass
class Plan:
    currencies: dict[str, CurrencyPlan] = field(default_factory=dict)
    by_method: dict[tuple[str, str], tuple[int, Decimal]] = field(default_factory=dict)

    @property
    def covered(self) -> bool:
        return all(c.shortfall == 0 for c in self.currencies.values())

    @property
    def grand_total(self) -> str:
        return ", ".join(f"{c.currency} {c.total}" for c in sorted(self.currencies.values(), key=lambda c: c.currency))


def make_plan(ledger: Ledger | None, batch_id: str | None, report: Report,
              balances: dict[str, Decimal]) -> Plan:
    """Totals still to send per currency against the payout balance, money in flight apart."""
    plan = Plan(by_method=report.totals())
    still_to_send: set[int] | None = None
    in_flight: dict[str, Decimal] = {}
    if ledger is not None and batch_id and ledger.has_batch(batch_id):
        rows = ledger.rows(batch_id)
        still_to_send = {r.row for r in rows if r.state is RowState.READY}
        for r in rows:
            if r.payout and r.state in (RowState.SUBMITTING, RowState.SUBMITTED, RowState.UNKNOWN):
                in_flight[r.payout.currency] = in_flight.get(r.payout.currency, Decimal(0)) + r.payout.amount
    for result in report.valid_rows:
        p = result.payout
        assert p is not None
        if still_to_send is not None and result.row not in still_to_send:
            continue
        cp = plan.currencies.setdefault(
            p.currency, CurrencyPlan(p.currency, 0, Decimal(0), in_flight.get(p.currency, Decimal(0)),
                                     balances.get(p.currency)))
        cp.rows += 1
        cp.total += p.amount
    return plan


def persist_batch(
    ledger: Ledger, batch_id: str, sheet: RawSheet, report: Report, *,
    fingerprint: str, label: str, options: dict[str, Any], allow_repeat: bool,
) -> list[tuple[int, str, int]]:
    """Store the batch and its rows (once). Return rows blocked as repeats: (row, batch, row)."""
    if ledger.has_batch(batch_id):
        return []
    cells = {r.row: r.cells for r in sheet.rows}
    rows: list[Any] = []
    blocked: list[tuple[int, str, int]] = []
    for result in report.rows:
        problems = [{"column": p.column, "value": p.value, "message": p.message, "severity": p.severity}
                    for p in result.problems]
        if not result.valid or result.payout is None:
            rows.append((result.row, RowState.INVALID, None, cells[result.row], problems, None))
            continue
        p = result.payout
        fp = payee_fingerprint(p.payee(), p.amount, p.currency, label)
        state = RowState.READY
        earlier = ledger.paid_elsewhere(fp, batch_id)
        if earlier and not allow_repeat:
            state = RowState.BLOCKED
            blocked.append((result.row, earlier[0][0], earlier[0][1]))
            problems.append({"column": "", "value": "", "severity": "error",
                             "message": f"already paid in batch {earlier[0][0]} row {earlier[0][1]} "
                                        "(use --allow-repeat to pay again)"})
        rows.append((result.row, state, p, cells[result.row], problems, fp))
    ledger.create_batch(batch_id, fingerprint=fingerprint, label=label, source=str(Path(sheet.path)),
                        options=options, headers=sheet.headers, rows=rows)
    crash.point("after_batch_persisted")
    return blocked

"""The results file: the input columns unchanged plus each row's outcome, from the ledger."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from batch_payouts import crash
from batch_payouts.ledger import Ledger, RowRecord
from batch_payouts.model import RowState
from batch_payouts.sheets.write import write_table
from batch_payouts.sheets.xlsx import SheetSpec

OUTCOME_COLUMNS = ("row", "status", "provider_status", "reference_id", "provider_id", "reference_number",
                   "amount", "fee", "recipient_amount", "telco_receipt", "error", "submitted_at", "completed_at")
STATUS_WORDS = {
    RowState.SUCCEEDED: "paid", RowState.FAILED: "failed", RowState.REJECTED: "rejected",
    RowState.INVALID: "invalid", RowState.BLOCKED: "blocked_repeat", RowState.READY: "not_sent",
    RowState.SUBMITTING: "unknown", RowState.UNKNOWN: "unknown", RowState.SUBMITTED: "pending",
    RowState.NEEDS_REVIEW: "needs_review", RowState.PARSED: "not_sent",
}
TEXT_COLUMNS = {"reference_id", "provider_id", "reference_number", "telco_receipt"}


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _error(row: RowRecord) -> str:
    if row.state is RowState.INVALID or row.state is RowState.BLOCKED:
        return "; ".join(p["message"] + (f" ({p['column']})" if p.get("column") else "")
                         for p in row.problems if p.get("severity") == "error")
    parts = [row.error or "", row.note or "" if row.state in (RowState.READY, RowState.UNKNOWN) else ""]
    if row.note and row.note.startswith("corrected"):
        parts.append(row.note)
    return "; ".join(p for p in parts if p)


def outcome(row: RowRecord) -> list[Any]:
    p = row.payout
    return [row.row, STATUS_WORDS[row.state], row.provider_status or "", row.reference or "", row.provider_id or "",
            row.reference_number or "", p.amount if p else "", row.fee if row.fee is not None else "",
            row.recipient_amount if row.recipient_amount is not None else "", row.telco_receipt or "",
            _error(row), _when(row.submitted_at), _when(row.completed_at)]


def results_table(ledger: Ledger, batch_id: str) -> tuple[list[str], list[list[Any]]]:
    batch = ledger.batch(batch_id)
    inputs = list(batch.headers)
    headers = inputs + [f"result_{c}" if c in inputs else c for c in OUTCOME_COLUMNS]
    rows = [[r.cells.get(h, "") for h in inputs] + outcome(r) for r in ledger.rows(batch_id)]
    return headers, rows


def summary(ledger: Ledger, batch_id: str) -> list[list[Any]]:
    """(status, currency, rows, amount) for every combination present."""
    sums: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for r in ledger.rows(batch_id):
        currency = r.payout.currency if r.payout else (r.cells and "") or ""
        key = (STATUS_WORDS[r.state], currency)
        count, total = sums.get(key, (0, Decimal(0)))
        sums[key] = (count + 1, total + (r.payout.amount if r.payout else Decimal(0)))
    return [[s, c, n, t] for (s, c), (n, t) in sorted(sums.items())]


def write_results(ledger: Ledger, batch_id: str, path: Path) -> Path:
    """Write the results file (CSV or XLSX by suffix) atomically."""
    headers, rows = results_table(ledger, batch_id)
    extra = []
    if path.suffix.lower() == ".xlsx":
        table = summary(ledger, batch_id)
        extra.append(SheetSpec("Summary", ["status", "currency", "rows", "amount"], table,
                               chart=("Rows by status", 3, len(table))))
        first = len(headers) - len(OUTCOME_COLUMNS)
        row_at, status_at, error_at = (first + OUTCOME_COLUMNS.index(c) for c in ("row", "status", "error"))
        problems = [[r[row_at], r[status_at], r[error_at]]
                    for r in rows if r[status_at] in ("invalid", "rejected", "failed", "blocked_repeat",
                                                      "needs_review")]
        extra.append(SheetSpec("Problems", ["row", "status", "reason"], problems))
    crash.point("while_writing_results")
    write_table(path, headers, rows, text_columns=TEXT_COLUMNS | _phone_like(headers), extra=extra)
    return path


def _phone_like(headers: list[str]) -> set[str]:
    from batch_payouts.sheets.columns import canonical_for

    return {h for h in headers if canonical_for(h) in ("phone", "account_number", "till_number",
                                                       "paybill_number", "bank_code")}


def default_results_path(source: str) -> Path:
    """Next to the input, never the input itself."""
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in (".csv", ".xlsx") else ".csv"
    return src.with_name(f"{src.stem}.results{suffix}")

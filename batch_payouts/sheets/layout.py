"""How results are laid out: the Results table (also the CSV), the Cover, Problems and Summary sheets.

Columns keep stable snake_case names because a results file is also read back (``retry`` reads
``row``, ``status`` and ``reference_id``); input columns come first, unchanged, and an outcome
column whose name the input already uses is written as ``result_<name>``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from batch_payouts.model import minor_digits
from batch_payouts.sheets.columns import canonical_for
from batch_payouts.sheets.report import Cover, CurrencyTotals, Line, problems, rows_text, totals, when
from batch_payouts.sheets.spec import ChartSpec, LaterRows, SheetSpec
from batch_payouts.vocabulary import ORDER, SHORT, Word

# The check of the payee's account: payable / held / invalid and why, the name Kotani gave, the score, the sentence.
NAME_CHECK_COLUMNS = ("name_check", "registered_name", "name_score", "name_check_detail")
RESULT_COLUMNS = (
    "row",
    "status",
    "reason",
    "amount",
    "currency",
    "fee",
    "received",
    "paid_to",
    "reference_id",
    "provider_reference",
    "receipt",
    "provider_id",
    "provider_status",
    "batch",
    "attempt",
    "sent_at_utc",
    "final_at_utc",
    *NAME_CHECK_COLUMNS,
)
FINAL_COLUMNS = (
    "row",
    "status",
    "reason",
    "amount",
    "currency",
    "fee",
    "received",
    "paid_to",
    "reference_id",
    "provider_reference",
    "receipt",
    "provider_status",
    "attempts",
    "batches",
    "final_at_utc",
    *NAME_CHECK_COLUMNS,
)
MONEY_COLUMNS = frozenset({"amount", "fee", "received"})
TEXT_COLUMNS = frozenset(
    {"paid_to", "reference_id", "provider_reference", "receipt", "provider_id", "batch", "batches"}
)
_PAYEE_COLUMNS = ("phone", "account_number", "till_number", "paybill_number", "bank_code", "account_reference")
PROBLEM_HEADERS = ["Row", "Name", "Phone or account", "Amount", "Currency", "Status", "Reason", "What to do"]
SUMMARY_HEADERS = ["Currency and status", "Currency", "Status", "Rows", "Amount"]

DEBIT_NOTE = (
    "Total debited: the amount where the fee was taken from what the recipient received; amount + fee "
    "where the recipient received the full amount. If your account is invoiced for fees, the wallet "
    "was debited the amount only."
)
FEE_NOTE = "Fees are shown for paid rows only: a failed payout's money and fee go back to the wallet."


def number_format(currency: str) -> str:
    """Thousands separators and the currency's decimals (2 when the currency is unknown)."""
    digits = minor_digits(currency) if currency else 2
    return "#,##0" + ("." + "0" * digits if digits else "")


# -- the Results table (and the CSV) -----------------------------------------------------------------


def table_headers(inputs: list[str], columns: Sequence[str]) -> list[str]:
    return [*inputs, *(f"result_{c}" if c in inputs else c for c in columns)]


def _values(line: Line) -> dict[str, Any]:
    """Every outcome column of one line, worked out once for the row."""
    paid = line.word is Word.PAID
    return {
        "row": line.row,
        "status": str(line.word),
        "reason": line.reason,
        "amount": line.amount if line.amount is not None else line.amount_text,
        "currency": line.currency,
        "fee": line.charged_fee,
        "received": line.received if paid else None,
        "paid_to": line.paid_to,
        "reference_id": line.reference_id,
        "provider_reference": line.provider_reference,
        "receipt": line.receipt,
        "provider_id": line.provider_id,
        "provider_status": line.provider_status,
        "batch": line.batch,
        "attempt": line.attempt,
        "attempts": len(line.batches),
        "batches": " > ".join(line.batches),
        "sent_at_utc": line.sent_at,
        "final_at_utc": line.final_at,
        **{c: line.name_check.get(c, "") for c in NAME_CHECK_COLUMNS},
    }


def table_rows(inputs: list[str], lines: Iterable[Line], columns: Sequence[str]) -> Iterator[list[Any]]:
    """The table's rows, one per line, made as they are read."""
    for line in lines:
        values = _values(line)
        yield [line.cells.get(h, "") for h in inputs] + [values[c] for c in columns]


@dataclass
class MoneyFormats:
    """The number formats of a row: the currency's (in column ``currency_at``, 0-based) on the
    money columns ``money_at``, none elsewhere; each currency's worked out once."""

    width: int
    money_at: Sequence[int]
    currency_at: int
    _by_currency: dict[str, list[str | None]] = field(default_factory=dict)

    def __call__(self, cells: Sequence[Any]) -> list[str | None]:
        currency = str(cells[self.currency_at] or "")
        formats = self._by_currency.get(currency)
        if formats is None:
            formats = self._by_currency[currency] = [None] * self.width
            for i in self.money_at:
                formats[i] = number_format(currency)
        return list(formats)


def results_sheet(
    title: str, inputs: list[str], lines: Iterable[Line], columns: Sequence[str], later: LaterRows[Line] | None = None
) -> SheetSpec:
    """The results table: a row per line (``later``: more lines after ``lines``, see :class:`LaterRows`)."""
    headers = table_headers(inputs, columns)
    first = len(inputs)
    money_at = [first + i for i, column in enumerate(columns) if column in MONEY_COLUMNS]
    formats = MoneyFormats(len(headers), money_at, first + list(columns).index("currency"))
    renamed = dict(zip(columns, headers[first:], strict=True))
    text = {renamed[c] for c in TEXT_COLUMNS if c in renamed}
    text |= {h for h in inputs if canonical_for(h) in _PAYEE_COLUMNS}
    reason_at = first + list(columns).index("reason") + 1
    return SheetSpec(
        title,
        headers,
        table_rows(inputs, lines, columns),
        text,
        format_of=formats,
        table_header=True,
        printable=True,
        widths={reason_at: 40.0},
        wrap=frozenset({reason_at}),
        later=later.then(functools.partial(table_rows, inputs, columns=columns)) if later else None,
    )


# -- the Cover -----------------------------------------------------------------------------------------


def _identity_rows(cover: Cover) -> list[list[Any]]:
    who = cover.identity
    wallets = "; ".join(f"{c}: {w}" for c, w in sorted(who.wallets.items())) or "unknown"
    rows: list[list[Any]] = [
        ["Environment", who.environment],
        ["Host", who.host],
        ["Account", who.account],
        ["Wallet per currency", wallets],
        ["Batch", cover.batch],
        ["Label", cover.label or "(none)"],
    ]
    if cover.retry_of:
        rows.append(["Retry of batch", cover.retry_of])
    if len(cover.batches) > 1:
        rows.append(["Batches (first run, then retries)", " > ".join(cover.batches)])
    rows += [
        ["Source file", cover.source],
        ["Source file SHA-256", cover.source_sha256],
        ["Run by", who.ran_by],
        ["Approved by", who.approved_by],
        ["Batch created", when(cover.created_at)],
        ["First payout sent", when(cover.first_sent_at)],
        ["Last answer from the provider", when(cover.last_answer_at)],
        ["This file written", when(cover.written_at)],
        ["Written by", f"batch-payouts {cover.tool_version}"],
    ]
    return rows


def _totals_rows(all_totals: list[CurrencyTotals]) -> tuple[list[list[Any]], list[list[str | None]], set[int]]:
    """The per-currency table: its rows, their number formats, and which rows are bold (0-based)."""
    head: list[Any] = ["Totals per currency"]
    for t in all_totals:
        head += [f"{t.label} rows", f"{t.label} amount"]
    rows: list[list[Any]] = [head]
    formats: list[list[str | None]] = [[]]
    bold = {0}

    def add(label: str, cells: list[tuple[Any, Any]], *, strong: bool = False) -> None:
        row: list[Any] = [label]
        fmt: list[str | None] = [None]
        for t, (count, amount) in zip(all_totals, cells, strict=True):
            row += [count, amount]
            fmt += [None, number_format(t.currency) if isinstance(amount, Decimal) else None]
        if strong:
            bold.add(len(rows))
        rows.append(row)
        formats.append(fmt)

    for word in ORDER:
        add(str(word), [(t.by_word[word].rows, t.by_word[word].amount) for t in all_totals])
    add("Rows in file (the lines above)", [(t.in_file.rows, t.in_file.amount) for t in all_totals], strong=True)
    if any(t.unreadable for t in all_totals):
        add(
            "of which invalid with an unreadable amount",
            [(len(t.unreadable), "not counted" if t.unreadable else "") for t in all_totals],
        )
    add("Fees (paid rows)", [("", t.fees) for t in all_totals])
    add("Total debited from the wallet", [("", t.debited) for t in all_totals], strong=True)
    add("Total received by recipients", [("", t.received) for t in all_totals], strong=True)
    return rows, formats, bold


def cover_notes(all_totals: list[CurrencyTotals]) -> list[str]:
    """The sentences under the totals: how they reconcile and what they leave out."""
    notes = [
        "Rows in file = paid + failed + held + waiting + not sent + repeat + invalid, in every currency; "
        "amounts likewise."
    ]
    for t in all_totals:
        if t.unreadable:
            notes.append(
                f"{t.label}: {rows_text(t.unreadable)} invalid with an amount that cannot be read; "
                "counted in rows and listed on the Problems sheet, but not in amounts."
            )
        if t.unreported:
            notes.append(
                f"{t.label}: the provider reported no fee for {len(t.unreported)} paid rows; "
                "they count as fee 0 and received = amount."
            )
    notes += [FEE_NOTE, DEBIT_NOTE]
    return notes


def cover_sheet(cover: Cover, all_totals: list[CurrencyTotals]) -> SheetSpec:
    rows: list[list[Any]] = [[cover.title], []]
    formats: list[list[str | None]] = [[], []]
    bold = {0}
    for r in _identity_rows(cover):
        rows.append(r)
        formats.append([])
    rows.append([])
    formats.append([])
    start = len(rows)
    table, table_formats, table_bold = _totals_rows(all_totals)
    rows += table
    formats += table_formats
    bold |= {start + i for i in table_bold}
    rows.append([])
    formats.append([])
    for note in cover_notes(all_totals):
        rows.append([note])
        formats.append([])
    widths = {1: 40.0, **{c: 16.0 for c in range(2, 2 + 2 * len(all_totals))}}
    return SheetSpec(
        "Cover", [], rows, formats=formats, bold_rows=frozenset(bold), widths=widths, printable=True, active=True
    )


# -- Problems and Summary ------------------------------------------------------------------------------


def _problem_rows(unpaid: Iterable[Line]) -> Iterator[list[Any]]:
    for line in unpaid:
        amount: Any = line.amount if line.amount is not None else f"{line.amount_text} (unreadable)"
        yield [line.row, line.name, line.paid_to, amount, line.currency, str(line.word), line.reason, line.what_to_do]


def problems_sheet(unpaid: Iterable[Line]) -> SheetSpec:
    """Every row that was not paid (``unpaid``: those lines, in row order)."""
    widths = {1: 7.0, 2: 24.0, 3: 18.0, 4: 14.0, 5: 9.0, 6: 22.0, 7: 60.0, 8: 50.0}
    return SheetSpec(
        "Problems",
        PROBLEM_HEADERS,
        _problem_rows(unpaid),
        {"Phone or account"},
        format_of=MoneyFormats(4, [3], 4),
        table_header=True,
        printable=True,
        widths=widths,
        wrap=frozenset({2, 7, 8}),
    )


def summary_rows(all_totals: list[CurrencyTotals]) -> list[list[Any]]:
    """One row per (currency, word) present: a label naming both, rows and amount."""
    out: list[list[Any]] = []
    for t in all_totals:
        for word in ORDER:
            bucket = t.by_word[word]
            if bucket.rows:
                out.append([f"{t.label} {SHORT[word]}", t.label, str(word), bucket.rows, bucket.amount])
    return out


def summary_sheet(all_totals: list[CurrencyTotals]) -> SheetSpec:
    rows = summary_rows(all_totals)
    formats: list[list[str | None]] = [
        [None, None, None, None, number_format(r[1] if r[1] != "no currency" else "")] for r in rows
    ]
    chart = ChartSpec(
        "Rows by currency and status",
        category_column=1,
        value_column=4,
        last_row=len(rows) + 1,
        anchor="G2",
        y_title="rows",
    )
    return SheetSpec(
        "Summary",
        SUMMARY_HEADERS,
        rows,
        formats=formats,
        chart=chart,
        table_header=True,
        printable=True,
        widths={1: 22.0, 2: 10.0, 3: 26.0, 4: 8.0, 5: 16.0},
    )


def workbook(cover: Cover, inputs: list[str], lines: list[Line], *, final: bool = False) -> list[SheetSpec]:
    """Every sheet of a results workbook; the table comes first (``retry`` reads the first sheet),
    the workbook opens on the Cover."""
    return streamed_workbook(cover, inputs, lines, problems(lines), totals(lines), final=final)


def streamed_workbook(
    cover: Cover,
    inputs: list[str],
    lines: Iterable[Line],
    unpaid: Iterable[Line],
    all_totals: list[CurrencyTotals],
    *,
    final: bool = False,
    later: LaterRows[Line] | None = None,
) -> list[SheetSpec]:
    """:func:`workbook` from lines read as the file is written: every line (``lines``, then
    ``later``'s), then the unpaid ones (each iterable read once, in row order), and the totals
    counted beforehand."""
    table = (
        results_sheet("Final outcome", inputs, lines, FINAL_COLUMNS, later)
        if final
        else results_sheet("Results", inputs, lines, RESULT_COLUMNS, later)
    )
    return [table, cover_sheet(cover, all_totals), problems_sheet(unpaid), summary_sheet(all_totals)]

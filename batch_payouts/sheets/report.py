"""What a results file says, as plain data: the cover, each row's outcome and per-currency totals.

The XLSX/CSV layout (``layout.py``) and the PDF summary (``pdf.py``) both read these records, so
the workbook, the CSV and the PDF can never disagree. Money is ``Decimal`` in major units of the
line's currency; times are naive ``datetime`` in UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from batch_payouts.model import RowState, minor_digits
from batch_payouts.vocabulary import ORDER, Word

UNKNOWN = "unknown"
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Identity:
    """Where a batch ran and who is answerable for it."""

    environment: str = UNKNOWN  # LIVE, SANDBOX or unknown
    host: str = UNKNOWN
    account: str = UNKNOWN
    wallets: dict[str, str] = field(default_factory=dict)  # currency -> wallet id
    ran_by: str = NOT_RECORDED
    approved_by: str = NOT_RECORDED


@dataclass(frozen=True)
class Cover:
    """The first thing an auditor reads: which run, of which file, where, by whom, when."""

    identity: Identity
    batch: str
    label: str
    source: str
    source_sha256: str  # 64 hex digits, or a sentence saying why it is not known
    batches: tuple[str, ...]  # every batch the rows went through (the batch alone, or it and its retries)
    retry_of: str | None
    created_at: dt.datetime | None
    first_sent_at: dt.datetime | None
    last_answer_at: dt.datetime | None
    written_at: dt.datetime
    tool_version: str
    title: str = "Payout results"


@dataclass(frozen=True)
class Line:
    """One row of the file and what happened to it (its latest, or deciding, attempt)."""

    row: int
    cells: dict[str, str]
    state: RowState
    word: Word
    reason: str
    what_to_do: str
    name: str
    amount: Decimal | None  # None: the amount cannot be read (invalid rows only)
    amount_text: str  # the amount as written in the file
    currency: str  # "" when the row names none we can read
    fee: Decimal | None
    received: Decimal | None
    paid_to: str
    reference_id: str
    provider_reference: str
    receipt: str
    provider_id: str
    provider_status: str
    batch: str
    attempt: int
    sent_at: dt.datetime | None
    final_at: dt.datetime | None
    batches: tuple[str, ...] = ()
    name_check: dict[str, str] = field(default_factory=dict)  # the payee check's columns (``NAME_CHECK_COLUMNS``)

    @property
    def charged_fee(self) -> Decimal | None:
        """The fee of a paid row; failed and unpaid rows carry none (the wallet is credited back)."""
        return self.fee if self.word is Word.PAID else None

    @property
    def debited(self) -> Decimal:
        """What the payout wallet lost for this row (see :func:`debited`)."""
        return debited(self.word, self.amount, self.fee, self.received)


def debited(word: Word, amount: Decimal | None, fee: Decimal | None, received: Decimal | None) -> Decimal:
    """What the payout wallet lost for a row: 0 unless paid. ``amount`` when the fee came out of
    the recipient's amount (received = amount - fee), ``amount + fee`` when the recipient got the
    full amount."""
    if word is not Word.PAID or amount is None:
        return Decimal(0)
    charged = fee or Decimal(0)
    if received is not None and received == amount and charged:
        return amount + charged
    return amount


@dataclass(frozen=True)
class Tally:
    """``count`` rows alike in everything the totals count: currency, word, amount, fee, received.

    ``rows``: their row numbers where the totals name rows (an amount that cannot be read, a paid
    row without a fee or amount received reported); a tally of one line names its row."""

    currency: str
    word: Word
    amount: Decimal | None
    fee: Decimal | None
    received: Decimal | None
    count: int = 1
    rows: tuple[int, ...] = ()

    @classmethod
    def of(cls, line: Line) -> Tally:
        return cls(line.currency, line.word, line.amount, line.fee, line.received, 1, (line.row,))


@dataclass
class Bucket:
    rows: int = 0
    amount: Decimal = Decimal(0)

    def add(self, amount: Decimal | None, count: int = 1) -> None:
        self.rows += count
        self.amount += (amount or Decimal(0)) * count


@dataclass
class CurrencyTotals:
    """Rows and amounts per word for one currency, with fees and what moved."""

    currency: str
    by_word: dict[Word, Bucket] = field(default_factory=lambda: {w: Bucket() for w in ORDER})
    unreadable: list[int] = field(default_factory=list)  # invalid rows whose amount cannot be read
    fees: Decimal = Decimal(0)
    debited: Decimal = Decimal(0)
    received: Decimal = Decimal(0)
    unreported: list[int] = field(default_factory=list)  # paid rows the provider gave no fee/received for

    @property
    def in_file(self) -> Bucket:
        """Every row of this currency: the sum of the words (amounts: the readable ones)."""
        total = Bucket()
        for bucket in self.by_word.values():
            total.rows += bucket.rows
            total.amount += bucket.amount
        return total

    @property
    def digits(self) -> int:
        return minor_digits(self.currency) if self.currency else 2

    @property
    def label(self) -> str:
        return self.currency or "no currency"


def totals(lines: list[Line]) -> list[CurrencyTotals]:
    """Per currency (sorted; rows without a readable currency last), every row counted once."""
    return totals_of(Tally.of(line) for line in lines)


def totals_of(tallies: Iterable[Tally]) -> list[CurrencyTotals]:
    """:func:`totals` from rows counted in groups (a database's ``GROUP BY``): the same figures."""
    found: dict[str, CurrencyTotals] = {}
    for g in tallies:
        t = found.setdefault(g.currency, CurrencyTotals(g.currency))
        t.by_word[g.word].add(g.amount, g.count)
        if g.amount is None:
            t.unreadable += g.rows
        if g.word is Word.PAID:
            t.fees += (g.fee or Decimal(0)) * g.count
            t.debited += debited(g.word, g.amount, g.fee, g.received) * g.count
            t.received += (g.received if g.received is not None else g.amount or Decimal(0)) * g.count
            if g.fee is None or g.received is None:
                t.unreported += g.rows
    for t in found.values():
        t.unreadable.sort()
        t.unreported.sort()
    return sorted(found.values(), key=lambda t: (t.currency == "", t.currency))


def problems(lines: list[Line]) -> list[Line]:
    """Every row that was not paid."""
    return [line for line in lines if line.word is not Word.PAID]


def money(amount: Decimal | None, currency: str) -> str:
    """``1,500`` for KES, ``1,250.50`` for ZAR; "" for None."""
    if amount is None:
        return ""
    digits = minor_digits(currency) if currency else 2
    return f"{amount:,.{digits}f}"


def when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def rows_text(rows: list[int]) -> str:
    """``row 7`` or ``rows 7, 9 and 12``."""
    if len(rows) == 1:
        return f"row {rows[0]}"
    return "rows " + ", ".join(map(str, rows[:-1])) + f" and {rows[-1]}"

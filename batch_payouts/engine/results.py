"""Results from the ledger: the results file of a batch, the final outcome across retries, the PDF.

Each row of the ledger becomes a :class:`~batch_payouts.sheets.report.Line` in the finance
vocabulary (``vocabulary.py``); the cover comes from the batch record. The layout lives in
``sheets/layout.py`` (XLSX and CSV) and ``sheets/pdf.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import re
from collections.abc import Collection, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from batch_payouts import __version__, crash
from batch_payouts.engine.plan import batch_key
from batch_payouts.engine.verify_stage import name_check_columns
from batch_payouts.ledger import ACCEPTED, APPROVED, RUN_STARTED, BatchRecord, Ledger, RowRecord
from batch_payouts.model import (
    SETTLED_STATES,
    BankPayout,
    MobileMoneyPayout,
    PaybillPayout,
    Payout,
    RowState,
    TillPayout,
)
from batch_payouts.sheets import layout
from batch_payouts.sheets.report import Cover, CurrencyTotals, Identity, Line, Tally, totals_of
from batch_payouts.sheets.spec import LaterRows
from batch_payouts.sheets.write import write_csv, write_xlsx
from batch_payouts.validate import TOO_LARGE_AMOUNT, AmountError, parse_amount
from batch_payouts.vocabulary import ORDER, STATE_WORDS, Word, reason, what_to_do

# The word of each row state, as text (kept for callers that compare a results file with the ledger).
STATUS_WORDS: dict[RowState, str] = {state: str(word) for state, word in STATE_WORDS.items()}
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


# -- where and who: the one place to change when the ledger records environments -------------------


def identity_of(ledger: Ledger, batch: BatchRecord) -> Identity:
    """LIVE or SANDBOX, host, account, wallets, who ran and who approved ``batch``.

    Environment, host and account come from the ledger's environment of the batch; wallets and
    people from the batch's options (``wallets``, ``ran_by``, ``approved_by``) when recorded there.
    Whatever is not recorded reads "unknown" / "not recorded"."""
    options = batch.options
    default = Identity()
    env = ledger.environment(batch.env_id) if batch.env_id else None
    wallets = options.get("wallets")
    return Identity(
        environment=env.kind
        if env
        else str(options.get("environment") or default.environment).upper().replace("UNKNOWN", default.environment),
        host=env.host if env else str(options.get("host") or default.host),
        account=env.account if env else str(options.get("account") or default.account),
        wallets={str(k): str(v) for k, v in wallets.items()} if isinstance(wallets, dict) else {},
        ran_by=_who(ledger, batch, (RUN_STARTED,)) or str(options.get("ran_by") or default.ran_by),
        approved_by=_who(ledger, batch, (APPROVED, ACCEPTED)) or str(options.get("approved_by") or default.approved_by),
    )


def _who(ledger: Ledger, batch: BatchRecord, actions: tuple[str, ...]) -> str:
    """The people who did ``actions`` to the batch, in order, each once ("" when nobody did)."""
    people = dict.fromkeys(a.actor for a in ledger.actions(batch.id) if a.action in actions)
    return ", ".join(people)


# -- rows -------------------------------------------------------------------------------------------


def _utc(ts: float | None) -> dt.datetime | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None, microsecond=0)


def paid_to(payout: Payout | None, canon: dict[str, str]) -> str:
    """The number actually paid (E.164 phone, till, paybill and account, bank and account), or for
    an unpaid row without a payout the payee cell as written."""
    if isinstance(payout, MobileMoneyPayout):
        return payout.phone
    if isinstance(payout, TillPayout):
        return f"till {payout.till_number}"
    if isinstance(payout, PaybillPayout):
        return f"paybill {payout.paybill_number} account {payout.account_reference}"
    if isinstance(payout, BankPayout):
        return f"{payout.bank_name or 'bank'} {payout.bank_code} account {payout.account_number}"
    for column in ("phone", "account_number", "till_number", "paybill_number"):
        if canon.get(column, "").strip():
            return canon[column].strip()
    return ""


def readable_amount(text: str, currency: str) -> Decimal | None:
    """The amount a cell holds, if it can be read at all (a negative or over-precise amount is
    readable, if invalid); ``None`` for text that is not a number."""
    try:
        return parse_amount(text, currency)
    except AmountError:
        pass
    cleaned = text.strip()
    if _PLAIN_NUMBER.fullmatch(cleaned):
        try:
            value = Decimal(cleaned)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
        return value if abs(value) < TOO_LARGE_AMOUNT else None  # (a total of it would not be exact)
    return None


def _currency_guess(canon: dict[str, str], by_country: dict[str, str]) -> str:
    code = canon.get("currency", "").strip().upper()
    if re.fullmatch(r"[A-Z]{3}", code):
        return code
    return by_country.get(canon.get("country", "").strip().upper(), "")


def _canon(batch: BatchRecord, row: RowRecord) -> dict[str, str]:
    mapping: dict[str, str] = batch.options.get("mapping", {})
    return {c: row.cells.get(h, "") for c, h in mapping.items()}


def _country_currencies(batch: BatchRecord, rows: list[RowRecord]) -> dict[str, str]:
    """Country cell text -> currency, learnt from the batch's valid rows (for invalid rows that
    name a country but no currency)."""
    found: dict[str, str] = {}
    for r in rows:
        if r.payout is not None:
            found.setdefault(_canon(batch, r).get("country", "").strip().upper(), r.payout.currency)
    found.pop("", None)
    return found


def country_currencies(ledger: Ledger, batch: BatchRecord) -> dict[str, str]:
    """:func:`_country_currencies` of every row of the batch, asked of the ledger (no row decoded)."""
    header = batch.options.get("mapping", {}).get("country")
    found: dict[str, str] = {}
    if header:
        for text, currency, _first in ledger.cell_currencies(batch.id, header):
            found.setdefault(text.strip().upper(), currency)
    found.pop("", None)
    return found


def batch_totals(ledger: Ledger, batch_id: str) -> list[CurrencyTotals]:
    """The per-currency totals of a batch (what ``totals(batch_lines(...))`` gives): the rows with a
    payout counted and grouped by the ledger, only the rows without one read one by one."""
    batch = ledger.batch(batch_id)
    tallies = [
        Tally(g.currency, STATE_WORDS[g.state], g.amount, g.fee, g.received, g.count, g.unreported)
        for g in ledger.money_groups(batch_id)
    ]
    loose = ledger.rows_without_payout(batch_id)
    if loose:
        by_country = country_currencies(ledger, batch)
        tallies += [Tally.of(line_for(batch, r, by_country)) for r in loose]
    return totals_of(tallies)


def line_for(batch: BatchRecord, row: RowRecord, by_country: dict[str, str] | None = None) -> Line:
    """One ledger row in the finance vocabulary."""
    canon = _canon(batch, row)
    p = row.payout
    if p is not None:
        amount: Decimal | None = p.amount
        currency, name, amount_text = p.currency, p.name, str(p.amount)
    else:
        currency = _currency_guess(canon, by_country or {})
        amount_text = canon.get("amount", "")
        amount = readable_amount(amount_text, currency)
        name = canon.get("name", "")
    word = STATE_WORDS[row.state]
    return Line(
        row=row.row,
        cells=dict(row.cells),
        state=row.state,
        word=word,
        reason=reason(
            row.state, error=row.error, note=row.note, problems=row.problems, provider_status=row.provider_status
        ),
        what_to_do=what_to_do(row.state, note=row.note),
        name=name,
        amount=amount,
        amount_text=amount_text,
        currency=currency,
        fee=row.fee,
        received=row.recipient_amount,
        paid_to=paid_to(p, canon),
        reference_id=row.reference or "",
        provider_reference=row.reference_number or "",
        receipt=row.telco_receipt or "",
        provider_id=row.provider_id or "",
        provider_status=row.provider_status or "",
        batch=row.batch_id,
        attempt=row.attempt,
        sent_at=_utc(row.submitting_at or row.submitted_at),
        final_at=_utc(row.completed_at),
        batches=(row.batch_id,),
        name_check=name_check_columns(row),
    )


def batch_lines(ledger: Ledger, batch_id: str) -> list[Line]:
    batch = ledger.batch(batch_id)
    rows = ledger.rows(batch_id)
    by_country = _country_currencies(batch, rows)
    return [line_for(batch, r, by_country) for r in rows]


# -- the final outcome across retries ---------------------------------------------------------------


def root_batch(ledger: Ledger, batch_id: str) -> str:
    """The first batch of a chain of retries (``batch_id`` itself when it is not a retry)."""
    batch = ledger.batch(batch_id)
    while batch.parent is not None:
        batch = ledger.batch(batch.parent)
    return batch.id


def final_lines(ledger: Ledger, batch_id: str, *, only: Collection[int] | None = None) -> Iterator[Line]:
    """One line per row of the original file, in row order: the attempt that decided it (a paid
    one if any, else the latest) and every batch the row went through. ``only``: just the rows of
    these numbers. The rows are read as the lines are made: memory does not grow with the batch."""
    root = ledger.batch(root_batch(ledger, batch_id))
    later = ledger.later_attempts(root.id)
    by_country = country_currencies(ledger, root)
    batches = {root.id: root}
    for first in _rows_of(ledger, root.id, only):
        attempts = sorted([first, *later.get(first.row, [])], key=lambda a: a.attempt)
        paid = [a for a in attempts if a.state is RowState.SUCCEEDED]
        deciding = paid[0] if paid else attempts[-1]
        if deciding.batch_id not in batches:
            batches[deciding.batch_id] = ledger.batch(deciding.batch_id)
        line = line_for(batches[deciding.batch_id], deciding, by_country)
        if len(attempts) == 1:
            yield line  # (its cells, reason and batches are the row's own already)
            continue
        why = line.reason
        if len(paid) > 1:
            refs = ", ".join(a.reference or "" for a in paid)
            why = f"PAID TWICE: attempts {refs} were all paid; recover the money from the recipient"
        yield dataclasses.replace(
            line, cells=dict(first.cells), reason=why, batches=tuple(dict.fromkeys(a.batch_id for a in attempts))
        )


def _final_totals(ledger: Ledger, root: str) -> tuple[list[CurrencyTotals], list[int]]:
    """The totals of the final outcome across retries and the rows it leaves unpaid. Without a
    retry, every row's final line is its own: counted by the ledger (:func:`batch_totals`);
    else in one pass over the final lines."""
    if not ledger.descendants(root):
        unpaid = ledger.row_numbers(root) - ledger.row_numbers(root, RowState.SUCCEEDED)
        return batch_totals(ledger, root), sorted(unpaid)
    tallies, not_paid = [], []
    for line in final_lines(ledger, root):
        tallies.append(Tally.of(line))
        if line.word is not Word.PAID:
            not_paid.append(line.row)
    return totals_of(tallies), not_paid


def _rows_of(ledger: Ledger, batch_id: str, only: Collection[int] | None) -> Iterator[RowRecord]:
    """The batch's rows by number (``only``: just these numbers), decoded as read."""
    return ledger.stream_rows(batch_id) if only is None else ledger.rows_numbered(batch_id, only)


def _chain(ledger: Ledger, root: str) -> list[str]:
    out, todo = [], [root]
    while todo:
        batch = todo.pop(0)
        out.append(batch)
        todo += ledger.children(batch)
    return out


# -- the cover --------------------------------------------------------------------------------------


def source_digest(batch: BatchRecord) -> str:
    """SHA-256 of the source file, when the file at the batch's path is still the one it was made
    from (its content and label give the batch's fingerprint); otherwise a sentence saying why not."""
    recorded = batch.options.get("source_sha256")
    if isinstance(recorded, str) and recorded:
        return recorded
    try:
        content = Path(batch.source).read_bytes()
    except OSError:
        return "not recorded (the file is no longer at this path)"
    legacy = "b" + hashlib.sha256(content + b"\x00" + batch.label.encode("utf-8")).hexdigest()[:11]
    if batch.fingerprint not in (batch_key(content, batch.label, batch.env_id), legacy):
        return "not recorded (the file at this path has changed since the batch was made)"
    return hashlib.sha256(content).hexdigest()


def make_cover(
    ledger: Ledger, batch_id: str, *, batches: tuple[str, ...] | None = None, title: str = "Payout results"
) -> Cover:
    """The cover of a batch (or of a chain of ``batches``), its times asked of the ledger."""
    batch = ledger.batch(batch_id)
    chain = batches or (batch_id,)
    first_sent, last_answer = ledger.first_sent_last_answer(chain)
    return Cover(
        identity=identity_of(ledger, batch),
        batch=batch.id,
        label=batch.label,
        source=batch.source,
        source_sha256=source_digest(batch),
        batches=chain,
        retry_of=batch.parent,
        created_at=_utc(batch.created_at),
        first_sent_at=_utc(first_sent),
        last_answer_at=_utc(last_answer),
        written_at=_utc(ledger.clock()) or dt.datetime(1970, 1, 1),
        tool_version=__version__,
        title=title,
    )


def _later_part(
    ledger: Ledger, batch: BatchRecord, by_country: dict[str, str], split_from: int
) -> tuple[int | None, LaterRows[Line] | None]:
    """Where a long table is cut in two: the first row number of the later part (None: no cut),
    and the later part's lines. The two parts are read a moment apart, by two connections: only
    a settled batch is cut (no row left that a run may still change), so both read the same
    rows; and a batch's rows never change in number, so none is lost or repeated (the writer
    checks the counts too). A batch still running is read whole, in one read."""
    counts = ledger.counts(batch.id)
    count = sum(counts.values())
    if count < max(split_from, 2) or any(RowState(state) not in SETTLED_STATES for state in counts):
        return None, None
    before = max(1, int(count * _OWN_SHARE))
    first_later = ledger.row_number_at(batch.id, before)
    if first_later is None:
        return None, None
    make = functools.partial(_lines_from, ledger.path, batch, by_country, first_later)
    return first_later, LaterRows(before, count - before, make)


def _lines(
    ledger: Ledger,
    batch: BatchRecord,
    by_country: dict[str, str],
    *,
    unpaid: bool = False,
    rows: tuple[int, int | None] = (0, None),
) -> Iterator[Line]:
    """The lines of the batch's rows (``unpaid`` and ``rows`` as ``Ledger.stream_rows`` takes them)."""
    for row in ledger.stream_rows(batch.id, unpaid=unpaid, rows=rows):
        yield line_for(batch, row, by_country)


def _lines_from(path: Path, batch: BatchRecord, by_country: dict[str, str], first: int) -> Iterator[Line]:
    """The lines of the batch's rows from row number ``first`` on, read through a read-only
    connection of their own (this runs in a helper process)."""
    reader = Ledger(path, read_only=True)
    try:
        yield from _lines(reader, batch, by_country, rows=(first, None))
    finally:
        reader.close()


# -- files ------------------------------------------------------------------------------------------


SPLIT_FROM = 20_000  # rows: a results workbook at least this long is written by two processes
_OWN_SHARE = 0.5  # of the rows, written by this process


def write_results(ledger: Ledger, batch_id: str, path: Path, *, split_from: int = SPLIT_FROM) -> Path:
    """Write the results file of one batch (CSV or XLSX by suffix) atomically, mode 0600. The
    rows are streamed from the ledger to the file; the totals are counted by the ledger. The
    workbook of a settled batch of ``split_from`` rows or more has its table written in two parts
    at once: the rows after a split row are read and written by a helper process (see
    ``sheets.spec.LaterRows``)."""
    crash.point("while_writing_results")
    batch = ledger.batch(batch_id)
    by_country = country_currencies(ledger, batch)

    if path.suffix.lower() == ".xlsx":
        end, later = _later_part(ledger, batch, by_country, split_from)
        sheets = layout.streamed_workbook(
            make_cover(ledger, batch_id),
            batch.headers,
            _lines(ledger, batch, by_country, rows=(0, end)),
            _lines(ledger, batch, by_country, unpaid=True),
            batch_totals(ledger, batch_id),
            later=later,
        )
        write_xlsx(path, sheets)
    else:
        write_csv(
            path,
            layout.table_headers(batch.headers, layout.RESULT_COLUMNS),
            layout.table_rows(batch.headers, _lines(ledger, batch, by_country), layout.RESULT_COLUMNS),
        )
    return path


def write_final_results(ledger: Ledger, batch_id: str, path: Path) -> Path:
    """Write one line per row of the original file with its final outcome across every retry
    (``batch_id`` may be the first batch or any retry of it); CSV or XLSX by suffix."""
    with ledger.snapshot():  # every pass reads the same moment, also while a retry runs
        return _write_final_results(ledger, root_batch(ledger, batch_id), path)


def _write_final_results(ledger: Ledger, root: str, path: Path) -> Path:
    cover = make_cover(ledger, root, batches=tuple(_chain(ledger, root)), title="Final outcome across retries")
    headers = ledger.batch(root).headers
    crash.point("while_writing_results")
    if path.suffix.lower() != ".xlsx":
        write_csv(
            path,
            layout.table_headers(headers, layout.FINAL_COLUMNS),
            layout.table_rows(headers, final_lines(ledger, root), layout.FINAL_COLUMNS),
        )
        return path
    all_totals, unpaid = _final_totals(ledger, root)
    sheets = layout.streamed_workbook(
        cover, headers, final_lines(ledger, root), final_lines(ledger, root, only=unpaid), all_totals, final=True
    )
    write_xlsx(path, sheets)
    return path


def write_summary_pdf(ledger: Ledger, batch_id: str, path: Path) -> Path:
    """Write the one-page PDF summary of a batch (approval packs, audit files)."""
    from batch_payouts.sheets.pdf import write_summary

    with ledger.snapshot():  # the count, the totals and the rows listed: one moment, also mid-run
        batch = ledger.batch(batch_id)
        counts = ledger.counts(batch_id)
        unpaid = sum(counts.values()) - counts.get(RowState.SUCCEEDED.value, 0)
        write_summary(
            path,
            make_cover(ledger, batch_id, title="Payout summary"),
            batch_totals(ledger, batch_id),
            unpaid,
            _lines(ledger, batch, country_currencies(ledger, batch), unpaid=True),
        )
    return path


def summary(ledger: Ledger, batch_id: str) -> list[list[Any]]:
    """(word, currency, rows, amount) for every combination present, in the vocabulary's order."""
    out: list[list[Any]] = []
    for t in batch_totals(ledger, batch_id):
        for word in ORDER:
            bucket = t.by_word[word]
            if bucket.rows:
                out.append([str(word), t.currency, bucket.rows, bucket.amount])
    return out


def default_results_path(source: str) -> Path:
    """Next to the input, never the input itself."""
    src = Path(source)
    suffix = src.suffix.lower() if src.suffix.lower() in (".csv", ".xlsx") else ".csv"
    return src.with_name(f"{src.stem}.results{suffix}")


def default_final_path(source: str) -> Path:
    src = default_results_path(source)
    return src.with_name(src.name.replace(".results", ".final"))


def default_summary_path(source: str) -> Path:
    return Path(source).with_name(f"{Path(source).stem}.summary.pdf")

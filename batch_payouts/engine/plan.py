"""From a file to a persisted batch: validation, totals, the balance check, the repeat guard."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from batch_payouts import crash
from batch_payouts.catalog import Catalog
from batch_payouts.ledger import Holder, Ledger, NewRow
from batch_payouts.model import IN_FLIGHT_STATES, RowState
from batch_payouts.sheets.read import RawSheet
from batch_payouts.validate import Problem, Report, RowResult, Rules, validate_rows


def check_sheet(sheet: RawSheet, catalog: Catalog, rules: Rules | None = None) -> Report:
    """Validate every row of ``sheet``; formula cells are reported as warnings."""
    mapping = list(sheet.mapping.items())
    rows = [(r.row, {c: r.cells.get(h, "") for c, h in mapping}) for r in sheet.rows]
    report = validate_rows(rows, catalog, rules)
    by_row = {r.row: r for r in report.rows}
    for (number, header), formula in sheet.formula_cells.items():
        canon = next((c for c, h in sheet.mapping.items() if h == header), header)
        by_row[number].problems.append(
            Problem(number, canon, formula, "this cell is a formula; its saved value was used", "warning")
        )
    return report


def batch_key(content: bytes, label: str, env_id: str) -> str:
    """Short, stable id of (file content, label, environment): the same file and label continue
    one batch in one environment; the same file in another environment is another batch."""
    return "b" + hashlib.sha256(content + b"\x00" + label.encode("utf-8") + b"\x00" + env_id.encode()).hexdigest()[:11]


def obligation_key(label: str, payee: str, currency: str, discriminator: str) -> str:
    """The payment a row makes (docs/obligations.md): label, payee identity, currency and what
    tells two payments to one payee in one file apart (their own references, else their order)."""
    text = "\x00".join((label, payee, currency.upper(), discriminator))
    return "o" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:23]


def obligation_keys(report: Report, label: str) -> dict[int, str]:
    """Row number -> its obligation key, for every valid row."""
    seen: dict[tuple[str, str], int] = {}
    out: dict[int, str] = {}
    for result in report.valid_rows:
        p = result.payout
        assert p is not None
        if p.reference:
            discriminator = "ref:" + p.reference.strip()
        else:
            count = seen.get((p.payee(), p.currency), 0) + 1
            seen[(p.payee(), p.currency)] = count
            discriminator = f"n:{count}"
        out[result.row] = obligation_key(label, p.payee(), p.currency, discriminator)
    return out


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
    rows: set[int] = field(default_factory=set)  # the sheet rows counted in ``currencies``

    @property
    def covered(self) -> bool:
        return all(c.shortfall == 0 for c in self.currencies.values())

    @property
    def grand_total(self) -> str:
        return ", ".join(f"{c.currency} {c.total}" for c in sorted(self.currencies.values(), key=lambda c: c.currency))


def make_plan(
    report: Report,
    balances: dict[str, Decimal],
    *,
    sendable: set[int] | None = None,
    in_flight: dict[str, Decimal] | None = None,
) -> Plan:
    """Totals still to send per currency against the payout balance, money in flight apart.

    ``sendable``: the rows that will actually be sent (``None``: every valid row)."""
    plan = Plan(by_method=report.totals())
    for result in report.valid_rows:
        p = result.payout
        assert p is not None
        if sendable is not None and result.row not in sendable:
            continue
        cp = plan.currencies.setdefault(
            p.currency,
            CurrencyPlan(
                p.currency, 0, Decimal(0), (in_flight or {}).get(p.currency, Decimal(0)), balances.get(p.currency)
            ),
        )
        cp.rows += 1
        cp.total += p.amount
        plan.rows.add(result.row)
    return plan


def open_rows(ledger: Ledger, batch_id: str) -> tuple[set[int], dict[str, Decimal]]:
    """Rows of an existing batch still to send, and the money in flight per currency, asked of
    the ledger (no row decoded)."""
    in_flight: dict[str, Decimal] = {}
    with ledger.snapshot():  # (a row sent between two reads would be in neither)
        for state, currency, _, total in ledger.totals(batch_id):
            if currency and state in IN_FLIGHT_STATES:
                in_flight[currency] = in_flight.get(currency, Decimal(0)) + total
        return ledger.row_numbers(batch_id, RowState.READY), in_flight


@dataclass
class Repeat:
    """A row not paid because its payee is already paid (or being paid) for this label."""

    row: int
    other_batch: str
    other_row: int
    sentence: str
    edited_amount: bool = False


@dataclass
class NewBatch:
    """What creating a batch from a file will do, before anything is written."""

    batch_id: str
    env_id: str
    label: str
    rows: list[NewRow]
    repeats: list[Repeat] = field(default_factory=list)
    supersede: list[tuple[str, int, str]] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    overrides: dict[int, str] = field(default_factory=dict)

    @property
    def sendable(self) -> set[int]:
        return {r.row for r in self.rows if r.state is RowState.READY}

    @property
    def held(self) -> set[int]:
        """Rows a guardrail holds: not sent until a person accepts them."""
        return {r.row for r in self.rows if r.state is RowState.HELD}


def prepare_batch(
    ledger: Ledger,
    batch_id: str,
    sheet: RawSheet,
    report: Report,
    *,
    env_id: str,
    label: str,
    pay_again: dict[int, str] | None = None,
) -> NewBatch:
    """Decide every row of a new batch against every other batch of the environment.

    A payee already paid, or being paid, for this label is not paid again (a repeat), unless the
    row is in ``pay_again`` (row -> the operator's reason). A row a guardrail holds (a problem of
    severity ``"held"``) is stored HELD with the holds' sentences. Rows of earlier batches that were
    never sent are taken over by this batch, so that resuming those batches cannot pay them too.
    """
    keys = obligation_keys(report, label)
    new = NewBatch(batch_id, env_id, label, [])
    replaced = ledger.unfinished_batches(env_id, label, Path(sheet.path).stem)
    new.replaces = [b.id for b in replaced]
    cells = {r.row: r.cells for r in sheet.rows}
    pay_again = pay_again or {}
    for result, holders in _with_holders(ledger, env_id, report.rows, keys):
        problems = [
            {"column": p.column, "value": p.value, "message": p.message, "severity": p.severity}
            for p in result.problems
        ]
        if not result.valid or result.payout is None:
            new.rows.append(NewRow(result.row, RowState.INVALID, None, cells[result.row], problems))
            continue
        p, key = result.payout, keys[result.row]
        state, note = RowState.READY, None
        for holder in holders:
            if holder.live and result.row not in pay_again:
                repeat = _repeat(result.row, p.amount, p.currency, holder, label)
                new.repeats.append(repeat)
                problems.append(
                    {
                        "column": "amount" if repeat.edited_amount else "",
                        "value": "",
                        "severity": "error",
                        "message": repeat.sentence,
                    }
                )
                state = RowState.BLOCKED
                break
            if holder.state is RowState.READY and not holder.ever_sent:
                changed = (
                    ""
                    if holder.amount == p.amount
                    else (f"; the amount changed from {holder.currency} {holder.amount:,} to {p.currency} {p.amount:,}")
                )
                new.supersede.append(
                    (
                        holder.batch_id,
                        holder.row,
                        f"replaced by batch {batch_id} row {result.row}: the file was run again",
                    )
                )
                note = f"replaces row {holder.row} of batch {holder.batch_id}, never sent{changed}"
        held = [p for p in result.problems if p.severity == "held"]
        if state is RowState.READY and held:
            state, note = RowState.HELD, hold_note(held)
        if state is RowState.READY and result.row in pay_again:
            new.overrides[result.row] = pay_again[result.row]
        new.rows.append(NewRow(result.row, state, p, cells[result.row], problems, (key,), note=note))
    return new


def _with_holders(
    ledger: Ledger, env_id: str, results: Sequence[RowResult], keys: dict[int, str], per: int = 500
) -> Iterator[tuple[RowResult, list[Holder]]]:
    """Each row with the rows of any batch of ``env_id`` that claim its obligation key (none for a
    row without one), asked ``per`` rows at a time: a few statements, and memory that does not
    grow with the batch."""
    for start in range(0, len(results), per):
        chunk = results[start : start + per]
        found = ledger.holders_by_key(env_id, [keys[r.row] for r in chunk if r.row in keys])
        for result in chunk:
            yield result, found.get(keys[result.row], []) if result.row in keys else []


def hold_note(held: list[Problem]) -> str:
    """The sentences of a row's guardrail holds, as its note says them."""
    return " ".join(f"Row {p.row} {p.message}." for p in held)


def _repeat(row: int, amount: Decimal, currency: str, holder: Holder, label: str) -> Repeat:
    """The sentence for a row whose payee is already paid or being paid for ``label``."""
    where = f"batch {holder.batch_id} row {holder.row}"
    labelled = f"label {label!r}" if label else "no --label"
    if holder.amount is not None and holder.amount != amount:
        verb = "was already paid" if holder.state is RowState.SUCCEEDED else "is already being paid"
        return Repeat(
            row,
            holder.batch_id,
            holder.row,
            (
                f"this payee {verb} {holder.currency} {holder.amount:,} in {where} ({labelled}); the file now says "
                f"{currency} {amount:,}. An edited amount is never paid on top: to pay more, use a new --label"
            ),
            edited_amount=True,
        )
    if holder.state is RowState.SUCCEEDED:
        text = f"already paid {currency} {amount:,} to this payee in {where} ({labelled}); not paid again"
    else:
        text = f"{where} is already paying this payee ({holder.state.value}); not paid again"
    return Repeat(row, holder.batch_id, holder.row, text)


def persist_batch(
    ledger: Ledger, new: NewBatch, sheet: RawSheet, *, fingerprint: str, options: dict[str, Any], who: str
) -> None:
    """Store the batch, its rows and claims, and take over what it replaces, in one transaction;
    then record the operator's overrides."""
    ledger.create_batch(
        new.batch_id,
        env_id=new.env_id,
        fingerprint=fingerprint,
        label=new.label,
        source=str(Path(sheet.path)),
        options=options,
        headers=sheet.headers,
        rows=new.rows,
        supersede=new.supersede,
        replaces=new.replaces,
    )
    for row, why in new.overrides.items():
        ledger.record_override(new.env_id, new.batch_id, row, who=who, why=why)
    crash.point("after_batch_persisted")

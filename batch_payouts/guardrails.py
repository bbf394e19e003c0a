"""Payroll guardrails: everyday spreadsheet mistakes stopped before money moves.

Works on validation's :class:`Report` and the :class:`RawSheet` it came from, under a
:class:`Policy`. A held row stays valid but is not paid until an operator accepts it (or the
override named in its sentence is given): the returned report carries the hold as a problem of
severity ``"held"``. A refused row (only a repeated payee under ``--strict``) gets an error; a
warning only informs. Every finding carries a sentence naming the row, the column and the value,
and names its override. Money is ``Decimal`` major units.
"""

from __future__ import annotations

import contextlib
import re
import statistics
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

from batch_payouts.policy import Policy
from batch_payouts.sheets.read import RawSheet
from batch_payouts.sheets.template import EXAMPLES
from batch_payouts.validate import CopyKey, Problem, Report, RowResult, Severity

# (payee key as ``Payout.payee()``, currency) -> amounts paid to that payee in earlier batches
PayeeHistory = Mapping[tuple[str, str], Sequence[Decimal]]


class Action(StrEnum):
    REFUSE = "refused"
    HOLD = "held"
    WARN = "warning"


_SEVERITY: dict[Action, Severity] = {Action.REFUSE: "error", Action.HOLD: "held", Action.WARN: "warning"}


class Rule(StrEnum):
    EXACT_DUPLICATE = "exact_duplicate"
    REPEATED_PAYMENT = "repeated_payment"  # same payee, amount and method (held unless each has its own reference)
    SAME_PAYEE = "same_payee"  # same payee, another amount
    ROW_LIMIT = "row_limit"
    BATCH_LIMIT = "batch_limit"
    FILE_OUTLIER = "file_outlier"
    HISTORY_OUTLIER = "history_outlier"
    TEMPLATE_EXAMPLE = "template_example"
    HIDDEN_ROW = "hidden_row"


@dataclass(frozen=True)
class Guard:
    """One finding about one row. ``message`` reads after "Row N"; ``override`` says how to let it through."""

    row: int
    rule: Rule
    action: Action
    message: str
    override: str
    column: str = ""
    value: str = ""  # the cell as the file has it

    @property
    def sentence(self) -> str:
        return f"Row {self.row} {self.message}."


@dataclass
class Guarded:
    """The report with refusals added, and every finding in row order."""

    report: Report
    findings: list[Guard] = field(default_factory=list)

    def of(self, action: Action) -> list[Guard]:
        return [g for g in self.findings if g.action is action]

    def held_rows(self) -> dict[int, list[Guard]]:
        """Rows not to be paid until an operator accepts them."""
        out: dict[int, list[Guard]] = defaultdict(list)
        for g in self.of(Action.HOLD):
            out[g.row].append(g)
        return dict(out)


def money(amount: Decimal, currency: str) -> str:
    """``KES 1,000,000``: what a finance person reads."""
    return f"{currency} {amount:,}"


def _times(big: Decimal, small: Decimal) -> str:
    ratio = big / small
    exact = ratio.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"{exact:,}" if ratio >= 10 else f"{ratio.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}"


class _Check:
    def __init__(
        self,
        report: Report,
        sheet: RawSheet,
        policy: Policy,
        history: PayeeHistory,
        accepted: Collection[int],
        in_place: bool,
    ) -> None:
        self.rows = list(report.rows) if in_place else [r.copy() for r in report.rows]
        self.sheet = sheet
        self.policy = policy
        self.history = history
        self.accepted = accepted
        self.findings: list[Guard] = []
        self._payable: list[RowResult] | None = None  # forgotten when a row's validity may change

    def add(self, result: RowResult, guard: Guard) -> None:
        if guard.action is Action.HOLD and guard.row in self.accepted:
            guard = replace(guard, action=Action.WARN, message=f"{guard.message}; accepted by the operator")
        if guard.column and not guard.value:
            guard = replace(guard, value=result.cells.get(guard.column, ""))
        self.findings.append(guard)
        severity = _SEVERITY[guard.action]
        if severity == "error":
            self._payable = None
        result.problems.append(
            Problem(result.row, guard.column, guard.value, guard.message, severity, guard.rule.value)
        )

    def _drop(self, result: RowResult, said: list[Problem]) -> None:
        """Take back what validation said of a row (a guardrail says it better); a row may become
        payable again."""
        if said:
            result.problems = [p for p in result.problems if p not in said]
            self._payable = None

    def payable(self) -> list[RowResult]:
        """The rows still valid, in file order."""
        if self._payable is None:
            self._payable = [r for r in self.rows if r.valid]
        return self._payable

    # -- rows that should not be in the file ---------------------------------------------------

    def template_examples(self) -> None:
        if not self.policy.rows.refuse_template_examples:
            return
        examples = {_example_key(e): e["name"] for e in EXAMPLES}
        names = {name for name, _, _ in examples}
        for r in self.rows:
            if r.cells.get("name", "").strip().casefold() not in names:
                continue  # the name alone tells most rows apart from the examples
            if _example_key(r.cells, r.normalised_phone) in examples:
                self.add(
                    r,
                    Guard(
                        r.row,
                        Rule.TEMPLATE_EXAMPLE,
                        Action.HOLD,
                        f"is the template's example row for {r.cells.get('name', '')}: held, not "
                        "paid; delete it from the file",
                        "refuse_template_examples = false in the policy",
                        "name",
                    ),
                )

    def hidden(self) -> None:
        for r in self.rows:
            if r.row not in self.sheet.hidden_rows:
                continue
            if self.policy.rows.include_hidden:
                self.add(
                    r,
                    Guard(
                        r.row,
                        Rule.HIDDEN_ROW,
                        Action.WARN,
                        "is hidden in the spreadsheet; paid because hidden rows are included",
                        "--include-hidden",
                    ),
                )
            else:
                self.add(
                    r,
                    Guard(
                        r.row,
                        Rule.HIDDEN_ROW,
                        Action.HOLD,
                        "is hidden in the spreadsheet: held, not paid; unhide it to check it, or pass "
                        "--include-hidden to pay hidden rows",
                        "--include-hidden",
                    ),
                )

    # -- duplicates ----------------------------------------------------------------------------

    def duplicates(self) -> None:
        allow = self.policy.duplicates.allow
        first_copy: dict[CopyKey, int] = {}
        by_payee: dict[tuple[str, str], dict[Decimal, RowResult]] = {}  # each amount's first row, in file order
        for r in self.rows:
            key = r.copy_key
            if key in first_copy:
                self._exact_copy(r, first_copy[key], allow)
                continue
            first_copy[key] = r.row
            if r.payout is None:
                continue
            earlier = by_payee.setdefault((r.payout.payee(), r.payout.currency), {})
            if earlier:
                self._same_payee(r, earlier, allow)
            earlier.setdefault(r.payout.amount, r)

    def _exact_copy(self, r: RowResult, first: int, allow: bool) -> None:
        self._drop(r, [p for p in r.problems if p.message == f"exact duplicate of row {first}"])
        if allow:
            self.add(
                r,
                Guard(
                    r.row,
                    Rule.EXACT_DUPLICATE,
                    Action.WARN,
                    f"is an exact copy of row {first}; both are paid because duplicates are allowed",
                    "--allow-duplicates",
                ),
            )
        else:
            self.add(
                r,
                Guard(
                    r.row,
                    Rule.EXACT_DUPLICATE,
                    Action.HOLD,
                    f"is an exact copy of row {first}: held as a duplicate, not paid; pass "
                    "--allow-duplicates if both payments are intended",
                    "--allow-duplicates",
                ),
            )

    def _same_payee(self, r: RowResult, earlier: dict[Decimal, RowResult], allow: bool) -> None:
        """``earlier``: the first earlier row of this payee paying each amount (in file order)."""
        assert r.payout is not None
        said = [p for p in r.problems if p.message.startswith("the same payee is also paid in row ")]
        self._drop(r, said)
        strict = any(p.severity == "error" for p in said)
        pay = money(r.payout.amount, r.payout.currency)
        same = earlier.get(r.payout.amount)
        if same is not None and allow:
            self.add(
                r,
                Guard(
                    r.row,
                    Rule.REPEATED_PAYMENT,
                    Action.WARN,
                    f"pays the same recipient the same amount ({pay}) by the same method as row "
                    f"{same.row}; both are paid because duplicates are allowed",
                    "--allow-duplicates",
                    "amount",
                ),
            )
        elif same is not None and _own_references(r, same):
            assert same.payout is not None
            self.add(
                r,
                Guard(
                    r.row,
                    Rule.REPEATED_PAYMENT,
                    Action.WARN,
                    f"pays the same recipient the same amount ({pay}) by the same method as row "
                    f"{same.row}, under a reference of its own ({r.payout.reference}; row {same.row}: "
                    f"{same.payout.reference}): paid as a separate payment; check that both are intended",
                    "",
                    "reference",
                ),
            )
        elif same is not None:
            self.add(
                r,
                Guard(
                    r.row,
                    Rule.REPEATED_PAYMENT,
                    Action.HOLD,
                    f"pays the same recipient the same amount ({pay}) by the same method as row "
                    f"{same.row}: held as a likely duplicate, not paid; pass --allow-duplicates if both "
                    "payments are intended",
                    "--allow-duplicates",
                    "amount",
                ),
            )
        else:
            other = next(iter(earlier.values()))  # the payee's first row
            assert other.payout is not None
            self.add(
                r,
                Guard(
                    r.row,
                    Rule.SAME_PAYEE,
                    Action.REFUSE if strict else Action.WARN,
                    f"pays the same recipient as row {other.row} a different amount ({pay} here, "
                    f"{money(other.payout.amount, other.payout.currency)} there): check that both "
                    "payments are intended",
                    "without --strict" if strict else "",
                    "amount",
                ),
            )

    # -- amounts -------------------------------------------------------------------------------

    def row_limits(self) -> None:
        limits = self.policy.limits.max_row_amount
        for r in self.payable():
            assert r.payout is not None
            limit = limits.get(r.payout.currency)
            if limit is not None and r.payout.amount > limit:
                cur = r.payout.currency
                self.add(
                    r,
                    Guard(
                        r.row,
                        Rule.ROW_LIMIT,
                        Action.HOLD,
                        f"pays {money(r.payout.amount, cur)}, more than the {money(limit, cur)} limit per "
                        "row: held, not paid",
                        "a higher max_row_amount (policy) or --max-row-amount",
                        "amount",
                    ),
                )

    def batch_limits(self) -> None:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        counts: dict[str, int] = defaultdict(int)
        payable = self.payable()
        for r in payable:
            assert r.payout is not None
            totals[r.payout.currency] += r.payout.amount
            counts[r.payout.currency] += 1
        for r in payable:
            assert r.payout is not None
            cur = r.payout.currency
            limit = self.policy.limits.max_batch_total.get(cur)
            if limit is not None and totals[cur] > limit:
                self.add(
                    r,
                    Guard(
                        r.row,
                        Rule.BATCH_LIMIT,
                        Action.HOLD,
                        f"is one of {counts[cur]} {cur} rows totalling {money(totals[cur], cur)}, more than "
                        f"the {money(limit, cur)} limit per batch: held, not paid",
                        "a higher max_batch_total (policy) or --max-total",
                        "amount",
                    ),
                )

    def outliers(self) -> None:
        rules = self.policy.outliers
        amounts: dict[str, list[Decimal]] = defaultdict(list)
        payable = self.payable()
        for r in payable:
            assert r.payout is not None
            amounts[r.payout.currency].append(r.payout.amount)
        medians = {cur: statistics.median(found) for cur, found in amounts.items() if len(found) >= rules.min_rows}
        above = {cur: rules.file_multiple * median for cur, median in medians.items()} if rules.file_multiple else {}
        for r in payable:
            assert r.payout is not None
            cur, amount = r.payout.currency, r.payout.amount
            same_currency = amounts[cur]
            if cur in above and amount > above[cur]:
                median = medians[cur]
                self.add(
                    r,
                    Guard(
                        r.row,
                        Rule.FILE_OUTLIER,
                        Action.HOLD,
                        f"pays {money(amount, cur)}, {_times(amount, median)} times the file's typical "
                        f"{cur} amount (the median of its {len(same_currency)} {cur} rows is "
                        f"{money(median, cur)}): held until you accept it",
                        "accept the row, or outliers.file_multiple in the policy",
                        "amount",
                    ),
                )
            earlier = self.history.get((r.payout.payee(), cur), ()) if self.history else ()
            if rules.history_multiple and earlier:
                most = max(earlier)
                if amount > rules.history_multiple * most:
                    times = "1 earlier payout" if len(earlier) == 1 else f"{len(earlier)} earlier payouts"
                    self.add(
                        r,
                        Guard(
                            r.row,
                            Rule.HISTORY_OUTLIER,
                            Action.HOLD,
                            f"pays {money(amount, cur)}, {_times(amount, most)} times the most this "
                            f"recipient was paid before ({money(most, cur)}, in {times}): held until you "
                            "accept it",
                            "accept the row, or outliers.history_multiple in the policy",
                            "amount",
                        ),
                    )


def _own_references(row: RowResult, other: RowResult) -> bool:
    """Both rows carry a reference, and not the same one: the file itself says they are two
    payments (docs/obligations.md), so neither is taken for a copy of the other."""
    mine = row.payout.reference if row.payout is not None else None
    theirs = other.payout.reference if other.payout is not None else None
    return bool(mine and theirs and mine.strip() != theirs.strip())


def _example_key(cells: Mapping[str, str], phone: str = "") -> tuple[str, str, str]:
    """What makes a row the template's example: its name, its account and its amount."""
    account = phone or cells.get("phone", "")
    for column in ("till_number", "paybill_number", "account_number"):
        account = account or cells.get(column, "")
    amount = cells.get("amount", "").replace(",", "").strip()
    with contextlib.suppress(InvalidOperation):
        amount = str(Decimal(amount).normalize())
    return (cells.get("name", "").strip().casefold(), re.sub(r"\D", "", account)[-9:], amount)


def apply_guardrails(
    report: Report,
    sheet: RawSheet,
    policy: Policy,
    *,
    history: PayeeHistory | None = None,
    accepted: Collection[int] = (),
    in_place: bool = False,
) -> Guarded:
    """Every guardrail of ``policy`` on a validated file. ``history`` holds this payee's earlier
    payouts (from the ledger); ``accepted`` lists sheet rows an operator accepted, whose holds become
    warnings. The input report is not changed, unless ``in_place`` (its rows then get the findings:
    for a report nobody else holds, which spares copying 100,000 rows)."""
    check = _Check(report, sheet, policy, history or {}, accepted, in_place)
    check.template_examples()
    check.hidden()
    check.duplicates()
    check.row_limits()
    check.batch_limits()
    check.outliers()
    check.findings.sort(key=lambda g: g.row)
    return Guarded(Report(check.rows), check.findings)

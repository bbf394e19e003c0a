"""What will happen, shown before a person confirms a run: where (LIVE or SANDBOX, host, account),
from which wallet, how much per currency with the estimated fees and the total debit, and every
row that needs a look (held, a likely duplicate, an unusual amount, a name that differs or could
not be checked), one line each. Nothing is asked of the provider but the wallets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from batch_payouts.app.namecheck import Decision, Finding, NameChecks, known_names
from batch_payouts.app.payouts import Planned, RunOptions
from batch_payouts.app.session import Session
from batch_payouts.environment import Environment
from batch_payouts.fees import FeeEstimate, estimate
from batch_payouts.guardrails import Rule, money
from batch_payouts.kotani.wire import Wallet
from batch_payouts.policy import Policy
from batch_payouts.validate import Problem, Report, RowResult

__all__ = ["Attention", "Confirmation", "CurrencyLine", "FeeEstimate", "confirmation"]

# What a guardrail's finding is called in the list, by rule.
_KIND = {
    Rule.EXACT_DUPLICATE: "duplicate",
    Rule.REPEATED_PAYMENT: "duplicate",
    Rule.SAME_PAYEE: "same payee",
    Rule.ROW_LIMIT: "over the limit",
    Rule.BATCH_LIMIT: "over the limit",
    Rule.FILE_OUTLIER: "outlier",
    Rule.HISTORY_OUTLIER: "outlier",
    Rule.TEMPLATE_EXAMPLE: "example row",
    Rule.HIDDEN_ROW: "hidden row",
}


@dataclass(frozen=True)
class CurrencyLine:
    """One currency of the run: the wallet paying it (id and payout balance; None when the account
    has no such wallet), the rows and money to send, the fees and the debit."""

    currency: str
    wallet: str | None
    balance: Decimal | None
    rows: int
    fees: FeeEstimate


@dataclass(frozen=True)
class Attention:
    """A row to look at before confirming: ``status`` "held" (not paid in this run), "paid" (paid,
    with something to check) or "invalid"; ``kinds``: what it is (duplicate, outlier, name differs, …)."""

    row: int
    name: str
    amount: str
    status: str
    kinds: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Confirmation:
    """Everything the confirmation screen shows; ``to_check``: rows to send whose payee the run asks
    Kotani about as it pays them (no answer kept from an earlier look-up); ``total``: what to type."""

    environment: Environment
    currencies: list[CurrencyLine]
    attention: list[Attention]
    to_check: int
    total: str


def confirmation(
    session: Session, planned: Planned, report: Report, options: RunOptions, policy: Policy
) -> Confirmation:
    """The confirmation screen of ``planned`` (a checked file's plan) under ``options``."""
    plan = planned.plan
    wallets = _wallets(session, options.wallets)
    paid = session.ledger.fees_paid(session.environment().id, set(plan.currencies))
    by_row = {r.row: r for r in report.valid_rows}
    lines = []
    for cur in sorted(plan.currencies):
        rows = [by_row[n].payout for n in sorted(plan.rows) if n in by_row]
        sent = [(p.method.value, p.amount) for p in rows if p is not None and p.currency == cur]
        wallet = wallets.get(cur)
        lines.append(
            CurrencyLine(
                cur,
                wallet.id if wallet else None,
                wallet.balance if wallet else None,
                len(sent),
                estimate(cur, sent, paid),
            )
        )
    checks = known_names(session, report, policy, plan.rows) if options.name_check and policy.verify.enabled else None
    to_check = len(plan.rows) - len(checks.verdicts) if checks is not None else 0
    return Confirmation(
        session.environment(),
        lines,
        _attention(report, plan.rows, set(planned.accepted), checks),
        to_check,
        plan.grand_total,
    )


def _wallets(session: Session, chosen: Mapping[str, str]) -> dict[str, Wallet]:
    """The wallet paying each currency: the one chosen (``--wallet``), else the account's first."""

    found: dict[str, Wallet] = {}
    every = session.wallets()
    for wallet in every:
        found.setdefault(wallet.currency.upper(), wallet)
    for cur, wallet_id in chosen.items():
        match = next((w for w in every if w.id == wallet_id), None)
        if match is not None:
            found[cur.upper()] = match
    return found


def _attention(report: Report, sending: set[int], accepted: set[int], checks: NameChecks | None) -> list[Attention]:
    """Every row with a guardrail's finding or a name check's verdict other than a match, by row."""
    out = []
    verdicts = checks.verdicts if checks is not None else {}
    for result in report.valid_rows:
        guards = [p for p in result.problems if p.rule]
        verdict = verdicts.get(result.row)
        named = verdict is not None and (
            verdict.finding is not Finding.NAME_MATCHES or verdict.decision is not Decision.PAY
        )
        if not guards and not named:
            continue
        kinds = tuple(dict.fromkeys(_KIND[Rule(p.rule)] for p in guards))
        reasons = [_sentence(p) for p in guards]
        status = "paid" if result.row in sending else "held"
        if result.row in accepted:
            reasons.append("Accepted by you in this run: paid.")
        if verdict is not None and named:
            kinds += (verdict.note,)
            reasons.append(verdict.sentence)
            status = {Decision.HOLD: "held", Decision.REFUSE: "invalid"}.get(verdict.decision, status)
        out.append(Attention(result.row, _name(result), _amount(result), status, kinds, " ".join(reasons)))
    return out


def _sentence(problem: Problem) -> str:
    return f"Row {problem.row} {problem.message}."


def _name(result: RowResult) -> str:
    return result.payout.name if result.payout is not None else result.cells.get("name", "")


def _amount(result: RowResult) -> str:
    return money(result.payout.amount, result.payout.currency) if result.payout is not None else ""

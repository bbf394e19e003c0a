"""Confirmation of payee before a run: whose account each valid row pays, asked of the provider
(``validate --verify``, ``plan``) or read from the answers the ledger already keeps (the
confirmation screen of ``run``, which asks nothing). Verdicts are by sheet row."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from batch_payouts.app.session import Session
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.lookup import LedgerLookupCache, cached_verdicts, settings_from, verify_all
from batch_payouts.policy import Policy
from batch_payouts.ratelimit import READS_DEFAULT, Window, sustained_per_second
from batch_payouts.validate import Report
from batch_payouts.verify import Decision, Finding, Verdict, result_columns

__all__ = [
    "Decision",
    "Finding",
    "NameChecks",
    "Verdict",
    "check_names",
    "check_names_for_plan",
    "known_names",
    "report_columns",
    "time_to_ask",
]


@dataclass(frozen=True)
class NameChecks:
    """The verdict of each valid row checked, by sheet row; ``asked``: True when the provider was
    asked (else only answers kept from earlier look-ups were used)."""

    verdicts: dict[int, Verdict]
    asked: bool
    deferred: int = 0  # payees not asked now, too many for the reads allowance: the run asks as it pays
    deferred_seconds: float = 0.0  # how long asking them would have taken at the reads allowance

    def of(self, *decisions: Decision) -> list[Verdict]:
        """Verdicts with one of ``decisions``, by row."""
        return [v for _, v in sorted(self.verdicts.items()) if v.decision in decisions]

    @property
    def not_paid(self) -> set[int]:
        """Rows the check holds or refuses: not paid as things stand."""
        return {v.row for v in self.of(Decision.HOLD, Decision.REFUSE)}


def check_names(
    session: Session,
    report: Report,
    policy: Policy,
    *,
    reads_rate: tuple[Window, ...] = READS_DEFAULT,
    heard: Callable[[int, int], None] | None = None,
) -> NameChecks:
    """Ask the provider about every valid row's account (each payee once; answers kept in the ledger
    reused for the policy's ``reuse_days``), on the reads allowance ``reads_rate``. ``heard`` is
    told (rows with a verdict, valid rows) as verdicts come."""
    payouts = [r.payout for r in report.valid_rows if r.payout is not None]
    settings = settings_from(policy, session.environment().id)

    def told(done: int) -> None:
        if heard is not None:
            heard(done, len(payouts))

    async def ask(client: KotaniClient) -> dict[int, Verdict]:
        return await verify_all(
            client, session.reads_limiter(reads_rate), payouts, LedgerLookupCache(session.ledger), settings, heard=told
        )

    return NameChecks(session.call(ask) if payouts else {}, asked=True)


ASK_FIRST_WITHIN = 120.0  # seconds: plan asks about the payees first only if the reads allowance lets it in this time


def check_names_for_plan(
    session: Session,
    report: Report,
    policy: Policy,
    *,
    reads_rate: tuple[Window, ...] = READS_DEFAULT,
    within: float | None = None,
) -> NameChecks:
    """:func:`check_names` when the payees without a kept answer can be asked within ``within``
    seconds (default :data:`ASK_FIRST_WITHIN`) at the reads allowance; else the kept answers only,
    with how many payees were left for the run, which asks about each as it pays it (100,000
    payees take over an hour to ask)."""
    known = known_names(session, report, policy)
    payees, seconds = _to_ask(report, known, reads_rate)
    if seconds <= (ASK_FIRST_WITHIN if within is None else within):
        return check_names(session, report, policy, reads_rate=reads_rate)
    return NameChecks(known.verdicts, asked=False, deferred=payees, deferred_seconds=seconds)


def time_to_ask(
    session: Session, report: Report, policy: Policy, *, reads_rate: tuple[Window, ...] = READS_DEFAULT
) -> tuple[int, float]:
    """How many payees of the valid rows have no kept answer, and the seconds asking about them
    takes at the reads allowance ``reads_rate`` (told to the person before a long wait)."""
    return _to_ask(report, known_names(session, report, policy), reads_rate)


def _to_ask(report: Report, known: NameChecks, reads_rate: tuple[Window, ...]) -> tuple[int, float]:
    payees = {r.payout.payee() for r in report.valid_rows if r.payout is not None and r.row not in known.verdicts}
    return len(payees), len(payees) / sustained_per_second(reads_rate)


def known_names(session: Session, report: Report, policy: Policy, rows: set[int] | None = None) -> NameChecks:
    """The verdicts the ledger's kept answers already give (nothing is asked), for ``rows`` (None:
    every valid row); rows without one are checked by the run as it pays."""
    payouts = [r.payout for r in report.valid_rows if r.payout is not None and (rows is None or r.row in rows)]
    settings = settings_from(policy, session.environment().id)
    return NameChecks(cached_verdicts(payouts, LedgerLookupCache(session.ledger), settings), asked=False)


def report_columns(checks: NameChecks | None) -> Mapping[int, dict[str, str]]:
    """The validation report's columns of each checked row (name_check, registered_name, name_score,
    name_check_detail)."""
    return {} if checks is None else {row: result_columns(v) for row, v in checks.verdicts.items()}

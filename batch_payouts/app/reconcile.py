"""Comparing the ledger with the provider's withdrawals list for one batch; settled rows the
provider corrected since are read again and updated."""

from __future__ import annotations

from dataclasses import dataclass

from batch_payouts.app import status as facts
from batch_payouts.app.session import Session
from batch_payouts.engine.reconcile import Comparison, compare
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.ratelimit import READS_DEFAULT, Limiter

__all__ = ["Comparison", "Reconciled", "reconcile"]


@dataclass(frozen=True)
class Reconciled:
    """What the provider's list showed against the ledger; ``verdict.exit_code``: 5 a payee paid
    twice, 3 the two disagree (or a status was corrected), 0 they agree."""

    batch_id: str
    found: Comparison
    verdict: facts.Verdict


def reconcile(session: Session, batch_id: str) -> Reconciled:
    """Compare one batch of this session's environment with the provider."""
    session.batch_here(batch_id)

    async def go(client: KotaniClient) -> Comparison:
        return await compare(
            session.ledger, client, batch_id, reads=Limiter(READS_DEFAULT, holds=session.holds), clock=session.clock
        )

    found = session.call(go)
    disagree = bool(found.paid_not_recorded or found.recorded_unknown or found.corrected or found.sent_not_confirmed)
    return Reconciled(batch_id, found, facts.verdict(session.ledger, batch_id, 3 if disagree else 0))

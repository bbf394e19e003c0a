"""The names of the steps a batch goes through in the console, as recorded in the ledger's
actions, and the one question the command line asks of them: may this batch be paid yet?"""

from __future__ import annotations

from batch_payouts import errors
from batch_payouts.ledger import ACCEPTED, APPROVED, RUN_STARTED, Ledger

__all__ = [
    "ACCEPTED",
    "APPROVED",
    "DECIDING",
    "RETRY_ASKED",
    "RUN_STARTED",
    "SUBMITTED",
    "UPLOADED",
    "latest_decision",
    "require_approved",
]

UPLOADED, SUBMITTED = "uploaded", "submitted for approval"
RETRY_ASKED = "asked for a retry"
DECIDING = (UPLOADED, SUBMITTED, APPROVED, ACCEPTED)  # the steps that decide whether a batch may be paid


def latest_decision(ledger: Ledger, batch_id: str) -> str | None:
    """The latest of uploaded / submitted / approved / accepted for the batch (None: the console never saw it)."""
    latest = None
    for action in ledger.actions(batch_id):
        if action.action in DECIDING:
            latest = action.action
    return latest


def require_approved(ledger: Ledger, batch_id: str) -> None:
    """A batch made in the console is paid only once a person approved it there: refuse (WrongStage)
    while it is uploaded or awaiting approval. Batches made on the command line are not concerned."""
    latest = latest_decision(ledger, batch_id)
    if latest == UPLOADED:
        raise errors.WrongStage(
            batch_id,
            "not submitted for approval in the console",
            "it is paid only once submitted there and approved by an approver",
        )
    if latest == SUBMITTED:
        raise errors.WrongStage(
            batch_id, "awaiting approval in the console", "it is paid only once an approver approves it there"
        )

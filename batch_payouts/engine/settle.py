"""Settlement: provider statuses applied forward only, by the poller and from webhooks (the
HTTP app that receives them is engine/receiver.py).

Webhooks are evidence, not authority (docs/exactly-once.md): a verified webhook may move a row forward
to success; anything that would make a row payable again (a failure, a correction) only
schedules a fresh status read, and the read decides. Unsigned callbacks only schedule a read.
"""

from __future__ import annotations

from typing import Any

from batch_payouts import crash, errors
from batch_payouts.engine.provider_status import read_status
from batch_payouts.engine.submit import Context
from batch_payouts.kotani import webhooks, wire
from batch_payouts.ledger import Ledger, RowFields, RowRecord
from batch_payouts.model import PROVIDER_FINAL_STATES, RowState, StatusClass, classify, state_for_status


def outcome_fields(status: wire.WithdrawalStatus | dict[str, Any]) -> RowFields:
    """Ledger fields from a status read or a webhook's data (what the provider left out is kept)."""
    if isinstance(status, dict):
        status = wire.WithdrawalStatus.model_validate(status)
    fields: RowFields = {"provider_status": status.status}
    if status.transaction_cost is not None:
        fields["fee"] = status.transaction_cost
    if status.transaction_amount is not None:
        fields["recipient_amount"] = status.transaction_amount
    if status.telco_id is not None:
        fields["telco_receipt"] = status.telco_id
    if status.reference_number is not None:
        fields["reference_number"] = status.reference_number
    if status.id is not None:
        fields["provider_id"] = status.id
    failed = classify(status.status) is not StatusClass.SUCCESS
    fields["error"] = (status.error_message or status.transaction_error or None) if failed else None
    return fields


def apply_read(
    ledger: Ledger, row: RowRecord, status: wire.WithdrawalStatus, now: float, poll_interval: float, poll_max: float
) -> None:
    """Apply a fresh status read: authoritative, including corrections of terminal states."""
    target = state_for_status(status.status)
    fields = outcome_fields(status)
    if target is RowState.SUBMITTED:
        if row.state in PROVIDER_FINAL_STATES:
            ledger.update(row.batch_id, row.row, confirm=0)
            return  # an in-flight status after a terminal one is stale
        wait = min(poll_interval * (2 ** min(row.checks, 6)), poll_max)
        fields["checks"] = row.checks + 1
        fields["next_check"] = now + wait
        ledger.update(row.batch_id, row.row, expect=row.state, **fields)
        return
    fields["completed_at"] = row.completed_at if row.state is target and row.completed_at else now
    if row.state in PROVIDER_FINAL_STATES and row.state is not target:
        fields["note"] = f"corrected by the provider: {row.provider_status} became {status.status}"
    fields["confirm"] = 0
    ledger.move(row.batch_id, row.row, target, **fields)
    crash.point("after_status_commit")


async def poll_row(ctx: Context, row: RowRecord) -> None:
    """Read one submitted row's status and apply it."""
    try:
        status = await read_status(ctx.client, row, ctx.reads)
    except errors.RateLimited as exc:
        ctx.note_rate_limit(ctx.reads, exc)
        return
    except (errors.NoAnswer, errors.ServerError, errors.UnexpectedResponse):
        ctx.ledger.update(row.batch_id, row.row, expect=row.state, next_check=ctx.clock() + ctx.settings.poll_interval)
        return
    current = ctx.ledger.row(row.batch_id, row.row)
    if status is None:
        # Created, yet not visible: look again later, backing off; never resend a submitted row.
        # A confirming read keeps its flag, so that webhook-only runs read it again too.
        wait = min(ctx.settings.poll_interval * (2 ** min(current.checks, 6)), ctx.settings.poll_max_interval)
        ctx.ledger.update(
            row.batch_id, row.row, expect=current.state, checks=current.checks + 1, next_check=ctx.clock() + wait
        )
        return
    apply_read(ctx.ledger, current, status, ctx.clock(), ctx.settings.poll_interval, ctx.settings.poll_max_interval)


def apply_webhook(ledger: Ledger, event: webhooks.WebhookEvent, *, verified: bool, now: float) -> str:
    """Apply a webhook as evidence; return what was done (stored with the event)."""
    row = ledger.row_by_reference(event.reference_id)
    if row is None:
        return "ignored: not one of our references"
    if not verified:
        ledger.update(row.batch_id, row.row, next_check=now, confirm=1)
        return "read scheduled (unsigned callback)"
    target = state_for_status(event.status)
    if row.state in {RowState.SUBMITTED, RowState.UNKNOWN} and target is RowState.SUCCEEDED:
        if row.state is RowState.UNKNOWN:
            ledger.move(row.batch_id, row.row, RowState.SUBMITTED)
        fields = outcome_fields(event.data)
        fields["completed_at"] = now
        ledger.move(row.batch_id, row.row, RowState.SUCCEEDED, **fields)
        crash.point("after_status_commit")
        return "applied"
    if target is RowState.SUBMITTED and row.state is RowState.SUBMITTED:
        ledger.update(row.batch_id, row.row, expect=RowState.SUBMITTED, provider_status=event.status)
        return "applied"
    if row.state is target:
        return "no change (already applied)"
    if target is RowState.SUBMITTED and row.state in PROVIDER_FINAL_STATES:
        return "ignored: stale (the row is already final)"
    # A failure, a correction or a review status: let a fresh read decide.
    ledger.update(row.batch_id, row.row, next_check=now, confirm=1)
    return "read scheduled (confirming)"

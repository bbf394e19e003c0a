"""Compare the ledger with the provider's withdrawals list (paged) for one batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batch_payouts import errors
from batch_payouts.engine.provider_status import read_status
from batch_payouts.engine.settle import apply_read
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.ledger import Ledger, RowRecord
from batch_payouts.model import IN_FLIGHT_STATES, SENT_STATES, RowState, state_for_status
from batch_payouts.ratelimit import Limiter


@dataclass
class Comparison:
    """What the provider's list showed against the ledger; ``corrected`` rows were updated here
    from a fresh read (the provider corrects terminal statuses: a late REVERSED, say)."""

    matched: int = 0
    paid_not_recorded: list[str] = field(default_factory=list)
    sent_not_confirmed: list[str] = field(default_factory=list)  # in flight here, found at the provider
    recorded_unknown: list[str] = field(default_factory=list)
    status_differs: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PollTimes:
    """When to read an in-flight payout again after a fresh read: seconds, doubling up to a cap."""

    interval: float = 5.0
    max_interval: float = 120.0


@dataclass(frozen=True)
class Reading:
    reads: Limiter | None
    clock: Callable[[], float]
    poll: PollTimes


async def compare(
    ledger: Ledger,
    client: KotaniClient,
    batch_id: str,
    *,
    reads: Limiter | None = None,
    clock: Callable[[], float] = time.time,
    poll: PollTimes = PollTimes(),
) -> Comparison:
    """Rows paid but not recorded, rows recorded but unknown to the provider, status differences.
    Fresh reads of single payouts wait for the ``reads`` allowance."""
    prefix = f"{batch_id}-"
    provider = {  # reference -> status: what is compared (the whole items of 100,000 rows are not kept)
        item.reference_id: item.status
        async for item in client.iter_withdrawals()
        if item.reference_id.startswith(prefix)
    }
    result = Comparison()
    for number, reference, state in ledger.references(batch_id):
        status = provider.pop(reference, None)
        if status is None:
            if state in SENT_STATES:
                result.recorded_unknown.append(f"row {number} ({reference}, {state.value})")
            continue
        if state in IN_FLIGHT_STATES:  # a run stopped before it heard back: its resume records it
            result.sent_not_confirmed.append(f"row {number} ({reference}: {status} at Kotani)")
            continue
        if state not in SENT_STATES:
            result.paid_not_recorded.append(f"row {number} ({reference}: {status} at Kotani, {state.value} here)")
            continue
        if state_for_status(status) is not state and state is not RowState.SUBMITTED:
            row = ledger.row(batch_id, number)  # read whole only where the list disagrees
            await _correct(ledger, client, row, result, Reading(reads, clock, poll))
        result.matched += 1
    for reference, status in provider.items():
        result.paid_not_recorded.append(f"{reference} ({status} at Kotani, no such row here)")
    await refresh_origins(ledger, client, batch_id, reads=reads, clock=clock, poll=poll)
    return result


async def _correct(ledger: Ledger, client: KotaniClient, row: RowRecord, result: Comparison, how: Reading) -> None:
    """The list disagrees with a settled row: a fresh read of that one payout decides."""
    try:
        status = await read_status(client, row, how.reads)
    except errors.BatchPayoutsError as exc:
        result.status_differs.append(f"row {row.row}: {row.state.value} here; the fresh read failed ({exc})")
        return
    if status is None:
        result.status_differs.append(f"row {row.row}: {row.state.value} here; not found at Kotani on a fresh read")
        return
    apply_read(ledger, row, status, how.clock(), how.poll.interval, how.poll.max_interval)
    now = ledger.row(row.batch_id, row.row)
    if now.state is row.state:
        result.status_differs.append(f"row {row.row}: {status.status} at Kotani, {row.state.value} here")
    else:
        result.corrected.append(
            f"row {row.row}: {row.provider_status} became {status.status} at Kotani; "
            f"{row.state.value} -> {now.state.value} here"
        )


async def refresh_origins(
    ledger: Ledger,
    client: KotaniClient,
    batch_id: str,
    *,
    reads: Limiter | None = None,
    clock: Callable[[], float] = time.time,
    poll: PollTimes = PollTimes(),
) -> None:
    """Fresh reads of the other attempts at what this batch paid: earlier attempts of its retried
    rows, and other batches' rows of the same obligations that failed or are still in flight, so
    that a payee paid twice is seen from this batch too."""
    earlier = [
        e
        for row in ledger.retried_successes(batch_id)
        for e in ledger.earlier_attempts(row)
        if e.state is not RowState.REJECTED
    ]
    for other in [*ledger.unsettled_elsewhere(batch_id), *earlier]:
        if other.reference is None:
            continue
        try:
            status = await read_status(client, other, reads)
            if status is not None:  # "not found" decides nothing here: that row's own run reads it again
                apply_read(
                    ledger, ledger.row(other.batch_id, other.row), status, clock(), poll.interval, poll.max_interval
                )
        except errors.BatchPayoutsError:
            continue  # a failed read, or the row moved on meanwhile: its own run reads it again

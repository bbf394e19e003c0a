"""The one way the engine reads a row's status at the provider."""

from __future__ import annotations

from batch_payouts import errors
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.ledger import RowRecord
from batch_payouts.model import BankPayout
from batch_payouts.ratelimit import Limiter


async def read_status(client: KotaniClient, row: RowRecord, reads: Limiter | None) -> wire.WithdrawalStatus | None:
    """The provider's view of this row's reference (the bank or the mobile-money endpoint, by the
    row's kind); ``None`` when the provider answers "not found", for either kind. Waits for the
    ``reads`` allowance first when one is given. Other failures are raised as the client's errors."""
    if reads is not None:
        await reads.acquire()
    read = client.bank_status if isinstance(row.payout, BankPayout) else client.withdrawal_status
    try:
        return await read(str(row.reference))
    except errors.NotFound:
        return None

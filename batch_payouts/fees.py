"""What a run will cost: fees estimated from the fees this account actually paid before, and the
total the wallet will be debited under the fee arrangement those payouts show.

Kotani publishes no fee table for payouts and does not say through the API who pays the fee (the
arrangement is set per wallet: docs/provider.md, "Fees"). So an estimate is only ever made from this
account's own earlier payouts of the same currency (the same method first), labelled as an estimate,
and is "unknown" when there are none. Money is ``Decimal`` major units of one currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from batch_payouts.ledger import FeePaid
from batch_payouts.model import minor_digits


class Arrangement(StrEnum):
    """Who paid the fee in earlier payouts."""

    RECIPIENT = "recipient"  # the recipient got amount - fee; the wallet was debited the amount
    WALLET = "wallet"  # the recipient got the full amount; the wallet paid the fee (or Kotani invoiced it)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FeeEstimate:
    """The fees of ``rows`` payouts worth ``amount``: ``fee`` None when unknown; ``basis`` says on
    what the estimate rests, in words; ``debit`` what the wallet is debited at most (None: unknown)."""

    currency: str
    amount: Decimal
    fee: Decimal | None
    basis: str
    arrangement: Arrangement
    debit: Decimal | None

    @property
    def debit_sentence(self) -> str:
        """The total debit in words, with the arrangement it assumes."""
        cur = self.currency
        if self.arrangement is Arrangement.RECIPIENT:
            return (
                f"{cur} {self.amount:,} (earlier payouts took the fee out of what the recipient received, so "
                "the wallet is debited the amounts)"
            )
        if self.arrangement is Arrangement.WALLET and self.debit is not None:
            return (
                f"about {cur} {self.debit:,} (the amounts plus the estimated fees: earlier recipients received "
                f"the full amount; if Kotani invoices your fees instead, {cur} {self.amount:,})"
            )
        return f"{cur} {self.amount:,}, plus the fees if your wallet pays them (Kotani does not say which)"


def _rounded(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-minor_digits(currency)), rounding=ROUND_HALF_UP)


def arrangement_of(paid: Sequence[FeePaid]) -> Arrangement:
    """Who paid the fee, as most earlier payouts with a fee show it."""
    recipient = sum(p.received is not None and p.fee > 0 and p.received == p.amount - p.fee for p in paid)
    wallet = sum(p.received is not None and p.fee > 0 and p.received == p.amount for p in paid)
    if recipient == wallet:
        return Arrangement.UNKNOWN
    return Arrangement.RECIPIENT if recipient > wallet else Arrangement.WALLET


def estimate(currency: str, payouts: Sequence[tuple[str, Decimal]], paid: Sequence[FeePaid]) -> FeeEstimate:
    """The fees of ``payouts`` ((method, amount) pairs, all in ``currency``) at the rate this
    account paid on earlier payouts (``paid``): per method when there are earlier payouts of that
    method, else at the rate of the currency's."""
    amount = sum((a for _, a in payouts), Decimal(0))
    mine = [p for p in paid if p.currency == currency]
    if not mine:
        return FeeEstimate(
            currency,
            amount,
            None,
            f"unknown: Kotani publishes no fee table, and this account has no earlier {currency} payouts recorded here",
            Arrangement.UNKNOWN,
            None,
        )
    overall = _rate(mine) or Decimal(0)
    rates = {}
    for method in {m for m, _ in payouts}:
        own = _rate([p for p in mine if p.method == method])
        rates[method] = overall if own is None else own
    fee = _rounded(sum((a * rates[m] for m, a in payouts), Decimal(0)), currency)
    count = "1 earlier payout" if len(mine) == 1 else f"{len(mine)} earlier payouts"
    how = arrangement_of(mine)
    debit = amount + fee if how is Arrangement.WALLET else amount if how is Arrangement.RECIPIENT else None
    return FeeEstimate(
        currency, amount, fee, f"an estimate from the fees of {count} in {currency} of this account", how, debit
    )


def _rate(paid: Sequence[FeePaid]) -> Decimal | None:
    """Fees paid per unit sent, over ``paid`` (None when empty)."""
    sent = sum((p.amount for p in paid), Decimal(0))
    return sum((p.fee for p in paid), Decimal(0)) / sent if sent else None

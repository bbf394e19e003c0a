"""Domain records: payout rows per method, row states and their allowed moves, status classes.

Money is always ``Decimal`` in major units plus an ISO-4217 code, never float.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Minor digits per currency: how many decimals an amount may carry.
CURRENCY_DIGITS: dict[str, int] = {
    "KES": 0,
    "UGX": 0,
    "TZS": 0,
    "RWF": 0,
    "XOF": 0,
    "XAF": 0,
    "MWK": 0,
    "CDF": 2,
    "GHS": 2,
    "ZMW": 2,
    "ZAR": 2,
    "USD": 2,
    "NGN": 2,
    "EGP": 2,
    "SLE": 2,
    "ETB": 2,
}


def minor_digits(currency: str) -> int:
    """Decimals allowed for ``currency`` (2 when we do not know it)."""
    return CURRENCY_DIGITS.get(currency.upper(), 2)


class Method(StrEnum):
    """How a row is paid."""

    MOBILE_MONEY = "mobile_money"
    TILL = "till"
    PAYBILL = "paybill"
    BANK = "bank"


class RowState(StrEnum):
    """Where a row is in its life cycle (docs/row-lifecycle.md)."""

    INVALID = "invalid"
    BLOCKED = "blocked"  # a repeat of a payment made in an earlier batch
    READY = "ready"
    HELD = "held"  # valid, not paid until an operator accepts it (confirmation of payee)
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    UNKNOWN = "unknown"
    REJECTED = "rejected"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NEEDS_REVIEW = "needs_review"


S = RowState
ALLOWED_MOVES: dict[RowState, frozenset[RowState]] = {
    S.BLOCKED: frozenset({S.READY}),
    S.INVALID: frozenset(),
    # REJECTED: customer refused; BLOCKED: another batch pays this payee (found when claiming it,
    # or the row was taken over by a newer run of the same file before it was ever sent);
    # HELD / INVALID: the check of the payee's account (before it was ever sent).
    S.READY: frozenset({S.SUBMITTING, S.REJECTED, S.BLOCKED, S.HELD, S.INVALID}),
    # An operator accepts (READY), or a later check finds the account gone (INVALID).
    S.HELD: frozenset({S.READY, S.INVALID}),
    # NotSent goes back to READY; a provider "no" is REJECTED; anything ambiguous is UNKNOWN.
    S.SUBMITTING: frozenset({S.SUBMITTED, S.UNKNOWN, S.REJECTED, S.READY}),
    # UNKNOWN leaves only through a provider status read (found, or not found twice).
    S.UNKNOWN: frozenset({S.SUBMITTED, S.READY, S.SUCCEEDED, S.FAILED, S.NEEDS_REVIEW}),
    S.SUBMITTED: frozenset({S.SUCCEEDED, S.FAILED, S.NEEDS_REVIEW}),
    S.REJECTED: frozenset(),
    # Provider corrections: "terminal is not final" at Kotani.
    S.SUCCEEDED: frozenset({S.FAILED, S.NEEDS_REVIEW}),
    S.FAILED: frozenset({S.SUCCEEDED, S.NEEDS_REVIEW}),
    S.NEEDS_REVIEW: frozenset({S.SUCCEEDED, S.FAILED}),
}

# Named sets of states: every question about "which rows" is asked with one of these.
SENT_STATES = frozenset({S.SUBMITTED, S.SUCCEEDED, S.FAILED, S.NEEDS_REVIEW})  # the provider holds a payout
SETTLED_STATES = frozenset({S.SUCCEEDED, S.FAILED, S.NEEDS_REVIEW, S.REJECTED, S.INVALID, S.BLOCKED})  # nothing to do
IN_FLIGHT_STATES = frozenset({S.SUBMITTING, S.SUBMITTED, S.UNKNOWN})  # sent or maybe sent, outcome not known
OPEN_STATES = IN_FLIGHT_STATES | {S.READY}  # the run still has work on these
PROVIDER_FINAL_STATES = frozenset({S.SUCCEEDED, S.FAILED, S.NEEDS_REVIEW})  # final at the provider (until corrected)
RETRYABLE_STATES = frozenset({S.FAILED, S.REJECTED})  # definitively not paid: a retry may pay them
# A payment that is, or may be, or was made: holds the row's obligation against other batches.
LIVE_STATES = frozenset({S.SUBMITTING, S.SUBMITTED, S.UNKNOWN, S.SUCCEEDED, S.NEEDS_REVIEW})


def can_move(current: RowState, wanted: RowState) -> bool:
    """True when the life cycle allows ``current`` to become ``wanted``."""
    return wanted in ALLOWED_MOVES[current]


class StatusClass(StrEnum):
    """What a provider status string means for us (docs/provider.md)."""

    IN_FLIGHT = "in_flight"
    SUCCESS = "success"
    FAILURE = "failure"
    REVIEW = "review"


_SUCCESS = {"SUCCESSFUL", "TRANSACTION_RETRY_SUCCESSFUL"}
_FAILURE = {"FAILED", "DECLINED", "CANCELLED", "EXPIRED", "REVERSED", "TRANSACTION_RETRY_FAILED"}
_REVIEW = {"ERROR_OCCURRED", "REQUIRE_REVIEW", "DUPLICATE_PENDING"}


def classify(status: str) -> StatusClass:
    """Class of a provider status; unknown strings count as in flight."""
    upper = status.strip().upper()
    if upper in _SUCCESS:
        return StatusClass.SUCCESS
    if upper in _FAILURE:
        return StatusClass.FAILURE
    if upper in _REVIEW:
        return StatusClass.REVIEW
    return StatusClass.IN_FLIGHT


def state_for_status(status: str) -> RowState:
    """The row state a provider status puts a sent row in."""
    return {
        StatusClass.SUCCESS: S.SUCCEEDED,
        StatusClass.FAILURE: S.FAILED,
        StatusClass.REVIEW: S.NEEDS_REVIEW,
        StatusClass.IN_FLIGHT: S.SUBMITTED,
    }[classify(status)]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    row: int = Field(description="sheet row number (1-based, as a spreadsheet shows it)")
    name: str
    amount: Decimal = Field(description="major units of currency")
    currency: str
    country: str
    reference: str | None = None
    narration: str | None = None
    phone: str | None = Field(default=None, description="E.164")

    def payee(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class MobileMoneyPayout(_Row):
    """Mobile money to a phone; needs a provider customer."""

    method: Literal[Method.MOBILE_MONEY] = Method.MOBILE_MONEY
    phone: str
    network: str | None = None

    def payee(self) -> str:
        return f"mobile_money:{self.phone}"


class TillPayout(_Row):
    """Lipa na M-Pesa till (Kenya, KES only)."""

    method: Literal[Method.TILL] = Method.TILL
    till_number: str
    account_reference: str | None = None

    def payee(self) -> str:
        return f"till:{self.till_number}"


class PaybillPayout(_Row):
    """M-Pesa paybill (Kenya, KES only)."""

    method: Literal[Method.PAYBILL] = Method.PAYBILL
    paybill_number: str
    account_reference: str

    def payee(self) -> str:
        return f"paybill:{self.paybill_number}:{self.account_reference}"


class BankPayout(_Row):
    """Bank transfer through the v2 bank endpoint (KE and ZA)."""

    method: Literal[Method.BANK] = Method.BANK
    bank_code: str
    bank_name: str | None = None
    account_number: str

    def payee(self) -> str:
        return f"bank:{self.country}:{self.bank_code}:{self.account_number}"


Payout = Annotated[MobileMoneyPayout | TillPayout | PaybillPayout | BankPayout, Field(discriminator="method")]

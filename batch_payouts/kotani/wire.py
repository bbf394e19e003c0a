"""Request and response bodies of the Kotani v3 API as pydantic models.

Responses tolerate unknown fields and unknown status strings. Amounts are ``Decimal`` major
units; they are written as JSON numbers by :func:`encode_body` and read back exactly because
responses are parsed with ``parse_float=Decimal``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from batch_payouts.kotani.webhooks import compact_json


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _text(value: Any) -> Any:
    """Numbers the provider sometimes sends for string fields become text."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return value


def encode_body(body: _Request) -> bytes:
    """Compact JSON bytes of a request body, amounts written exactly as numbers."""
    return compact_json(body.model_dump(by_alias=True, exclude_none=True)).encode("utf-8")


class Wallet(_Response):
    id: str
    name: str = ""
    currency: str
    country: str | None = None
    status: str | None = None
    balance: Decimal = Field(description="payout balance, major units")
    deposit_balance: Decimal = Decimal(0)
    integrator: str | None = Field(default=None, description="the Kotani account the wallet belongs to")


class CreateCustomer(_Request):
    phone_number: str
    country_code: str
    network: str | None = None
    account_name: str | None = None


class Customer(_Response):
    customer_key: str = Field(validation_alias=AliasChoices("customer_key", "customerKey"))
    phone_number: str | None = None
    country_code: str | None = None
    network: str | None = None
    account_name: str | None = None


class MobileMoneyWithdrawal(_Request):
    customer_key: str
    amount: Decimal
    wallet_id: str = Field(alias="walletId")
    reference_id: str = Field(alias="referenceId")
    callback_url: str | None = Field(default=None, alias="callbackUrl")
    currency: str | None = None
    network: str | None = None


class LipaNaMpesaDetails(_Request):
    business_shortcode: str = Field(alias="businessShortcode")
    account_reference: str | None = Field(default=None, alias="accountReference")
    transaction_desc: str | None = Field(default=None, alias="transactionDesc")
    phone_number: str | None = Field(default=None, alias="phoneNumber")


class LipaNaMpesaWithdrawal(_Request):
    amount: Decimal
    wallet_id: str = Field(alias="walletId")
    reference_id: str = Field(alias="referenceId")
    callback_url: str | None = Field(default=None, alias="callbackUrl")
    details: LipaNaMpesaDetails = Field(alias="lipaNaMpesaDetails")


class PaybillDetails(_Request):
    paybill_number: str = Field(alias="paybillNumber")
    account_number: str = Field(alias="accountNumber")
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    remarks: str | None = None


class PaybillWithdrawal(_Request):
    amount: Decimal
    wallet_id: str = Field(alias="walletId")
    reference_id: str = Field(alias="referenceId")
    callback_url: str | None = Field(default=None, alias="callbackUrl")
    details: PaybillDetails = Field(alias="paybillDetails")


class BankDetails(_Request):
    name: str
    bank_code: str = Field(alias="bankCode")
    account_number: str = Field(alias="accountNumber")
    country: str
    bank_name: str | None = Field(default=None, alias="bankName")
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    address: str | None = None


class BankWithdrawal(_Request):
    details: BankDetails = Field(alias="bankDetails")
    currency: str
    amount: Decimal
    reference_id: str = Field(alias="referenceId")
    callback_url: str | None = Field(default=None, alias="callbackUrl")


WithdrawalRequest = MobileMoneyWithdrawal | LipaNaMpesaWithdrawal | PaybillWithdrawal | BankWithdrawal


class WithdrawalCreated(_Response):
    id: str | None = None
    reference_id: str | None = Field(default=None, alias="referenceId")
    reference_number: str | None = Field(default=None, alias="referenceNumber")
    message: str | None = None

    _num = field_validator("reference_number", mode="before")(_text)


class WithdrawalStatus(_Response):
    id: str | None = None
    reference_id: str | None = Field(default=None, alias="referenceId")
    reference_number: str | None = Field(default=None, alias="referenceNumber")
    status: str
    amount: Decimal | None = None
    currency: str | None = None
    transaction_cost: Decimal | None = Field(default=None, alias="transactionCost")
    transaction_amount: Decimal | None = Field(default=None, alias="transactionAmount")
    telco_id: str | None = Field(default=None, alias="telcoId")
    error_message: str | None = Field(default=None, alias="errorMessage")
    transaction_error: str | None = Field(default=None, alias="transactionError")
    completed_at: str | None = None

    _num = field_validator("reference_number", mode="before")(_text)


class Bank(_Response):
    code: str
    name: str
    currency: str

    _num = field_validator("code", mode="before")(_text)


class Country(_Response):
    country_code: str = Field(alias="countryCode")
    name: str
    currency: str
    requires_network: bool = Field(default=False, alias="requiresNetwork")
    supported_networks: list[str] = Field(default_factory=list, alias="supportedNetworks")


class Networks(_Response):
    country_code: str = Field(alias="countryCode")
    networks: list[str]
    is_required: bool = Field(alias="isRequired")


class TransactionItem(_Response):
    id: str
    reference_id: str
    reference_number: str | None = None
    status: str
    amount: Decimal
    transaction_amount: Decimal | None = None
    transaction_cost: Decimal | None = None
    currency: str | None = None
    telco_id: str | None = None

    _num = field_validator("reference_number", mode="before")(_text)


class PageMeta(_Response):
    total: int
    page: int
    per_page: int
    total_pages: int


class TransactionsPage(_Response):
    data: list[TransactionItem]
    meta: PageMeta


# -- account validation (confirmation of payee) ---------------------------------------------------

AccountType = Literal["mobile_money", "paybill", "till"]


class ValidateMobileMoney(_Request):
    """Body of ``POST /api/v3/customer/validate/mobile-money``: a phone, a till or a paybill account,
    with the name the spreadsheet expects on it."""

    account_type: AccountType = Field(default="mobile_money", alias="accountType")
    phone_number: str | None = Field(default=None, alias="phoneNumber")
    short_code: str | None = Field(default=None, alias="shortCode")
    account_reference: str | None = Field(default=None, alias="accountReference")
    country_code: str | None = Field(default=None, alias="countryCode")
    network: str | None = None
    account_name: str | None = Field(default=None, alias="accountName")


class ValidateBank(_Request):
    """Body of ``POST /api/v3/customer/validate/bank``."""

    account_number: str = Field(alias="accountNumber")
    bank_code: str = Field(alias="bankCode")
    country_code: str = Field(alias="countryCode")
    account_name: str | None = Field(default=None, alias="accountName")


class NameMatch(_Response):
    """The provider's comparison of the name we sent with the name on the account (scores 0-100)."""

    provided: str
    score: float
    matched: bool
    threshold: float
    masked: bool


class AccountValidation(_Response):
    """What the provider knows about an account before any money moves."""

    is_valid: bool = Field(alias="isValid")
    is_supported: bool = Field(alias="isSupported")
    account_type: str = Field(alias="accountType")
    country_code: str | None = Field(default=None, alias="countryCode")
    currency: str | None = None
    network: str | None = None
    bank_name: str | None = Field(default=None, alias="bankName")
    message: str | None = None
    account_name: str | None = Field(default=None, alias="accountName")
    name_lookup_status: str | None = Field(default=None, alias="nameLookupStatus")
    name_lookup_reason: str | None = Field(default=None, alias="nameLookupReason")
    match_score: float | None = Field(default=None, alias="matchScore")
    account_status: str | None = Field(default=None, alias="accountStatus")
    name_match: NameMatch | None = Field(default=None, alias="nameMatch")

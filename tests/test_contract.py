"""Client requests and sandbox responses both hold to the provider's OpenAPI file.

The client and the sandbox share no code for the wire format, so each is checked against the
file on its own: a mistake would have to be made twice, the same way, to pass.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from batch_payouts import errors
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.sandbox import RunningSandbox
from tests import contract
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real transport, keeping a copy of every exchange."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[str, str, Any, int, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        content = await response.aread()
        sent = json.loads(request.content, parse_float=Decimal) if request.content else None
        got = json.loads(content, parse_float=Decimal) if content else None
        self.exchanges.append((request.method, request.url.path, sent, response.status_code, got))
        return httpx.Response(response.status_code, headers=response.headers, content=content)


async def exercise_every_endpoint(client: KotaniClient, sandbox: RunningSandbox) -> None:
    wallets = {w.currency: w for w in await client.list_wallets()}
    await client.get_wallet(wallets["KES"].id)
    customer = await client.create_customer(
        wire.CreateCustomer(phone_number="+254712345678", country_code="KE", network="MPESA", account_name="Wanjiru K")
    )
    await client.get_customer(customer.customer_key)
    await client.get_customer_by_phone("+254712345678")
    kes = wallets["KES"].id
    bodies: list[wire.WithdrawalRequest] = [
        wire.MobileMoneyWithdrawal(
            customer_key=customer.customer_key,
            amount=Decimal(1500),
            walletId=kes,
            referenceId="c-1-1",
            callbackUrl="http://127.0.0.1:9/cb",
            network="MPESA",
        ),
        wire.LipaNaMpesaWithdrawal(
            amount=Decimal(200),
            walletId=kes,
            referenceId="c-2-1",
            lipaNaMpesaDetails=wire.LipaNaMpesaDetails(
                businessShortcode="174379",
                accountReference="INV-1",
                transactionDesc="rent",
                phoneNumber="+254712345678",
            ),
        ),
        wire.PaybillWithdrawal(
            amount=Decimal(300),
            walletId=kes,
            referenceId="c-3-1",
            paybillDetails=wire.PaybillDetails(paybillNumber="888880", accountNumber="ACC-9", remarks="fees"),
        ),
        wire.BankWithdrawal(
            currency="KES",
            amount=Decimal(4000),
            referenceId="c-4-1",
            bankDetails=wire.BankDetails(
                name="Otieno O",
                bankCode="68",
                accountNumber="0123456789",
                country="KE",
                phoneNumber="+254712345678",
                address="Nairobi",
            ),
        ),
        wire.BankWithdrawal(
            currency="ZAR",
            amount=Decimal("99.95"),
            referenceId="c-5-1",
            bankDetails=wire.BankDetails(
                name="T Nkosi", bankCode="250655", accountNumber="62000000001", country="ZA", bankName="FNB"
            ),
        ),
    ]
    for body in bodies:
        await client.withdraw(body)
    sandbox.state.clock.advance(10)
    await client.withdrawal_status("c-1-1")
    await client.bank_status("c-4-1")
    await client.list_withdrawals(page=1, per_page=2)
    await client.list_banks("KES")
    await client.list_countries()
    await client.networks("GH")
    with pytest.raises(errors.DuplicateReference):
        await client.withdraw(bodies[0])
    with pytest.raises(errors.NotFound):
        await client.withdrawal_status("never-sent")
    sandbox.state.knobs.legacy_banks_only = True
    await client.list_banks("ZAR")
    sandbox.state.knobs.p_429 = 1.0
    with pytest.raises(errors.RateLimited):
        await client.withdrawal_status("c-1-1")


@pytest.fixture
async def exchanges(sandbox: RunningSandbox) -> list[tuple[str, str, Any, int, Any]]:
    transport = RecordingTransport()
    now = [0.0]

    async def wait(seconds: float) -> None:  # the 429 holds pass in injected time, not real time
        now[0] += seconds

    async with KotaniClient(
        sandbox.base_url, ApiKey(API_KEY), transport=transport, clock=lambda: now[0], sleep=wait
    ) as client:
        await exercise_every_endpoint(client, sandbox)
    return transport.exchanges


REQUIRED_TEMPLATES = {
    ("GET", "/api/v3/wallet/fiat"),
    ("GET", "/api/v3/wallet/fiat/{id}"),
    ("POST", "/api/v3/customer/mobile-money"),
    ("GET", "/api/v3/customer/mobile-money/{customer_key}"),
    ("GET", "/api/v3/customer/mobile-money/phone/{phone_number}"),
    ("POST", "/api/v3/withdraw/mobile-money"),
    ("POST", "/api/v3/withdraw/lipa-na-mpesa"),
    ("POST", "/api/v3/withdraw/paybill"),
    ("POST", "/api/v3/withdraw/v2/bank"),
    ("GET", "/api/v3/withdraw/status/{reference_id}"),
    ("GET", "/api/v3/withdraw/v2/bank/status/{referenceId}"),
    ("GET", "/api/v3/withdraw/transactions"),
    ("GET", "/api/v3/customer/support/banks"),
    ("GET", "/api/v3/withdraw/v2/bank/supporting-banks/{currency}"),
    ("GET", "/api/v3/customer/support/countries"),
    ("GET", "/api/v3/customer/support/networks/{countryCode}"),
}


async def test_every_client_request_matches_the_request_schema(exchanges: list[Any]) -> None:
    seen = {(m, contract.check_request(m, p, sent)) for m, p, sent, _, _ in exchanges}
    assert seen >= REQUIRED_TEMPLATES


async def test_every_sandbox_response_matches_the_documented_schema(exchanges: list[Any]) -> None:
    checked = set()
    for method, path, _, status, got in exchanges:
        if contract.check_response(method, path, status, got):
            checked.add((method, contract.operation(method, path)[0], status))
    assert {(m, t) for m, t, s in checked if s < 300} >= REQUIRED_TEMPLATES
    assert ("GET", "/api/v3/withdraw/status/{reference_id}", 404) in checked
    assert ("POST", "/api/v3/withdraw/mobile-money", 400) in checked


async def test_assumption_creates_answer_201_with_the_body_documented_for_200(exchanges: list[Any]) -> None:
    creates = [(s, got) for m, p, _, s, got in exchanges if m == "POST" and s < 300]
    assert creates and all(s == 201 for s, _ in creates)
    assert contract.response_schema("POST", "/api/v3/withdraw/mobile-money", 201) == contract.response_schema(
        "POST", "/api/v3/withdraw/mobile-money", 200
    )


async def test_assumption_bank_status_has_the_withdrawal_status_shape(exchanges: list[Any]) -> None:
    bank = [got for m, p, _, s, got in exchanges if "/v2/bank/status/" in p]
    assert bank and contract.check_response("GET", "/api/v3/withdraw/v2/bank/status/c-4-1", 200, bank[0])


async def test_assumption_supporting_banks_has_the_banks_list_shape(exchanges: list[Any]) -> None:
    legacy = [got for m, p, _, s, got in exchanges if "supporting-banks" in p]
    assert legacy and contract.check_response("GET", "/api/v3/withdraw/v2/bank/supporting-banks/ZAR", 200, legacy[0])


def test_assumption_bank_codes_are_strings_or_numbers_not_objects() -> None:
    raw = json.loads(contract.SPEC_PATH.read_text())
    assert raw["components"]["schemas"]["BankResponseDto"]["properties"]["code"]["type"] == "object"
    contract.check_response(
        "GET",
        "/api/v3/customer/support/banks",
        200,
        {"success": True, "message": "ok", "data": [{"code": 68, "name": "E", "currency": "KES"}]},
    )


async def test_assumption_the_withdrawals_list_may_sit_in_the_usual_envelope(exchanges: list[Any]) -> None:
    listing = [got for m, p, _, s, got in exchanges if p.endswith("/withdraw/transactions")]
    assert listing and {"success", "data", "meta"} <= set(listing[0])


async def test_assumption_429_uses_error_shape_a_which_the_file_does_not_document(exchanges: list[Any]) -> None:
    limited = [got for m, p, _, s, got in exchanges if s == 429]
    assert limited and limited[0]["statusCode"] == 429 and "retryAfter" in limited[0]["data"]
    assert not contract.check_response("GET", "/api/v3/withdraw/status/x", 429, limited[0])


def test_a_missing_openapi_file_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(contract, "SPEC_PATH", tmp_path / "openapi.json")
    contract.spec.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match=r"tests/data/kotani-openapi.json in the repository"):
            contract.spec()
    finally:
        monkeypatch.undo()
        contract.spec.cache_clear()


def test_a_response_that_breaks_the_schema_is_caught() -> None:
    with pytest.raises(AssertionError, match="breaks the provider's schema"):
        contract.check_response(
            "GET", "/api/v3/withdraw/status/x", 200, {"success": True, "data": {"id": "x", "status": "PENDING"}}
        )


def test_a_request_that_breaks_the_schema_is_caught() -> None:
    with pytest.raises(AssertionError, match=r"'12' is not of type 'number' at \['amount'\]"):
        contract.check_request(
            "POST", "/api/v3/withdraw/mobile-money", {"customer_key": "x", "amount": "12", "walletId": "w"}
        )


# -- account validation (confirmation of payee) ---------------------------------------------------

VALIDATE_MOBILE = "/api/v3/customer/validate/mobile-money"
VALIDATE_BANK = "/api/v3/customer/validate/bank"


@pytest.fixture
async def validate_exchanges(sandbox: RunningSandbox) -> list[tuple[str, str, Any, int, Any]]:
    """Every documented sandbox test account through the client, plus refused requests."""
    from batch_payouts.sandbox import seed

    transport = RecordingTransport()
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), transport=transport) as client:
        for ending in seed.PHONE_LOOKUPS:
            await client.validate_mobile_money(
                wire.ValidateMobileMoney(phone_number=f"+254{ending}", network="MPESA", account_name="Jane Doe")
            )
        await client.validate_mobile_money(wire.ValidateMobileMoney(phone_number="+256772000111"))
        await client.validate_mobile_money(wire.ValidateMobileMoney(phone_number="0712 345"))
        for code in [*seed.SHORTCODE_LOOKUPS, "174379"]:
            await client.validate_mobile_money(
                wire.ValidateMobileMoney(
                    account_type="till", short_code=code, country_code="KE", account_name="Acme Trading Ltd"
                )
            )
            await client.validate_mobile_money(
                wire.ValidateMobileMoney(
                    account_type="paybill", short_code=code, account_reference="ACC-1", account_name="Acme"
                )
            )
        for number in [*seed.BANK_LOOKUPS, "0123456789"]:
            await client.validate_bank(
                wire.ValidateBank(account_number=number, bank_code="68", country_code="KE", account_name="Jane Doe")
            )
        await client.validate_bank(
            wire.ValidateBank(account_number="62000000001", bank_code="250655", country_code="ZA")
        )
        await client.validate_bank(wire.ValidateBank(account_number="62000000001", bank_code="999", country_code="ZA"))
        await client.validate_bank(wire.ValidateBank(account_number="1", bank_code="68", country_code="UG"))
        with pytest.raises(errors.ValidationFailed):
            await client.validate_mobile_money(wire.ValidateMobileMoney(account_type="till"))
    return transport.exchanges


async def test_validate_requests_and_answers_match_the_providers_file(
    validate_exchanges: list[tuple[str, str, Any, int, Any]],
) -> None:
    statuses, checked = set(), set()
    for method, path, sent, status, got in validate_exchanges:
        contract.check_request(method, path, sent)
        assert contract.check_response(method, path, status, got)
        checked.add((path, status))
        data = got.get("data") or {}
        statuses.add((data.get("nameLookupStatus"), data.get("accountStatus"), "nameMatch" in data))
    assert checked >= {(VALIDATE_MOBILE, 200), (VALIDATE_BANK, 200), (VALIDATE_MOBILE, 400)}
    seen = {s for s, _, _ in statuses}
    assert seen >= {"MATCHED", "NOT_FOUND", "ACCOUNT_UNAVAILABLE", "UNSUPPORTED", "TIMEOUT", "ERROR", "NOT_ENABLED"}
    assert {a for _, a, _ in statuses} >= {"ACTIVE", "FROZEN", "RESTRICTED"}
    assert ("MATCHED", "ACTIVE", False) in statuses  # a name without a score: the corridor scores nothing


async def test_every_sandbox_name_match_carries_the_providers_score_and_threshold(
    validate_exchanges: list[tuple[str, str, Any, int, Any]],
) -> None:
    matches = [
        got["data"]["nameMatch"]
        for _, _, _, status, got in validate_exchanges
        if status == 200 and "nameMatch" in got["data"]
    ]
    assert matches and all(set(m) == {"provided", "score", "matched", "threshold", "masked"} for m in matches)
    assert {m["masked"] for m in matches} == {True, False} and {m["matched"] for m in matches} == {True, False}
    assert all(m["matched"] == (m["score"] >= m["threshold"]) for m in matches)


async def test_lookup_reasons_accompany_every_outcome_but_matched_and_not_enabled(
    validate_exchanges: list[tuple[str, str, Any, int, Any]],
) -> None:
    for *_, got in validate_exchanges:
        data = got.get("data") or {}
        outcome = data.get("nameLookupStatus")
        if outcome is not None:
            assert ("nameLookupReason" in data) == (outcome not in ("MATCHED", "NOT_ENABLED")), data

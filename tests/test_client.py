"""The client speaks the provider's API and maps every failure onto the error tree."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from batch_payouts import errors
from batch_payouts.catalog import EXPECTED_COUNTRIES, Catalog
from batch_payouts.kotani import wire
from batch_payouts.kotani.client import ApiKey, KotaniClient, Timeouts, error_for
from batch_payouts.ratelimit import Holds
from batch_payouts.sandbox import RunningSandbox
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio


# -- error mapping: one function, both error shapes --------------------------------------

SHAPE_A = {"statusCode": 429, "message": "Too Many Requests", "error": "Too Many Requests", "data": {"retryAfter": 7}}


def test_429_takes_its_wait_from_the_body() -> None:
    exc = error_for(429, SHAPE_A, {})
    assert isinstance(exc, errors.RateLimited) and exc.retry_after == 7


def test_429_falls_back_to_retry_after_header_seconds_and_date() -> None:
    assert error_for(429, {"message": "x"}, {"retry-after": "12"}).retry_after == 12  # type: ignore[attr-defined]
    dated = error_for(429, {}, {"retry-after": "Sat, 28 Nov 2026 10:00:30 GMT"}, now=lambda: 1795860000.0)
    assert dated.retry_after == 30  # type: ignore[attr-defined]
    assert error_for(429, {}, {}).retry_after is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"success": False, "message": "Invalid API Key", "data": {}}, errors.AuthenticationError),
        (403, {"success": False, "message": "Forbidden", "data": {"bannedUntil": "x"}}, errors.PermissionDenied),
        (404, {"success": False, "message": "Reference Id not found"}, errors.NotFound),
        (400, {"success": False, "message": "Insufficient funds in fiat wallet"}, errors.InsufficientFunds),
        (400, {"statusCode": 400, "message": "Duplicate referenceId"}, errors.DuplicateReference),
        (400, {"success": False, "message": "Transaction Denied", "error_code": 400}, errors.BadRequest),
        (500, {"statusCode": 500, "message": "Internal server error"}, errors.ServerError),
        (503, None, errors.ServerError),
    ],
)
def test_statuses_map_onto_the_tree(status: int, body: object, kind: type) -> None:
    exc = error_for(status, body, {})
    assert type(exc) is kind and exc.status == status


def test_validation_failures_carry_each_field_message() -> None:
    body = {
        "success": False,
        "message": "Validation failed: 2 errors",
        "data": {"errors": ["amount must be positive", "walletId is required"]},
    }
    exc = error_for(400, body, {})
    assert isinstance(exc, errors.ValidationFailed)
    assert exc.errors == ["amount must be positive", "walletId is required"]


def test_nest_style_list_messages_are_joined() -> None:
    exc = error_for(400, {"statusCode": 400, "message": ["a is bad", "b is bad"]}, {})
    assert str(exc) == "Kotani answered 400: a is bad; b is bad"


# -- the key never shows ----------------------------------------------------------------------


def test_the_api_key_is_never_in_a_repr() -> None:
    key = ApiKey(API_KEY)
    assert API_KEY not in repr(key) and API_KEY not in str(key)
    assert API_KEY not in repr(KotaniClient("http://127.0.0.1:1", key))


async def test_a_wrong_key_is_an_authentication_error_without_the_key(sandbox: RunningSandbox) -> None:
    async with KotaniClient(sandbox.base_url, ApiKey("wrong-key-123")) as c:
        with pytest.raises(errors.AuthenticationError) as info:
            await c.list_wallets()
    assert str(info.value) == "Kotani answered 401: Invalid API Key (GET /api/v3/wallet/fiat)"
    assert "wrong-key-123" not in repr(info.value)


# -- endpoints ------------------------------------------------------------------------------


async def test_wallets_customers_and_a_payout_round_trip(client: KotaniClient) -> None:
    wallets = {w.currency: w for w in await client.list_wallets()}
    kes = await client.get_wallet(wallets["KES"].id)
    customer = await client.create_customer(
        wire.CreateCustomer(phone_number="+254712345678", country_code="KE", network="MPESA")
    )
    assert (await client.get_customer(customer.customer_key)).phone_number == "+254712345678"
    assert (await client.get_customer_by_phone("+254712345678")).customer_key == customer.customer_key
    created = await client.withdraw(
        wire.MobileMoneyWithdrawal(
            customer_key=customer.customer_key, amount=Decimal(1500), walletId=kes.id, referenceId="t-1-1"
        )
    )
    status = await client.withdrawal_status("t-1-1")
    assert (created.reference_id, status.status, status.amount) == ("t-1-1", "PENDING", Decimal(1500))
    assert (await client.get_wallet(kes.id)).balance == kes.balance - 1500


async def test_each_withdrawal_kind_has_its_endpoint(client: KotaniClient) -> None:
    kes = next(w for w in await client.list_wallets() if w.currency == "KES")
    till = wire.LipaNaMpesaWithdrawal(
        amount=Decimal(100),
        walletId=kes.id,
        referenceId="k-1",
        lipaNaMpesaDetails=wire.LipaNaMpesaDetails(businessShortcode="174379"),
    )
    paybill = wire.PaybillWithdrawal(
        amount=Decimal(100),
        walletId=kes.id,
        referenceId="k-2",
        paybillDetails=wire.PaybillDetails(paybillNumber="888880", accountNumber="A1"),
    )
    bank = wire.BankWithdrawal(
        currency="ZAR",
        amount=Decimal("250.75"),
        referenceId="k-3",
        bankDetails=wire.BankDetails(
            name="T Nkosi", bankCode="250655", accountNumber="62000000001", country="ZA", bankName="FNB"
        ),
    )
    for body in (till, paybill, bank):
        assert (await client.withdraw(body)).reference_id == body.reference_id
    assert (await client.bank_status("k-3")).amount == Decimal("250.75")


async def test_unknown_reference_is_not_found(client: KotaniClient) -> None:
    with pytest.raises(errors.NotFound, match="Reference Id not found"):
        await client.withdrawal_status("nope")


async def test_catalog_endpoints(client: KotaniClient) -> None:
    assert {c.country_code for c in await client.list_countries()} >= {"KE", "UG", "GH", "TZ", "ZA"}
    gh = await client.networks("GH")
    assert gh.is_required and "MTN" in gh.networks
    assert any(b.name == "Equity Bank" for b in await client.list_banks("KES"))


async def test_banks_fall_back_to_the_deprecated_endpoint(client: KotaniClient, sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.legacy_banks_only = True
    assert any(b.name == "Capitec" for b in await client.list_banks("ZAR"))


async def test_withdrawals_list_pages_through_everything(client: KotaniClient) -> None:
    kes = next(w for w in await client.list_wallets() if w.currency == "KES")
    for i in range(5):
        await client.withdraw(
            wire.LipaNaMpesaWithdrawal(
                amount=Decimal(10),
                walletId=kes.id,
                referenceId=f"p-{i}",
                lipaNaMpesaDetails=wire.LipaNaMpesaDetails(businessShortcode="174379"),
            )
        )
    seen = [item.reference_id async for item in client.iter_withdrawals(per_page=2)]
    assert seen == [f"p-{i}" for i in range(5)]


# -- no answer: kept apart from every HTTP error ------------------------------------------


async def test_connection_refused_is_not_sent() -> None:
    with socket.socket() as bound_not_listening:  # held for the whole test: connections to it are refused
        bound_not_listening.bind(("127.0.0.1", 0))
        async with KotaniClient(f"http://127.0.0.1:{bound_not_listening.getsockname()[1]}", ApiKey("k")) as c:
            with pytest.raises(errors.NotSent):
                await c.list_wallets()


async def _payout_with(sandbox: RunningSandbox, attempt: float) -> None:
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), timeouts=Timeouts(attempt=attempt)) as c:
        kes = next(w for w in await c.list_wallets() if w.currency == "KES")
        await c.withdraw(
            wire.LipaNaMpesaWithdrawal(
                amount=Decimal(10),
                walletId=kes.id,
                referenceId="amb-1",
                lipaNaMpesaDetails=wire.LipaNaMpesaDetails(businessShortcode="174379"),
            )
        )


@pytest.mark.parametrize(
    "knob", [{"p_hang_after": 1.0, "hang_seconds": 5.0}, {"p_drop_after": 1.0}, {"drip_delay": 0.05}]
)
async def test_an_answer_lost_after_recording_is_ambiguous(sandbox: RunningSandbox, knob: dict[str, float]) -> None:
    for name, value in knob.items():
        setattr(sandbox.state.knobs, name, value)
    with pytest.raises(errors.AnswerLost):
        await _payout_with(sandbox, attempt=0.5)
    assert [p["reference"] for p in sandbox.state.ledger()["payouts"]] == ["amb-1"]


async def test_a_5xx_after_recording_is_a_server_error_and_the_payout_exists(sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_5xx_after = 1.0
    with pytest.raises(errors.ServerError):
        await _payout_with(sandbox, attempt=5)
    assert len(sandbox.state.ledger()["payouts"]) == 1


async def test_a_success_with_an_unreadable_body_is_an_unexpected_response(sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_garbled_after = 1.0
    with pytest.raises(errors.UnexpectedResponse, match="unreadable answer"):
        await _payout_with(sandbox, attempt=5)
    assert len(sandbox.state.ledger()["payouts"]) == 1, "the payout exists: only a status read can tell"


# -- 429: a hold on the whole class, reads sent again after the wait ------------------------------


class FakeTime:
    """An injected clock and sleep for the client; sleeping moves the sandbox's clock as much."""

    def __init__(self, sandbox: RunningSandbox, *, then: object = None) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.sandbox = sandbox
        self.then = then

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.sandbox.state.clock.advance(seconds)
        if callable(self.then):
            self.then()


async def test_a_read_refused_with_429_is_sent_again_after_the_advertised_wait(sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_429, sandbox.state.knobs.retry_after = 1.0, 7
    fake = FakeTime(sandbox, then=lambda: setattr(sandbox.state.knobs, "p_429", 0.0))
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), clock=fake.clock, sleep=fake.sleep) as client:
        wallets = await client.list_wallets()
    assert wallets and fake.slept == [7.0]
    assert sandbox.state.early_requests == {"money": 0, "reads": 0}


async def test_a_429_holds_later_requests_of_its_class_only(sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_429, sandbox.state.knobs.retry_after = 1.0, 30
    fake = FakeTime(sandbox)
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), clock=fake.clock, sleep=fake.sleep) as client:
        body = wire.CreateCustomer(phone_number="+254712000901", country_code="KE")
        with pytest.raises(errors.RateLimited):
            await client.create_customer(body)  # a POST is never sent again by the client
        assert client.held_for("reads") == 30.0 and client.held_for("money") == 0.0
        sandbox.state.knobs.p_429 = 0.0
        await client.create_customer(body)
    assert fake.slept == [30.0], "the next read waited out the hold before it was sent"
    assert sandbox.state.early_requests == {"money": 0, "reads": 0}


async def test_a_hold_longer_than_the_limit_is_raised_without_sending(sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_429, sandbox.state.knobs.retry_after = 1.0, 86_400
    fake = FakeTime(sandbox)
    async with KotaniClient(
        sandbox.base_url,
        ApiKey(API_KEY),
        clock=fake.clock,
        sleep=fake.sleep,
        holds=Holds(clock=fake.clock, max_hold=900),
    ) as client:
        with pytest.raises(errors.RateLimited) as first:
            await client.list_wallets()
        sent = sandbox.state.rate_limited["reads"]
        with pytest.raises(errors.RateLimited) as second:
            await client.list_wallets()
    assert first.value.retry_after == 86_400 and second.value.retry_after == 86_400
    assert sandbox.state.rate_limited["reads"] == sent == 1, "the second call never reached the provider"
    assert fake.slept == []


# -- account validation: POSTs that only read ----------------------------------------------------


async def test_a_validate_lookup_refused_with_429_is_sent_again_after_the_wait(sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_429, sandbox.state.knobs.retry_after = 1.0, 4
    fake = FakeTime(sandbox, then=lambda: setattr(sandbox.state.knobs, "p_429", 0.0))
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), clock=fake.clock, sleep=fake.sleep) as client:
        answer = await client.validate_bank(
            wire.ValidateBank(account_number="1000000002", bank_code="68", country_code="KE", account_name="Jane Doe")
        )
        assert client.held_for("money") == 0.0, "a look-up is a read: payouts are not held by its 429"
    assert (answer.account_name, answer.bank_name, fake.slept) == ("SAMUEL KIPRONO KOECH", "Equity Bank", [4.0])
    assert sandbox.state.rate_limited == {"money": 0, "reads": 1}


async def test_a_validate_request_the_provider_refuses_is_a_validation_failure(client: KotaniClient) -> None:
    with pytest.raises(errors.ValidationFailed) as refused:
        await client.validate_bank(wire.ValidateBank(account_number="", bank_code="", country_code="KE"))
    assert refused.value.errors == ["accountNumber is required", "bankCode is required"]


async def test_a_validate_answer_reads_every_documented_field(client: KotaniClient) -> None:
    answer = await client.validate_mobile_money(
        wire.ValidateMobileMoney(phone_number="+254700000007", account_name="Jane Doe")
    )
    assert (
        answer.is_valid,
        answer.is_supported,
        answer.account_type,
        answer.name_lookup_status,
        answer.account_status,
        answer.account_name,
        answer.match_score,
    ) == (True, True, "mobile_money", "MATCHED", "ACTIVE", "J*** M*** D**", 76)
    assert answer.name_match == wire.NameMatch(provided="Jane Doe", score=76, matched=True, threshold=70, masked=True)


# -- the catalog: read in parallel, and a 429 still holds every read not yet sent --------------------


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting how many requests are on their way at once."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.in_flight = self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_the_catalog_is_read_in_parallel_and_a_429_holds_the_reads_not_yet_sent(sandbox: RunningSandbox) -> None:
    from batch_payouts.catalog_reads import fetch_catalog

    state = sandbox.state
    state.knobs.latency = 0.05  # network time: reads sent together are on their way together
    original = state.check_rate
    checked: list[str] = []

    def fourth_read_refused(klass: str, arrived: tuple[float, int] | None = None) -> None:
        checked.append(klass)
        if len(checked) == 4:
            raise state._too_many(7, klass)
        original(klass, arrived)  # type: ignore[arg-type]

    state.check_rate = fourth_read_refused  # type: ignore[method-assign,assignment]
    fake, transport = FakeTime(sandbox), CountingTransport()
    async with KotaniClient(
        sandbox.base_url, ApiKey(API_KEY), clock=fake.clock, sleep=fake.sleep, transport=transport
    ) as client:
        catalog = await fetch_catalog(client, parallel=4)
    state.check_rate = original  # type: ignore[method-assign]
    assert set(catalog.countries) >= {"KE", "UG", "GH", "ZA"} and catalog.banks["KES"] and catalog.banks["ZAR"]
    assert transport.most == 4, "four reads at a time, the countries list among the first"
    assert 7.0 in fake.slept, "the reads not yet sent waited out the advertised 7 s"
    # A read that passed the hold before the 429 reached the client cannot be called back: at most
    # the other three of the wave; every read started after the client heard the 429 waited.
    assert state.early_requests["money"] == 0 and state.early_requests["reads"] <= 3
    assert len(checked) == 1 + 12 + 2 + 1, "every read once, and the refused one once more"


class Rewriting(httpx.AsyncBaseTransport):
    """The real transport (every request reaches the sandbox), but ``rewrite`` may replace the
    answer: it gets the request, the answer's JSON and how many requests were sent on that path
    so far, and returns (status, JSON) or None to keep the answer. Records every path, in order."""

    def __init__(self, rewrite: Callable[[httpx.Request, Any, int], tuple[int, Any] | None]) -> None:
        self.inner, self.rewrite, self.paths = httpx.AsyncHTTPTransport(), rewrite, list[str]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread())
        changed = self.rewrite(request, body, self.paths.count(request.url.path))
        return response if changed is None else httpx.Response(changed[0], json=changed[1])

    async def aclose(self) -> None:
        await self.inner.aclose()

    def networks_read(self) -> list[str]:
        return [p.rsplit("/", 1)[1] for p in self.paths if "/support/networks/" in p]


COUNTRIES_PATH = "/api/v3/customer/support/countries"


async def read_catalog(sandbox: RunningSandbox, transport: Rewriting, expected: tuple[str, ...]) -> Catalog:
    from batch_payouts.catalog_reads import fetch_catalog

    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), transport=transport) as client:
        return await fetch_catalog(client, expected=expected)


def seeded_networks() -> dict[str, tuple[str, ...]]:
    from batch_payouts.sandbox.seed import COUNTRIES

    return {c.code: c.networks for c in COUNTRIES}


async def test_networks_read_ahead_of_the_countries_list_are_only_kept_for_listed_countries(
    sandbox: RunningSandbox,
) -> None:
    """The networks of the countries the tool expects go out with the countries list; the list
    decides: a listed country not expected (or whose read ahead failed) is read after it, and what
    was read of a country it does not name is dropped."""

    def first_ug_answer_lost(request: httpx.Request, body: Any, sent: int) -> tuple[int, Any] | None:
        if request.url.path.endswith("/networks/UG") and sent == 1:
            return 500, {"success": False, "message": "lost on the way"}
        return None

    transport = Rewriting(first_ug_answer_lost)
    catalog = await read_catalog(sandbox, transport, ("KE", "UG", "XX"))
    networks = transport.networks_read()
    assert transport.paths[0] == COUNTRIES_PATH and networks[:3] == ["KE", "UG", "XX"]
    assert sorted(networks[3:]) == sorted(seeded_networks().keys() - {"KE"}), "UG again, the rest once"
    assert {code: info.networks for code, info in catalog.countries.items()} == seeded_networks(), "nothing of XX"


async def test_a_country_read_ahead_but_not_listed_is_dropped_and_codes_match_whatever_their_case(
    sandbox: RunningSandbox,
) -> None:
    """The provider lists its countries in lower case and leaves Tanzania out: every listed country
    is still read once (read ahead as "KE", listed as "ke"), and Tanzania's networks, read ahead
    successfully, are not in the catalog."""

    def lower_case_without_tz(request: httpx.Request, body: Any, sent: int) -> tuple[int, Any] | None:
        if request.url.path != COUNTRIES_PATH:
            return None
        listed = [{**c, "countryCode": c["countryCode"].lower()} for c in body["data"] if c["countryCode"] != "TZ"]
        return 200, {**body, "data": listed}

    transport = Rewriting(lower_case_without_tz)
    catalog = await read_catalog(sandbox, transport, EXPECTED_COUNTRIES)
    assert sorted(transport.networks_read()) == sorted(EXPECTED_COUNTRIES), "each expected country once"
    assert {code: info.networks for code, info in catalog.countries.items()} == {
        code: networks for code, networks in seeded_networks().items() if code != "TZ"
    }


async def test_a_listed_country_whose_networks_are_not_found_keeps_the_lists_networks(
    sandbox: RunningSandbox,
) -> None:
    """A 404 on a country's networks read ahead means what it meant after the list: the networks
    the countries list gives are used, and the country is not read again."""

    def ug_not_found(request: httpx.Request, body: Any, sent: int) -> tuple[int, Any] | None:
        if request.url.path.endswith("/networks/UG"):
            return 404, {"success": False, "message": "Country not supported"}
        if request.url.path == COUNTRIES_PATH:  # the list names other networks than the endpoint
            return 200, {**body, "data": [{**c, "supportedNetworks": ["LISTED"]} for c in body["data"]]}
        return None

    transport = Rewriting(ug_not_found)
    catalog = await read_catalog(sandbox, transport, EXPECTED_COUNTRIES)
    assert transport.networks_read().count("UG") == 1
    assert catalog.countries["UG"].networks == ("LISTED",) and catalog.countries["KE"].networks == ("MPESA", "AIRTEL")


async def test_a_country_whose_networks_cannot_be_read_after_the_list_fails_the_catalog(
    sandbox: RunningSandbox,
) -> None:
    """Read ahead or not, a listed country's networks must be read: when the read after the list
    fails too, the catalog fails with that error (nothing is guessed)."""

    def ug_always_fails(request: httpx.Request, body: Any, sent: int) -> tuple[int, Any] | None:
        if request.url.path.endswith("/networks/UG"):
            return 500, {"success": False, "message": "down"}
        return None

    transport = Rewriting(ug_always_fails)
    with pytest.raises(errors.ServerError):
        await read_catalog(sandbox, transport, EXPECTED_COUNTRIES)
    assert transport.networks_read().count("UG") == 2


async def test_the_pool_keeps_as_many_connections_as_it_may_open(sandbox: RunningSandbox) -> None:
    import anyio

    sandbox.state.knobs.latency = 0.02
    async with (
        KotaniClient(sandbox.base_url, ApiKey(API_KEY), max_connections=6) as client,
        anyio.create_task_group() as group,
    ):
        for _ in range(24):  # four times the pool: requests wait for a slot, none fails
            group.start_soon(client.list_wallets)
    assert client.max_connections == 6
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        KotaniClient(sandbox.base_url, ApiKey(API_KEY), max_connections=0)


async def test_the_catalog_and_the_wallets_are_read_together(sandbox: RunningSandbox) -> None:
    from batch_payouts.catalog_reads import fetch_catalog_and_wallets

    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY)) as client:
        catalog, wallets = await fetch_catalog_and_wallets(client)
        again = await client.list_wallets()
    assert catalog.country("Kenya") is not None
    assert wallets == again and "KES" in {w.currency.upper() for w in wallets}


async def test_reads_that_fail_together_surface_as_one_of_our_errors() -> None:
    import anyio

    from batch_payouts.concurrency import first_error

    async def refused() -> None:
        raise errors.NoAnswer("timed out", method="GET", path="/api/v3/customer/support/networks/KE")

    with pytest.raises(errors.NoAnswer), first_error():
        async with anyio.create_task_group() as group:
            group.start_soon(refused)
            group.start_soon(refused)


async def test_an_app_asked_in_process_answers_its_own_crash_as_a_500_not_an_exception() -> None:
    """The built-in sandbox asked in process (``validate``) fails as a served one would: the
    client sees a 500 and says so in its own words; no traceback of the app reaches the user."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from batch_payouts.kotani.client import in_process

    async def broken(request: object) -> None:
        raise RuntimeError("the app itself failed")

    app = Starlette(routes=[Route("/api/v3/wallet/fiat", broken)])
    async with KotaniClient("http://in-process.invalid", ApiKey(API_KEY), transport=in_process(app)) as client:
        with pytest.raises(errors.ServerError) as caught:
            await client.list_wallets()
    assert caught.value.status == 500


def test_a_plain_http_address_gets_a_tls_context_that_trusts_no_certificate() -> None:
    """TLS is never used towards a plain-HTTP address (a local sandbox), so its pools skip reading
    the system's certificates; the context they get would refuse every certificate if it were."""
    import ssl

    from batch_payouts.kotani.client import _tls_context

    local, real = _tls_context("http://127.0.0.1:8000"), _tls_context("https://api.kotanipay.com")
    assert local.verify_mode == real.verify_mode == ssl.CERT_REQUIRED and local.check_hostname
    assert local.cert_store_stats()["x509_ca"] == 0 and real.cert_store_stats()["x509_ca"] > 0


async def test_a_closed_client_makes_no_new_connection_pool(sandbox: RunningSandbox) -> None:
    """Pools are made when first needed; once the client is closed none is made (a request then
    fails as httpx's own closed client fails it), so no pool is left open behind a closed client."""
    client = KotaniClient(sandbox.base_url, ApiKey(API_KEY))
    await client.aclose()  # before any pool was made
    with pytest.raises(RuntimeError, match="client has been closed"):
        await client.list_wallets()

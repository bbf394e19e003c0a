"""The sandbox behaves like the provider, faults included (docs/provider.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batch_payouts.kotani import webhooks
from batch_payouts.sandbox import RunningSandbox, SandboxClock, SandboxState, serve_in_thread
from batch_payouts.sandbox.app import Sandbox
from tests.conftest import API_KEY, WEBHOOK_SECRET
from tests.support import serve_app


def body(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def wallet(http: httpx.Client, currency: str) -> dict[str, Any]:
    return next(w for w in body(http.get("/api/v3/wallet/fiat"))["data"] if w["currency"] == currency)


def customer(http: httpx.Client, phone: str, country: str = "KE", **extra: str) -> str:
    r = http.post("/api/v3/customer/mobile-money", json={"phone_number": phone, "country_code": country, **extra})
    assert r.status_code == 201, r.text
    return str(body(r)["data"]["customer_key"])


def pay(
    http: httpx.Client,
    phone: str,
    ref: str,
    amount: int = 1000,
    currency: str = "KES",
    country: str = "KE",
    **extra: Any,
) -> httpx.Response:
    key = customer(http, phone, country)
    return http.post(
        "/api/v3/withdraw/mobile-money",
        json={
            "customer_key": key,
            "amount": amount,
            "walletId": wallet(http, currency)["id"],
            "referenceId": ref,
            **extra,
        },
    )


def status(http: httpx.Client, ref: str) -> httpx.Response:
    return http.get(f"/api/v3/withdraw/status/{ref}")


# -- auth, wallets, customers -------------------------------------------------------------


def test_requests_without_the_bearer_key_get_401(sandbox: RunningSandbox) -> None:
    assert httpx.get(sandbox.base_url + "/api/v3/wallet/fiat").json()["message"] == "Unauthorized"
    bad = httpx.get(sandbox.base_url + "/api/v3/wallet/fiat", headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()["message"]) == (401, "Invalid API Key")


def test_a_wallet_per_currency(http: httpx.Client) -> None:
    currencies = {w["currency"] for w in body(http.get("/api/v3/wallet/fiat"))["data"]}
    assert currencies >= {"KES", "UGX", "GHS", "TZS", "RWF", "ZMW", "XOF", "XAF", "ZAR", "USD"}
    assert body(http.get("/api/v3/wallet/fiat/currency/UGX", params={"country": "UG"}))["data"]["currency"] == "UGX"
    assert http.get("/api/v3/wallet/fiat/nope").json()["message"] == "Wallet Not Found"


def test_customers_create_get_and_get_by_phone(http: httpx.Client) -> None:
    key = customer(http, "+256772000111", "UG", network="MTN")
    assert body(http.get(f"/api/v3/customer/mobile-money/{key}"))["data"]["network"] == "MTN"
    assert body(http.get("/api/v3/customer/mobile-money/phone/%2B256772000111"))["data"]["customer_key"] == key
    assert customer(http, "+256772000111", "UG") == key, "an existing phone returns the existing customer"
    assert http.get("/api/v3/customer/mobile-money/phone/%2B256772999999").status_code == 404


def test_a_network_is_required_where_the_country_says_so(http: httpx.Client) -> None:
    r = http.post("/api/v3/customer/mobile-money", json={"phone_number": "+233241234567", "country_code": "GH"})
    assert r.status_code == 400 and body(r)["data"]["errors"] == ["network is required for GH"]


@pytest.mark.parametrize(("mode", "expect"), [("reject", 400), ("duplicate", 201)])
def test_existing_customer_modes(http: httpx.Client, sandbox: RunningSandbox, mode: str, expect: int) -> None:
    first = customer(http, "+254711000001")
    sandbox.state.knobs.existing_customer_mode = mode  # type: ignore[assignment]
    r = http.post("/api/v3/customer/mobile-money", json={"phone_number": "+254711000001", "country_code": "KE"})
    assert r.status_code == expect
    if expect == 201:
        assert body(r)["data"]["customer_key"] != first


# -- withdrawals, balances, fees ------------------------------------------------------------


def test_a_payout_debits_the_wallet_and_a_failure_credits_it_back(http: httpx.Client, clock: SandboxClock) -> None:
    before = wallet(http, "KES")["balance"]
    assert pay(http, "+254700000011", "f-1", 1500).status_code == 201
    assert wallet(http, "KES")["balance"] == before - 1500
    clock.advance(10)
    data = body(status(http, "f-1"))["data"]
    assert (data["status"], data["errorMessage"]) == ("FAILED", "Recipient account not found")
    assert wallet(http, "KES")["balance"] == before


@pytest.mark.parametrize(
    ("ending", "final"),
    [
        ("700000001", "SUCCESSFUL"),
        ("700000002", "SUCCESSFUL"),
        ("700000010", "FAILED"),
        ("700000011", "FAILED"),
        ("700000012", "FAILED"),
        ("700000013", "CANCELLED"),
        ("712345678", "SUCCESSFUL"),
    ],
)
def test_documented_phone_endings_force_outcomes_through_intermediate_statuses(
    http: httpx.Client, clock: SandboxClock, sandbox: RunningSandbox, ending: str, final: str
) -> None:
    pay(http, "+254" + ending, "o-1")
    seen = []
    for _ in range(6):
        seen.append(body(status(http, "o-1"))["data"]["status"])
        clock.advance(1)
    assert seen[0] == "PENDING" and "IN_PROGRESS" in seen and seen[-1] == final


def test_never_settles_and_slow_success(http: httpx.Client, clock: SandboxClock) -> None:
    pay(http, "+254700000020", "n-1")
    pay(http, "+254700000021", "s-1")
    clock.advance(30)
    assert body(status(http, "n-1"))["data"]["status"] == "IN_PROGRESS"
    assert body(status(http, "s-1"))["data"]["status"] == "IN_PROGRESS"
    clock.advance(31)
    assert body(status(http, "s-1"))["data"]["status"] == "SUCCESSFUL"
    clock.advance(86400)
    assert body(status(http, "n-1"))["data"]["status"] == "EXPIRED"


@pytest.mark.parametrize(
    ("mode", "debit", "received"), [("recipient", 500, 495), ("integrator", 505, 500), ("invoiced", 500, 500)]
)
def test_fee_arrangements(http: httpx.Client, sandbox: RunningSandbox, mode: str, debit: int, received: int) -> None:
    sandbox.state.knobs.fee_mode = mode  # type: ignore[assignment]
    before = wallet(http, "KES")["balance"]
    pay(http, "+254712000001", "fee-1", 500)
    data = body(status(http, "fee-1"))["data"]
    assert (data["transactionCost"], data["transactionAmount"]) == (5, received)
    assert wallet(http, "KES")["balance"] == before - debit


def test_status_by_provider_id_and_404_otherwise(http: httpx.Client) -> None:
    provider_id = body(pay(http, "+254712000002", "id-1"))["data"]["id"]
    assert body(status(http, provider_id))["data"]["referenceId"] == "id-1"
    r = status(http, "missing")
    assert (r.status_code, r.json()["message"]) == (404, "Reference Id not found")


def test_a_reused_reference_is_refused_and_debits_nothing(http: httpx.Client) -> None:
    pay(http, "+254712000003", "dup-1")
    before = wallet(http, "KES")["balance"]
    again = pay(http, "+254712000003", "dup-1")
    assert (again.status_code, again.json()["message"]) == (400, "Duplicate referenceId")
    assert wallet(http, "KES")["balance"] == before


def test_parked_and_silently_accepted_duplicates(http: httpx.Client, sandbox: RunningSandbox) -> None:
    pay(http, "+254712000004", "dup-2")
    sandbox.state.knobs.duplicate_mode = "park"
    assert pay(http, "+254712000004", "dup-2").status_code == 201
    sandbox.state.knobs.duplicate_mode = "accept"
    before = wallet(http, "KES")["balance"]
    assert pay(http, "+254712000004", "dup-2").status_code == 201
    assert wallet(http, "KES")["balance"] == before - 1000
    ledger = body(http.get("/__sandbox__/ledger"))["data"]
    assert [(p["reference"], p["executed"]) for p in ledger["payouts"]] == [
        ("dup-2", True),
        ("dup-2", False),
        ("dup-2", True),
    ]


def test_till_and_paybill_only_for_kes(http: httpx.Client) -> None:
    till = {
        "amount": 100,
        "walletId": wallet(http, "UGX")["id"],
        "referenceId": "t-1",
        "lipaNaMpesaDetails": {"businessShortcode": "174379"},
    }
    r = http.post("/api/v3/withdraw/lipa-na-mpesa", json=till)
    assert (r.status_code, r.json()["message"]) == (400, "Lipa na M-Pesa/Paybill only available for Kenya (KES)")
    till["walletId"] = wallet(http, "KES")["id"]
    assert http.post("/api/v3/withdraw/lipa-na-mpesa", json=till).status_code == 201
    paybill = {
        "amount": 100,
        "walletId": wallet(http, "KES")["id"],
        "referenceId": "pb-1",
        "paybillDetails": {"paybillNumber": "888880"},
    }
    r = http.post("/api/v3/withdraw/paybill", json=paybill)
    assert body(r)["data"]["errors"] == ["paybillDetails.accountNumber is required"]


@pytest.mark.parametrize(
    ("details", "extra", "message"),
    [
        (
            {"bankCode": "250655", "country": "ZA"},
            {"referenceId": "b-1"},
            "Validation failed: bankDetails.bankName is required for ZA",
        ),
        (
            {"bankCode": "999", "country": "KE"},
            {"referenceId": "b-2", "currency": "KES"},
            "Bank code 999 is not supported for KES",
        ),
        ({"bankCode": "68", "country": "KE"}, {"currency": "KES"}, "Validation failed: referenceId is required"),
        (
            {"bankCode": "68", "country": "UG"},
            {"referenceId": "b-3", "currency": "KES"},
            "Bank payouts are only available for Kenya and South Africa",
        ),
    ],
)
def test_bank_v2_rules(http: httpx.Client, details: dict[str, str], extra: dict[str, str], message: str) -> None:
    payload = {
        "currency": "ZAR",
        "amount": 100,
        **extra,
        "bankDetails": {"name": "A B", "accountNumber": "123456789", **details},
    }
    r = http.post("/api/v3/withdraw/v2/bank", json=payload)
    assert (r.status_code, r.json()["message"]) == (400, message)


def test_mobile_money_needs_an_existing_customer_and_wallet(http: httpx.Client) -> None:
    r = http.post(
        "/api/v3/withdraw/mobile-money",
        json={"customer_key": "nope", "amount": 1, "walletId": wallet(http, "KES")["id"]},
    )
    assert (r.status_code, r.json()["message"]) == (404, "Customer not found.")
    key = customer(http, "+254712000005")
    r = http.post("/api/v3/withdraw/mobile-money", json={"customer_key": key, "amount": 1, "walletId": "x"})
    assert (r.status_code, r.json()["message"]) == (404, "Wallet Not Found")


def test_a_balance_that_runs_out(clock: SandboxClock) -> None:
    state = SandboxState(api_key=API_KEY, clock=clock, balances={"KES": Decimal(2500)})
    with (
        serve_in_thread(state, deliver_webhooks=False) as running,
        httpx.Client(base_url=running.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        assert [pay(http, f"+25471200001{i}", f"bal-{i}").status_code for i in range(3)] == [201, 201, 400]
        assert pay(http, "+254712000019", "bal-9").json()["message"] == "Insufficient funds in fiat wallet"
        assert wallet(http, "KES")["balance"] == 500


# -- faults ---------------------------------------------------------------------------------


def test_5xx_before_recording_records_nothing(http: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.p_5xx_before = 1.0
    assert pay(http, "+254712000006", "x-1").status_code == 500
    assert sandbox.state.ledger()["payouts"] == []


def test_every_kth_payout_can_fail_after_recording(http: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.fault_every = 2
    codes = [pay(http, f"+25471200070{i}", f"fe-{i}").status_code for i in range(4)]
    assert codes == [201, 502, 201, 502]
    assert len(sandbox.state.ledger()["payouts"]) == 4


def test_visibility_delay_hides_a_new_payout_from_status(
    http: httpx.Client, sandbox: RunningSandbox, clock: SandboxClock
) -> None:
    sandbox.state.knobs.visibility_delay = 3
    pay(http, "+254712000007", "v-1")
    assert status(http, "v-1").status_code == 404
    clock.advance(3)
    assert status(http, "v-1").status_code == 200


def test_the_withdrawals_list_pages_visible_payouts_in_creation_order(
    http: httpx.Client, sandbox: RunningSandbox, clock: SandboxClock
) -> None:
    sandbox.state.knobs.visibility_delay = 3
    for i in range(5):
        pay(http, f"+25471200008{i}", f"list-{i}")
        clock.advance(1)

    def page(number: int, **filters: str) -> dict[str, Any]:
        got = body(http.get("/api/v3/withdraw/transactions", params={"page": number, "per_page": 2, **filters}))
        return {"refs": [item["reference_id"] for item in got["data"]], **got["meta"]}

    # at 5 s the payouts made at 0, 1 and 2 s are visible, a delay of 3 s after each was made
    assert page(1) == {"refs": ["list-0", "list-1"], "total": 3, "page": 1, "per_page": 2, "total_pages": 2}
    assert page(2)["refs"] == ["list-2"] and page(3)["refs"] == []
    assert page(1, currency="KES")["refs"] == ["list-0", "list-1"] and page(1, currency="KES")["total"] == 3
    clock.advance(2)
    assert page(3) == {"refs": ["list-4"], "total": 5, "page": 3, "per_page": 2, "total_pages": 3}


def test_the_sandbox_clock_never_goes_back(http: httpx.Client, clock: SandboxClock) -> None:
    for step in (-1, float("nan")):
        with pytest.raises(ValueError, match="only goes forward"):
            clock.advance(step)
    refused = http.post("/__sandbox__/clock", json={"seconds": -5})
    assert refused.status_code == 400 and "only goes forward" in refused.json()["message"]


def test_scripted_histories_and_unknown_statuses(
    http: httpx.Client, sandbox: RunningSandbox, clock: SandboxClock
) -> None:
    sandbox.state.knobs.scripts = {
        "sc-1": [(1, "CANCELLED"), (5, "SUCCESSFUL")],
        "sc-2": [(1, "SUCCESSFUL"), (9, "REVERSED")],
        "sc-3": [(1, "WEIRD_NEW_STATUS")],
    }
    for i in (1, 2, 3):
        pay(http, f"+25471200010{i}", f"sc-{i}")
    clock.advance(2)
    assert [body(status(http, f"sc-{i}"))["data"]["status"] for i in (1, 2, 3)] == [
        "CANCELLED",
        "SUCCESSFUL",
        "WEIRD_NEW_STATUS",
    ]
    clock.advance(8)
    assert [body(status(http, f"sc-{i}"))["data"]["status"] for i in (1, 2)] == ["SUCCESSFUL", "REVERSED"]


def test_money_movement_is_rate_limited_with_retry_after(
    http: httpx.Client, sandbox: RunningSandbox, clock: SandboxClock
) -> None:
    sandbox.state.knobs.money_burst = 3
    codes = [pay(http, f"+25471200020{i}", f"rl-{i}").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    limited = pay(http, "+254712000209", "rl-9")
    assert limited.json()["data"]["retryAfter"] == 5 and limited.json()["statusCode"] == 429
    clock.advance(5)
    assert pay(http, "+254712000209", "rl-9").status_code == 201


def test_reads_have_their_own_limit(http: httpx.Client, sandbox: RunningSandbox) -> None:
    sandbox.state.knobs.reads_per_5s = 2
    assert [http.get("/api/v3/wallet/fiat").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("style", ["header_seconds", "header_date", "none"])
def test_429_variants(http: httpx.Client, sandbox: RunningSandbox, style: str) -> None:
    sandbox.state.knobs.rate_limit_style = style  # type: ignore[assignment]
    sandbox.state.knobs.p_429 = 1.0
    r = http.get("/api/v3/wallet/fiat")
    assert r.status_code == 429 and "retryAfter" not in r.json()["data"]
    assert ("retry-after" in r.headers) == (style != "none")


def test_knobs_and_clock_over_http(http: httpx.Client, sandbox: RunningSandbox) -> None:
    assert http.post("/__sandbox__/knobs", json={"p_429": 0.5}).status_code == 200
    assert sandbox.state.knobs.p_429 == 0.5
    refused = http.post("/__sandbox__/knobs", json={"p_nonsense": 1})
    assert refused.status_code == 400 and "p_nonsense" in refused.json()["message"]
    now = body(http.post("/__sandbox__/clock", json={"seconds": 42}))["data"]["now"]
    assert now == 42


# -- webhooks -------------------------------------------------------------------------------


class Receiver:
    """A real HTTP endpoint that records what the sandbox delivers."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.refuse_first = refuse_first

        async def hook(request: Request) -> Response:
            self.got.append((dict(request.headers), await request.body()))
            return Response(status_code=500 if len(self.got) <= self.refuse_first else 200)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def _deliver_all(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient() as http:
        await sandbox.deliver_once(http)


@pytest.mark.anyio
async def test_signed_webhooks_verify_and_direct_callbacks_are_bare(clock: SandboxClock) -> None:
    receiver = Receiver()
    with serve_app(receiver.app) as hook_url:
        state = SandboxState(
            api_key=API_KEY, clock=clock, webhook_secret=WEBHOOK_SECRET, webhook_url=hook_url + "/hook"
        )
        sandbox = Sandbox(state, deliver_webhooks=False)
        with (
            serve_in_thread(state, deliver_webhooks=False) as running,
            httpx.Client(base_url=running.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        ):
            pay(http, "+254712000301", "wh-1")
            clock.advance(10)
            await _deliver_all(sandbox)
        headers, raw = receiver.got[-1]
        assert webhooks.verify(raw, headers["x-kotani-signature"], [WEBHOOK_SECRET])
        assert webhooks.parse_event(raw).status == "SUCCESSFUL"
        assert [webhooks.parse_event(b).status for _, b in receiver.got] == ["INITIATED", "IN_PROGRESS", "SUCCESSFUL"]

        receiver.got.clear()
        direct = SandboxState(api_key=API_KEY, clock=clock)
        with (
            serve_in_thread(direct, deliver_webhooks=False) as running,
            httpx.Client(base_url=running.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        ):
            pay(http, "+254712000302", "wh-2", callbackUrl=hook_url + "/hook")
            clock.advance(10)
            await _deliver_all(Sandbox(direct, deliver_webhooks=False))
        headers, raw = receiver.got[-1]
        assert "x-kotani-signature" not in headers and json.loads(raw)["referenceId"] == "wh-2"


@pytest.mark.anyio
async def test_webhooks_are_redelivered_after_a_refusal(clock: SandboxClock) -> None:
    receiver = Receiver(refuse_first=1)
    with serve_app(receiver.app) as hook_url:
        state = SandboxState(
            api_key=API_KEY, clock=clock, webhook_secret=WEBHOOK_SECRET, webhook_url=hook_url + "/hook"
        )
        state.knobs.scripts = {"rd-1": [(1, "SUCCESSFUL")]}
        sandbox = Sandbox(state, deliver_webhooks=False)
        with (
            serve_in_thread(state, deliver_webhooks=False) as running,
            httpx.Client(base_url=running.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        ):
            pay(http, "+254712000303", "rd-1")
        clock.advance(2)
        await _deliver_all(sandbox)
        assert len(receiver.got) == 1
        clock.advance(1)
        await _deliver_all(sandbox)
        assert len(receiver.got) == 2
        assert [w["outcome"] for w in state.ledger()["webhooks"]] == ["refused", "delivered"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("knob", "check"),
    [
        ({"webhook_drop": 1.0}, lambda got, st: got == [] and st.ledger()["webhooks"][0]["outcome"] == "dropped"),
        ({"webhook_duplicate": 1.0}, lambda got, st: len(got) == 2 and got[0][1] == got[1][1]),
        ({"webhook_unsigned": True}, lambda got, st: "x-kotani-signature" not in got[0][0]),
        (
            {"webhook_rotated_secret": "rotated"},
            lambda got, st: (
                webhooks.verify(got[0][1], got[0][0]["x-kotani-signature"], ["rotated"])
                and not webhooks.verify(got[0][1], got[0][0]["x-kotani-signature"], [WEBHOOK_SECRET])
            ),
        ),
    ],
    ids=["dropped", "duplicated", "unsigned", "rotated"],
)
async def test_webhook_fault_knobs(clock: SandboxClock, knob: dict[str, Any], check: Any) -> None:
    receiver = Receiver()
    with serve_app(receiver.app) as hook_url:
        state = SandboxState(
            api_key=API_KEY, clock=clock, webhook_secret=WEBHOOK_SECRET, webhook_url=hook_url + "/hook"
        )
        state.knobs = state.knobs.model_copy(update={"scripts": {"k-1": [(1, "SUCCESSFUL")]}, **knob})
        with (
            serve_in_thread(state, deliver_webhooks=False) as running,
            httpx.Client(base_url=running.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        ):
            pay(http, "+254712000304", "k-1")
        clock.advance(5)
        await _deliver_all(Sandbox(state, deliver_webhooks=False))
        assert check(receiver.got, state)


def test_the_sandbox_ledger_records_payouts_posts_and_wallets(http: httpx.Client) -> None:
    pay(http, "+254712000401", "l-1", 700)
    http.post(
        "/api/v3/withdraw/mobile-money",
        json={"customer_key": "nope", "amount": 1, "walletId": wallet(http, "KES")["id"]},
    )
    ledger = body(http.get("/__sandbox__/ledger"))["data"]
    assert [(p["reference"], p["payee"], p["amount"], p["debit"]) for p in ledger["payouts"]] == [
        ("l-1", "+254712000401", 700, 700)
    ]
    assert [p["outcome"] for p in ledger["posts"]] == ["recorded", "404 Customer not found."]


def test_every_name_lookup_test_account_is_documented() -> None:
    from batch_payouts.sandbox import seed
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "sandbox-numbers.md").read_text()
    for number in [*seed.PHONE_LOOKUPS, *seed.BANK_LOOKUPS, *seed.SHORTCODE_LOOKUPS]:
        assert f"| `{number}` |" in doc, number


def test_a_request_is_early_only_when_sent_after_the_429_could_be_read_and_before_its_wait() -> None:
    from batch_payouts.sandbox import Knobs as _Knobs
    from batch_payouts.sandbox import SandboxClock as _Clock
    from batch_payouts.sandbox import SandboxState as _State

    state = _State(api_key="k", clock=_Clock(speed=1), knobs=_Knobs(p_429=1.0, retry_after=10, rate_limits=False))
    on_its_way = state.arrival()  # reached the sandbox before the 429 below was answered
    with pytest.raises(Exception, match="Too Many"):
        state.check_rate("reads", state.arrival())
    state.knobs.p_429 = 0.0
    state.check_rate("reads", on_its_way)
    state.check_rate("reads", state.arrival())  # sent at once, while the answer could not be read yet
    assert state.early_requests["reads"] == 0
    state.clock.advance(0.1)
    state.check_rate("reads", state.arrival())  # sent after the answer was read, inside the advertised wait
    assert state.early_requests == {"money": 0, "reads": 1}
    state.check_rate("money", state.arrival())  # another class is not held
    state.clock.advance(11)
    state.check_rate("reads", state.arrival())  # after the wait
    assert state.early_requests == {"money": 0, "reads": 1}

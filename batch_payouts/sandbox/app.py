"""The sandbox's HTTP face: a starlette app with the provider's paths, envelopes and faults.

Paths under ``/__sandbox__/`` do not exist at the real API: they expose the sandbox's own
ledger and let tests and demos turn knobs and move the clock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from batch_payouts.kotani.webhooks import compact_json
from batch_payouts.sandbox import seed
from batch_payouts.sandbox.state import Knobs, Refusal, SandboxState

Fault = Literal["drop", "hang", "drip"] | None
Handler = Callable[[Request], Awaitable[Any]]


class SandboxResponse(Response):
    """A JSON response that can misbehave: drop mid-body, hang, or drip byte by byte."""

    def __init__(
        self,
        status: int,
        payload: Any,
        *,
        headers: dict[str, str] | None = None,
        fault: Fault = None,
        hang_seconds: float = 0.0,
        drip_delay: float = 0.0,
    ) -> None:
        super().__init__(compact_json(payload).encode("utf-8"), status, headers, media_type="application/json")
        self.fault = fault
        self.hang_seconds = hang_seconds
        self.drip_delay = drip_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fault is None:
            await super().__call__(scope, receive, send)
            return
        if self.fault == "hang":
            await asyncio.sleep(self.hang_seconds)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.fault == "drop":
            await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
            raise ConnectionAbortedError("sandbox dropped the connection on purpose")
        if self.fault == "drip":
            for i in range(len(self.body)):
                await send({"type": "http.response.body", "body": self.body[i : i + 1], "more_body": True})
                await asyncio.sleep(self.drip_delay)
        await send({"type": "http.response.body", "body": b"" if self.fault == "drip" else self.body})


def ok(message: str, data: Any, status: int = 200) -> SandboxResponse:
    return SandboxResponse(status, {"success": True, "message": message, "data": data})


def refusal(exc: Refusal) -> SandboxResponse:
    if exc.status == 429:
        body: dict[str, Any] = {
            "statusCode": 429,
            "message": exc.message,
            "error": "Too Many Requests",
            "data": exc.data,
        }
    else:
        body = {"success": False, "message": exc.message, "error_code": exc.status, "data": exc.data}
    return SandboxResponse(exc.status, body, headers=exc.headers)


class Sandbox:
    """The app plus its state and webhook courier."""

    def __init__(self, state: SandboxState, *, deliver_webhooks: bool = True, tick_interval: float = 0.05) -> None:
        self.state = state
        self.deliver_webhooks = deliver_webhooks
        self.tick_interval = tick_interval
        self.app = Starlette(routes=self._routes(), lifespan=self._lifespan)

    # -- plumbing ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self._courier()) if self.deliver_webhooks else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _courier(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            while True:
                await self.deliver_once(http)
                await asyncio.sleep(self.tick_interval)

    async def deliver_once(self, http: httpx.AsyncClient) -> int:
        """Apply due statuses and send every due webhook; return how many were sent."""
        with self.state.lock:
            self.state.tick()
            due = self.state.due_deliveries()
        for delivery in due:
            status: int | None
            try:
                response = await http.post(delivery["url"], content=delivery["body"], headers=delivery["headers"])
                status = response.status_code
            except httpx.HTTPError:
                status = None
            with self.state.lock:
                self.state.delivery_result(delivery, status)
        return len(due)

    def _guard(self, klass: Literal["money", "reads", "none"], fn: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            st = self.state
            arrived = st.arrival()  # before the simulated latency: when the client had sent it
            if st.knobs.latency:
                await asyncio.sleep(st.knobs.latency)
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return refusal(Refusal(401, "Unauthorized"))
            if auth[len("Bearer ") :].strip() != st.api_key:
                return refusal(Refusal(401, "Invalid API Key"))
            try:
                with st.lock:
                    st.tick()
                    if klass != "none":
                        st.check_rate(klass, arrived)
                result = await fn(request)
            except Refusal as exc:
                return refusal(exc)
            if isinstance(result, SandboxResponse):
                return result
            return ok("OK", result)

        return endpoint

    def _after_fault(self, response: SandboxResponse) -> SandboxResponse:
        """Faults that strike after a payout was recorded."""
        k, rng = self.state.knobs, self.state.rng
        recorded = sum(1 for p in self.state.posts if p["outcome"] == "recorded")
        if k.fault_every and recorded % k.fault_every == 0:
            return refusal(Refusal(502, "Bad Gateway"))
        roll = rng.random()
        if roll < k.p_5xx_after:
            return refusal(Refusal(502, "Bad Gateway"))
        roll -= k.p_5xx_after
        if roll < k.p_garbled_after:
            return SandboxResponse(response.status_code, {"success": True, "data": "created"})
        roll -= k.p_garbled_after
        if roll < k.p_drop_after:
            response.fault = "drop"
        elif roll < k.p_drop_after + k.p_hang_after:
            response.fault, response.hang_seconds = "hang", k.hang_seconds
        elif k.drip_delay:
            response.fault, response.drip_delay = "drip", k.drip_delay
        return response

    # -- endpoints ---------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        g = self._guard
        r = [
            Route("/health", self.health),
            Route("/api/v3/wallet/fiat", g("reads", self.wallets)),
            Route("/api/v3/wallet/fiat/currency/{currency}", g("reads", self.wallet_by_currency)),
            Route("/api/v3/wallet/fiat/{id}", g("reads", self.wallet)),
            Route("/api/v3/customer/mobile-money", g("reads", self.create_customer), methods=["POST"]),
            Route("/api/v3/customer/mobile-money/phone/{phone}", g("reads", self.customer_by_phone)),
            Route("/api/v3/customer/mobile-money/{key}", g("reads", self.customer)),
            Route("/api/v3/withdraw/status/{ref}", g("reads", self.status)),
            Route("/api/v3/withdraw/v2/bank/status/{ref}", g("reads", self.status)),
            Route("/api/v3/withdraw/transactions", g("reads", self.transactions)),
            Route("/api/v3/customer/support/banks", g("reads", self.banks)),
            Route("/api/v3/withdraw/v2/bank/supporting-banks/{currency}", g("reads", self.banks)),
            Route("/api/v3/customer/support/countries", g("reads", self.countries)),
            Route("/api/v3/customer/support/networks/{cc}", g("reads", self.networks)),
            Route("/api/v3/customer/validate/mobile-money", g("reads", self.validate_mobile_money), methods=["POST"]),
            Route("/api/v3/customer/validate/bank", g("reads", self.validate_bank), methods=["POST"]),
            Route("/__sandbox__/ledger", g("none", self.ledger)),
            Route("/__sandbox__/knobs", g("none", self.set_knobs), methods=["POST"]),
            Route("/__sandbox__/clock", g("none", self.advance_clock), methods=["POST"]),
        ]
        for kind in ("mobile-money", "lipa-na-mpesa", "paybill", "v2/bank"):
            r.append(Route(f"/api/v3/withdraw/{kind}", g("money", self._withdraw(kind)), methods=["POST"]))
        return r

    async def health(self, request: Request) -> Response:
        return SandboxResponse(200, {"status": "ok", "info": {}, "error": {}, "details": {}})

    async def wallets(self, request: Request) -> Any:
        return ok("Fiat wallet has been successfully retrieved.", [w.view() for w in self.state.wallets.values()])

    async def wallet(self, request: Request) -> Any:
        with self.state.lock:
            return ok(
                "The wallet has been successfully retrieved.", self.state.wallet_by_id(request.path_params["id"]).view()
            )

    async def wallet_by_currency(self, request: Request) -> Any:
        wallet = self.state.wallets.get(request.path_params["currency"].upper())
        if wallet is None:
            raise Refusal(404, "Wallet Not Found")
        return ok("The wallet has been successfully retrieved.", wallet.view())

    async def create_customer(self, request: Request) -> Any:
        body = await _json_body(request)
        with self.state.lock:
            customer = self.state.create_customer(body)
        return ok("Customer has been successfully created.", customer, self.state.knobs.create_status)

    async def customer(self, request: Request) -> Any:
        customer = self.state.customers.get(request.path_params["key"])
        if customer is None:
            raise Refusal(404, "Customer not found.")
        return ok("Customer fetched successfully.", customer)

    async def customer_by_phone(self, request: Request) -> Any:
        with self.state.lock:
            customer = self.state.customer_by_phone(request.path_params["phone"])
        if customer is None:
            raise Refusal(404, "Customer not found.")
        return ok("Customer fetched successfully.", customer)

    def _withdraw(self, kind: str) -> Handler:
        name = kind.replace("v2/", "")
        message = {
            "mobile-money": "Withdrawal has been successfully created.",
            "lipa-na-mpesa": "Lipa na M-Pesa withdrawal has been successfully created.",
            "paybill": "Paybill withdrawal has been successfully created.",
            "bank": "Withdrawal has been successfully created.",
        }[name]

        async def create(request: Request) -> Any:
            body = await _json_body(request)
            st = self.state
            with st.lock:
                seen: dict[str, Any] = {
                    "kind": name,
                    "reference": body.get("referenceId"),
                    "at": st.clock.now(),
                    "outcome": "refused",
                }
                st.posts.append(seen)
                if st.rng.random() < st.knobs.p_5xx_before:
                    seen["outcome"] = "500 before recording"
                    raise Refusal(500, "Internal server error")
                try:
                    payout = st.create_withdrawal(name, body)
                except Refusal as exc:
                    seen["outcome"] = f"{exc.status} {exc.message}"
                    raise
                seen["outcome"] = "parked" if payout.parked else "recorded"
            data = {
                "id": payout.id,
                "referenceId": payout.reference,
                "referenceNumber": payout.reference_number,
                "message": "Withdrawal request sent successfully",
            }
            return self._after_fault(ok(message, data, st.knobs.create_status))

        return create

    async def status(self, request: Request) -> Any:
        with self.state.lock:
            payout = self.state.visible(request.path_params["ref"])
            if payout is None:
                raise Refusal(404, "Reference Id not found")
            return ok("Withdrawal status retrieved", self.state.status_view(payout))

    async def transactions(self, request: Request) -> Any:
        q = request.query_params
        page = max(1, int(q.get("page", "1")))
        per_page = min(100, max(1, int(q.get("per_page", "20"))))
        status, currency = q.get("status"), q.get("currency")
        with self.state.lock:
            now, delay = self.state.clock.now(), self.state.knobs.visibility_delay
            payouts = self.state.payouts
            if status or currency:
                items = [
                    p
                    for p in payouts
                    if now >= p.created_at + delay
                    and (not status or p.status == status)
                    and (not currency or p.currency == currency)
                ]
            else:  # payouts are kept in the order they were created in, so the visible ones come first
                items = payouts[: bisect.bisect_right(payouts, now, key=lambda p: p.created_at + delay)]
            chunk = items[(page - 1) * per_page : page * per_page]
            data = [_list_item(self.state.status_view(p), p.currency) for p in chunk]
        total_pages = max(1, -(-len(items) // per_page))
        return SandboxResponse(
            200,
            {
                "success": True,
                "message": "Transactions retrieved",
                "data": data,
                "meta": {"total": len(items), "page": page, "per_page": per_page, "total_pages": total_pages},
            },
        )

    async def banks(self, request: Request) -> Any:
        if self.state.knobs.legacy_banks_only and "currency" not in request.path_params:
            raise Refusal(404, "Cannot GET /api/v3/customer/support/banks")
        currency = (request.path_params.get("currency") or request.query_params.get("currency", "")).upper()
        search = request.query_params.get("search", "").lower()
        rows = [
            {"code": code, "name": name, "currency": cur}
            for cur, banks in seed.BANKS.items()
            if not currency or cur == currency
            for code, name in banks
            if search in name.lower()
        ]
        return ok("Banks retrieved successfully", rows)

    async def countries(self, request: Request) -> Any:
        rows = [
            {
                "countryCode": c.code,
                "name": c.name,
                "iso3Code": c.iso3,
                "currency": c.currency,
                "serviceType": request.query_params.get("serviceType", "WITHDRAW"),
                "isActive": True,
                "isEnabled": True,
                "requiresNetwork": c.network_required,
                "requiresAccountName": False,
                "supportedNetworks": list(c.networks),
                "availableNetworks": list(c.networks),
            }
            for c in seed.COUNTRIES
        ]
        return ok("Countries retrieved successfully", rows)

    async def networks(self, request: Request) -> Any:
        country = seed.country(request.path_params["cc"])
        if country is None:
            raise Refusal(404, "Country not supported")
        return ok(
            "Networks retrieved successfully",
            {"countryCode": country.code, "networks": list(country.networks), "isRequired": country.network_required},
        )

    async def validate_mobile_money(self, request: Request) -> Any:
        body = await _json_body(request)
        with self.state.lock:
            return ok("Phone number validated successfully.", self.state.validate_mobile_money(body))

    async def validate_bank(self, request: Request) -> Any:
        body = await _json_body(request)
        with self.state.lock:
            return ok("Bank account validated successfully.", self.state.validate_bank(body))

    async def ledger(self, request: Request) -> Any:
        with self.state.lock:
            return ok("sandbox ledger", self.state.ledger())

    async def set_knobs(self, request: Request) -> Any:
        body = await _json_body(request)
        with self.state.lock:
            merged = {**self.state.knobs.model_dump(), **body}
            try:
                self.state.knobs = Knobs.model_validate(merged)
            except ValidationError as exc:
                raise Refusal(400, f"Validation failed: {exc}") from None
            return ok("knobs set", self.state.knobs.model_dump(mode="json"))

    async def advance_clock(self, request: Request) -> Any:
        body = await _json_body(request)
        seconds = float(body.get("seconds", 0))
        if not seconds >= 0:
            raise Refusal(400, "Validation failed: seconds must be 0 or more (the clock only goes forward)")
        with self.state.lock:
            self.state.clock.advance(seconds)
            self.state.tick()
            return ok("clock advanced", {"now": self.state.clock.now()})


def _list_item(view: dict[str, Any], currency: str) -> dict[str, Any]:
    item = {
        "id": view["id"],
        "reference_id": view["referenceId"],
        "reference_number": view["referenceNumber"],
        "status": view["status"],
        "amount": view["amount"],
        "transaction_amount": view["transactionAmount"],
        "transaction_cost": view["transactionCost"],
        "customer_key": view["customerKey"],
        "currency": currency,
        "created_at": view["created_at"],
    }
    if "telcoId" in view:
        item["telco_id"] = view["telcoId"]
    if "completed_at" in view:
        item["completed_at"] = view["completed_at"]
    return item


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}", parse_float=Decimal)
    except ValueError as exc:
        raise Refusal(400, "Bad Request: body is not JSON") from exc
    if not isinstance(body, dict):
        raise Refusal(400, "Bad Request: body must be a JSON object")
    return body

"""Async client for the Kotani Pay v3 API over httpx: one method per endpoint the tool uses.

:func:`error_for` is the one place that turns an HTTP error answer into the error tree;
:func:`error_for_transport` is the one place that classifies "no answer". The client never
retries a POST: whether a payout may be sent again is the engine's decision.

A 429 holds its whole class of requests (money: payout POSTs; reads: everything else) until the
advertised wait has passed, whoever sends next (the holds are a :class:`ratelimit.Holds`, shared
with the session's limiters); a GET refused by a 429 is sent again after the wait, a few times.
A wait longer than the holds' ``max_hold`` is raised at once instead of slept.

Connections: the pools keep as many connections alive as they may open (``max_connections``,
sized to the caller's concurrency), and a request takes a connection slot *before* its last look at
the hold, so that no request passes the hold check and then queues for a connection while a 429
arrives on another one. The connections are split into small pools of ``POOL_SIZE`` (each an
httpx client), a request going to the least busy one: httpcore looks at every connection of its
pool, with a system call each, on every request and every response, so one pool of 64 cost most of
the tool's CPU at concurrency 64 (bench/throughput.py).
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx
from pydantic import TypeAdapter, ValidationError

from batch_payouts import __version__, errors
from batch_payouts.kotani import wire
from batch_payouts.ratelimit import MONEY, READS, Holds

DEFAULT_BASE_URL = "https://sandbox-api.kotanipay.com"
T = TypeVar("T")
READ_RETRIES_ON_429 = 3
DEFAULT_HOLD_SECONDS = 5.0  # a 429 that names no wait
DEFAULT_MAX_CONNECTIONS = 100  # covers the engine's largest usual concurrency plus parallel reads
POOL_SIZE = 2  # connections per httpx pool (see the module's docstring; 2 used ~15 % less CPU than 8 at concurrency 64)


def request_class(method: str, path: str) -> str:
    """The provider's rate-limit class of a request: "money" for payout POSTs, else "reads"."""
    return MONEY if method == "POST" and path.startswith("/api/v3/withdraw/") else READS


class ApiKey:
    """An API key that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value or not value.strip():
            raise errors.ConfigError("the Kotani API key is empty")
        self._value = value.strip()

    def reveal(self) -> str:
        """The key itself, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('****')"

    __str__ = __repr__


@dataclass(frozen=True)
class Timeouts:
    """Seconds. httpx bounds each phase; ``attempt`` bounds one whole request and response."""

    connect: float = 5.0
    read: float = 20.0
    write: float = 10.0
    pool: float = 5.0
    attempt: float = 30.0


@dataclass(frozen=True)
class CallRecord:
    """One finished API call, for the audit trail (bodies are redacted by the ledger)."""

    method: str
    path: str
    status: int | None
    duration: float
    request_body: Any
    response_body: Any
    error: str | None = None


def _message(body: Any) -> str:
    if isinstance(body, dict):
        msg = body.get("message")
        if isinstance(msg, list):
            return "; ".join(str(m) for m in msg)
        if msg:
            return str(msg)
        if body.get("error"):
            return str(body["error"])
    return "no message"


def retry_after_seconds(body: Any, headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``data.retryAfter``, else a ``Retry-After`` header (seconds or date)."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and data.get("retryAfter") is not None:
        try:
            return max(0.0, float(data["retryAfter"]))
        except (TypeError, ValueError):
            pass
    header = headers.get("retry-after")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def error_for(
    status: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    method: str = "",
    path: str = "",
    now: Callable[[], float] = time.time,
) -> errors.ApiError:
    """Map an error answer (either error shape, docs/provider.md) to the error tree."""
    msg = _message(body)
    where: dict[str, str] = {"method": method, "path": path}
    if status == 401:
        return errors.AuthenticationError(status, msg, **where)
    if status == 403:
        return errors.PermissionDenied(status, msg, **where)
    if status == 404:
        return errors.NotFound(status, msg, **where)
    if status == 429:
        return errors.RateLimited(status, msg, retry_after_seconds(body, headers, now), **where)
    if status >= 500:
        return errors.ServerError(status, msg, **where)
    lower = msg.lower()
    data = body.get("data") if isinstance(body, dict) else None
    field_errors = data.get("errors") if isinstance(data, dict) else None
    if lower.startswith("validation failed") or isinstance(field_errors, list):
        return errors.ValidationFailed(status, msg, [str(e) for e in field_errors or []], **where)
    if "insufficient" in lower:
        return errors.InsufficientFunds(status, msg, **where)
    if "duplicate" in lower and "reference" in lower:
        return errors.DuplicateReference(status, msg, **where)
    return errors.BadRequest(status, msg, **where)


_NEVER_LEFT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def error_for_transport(exc: BaseException, *, method: str, path: str) -> errors.NoAnswer:
    """No answer: NotSent when the request provably never left, AnswerLost otherwise."""
    name = type(exc).__name__
    if isinstance(exc, _NEVER_LEFT):
        return errors.NotSent(name, method=method, path=path)
    return errors.AnswerLost(name, method=method, path=path)


class KotaniClient:
    """One method per endpoint; raises the error tree; never retries a POST."""

    def __init__(
        self,
        base_url: str,
        api_key: ApiKey,
        *,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        holds: Holds | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self._key = api_key
        self._on_call = on_call
        self._clock = clock
        self._sleep = sleep
        # pass one Holds to the clients and limiters of a session: a 429 seen by one holds them all
        self.holds = holds if holds is not None else Holds(clock=clock)
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self._slots = anyio.Semaphore(max_connections)
        # a given transport is one pool (a test's); else pools of POOL_SIZE that together hold max_connections
        sizes = (
            [max_connections]
            if transport is not None
            else [min(POOL_SIZE, max_connections - start) for start in range(0, max_connections, POOL_SIZE)]
        )
        self._base_url = base_url.rstrip("/")
        self._transport = transport
        self._sizes = sizes
        # a pool is made when a request first needs it (a pool costs a millisecond or more to make,
        # and a command that sends a handful of requests needs two or three of them)
        self._pools: list[httpx.AsyncClient | None] = [None] * len(sizes)
        self._busy = [0] * len(sizes)  # requests in flight per pool
        self._closed = False

    def _pool(self, index: int) -> httpx.AsyncClient:
        pool = self._pools[index]
        if pool is None:
            if self._closed:  # as a closed httpx client refuses a request
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            t, size = self.timeouts, self._sizes[index]
            pool = self._pools[index] = httpx.AsyncClient(
                base_url=self._base_url,
                transport=self._transport,
                # a given transport brings its own TLS
                verify=True if self._transport is not None else _tls_context(self._base_url),
                timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
                headers={"Accept": "application/json", "User-Agent": f"batch-payouts/{__version__}"},
                # every connection a pool may open is kept alive: with httpx's default of 20 kept
                # alive, a concurrency of 64 closed and reopened connections all the time
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
        return pool

    def __repr__(self) -> str:
        return f"KotaniClient({self._base_url!r})"

    async def __aenter__(self) -> KotaniClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools:
            if pool is not None:
                await pool.aclose()

    # -- transport -------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: wire._Request | None = None,
        params: Mapping[str, str | int] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Send a request after any 429 hold of its class; GETs (and POSTs that only read,
        ``idempotent``) are sent again after a 429."""
        klass = request_class(method, path)
        tries = 0
        while True:
            await self._wait_for_hold(klass, method, path)
            async with self._slots:
                if self.held_for(klass) > 0:
                    continue  # a 429 arrived while this request waited for a connection
                try:
                    return await self._send(method, path, body=body, params=params)
                except errors.RateLimited as exc:
                    wait = exc.retry_after if exc.retry_after is not None else DEFAULT_HOLD_SECONDS
                    self.holds.hold(klass, wait)
                    tries += 1
                    resendable = method == "GET" or idempotent
                    if not resendable or tries > READ_RETRIES_ON_429 or self.holds.too_long(wait):
                        raise

    def held_for(self, klass: str) -> float:
        """Seconds until requests of ``klass`` may be sent again (0 when not held)."""
        return self.holds.held_for(klass)

    async def _wait_for_hold(self, klass: str, method: str, path: str) -> None:
        wait = self.held_for(klass)
        if self.holds.too_long(wait):
            raise errors.RateLimited(429, "still waiting out an earlier 429", wait, method=method, path=path)
        if wait > 0:
            await self._sleep(wait)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: wire._Request | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """Send one request within the attempt deadline; return the parsed JSON of a 2xx."""
        content = wire.encode_body(body) if body is not None else None
        headers = {"Authorization": f"Bearer {self._key.reveal()}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        started = self._clock()
        status: int | None = None
        parsed: Any = None
        try:
            with anyio.fail_after(self.timeouts.attempt), self._least_busy_pool() as pool:
                response = await pool.request(method, path, content=content, headers=headers, params=params)
                status = response.status_code
            parsed = _parse_json(response.content)
        except TimeoutError as exc:
            self._record(method, path, None, started, body, None, "attempt deadline")
            raise errors.AnswerLost("attempt deadline passed", method=method, path=path) from exc
        except httpx.HTTPError as exc:
            problem = error_for_transport(exc, method=method, path=path)
            self._record(method, path, None, started, body, None, problem.reason)
            raise problem from None
        self._record(method, path, status, started, body, parsed, None)
        if 200 <= status < 300:
            return parsed
        raise error_for(status, parsed, response.headers, method=method, path=path)

    @contextlib.contextmanager
    def _least_busy_pool(self) -> Iterator[httpx.AsyncClient]:
        """The pool with the most free connections, counted busy while the block runs (with at most
        ``max_connections`` requests in flight, one always has a free connection)."""
        index = max(range(len(self._pools)), key=lambda i: self._sizes[i] - self._busy[i])
        self._busy[index] += 1
        try:
            yield self._pool(index)
        finally:
            self._busy[index] -= 1

    def _record(
        self,
        method: str,
        path: str,
        status: int | None,
        started: float,
        body: wire._Request | None,
        parsed: Any,
        error: str | None,
    ) -> None:
        if self._on_call is None:
            return
        request = body.model_dump(by_alias=True, exclude_none=True, mode="json") if body else None
        self._on_call(CallRecord(method, path, status, self._clock() - started, request, parsed, error))

    async def _data(self, method: str, path: str, model: type[T] | TypeAdapter[T], **kw: Any) -> T:
        parsed = await self._call(method, path, **kw)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "data"
            raise errors.UnexpectedResponse(
                200, f"unreadable answer: {where}: {problem['msg']}", method=method, path=path
            ) from None

    # -- wallets ---------------------------------------------------------------------

    async def list_wallets(self) -> list[wire.Wallet]:
        return await self._data("GET", "/api/v3/wallet/fiat", TypeAdapter(list[wire.Wallet]))

    async def get_wallet(self, wallet_id: str) -> wire.Wallet:
        return await self._data("GET", f"/api/v3/wallet/fiat/{_seg(wallet_id)}", wire.Wallet)

    # -- customers -------------------------------------------------------------------

    async def create_customer(self, body: wire.CreateCustomer) -> wire.Customer:
        return await self._data("POST", "/api/v3/customer/mobile-money", wire.Customer, body=body)

    async def get_customer(self, customer_key: str) -> wire.Customer:
        path = f"/api/v3/customer/mobile-money/{_seg(customer_key)}"
        return await self._data("GET", path, wire.Customer)

    async def get_customer_by_phone(self, phone: str) -> wire.Customer:
        path = f"/api/v3/customer/mobile-money/phone/{_seg(phone)}"
        return await self._data("GET", path, wire.Customer)

    # -- withdrawals -----------------------------------------------------------------

    async def withdraw(self, body: wire.WithdrawalRequest) -> wire.WithdrawalCreated:
        """Create one withdrawal of whichever kind ``body`` is."""
        path = {
            wire.MobileMoneyWithdrawal: "/api/v3/withdraw/mobile-money",
            wire.LipaNaMpesaWithdrawal: "/api/v3/withdraw/lipa-na-mpesa",
            wire.PaybillWithdrawal: "/api/v3/withdraw/paybill",
            wire.BankWithdrawal: "/api/v3/withdraw/v2/bank",
        }[type(body)]
        return await self._data("POST", path, wire.WithdrawalCreated, body=body)

    async def withdrawal_status(self, reference_id: str) -> wire.WithdrawalStatus:
        path = f"/api/v3/withdraw/status/{_seg(reference_id)}"
        return await self._data("GET", path, wire.WithdrawalStatus)

    async def bank_status(self, reference_id: str) -> wire.WithdrawalStatus:
        path = f"/api/v3/withdraw/v2/bank/status/{_seg(reference_id)}"
        return await self._data("GET", path, wire.WithdrawalStatus)

    async def list_withdrawals(self, page: int = 1, per_page: int = 100, **filters: str) -> wire.TransactionsPage:
        params: dict[str, str | int] = {"page": page, "per_page": per_page, **filters}
        parsed = await self._call("GET", "/api/v3/withdraw/transactions", params=params)
        # The envelope around {data, meta} is undocumented: accept it bare or wrapped.
        if isinstance(parsed, dict) and "meta" not in parsed and isinstance(parsed.get("data"), dict):
            parsed = parsed["data"]
        try:
            return wire.TransactionsPage.model_validate(parsed)
        except ValidationError as exc:
            raise errors.UnexpectedResponse(
                200,
                f"unreadable withdrawals list: {exc.errors()[0]['msg']}",
                method="GET",
                path="/api/v3/withdraw/transactions",
            ) from None

    async def iter_withdrawals(self, per_page: int = 100, **filters: str) -> AsyncIterator[wire.TransactionItem]:
        page = 1
        while True:
            result = await self.list_withdrawals(page, per_page, **filters)
            for item in result.data:
                yield item
            if page >= result.meta.total_pages or not result.data:
                return
            page += 1

    # -- catalog ---------------------------------------------------------------------

    async def list_banks(self, currency: str) -> list[wire.Bank]:
        """Supported banks; falls back to the deprecated endpoint when the current one is absent."""
        banks = TypeAdapter(list[wire.Bank])
        try:
            return await self._data("GET", "/api/v3/customer/support/banks", banks, params={"currency": currency})
        except errors.NotFound:
            path = f"/api/v3/withdraw/v2/bank/supporting-banks/{_seg(currency)}"
            return await self._data("GET", path, banks)

    async def list_countries(self, service_type: str = "WITHDRAW") -> list[wire.Country]:
        return await self._data(
            "GET",
            "/api/v3/customer/support/countries",
            TypeAdapter(list[wire.Country]),
            params={"serviceType": service_type},
        )

    async def networks(self, country_code: str) -> wire.Networks:
        path = f"/api/v3/customer/support/networks/{_seg(country_code)}"
        return await self._data("GET", path, wire.Networks)

    # -- account validation (confirmation of payee) --------------------------------------
    # POSTs that only read: the reads class, sent again after a 429 like a GET.

    async def validate_mobile_money(self, body: wire.ValidateMobileMoney) -> wire.AccountValidation:
        """Whose phone, till or paybill account this is, and how well ``accountName`` matches it."""
        return await self._data(
            "POST", "/api/v3/customer/validate/mobile-money", wire.AccountValidation, body=body, idempotent=True
        )

    async def validate_bank(self, body: wire.ValidateBank) -> wire.AccountValidation:
        """Whose bank account this is, and how well ``accountName`` matches it."""
        return await self._data(
            "POST", "/api/v3/customer/validate/bank", wire.AccountValidation, body=body, idempotent=True
        )


def _seg(value: str) -> str:
    """One percent-encoded path segment (``+`` becomes ``%2B``)."""
    return quote(value, safe="")


def in_process(app: Any) -> httpx.AsyncBaseTransport:
    """A transport handing each request to the ASGI ``app`` in this process: no socket, no thread
    (the built-in sandbox, asked without serving it on a port). An error inside the app is its 500
    answer, as a served app's would be, not an exception raised here."""
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)


@functools.cache
def _tls_context(base_url: str) -> ssl.SSLContext:
    """One TLS context for every pool of the process that talks to ``base_url``: one that checks
    certificates against the system's (making it reads them: tens of milliseconds), except for a
    plain-HTTP address (a local sandbox), where TLS is never used: one that trusts no certificate,
    so that if it ever were, every certificate would be refused."""
    if httpx.URL(base_url).scheme == "http":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return httpx.create_ssl_context()


def _parse_json(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError:
        return {"message": content[:200].decode("utf-8", "replace")}

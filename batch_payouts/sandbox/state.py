"""The sandbox's books: wallets, customers, payouts, rate windows, webhooks, and its own ledger.

Pure logic with an injected clock (sandbox seconds). The HTTP layer lives in ``app.py``.
A payout's life is a schedule of (time, status); :meth:`SandboxState.tick` applies every
status whose time has come: re-crediting failed payouts and queueing webhooks.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import random
import re
import string
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from batch_payouts.kotani.webhooks import WITHDRAWAL_EVENT, compact_json, signed_body
from batch_payouts.sandbox import seed

FAILURE = {"FAILED", "DECLINED", "CANCELLED", "EXPIRED", "REVERSED", "TRANSACTION_RETRY_FAILED"}
SUCCESS = {"SUCCESSFUL", "TRANSACTION_RETRY_SUCCESSFUL"}
DIGITS = {"KES": 0, "UGX": 0, "TZS": 0, "RWF": 0, "XOF": 0, "XAF": 0, "MWK": 0}
# Wall seconds a client needs to read a 429 once it is answered: a request that reaches the sandbox
# sooner was on its way (or sent while the answer was unread) and is not counted as early.
ANSWER_READ_SECONDS = 0.05


class Knobs(BaseModel):
    """Behaviour switches and fault probabilities; every time is in sandbox seconds."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = 0.0
    p_5xx_before: float = 0.0
    p_5xx_after: float = 0.0
    p_drop_after: float = 0.0
    p_hang_after: float = 0.0
    p_garbled_after: float = 0.0
    fault_every: int = 0  # every k-th recorded payout answers 502 after recording (deterministic)
    hang_seconds: float = 120.0
    drip_delay: float = 0.0
    visibility_delay: float = 0.0
    duplicate_mode: Literal["reject", "park", "accept"] = "reject"
    existing_customer_mode: Literal["return", "reject", "duplicate"] = "return"
    rate_limit_style: Literal["body", "header_seconds", "header_date", "none"] = "body"
    p_429: float = 0.0
    retry_after: float = 2.0
    money_per_minute: int = 60
    money_burst: int = 20
    reads_per_5s: int = 100
    rate_limits: bool = True
    legacy_banks_only: bool = False
    create_status: int = 201
    fee_percent: Decimal = Decimal("1")
    fee_mode: Literal["recipient", "integrator", "invoiced"] = "recipient"
    settle_seconds: float = 5.0
    slow_seconds: float = 60.0
    expiry_seconds: float = 86400.0
    webhook_drop: float = 0.0
    webhook_duplicate: float = 0.0
    webhook_reorder: float = 0.0
    webhook_delay: float = 0.0
    webhook_replay: float = 0.0
    webhook_unsigned: bool = False
    webhook_rotated_secret: str | None = None
    scripts: dict[str, list[tuple[float, str]]] = Field(default_factory=dict)
    name_match_threshold: float = 70.0  # nameMatch.matched when the score reaches this (0-100)


class SandboxClock:
    """Sandbox seconds: real monotonic time times ``speed``, plus whatever tests advance."""

    def __init__(self, speed: float = 1.0, source: Callable[[], float] = time.monotonic) -> None:
        self.speed = speed
        self._source = source
        self._start = source()
        self._offset = 0.0
        self.epoch = time.time()

    def now(self) -> float:
        return (self._source() - self._start) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        """Move sandbox time ``seconds`` forward; it never goes back (ValueError), so payouts are
        created, and listed, in the order of their creation times."""
        if not seconds >= 0:  # NaN too
            raise ValueError("the sandbox's clock only goes forward")
        self._offset += seconds

    def iso(self, t: float) -> str:
        stamp = time.gmtime(self.epoch + t)
        millis = int(((self.epoch + t) % 1) * 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", stamp) + f".{millis:03d}Z"


class Refusal(Exception):
    """An HTTP error answer of the sandbox."""

    def __init__(
        self, status: int, message: str, data: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.message = message
        self.data = data or {}
        self.headers = headers or {}
        super().__init__(message)


@dataclass
class Wallet:
    id: str
    currency: str
    country: str | None
    balance: Decimal
    deposit_balance: Decimal = Decimal(0)
    integrator: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": f"{self.currency} payouts",
            "type": "fiat",
            "currency": self.currency,
            "country": self.country or "",
            "integrator": self.integrator,
            "status": "active",
            "balance": self.balance,
            "deposit_balance": self.deposit_balance,
        }


@dataclass(slots=True)  # 100,000 of them in a large rehearsal: no dict each
class Payout:
    id: str
    reference: str
    reference_number: int
    kind: str
    payee: str
    amount: Decimal
    currency: str
    wallet_id: str
    customer_key: str
    fee: Decimal
    debit: Decimal
    created_at: float
    callback_url: str | None
    schedule: list[tuple[float, str, str]]  # (time, status, error)
    applied: int = 0
    status: str = "PENDING"
    error: str = ""
    credited: bool = False
    completed_at: float | None = None
    history: list[tuple[float, str]] = field(default_factory=list)  # (time, status): a tuple, not a dict
    parked: bool = False

    def __post_init__(self) -> None:
        # books written before history entries were tuples keep them as {"at", "status"}
        if self.history and isinstance(self.history[0], dict):
            self.history = [(h["at"], h["status"]) for h in self.history]


_OUTCOMES: dict[str, tuple[str, str, str]] = {
    "700000010": ("FAILED", "Insufficient funds on recipient account", "INSUFFICIENT_FUNDS"),
    "700000011": ("FAILED", "Recipient account not found", "ACCOUNT_NOT_FOUND"),
    "700000012": ("FAILED", "Transaction limit exceeded", "LIMIT_EXCEEDED"),
    "700000013": ("CANCELLED", "Cancelled by customer", "CANCELLED_BY_CUSTOMER"),
}


def _hex_id(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(24))


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-DIGITS.get(currency, 2)), rounding=ROUND_HALF_UP)


class SandboxState:
    """All the sandbox knows. Thread-safe: one lock around every change."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
        clock: SandboxClock | None = None,
        seed_value: int = 0,
        balances: dict[str, Decimal] | None = None,
        knobs: Knobs | None = None,
        integrator: str | None = None,
    ) -> None:
        self.api_key = api_key
        # Each key is its own account, so that two sandboxes can stand for two Kotani accounts.
        self.integrator = integrator or hashlib.sha256(api_key.encode()).hexdigest()[:24]
        self.after_change: Callable[[], None] | None = None
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.clock = clock or SandboxClock()
        self.rng = random.Random(seed_value)
        self.knobs = knobs or Knobs()
        self.lock = threading.RLock()
        self.wallets: dict[str, Wallet] = {}
        for cur in seed.WALLET_CURRENCIES:
            start = (balances or {}).get(cur, Decimal("10000000"))
            country = next((c.code for c in seed.COUNTRIES if c.currency == cur), None)
            self.wallets[cur] = Wallet(_hex_id(self.rng), cur, country, Decimal(start), integrator=self.integrator)
        self.customers: dict[str, dict[str, Any]] = {}
        self.payouts: list[Payout] = []
        self.unsettled: dict[str, Payout] = {}  # payouts with statuses still to come, in creation order
        self.by_reference: dict[str, Payout] = {}
        self.posts: list[dict[str, Any]] = []
        self.webhooks_sent: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self.windows: dict[str, deque[float]] = {}
        self.rate_limited: dict[str, int] = {"money": 0, "reads": 0}
        # a request of a class that arrives before the wait its last 429 advertised has passed
        self.hold_until: dict[str, float] = {}
        # class -> (arrival order when a 429 was answered, sandbox time a client could have read it,
        # sandbox time its wait ends)
        self.holds: dict[str, list[tuple[int, float, float]]] = {}
        self._arrivals = itertools.count()
        self.early_requests: dict[str, int] = {"money": 0, "reads": 0}
        self._next_number = 80412000
        self.lookups: list[dict[str, Any]] = []  # every validate request: (kind, account, name)

    # -- rate limits ------------------------------------------------------------------

    def arrival(self) -> tuple[float, int]:
        """When a request reached the sandbox: sandbox seconds, and its place in the order of arrival."""
        return self.clock.now(), next(self._arrivals)

    def check_rate(self, klass: Literal["money", "reads"], arrived: tuple[float, int] | None = None) -> None:
        """Raise a 429 Refusal when this request would pass the class's limits.

        ``arrived`` (from :meth:`arrival`, taken when the request reached the sandbox, before any
        simulated latency) decides whether it was early: it reached the sandbox after a 429 of its
        class had been answered, and before that 429's advertised wait ended. A request that was
        already on its way when the 429 was answered could not have known of it.
        """
        k = self.knobs
        now = self.clock.now()
        if self._early(klass, arrived or self.arrival()):
            self.early_requests[klass] += 1
        if k.p_429 and self.rng.random() < k.p_429:
            self.rate_limited[klass] += 1
            raise self._too_many(k.retry_after, klass)
        if not k.rate_limits:
            return
        limits = [(60.0, k.money_per_minute), (5.0, k.money_burst)] if klass == "money" else [(5.0, k.reads_per_5s)]
        log = self.windows.setdefault(klass, deque())
        longest = max(w for w, _ in limits)
        while log and log[0] <= now - longest:
            log.popleft()
        for window, limit in limits:
            inside = [t for t in log if t > now - window]
            if len(inside) >= limit:
                self.rate_limited[klass] += 1
                wait = inside[len(inside) - limit] + window - now
                raise self._too_many(max(wait, 0.001), klass)
        log.append(now)

    def _early(self, klass: str, arrived: tuple[float, int]) -> bool:
        """Whether a request that arrived at ``arrived`` fell inside a wait it could have known of."""
        holds = self.holds.get(klass, [])
        horizon = self.clock.now() - 600.0  # no request takes ten sandbox minutes to be checked
        holds[:] = [(last, known, end) for last, known, end in holds if end > horizon]
        at, order = arrived
        return any(order > last and known <= at < end for last, known, end in holds)

    def _too_many(self, wait: float, klass: str) -> Refusal:
        style = self.knobs.rate_limit_style
        seconds = max(1, int(-(-wait // 1)))
        if style != "none":  # what we advertise, in sandbox seconds, is what a client must honour
            now = self.clock.now()
            self.hold_until[klass] = max(self.hold_until.get(klass, 0.0), now + seconds)
            # requests that arrive once the answer could have been read were sent knowing of it
            # (a request already on its way, or sent while the answer was still unread, was not)
            known = now + ANSWER_READ_SECONDS * self.clock.speed
            self.holds.setdefault(klass, []).append((next(self._arrivals), known, now + seconds))
        data: dict[str, Any] = {"retryAfter": seconds} if style == "body" else {}
        headers: dict[str, str] = {}
        if style == "header_seconds":
            headers["Retry-After"] = str(seconds)
        elif style == "header_date":
            when = time.time() + seconds / max(self.clock.speed, 1e-9) + 1
            headers["Retry-After"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
        return Refusal(429, "ThrottlerException: Too Many Requests", data, headers)

    # -- customers --------------------------------------------------------------------

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        country = seed.country(str(body.get("country_code") or ""))
        phone = str(body.get("phone_number") or "").strip()
        problems = []
        if country is None:
            problems.append("country_code must be a supported country")
        if not phone.startswith("+") or not phone[1:].isdigit() or not 9 <= len(phone) <= 16:
            problems.append("phone_number must be in international format, e.g. +254712345678")
        network = body.get("network")
        if network is not None and network not in seed.NETWORK_ENUM:
            problems.append("network must be one of the supported networks")
        if country and country.network_required and not network:
            problems.append(f"network is required for {country.code}")
        if problems:
            raise Refusal(400, "Validation failed: " + "; ".join(problems), {"errors": problems})
        assert country is not None
        existing = self.customer_by_phone(phone)
        mode = self.knobs.existing_customer_mode
        if existing and mode == "return":
            return existing
        if existing and mode == "reject":
            raise Refusal(400, "Customer with this phone number already exists")
        key = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(20))
        customer = {
            "id": _hex_id(self.rng),
            "customer_key": key,
            "phone_number": phone,
            "country_code": country.code,
            "network": network or "NOT_SUPPORTED",
            "account_name": body.get("account_name") or "",
            "integrator": self.integrator,
        }
        self.customers[key] = customer
        self.changed()
        return customer

    def customer_by_phone(self, phone: str) -> dict[str, Any] | None:
        digits = phone.strip().lstrip("+")
        return next((c for c in self.customers.values() if c["phone_number"].lstrip("+") == digits), None)

    # -- withdrawals ------------------------------------------------------------------

    def wallet_by_id(self, wallet_id: str) -> Wallet:
        wallet = next((w for w in self.wallets.values() if w.id == wallet_id), None)
        if wallet is None:
            raise Refusal(404, "Wallet Not Found")
        return wallet

    def create_withdrawal(self, kind: str, body: dict[str, Any]) -> Payout:
        """Validate, debit and record one payout, or raise a Refusal having changed nothing."""
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount <= 0:
            raise Refusal(
                400,
                "Validation failed: amount must be a positive number",
                {"errors": ["amount must be a positive number"]},
            )
        amount = Decimal(amount)
        wallet, payee, customer_key = self._route(kind, body)
        if amount != quantize(amount, wallet.currency):
            raise Refusal(
                400,
                f"Validation failed: too many decimals for {wallet.currency}",
                {"errors": [f"amount has too many decimals for {wallet.currency}"]},
            )
        reference = str(body.get("referenceId") or "")
        if not reference:
            if kind == "bank":
                raise Refusal(
                    400, "Validation failed: referenceId is required", {"errors": ["referenceId is required"]}
                )
            reference = "".join(self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(8))
        parked = False
        if reference in self.by_reference:
            mode = self.knobs.duplicate_mode
            if mode == "reject":
                raise Refusal(400, "Duplicate referenceId")
            parked = mode == "park"
        fee = self._fee(amount, wallet.currency)
        debit = amount + fee if self.knobs.fee_mode == "integrator" else amount
        if not parked and wallet.balance < debit:
            raise Refusal(400, "Insufficient funds in fiat wallet")
        now = self.clock.now()
        self._next_number += 1
        payout = Payout(
            id=_hex_id(self.rng),
            reference=reference,
            reference_number=self._next_number,
            kind=kind,
            payee=payee,
            amount=amount,
            currency=wallet.currency,
            wallet_id=wallet.id,
            customer_key=customer_key,
            fee=fee,
            debit=Decimal(0) if parked else debit,
            created_at=now,
            callback_url=body.get("callbackUrl"),
            schedule=[] if parked else self._schedule(reference, payee, now),
            parked=parked,
        )
        payout.status = "DUPLICATE_PENDING" if parked else "PENDING"
        payout.history.append((now, payout.status))
        if not parked:
            wallet.balance -= debit
        self.payouts.append(payout)
        self.by_reference.setdefault(reference, payout)
        if payout.schedule:
            self.unsettled[payout.id] = payout
        self.changed()
        return payout

    def changed(self) -> None:
        """Tell whoever keeps the books on disk (the built-in sandbox) that something changed."""
        if self.after_change is not None:
            self.after_change()

    def _route(self, kind: str, body: dict[str, Any]) -> tuple[Wallet, str, str]:
        if kind == "bank":
            details = body.get("bankDetails") or {}
            return self._route_bank(body, details)
        wallet = self.wallet_by_id(str(body.get("walletId") or ""))
        if kind == "mobile-money":
            customer = self.customers.get(str(body.get("customer_key") or ""))
            if customer is None:
                raise Refusal(404, "Customer not found.")
            country = seed.country(customer["country_code"])
            override = body.get("currency")
            if country and country.currency != wallet.currency and override != wallet.currency:
                raise Refusal(400, "Wallet currency does not match the customer's country")
            return wallet, customer["phone_number"], customer["customer_key"]
        if wallet.currency != "KES":
            raise Refusal(400, "Lipa na M-Pesa/Paybill only available for Kenya (KES)")
        if kind == "lipa-na-mpesa":
            details = body.get("lipaNaMpesaDetails") or {}
            if not details.get("businessShortcode"):
                raise Refusal(
                    400,
                    "Validation failed: businessShortcode is required",
                    {"errors": ["lipaNaMpesaDetails.businessShortcode is required"]},
                )
            return wallet, str(details.get("phoneNumber") or details["businessShortcode"]), ""
        details = body.get("paybillDetails") or {}
        missing = [f"paybillDetails.{f} is required" for f in ("paybillNumber", "accountNumber") if not details.get(f)]
        if missing:
            raise Refusal(400, "Validation failed: " + "; ".join(missing), {"errors": missing})
        payee = str(details.get("phoneNumber") or details["accountNumber"])
        return wallet, payee, ""

    def _route_bank(self, body: dict[str, Any], details: dict[str, Any]) -> tuple[Wallet, str, str]:
        missing = [
            f"bankDetails.{f} is required"
            for f in ("name", "bankCode", "accountNumber", "country")
            if not details.get(f)
        ]
        currency = str(body.get("currency") or "")
        if not currency:
            missing.append("currency is required")
        if missing:
            raise Refusal(400, "Validation failed: " + "; ".join(missing), {"errors": missing})
        country = seed.country(str(details["country"]))
        if country is None or country.code not in ("KE", "ZA"):
            raise Refusal(400, "Bank payouts are only available for Kenya and South Africa")
        if country.code == "ZA" and not details.get("bankName"):
            raise Refusal(
                400,
                "Validation failed: bankDetails.bankName is required for ZA",
                {"errors": ["bankDetails.bankName is required for South Africa"]},
            )
        codes = {code for code, _ in seed.BANKS.get(currency, ())}
        if str(details["bankCode"]) not in codes:
            raise Refusal(400, f"Bank code {details['bankCode']} is not supported for {currency}")
        wallet = self.wallets.get(currency)
        if wallet is None:
            raise Refusal(404, "Wallet Not Found")
        return wallet, str(details["accountNumber"]), ""

    def _fee(self, amount: Decimal, currency: str) -> Decimal:
        return quantize(amount * self.knobs.fee_percent / 100, currency)

    def _schedule(self, reference: str, payee: str, now: float) -> list[tuple[float, str, str]]:
        k = self.knobs
        script = k.scripts.get(reference) or k.scripts.get(payee)
        if script:
            return [(now + at, status, "scripted") for at, status in script]
        ending = "".join(ch for ch in payee if ch.isdigit())[-9:]
        steps = [(now + 0.2 * k.settle_seconds, "INITIATED", ""), (now + 0.4 * k.settle_seconds, "IN_PROGRESS", "")]
        if ending in _OUTCOMES:
            status, message, _code = _OUTCOMES[ending]
            return [*steps, (now + k.settle_seconds, status, message)]
        if ending == "700000020":
            return [*steps, (now + k.expiry_seconds, "EXPIRED", "Transaction expired")]
        delay = k.slow_seconds if ending == "700000021" else k.settle_seconds
        return [*steps, (now + delay, "SUCCESSFUL", "")]

    # -- the passage of time ------------------------------------------------------------

    def tick(self) -> None:
        """Apply every scheduled status whose time has come (only payouts with statuses still to
        come are looked at, so a tick costs the payouts in flight, not every payout ever made)."""
        now = self.clock.now()
        for payout in list(self.unsettled.values()):
            while payout.applied < len(payout.schedule) and payout.schedule[payout.applied][0] <= now:
                at, status, error = payout.schedule[payout.applied]
                payout.applied += 1
                self._apply(payout, at, status, error)
            if payout.applied >= len(payout.schedule):
                self.unsettled.pop(payout.id, None)

    def schedule_status(self, payout: Payout, at: float, status: str, error: str = "") -> None:
        """Have the provider move (or correct) ``payout`` to ``status`` at sandbox time ``at``."""
        payout.schedule.append((at, status, error))
        payout.schedule[payout.applied :] = sorted(payout.schedule[payout.applied :], key=lambda s: s[0])
        self.unsettled[payout.id] = payout

    def _apply(self, payout: Payout, at: float, status: str, error: str) -> None:
        payout.status = status
        payout.error = error if status not in SUCCESS else ""
        payout.history.append((at, status))
        wallet = self.wallets[payout.currency]
        if status in FAILURE and not payout.credited:
            wallet.balance += payout.debit
            payout.credited = True
        elif status in SUCCESS and payout.credited:
            wallet.balance -= payout.debit  # a correction: the money did go out after all
            payout.credited = False
        if status in FAILURE | SUCCESS:
            payout.completed_at = at
        self._queue_webhook(payout, at)

    def visible(self, reference: str) -> Payout | None:
        """The payout with this reference once the status endpoint can see it."""
        payout = self.by_reference.get(reference)
        if payout is None:
            payout = next((p for p in self.payouts if p.id == reference), None)
        if payout is None or self.clock.now() < payout.created_at + self.knobs.visibility_delay:
            return None
        return payout

    def status_view(self, payout: Payout) -> dict[str, Any]:
        recipient = payout.amount - payout.fee if self.knobs.fee_mode == "recipient" else payout.amount
        view: dict[str, Any] = {
            "id": payout.id,
            "amount": payout.amount,
            "walletId": payout.wallet_id,
            "referenceId": payout.reference,
            "currency": payout.currency,
            "status": payout.status,
            "referenceNumber": payout.reference_number,
            "created_at": self.clock.iso(payout.created_at),
            "transactionCost": payout.fee,
            "transactionAmount": recipient,
            "customerKey": payout.customer_key,
            "integratorFeeAmount": 0,
            "integratorFee": 0,
            "integratorCommissionType": "NONE",
            "errorMessage": payout.error,
            "transactionError": payout.error,
        }
        if payout.callback_url:
            view["callbackUrl"] = payout.callback_url
        if payout.status in SUCCESS:
            view["telcoId"] = f"SK{payout.reference_number:08d}"
        if payout.completed_at is not None:
            view["completed_at"] = self.clock.iso(payout.completed_at)
        return view

    # -- webhooks ---------------------------------------------------------------------

    def _queue_webhook(self, payout: Payout, at: float) -> None:
        k = self.knobs
        data = self.status_view(payout)
        url = self.webhook_url if self.webhook_secret else None
        url = url or payout.callback_url
        if not url:
            return
        if self.webhook_secret:
            secret = k.webhook_rotated_secret or self.webhook_secret
            body, sig = signed_body(WITHDRAWAL_EVENT, data, secret)
            headers = {
                "Content-Type": "application/json",
                "X-Kotani-Event": WITHDRAWAL_EVENT,
                "X-Kotani-Integrator": self.integrator,
            }
            if not k.webhook_unsigned:
                headers["X-Kotani-Signature"] = sig
        else:
            body, headers = compact_json(data).encode(), {"Content-Type": "application/json"}
        delivery: dict[str, Any] = {
            "url": url,
            "body": body,
            "headers": headers,
            "reference": payout.reference,
            "status": payout.status,
            "due": at + k.webhook_delay,
            "attempt": 0,
        }
        if self.rng.random() < k.webhook_drop:
            self.webhooks_sent.append({**_public(delivery), "outcome": "dropped"})
            return
        if self.rng.random() < k.webhook_reorder:
            delivery["due"] += self.rng.uniform(0, 3 * k.settle_seconds)
        self.outbox.append(delivery)
        if self.rng.random() < k.webhook_duplicate:
            self.outbox.append({**delivery, "due": delivery["due"] + self.rng.uniform(0, 1)})

    def due_deliveries(self) -> list[dict[str, Any]]:
        """Deliveries whose time has come, removed from the outbox (plus random replays)."""
        now = self.clock.now()
        due = [d for d in self.outbox if d["due"] <= now]
        self.outbox = [d for d in self.outbox if d["due"] > now]
        delivered = [w for w in self.webhooks_sent if w.get("outcome") == "delivered"]
        if delivered and self.rng.random() < self.knobs.webhook_replay:
            old = self.rng.choice(delivered)
            due.append({**old["_delivery"], "replay": True})
        return due

    def delivery_result(self, delivery: dict[str, Any], status: int | None) -> None:
        """Record a delivery; schedule a redelivery with backoff after a non-2xx."""
        ok = status is not None and 200 <= status < 300
        record = {
            **_public(delivery),
            "http_status": status,
            "outcome": "delivered" if ok else "refused",
            "_delivery": delivery,
        }
        self.webhooks_sent.append(record)
        if not ok and delivery["attempt"] < 12:
            backoff = min(2.0 ** delivery["attempt"], 7200.0)
            self.outbox.append({**delivery, "attempt": delivery["attempt"] + 1, "due": self.clock.now() + backoff})

    # -- the sandbox's own ledger ---------------------------------------------------------

    def ledger(self) -> dict[str, Any]:
        return {
            "payouts": [
                {
                    "reference": p.reference,
                    "id": p.id,
                    "kind": p.kind,
                    "payee": p.payee,
                    "amount": p.amount,
                    "currency": p.currency,
                    "debit": p.debit,
                    "fee": p.fee,
                    "status": p.status,
                    "parked": p.parked,
                    "executed": not p.parked,
                    "history": [{"at": at, "status": status} for at, status in p.history],
                }
                for p in self.payouts
            ],
            "posts": self.posts,
            "webhooks": [{k: v for k, v in w.items() if k != "_delivery"} for w in self.webhooks_sent],
            "wallets": [w.view() for w in self.wallets.values()],
            "customers": list(self.customers.values()),
            "rate_limited": dict(self.rate_limited),
            "early_requests": dict(self.early_requests),
        }

    # -- account validation (confirmation of payee) ------------------------------------------

    def validate_mobile_money(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``POST /customer/validate/mobile-money`` for a phone, a till or a paybill."""
        kind = str(body.get("accountType") or "mobile_money")
        expected = _optional_text(body.get("accountName"))
        if kind not in ("mobile_money", "paybill", "till"):
            raise Refusal(
                400,
                "Validation failed: accountType must be one of mobile_money, paybill, till",
                {"errors": ["accountType must be one of mobile_money, paybill, till"]},
            )
        if kind in ("paybill", "till"):
            return self._validate_shortcode(kind, body, expected)
        phone = str(body.get("phoneNumber") or "").strip()
        if not phone:
            raise Refusal(
                400,
                "Validation failed: phoneNumber is required",
                {"errors": ["phoneNumber is required unless accountType is paybill or till"]},
            )
        found = seed.country_of_phone(phone) if phone.startswith("+") and phone[1:].isdigit() else None
        if found is None or not 9 <= len(phone) <= 16:
            return {
                "isValid": False,
                "isSupported": False,
                "accountType": kind,
                "requiresInternationalization": not phone.startswith("+"),
                "message": "Phone number is not valid; send it in international format, e.g. +254712345678",
            }
        country, calling = found
        national = phone[1 + len(calling) :]
        network = body.get("network") or (country.networks[0] if country.networks else "NOT_SUPPORTED")
        data: dict[str, Any] = {
            "isValid": True,
            "isSupported": bool(country.networks),
            "accountType": kind,
            "requiresInternationalization": False,
            "countryCode": country.code,
            "countryName": country.name,
            "callingCode": f"+{calling}",
            "internationalNumber": phone,
            "nationalNumber": "0" + national,
            "currency": country.currency,
            "network": network,
        }
        ending = "".join(ch for ch in phone if ch.isdigit())[-9:]
        customer = self.customer_by_phone(phone)
        registered = (customer or {}).get("account_name") or None
        look = seed.PHONE_LOOKUPS.get(ending) or seed.LookupSeed("MATCHED", registered and str(registered).upper())
        return {**data, **self._name_lookup(f"phone:{phone}", look, expected)}

    def _validate_shortcode(self, kind: str, body: dict[str, Any], expected: str | None) -> dict[str, Any]:
        code = str(body.get("shortCode") or "").strip()
        if not code:
            raise Refusal(
                400,
                "Validation failed: shortCode is required",
                {"errors": ["shortCode is required when accountType is paybill or till"]},
            )
        country = seed.country(str(body.get("countryCode") or "KE"))
        data: dict[str, Any] = {
            "isValid": code.isdigit() and 5 <= len(code) <= 8,
            "isSupported": country is not None and country.code == "KE",
            "accountType": kind,
            "countryCode": country.code if country else "",
            "currency": "KES",
            "network": "MPESA",
        }
        if not data["isValid"]:
            return {**data, "message": "A shortcode has 5 to 8 digits"}
        look = seed.SHORTCODE_LOOKUPS.get(code) or seed.LookupSeed("MATCHED")
        account = f"{kind}:{code}:{body.get('accountReference') or ''}"
        return {**data, **self._name_lookup(account, look, expected)}

    def validate_bank(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``POST /customer/validate/bank``."""
        missing = [f"{f} is required" for f in ("accountNumber", "bankCode", "countryCode") if not body.get(f)]
        if missing:
            raise Refusal(400, "Validation failed: " + "; ".join(missing), {"errors": missing})
        number, code = str(body["accountNumber"]).strip(), str(body["bankCode"]).strip()
        expected = _optional_text(body.get("accountName"))
        country = seed.country(str(body["countryCode"]))
        data: dict[str, Any] = {
            "isValid": number.isdigit() and 6 <= len(number) <= 16,
            "isSupported": country is not None and country.code in ("KE", "ZA"),
            "accountType": "bank",
            "countryCode": country.code if country else "",
        }
        if country is None or not data["isSupported"]:
            return {**data, "message": "Bank accounts can be validated in Kenya and South Africa only"}
        data["currency"] = country.currency
        bank = dict(seed.BANKS.get(country.currency, ())).get(code)
        if bank is None:
            return {**data, "isValid": False, "message": f"Unknown bank code {code} for {country.code}"}
        data["bankName"] = bank
        if not data["isValid"]:
            return {**data, "message": "Account number must be 6 to 16 digits"}
        look = seed.BANK_LOOKUPS.get(number) or seed.LookupSeed("MATCHED")
        return {**data, **self._name_lookup(f"bank:{code}:{number}", look, expected)}

    def _name_lookup(self, account: str, look: seed.LookupSeed, expected: str | None) -> dict[str, Any]:
        """The name-lookup fields of an answer; records the lookup."""
        earlier = sum(1 for x in self.lookups if x["account"] == account)
        self.lookups.append({"account": account, "name": expected, "at": self.clock.now()})
        status = "TIMEOUT" if earlier < look.timeouts_first else look.status
        out: dict[str, Any] = {"nameLookupStatus": status}
        if status == "TIMEOUT" and look.status != "TIMEOUT":
            return {**out, "nameLookupReason": seed.PHONE_LOOKUPS["700000005"].reason}
        if status != "MATCHED":
            return {**out, "nameLookupReason": look.reason} if look.reason else out
        real = look.name or (expected or "").upper() or "ACCOUNT HOLDER"
        shown = _mask(real) if look.masked else real
        out.update({"accountName": shown, "accountStatus": look.account_status})
        if look.scored and expected:
            score = _name_score(expected, real)
            threshold = self.knobs.name_match_threshold
            out["matchScore"] = score
            out["nameMatch"] = {
                "provided": expected,
                "score": score,
                "matched": score >= threshold,
                "threshold": threshold,
                "masked": look.masked,
            }
        return out


def _optional_text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _name_score(expected: str, registered: str) -> int:
    """0-100: how alike two names are, words in any order (the sandbox's own rough measure)."""

    def words(name: str) -> str:
        plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
        return " ".join(sorted(re.findall(r"[a-z]+", plain)))

    return round(difflib.SequenceMatcher(None, words(expected), words(registered)).ratio() * 100)


def _mask(name: str) -> str:
    """ "JANE MARY DOE" -> "J*** M*** D**": the first letter of each word."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def _public(delivery: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": delivery["url"],
        "reference": delivery["reference"],
        "status": delivery["status"],
        "attempt": delivery["attempt"],
        "replay": delivery.get("replay", False),
    }

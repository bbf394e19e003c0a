"""Look each payee's account up once, on the reads budget, and hand out verdicts as they arrive.

Confirmation of payee runs beside payment, not before all of it: :func:`verify_rows` yields each
verdict as soon as its look-up is back (first rows first), so paying the first row waits only for
its own look-up. Answers that found an active account are cached per environment with their time; a TIMEOUT, an
ERROR or no answer is tried again a bounded number of times, then the row is "not verified".
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batch_payouts import errors
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.kotani.wire import AccountValidation, ValidateBank, ValidateMobileMoney
from batch_payouts.ledger import Ledger
from batch_payouts.model import BankPayout, MobileMoneyPayout, PaybillPayout, Payout, TillPayout
from batch_payouts.policy import Policy
from batch_payouts.verify import (
    OUR_THRESHOLD,
    RETRYABLE,
    Verdict,
    from_cache,
    not_offered,
    unverified,
    verdict_for,
)

DAY = 86400.0


NOT_OFFERED = "not offered: "


class ReadsBudget(Protocol):
    """The reads limiter (``ratelimit.Limiter``): wait for room; hold the class after a 429."""

    async def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class CachedLookup:
    """An earlier answer and when it was received (epoch seconds)."""

    answer: AccountValidation
    checked_at: float


class LookupCache(Protocol):
    """Answers kept per environment (base URL + Kotani account), payee and expected name."""

    def get(self, environment: str, payee_key: str, name: str, max_age_seconds: float) -> CachedLookup | None:
        """The answer received at most ``max_age_seconds`` ago, if any."""
        ...

    def put(self, environment: str, payee_key: str, name: str, answer: AccountValidation, checked_at: float) -> None:
        """Keep ``answer``, received at ``checked_at`` (epoch seconds); replaces an older one."""
        ...


class MemoryLookupCache:
    """A :class:`LookupCache` in a dict (tests; one process)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: dict[tuple[str, str, str], CachedLookup] = {}
        self.puts = 0

    def get(self, environment: str, payee_key: str, name: str, max_age_seconds: float) -> CachedLookup | None:
        found = self._items.get((environment, payee_key, name))
        if found is None or self._clock() - found.checked_at > max_age_seconds:
            return None
        return found

    def put(self, environment: str, payee_key: str, name: str, answer: AccountValidation, checked_at: float) -> None:
        self._items[(environment, payee_key, name)] = CachedLookup(answer, checked_at)
        self.puts += 1


def encode_answer(answer: AccountValidation) -> str:
    """The answer as JSON text, for a cache that stores text (the ledger)."""
    return answer.model_dump_json(by_alias=True, exclude_none=True)


def decode_answer(text: str) -> AccountValidation:
    return AccountValidation.model_validate_json(text)


class LedgerLookupCache:
    """A :class:`LookupCache` in the ledger (the ``lookups`` table), kept across runs; its age is
    measured by the ledger's clock (epoch seconds)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def get(self, environment: str, payee_key: str, name: str, max_age_seconds: float) -> CachedLookup | None:
        found = self.ledger.cached_lookup(environment, payee_key, name, max_age_seconds)
        return CachedLookup(decode_answer(found[0]), found[1]) if found is not None else None

    def put(self, environment: str, payee_key: str, name: str, answer: AccountValidation, checked_at: float) -> None:
        self.ledger.remember_lookup(environment, payee_key, name, encode_answer(answer), checked_at)


@dataclass(frozen=True)
class VerifySettings:
    """How to confirm payees. Seconds throughout."""

    environment: str
    allow_unverified: bool = False
    max_age_seconds: float = 30 * DAY  # reuse a cached answer this long
    tries: int = 3  # look-ups per account at most when the answer is TIMEOUT, ERROR or missing
    retry_wait: float = 2.0  # before the second try; doubled before each later one
    max_rate_pause: float = 60.0  # a 429 asking for longer makes the row "not verified" instead
    concurrency: int = 8  # look-ups in flight at once (the reads budget still rules)
    our_threshold: float = OUR_THRESHOLD


def settings_from(policy: Policy, environment: str, **overrides: Any) -> VerifySettings:
    """Verification settings from the policy's ``[verify]`` section (and any field given here)."""
    v = policy.verify
    return VerifySettings(
        environment,
        allow_unverified=v.allow_unverified,
        max_age_seconds=v.reuse_days * DAY,
        tries=v.tries,
        our_threshold=v.our_threshold,
        **overrides,
    )


def reusable(answer: AccountValidation) -> bool:
    """Only an answer that found an active account with a name is reused; any other (not found,
    frozen, unavailable, name checks off, timed out) is asked again next run: it may have changed."""
    return (
        (answer.name_lookup_status or "").upper() == "MATCHED"
        and answer.is_valid
        and (answer.account_status or "ACTIVE").upper() == "ACTIVE"
    )


def request_for(payout: Payout) -> ValidateMobileMoney | ValidateBank:
    """The validate request for a row, carrying the spreadsheet's name."""
    if isinstance(payout, MobileMoneyPayout):
        return ValidateMobileMoney(
            account_type="mobile_money", phone_number=payout.phone, network=payout.network, account_name=payout.name
        )
    if isinstance(payout, TillPayout):
        return ValidateMobileMoney(
            account_type="till", short_code=payout.till_number, country_code=payout.country, account_name=payout.name
        )
    if isinstance(payout, PaybillPayout):
        return ValidateMobileMoney(
            account_type="paybill",
            short_code=payout.paybill_number,
            account_reference=payout.account_reference,
            country_code=payout.country,
            account_name=payout.name,
        )
    assert isinstance(payout, BankPayout)
    return ValidateBank(
        account_number=payout.account_number,
        bank_code=payout.bank_code,
        country_code=payout.country,
        account_name=payout.name,
    )


class VerdictStream:
    """Verdicts in the order their look-ups come back. An error that stops every look-up (a key
    Kotani refuses) is raised where the stream would end."""

    def __init__(self, receive: MemoryObjectReceiveStream[Verdict], failure: list[BaseException]) -> None:
        self._receive = receive
        self._failure = failure

    def __aiter__(self) -> VerdictStream:
        return self

    async def __anext__(self) -> Verdict:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            if self._failure:
                raise self._failure[0] from None
            raise StopAsyncIteration from None


@asynccontextmanager
async def verify_rows(
    client: KotaniClient,
    reads: ReadsBudget,
    payouts: Sequence[Payout],
    cache: LookupCache,
    settings: VerifySettings,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    slots: anyio.Semaphore | None = None,
) -> AsyncIterator[VerdictStream]:
    """Confirm every payee while the caller consumes verdicts::

        async with verify_rows(client, reads, payouts, cache, settings) as verdicts:
            async for verdict in verdicts:
                ...  # pay verdict.row if verdict.decision is Decision.PAY

    Rows with the same payee and name share one look-up. ``clock`` gives epoch seconds for the
    cache; ``sleep`` waits between tries; ``slots``, when given, are request slots shared with other
    work (a run's ``--concurrency``): each look-up holds one from its budget check until its answer.
    Leaving the block early stops the remaining look-ups."""
    groups: dict[tuple[str, str], list[Payout]] = {}
    for payout in payouts:
        groups.setdefault((payout.payee(), payout.name), []).append(payout)
    send, receive = anyio.create_memory_object_stream[Verdict](max_buffer_size=math.inf)
    failure: list[BaseException] = []
    checker = _Checker(client, reads, cache, settings, clock, sleep, slots)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(checker.produce, list(groups.values()), send, failure)
            try:
                with receive:
                    yield VerdictStream(receive, failure)
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # one error, from the stream or the caller's block: raise it as is
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def verify_all(
    client: KotaniClient,
    reads: ReadsBudget,
    payouts: Sequence[Payout],
    cache: LookupCache,
    settings: VerifySettings,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    heard: Callable[[int], None] | None = None,
) -> dict[int, Verdict]:
    """Every verdict, by sheet row (for ``validate --verify`` and ``plan``); ``heard`` is told how
    many rows have their verdict, after each one."""
    out: dict[int, Verdict] = {}
    async with verify_rows(client, reads, payouts, cache, settings, clock=clock, sleep=sleep) as verdicts:
        async for verdict in verdicts:
            out[verdict.row] = verdict
            if heard is not None:
                heard(len(out))
    return out


def cached_verdicts(payouts: Sequence[Payout], cache: LookupCache, settings: VerifySettings) -> dict[int, Verdict]:
    """The verdicts that answers kept in ``cache`` give, by sheet row; nothing is asked, and rows
    without a kept answer are left out."""
    out: dict[int, Verdict] = {}
    for payout in payouts:
        cached = cache.get(settings.environment, payout.payee(), payout.name, settings.max_age_seconds)
        if cached is not None:
            verdict = verdict_for(
                cached.answer, payout, allow_unverified=settings.allow_unverified, our_threshold=settings.our_threshold
            )
            out[payout.row] = from_cache(verdict, cached.checked_at)
    return out


class _Checker:
    def __init__(
        self,
        client: KotaniClient,
        reads: ReadsBudget,
        cache: LookupCache,
        settings: VerifySettings,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        slots: anyio.Semaphore | None = None,
    ) -> None:
        self.client = client
        self.reads = reads
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.slots = slots

    def slot(self) -> AbstractAsyncContextManager[object]:
        """One of the shared request slots, or nothing to wait for when there are none."""
        return self.slots if self.slots is not None else contextlib.nullcontext()

    async def produce(
        self, groups: list[list[Payout]], send: MemoryObjectSendStream[Verdict], failure: list[BaseException]
    ) -> None:
        queue = iter(groups)

        async def worker(tg: TaskGroup) -> None:
            for group in queue:
                try:
                    verdicts = await self.check(group)
                except (errors.AuthenticationError, errors.ConfigError) as exc:
                    failure.append(exc)
                    tg.cancel_scope.cancel()
                    return
                for verdict in verdicts:
                    await send.send(verdict)

        with send:
            async with anyio.create_task_group() as tg:
                for _ in range(max(1, min(self.settings.concurrency, len(groups)))):
                    tg.start_soon(worker, tg)

    async def check(self, group: list[Payout]) -> list[Verdict]:
        """Verdicts for rows sharing one payee and name: from the cache, else from one look-up."""
        s, first = self.settings, group[0]
        cached = self.cache.get(s.environment, first.payee(), first.name, s.max_age_seconds)
        if cached is not None:
            return [from_cache(self._verdict(cached.answer, p, 1), cached.checked_at) for p in group]
        answer, tries, why = await self.look_up(first)
        if answer is None and why.startswith(NOT_OFFERED):
            return [not_offered(p, why.removeprefix(NOT_OFFERED)) for p in group]
        if answer is None:
            return [unverified(p, why, tries=tries, allow_unverified=s.allow_unverified) for p in group]
        checked_at = self.clock()
        if reusable(answer):
            self.cache.put(s.environment, first.payee(), first.name, answer, checked_at)
        return [replace(self._verdict(answer, p, tries), checked_at=checked_at) for p in group]

    def _verdict(self, answer: AccountValidation, payout: Payout, tries: int) -> Verdict:
        return verdict_for(
            answer,
            payout,
            allow_unverified=self.settings.allow_unverified,
            our_threshold=self.settings.our_threshold,
            tries=tries,
        )

    async def look_up(self, payout: Payout) -> tuple[AccountValidation | None, int, str]:
        """The last answer (None when none came), how many tries it took, and why the last failed."""
        s = self.settings
        body = request_for(payout)
        answer: AccountValidation | None = None
        why = ""
        for attempt in range(1, s.tries + 1):
            if attempt > 1:
                await self.sleep(s.retry_wait * 2 ** (attempt - 2))
            try:
                answer = await self.ask(body)
            except errors.RateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else 5.0
                why = f"Kotani asked us to wait {wait:g} s"
                if wait > s.max_rate_pause:
                    return None, attempt, why
                self.reads.pause(wait)
                continue
            except (errors.ServerError, errors.UnexpectedResponse, errors.NoAnswer) as exc:
                why = f"no usable answer from Kotani: {exc}"
                continue
            except errors.AuthenticationError:
                raise
            except (errors.NotFound, errors.PermissionDenied) as exc:
                # The look-up itself is not offered to this account (no such endpoint, no permission):
                # like NOT_ENABLED, the row is paid on the details in the file, with a note.
                return None, attempt, f"{NOT_OFFERED}Kotani answered {exc.status} to the look-up"
            except errors.ApiError as exc:  # 400: asking again will not help
                return None, attempt, f"Kotani refused the look-up: {exc.message}"
            if (answer.name_lookup_status or "").upper() not in RETRYABLE:
                return answer, attempt, ""
        return answer, s.tries, why

    async def ask(self, body: ValidateMobileMoney | ValidateBank) -> AccountValidation:
        """One look-up: a request slot (if shared), room in the reads budget, then the request."""
        async with self.slot():
            await self.reads.acquire()
            if isinstance(body, ValidateBank):
                return await self.client.validate_bank(body)
            return await self.client.validate_mobile_money(body)

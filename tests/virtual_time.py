"""Injected time that passes like real time would, only faster: every pause of every task waits for
its own deadline, and the clock jumps to the next deadline only once nothing else can happen first
(no request on its way to the sandbox, and every task has had its turn). So the sandbox's timestamps
show what a real run would, minus the waiting. Requests are real HTTP to the sandbox; the transport
only counts the ones on their way."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx

from batch_payouts.sandbox import SandboxClock

YIELDS = 50  # turns given to every other task before the clock may jump


class CountingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, counting the requests whose answer has not come back yet. An answer has come
    back once its body has: the headers alone may arrive first, and the clock must not jump while
    the body is still on its way."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        try:
            response = await self.inner.handle_async_request(request)
            try:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, extensions=response.extensions
            )
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


class VirtualTime:
    """Epoch seconds from ``start``; the sandbox's clock moves with them."""

    def __init__(self, start: float, sandbox_clock: SandboxClock) -> None:
        self.now = start
        self.sandbox_clock = sandbox_clock
        self.transport = CountingTransport()
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), woken))
        await woken.wait()

    async def _quiet(self) -> None:
        """Until no request is on its way and every task has had YIELDS turns meanwhile."""
        calm = 0
        while calm < YIELDS:
            await anyio.sleep(0 if self.transport.in_flight == 0 else 0.0005)
            calm = calm + 1 if self.transport.in_flight == 0 else 0

    async def _drive(self) -> None:
        while True:
            await self._quiet()
            if not self._sleepers:
                continue
            deadline = self._sleepers[0][0]
            if deadline > self.now:
                self.sandbox_clock.advance(deadline - self.now)
                self.now = deadline
            while self._sleepers and self._sleepers[0][0] <= self.now:
                heapq.heappop(self._sleepers)[2].set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The clock moves while the block runs."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

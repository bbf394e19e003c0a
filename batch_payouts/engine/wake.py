"""What wakes the run loop before its tick: a row found payable, a payment's slot come free, a
stop. Without it a finished payout's slot waits up to a tick to be filled again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


class Wake:
    """A wake-up call for one sleeper (the run loop). Calls made while it is awake are kept for
    its next nap, which then returns at once. Usable before the event loop runs."""

    def __init__(self) -> None:
        self._woken = False
        self._event: anyio.Event | None = None

    def __call__(self) -> None:
        self._woken = True
        if self._event is not None:
            self._event.set()

    async def nap(self, seconds: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Up to ``seconds`` of ``sleep``, less when woken meanwhile (or since the last nap)."""
        if not self._woken:
            self._event = event = anyio.Event()
            async with anyio.create_task_group() as naps:

                async def until(waited: Callable[[], Awaitable[object]]) -> None:
                    await waited()
                    naps.cancel_scope.cancel()

                naps.start_soon(until, lambda: sleep(seconds))
                naps.start_soon(until, event.wait)
            self._event = None
        self._woken = False

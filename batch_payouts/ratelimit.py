"""Async sliding-window limiters per endpoint class, with an injectable clock.

The provider counts requests in sliding windows (money movement: 60 per minute and 20 per 5 s;
reads: 100 per 5 s). A limiter keeps the send times of its class and lets a request go only when
every window has room, widened by a small margin so that network jitter cannot make two
requests look closer together at the provider than they were here. A 429 pauses the class.

Why not aiolimiter or similar: they use the event loop's clock (no injection for tests) and a
single leaky bucket, which cannot express two windows at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from batch_payouts.errors import ConfigError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Window:
    """At most ``limit`` requests in any ``seconds``-long window."""

    limit: int
    seconds: float


MONEY_DEFAULT = (Window(60, 60.0), Window(20, 5.0))
READS_DEFAULT = (Window(100, 5.0),)


class Limiter:
    """Waits until a request of this class may go; never exceeds any of its windows."""

    def __init__(self, windows: tuple[Window, ...], *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep, margin: float = 0.5, name: str = "") -> None:
        if not windows or any(w.limit < 1 or w.seconds <= 0 for w in windows):
            raise ValueError("a limiter needs windows with a positive limit and length")
        self.windows = windows
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def pause(self, seconds: float) -> None:
        """Send nothing of this class for ``seconds`` (after a 429)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def delay(self) -> float:
        """Seconds until the next request may go (0 when it may go now)."""
        now = self._clock()
        wait = self._paused_until - now
        longest = max(w.seconds for w in self.windows) + self._margin
        while self._sent and self._sent[0] <= now - longest:
            self._sent.popleft()
        for window in self.windows:
            span = window.seconds + self._margin
            inside = [t for t in self._sent if t > now - span]
            if len(inside) >= window.limit:
                wait = max(wait, inside[len(inside) - window.limit] + span - now)
        return max(0.0, wait)

    async def acquire(self) -> None:
        """Wait for room, then take it."""
        async with self._lock:
            while (wait := self.delay()) > 0:
                self.waited += wait
                await self._sleep(wait)
            self._sent.append(self._clock())

    def rate_per_minute(self) -> float:
        """The sustained allowance of the tightest window, per minute."""
        return min(w.limit * 60.0 / w.seconds for w in self.windows)


def parse_rate(text: str) -> tuple[Window, ...]:
    """``"60/60,20/5"``: limit/seconds pairs."""
    windows = []
    for part in text.split(","):
        limit, _, seconds = part.strip().partition("/")
        try:
            window = Window(int(limit), float(seconds or 60))
        except ValueError:
            window = Window(0, 0.0)
        if window.limit <= 0 or not 0 < window.seconds < 86400:
            raise ConfigError(f"{text!r} is not a rate: write limit/seconds pairs, e.g. 60/60,20/5")
        windows.append(window)
    return tuple(windows)

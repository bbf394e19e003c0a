"""Async sliding-window limiters per endpoint class, with an injectable clock.

The provider counts requests in sliding windows (money movement: 60 per minute and 20 per 5 s;
reads: 100 per 5 s). A limiter keeps the send times of its class and lets a request go only when
every window has room, widened by a small margin so that network jitter cannot make two
requests look closer together at the provider than they were here.

A 429 holds its whole class: :class:`Holds` is the one record of those holds, shared by a
session's HTTP clients and limiters, and the one place that knows how long a hold may be waited
out (``max_hold``) before a run stops instead.

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
MONEY, READS = "money", "reads"  # the provider's request classes: payout POSTs, and everything else
MAX_HOLD = 900.0  # seconds: a longer advertised wait stops the run (resumable) instead of being slept


class Holds:
    """The provider's 429 holds per request class: no request of a held class is sent before its
    hold ends. One per session, shared by its clients and limiters (times on ``clock``, seconds)."""

    def __init__(self, *, clock: Clock = time.monotonic, max_hold: float = MAX_HOLD) -> None:
        self.clock = clock
        self.max_hold = max_hold
        self._until: dict[str, float] = {}

    def hold(self, klass: str, seconds: float) -> None:
        """Hold ``klass`` for ``seconds`` from now (a later end wins)."""
        self._until[klass] = max(self._until.get(klass, 0.0), self.clock() + seconds)

    def held_for(self, klass: str) -> float:
        """Seconds until requests of ``klass`` may be sent again (0 when not held)."""
        return max(0.0, self._until.get(klass, 0.0) - self.clock())

    def too_long(self, seconds: float) -> bool:
        """True when a wait of ``seconds`` is longer than a run waits out."""
        return seconds > self.max_hold


class Limiter:
    """Waits until a request of this class may go; never exceeds any of its windows."""

    def __init__(self, windows: tuple[Window, ...], *, klass: str = READS, holds: Holds | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, margin: float = 0.5) -> None:
        if not windows or any(w.limit < 1 or w.seconds <= 0 for w in windows):
            raise ValueError("a limiter needs windows with a positive limit and length")
        self.windows = windows
        self.klass = klass
        self.holds = holds if holds is not None else Holds(clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0

    @property
    def name(self) -> str:
        """What a person reads for this class: "payouts" or "reads"."""
        return "payouts" if self.klass == MONEY else self.klass

    def pause(self, seconds: float) -> None:
        """Send nothing of this class for ``seconds`` (after a 429): a hold of the whole class."""
        self.holds.hold(self.klass, seconds)

    def delay(self) -> float:
        """Seconds until the next request may go (0 when it may go now)."""
        now = self._clock()
        wait = self.holds.held_for(self.klass)
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

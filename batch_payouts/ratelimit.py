"""Async sliding-window limiters per endpoint class, with an injectable clock.

The provider counts requests in sliding windows (money movement: 60 per minute and 20 per 5 s;
reads: 100 per 5 s). A limiter keeps the send times of its class and lets a request go only when
every window has room, widened by a small margin so that network jitter cannot make two
requests look closer together at the provider than they were here.

A 429 holds its whole class: :class:`Holds` is the one record of those holds, shared by a
session's HTTP clients and limiters, and the one place that knows how long a hold may be waited
out (``max_hold``) before a run stops instead.

Requests wait their turn in order, except that an urgent one (the reads a payment needs to leave)
goes before every waiting request that is not (say the look-ups of rows further down the file).

Why not aiolimiter or similar: they use the event loop's clock (no injection for tests) and a
single leaky bucket, which cannot express two windows at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
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
# Seconds each window is widened by. A read refused with a 429 costs a wait and is sent again, never
# money, so the reads allowance is used with a tighter margin (4 % of its 5-s window: 96 % of it).
MARGIN = 0.5
READS_MARGIN = 0.2


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

    def __init__(
        self,
        windows: tuple[Window, ...],
        *,
        klass: str = READS,
        holds: Holds | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float = MARGIN,
    ) -> None:
        if not windows or any(w.limit < 1 or w.seconds <= 0 for w in windows):
            raise ValueError("a limiter needs windows with a positive limit and length")
        self.windows = windows
        self.klass = klass
        self.holds = holds if holds is not None else Holds(clock=clock)
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._sent: deque[float] = deque()
        self._busy = False  # a request holds the turn (waiting for room, or taking it)
        # (0 urgent / 1 not, steps left to its payment, arrival, waiter)
        self._turns: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self.waited = 0.0

    @property
    def name(self) -> str:
        """What a person reads for this class: "payouts" or "reads"."""
        return "payouts" if self.klass == MONEY else self.klass

    def seed(self, sent: Iterable[float]) -> None:
        """Requests of this class already sent by other means at these times (this limiter's
        clock): they count against the windows like the limiter's own."""
        self._sent = deque(sorted([*self._sent, *sent]))

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

    async def acquire(self, *, urgent: bool = False, steps_left: int = 0) -> None:
        """Wait for the turn and for room, then take it. An ``urgent`` request gets the turn before
        every waiting request that is not, and among urgent ones the request whose payment is the
        fewest ``steps_left`` (requests) from leaving goes first; among equals, first come first served."""
        await self._take_turn(urgent, steps_left)
        try:
            while (wait := self.delay()) > 0:
                self.waited += wait
                await self._sleep(wait)
            self._sent.append(self._clock())
        finally:
            self._pass_turn()

    async def _take_turn(self, urgent: bool, steps_left: int) -> None:
        if not self._busy and not self._turns:
            self._busy = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (0 if urgent else 1, steps_left if urgent else 0, next(self._arrivals), waiter)
        heapq.heappush(self._turns, entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._pass_turn()  # handed the turn just as it was cancelled: hand it on
            elif entry in self._turns:  # (a turn being handed on may have dropped it already)
                self._turns.remove(entry)
                heapq.heapify(self._turns)
            raise

    def _pass_turn(self) -> None:
        """The turn to the first waiting request (urgent ones first), or free."""
        while self._turns:
            *_, waiter = heapq.heappop(self._turns)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._busy = False

    def rate_per_minute(self) -> float:
        """The sustained allowance of the tightest window, per minute."""
        return sustained_per_second(self.windows) * 60.0


def sustained_per_second(windows: tuple[Window, ...]) -> float:
    """Requests per second the tightest of ``windows`` lets through over time."""
    return min(w.limit / w.seconds for w in windows)


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

"""The reads and payouts allowances: requests wait their turn, an urgent one (a read a payment
waits for) goes before the others waiting, no window is ever overfilled, and a request given up
while waiting does not block the ones behind it."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_payouts.ratelimit import Limiter, Window
from batch_payouts.sandbox import SandboxClock
from tests.virtual_time import VirtualTime


def limiter(time: VirtualTime, *windows: Window) -> Limiter:
    return Limiter(windows, clock=time.clock, sleep=time.sleep, margin=0)


def fresh() -> VirtualTime:
    return VirtualTime(0.0, SandboxClock(speed=0.0))


def requests(
    time: VirtualTime, gate: Limiter, asks: list[tuple[str, bool]], steps: dict[str, int] | None = None
) -> list[tuple[str, float]]:
    """Each (name, urgent) asks in this order, all before any time passes, ``steps`` left to its
    payment (default 0); (name, when it got room)."""
    got: list[tuple[str, float]] = []

    async def ask(name: str, urgent: bool) -> None:
        await gate.acquire(urgent=urgent, steps_left=(steps or {}).get(name, 0))
        got.append((name, time.now))

    async def main() -> None:
        async with time.running(), anyio.create_task_group() as tg:
            for name, urgent in asks:
                tg.start_soon(ask, name, urgent)
                await anyio.sleep(0)

    anyio.run(main)
    return got


def test_an_urgent_request_goes_before_the_others_waiting() -> None:
    time = fresh()
    gate = limiter(time, Window(1, 5.0))
    asks = [("look-up 1", False), ("look-up 2", False), ("look-up 3", False), ("look-up 4", False), ("customer", True)]
    got = requests(time, gate, asks)
    assert got == [
        ("look-up 1", 0.0),
        ("look-up 2", 5.0),
        ("customer", 10.0),
        ("look-up 3", 15.0),
        ("look-up 4", 20.0),
    ], "look-up 2 already held the turn; the customer read goes next"


def test_among_urgent_reads_the_payment_nearest_to_leaving_goes_first() -> None:
    """Row 3's customer look-up asked first, but row 2's customer creation is the last read before
    row 2's payout: it goes first, so a payment is not held back by the ones that follow it."""
    time = fresh()
    gate = limiter(time, Window(1, 5.0))
    asks = [
        ("look-up 4", False),
        ("look-up 5", False),
        ("row 3 look-up", True),
        ("row 2 creation", True),
        ("look-up 6", False),
    ]
    got = requests(time, gate, asks, steps={"row 3 look-up": 2, "row 2 creation": 1})
    assert got == [
        ("look-up 4", 0.0),
        ("look-up 5", 5.0),
        ("row 2 creation", 10.0),
        ("row 3 look-up", 15.0),
        ("look-up 6", 20.0),
    ], "look-up 5 already held the turn; then the creation, one step from its payout"


def test_equals_are_served_in_order_of_arrival() -> None:
    time = fresh()
    got = requests(time, limiter(time, Window(2, 5.0)), [(str(n), n % 2 == 0) for n in range(7)])
    assert [name for name, _ in got] == ["0", "1", "2", "4", "6", "3", "5"], "2 held the turn when 4 and 6 came"


def test_a_request_given_up_while_waiting_hands_the_turn_on() -> None:
    time = fresh()
    gate = limiter(time, Window(1, 5.0))
    got: list[tuple[str, float]] = []

    async def ask(name: str, urgent: bool = False) -> None:
        await gate.acquire(urgent=urgent)
        got.append((name, time.now))

    scopes: list[anyio.CancelScope] = []

    async def give_up_later(name: str) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await ask(name)

    async def main() -> None:
        async with time.running(), anyio.create_task_group() as tg:
            await ask("first")
            tg.start_soon(give_up_later, "given up while waiting for room")  # holds the turn
            await anyio.sleep(0)
            tg.start_soon(give_up_later, "given up while waiting for the turn")
            await anyio.sleep(0)
            tg.start_soon(ask, "last", True)
            await anyio.sleep(0)
            for scope in scopes:
                scope.cancel()

    anyio.run(main)
    assert got == [("first", 0.0), ("last", 5.0)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=25), st.integers(1, 4), st.sampled_from([1.0, 5.0]))
def test_no_window_is_ever_overfilled(urgency: list[bool], limit: int, seconds: float) -> None:
    time = fresh()
    got = requests(time, limiter(time, Window(limit, seconds)), [(str(n), urgent) for n, urgent in enumerate(urgency)])
    times = sorted(t for _, t in got)
    assert len(times) == len(urgency)
    for i, start in enumerate(times):
        assert sum(start <= t < start + seconds for t in times[i:]) <= limit


@pytest.mark.parametrize("urgent", [False, True])
def test_a_free_limiter_lets_a_request_go_at_once(urgent: bool) -> None:
    time = fresh()
    assert requests(time, limiter(time, Window(3, 5.0)), [("only", urgent)]) == [("only", 0.0)]


def test_reads_sent_by_other_means_count_against_the_window() -> None:
    """The catalog and the wallets are read before the look-ups start: a limiter told of them
    (``seed``) does not overfill the window they are in."""
    time = fresh()
    gate = limiter(time, Window(3, 5.0))
    gate.seed([0.0, 0.0])
    assert requests(time, gate, [("look-up 1", False), ("look-up 2", False)]) == [
        ("look-up 1", 0.0),
        ("look-up 2", 5.0),
    ]

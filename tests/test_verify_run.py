"""Confirmation of payee inside a run: the engine looks each payee up before paying it, beside
payment, and pays, holds or refuses each row exactly as its verdict says. A held row is paid only
after an operator accepts it. Driven in-process against the sandbox over HTTP, with injected time."""

from __future__ import annotations

import csv
import dataclasses
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from batch_payouts import errors
from batch_payouts.engine import verify_stage
from batch_payouts.engine.results import write_results
from batch_payouts.engine.run import RunResult, pay_checked, run_batch
from batch_payouts.engine.submit import Context, Settings
from batch_payouts.engine.verify_stage import accept_held, with_policy
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.ledger import MIGRATIONS, Ledger, NewRow, RowRecord
from batch_payouts.model import MobileMoneyPayout, RowState
from batch_payouts.policy import parse_policy
from batch_payouts.ratelimit import Limiter, Window
from batch_payouts.sandbox import RunningSandbox, SandboxClock
from tests.conftest import API_KEY
from tests.virtual_time import VirtualTime

START = 1_790_000_000.0  # 2026-09-21, epoch seconds
DAY = 86400.0
OPEN_WINDOW = (Window(100_000, 1.0),)


class FakeTime:
    """Epoch seconds that move only when the engine sleeps; the sandbox's clock moves with them."""

    def __init__(self, sandbox_clock: SandboxClock) -> None:
        self.now = START
        self.sandbox_clock = sandbox_clock

    def clock(self) -> float:
        return self.now

    def pass_days(self, days: float) -> None:
        self.now += days * DAY
        self.sandbox_clock.advance(days * DAY)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sandbox_clock.advance(seconds)
        await anyio.sleep(0)


def person(row: int, phone: str, name: str, amount: int = 1500) -> MobileMoneyPayout:
    return MobileMoneyPayout(row=row, name=name, amount=Decimal(amount), currency="KES", country="KE", phone=phone)


def new_batch(
    ledger: Ledger,
    batch_id: str,
    payouts: Sequence[MobileMoneyPayout],
    *,
    env_id: str = "e1",
    state: RowState = RowState.READY,
    note: str | None = None,
) -> None:
    rows = [
        NewRow(p.row, state, p, {"name": p.name, "phone": p.phone}, [], (f"{batch_id}:{p.row}",), note=note)
        for p in payouts
    ]
    ledger.create_batch(
        batch_id,
        env_id=env_id,
        fingerprint=batch_id,
        label="",
        source=f"{batch_id}.csv",
        options={},
        headers=["name", "phone"],
        rows=rows,
    )


def run(
    sandbox: RunningSandbox,
    ledger: Ledger,
    fake: FakeTime,
    batch_id: str,
    *,
    env_id: str = "e1",
    reads: tuple[Window, ...] = OPEN_WINDOW,
    settings: Settings | None = None,
    **fields: object,
) -> RunResult:
    """One run of the batch as the front ends start it (``run`` or ``resume``), to the end, with
    ``settings`` (the defaults) and ``fields`` changed."""
    chosen = dataclasses.replace(settings or Settings(), **{"poll_interval": 1.0, "tick": 0.5, **fields})  # type: ignore[arg-type]

    async def go() -> RunResult:
        async with KotaniClient(sandbox.base_url, ApiKey(API_KEY)) as client:
            money = Limiter(OPEN_WINDOW, clock=fake.clock, sleep=fake.sleep, margin=0, klass="money")
            budget = Limiter(reads, clock=fake.clock, sleep=fake.sleep, margin=0, klass="reads")
            ctx = Context(ledger, client, money, budget, chosen, env_id=env_id, clock=fake.clock)
            return await run_batch(ctx, batch_id, wait_timeout=3600, sleep=fake.sleep)

    return anyio.run(go)


def paid_references(sandbox: RunningSandbox) -> list[str]:
    return sorted(p.reference for p in sandbox.state.payouts)


def looked_up(sandbox: RunningSandbox) -> list[str]:
    return [x["account"] for x in sandbox.state.lookups]


@pytest.fixture
def fake(sandbox: RunningSandbox) -> FakeTime:
    return FakeTime(sandbox.state.clock)


@pytest.fixture
def ledger(tmp_path: Path, fake: FakeTime) -> Ledger:
    return Ledger(tmp_path / "ledger.db", clock=fake.clock)


MIXED = [
    person(2, "+254700000001", "doe, JANÉ mary"),  # JANE MARY DOE: word order, case and accents aside
    person(3, "+254700000008", "John Otiéno"),  # OTIENO JOHN, and Kotani gives no score: ours
    person(4, "+254700000030", "Wanjiru Kamau"),  # registered to PETER OKELLO MUSA
    person(5, "+254700000003", "Jane Doe"),  # no such account
    person(6, "+254700000032", "Jane Doe"),  # frozen
    person(7, "+254700000004", "Jane Doe"),  # a corridor without name checks
]


# -- every verdict, paid or not, as it says ------------------------------------------------------------


def test_each_row_is_paid_held_or_refused_as_its_verdict_says(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime, tmp_path: Path
) -> None:
    new_batch(ledger, "bV", MIXED)
    result = run(sandbox, ledger, fake, "bV")
    assert paid_references(sandbox) == ["bV-2-1", "bV-3-1", "bV-7-1"]
    states = {r.row: r.state for r in ledger.rows("bV")}
    assert states == {
        2: RowState.SUCCEEDED,
        3: RowState.SUCCEEDED,
        4: RowState.HELD,
        5: RowState.INVALID,
        6: RowState.HELD,
        7: RowState.SUCCEEDED,
    }
    assert result.counts["held"] == 2 and result.exit_code == 3
    assert ledger.row("bV", 4).note == (
        "The account holder is PETER OKELLO MUSA, not Wanjiru Kamau (Kotani's score 20 of 100, 70 needed): "
        "held, not paid unless you accept the name."
    )
    assert ledger.row("bV", 6).note == (
        "The account behind this phone number is frozen: held, not paid. Ask the recipient for another account."
    )
    assert ledger.row("bV", 5).problems[-1]["message"] == (
        "Kotani found no account for this phone number (Kotani: No account is registered to this number): "
        "not paid. Check the details with the recipient."
    )

    with open(write_results(ledger, "bV", tmp_path / "r.csv"), encoding="utf-8-sig") as fh:
        results = {r["row"]: r for r in csv.DictReader(fh)}
    assert [
        (results[n]["status"], results[n]["name_check"], results[n]["registered_name"], results[n]["name_score"])
        for n in "234567"
    ] == [
        ("paid", "payable", "JANE MARY DOE", "100 (Kotani)"),
        ("paid", "payable", "OTIENO JOHN", "100 (ours)"),
        ("held (needs a decision)", "held: name differs", "PETER OKELLO MUSA", "20 (Kotani)"),
        ("invalid", "invalid: not found", "", ""),
        ("held (needs a decision)", "held: frozen", "JANE DOE", ""),
        ("paid", "payable: name not checked", "", ""),
    ]
    assert results["7"]["name_check_detail"] == (
        "Name not checked: Kotani cannot check names for this kind of account. Paid on the details in the file."
    )
    assert results["4"]["reason"] == ledger.row("bV", 4).note
    assert results["5"]["reason"] == ledger.row("bV", 5).problems[-1]["message"]


def test_held_rows_are_paid_after_an_operator_accepts_them(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    new_batch(ledger, "bV", MIXED)
    run(sandbox, ledger, fake, "bV")
    fake.pass_days(1)
    at = fake.now
    accepted = accept_held(ledger, "bV", [4, 6], "amina@finance")
    assert [(r.row, r.state, r.note) for r in accepted] == [
        (4, RowState.READY, "held, then accepted by amina@finance"),
        (6, RowState.READY, "held, then accepted by amina@finance"),
    ]
    assert [(a.row, a.who, a.at, a.what, a.registered_name) for a in ledger.acceptances("bV")] == [
        (4, "amina@finance", at, "name_differs", "PETER OKELLO MUSA"),
        (6, "amina@finance", at, "frozen", "JANE DOE"),
    ]
    assert ledger.acceptances("bV", 4)[0].sentence.startswith("The account holder is PETER OKELLO MUSA")

    result = run(sandbox, ledger, fake, "bV")  # the resume
    assert paid_references(sandbox) == ["bV-2-1", "bV-3-1", "bV-4-1", "bV-6-1", "bV-7-1"]
    assert result.exit_code == 3, "row 5 (no such account) stays invalid"
    assert ledger.row("bV", 4).state is RowState.SUCCEEDED
    assert "Accepted by amina@finance: paid." in (ledger.row("bV", 4).name_check or "")


def test_a_row_accepted_while_the_run_goes_on_is_paid_by_that_run(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    new_batch(ledger, "bL", [person(2, "+254712000002", "Jane Doe"), person(3, "+254700000030", "Wanjiru Kamau")])

    class OperatorMeanwhile(FakeTime):
        """Someone accepts row 3 from another window as soon as they see it held."""

        async def sleep(self, seconds: float) -> None:
            if ledger.row("bL", 3).state is RowState.HELD and not ledger.acceptances("bL"):
                accept_held(ledger, "bL", [3], "amina@finance")
            await super().sleep(seconds)

    meanwhile = OperatorMeanwhile(sandbox.state.clock)
    meanwhile.now = fake.now
    result = run(sandbox, ledger, meanwhile, "bL")
    assert result.exit_code == 0 and paid_references(sandbox) == ["bL-2-1", "bL-3-1"]
    assert len(ledger.acceptances("bL")) == 1


def test_only_held_rows_can_be_accepted_and_then_none_is(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    new_batch(ledger, "bV", MIXED)
    run(sandbox, ledger, fake, "bV")
    with pytest.raises(errors.NotHeld) as info:
        accept_held(ledger, "bV", [4, 2, 9], "amina@finance")
    assert str(info.value) == (
        "only held rows can be accepted, and in batch bV row 2 is succeeded, there is no row 9; nothing was accepted"
    )
    assert ledger.row("bV", 4).state is RowState.HELD and ledger.acceptances("bV") == []


def test_an_acceptance_covers_only_what_was_held(sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime) -> None:
    """A row held by a guardrail and accepted is still checked; a name that differs holds it again."""
    new_batch(
        ledger,
        "bG",
        [person(2, "+254700000030", "Wanjiru Kamau", amount=90_000)],
        state=RowState.HELD,
        note="Row 2 pays KES 90,000, 60 times the file's typical KES amount: held until you accept it",
    )
    accept_held(ledger, "bG", [2], "amina@finance")
    run(sandbox, ledger, fake, "bG")
    row = ledger.row("bG", 2)
    assert row.state is RowState.HELD and row.note is not None and row.note.startswith("The account holder is PETER")
    assert [a.what for a in ledger.acceptances("bG")] == ["held"]
    assert paid_references(sandbox) == []


def test_a_row_held_because_the_check_timed_out_is_checked_again_next_run(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    new_batch(ledger, "bT", [person(2, "+254700000035", "Jane Doe")])  # TIMEOUT once, then an answer
    run(sandbox, ledger, fake, "bT", verify_tries=1)
    assert ledger.row("bT", 2).state is RowState.HELD
    assert ledger.row("bT", 2).note == (
        "Not verified: the name could not be checked (timeout (Kotani: The network did not answer the name lookup "
        "in time), 1 try): held, not paid. Run again later, accept the row, or allow unverified rows "
        "(--allow-unverified)."
    )
    run(sandbox, ledger, fake, "bT", verify_tries=1)
    assert ledger.row("bT", 2).state is RowState.SUCCEEDED and paid_references(sandbox) == ["bT-2-1"]


def test_unverified_rows_are_paid_when_allowed(sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime) -> None:
    new_batch(ledger, "bU", [person(2, "+254700000005", "Jane Doe")])  # TIMEOUT every time
    run(
        sandbox,
        ledger,
        fake,
        "bU",
        settings=with_policy(Settings(), parse_policy("[verify]\nallow_unverified = true\ntries = 2\n")),
    )
    assert ledger.row("bU", 2).state is RowState.SUCCEEDED and looked_up(sandbox) == ["phone:+254700000005"] * 2
    assert "paid anyway because unverified rows are allowed" in (ledger.row("bU", 2).name_check or "")


# -- the cache: 30 days, per environment ----------------------------------------------------------------


def test_a_lookup_is_reused_for_30_days_in_its_own_environment_only(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    jane = [person(2, "+254700000001", "Jane Mary Doe")]
    new_batch(ledger, "bA", jane)
    run(sandbox, ledger, fake, "bA")
    assert looked_up(sandbox) == ["phone:+254700000001"]

    fake.pass_days(29)
    new_batch(ledger, "bB", jane)
    run(sandbox, ledger, fake, "bB")
    assert looked_up(sandbox) == ["phone:+254700000001"], "reused within 30 days"
    assert ledger.row("bB", 2).state is RowState.SUCCEEDED
    assert "(Looked up on 2026-09-21, reused.)" in (ledger.row("bB", 2).name_check or "")

    new_batch(ledger, "bC", jane, env_id="e2")
    run(sandbox, ledger, fake, "bC", env_id="e2")
    assert len(looked_up(sandbox)) == 2, "another environment (host or Kotani account) looks up again"

    fake.pass_days(2)
    new_batch(ledger, "bD", jane)
    run(sandbox, ledger, fake, "bD")
    assert len(looked_up(sandbox)) == 3, "31 days later the answer is too old"
    assert paid_references(sandbox) == ["bA-2-1", "bB-2-1", "bC-2-1", "bD-2-1"]


# -- pipelining ------------------------------------------------------------------------------------------


def test_the_first_payout_leaves_before_the_last_lookup(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    """Look-ups are spread over time by the reads budget (two per 5 s here); payment does not wait
    for them all: the sandbox's own clock shows the first payout before the last look-up."""
    people = [person(n, f"+2547120{n:05d}", f"Person {n}") for n in range(2, 62)]
    new_batch(ledger, "bP", people)
    run(sandbox, ledger, fake, "bP", reads=(Window(2, 5.0),))
    first_payout = min(p.created_at for p in sandbox.state.payouts)
    last_lookup = max(x["at"] for x in sandbox.state.lookups)
    assert len(sandbox.state.lookups) == 60 and len(sandbox.state.payouts) == 60
    assert last_lookup >= 29 * 5.0, "60 look-ups at two per 5 s take about 150 s"
    assert first_payout < last_lookup / 2


def test_payees_are_looked_up_a_page_of_rows_at_a_time_each_row_once(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 100,000-row batch is never read whole to look its payees up: the stage reads a page of
    rows from the ledger, looks them up, then the next; every verdict is still given and acted on,
    and no payee is looked up twice."""
    monkeypatch.setattr(verify_stage, "VERIFY_PAGE", 2)
    pages: list[int] = []
    read_page = ledger.rows_to_verify

    def counted(batch_id: str, run: str, *, after: int = 0, limit: int = -1) -> list[RowRecord]:
        rows = read_page(batch_id, run, after=after, limit=limit)
        pages.append(len(rows))
        return rows

    monkeypatch.setattr(ledger, "rows_to_verify", counted)
    new_batch(ledger, "bV", MIXED)
    run(sandbox, ledger, fake, "bV")
    assert paid_references(sandbox) == ["bV-2-1", "bV-3-1", "bV-7-1"]
    assert sorted(looked_up(sandbox)) == sorted({f"phone:{p.phone}" for p in MIXED})
    assert max(pages) == 2 and pages[:4] == [2, 2, 2, 0]  # then passes for rows accepted meanwhile


# -- verification off ------------------------------------------------------------------------------------


def test_with_verification_off_rows_are_paid_without_lookups_and_held_rows_stay_held(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    new_batch(ledger, "bO", MIXED)
    new_batch(ledger, "bH", [person(2, "+254712000099", "Held Person")], state=RowState.HELD, note="held by a guard")
    off = with_policy(Settings(), parse_policy("[verify]\nenabled = false\n"))
    assert off.verify is False
    for batch in ("bO", "bH"):
        run(sandbox, ledger, fake, batch, settings=off)
    assert looked_up(sandbox) == []
    assert paid_references(sandbox) == [f"bO-{n}-1" for n in range(2, 8)]
    assert ledger.row("bH", 2).state is RowState.HELD


# -- the ledger ------------------------------------------------------------------------------------------


def test_a_ledger_from_before_gains_the_lookup_cache_and_acceptances(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:2], start=1):
        old.executescript(script + f";PRAGMA user_version = {number};")
    old.close()
    ledger = Ledger(path)
    assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    ledger.remember_lookup("e1", "mobile_money:+254700000001", "Jane", '{"isValid": true}', ledger.clock())
    assert ledger.cached_lookup("e1", "mobile_money:+254700000001", "Jane", 30 * DAY) is not None
    assert ledger.cached_lookup("e2", "mobile_money:+254700000001", "Jane", 30 * DAY) is None
    assert ledger.acceptances("b1") == []


def run_in_virtual_time(
    sandbox: RunningSandbox,
    ledger: Ledger,
    batch_id: str,
    *,
    reads: tuple[Window, ...],
    concurrency: int,
    verify: bool = True,
) -> float:
    """A run whose pauses take no real time but keep their order (tests/virtual_time.py), to the
    end; returns the sandbox's time when it started."""
    time = VirtualTime(START, sandbox.state.clock)
    settings = dataclasses.replace(Settings(), poll_interval=1.0, concurrency=concurrency, verify=verify)
    started = sandbox.state.clock.now()
    assert anyio.run(lambda: virtual_run(time, sandbox, ledger, batch_id, settings, reads=reads)).exit_code == 0
    return started


async def virtual_run(
    time: VirtualTime,
    sandbox: RunningSandbox,
    ledger: Ledger,
    batch_id: str,
    settings: Settings,
    *,
    reads: tuple[Window, ...] = OPEN_WINDOW,
    loop_sleep: Callable[[float], Awaitable[None]] | None = None,
) -> RunResult:
    """``run_batch`` on virtual time against the sandbox, payouts unlimited, reads within ``reads``;
    the run loop naps with ``loop_sleep`` (default: the virtual clock's)."""
    async with (
        KotaniClient(
            sandbox.base_url, ApiKey(API_KEY), transport=time.transport, clock=time.clock, sleep=time.sleep
        ) as client,
        time.running(),
    ):
        money = Limiter(OPEN_WINDOW, clock=time.clock, sleep=time.sleep, margin=0, klass="money")
        budget = Limiter(reads, clock=time.clock, sleep=time.sleep, margin=0, klass="reads")
        ctx = Context(ledger, client, money, budget, settings, env_id="e1", clock=time.clock)
        return await run_batch(ctx, batch_id, wait_timeout=3600, sleep=loop_sleep or time.sleep)


def test_the_first_payout_waits_for_its_own_lookup_only(sandbox: RunningSandbox, ledger: Ledger) -> None:
    """The reads allowance is shared: the reads a payment needs (its customer record) go before the
    look-ups of later rows waiting for room, and look-ups never take every request slot. So, on the
    sandbox's own clock, with 59 look-ups queued at two reads per 5 s, the first payout leaves one
    window (its own look-up) later than it would without the check, not after the queue."""
    window = 5.0
    plain = [person(n, f"+2547130{n:05d}", f"Person {n}") for n in range(2, 62)]
    new_batch(ledger, "bN", plain)
    started = run_in_virtual_time(sandbox, ledger, "bN", reads=(Window(2, window),), concurrency=8, verify=False)
    unchecked = min(p.created_at for p in sandbox.state.payouts) - started

    people = [person(n, f"+2547120{n:05d}", f"Person {n}") for n in range(2, 62)]
    new_batch(ledger, "bF", people)
    started = run_in_virtual_time(sandbox, ledger, "bF", reads=(Window(2, window),), concurrency=8)
    mine = [p for p in sandbox.state.payouts if p.reference.startswith("bF-")]
    first = min(mine, key=lambda p: p.created_at)
    own_lookup = next(x["at"] for x in sandbox.state.lookups if x["account"] == "phone:+254712000002")
    assert first.reference == "bF-2-1" and len(mine) == 60 and len(sandbox.state.lookups) == 60
    assert first.created_at - started <= unchecked + window, (first.created_at - started, unchecked)
    assert first.created_at - own_lookup <= 2 * window, "its customer record: a look-up and a creation"
    assert max(x["at"] for x in sandbox.state.lookups) - own_lookup >= 29 * window, "the look-ups took their time"


def test_a_row_found_payable_a_slot_come_free_or_a_stop_wakes_the_run_loop_at_once(
    sandbox: RunningSandbox, ledger: Ledger
) -> None:
    """The loop looks for work on its tick, and at once when a check finds a row payable, a
    payment's slot comes free or the run is stopped: with a 30-s tick and one slot, five payees are
    checked and paid one after another, and the run stopped, in far less than one tick."""
    new_batch(ledger, "bW", [person(n, f"+2547140{n:05d}", f"Person {n}") for n in range(2, 7)])
    settings = dataclasses.replace(Settings(), concurrency=1, tick=30.0)

    async def go() -> RunResult:
        async with KotaniClient(sandbox.base_url, ApiKey(API_KEY)) as client:
            money = Limiter(OPEN_WINDOW, margin=0, klass="money")
            ctx = Context(ledger, client, money, Limiter(OPEN_WINDOW, margin=0, klass="reads"), settings, env_id="e1")

            async def stop_once_all_are_paid() -> None:
                while len(paid_references(sandbox)) < 5:
                    await anyio.sleep(0.01)
                ctx.run.stop("all five were paid")

            async with anyio.create_task_group() as tg:
                tg.start_soon(stop_once_all_are_paid)
                result = await run_batch(ctx, "bW", wait_timeout=3600)
            return result

    started = time.monotonic()
    result = anyio.run(go)
    assert result.stopped == "all five were paid" and len(paid_references(sandbox)) == 5
    assert time.monotonic() - started < 15.0, "not one tick of 30 s was waited"


def test_a_retry_whose_earlier_attempt_cannot_be_read_waits_before_asking_again(
    sandbox: RunningSandbox, ledger: Ledger, fake: FakeTime
) -> None:
    """Before a retry pays, its earlier attempt is read ("terminal is not final"). While the
    provider cannot answer, the retry sends nothing and is put off for a status-read interval; it
    is not taken again by the next pass of the loop (a freed slot wakes the loop at once)."""
    payee = person(2, "+254712000777", "Person 2")
    new_batch(ledger, "b1", [payee], state=RowState.FAILED)
    retry = NewRow(2, RowState.READY, payee, {"name": payee.name}, [], ("b1:2",), origin=("b1", 2, 1))
    ledger.create_batch(
        "b2", env_id="e1", fingerprint="b2", label="", source="b2.csv", options={}, headers=["name"], rows=[retry]
    )
    settings = dataclasses.replace(Settings(), poll_interval=7.0)

    async def no_wait(seconds: float) -> None:
        pass

    async def go() -> None:
        nobody = "http://127.0.0.1:9"  # the provider cannot be reached: no answer to any read
        async with KotaniClient(nobody, ApiKey(API_KEY), clock=fake.clock, sleep=no_wait) as client:
            reads = Limiter(OPEN_WINDOW, margin=0, klass="reads")
            money = Limiter(OPEN_WINDOW, margin=0, klass="money")
            ctx = Context(ledger, client, money, reads, settings, env_id="e1", clock=fake.clock)
            await pay_checked(ctx, ledger.row("b2", 2))

    anyio.run(go)
    after = ledger.row("b2", 2)
    assert after.state is RowState.READY and after.next_check == fake.clock() + 7.0
    assert ledger.ready_to_send("b2", fake.clock()) == [], "not taken again before the interval"
    assert sandbox.state.ledger()["posts"] == []


def test_while_nothing_falls_due_the_run_loop_sleeps_until_something_does(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A run waiting a minute for a retry's time looks at the ledger twice a second at most, not
    on every tick, and still sends the row on the tick it falls due; then it sleeps until the
    payout's status read is due."""
    time = VirtualTime(START, sandbox.state.clock)
    ledger = Ledger(tmp_path / "ledger.db", clock=time.clock)
    new_batch(ledger, "bN", [person(2, "+254712000888", "Person 2")])
    ledger.update("bN", 2, expect=RowState.READY, next_check=START + 60.0)  # backing off a minute
    settings = dataclasses.replace(Settings(), verify=False, poll_interval=5.0, tick=0.1, idle_tick=0.5)
    naps: list[tuple[float, float]] = []  # (when, seconds) of the loop's naps

    async def loop_sleep(seconds: float) -> None:
        naps.append((time.clock(), seconds))
        await time.sleep(seconds)

    result = anyio.run(lambda: virtual_run(time, sandbox, ledger, "bN", settings, loop_sleep=loop_sleep))
    row = ledger.row("bN", 2)
    assert result.counts == {"succeeded": 1} and row.submitted_at is not None
    assert START + 60.0 <= row.submitted_at < START + 60.0 + settings.tick, "sent on the tick it fell due"
    waiting = [when for when, _ in naps if when < START + 60.0]
    assert len(waiting) <= 60 / settings.idle_tick + 2, f"{len(waiting)} passes in a minute of waiting"
    assert row.completed_at is not None
    assert row.completed_at - row.submitted_at == pytest.approx(5.0, abs=settings.tick), "read when it fell due"


def test_a_run_with_nothing_left_to_pay_ends_once_the_payee_check_has_nothing_to_ask(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Resuming a settled batch: the payee check's first pass finds nothing to ask and wakes the
    loop, which ends the run at once, not after an idle nap (half a second on every resume)."""
    time = VirtualTime(START, sandbox.state.clock)
    ledger = Ledger(tmp_path / "ledger.db", clock=time.clock)
    new_batch(ledger, "bS", [person(2, "+254712000889", "Person 2")])
    settings = dataclasses.replace(Settings(), verify=True, tick=0.1, idle_tick=0.5)
    first = anyio.run(lambda: virtual_run(time, sandbox, ledger, "bS", settings))
    assert first.counts == {"succeeded": 1}
    resumed_at = time.clock()
    again = anyio.run(lambda: virtual_run(time, sandbox, ledger, "bS", settings))
    assert again.counts == {"succeeded": 1}
    assert time.clock() - resumed_at < settings.tick, "ended on its first passes, without an idle nap"

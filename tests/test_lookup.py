"""Each payee's account is looked up once, on the reads budget, cached per environment, retried a
bounded number of times, and its verdict handed out as soon as it is back (payment can start)."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from batch_payouts import errors
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.kotani.wire import ValidateMobileMoney
from batch_payouts.lookup import (
    MemoryLookupCache,
    VerifySettings,
    decode_answer,
    encode_answer,
    request_for,
    settings_from,
    verify_all,
    verify_rows,
)
from batch_payouts.model import BankPayout, MobileMoneyPayout, Payout, TillPayout
from batch_payouts.policy import parse_policy
from batch_payouts.ratelimit import Limiter, Window
from batch_payouts.sandbox import RunningSandbox
from batch_payouts.verify import Decision, Finding
from tests.conftest import API_KEY

pytestmark = pytest.mark.anyio
ENV = "http://sandbox|acct-1"
DAY = 86400.0


class FakeTime:
    """Epoch seconds that move only when something sleeps; sleeping moves the sandbox's clock too."""

    def __init__(self, sandbox: RunningSandbox) -> None:
        self.now = 1_790_000_000.0
        self.slept: list[float] = []
        self.sandbox = sandbox
        self.gate: anyio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.slept.append(seconds)
        self.now += seconds
        self.sandbox.state.clock.advance(seconds)
        await anyio.sleep(0)


def row(number: int, phone: str, name: str = "Jane Doe", amount: int = 1500) -> MobileMoneyPayout:
    return MobileMoneyPayout(row=number, name=name, amount=Decimal(amount), currency="KES", country="KE", phone=phone)


def reads(fake: FakeTime, windows: tuple[Window, ...] = (Window(100, 5.0),)) -> Limiter:
    return Limiter(windows, clock=fake.clock, sleep=fake.sleep, margin=0.1, klass="reads")


async def verdicts_of(
    client: KotaniClient, fake: FakeTime, payouts: list[Payout], cache: MemoryLookupCache, **settings: object
) -> dict[int, tuple[Decision, Finding]]:
    found = await verify_all(
        client,
        reads(fake),
        payouts,
        cache,
        VerifySettings(ENV, **settings),  # type: ignore[arg-type]
        clock=fake.clock,
        sleep=fake.sleep,
    )
    return {n: (v.decision, v.finding) for n, v in found.items()}


async def test_a_mixed_file_gets_each_verdict(client: KotaniClient, sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    payouts: list[Payout] = [
        row(2, "+254712000001", "Wanjiru Mary"),
        row(3, "+254700000030", "Wanjiru Kamau"),
        row(4, "+254700000003"),
        row(5, "+254700000032"),
        row(6, "+254700000034"),
        TillPayout(
            row=7, name="Acme Trading Ltd", amount=Decimal(500), currency="KES", country="KE", till_number="100001"
        ),
    ]
    assert await verdicts_of(client, fake, payouts, MemoryLookupCache(fake.clock)) == {
        2: (Decision.PAY, Finding.NAME_MATCHES),
        3: (Decision.HOLD, Finding.NAME_DIFFERS),
        4: (Decision.REFUSE, Finding.NOT_FOUND),
        5: (Decision.HOLD, Finding.FROZEN),
        6: (Decision.PAY, Finding.NAME_NOT_CHECKED),
        7: (Decision.PAY, Finding.NAME_MATCHES),
    }


async def test_each_account_is_looked_up_once_per_run(client: KotaniClient, sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    payouts: list[Payout] = [row(2, "+254712000001"), row(3, "+254712000001", amount=99), row(4, "+254712000002")]
    found = await verdicts_of(client, fake, payouts, MemoryLookupCache(fake.clock))
    assert set(found) == {2, 3, 4}
    assert sorted(x["account"] for x in sandbox.state.lookups) == ["phone:+254712000001", "phone:+254712000002"]


async def test_answers_are_reused_per_environment_until_they_are_too_old(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    fake = FakeTime(sandbox)
    cache = MemoryLookupCache(fake.clock)
    payouts: list[Payout] = [row(2, "+254700000001")]
    await verify_all(client, reads(fake), payouts, cache, VerifySettings(ENV), clock=fake.clock)
    fake.now += 29 * DAY
    again = await verify_all(client, reads(fake), payouts, cache, VerifySettings(ENV), clock=fake.clock)
    assert again[2].from_cache and again[2].checked_at == 1_790_000_000.0
    assert again[2].sentence.endswith("(Looked up on 2026-09-21, reused.)")
    assert len(sandbox.state.lookups) == 1
    await verify_all(
        client, reads(fake), payouts, cache, VerifySettings("https://api.kotanipay.com|acct-1"), clock=fake.clock
    )
    assert len(sandbox.state.lookups) == 2, "another environment does not reuse this one's answers"
    fake.now += 2 * DAY
    fresh = await verify_all(client, reads(fake), payouts, cache, VerifySettings(ENV), clock=fake.clock)
    assert not fresh[2].from_cache and len(sandbox.state.lookups) == 3


async def test_a_cached_answer_survives_being_stored_as_text(client: KotaniClient) -> None:
    body = request_for(row(2, "+254700000007"))
    assert isinstance(body, ValidateMobileMoney)
    answer = await client.validate_mobile_money(body)
    assert decode_answer(encode_answer(answer)) == answer


async def test_timeouts_are_tried_again_a_bounded_number_of_times(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    fake = FakeTime(sandbox)
    cache = MemoryLookupCache(fake.clock)
    found = await verify_all(
        client,
        reads(fake),
        [row(2, "+254700000005")],
        cache,
        VerifySettings(ENV, tries=3),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert (found[2].decision, found[2].finding) == (Decision.HOLD, Finding.NOT_VERIFIED)
    assert "3 tries" in found[2].sentence and len(sandbox.state.lookups) == 3
    assert [s for s in fake.slept if s >= 1] == [2.0, 4.0], "waits 2 s, then 4 s between tries"
    assert cache.puts == 0, "an unverified answer is never reused"


async def test_a_timeout_followed_by_an_answer_decides_on_the_answer(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    fake = FakeTime(sandbox)
    found = await verify_all(
        client,
        reads(fake),
        [row(2, "+254700000035")],
        MemoryLookupCache(fake.clock),
        VerifySettings(ENV),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert (found[2].decision, found[2].finding, len(sandbox.state.lookups)) == (Decision.PAY, Finding.NAME_MATCHES, 2)


async def test_unverified_rows_are_paid_when_allowed(client: KotaniClient, sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    found = await verdicts_of(
        client, fake, [row(2, "+254700000006")], MemoryLookupCache(fake.clock), allow_unverified=True, tries=2
    )
    assert found == {2: (Decision.PAY, Finding.NOT_VERIFIED)}


async def test_no_answer_from_the_provider_is_not_verified(sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    sandbox.state.knobs.p_5xx_before = 0.0
    async with KotaniClient("http://127.0.0.1:9", ApiKey(API_KEY)) as offline:
        found = await verify_all(
            offline,
            reads(fake),
            [row(2, "+254712000001")],
            MemoryLookupCache(fake.clock),
            VerifySettings(ENV, tries=2),
            clock=fake.clock,
            sleep=fake.sleep,
        )
    assert found[2].finding is Finding.NOT_VERIFIED
    assert found[2].sentence.startswith(
        "Not verified: the name could not be checked (no usable answer from Kotani: "
        "no answer from Kotani (ConnectError)"
    )


async def test_a_key_kotani_refuses_stops_verification_with_its_error(sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    async with KotaniClient(sandbox.base_url, ApiKey("wrong-key")) as client:
        with pytest.raises(errors.AuthenticationError):
            await verify_all(
                client,
                reads(fake),
                [row(2, "+254712000001")],
                MemoryLookupCache(fake.clock),
                VerifySettings(ENV),
                clock=fake.clock,
                sleep=fake.sleep,
            )


async def test_the_first_verdict_arrives_before_later_rows_are_looked_up(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    fake = FakeTime(sandbox)
    fake.gate = anyio.Event()  # the reads budget (one per 5 s) cannot move on until the test lets it
    payouts: list[Payout] = [row(n, f"+2547120000{n:02d}") for n in range(2, 12)]
    budget = reads(fake, (Window(1, 5.0),))
    async with verify_rows(
        client, budget, payouts, MemoryLookupCache(fake.clock), VerifySettings(ENV), clock=fake.clock, sleep=fake.sleep
    ) as verdicts:
        first = await verdicts.__anext__()
        assert first.row == 2 and len(sandbox.state.lookups) == 1, "row 2 could be paid now"
        fake.gate.set()
        rest = [v.row async for v in verdicts]
    assert sorted(rest) == list(range(3, 12))


async def test_leaving_early_stops_the_remaining_lookups(client: KotaniClient, sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    fake.gate = anyio.Event()
    payouts: list[Payout] = [row(n, f"+2547120000{n:02d}") for n in range(2, 12)]
    async with verify_rows(
        client,
        reads(fake, (Window(1, 5.0),)),
        payouts,
        MemoryLookupCache(fake.clock),
        VerifySettings(ENV),
        clock=fake.clock,
        sleep=fake.sleep,
    ) as verdicts:
        await verdicts.__anext__()
    assert len(sandbox.state.lookups) == 1


async def test_a_thousand_lookups_use_the_reads_allowance_without_a_429(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    # One look-up in flight: in injected time a sleep is instant, so a request sent by another worker
    # could reach the sandbox "later" than the budget stamped it; real time has no such jumps.
    fake = FakeTime(sandbox)
    start = fake.now
    payouts: list[Payout] = [row(n, f"+25471{n:07d}") for n in range(2, 1002)]
    found = await verify_all(
        client,
        reads(fake),
        payouts,
        MemoryLookupCache(fake.clock),
        VerifySettings(ENV, concurrency=1),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert len(found) == 1000 and sandbox.state.rate_limited["reads"] == 0
    ideal = 1000 / 100 * 5.0 - 5.0  # 100 reads per 5 s, the first hundred at once
    assert ideal / (fake.now - start) >= 0.95


async def test_an_answer_that_may_change_is_asked_again_next_run(client: KotaniClient, sandbox: RunningSandbox) -> None:
    fake = FakeTime(sandbox)
    cache = MemoryLookupCache(fake.clock)
    payouts: list[Payout] = [
        row(2, "+254700000032"),
        row(3, "+254700000003"),
        row(4, "+254700000034"),
        row(5, "+254700000001"),
    ]
    for _ in range(2):
        await verify_all(client, reads(fake), payouts, cache, VerifySettings(ENV), clock=fake.clock)
    looked_up = [x["account"] for x in sandbox.state.lookups]
    assert looked_up.count("phone:+254700000001") == 1, "an active account with a name is reused"
    assert all(looked_up.count(f"phone:+2547000000{n}") == 2 for n in ("32", "03", "34")), (
        "frozen, not found and 'name checks off' are asked again"
    )


def test_settings_come_from_the_policys_verify_section() -> None:
    policy = parse_policy("[verify]\nallow_unverified = true\nreuse_days = 7\ntries = 2\nour_threshold = 90\n")
    assert settings_from(policy, ENV, concurrency=4) == VerifySettings(
        ENV, allow_unverified=True, max_age_seconds=7 * DAY, tries=2, our_threshold=90, concurrency=4
    )


async def test_a_lookup_kotani_refuses_is_not_verified_without_asking_again(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    fake = FakeTime(sandbox)
    bank = BankPayout(
        row=2, name="Jane Doe", amount=Decimal(10), currency="KES", country="KE", bank_code="68", account_number=""
    )
    found = await verify_all(
        client,
        reads(fake),
        [bank],
        MemoryLookupCache(fake.clock),
        VerifySettings(ENV),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert found[2].sentence == (
        "Not verified: the name could not be checked (Kotani refused the look-up: Validation "
        "failed: accountNumber is required, 1 try): held, not paid. Run again later, accept "
        "the row, or allow unverified rows (--allow-unverified)."
    )
    assert fake.slept == [], "asking again would get the same refusal"


async def test_an_account_without_the_lookup_endpoint_is_paid_with_a_note(
    client: KotaniClient, sandbox: RunningSandbox
) -> None:
    from starlette.routing import Route

    app = sandbox.sandbox.app
    app.router.routes[:] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path.startswith("/api/v3/customer/validate"))
    ]
    fake = FakeTime(sandbox)
    payout = MobileMoneyPayout(
        row=2, name="Jane Doe", amount=Decimal(10), currency="KES", country="KE", phone="+254712345678"
    )
    found = await verify_all(
        client,
        reads(fake),
        [payout],
        MemoryLookupCache(fake.clock),
        VerifySettings(ENV),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert found[2].decision is Decision.PAY
    assert found[2].sentence == (
        "Name not checked: Kotani does not offer account look-ups to this account "
        "(Kotani answered 404 to the look-up). Paid on the details in the file."
    )

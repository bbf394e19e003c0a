"""Shared fixtures: a real sandbox served on loopback with a clock that only tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from batch_payouts import crash
from batch_payouts.kotani.client import ApiKey, KotaniClient, Timeouts
from batch_payouts.sandbox import RunningSandbox, SandboxClock, SandboxState, serve_in_thread

API_KEY = "canary-key-7c1e"
WEBHOOK_SECRET = "canary-secret-93fa"
ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--without-guard", action="append", default=[], choices=crash.GUARDS, metavar="GUARD",
                     help="run against a build without this money-safety guard, to see its test fail "
                          "(bench/reliability.py); also passed to processes started through tests/launch.py")


@pytest.fixture(autouse=True)
def build_without_guards(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guards ``--without-guard`` removed, for this test; none in a normal run."""
    if removed := request.config.getoption("--without-guard"):
        monkeypatch.setattr(crash, "removed_guards", frozenset(removed))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> SandboxClock:
    """Sandbox time that stands still until a test advances it."""
    return SandboxClock(speed=0.0)


@pytest.fixture
def state(clock: SandboxClock) -> SandboxState:
    return SandboxState(api_key=API_KEY, clock=clock, seed_value=7)


@pytest.fixture
def sandbox(state: SandboxState) -> Iterator[RunningSandbox]:
    with serve_in_thread(state, deliver_webhooks=False) as running:
        yield running


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[KotaniClient]:
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY),
                            timeouts=Timeouts(attempt=5.0)) as c:
        yield c


@pytest.fixture
def http(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client with the sandbox key, for raw-protocol assertions."""
    with httpx.Client(base_url=sandbox.base_url,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c

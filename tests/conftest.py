"""Shared fixtures: a real sandbox served on loopback with a clock that only tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import Response

from batch_payouts import serve
from batch_payouts.kotani.client import ApiKey, KotaniClient, Timeouts
from batch_payouts.sandbox import RunningSandbox, Sandbox, SandboxClock, SandboxState
from tests import hooks

API_KEY = "canary-key-7c1e"
WEBHOOK_SECRET = "canary-secret-93fa"
ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--without-guard",
        action="append",
        default=[],
        choices=hooks.GUARDS,
        metavar="GUARD",
        help="run against a build without this money-safety guard, to see its test fail "
        "(bench/reliability.py); also passed to processes started through tests/launch.py",
    )


@pytest.fixture(scope="session", autouse=True)
def build_without_guards(request: pytest.FixtureRequest) -> Iterator[None]:
    """The guards ``--without-guard`` removed, for the whole session (fixtures of every scope see
    the same build); none in a normal run."""
    with pytest.MonkeyPatch.context() as patch:
        if removed := request.config.getoption("--without-guard"):
            hooks.remove_guards(removed, patch.setattr)
        yield


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


class AppOfTheTest:
    """An ASGI app that hands every request to the app of the test running now: one loopback server
    serves the whole session, each test its own sandbox (stopping a server per test cost ~0.2 s)."""

    def __init__(self) -> None:
        self.current: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.current or Response("no test is running", status_code=503)  # a straggler between tests
        await app(scope, receive, send)


@pytest.fixture(scope="session")
def loopback() -> Iterator[tuple[AppOfTheTest, str]]:
    app = AppOfTheTest()
    with serve.in_thread(app, lifespan="off") as url:
        yield app, url


@pytest.fixture
def sandbox(state: SandboxState, loopback: tuple[AppOfTheTest, str]) -> Iterator[RunningSandbox]:
    """A fresh sandbox (its webhooks not delivered) served over HTTP on loopback."""
    app, url = loopback
    running = RunningSandbox(url, Sandbox(state, deliver_webhooks=False))
    app.current = running.sandbox.app
    try:
        yield running
    finally:
        app.current = None


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[KotaniClient]:
    async with KotaniClient(sandbox.base_url, ApiKey(API_KEY), timeouts=Timeouts(attempt=5.0)) as c:
        yield c


@pytest.fixture
def http(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    """A plain HTTP client with the sandbox key, for raw-protocol assertions."""
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c

"""Shared fixtures: a real sandbox served on loopback with a clock that only tests move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from batch_payouts.kotani.client import ApiKey, KotaniClient, Timeouts
from batch_payouts.sandbox import RunningSandbox, SandboxClock, SandboxState, serve_in_thread

API_KEY = "canary-key-7c1e"
WEBHOOK_SECRET = "canary-secret-93fa"
ROOT = Path(__file__).resolve().parent.parent


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

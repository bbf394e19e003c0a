"""Serving the sandbox: in a background thread (tests, ``run --sandbox``) or in the foreground
(``batch-payouts sandbox``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from batch_payouts import serve
from batch_payouts.sandbox.app import Sandbox
from batch_payouts.sandbox.state import SandboxState

IN_PROCESS_URL = "http://in-process.invalid"  # the base URL of a sandbox answering in the caller's process


@dataclass
class RunningSandbox:
    """A sandbox being served; ``base_url`` is where the client should point. Not ``served``: it
    answers in the caller's process (:func:`answering_in_process`)."""

    base_url: str
    sandbox: Sandbox
    served: bool = True

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state


@contextlib.contextmanager
def serve_in_thread(
    state: SandboxState | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    deliver_webhooks: bool = True,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a loopback port in a daemon thread until the block ends."""
    sandbox = Sandbox(state or SandboxState(), deliver_webhooks=deliver_webhooks)
    with serve.in_thread(sandbox.app, host=host, port=port) as url:
        yield RunningSandbox(url, sandbox)


def answering_in_process(state: SandboxState) -> RunningSandbox:
    """A sandbox that answers the requests of a client given ``in_process(sandbox.app)`` as its
    transport, in the client's own event loop: no port, no thread to start and stop (a third of a
    second). Nothing settles payouts or sends webhooks between requests: for commands that read."""
    return RunningSandbox(IN_PROCESS_URL, Sandbox(state, deliver_webhooks=False), served=False)


def serve_forever(
    state: SandboxState, *, host: str, port: int, log_level: str = "info", announce: Callable[[str], None] | None = None
) -> None:
    """Serve in the foreground until interrupted. Once it accepts connections, ``announce`` is told
    the URL bound (default: a line on stderr), so ``port=0`` is usable: the real port is printed."""
    serve.forever(Sandbox(state).app, host=host, port=port, log_level=log_level, announce=announce or say_listening)


def say_listening(url: str) -> None:
    """``Kotani sandbox listening on URL`` on stderr: the line that tells a caller the real port."""
    print(f"Kotani sandbox listening on {url}", file=sys.stderr, flush=True)

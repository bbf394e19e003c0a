"""Serving the sandbox with uvicorn: in a background thread (tests, ``run --sandbox``) or
in the foreground (``batch-payouts sandbox``)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from batch_payouts.sandbox.app import Sandbox
from batch_payouts.sandbox.state import SandboxState


@dataclass
class RunningSandbox:
    """A sandbox being served; ``base_url`` is where the client should point."""

    base_url: str
    sandbox: Sandbox

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state


def _config(sandbox: Sandbox, log_level: str, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    return uvicorn.Config(sandbox.app, host=host, port=port, log_level=log_level,
                          access_log=False, lifespan="on",
                          timeout_graceful_shutdown=1, ws="none")


@contextlib.contextmanager
def serve_in_thread(
    state: SandboxState | None = None, *, host: str = "127.0.0.1", port: int = 0,
    deliver_webhooks: bool = True, log_level: str = "critical",
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a loopback port in a daemon thread until the block ends."""
    sandbox = Sandbox(state or SandboxState(), deliver_webhooks=deliver_webhooks)
    server = uvicorn.Server(_config(sandbox, log_level))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    actual_port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.005)
    try:
        yield RunningSandbox(f"http://{host}:{actual_port}", sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def serve_forever(state: SandboxState, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve in the foreground until interrupted."""
    uvicorn.Server(_config(Sandbox(state), log_level, host, port)).run()

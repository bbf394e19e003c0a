"""The one place that runs uvicorn: serve an ASGI app on a loopback port in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn

from batch_payouts import errors

Lifespan = Literal["auto", "on", "off"]


def config(app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "critical",
           lifespan: Lifespan = "on") -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan=lifespan,
                          timeout_graceful_shutdown=1, timeout_keep_alive=5, ws="none")


@contextlib.contextmanager
def in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0, lifespan: Lifespan = "on",
              start_timeout: float = 10.0) -> Iterator[str]:
    """Serve ``app`` until the block ends; yield its base URL (``port=0`` picks a free port)."""
    server = uvicorn.Server(config(app, host=host, port=port, lifespan=lifespan))
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise errors.ConfigError(f"cannot listen on {host}:{port}: the server did not start")
        time.sleep(0.005)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def forever(app: Any, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve in the foreground until interrupted."""
    uvicorn.Server(config(app, host=host, port=port, log_level=log_level)).run()

"""The one place that runs uvicorn: serve an ASGI app on a loopback port, in a background thread or
in the foreground. Port 0 picks a free port; both ways tell the caller the URL actually bound."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import uvicorn

from batch_payouts import errors

Lifespan = Literal["auto", "on", "off"]


def config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "critical",
    lifespan: Lifespan = "on",
    tls: tuple[str, str] | None = None,
) -> uvicorn.Config:
    """``tls``: (certificate file, key file) to serve HTTPS."""
    cert, key = tls if tls is not None else (None, None)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
        timeout_keep_alive=5,
        ws="none",
        ssl_certfile=cert,
        ssl_keyfile=key,
    )


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: any free port), or a ConfigError saying why not."""
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it every keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket, scheme: str = "http") -> str:
    """The base URL a bound socket serves (its real port, also when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host}:{port}"


@contextlib.contextmanager
def in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, lifespan: Lifespan = "on", start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` until the block ends; yield its base URL (``port=0`` picks a free port)."""
    server = uvicorn.Server(config(app, host=host, port=port, lifespan=lifespan))
    sock = bind(host, port)
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
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls ``announce(url)`` once it accepts connections."""

    def __init__(
        self, cfg: uvicorn.Config, sock: socket.socket, announce: Callable[[str], None], scheme: str = "http"
    ) -> None:
        super().__init__(cfg)
        self._sock = sock
        self._announce = announce
        self._scheme = scheme

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._announce(url_of(self._sock, self._scheme))


def forever(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    announce: Callable[[str], None] | None = None,
    tls: tuple[str, str] | None = None,
    lifespan: Lifespan = "on",
) -> None:
    """Serve in the foreground until interrupted; ``announce(url)`` is told the bound URL once serving.
    ``tls``: (certificate file, key file) to serve HTTPS."""
    sock = bind(host, port)
    try:
        _AnnouncingServer(
            config(app, host=host, port=port, log_level=log_level, tls=tls, lifespan=lifespan),
            sock,
            announce or (lambda url: None),
            "https" if tls else "http",
        ).run(sockets=[sock])
    finally:
        sock.close()

"""Serving the web console: where it may listen (a non-loopback address needs TLS, or an
explicit choice of plain HTTP that is warned about), the server's workspace kept open for its
life, and the foreground server itself."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_payouts import errors, serve
from batch_payouts.app.session import SessionOptions, open_session
from batch_payouts.app.workspace import Workspace, WorkspaceOptions

INSECURE = (
    "the console is served over plain HTTP on {host}: passwords and session cookies cross the network "
    "unencrypted; use --tls-cert and --tls-key"
)


@dataclass(frozen=True)
class Listen:
    """Where to listen; ``tls`` (certificate file, key file) serves HTTPS."""

    host: str = "127.0.0.1"
    port: int = 8080
    tls: tuple[Path, Path] | None = None
    insecure_http: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_from(
    host: str, port: int, tls_cert: Path | None, tls_key: Path | None, insecure_http: bool, warn: Callable[[str], None]
) -> Listen:
    """The listening options, refused when another address than loopback would be served without TLS
    (unless ``insecure_http``, which ``warn`` hears about)."""
    if (tls_cert is None) != (tls_key is None):
        raise errors.UsageProblem("--tls-cert and --tls-key go together")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise errors.ConfigError(f"cannot read {path}: no such file")
    tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    if not is_loopback(host) and tls is None:
        if not insecure_http:
            raise errors.UsageProblem(
                f"listening on {host} (not this machine alone) needs --tls-cert and --tls-key, "
                "or --insecure-http to serve plain HTTP anyway"
            )
        warn(INSECURE.format(host=host))
    return Listen(host, port, tls, insecure_http)


@contextlib.contextmanager
def workspace(
    session: SessionOptions, options: WorkspaceOptions, *, ask_key: Callable[[], str] | None = None
) -> Iterator[Workspace]:
    """The server's workspace, its session (and built-in sandbox) open until the block ends."""
    with open_session(session, ask_key=ask_key) as opened:
        yield Workspace(opened, options)


def serve_forever(app: Any, listen: Listen, announce: Callable[[str], None]) -> None:
    """Serve ``app`` in the foreground until interrupted; ``announce(url)`` hears the bound URL."""
    tls = (str(listen.tls[0]), str(listen.tls[1])) if listen.tls else None
    serve.forever(
        app, host=listen.host, port=listen.port, log_level="warning", announce=announce, tls=tls, lifespan="off"
    )

"""Serving the webhook receiver with uvicorn in a background thread, on its own ledger connection."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import uvicorn

from batch_payouts.engine.settle import Receiver
from batch_payouts.ledger import Ledger


@contextlib.contextmanager
def serve_receiver(ledger_path: Path, host: str, port: int, secrets: Sequence[str]) -> Iterator[str]:
    """Serve the receiver until the block ends; yield its base URL."""
    ledger = Ledger(ledger_path, secrets=tuple(secrets))
    receiver = Receiver(ledger, secrets, time.time)
    server = uvicorn.Server(uvicorn.Config(receiver.app, log_level="critical", lifespan="off",
                                           timeout_keep_alive=5, limit_concurrency=64))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.005)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()
        ledger.close()

"""Serving the webhook receiver in a background thread, on its own ledger connection."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from batch_payouts import serve
from batch_payouts.engine.receiver import Receiver
from batch_payouts.ledger import Ledger


@contextlib.contextmanager
def serve_receiver(ledger_path: Path, host: str, port: int, secrets: Sequence[str]) -> Iterator[str]:
    """Serve the receiver until the block ends; yield its base URL."""
    ledger = Ledger(ledger_path, secrets=tuple(secrets))
    try:
        with serve.in_thread(Receiver(ledger, secrets, time.time).app, host=host, port=port, lifespan="off") as url:
            yield url
    finally:
        ledger.close()

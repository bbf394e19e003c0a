"""The webhook receiver: Kotani's status callbacks written into the ledger, alone or beside a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batch_payouts.app.keys import webhook_secrets
from batch_payouts.ledger import default_path


@dataclass(frozen=True)
class Receiving:
    """Where the receiver listens; ``signed``: callbacks are verified with a webhook secret
    (unsigned callbacks only ask for a status read, they never settle a row)."""

    url: str
    signed: bool


@contextlib.contextmanager
def receiving(
    ledger_path: Path | None, host: str, port: int, secrets: tuple[str, ...] | None = None
) -> Iterator[Receiving]:
    """Serve the receiver in a background thread until the block ends. ``secrets`` None: the
    webhook secrets of the environment (``KOTANI_WEBHOOK_SECRET``)."""
    from batch_payouts.engine.receiver_server import serve_receiver

    secrets = webhook_secrets() if secrets is None else secrets
    with serve_receiver(ledger_path or default_path(), host, port, secrets) as url:
        yield Receiving(url, bool(secrets))

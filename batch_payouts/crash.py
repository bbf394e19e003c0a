"""Named crash points for kill tests: inert unless ``BATCH_PAYOUTS_CRASH`` is set.

``BATCH_PAYOUTS_CRASH=after_submitting_commit:3`` SIGKILLs this process the third time it
passes that point. Several points may be given, separated by commas.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = (
    "after_validation", "after_batch_persisted", "after_customer_lookup", "after_customer_post",
    "after_customer_commit", "after_submitting_commit", "after_response_before_commit",
    "after_status_commit", "inside_reconcile_after_read", "inside_receiver_after_verify",
    "while_writing_results",
)
_passes: Counter[str] = Counter()


def _targets() -> dict[str, int]:
    spec = os.environ.get("BATCH_PAYOUTS_CRASH", "")
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        out[name] = int(count or 1)
    return out


def point(name: str) -> None:
    """Die here, without any clean-up, on the configured pass."""
    targets = _targets()
    if not targets:
        return
    _passes[name] += 1
    if targets.get(name) == _passes[name]:
        os.kill(os.getpid(), signal.SIGKILL)


def broken(guard: str) -> bool:
    """True when a test asks for a build without ``guard`` (``BATCH_PAYOUTS_BROKEN``).

    Used only to show that each money-safety test fails when its guard is removed.
    """
    return guard in os.environ.get("BATCH_PAYOUTS_BROKEN", "").split(",")

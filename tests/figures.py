"""Figures for the reliability report: tests record what they measured when
``BATCH_PAYOUTS_FIGURES`` names a file (bench/reliability.py sets it); otherwise nothing happens."""

from __future__ import annotations

import json
import os
import time


def record(name: str, value: float, **detail: object) -> None:
    path = os.environ.get("BATCH_PAYOUTS_FIGURES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"name": name, "value": value, "at": time.time(), **detail}, default=str) + "\n")


def long_profile() -> bool:
    """True in the long profile (``bench/reliability.py --long``, run by hand)."""
    return os.environ.get("BATCH_PAYOUTS_PROFILE") == "long"


def scale(quick: int, long: int) -> int:
    """How much work a reliability test does: the long profile is for runs by hand."""
    return long if long_profile() else quick


def shard() -> tuple[int, int]:
    """(index, count) from ``BATCH_PAYOUTS_SHARD=i/n``: the long profile splits work over n processes."""
    index, count = (int(x) for x in os.environ.get("BATCH_PAYOUTS_SHARD", "0/1").split("/"))
    return index, count

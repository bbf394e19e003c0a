"""Live progress of a run pushed to the page as server-sent events (sse-starlette): counts and
amounts per outcome, the ETA, and the latest row changes, every half second until the run ends
(less often for a batch so large that reading it that often would take over a tenth of a core)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from batch_payouts.app.workspace import ProgressView

INTERVAL = 0.5  # seconds between two events, at least
SHARE = 0.1  # of a core, at most, that one page's events take (a 100,000-row batch is read in ~0.1 s)


def as_json(view: ProgressView) -> dict[str, Any]:
    return {
        "running": view.running,
        "rows": view.rows,
        "settled": view.settled,
        "eta": view.eta,
        "error": view.error,
        "lines": [
            {"word": s.status, "currency": s.currency, "rows": s.rows, "amount": f"{s.amount:,}"} for s in view.lines
        ],
        "recent": [{"row": row, "word": word, "detail": detail} for row, word, detail in view.recent],
    }


def wait_after(took: float, interval: float = INTERVAL) -> float:
    """Seconds to wait after a read of the progress that took ``took`` seconds: ``interval``, or
    longer for a batch so large that reading it that often would take more than SHARE of a core."""
    return max(interval, took * (1 - SHARE) / SHARE)


def stream(read: Callable[[], ProgressView], interval: float = INTERVAL) -> EventSourceResponse:
    """Events named ``progress`` while the run goes on, then one ``done``."""

    async def events() -> AsyncIterator[dict[str, str]]:
        while True:
            started = time.monotonic()
            view = await run_in_threadpool(read)
            took = time.monotonic() - started
            yield {"event": "progress", "data": json.dumps(as_json(view))}
            if not view.running:
                yield {"event": "done", "data": "{}"}
                return
            await anyio.sleep(wait_after(took, interval))

    return EventSourceResponse(events(), ping=15)

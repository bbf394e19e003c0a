"""The webhook receiver: an HTTP app that verifies each delivery, stores every event, applies it
as evidence (``settle.apply_webhook``) and answers fast. Loaded only when a receiver is served."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batch_payouts import crash
from batch_payouts.engine.settle import apply_webhook
from batch_payouts.kotani import webhooks
from batch_payouts.ledger import Ledger

MAX_BODY = 64 * 1024
READ_TIMEOUT = 5.0


class Receiver:
    """The webhook receiver: verifies, stores every event, answers fast."""

    def __init__(self, ledger: Ledger, secrets: Sequence[str], clock: Any) -> None:
        self.ledger = ledger
        self.secrets = [s for s in secrets if s]
        self.clock = clock
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return JSONResponse({"message": "expected application/json"}, status_code=415)
        try:
            raw = await asyncio.wait_for(self._read(request), READ_TIMEOUT)
        except (TimeoutError, ClientDisconnect):
            return JSONResponse({"message": "body too slow"}, status_code=408)
        except ValueError:
            return JSONResponse({"message": "body too large"}, status_code=413)
        return self.accept(raw, request.headers.get(webhooks.SIGNATURE_HEADER))

    async def _read(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            raise ValueError("too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise ValueError("too large")
        return body

    def accept(self, raw: bytes, signature: str | None) -> JSONResponse:
        """Verify, parse, store and apply one delivery."""
        now = self.clock()
        if self.secrets:
            if not webhooks.verify(raw, signature, self.secrets):
                self.ledger.record_event(
                    reference=None,
                    status=None,
                    mode="signed",
                    verified=False,
                    outcome="refused: bad or missing signature",
                    body=_preview(raw),
                )
                return JSONResponse({"message": "invalid signature"}, status_code=401)
            crash.point("inside_receiver_after_verify")
        try:
            event = webhooks.parse_event(raw)
        except webhooks.MalformedWebhook as exc:
            self.ledger.record_event(
                reference=None,
                status=None,
                mode="?",
                verified=bool(self.secrets),
                outcome=f"refused: {exc}",
                body=_preview(raw),
            )
            return JSONResponse({"message": str(exc)}, status_code=400)
        outcome = apply_webhook(self.ledger, event, verified=bool(self.secrets), now=now)
        self.ledger.record_event(
            reference=event.reference_id,
            status=event.status,
            mode=event.mode,
            verified=bool(self.secrets),
            outcome=outcome,
            body=event.data,
        )
        return JSONResponse({"received": True})


def _preview(raw: bytes) -> Any:
    try:
        return json.loads(raw[:4096])
    except ValueError:
        return raw[:256].decode("utf-8", "replace")

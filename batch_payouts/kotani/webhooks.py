"""Kotani webhook signatures and payloads (docs/provider.md, "Webhooks"). Pure: no I/O.

Signed deliveries carry ``X-Kotani-Signature: sha256=<hex>``: an HMAC-SHA256, keyed with the
webhook secret, over the compact JavaScript ``JSON.stringify`` of the body without its
``signature`` member. To verify byte-exactly we re-serialise the parsed body keeping every
number token exactly as it was sent, so floats such as ``1e-7`` cannot break a genuine
signature. Direct callbacks (no secret configured) are the bare transaction object.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

SIGNATURE_HEADER = "X-Kotani-Signature"
EVENT_HEADER = "X-Kotani-Event"
INTEGRATOR_HEADER = "X-Kotani-Integrator"
WITHDRAWAL_EVENT = "transaction.withdrawal.status.updated"
_PREFIX = "sha256="


class _NumberToken(str):
    """A JSON number kept as the exact text it was sent as."""

    __slots__ = ()


def js_number(value: Decimal | float | int) -> str:
    """Text JavaScript would print for an ordinary money amount."""
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    if isinstance(value, int):
        return str(value)
    dec = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not dec.is_finite():
        raise ValueError("JSON has no NaN or Infinity")
    if dec == dec.to_integral_value():
        return str(int(dec))
    return format(dec.normalize(), "f")


def compact_json(value: Any) -> str:
    """Serialise like JavaScript's ``JSON.stringify``: compact, keys in order, UTF-8 text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _NumberToken):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float | Decimal):
        return js_number(value)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{compact_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(compact_json(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


def signature(payload: Mapping[str, Any], secret: str) -> str:
    """``sha256=<hex>`` over the compact JSON of ``payload`` (without any ``signature``)."""
    unsigned = {k: v for k, v in payload.items() if k != "signature"}
    mac = hmac.new(secret.encode("utf-8"), compact_json(unsigned).encode("utf-8"), hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def signed_body(event: str, data: Mapping[str, Any], secret: str) -> tuple[bytes, str]:
    """The body bytes and signature header value of a signed delivery."""
    payload: dict[str, Any] = {"event": event, "data": dict(data)}
    sig = signature(payload, secret)
    payload["signature"] = sig
    return compact_json(payload).encode("utf-8"), sig


def _parse_exact(raw: bytes) -> Any:
    return json.loads(raw, parse_float=_NumberToken, parse_int=_NumberToken, parse_constant=_refuse)


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def verify(raw_body: bytes, header_value: str | None, secrets: Sequence[str]) -> bool:
    """True when ``header_value`` is a valid signature of ``raw_body`` under any of ``secrets``."""
    if not header_value or not secrets:
        return False
    given = header_value.strip().encode("utf-8", "replace")
    if not given.startswith(_PREFIX.encode()) or len(given) != len(_PREFIX) + 64:
        return False
    try:
        payload = _parse_exact(raw_body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(payload, dict):
        return False
    ok = False
    for secret in secrets:
        ok |= same_signature(signature(payload, secret).encode("ascii"), given)  # no early exit
    return ok


def same_signature(expected: bytes, given: bytes) -> bool:
    """Whether two signatures are equal, in a time that does not tell how much of them matched."""
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class WebhookEvent:
    """One withdrawal status report, whichever way it was delivered."""

    mode: Literal["signed", "direct"]
    event: str
    reference_id: str
    status: str
    data: dict[str, Any] = field(default_factory=dict)


class MalformedWebhook(ValueError):
    """The body is not a withdrawal status report we can read."""


def parse_event(raw_body: bytes) -> WebhookEvent:
    """Parse a signed envelope or a direct callback into one event type."""
    try:
        body = json.loads(raw_body, parse_float=Decimal, parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        raise MalformedWebhook("body is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedWebhook("body is not a JSON object")
    if "event" in body and isinstance(body.get("data"), dict):
        mode: Literal["signed", "direct"] = "signed"
        event, data = str(body["event"]), body["data"]
    else:
        mode, event, data = "direct", WITHDRAWAL_EVENT, body
    reference = data.get("referenceId", data.get("reference_id"))
    status = data.get("status")
    if not isinstance(reference, str) or not reference or not isinstance(status, str):
        raise MalformedWebhook("no referenceId or status")
    return WebhookEvent(mode=mode, event=event, reference_id=reference, status=status, data=data)

"""The one redaction choke point: what may be logged, audited or written as an event."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_SECRET_KEYS = {
    "authorization",
    "api_key",
    "apikey",
    "key",
    "secret",
    "webhook_secret",
    "token",
    "signature",
    "x-kotani-signature",
    "password",
}
_PHONE_KEYS = {"phone_number", "phonenumber", "phone", "msisdn"}
_ACCOUNT_KEYS = {"accountnumber", "account_number"}
_PHONE_RE = re.compile(r"\+?\d{9,15}")


def mask_phone(value: str) -> str:
    """Keep the country code's first digits and the last three: ``+2547*****678``."""
    digits = value.strip()
    if len(digits) <= 6:
        return "***"
    return digits[:5] + "*" * (len(digits) - 8) + digits[-3:]


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secrets removed and phone/account numbers masked."""
    known = [s for s in secrets if s]
    return _walk(value, known)


def _walk(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            lower = str(k).lower()
            if lower in _SECRET_KEYS:
                out[str(k)] = "[redacted]"
            elif lower in _PHONE_KEYS | _ACCOUNT_KEYS and isinstance(v, str):
                out[str(k)] = mask_phone(v)
            else:
                out[str(k)] = _walk(v, secrets)
        return out
    if isinstance(value, list | tuple):
        return [_walk(v, secrets) for v in value]
    if isinstance(value, str):
        return scrub_text(value, secrets)
    return value


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and mask phone-like digit runs in free text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)

"""The optional second factor: time-based one-time codes (RFC 6238); the one module that uses pyotp."""

from __future__ import annotations

import time

import pyotp

ISSUER = "batch-payouts"


def new_secret() -> str:
    """A fresh base32 secret for an authenticator app."""
    return str(pyotp.random_base32())


def provisioning_uri(secret: str, name: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (usually as a QR code); shown once."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=ISSUER))


def code_now(secret: str, at: float | None = None) -> str:
    """The code an authenticator shows at ``at`` (epoch seconds; None: now)."""
    return str(pyotp.TOTP(secret).at(int(time.time() if at is None else at)))


def code_matches(secret: str, code: str, at: float | None = None) -> bool:
    """Whether ``code`` is valid at ``at`` (epoch seconds), one 30 s step of clock drift allowed."""
    digits = "".join(code.split())
    return bool(pyotp.TOTP(secret).verify(digits, for_time=int(time.time() if at is None else at), valid_window=1))

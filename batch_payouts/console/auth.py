"""Who is asking: sessions in signed cookies (itsdangerous; HttpOnly, SameSite=Strict, Secure
under TLS, expiring), a CSRF token per session checked on every state-changing form, and the
signed-in person looked up again on every request (a disabled person is out at once)."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "bp_session"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Visit:
    """What the cookie says: the person's name (None before signing in) and the CSRF token."""

    name: str | None
    csrf: str


class Sessions:
    """Signs and reads session cookies; ``max_age`` in seconds. The key is made afresh for each
    server process: restarting the console signs everyone out."""

    def __init__(self, *, secure: bool, max_age: float = 8 * 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.secure = secure
        self.max_age = max_age
        self.clock = clock

        class Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._serializer = URLSafeTimedSerializer(
            secrets.token_bytes(32), salt="batch-payouts console session", signer=Signer
        )

    def read(self, request: Request) -> Visit | None:
        """The visit the request's cookie signs, if valid and not expired."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=int(self.max_age))
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        name = data.get("u")
        return Visit(name if isinstance(name, str) else None, data["c"])

    def write(self, response: Response, visit: Visit) -> None:
        response.set_cookie(
            COOKIE,
            self._serializer.dumps({"u": visit.name, "c": visit.csrf}),
            max_age=int(self.max_age),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", secure=self.secure, httponly=True, samesite="strict")


def new_visit(name: str | None = None) -> Visit:
    return Visit(name, secrets.token_urlsafe(32))


def csrf_ok(visit: Visit | None, sent: object) -> bool:
    """Whether the form's token is the session's (compared in constant time)."""
    return visit is not None and isinstance(sent, str) and hmac.compare_digest(visit.csrf.encode(), sent.encode())

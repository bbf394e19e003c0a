"""People and what they may do: users with a role, their passwords and optional second factor,
signing in (with throttling of failed attempts), and the one table of role -> permitted actions.

Roles: a **maker** uploads and submits batches and asks for retries; an **approver** may also
approve batches (someone else's, when the two-person rule applies) and accept held rows; a
**viewer** reads; an **admin** manages people (and reads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from batch_payouts import errors
from batch_payouts.app import passwords, second_factor
from batch_payouts.ledger import Ledger, UserRecord

MIN_PASSWORD = 10  # characters
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")


class Role(StrEnum):
    MAKER = "maker"
    APPROVER = "approver"
    VIEWER = "viewer"
    ADMIN = "admin"


class Action(StrEnum):
    """Everything a person can ask for; the value is the phrase a refusal uses."""

    READ = "read batches"
    UPLOAD = "upload a payout file"
    SUBMIT = "submit a batch for approval"
    APPROVE = "approve a batch"
    ACCEPT_HELD = "accept a held row"
    RETRY = "ask for a retry of failed rows"
    MANAGE_PEOPLE = "manage people"


PERMITTED: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.READ}),
    Role.MAKER: frozenset({Action.READ, Action.UPLOAD, Action.SUBMIT, Action.RETRY}),
    Role.APPROVER: frozenset(
        {Action.READ, Action.UPLOAD, Action.SUBMIT, Action.RETRY, Action.APPROVE, Action.ACCEPT_HELD}
    ),
    Role.ADMIN: frozenset({Action.READ, Action.MANAGE_PEOPLE}),
}


@dataclass(frozen=True)
class Person:
    """A signed-in person as the front ends see them (no hash, no secret)."""

    name: str
    role: Role
    second_factor: bool

    def may(self, action: Action) -> bool:
        return action in PERMITTED[self.role]


@dataclass(frozen=True)
class PersonLine:
    """One person in ``users list``; ``created_at`` in epoch seconds."""

    name: str
    role: str
    second_factor: bool
    disabled: bool
    created_at: float


@dataclass(frozen=True)
class Added:
    """A person just added; ``totp_uri`` is shown once, when a second factor was asked for."""

    name: str
    role: Role
    totp_uri: str | None


def require(person: Person, action: Action) -> None:
    """NotAllowed unless the person's role permits ``action``."""
    if not person.may(action):
        raise errors.NotAllowed(person.name, person.role.value, action.value)


def role_of(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise errors.BadValue(f"{text!r} is not a role: use maker, approver, viewer or admin", "--role") from None


def check_name(name: str) -> str:
    """A username: 1-64 characters of lower-case letters, digits and ``._-@``."""
    if not name or len(name) > 64 or set(name) - NAME_CHARS:
        raise errors.BadValue(
            f"{name!r} is not a username: use 1 to 64 lower-case letters, digits, '.', '_', '-' or '@'", "NAME"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise errors.BadValue(f"the password is too short: use at least {MIN_PASSWORD} characters", "password")
    return password


def add_person(
    ledger: Ledger, name: str, role: Role, password: str, *, totp: bool = False, by: str = "command line"
) -> Added:
    """A new person with a hashed password (and a TOTP secret when ``totp``); UserExists if taken."""
    secret = second_factor.new_secret() if totp else None
    ledger.add_user(
        check_name(name),
        role=role.value,
        password_hash=passwords.hash_password(check_password(password)),
        totp_secret=secret,
    )
    ledger.record_action(None, by, "added person", f"{name} as {role.value}")
    return Added(name, role, second_factor.provisioning_uri(secret, name) if secret else None)


def people(ledger: Ledger) -> list[PersonLine]:
    return [PersonLine(u.name, u.role, u.totp_secret is not None, u.disabled, u.created_at) for u in ledger.users()]


def disable_person(ledger: Ledger, name: str, *, by: str = "command line") -> None:
    """The person can no longer sign in (their sessions end at their next request)."""
    ledger.update_user(name, disabled=1)
    ledger.record_action(None, by, "disabled person", name)


def active_person(ledger: Ledger, name: str) -> Person | None:
    """The person of a session, while they exist and are not disabled."""
    user = ledger.user(name)
    if user is None or user.disabled:
        return None
    return _person(user)


def _person(user: UserRecord) -> Person:
    return Person(user.name, Role(user.role), user.totp_secret is not None)


@dataclass
class Throttle:
    """Failed sign-ins counted per key (a name, an address) in a sliding window: after
    ``limit`` failures within ``window`` seconds the key is refused until the oldest ages out."""

    limit: int = 5
    window: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, *keys: str) -> None:
        """SignInThrottled when any key has used up its failures."""
        now = self.clock()
        with self._lock:
            for key in keys:
                recent = [t for t in self._failures.get(key, []) if now - t < self.window]
                self._failures[key] = recent
                if len(recent) >= self.limit:
                    raise errors.SignInThrottled(recent[0] + self.window - now)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def sign_in(
    ledger: Ledger,
    throttle: Throttle,
    *,
    name: str,
    password: str,
    code: str = "",
    address: str = "",
    at: float | None = None,
) -> Person:
    """The person, when name, password (and code, for a person with a second factor) are right;
    SignInFailed (one sentence whatever was wrong) or SignInThrottled after too many failures."""
    keys = (f"name:{name.strip().lower()}", f"address:{address}")
    throttle.check(*keys)
    user = ledger.user(name.strip().lower())
    if user is None:
        passwords.spend_time_like_a_check(password)
    ok = (
        user is not None
        and not user.disabled
        and passwords.password_matches(user.password_hash, password)
        and (user.totp_secret is None or second_factor.code_matches(user.totp_secret, code, at))
    )
    if not ok or user is None:
        throttle.failed(*keys)
        raise errors.SignInFailed()
    throttle.succeeded(keys[0])
    ledger.record_action(None, user.name, "signed in")
    return _person(user)

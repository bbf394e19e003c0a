"""Password hashing: the one module that uses argon2 (argon2-cffi's defaults, RFC 9106 low-memory)."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash to store (salt and parameters included)."""
    return _HASHER.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    """Whether ``password`` is the one ``stored_hash`` was made from (constant time in argon2)."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def spend_time_like_a_check(password: str) -> None:
    """Do the work of one check, so that an unknown name takes as long to refuse as a wrong password."""
    password_matches(_dummy(), password)


@functools.cache
def _dummy() -> str:
    """A hash to check unknown names against, made once, when first needed (it takes as long as
    hashing a password: made at import it slowed every command's start)."""
    return _HASHER.hash("not a password anyone uses")

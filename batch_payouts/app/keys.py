"""Where secrets come from: the Kotani API key and the webhook signing secrets.

The key: given outright (visible to other users of the machine: a warning), then
``KOTANI_API_KEY``, then a key file readable by its owner alone, then the OS keyring (service
``batch-payouts``, user ``kotani``), then a question to a person when the front end can ask one.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from batch_payouts import errors
from batch_payouts.kotani.client import ApiKey

KEYRING_SERVICE = "batch-payouts"
KEYRING_USER = "kotani"
EXPOSED_KEY = "--api-key is visible to other users of this machine; prefer KOTANI_API_KEY or --api-key-file"


@dataclass(frozen=True)
class KeyOptions:
    """What the operator said about the key: typed outright, or a file that holds it."""

    given: str | None = None
    key_file: Path | None = None


def resolve_key(
    options: KeyOptions,
    *,
    ask: Callable[[], str] | None = None,
    warn: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApiKey:
    """The key from the first source that has one. ``ask`` asks a person (hidden input), when the
    front end can; ``warn`` hears that a key given outright is visible to others."""
    env = os.environ if environ is None else environ
    if options.given:
        if warn is not None:
            warn(EXPOSED_KEY)
        return ApiKey(options.given)
    if env.get("KOTANI_API_KEY"):
        return ApiKey(env["KOTANI_API_KEY"])
    if options.key_file is not None:
        return ApiKey(_read_key_file(options.key_file))
    stored = _from_keyring()
    if stored:
        return ApiKey(stored)
    if ask is not None:
        return ApiKey(ask())
    raise errors.NoApiKey


def _read_key_file(path: Path) -> str:
    """The key in ``path``, refused when others may read the file."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise errors.ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise errors.ConfigError(f"the key file {path} is readable by others (mode {mode:04o}); run: chmod 600 {path}")
    return path.read_text().strip()


def _from_keyring() -> str | None:
    """The key stored in the OS keyring, if there is a keyring and it holds one."""
    with contextlib.suppress(Exception):
        import keyring

        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        return str(stored) if stored else None
    return None


def webhook_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secrets webhooks may be signed with (``KOTANI_WEBHOOK_SECRET``, comma-separated)."""
    env = os.environ if environ is None else environ
    return tuple(s for s in env.get("KOTANI_WEBHOOK_SECRET", "").split(",") if s)

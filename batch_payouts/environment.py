"""Environments: which Kotani host and which Kotani account a batch belongs to.

A batch, its rows, the customers cache and the repeat guard all live inside one environment.
The account comes from the provider (the ``integrator`` id on the wallets); when the provider
does not say, it is a keyed fingerprint of the API key (an HMAC under a secret salt kept in the
ledger), never the key itself. See docs/environments.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["LIVE", "SANDBOX"]
BUILT_IN_SANDBOX_URL = "sandbox://built-in"
# The provider's own test host: payouts there move no real money.
PROVIDER_SANDBOX_HOSTS = frozenset({"sandbox-api.kotanipay.com"})


@dataclass(frozen=True)
class Environment:
    """One host and one account. ``id`` is stable for the same pair."""

    id: str
    kind: Kind
    base_url: str
    host: str
    account: str

    def describe(self) -> str:
        """The header line every screen shows, e.g. ``LIVE · api.kotanipay.com · account 665f…``."""
        return f"{self.kind} · {self.host} · account {self.account}"


def normalise_url(base_url: str) -> str:
    """Scheme and host lower-cased, default ports and trailing slashes dropped."""
    if base_url == BUILT_IN_SANDBOX_URL:
        return base_url
    parts = urlsplit(base_url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def host_of(base_url: str) -> str:
    if base_url == BUILT_IN_SANDBOX_URL:
        return "built-in sandbox"
    parts = urlsplit(normalise_url(base_url))
    return parts.netloc + parts.path


def key_fingerprint(api_key: str, salt: bytes) -> str:
    """An account name derived from the key that cannot be turned back into it."""
    return "key-" + hmac.new(salt, api_key.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def account_from(integrators: Iterable[str | None], api_key: str, salt: bytes) -> str:
    """The provider's integrator id when every wallet names the same one; else a key fingerprint."""
    named = {i.strip() for i in integrators if i and i.strip()}
    if len(named) == 1:
        return named.pop()
    return key_fingerprint(api_key, salt)


def environment(base_url: str, account: str, *, built_in_sandbox: bool = False) -> Environment:
    """The environment of ``account`` at ``base_url``."""
    url = BUILT_IN_SANDBOX_URL if built_in_sandbox else normalise_url(base_url)
    host = host_of(url)
    kind: Kind = "SANDBOX" if built_in_sandbox or urlsplit(url).hostname in PROVIDER_SANDBOX_HOSTS else "LIVE"
    ident = "e" + hashlib.sha256(f"{url}|{account}".encode()).hexdigest()[:11]
    return Environment(ident, kind, url, host, account)

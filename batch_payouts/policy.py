"""The payout policy: guardrails and confirmation-of-payee settings, from a TOML file or the defaults.

Money is ``Decimal`` major units per currency code; the file's numbers are read as exact decimals.
``DEFAULT_POLICY`` is the documented default file (docs/policy.md shows it whole).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from batch_payouts.errors import ConfigError
from batch_payouts.model import CURRENCY_DIGITS

DEFAULT_POLICY = """\
# batch-payouts policy. Every key is optional: a missing one keeps the value shown here.

[duplicates]
# Two rows that are exact copies, or that pay the same recipient the same amount by the same
# method, are held. true: pay both (--allow-duplicates).
allow = false

[limits]
# Hold a row paying more than this, per currency, e.g. { KES = 200000, UGX = 5000000 }
# (--max-row-amount KES=200000,UGX=5000000). Empty: no limit.
max_row_amount = {}
# Hold every row of a currency whose total in the file is more than this (--max-total KES=…).
max_batch_total = {}

[outliers]
# Hold a row paying more than this many times the file's median amount in its currency,
# when the file has at least min_rows rows in that currency. 0 turns the check off.
file_multiple = 10
min_rows = 5
# Hold a row paying more than this many times the most this recipient was paid before. 0: off.
history_multiple = 5

[rows]
# Hold rows hidden in Excel (true: pay them, --include-hidden).
include_hidden = false
# Hold the template's example rows if they were left in the file.
refuse_template_examples = true

[verify]
# Confirmation of payee: look every account up and compare the name before paying.
enabled = true
# Pay rows whose name could not be checked (lookup timed out or failed) instead of holding them
# (--allow-unverified).
allow_unverified = false
# Reuse a lookup for this many days.
reuse_days = 30
# Lookups per account at most when the provider times out or fails.
tries = 3
# Where the provider returns a name without a score, our own comparison (0-100) must reach this.
our_threshold = 85

[approval]
# The two-person rule (web console): a batch is approved by someone other than the person who
# submitted it. On for every LIVE batch whose total in a currency is more than this, per currency,
# e.g. { KES = 50000 }; a currency not named, or an empty table, means every LIVE batch.
live_threshold = {}
# Apply the rule to SANDBOX batches too (to rehearse it).
sandbox = false
"""

_CURRENCY = re.compile(r"[A-Z]{3}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Duplicates(_Section):
    allow: bool = False


def _amounts(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out = {}
    for code, amount in value.items():
        upper = str(code).strip().upper()
        if upper not in CURRENCY_DIGITS:
            raise ValueError(f"{code!r} is not a currency code batch-payouts knows, such as KES")
        out[upper] = amount
    return out


class Limits(_Section):
    """Per currency, major units."""

    max_row_amount: dict[str, Decimal] = Field(default_factory=dict)
    max_batch_total: dict[str, Decimal] = Field(default_factory=dict)

    _codes = field_validator("max_row_amount", "max_batch_total", mode="before")(_amounts)

    @field_validator("max_row_amount", "max_batch_total")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for code, amount in value.items():
            if amount <= 0:
                raise ValueError(f"the {code} limit must be more than zero")
        return value


class Outliers(_Section):
    file_multiple: Decimal = Field(default=Decimal(10), ge=0)
    min_rows: int = Field(default=5, ge=1)
    history_multiple: Decimal = Field(default=Decimal(5), ge=0)


class Rows(_Section):
    include_hidden: bool = False
    refuse_template_examples: bool = True


class Verify(_Section):
    enabled: bool = True
    allow_unverified: bool = False
    reuse_days: float = Field(default=30.0, ge=0)
    tries: int = Field(default=3, ge=1, le=10)
    our_threshold: float = Field(default=85.0, ge=0, le=100)


class Approval(_Section):
    """The two-person rule; ``live_threshold`` per currency, major units."""

    live_threshold: dict[str, Decimal] = Field(default_factory=dict)
    sandbox: bool = False

    _codes = field_validator("live_threshold", mode="before")(_amounts)

    def two_people(self, *, live: bool, totals: Mapping[str, Decimal]) -> bool:
        """Whether a batch with these totals per currency needs an approver other than its maker."""
        if not live:
            return self.sandbox
        if not self.live_threshold:
            return True
        return any(total > self.live_threshold.get(code, Decimal(-1)) for code, total in totals.items())


class Policy(_Section):
    duplicates: Duplicates = Duplicates()
    limits: Limits = Limits()
    outliers: Outliers = Outliers()
    rows: Rows = Rows()
    verify: Verify = Verify()
    approval: Approval = Approval()

    def with_overrides(
        self,
        *,
        allow_duplicates: bool = False,
        include_hidden: bool = False,
        allow_unverified: bool = False,
        max_row_amount: Mapping[str, Decimal] | None = None,
        max_batch_total: Mapping[str, Decimal] | None = None,
    ) -> Policy:
        """The policy with command-line options applied: a flag can only switch a check's override on;
        limits given on the command line replace the file's for the currencies they name."""
        limits = self.limits.model_copy(
            update={
                "max_row_amount": {**self.limits.max_row_amount, **(max_row_amount or {})},
                "max_batch_total": {**self.limits.max_batch_total, **(max_batch_total or {})},
            }
        )
        return self.model_copy(
            update={
                "duplicates": self.duplicates.model_copy(update={"allow": self.duplicates.allow or allow_duplicates}),
                "rows": self.rows.model_copy(update={"include_hidden": self.rows.include_hidden or include_hidden}),
                "verify": self.verify.model_copy(
                    update={"allow_unverified": self.verify.allow_unverified or allow_unverified}
                ),
                "limits": limits,
            }
        )


def parse_policy(text: str, source: str = "the policy") -> Policy:
    """A policy from TOML text; :class:`ConfigError` naming ``source`` and the key when it is wrong."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "is not a setting batch-payouts knows (see docs/policy.md)"
        raise ConfigError(f"{source}: {where} {message}") from None


def load_policy(path: Path | None) -> Policy:
    """The policy file at ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the policy file {path} cannot be read ({exc})") from None
    return parse_policy(text, f"the policy file {path}")


def parse_currency_amounts(text: str, option: str) -> dict[str, Decimal]:
    """``"KES=200000,UGX=5000000"`` as amounts per currency; ``option`` names the option in errors."""
    out: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, sep, amount = part.partition("=")
        code = code.strip().upper()
        if not sep or not _CURRENCY.fullmatch(code):
            raise ConfigError(f"{option}: {part!r} should look like KES=200000")
        if code not in CURRENCY_DIGITS:
            raise ConfigError(f"{option}: {code} is not a currency code batch-payouts knows, such as KES")
        try:
            value = Decimal(amount.strip().replace("_", ""))
        except InvalidOperation:
            raise ConfigError(
                f"{option}: {amount.strip()!r} is not an amount (write 200000, without separators)"
            ) from None
        if not value.is_finite() or value <= 0:
            raise ConfigError(f"{option}: the {code} limit must be more than zero")
        out[code] = value
    if not out:
        raise ConfigError(f"{option}: give at least one limit, e.g. KES=200000")
    return out

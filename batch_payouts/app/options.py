"""Text a person typed (a command-line option, a form field) turned into typed values.

Each parser raises :class:`~batch_payouts.errors.BadValue` (or another usage problem) whose
sentence says what is wrong; ``option`` names the setting as the command line spells it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from batch_payouts import errors
from batch_payouts.policy import Policy, load_policy, parse_currency_amounts
from batch_payouts.ratelimit import MONEY_DEFAULT, READS_DEFAULT, Window, parse_rate


def pairs(values: Iterable[str], what: str, option: str | None = None) -> dict[str, str]:
    """``KEY=VALUE`` texts (quotes around the value dropped) as a dict; ``what`` shows the form."""
    found = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise errors.BadValue(f"{value!r}: expected {what}", option)
        found[key.strip()] = val.strip().strip('"')
    return found


def amount(text: str | None, option: str) -> Decimal | None:
    """An amount in major units (thousands separators allowed), or None when not given."""
    if text is None:
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise errors.NotAnAmount(text, option) from None


def host_port(text: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, meaning 127.0.0.1)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise errors.NotHostPort(text, option)
    return host or "127.0.0.1", int(port)


def money_rate(text: str | None) -> tuple[Window, ...]:
    """The payout allowance, ``limit/seconds`` windows such as ``60/60,20/5`` (empty: the default)."""
    return parse_rate(text) if text else MONEY_DEFAULT


def reads_rate(text: str | None) -> tuple[Window, ...]:
    """The status-read allowance, as :func:`money_rate` (empty: the default)."""
    return parse_rate(text) if text else READS_DEFAULT


def pay_again_rows(text: str | None, reason: str | None) -> dict[int, str]:
    """``4,7`` with a reason: row number -> the reason recorded with each operator override."""
    if not text:
        if reason:
            raise errors.UsageProblem("--reason goes with --pay-again ROW[,ROW…]")
        return {}
    if not reason or not reason.strip():
        raise errors.UsageProblem("--pay-again needs --reason TEXT: why these rows are paid again is recorded")
    rows = {}
    for part in text.split(","):
        if not part.strip().isdigit():
            raise errors.BadValue(f"{part.strip()!r} is not a row number", "--pay-again")
        rows[int(part)] = reason.strip()
    return rows


def row_numbers(text: str | None, option: str) -> list[int]:
    """``4,7``: sheet row numbers (empty when not given)."""
    if not text:
        return []
    rows = []
    for part in text.split(","):
        if not part.strip().isdigit():
            raise errors.BadValue(f"{part.strip()!r} is not a row number", option)
        rows.append(int(part))
    return rows


def policy(path: Path | None) -> Policy:
    """The policy file given (or the defaults): limits, duplicates, name checks (docs/policy.md)."""
    return load_policy(path)


def limits(values: Iterable[str], option: str) -> dict[str, Decimal]:
    """``KES=200000`` texts (each may list several, ``KES=200000,UGX=5000000``): major units per
    currency; a later value for a currency replaces an earlier one."""
    found: dict[str, Decimal] = {}
    for value in values:
        found.update(parse_currency_amounts(value, option))
    return found


def guard_policy(
    path: Path | None,
    *,
    allow_duplicates: bool = False,
    include_hidden: bool = False,
    max_row_amount: Iterable[str] = (),
    max_total: Iterable[str] = (),
) -> Policy:
    """The policy file (or the defaults) with the command line's guardrail options applied:
    ``--allow-duplicates``, ``--include-hidden``, ``--max-row-amount KES=…``, ``--max-total KES=…``."""
    return load_policy(path).with_overrides(
        allow_duplicates=allow_duplicates,
        include_hidden=include_hidden,
        max_row_amount=limits(max_row_amount, "--max-row-amount"),
        max_batch_total=limits(max_total, "--max-total"),
    )


DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\\t": "\t", "\t": "\t", "|": "|"}


def delimiter(text: str | None, option: str = "--delimiter") -> str | None:
    """The CSV delimiter a person named: ``,``, ``;``, ``|`` or ``tab`` (None: detect it)."""
    if text is None:
        return None
    if text.strip().lower() not in DELIMITERS and text not in DELIMITERS:
        raise errors.BadValue(f"{text!r} is not a delimiter: use ',', ';', '|' or 'tab'", option)
    return DELIMITERS.get(text, DELIMITERS.get(text.strip().lower()))

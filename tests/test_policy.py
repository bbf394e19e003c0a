"""The policy file: a documented default, exact amounts, and sentences for every mistake in it."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from batch_payouts.errors import ConfigError
from batch_payouts.policy import DEFAULT_POLICY, Policy, load_policy, parse_currency_amounts, parse_policy
from tests.conftest import ROOT


def test_the_documented_default_file_is_the_default_policy() -> None:
    doc = (ROOT / "docs" / "policy.md").read_text()
    shown = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert shown is not None and shown.group(1) == DEFAULT_POLICY
    assert parse_policy(DEFAULT_POLICY) == Policy() == load_policy(None)


def test_a_policy_file_sets_exact_per_currency_limits(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[limits]\nmax_row_amount = { kes = 200000, ZAR = 1250.50 }\nmax_batch_total = { KES = "5000000" }\n'
        "[verify]\nallow_unverified = true\n"
    )
    policy = load_policy(path)
    assert policy.limits.max_row_amount == {"KES": Decimal(200000), "ZAR": Decimal("1250.50")}
    assert policy.limits.max_batch_total == {"KES": Decimal(5000000)}
    assert policy.verify.allow_unverified and policy.duplicates.allow is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[duplicates]\nallowed = true\n",
            "the policy file {p}: duplicates.allowed is not a setting batch-payouts knows (see docs/policy.md)",
        ),
        (
            "[limits]\nmax_row_amount = { KSH = 10 }\n",
            "the policy file {p}: limits.max_row_amount 'KSH' is not a currency code batch-payouts knows, such as KES",
        ),
        (
            "[limits]\nmax_row_amount = { KES = 0 }\n",
            "the policy file {p}: limits.max_row_amount the KES limit must be more than zero",
        ),
        (
            "[outliers]\nfile_multiple = -1\n",
            "the policy file {p}: outliers.file_multiple Input should be greater than or equal to 0",
        ),
        (
            "[rows\n",
            "the policy file {p} is not valid TOML: Expected ']' at the end of a table declaration (at line 1, "
            "column 6)",
        ),
    ],
)
def test_a_mistake_in_the_policy_file_is_a_sentence(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_policy(path)
    assert str(refused.value) == message.format(p=path)


def test_a_missing_policy_file_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^the policy file .*nope.toml cannot be read \(\[Errno 2\]"):
        load_policy(tmp_path / "nope.toml")


def test_currency_amounts_from_the_command_line() -> None:
    assert parse_currency_amounts("KES=200000, ugx=5_000_000", "--max-row-amount") == {
        "KES": Decimal(200000),
        "UGX": Decimal(5000000),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("KES 200000", "--max-row-amount: 'KES 200000' should look like KES=200000"),
        ("KES=200,000", "--max-row-amount: '000' should look like KES=200000"),
        ("KES=lots", "--max-row-amount: 'lots' is not an amount (write 200000, without separators)"),
        ("KES=-5", "--max-row-amount: the KES limit must be more than zero"),
        ("KSH=5", "--max-row-amount: KSH is not a currency code batch-payouts knows, such as KES"),
        ("", "--max-row-amount: give at least one limit, e.g. KES=200000"),
    ],
)
def test_a_wrong_currency_amount_is_a_sentence(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_currency_amounts(text, "--max-row-amount")
    assert str(refused.value) == message


def test_command_line_overrides_switch_checks_on_and_replace_named_limits() -> None:
    base = parse_policy("[limits]\nmax_row_amount = { KES = 100, UGX = 200 }\n")
    policy = base.with_overrides(
        allow_duplicates=True, include_hidden=True, allow_unverified=True, max_row_amount={"KES": Decimal(300)}
    )
    assert (policy.duplicates.allow, policy.rows.include_hidden, policy.verify.allow_unverified) == (True, True, True)
    assert policy.limits.max_row_amount == {"KES": Decimal(300), "UGX": Decimal(200)}
    assert base.with_overrides() == base

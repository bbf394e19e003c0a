"""Confirmation of payee: every answer the provider can give becomes the verdict and sentence a
finance person reads. Answers come from the sandbox over HTTP, as the provider would send them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_payouts.kotani import wire
from batch_payouts.kotani.client import KotaniClient
from batch_payouts.lookup import request_for
from batch_payouts.model import BankPayout, MobileMoneyPayout, PaybillPayout, Payout, TillPayout
from batch_payouts.verify import Decision, Finding, accept, from_cache, name_score, result_columns, verdict_for

pytestmark = pytest.mark.anyio


def phone_row(phone: str, name: str = "Jane Doe", row: int = 2) -> MobileMoneyPayout:
    return MobileMoneyPayout(row=row, name=name, amount=Decimal(1500), currency="KES", country="KE", phone=phone)


def bank_row(account: str, name: str = "Jane Doe") -> BankPayout:
    return BankPayout(
        row=3, name=name, amount=Decimal(4000), currency="KES", country="KE", bank_code="68", account_number=account
    )


async def ask(client: KotaniClient, payout: Payout) -> wire.AccountValidation:
    body = request_for(payout)
    if isinstance(body, wire.ValidateBank):
        return await client.validate_bank(body)
    return await client.validate_mobile_money(body)


# -- the provider's own score ---------------------------------------------------------------------


async def test_a_matching_name_is_payable_with_kotanis_score(client: KotaniClient) -> None:
    v = verdict_for(await ask(client, phone_row("+254700000001")), phone_row("+254700000001"))
    assert (v.decision, v.finding, v.registered_name, v.score, v.threshold, v.score_source) == (
        Decision.PAY,
        Finding.NAME_MATCHES,
        "JANE MARY DOE",
        76,
        70,
        "provider",
    )
    assert v.sentence == "The name matches the account holder JANE MARY DOE (Kotani's score 76 of 100)."


async def test_a_different_name_is_held_showing_the_registered_name_and_score(client: KotaniClient) -> None:
    row = phone_row("+254700000030", name="Wanjiru Kamau")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.finding, v.registered_name, v.score) == (
        Decision.HOLD,
        Finding.NAME_DIFFERS,
        "PETER OKELLO MUSA",
        20,
    )
    assert v.sentence == (
        "The account holder is PETER OKELLO MUSA, not Wanjiru Kamau (Kotani's score 20 of 100, "
        "70 needed): held, not paid unless you accept the name."
    )


async def test_a_masked_name_is_shown_masked(client: KotaniClient) -> None:
    row = phone_row("+254700000007", name="Peter Okello")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.registered_name, v.masked) == (Decision.HOLD, "J*** M*** D**", True)
    assert v.sentence == (
        "The account holder is J*** M*** D** (partly hidden by Kotani), not Peter Okello "
        "(Kotani's score 40 of 100, 70 needed): held, not paid unless you accept the name."
    )


async def test_a_held_name_is_paid_once_an_operator_accepts_it(client: KotaniClient) -> None:
    row = phone_row("+254700000030", name="Wanjiru Kamau")
    v = accept(verdict_for(await ask(client, row), row), by="amina@finance")
    assert (v.decision, v.accepted) == (Decision.PAY, True)
    assert v.sentence.endswith("held, not paid unless you accept the name. Accepted by amina@finance: paid.")


async def test_a_registered_sandbox_customer_answers_with_its_own_name(client: KotaniClient) -> None:
    await client.create_customer(
        wire.CreateCustomer(phone_number="+254712000111", country_code="KE", account_name="Achieng Odhiambo")
    )
    row = phone_row("+254712000111", name="Odhiambo Achieng")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.registered_name, v.score) == (Decision.PAY, "ACHIENG ODHIAMBO", 100)


# -- our own score, where Kotani returns a name but no nameMatch -------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("Wanjiru Mary", "MARY WANJIRU"),
        ("José Mwangi", "Jose Mwangi"),
        ("J. Otieno", "John Otieno"),
        ("Jane Doe", "JANE MARY DOE"),
        ("Ngũgĩ wa Thiong'o", "NGUGI WA THIONGO"),
    ],
)
def test_names_match_despite_word_order_case_accents_and_initials(ours: str, theirs: str) -> None:
    assert name_score(ours, theirs) == 100


@pytest.mark.parametrize(
    ("ours", "theirs", "score"),
    [
        ("Peter Okello", "JANE MARY DOE", 40),
        ("J Otieno", "JAMES OCHIENG", 80),
        ("Mary", "MARY WANJIRU KAMAU", 36.4),
    ],
)
def test_different_names_score_low(ours: str, theirs: str, score: float) -> None:
    assert name_score(ours, theirs) == score


@given(
    st.lists(
        st.sampled_from(["amina", "Otieno", "José", "WANJIRU", "k.", "Mwangi"]), min_size=1, max_size=4, unique=True
    ),
    st.randoms(),
)
def test_our_score_ignores_word_order_and_case(words: list[str], rng: object) -> None:
    shuffled = list(words)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert name_score(" ".join(words), " ".join(shuffled).upper()) == 100


async def test_without_a_name_match_our_comparison_decides_and_says_the_score_is_ours(client: KotaniClient) -> None:
    row = phone_row("+254700000008", name="John Otieno")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.score_source, v.score) == (Decision.PAY, "ours", 100)
    assert v.sentence == (
        "The name matches the account holder OTIENO JOHN (our own comparison: 100 of 100; Kotani gave no score)."
    )
    row = phone_row("+254700000008", name="James Ochieng")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.finding, v.score_source) == (Decision.HOLD, Finding.NAME_DIFFERS, "ours")
    assert v.sentence == (
        "The account holder is OTIENO JOHN, not James Ochieng (our own comparison: 50 of 100, "
        "85 needed; Kotani gave no score): held, not paid unless you accept the name."
    )


def test_a_masked_name_without_a_score_is_not_compared() -> None:
    answer = wire.AccountValidation.model_validate(
        {
            "isValid": True,
            "isSupported": True,
            "accountType": "mobile_money",
            "nameLookupStatus": "MATCHED",
            "accountName": "J*** D**",
        }
    )
    v = verdict_for(answer, phone_row("+254712345678"))
    assert (v.decision, v.finding) == (Decision.PAY, Finding.NAME_NOT_CHECKED)
    assert v.sentence == (
        "Name not checked: Kotani gave only a partly hidden name (J*** D**) and no score. "
        "Paid on the details in the file."
    )


# -- accounts that cannot be paid -------------------------------------------------------------------


async def test_an_unknown_number_is_invalid(client: KotaniClient) -> None:
    row = phone_row("+254700000003")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.finding) == (Decision.REFUSE, Finding.NOT_FOUND)
    assert v.sentence == (
        "Kotani found no account for this phone number (Kotani: No account is registered to "
        "this number): not paid. Check the details with the recipient."
    )


async def test_an_unknown_shortcode_and_bank_account_are_invalid(client: KotaniClient) -> None:
    till = TillPayout(row=4, name="Acme", amount=Decimal(10), currency="KES", country="KE", till_number="100002")
    v = verdict_for(await ask(client, till), till)
    assert v.decision is Decision.REFUSE
    assert v.sentence.startswith("Kotani found no account for this till number (Kotani: No business is registered")
    bank = bank_row("1000000005")
    assert verdict_for(await ask(client, bank), bank).sentence == (
        "Kotani found no account for this bank account (Kotani: No account with this number at this bank): "
        "not paid. Check the details with the recipient."
    )


async def test_an_account_that_cannot_receive_money_is_held(client: KotaniClient) -> None:
    row = phone_row("+254700000031")
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.finding) == (Decision.HOLD, Finding.UNAVAILABLE)
    assert v.sentence == (
        "The account behind this phone number exists but cannot receive money now (Kotani: The "
        "account exists but cannot receive money at the moment): held, not paid."
    )


@pytest.mark.parametrize(
    ("row", "finding", "sentence"),
    [
        (
            phone_row("+254700000032"),
            Finding.FROZEN,
            "The account behind this phone number is frozen: held, not paid. Ask the recipient for another account.",
        ),
        (
            phone_row("+254700000033"),
            Finding.RESTRICTED,
            "The account behind this phone number is restricted: held, not paid. Ask the recipient for another account.",
        ),
        (
            bank_row("1000000003"),
            Finding.FROZEN,
            "The account behind this bank account is frozen: held, not paid. Ask the recipient for another account.",
        ),
        (
            bank_row("1000000004"),
            Finding.RESTRICTED,
            "The account behind this bank account is restricted: held, not paid. Ask the recipient for another account.",
        ),
    ],
)
async def test_frozen_and_restricted_accounts_are_held(
    client: KotaniClient, row: Payout, finding: Finding, sentence: str
) -> None:
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.finding, v.sentence) == (Decision.HOLD, finding, sentence)


async def test_a_number_kotani_calls_invalid_is_invalid(client: KotaniClient) -> None:
    answer = await client.validate_mobile_money(wire.ValidateMobileMoney(phone_number="0712", account_name="Jane"))
    v = verdict_for(answer, phone_row("+254712345678"))
    assert (v.decision, v.finding) == (Decision.REFUSE, Finding.ACCOUNT_INVALID)
    assert v.sentence == (
        "Kotani says this phone number is not valid (Kotani: Phone number is not valid; send it in "
        "international format, e.g. +254712345678): not paid. Check the details with the recipient."
    )


# -- lookups that did not decide --------------------------------------------------------------------


async def test_a_timeout_is_not_verified_and_held_unless_unverified_rows_are_allowed(client: KotaniClient) -> None:
    row = phone_row("+254700000005")
    answer = await ask(client, row)
    v = verdict_for(answer, row, tries=3)
    assert (v.decision, v.finding) == (Decision.HOLD, Finding.NOT_VERIFIED)
    assert v.sentence == (
        "Not verified: the name could not be checked (timeout (Kotani: The network did not answer "
        "the name lookup in time), 3 tries): held, not paid. Run again later, accept the row, or "
        "allow unverified rows (--allow-unverified)."
    )
    v = verdict_for(answer, row, tries=3, allow_unverified=True)
    assert (v.decision, v.finding) == (Decision.PAY, Finding.NOT_VERIFIED)
    assert v.sentence == (
        "Not verified: the name could not be checked (timeout (Kotani: The network did not answer "
        "the name lookup in time), 3 tries); paid anyway because unverified rows are allowed."
    )


async def test_an_error_is_not_verified(client: KotaniClient) -> None:
    paybill = PaybillPayout(
        row=5,
        name="Acme",
        amount=Decimal(10),
        currency="KES",
        country="KE",
        paybill_number="100003",
        account_reference="A1",
    )
    v = verdict_for(await ask(client, paybill), paybill)
    assert (v.decision, v.finding, v.lookup_status) == (Decision.HOLD, Finding.NOT_VERIFIED, "ERROR")


@pytest.mark.parametrize(
    ("row", "sentence"),
    [
        (
            phone_row("+254700000034"),
            "Name not checked: name checks are not enabled on this Kotani account. Paid on the details in the file.",
        ),
        (
            phone_row("+254700000004"),
            "Name not checked: Kotani cannot check names for this kind of account. Paid on the details in the file.",
        ),
        (
            bank_row("1000000009"),
            "Name not checked: name checks are not enabled on this Kotani account. Paid on the details in the file.",
        ),
    ],
)
async def test_a_corridor_without_name_checks_is_payable_with_a_note(
    client: KotaniClient, row: Payout, sentence: str
) -> None:
    v = verdict_for(await ask(client, row), row)
    assert (v.decision, v.finding, v.note, v.sentence) == (
        Decision.PAY,
        Finding.NAME_NOT_CHECKED,
        "name not checked",
        sentence,
    )


async def test_a_reused_answer_says_when_it_was_looked_up(client: KotaniClient) -> None:
    row = phone_row("+254700000001")
    v = from_cache(verdict_for(await ask(client, row), row), checked_at=1_790_000_000)
    assert v.from_cache and v.sentence.endswith("(Kotani's score 76 of 100). (Looked up on 2026-09-21, reused.)")


async def test_the_results_file_columns_of_a_verdict(client: KotaniClient) -> None:
    held = phone_row("+254700000030", name="Wanjiru Kamau")
    assert result_columns(verdict_for(await ask(client, held), held)) == {
        "name_check": "held: name differs",
        "registered_name": "PETER OKELLO MUSA",
        "name_score": "20 (Kotani)",
        "name_check_detail": "The account holder is PETER OKELLO MUSA, not Wanjiru Kamau (Kotani's score 20 of 100, "
        "70 needed): held, not paid unless you accept the name.",
    }
    ours = phone_row("+254700000008", name="John Otieno")
    columns = result_columns(verdict_for(await ask(client, ours), ours))
    assert (columns["name_check"], columns["name_score"]) == ("payable", "100 (ours)")
    unchecked = phone_row("+254700000034")
    columns = result_columns(verdict_for(await ask(client, unchecked), unchecked))
    assert (columns["name_check"], columns["registered_name"], columns["name_score"]) == (
        "payable: name not checked",
        "",
        "",
    )

"""One vocabulary for a finance person: every row state has one word, each word one definition, and
no HTTP detail reaches a reason."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from batch_payouts.model import RowState
from batch_payouts.vocabulary import DEFINITIONS, ORDER, STATE_WORDS, WHAT_TO_DO, Word, markdown, plain, reason
from tests.conftest import ROOT

HTTP_TERMS = re.compile(
    r"\b(GET|POST|PUT|PATCH|DELETE)\b|/api/|answered \d{3}|\b\w+(Error|Timeout)\b|from Kotani|Kotani answered"
)


def test_every_state_has_a_word_and_every_word_a_definition_and_a_next_step() -> None:
    assert set(STATE_WORDS) == set(RowState)
    assert set(STATE_WORDS.values()) == set(Word) == set(ORDER) == set(DEFINITIONS)
    assert [str(w) for w in ORDER] == [
        "paid",
        "failed",
        "held (needs a decision)",
        "waiting for the provider",
        "not sent yet",
        "not paid (repeat)",
        "invalid",
    ]
    assert all(WHAT_TO_DO[w] for w in ORDER if w is not Word.PAID)


def test_docs_vocabulary_is_written_from_the_module() -> None:
    assert (ROOT / "docs" / "vocabulary.md").read_text() == markdown()


# What the client and the engine write into the ledger's error and note fields.
METHODS = st.sampled_from(["GET", "POST"])
PATHS = st.sampled_from(
    [
        "/api/v3/withdraw/mobile-money",
        "/api/v3/customer/mobile-money/phone/+254712000001",
        "/api/v3/withdraw/status/b1-2-1",
        "/api/v3/wallet/fiat",
    ]
)
CAUSES = st.sampled_from(
    [
        "ConnectError",
        "ConnectTimeout",
        "PoolTimeout",
        "ReadTimeout",
        "RemoteProtocolError",
        "WriteTimeout",
        "ReadError",
        "attempt deadline passed",
    ]
)
CODES = st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503, 504])
MESSAGES = st.sampled_from(
    [
        "Invalid API Key",
        "Bad gateway",
        "Validation failed: amount too small",
        "",
        "Insufficient funds in fiat wallet",
        "Customer suspended",
    ]
)


@st.composite
def technical(draw: st.DrawFn) -> str:
    where = f"{draw(METHODS)} {draw(PATHS)}"
    no_answer = f"no answer from Kotani ({draw(CAUSES)}) for {where}"
    answered = f"Kotani answered {draw(CODES)}: {draw(MESSAGES)} ({where})"
    inner = draw(st.sampled_from([no_answer, answered, draw(CAUSES)]))
    return draw(
        st.sampled_from(
            [
                f"not sent yet ({inner}); try 2 of 5",
                f"not sent yet (customer look-up: {inner}); try 1 of 5",
                f"not sent: {inner} 5 times; run the batch again later",
                f"no clear answer: {inner}",
                f"customer: {draw(MESSAGES)}",
                inner,
            ]
        )
    )


@given(technical(), st.sampled_from(list(RowState)))
def test_no_http_term_reaches_a_reason(text: str, state: RowState) -> None:
    said = reason(state, error=text, note=text, problems=[], provider_status="FAILED")
    assert not HTTP_TERMS.search(said), said
    assert not HTTP_TERMS.search(plain(text)), plain(text)


def test_reasons_in_plain_words() -> None:
    def why(state: RowState, note: str | None = None, error: str | None = None) -> str:
        return reason(state, error=error, note=note, problems=[], provider_status=None)

    assert (
        why(RowState.READY, "not sent: ConnectError 3 times; run the batch again later")
        == "not sent: the provider could not be reached (3 tries); run the batch again later"
    )
    assert (
        why(
            RowState.READY,
            "not sent yet (customer look-up: no answer from Kotani (ReadTimeout) for GET "
            "/api/v3/customer/mobile-money/phone/+254712000001); try 2 of 5",
        )
        == "not sent yet: looking up the recipient: no answer came back in time (try 2 of 5)"
    )
    assert (
        why(RowState.UNKNOWN, "no clear answer: Kotani answered 502: Bad gateway (POST /api/v3/withdraw/mobile-money)")
        == "sent, but no clear answer came back (the provider had an internal problem); its status is being read back"
    )
    assert (
        why(RowState.REJECTED, error="Kotani answered 401: Invalid API Key (GET /api/v3/wallet/fiat)")
        == "the provider refused the API key"
    )
    assert (
        why(RowState.REJECTED, error="customer: Customer suspended")
        == "the provider refused the recipient's details: Customer suspended"
    )
    assert why(RowState.FAILED, error="Recipient account not found") == "Recipient account not found"
    assert why(RowState.READY) == "the run ended before this row was sent"
    assert (
        why(RowState.SUCCEEDED, "corrected by the provider: FAILED became SUCCESSFUL")
        == "the provider changed its answer: FAILED became SUCCESSFUL"
    )
    blocked = [
        {
            "column": "",
            "value": "",
            "severity": "error",
            "message": "already paid in batch b1 row 2 (use --allow-repeat to pay again)",
        }
    ]
    assert (
        reason(RowState.BLOCKED, error=None, note=None, problems=blocked, provider_status=None)
        == "already paid in batch b1 row 2"
    )

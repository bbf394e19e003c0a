"""Confirmation of payee: the provider's answer about an account, plus the spreadsheet row, make a verdict.

Pure logic, no I/O (the look-ups themselves are in ``lookup.py``). Every verdict carries a sentence a
finance person understands, the registered name exactly as the provider gave it (masked if masked) and
the score with where it came from. Scores are 0-100. The one place that uses rapidfuzz.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Literal

from rapidfuzz import fuzz

from batch_payouts.kotani.wire import AccountValidation
from batch_payouts.model import Method, Payout

OUR_THRESHOLD = 85.0  # our own comparison counts as a match from this score (0-100)
RETRYABLE = frozenset({"TIMEOUT", "ERROR"})
_NOT_CHECKED = frozenset({"NOT_ENABLED", "UNSUPPORTED"})
_BLOCKED_ACCOUNT = {"FROZEN": "frozen", "RESTRICTED": "restricted"}


class Decision(StrEnum):
    """What happens to the row."""

    PAY = "payable"
    HOLD = "held"  # not paid until an operator accepts it
    REFUSE = "invalid"


class Finding(StrEnum):
    """Why: one value per kind of answer."""

    NAME_MATCHES = "name_matches"
    NAME_DIFFERS = "name_differs"
    NOT_FOUND = "not_found"
    ACCOUNT_INVALID = "account_invalid"
    UNAVAILABLE = "account_unavailable"
    FROZEN = "frozen"
    RESTRICTED = "restricted"
    NOT_VERIFIED = "not_verified"
    NAME_NOT_CHECKED = "name_not_checked"


ScoreSource = Literal["provider", "ours"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of confirming one row's payee. ``checked_at``: epoch seconds of the look-up."""

    row: int
    decision: Decision
    finding: Finding
    sentence: str
    registered_name: str | None = None  # as the provider gave it, masked if masked
    score: float | None = None
    threshold: float | None = None
    score_source: ScoreSource | None = None
    masked: bool = False
    lookup_status: str | None = None
    checked_at: float | None = None
    from_cache: bool = False
    accepted: bool = False  # an operator let a held row through

    @property
    def note(self) -> str:
        """The short note for a results column: "name not checked", "name differs", …"""
        return self.finding.value.replace("_", " ")


# -- names ---------------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    """Lower-case ASCII words: accents, punctuation and case dropped."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().replace("'", "")
    return re.findall(r"[a-z0-9]+", plain)


def _expand_initials(ours: list[str], theirs: list[str]) -> list[str]:
    """Replace each one-letter word of ``ours`` by an unused word of ``theirs`` starting with it."""
    spare = list(theirs)
    for word in ours:
        if word in spare and len(word) > 1:
            spare.remove(word)
    out = []
    for word in ours:
        full = next((w for w in spare if len(word) == 1 and len(w) > 1 and w[0] == word), None)
        if full is not None:
            spare.remove(full)
            out.append(full)
        else:
            out.append(word)
    return out


def name_score(expected: str, registered: str) -> float:
    """0-100: how alike two names are, tolerating word order, case, accents and initials
    ("J. Otieno" and "John Otieno"). A missing middle name still scores 100 when at least two
    words agree ("Jane Doe" and "JANE MARY DOE")."""
    ours, theirs = _words(expected), _words(registered)
    if not ours or not theirs:
        return 0.0
    ours, theirs = _expand_initials(ours, theirs), _expand_initials(theirs, ours)
    a, b = " ".join(ours), " ".join(theirs)
    score = fuzz.token_sort_ratio(a, b)
    if min(len(set(ours)), len(set(theirs))) >= 2:
        score = max(score, fuzz.token_set_ratio(a, b))
    return round(float(score), 1)


# -- verdicts --------------------------------------------------------------------------------------


def _account(payout: Payout) -> str:
    """How a sentence names the account: "this phone number", "this bank account", …"""
    return {
        Method.MOBILE_MONEY: "this phone number",
        Method.TILL: "this till number",
        Method.PAYBILL: "this paybill account",
        Method.BANK: "this bank account",
    }[payout.method]


def _score_text(score: float) -> str:
    return f"{score:g}"


def _shown(name: str, masked: bool) -> str:
    return f"{name} (partly hidden by Kotani)" if masked else name


def verdict_for(
    answer: AccountValidation,
    payout: Payout,
    *,
    allow_unverified: bool = False,
    our_threshold: float = OUR_THRESHOLD,
    tries: int = 1,
) -> Verdict:
    """The verdict on ``payout`` given the provider's ``answer``. A TIMEOUT or ERROR answer gives
    "not verified" (the caller retries before asking for this); ``tries`` says how many look-ups it took."""
    status = (answer.name_lookup_status or "").upper() or None
    base = Verdict(payout.row, Decision.PAY, Finding.NAME_MATCHES, "", lookup_status=status)
    reason = f" (Kotani: {answer.name_lookup_reason.rstrip('.')})" if answer.name_lookup_reason else ""
    what = _account(payout)
    if status == "NOT_FOUND":
        return replace(
            base,
            decision=Decision.REFUSE,
            finding=Finding.NOT_FOUND,
            sentence=(f"Kotani found no account for {what}{reason}: not paid. Check the details with the recipient."),
        )
    if not answer.is_valid:
        message = f" (Kotani: {answer.message.rstrip('.')})" if answer.message else ""
        return replace(
            base,
            decision=Decision.REFUSE,
            finding=Finding.ACCOUNT_INVALID,
            sentence=(f"Kotani says {what} is not valid{message}: not paid. Check the details with the recipient."),
        )
    if status == "ACCOUNT_UNAVAILABLE":
        return replace(
            base,
            decision=Decision.HOLD,
            finding=Finding.UNAVAILABLE,
            sentence=(f"The account behind {what} exists but cannot receive money now{reason}: held, not paid."),
        )
    blocked = _BLOCKED_ACCOUNT.get((answer.account_status or "").upper())
    if blocked:
        finding = Finding.FROZEN if blocked == "frozen" else Finding.RESTRICTED
        return replace(
            base,
            decision=Decision.HOLD,
            finding=finding,
            registered_name=answer.account_name,
            sentence=(
                f"The account behind {what} is {blocked}: held, not paid. Ask the recipient for another account."
            ),
        )
    if status in RETRYABLE:
        return replace(
            unverified(payout, f"{status.lower()}{reason}", tries=tries, allow_unverified=allow_unverified),
            lookup_status=status,
        )
    if status in _NOT_CHECKED:
        why = (
            "name checks are not enabled on this Kotani account"
            if status == "NOT_ENABLED"
            else "Kotani cannot check names for this kind of account"
        )
        return replace(
            base,
            finding=Finding.NAME_NOT_CHECKED,
            sentence=f"Name not checked: {why}. Paid on the details in the file.",
        )
    if status not in (None, "MATCHED"):
        return replace(
            unverified(payout, f"Kotani answered {status}{reason}", tries=tries, allow_unverified=allow_unverified),
            lookup_status=status,
        )
    if answer.name_match is not None:
        return _provider_match(base, answer, payout)
    if answer.account_name:
        return _our_match(base, answer, payout, our_threshold)
    return replace(
        base,
        finding=Finding.NAME_NOT_CHECKED,
        sentence="Name not checked: Kotani gave no name for this account. Paid on the details in the file.",
    )


def _provider_match(base: Verdict, answer: AccountValidation, payout: Payout) -> Verdict:
    match = answer.name_match
    assert match is not None
    registered = answer.account_name or "(no name given)"
    found = replace(
        base,
        registered_name=answer.account_name,
        score=match.score,
        threshold=match.threshold,
        score_source="provider",
        masked=match.masked,
    )
    shown = _shown(registered, match.masked)
    if match.matched:
        return replace(
            found,
            sentence=(
                f"The name matches the account holder {shown} (Kotani's score {_score_text(match.score)} of 100)."
            ),
        )
    return replace(
        found,
        decision=Decision.HOLD,
        finding=Finding.NAME_DIFFERS,
        sentence=(
            f"The account holder is {shown}, not {payout.name} (Kotani's score {_score_text(match.score)} "
            f"of 100, {_score_text(match.threshold)} needed): held, not paid unless you accept the name."
        ),
    )


def _our_match(base: Verdict, answer: AccountValidation, payout: Payout, threshold: float) -> Verdict:
    registered = answer.account_name or ""
    if "*" in registered:  # a masked name cannot be compared letter by letter
        return replace(
            base,
            finding=Finding.NAME_NOT_CHECKED,
            registered_name=registered,
            masked=True,
            sentence=(
                f"Name not checked: Kotani gave only a partly hidden name ({registered}) "
                "and no score. Paid on the details in the file."
            ),
        )
    score = name_score(payout.name, registered)
    found = replace(base, registered_name=registered, score=score, threshold=threshold, score_source="ours")
    if score >= threshold:
        return replace(
            found,
            sentence=(
                f"The name matches the account holder {registered} (our own comparison: {_score_text(score)} "
                "of 100; Kotani gave no score)."
            ),
        )
    return replace(
        found,
        decision=Decision.HOLD,
        finding=Finding.NAME_DIFFERS,
        sentence=(
            f"The account holder is {registered}, not {payout.name} (our own comparison: {_score_text(score)} "
            f"of 100, {_score_text(threshold)} needed; Kotani gave no score): held, not paid unless you "
            "accept the name."
        ),
    )


def not_offered(payout: Payout, why: str) -> Verdict:
    """Kotani does not offer the look-up to this account: paid on the file's details, with a note."""
    return Verdict(
        payout.row,
        Decision.PAY,
        Finding.NAME_NOT_CHECKED,
        (
            f"Name not checked: Kotani does not offer account look-ups to this account ({why}). "
            "Paid on the details in the file."
        ),
    )


def unverified(payout: Payout, why: str, *, tries: int, allow_unverified: bool) -> Verdict:
    """ "Not verified": the look-up failed ``tries`` times; held unless unverified rows are allowed."""
    attempts = "1 try" if tries == 1 else f"{tries} tries"
    if allow_unverified:
        return Verdict(
            payout.row,
            Decision.PAY,
            Finding.NOT_VERIFIED,
            (
                f"Not verified: the name could not be checked ({why}, {attempts}); paid anyway because "
                "unverified rows are allowed."
            ),
        )
    return Verdict(
        payout.row,
        Decision.HOLD,
        Finding.NOT_VERIFIED,
        (
            f"Not verified: the name could not be checked ({why}, {attempts}): held, not paid. "
            "Run again later, accept the row, or allow unverified rows (--allow-unverified)."
        ),
    )


def result_columns(verdict: Verdict) -> dict[str, str]:
    """The columns a results file shows for a row's name check."""
    score = ""
    if verdict.score is not None:
        score = f"{_score_text(verdict.score)} ({'Kotani' if verdict.score_source == 'provider' else 'ours'})"
    return {
        "name_check": verdict.decision.value + ("" if verdict.finding is Finding.NAME_MATCHES else f": {verdict.note}"),
        "registered_name": verdict.registered_name or "",
        "name_score": score,
        "name_check_detail": verdict.sentence,
    }


def accept(verdict: Verdict, by: str) -> Verdict:
    """An operator lets a held row through; ``by`` names who (recorded by the caller with the time)."""
    if verdict.decision is not Decision.HOLD:
        return verdict
    return replace(
        verdict, decision=Decision.PAY, accepted=True, sentence=f"{verdict.sentence} Accepted by {by}: paid."
    )


def from_cache(verdict: Verdict, checked_at: float) -> Verdict:
    """A verdict made from an earlier look-up of ``checked_at`` (epoch seconds), saying so."""
    day = time.strftime("%Y-%m-%d", time.gmtime(checked_at))
    return replace(
        verdict, checked_at=checked_at, from_cache=True, sentence=f"{verdict.sentence} (Looked up on {day}, reused.)"
    )


def verdict_to_json(verdict: Verdict) -> str:
    """The verdict as JSON text, for the ledger's row."""
    return json.dumps(asdict(verdict), ensure_ascii=False)


def verdict_from_json(text: str) -> Verdict:
    """The verdict :func:`verdict_to_json` wrote."""
    data = json.loads(text)
    return Verdict(**{**data, "decision": Decision(data["decision"]), "finding": Finding(data["finding"])})

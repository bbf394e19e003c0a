"""The words a finance person reads for every row state, on every screen and in every file.

One word per outcome, each defined once (``docs/vocabulary.md`` is written from
:data:`DEFINITIONS`), and plain-words reasons for the technical errors and notes the ledger keeps:
no HTTP methods, paths, status codes or exception names reach a results file. Internal states
and HTTP details stay in the ledger and behind ``--verbose``.
"""

from __future__ import annotations

import re
from enum import StrEnum

from batch_payouts.model import RowState


class Word(StrEnum):
    """What happened to a row, in a finance person's words."""

    PAID = "paid"
    FAILED = "failed"
    HELD = "held (needs a decision)"
    WAITING = "waiting for the provider"
    NOT_SENT = "not sent yet"
    REPEAT = "not paid (repeat)"
    INVALID = "invalid"


# The order in which every table lists the words.
ORDER: tuple[Word, ...] = (Word.PAID, Word.FAILED, Word.HELD, Word.WAITING, Word.NOT_SENT, Word.REPEAT, Word.INVALID)

# One or two words each, for narrow screens (an 80-column progress line).
SHORT: dict[Word, str] = {
    Word.PAID: "paid",
    Word.FAILED: "failed",
    Word.HELD: "held",
    Word.WAITING: "waiting",
    Word.NOT_SENT: "not sent",
    Word.REPEAT: "repeat",
    Word.INVALID: "invalid",
}

DEFINITIONS: dict[Word, str] = {
    Word.PAID: "The provider confirmed the money reached the recipient.",
    Word.FAILED: "The provider refused the payment or reported it failed; no money left the wallet "
    "(or it was returned). It can be paid again with retry.",
    Word.HELD: "Not paid until a person decides. Either the provider holds the payment for review (ask Kotani "
    "before doing anything, never pay it again meanwhile), or it was never sent because the check of the "
    "recipient's account found a problem: a name that differs, a frozen account, a check that could not "
    "be done. Accept it to pay it, or correct the file.",
    Word.WAITING: "Sent, and the provider has not given a final answer yet (or the answer was lost "
    "and is being read back); it is never sent twice.",
    Word.NOT_SENT: "Valid, but not sent yet: the run stopped, the payout balance ran out, or the "
    "provider could not be reached. Running the batch again sends it.",
    Word.REPEAT: "Not paid, because the same payee was already paid the same amount in an earlier batch or attempt.",
    Word.INVALID: "The row cannot be paid as written (a missing or unreadable cell); fix the file.",
}

STATE_WORDS: dict[RowState, Word] = {
    RowState.SUCCEEDED: Word.PAID,
    RowState.FAILED: Word.FAILED,
    RowState.REJECTED: Word.FAILED,
    RowState.NEEDS_REVIEW: Word.HELD,
    RowState.SUBMITTING: Word.WAITING,
    RowState.SUBMITTED: Word.WAITING,
    RowState.UNKNOWN: Word.WAITING,
    RowState.READY: Word.NOT_SENT,
    RowState.HELD: Word.HELD,
    RowState.BLOCKED: Word.REPEAT,
    RowState.INVALID: Word.INVALID,
}

WHAT_TO_DO: dict[Word, str] = {
    Word.PAID: "",
    Word.FAILED: "Check the recipient's details (fix them in this file if needed), then run retry "
    "on this results file.",
    Word.HELD: "Ask Kotani support about this payment, quoting its reference; do not pay it again.",
    Word.WAITING: "Nothing to pay: resume the batch (or write the results again later) to get the final answer.",
    Word.NOT_SENT: "Resume the batch to send it.",
    Word.REPEAT: "Nothing, if it was meant to be paid once. To pay it again on purpose, run the "
    "file with --allow-repeat.",
    Word.INVALID: "Fix the cell named in the reason and run the corrected file.",
}


HELD_BEFORE_SENDING = (
    "Check the name and account with the recipient. If the payment is right, accept the row "
    "(--accept-name ROW) and run the batch again; if not, correct the file."
)


HELD_BY_A_GUARDRAIL = (
    "Check the reason given. If the payment is right, accept the row (--accept-name ROW) or run "
    "the same file again with the option the reason names; if not, correct the file."
)


def word_for(state: RowState) -> Word:
    """The finance word for a row state."""
    return STATE_WORDS[state]


# -- plain-words reasons --------------------------------------------------------------------------

# Connection problems by the name the HTTP library gives them: never left this machine, or lost.
_NEVER_LEFT = {"ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol"}
_CODES = {
    400: "the provider refused the request",
    401: "the provider refused the API key",
    403: "the provider refused permission",
    404: "the provider does not know it",
    409: "the provider reported a conflict",
    429: "the provider asked us to slow down",
}
_HTTP_METHOD = r"(?:GET|POST|PUT|PATCH|DELETE|HEAD)"
_NO_ANSWER = re.compile(r"no answer from Kotani \((?P<why>[^()]*)\)(?: for " + _HTTP_METHOD + r" [^\s);]+)?")
_ANSWERED = re.compile(r"Kotani answered (?P<code>\d{3}): (?P<message>.*?)(?= \(" + _HTTP_METHOD + r" |$|;)")
_REQUEST = re.compile(r"\s*\(" + _HTTP_METHOD + r" /[^\s);]*\)|\s*" + _HTTP_METHOD + r" /[^\s);]*")
_PATH = re.compile(r"/api/v\d\S*")
_EXCEPTION = re.compile(r"\b[A-Z][A-Za-z]+(?:Error|Timeout|Exception|Protocol)\b")
_CODE_WORDS = re.compile(r"\b(?:HTTP|status code|answered)\s*\d{3}\b", re.IGNORECASE)


def _no_answer(why: str) -> str:
    if why.strip() in _NEVER_LEFT:
        return "the provider could not be reached"
    return "no answer came back in time"


def _answered(code: int, message: str) -> str:
    message = message.strip().rstrip(".")
    if code >= 500:
        return "the provider had an internal problem"
    base = _CODES.get(code, "the provider refused the request")
    if code in (400, 403, 404, 409) and message and not _PATH.search(message):
        return f"{base}: {message}"
    return base


def plain(text: str) -> str:
    """``text`` with HTTP details (methods, paths, status codes, exception names) put in words."""
    if not text:
        return ""
    out = _NO_ANSWER.sub(lambda m: _no_answer(m["why"]), text)
    out = _ANSWERED.sub(lambda m: _answered(int(m["code"]), m["message"]), out)
    out = _REQUEST.sub("", out)
    out = _PATH.sub("", out)
    out = _EXCEPTION.sub(lambda m: _no_answer(m[0]), out)
    out = _CODE_WORDS.sub("the provider refused the request", out)
    out = out.replace("customer look-up", "looking up the recipient")
    return re.sub(r"\s{2,}", " ", out).strip(" ;,")


_TRY_AGAIN = re.compile(r"not sent yet \((?P<why>.*)\); try (?P<n>\d+) of (?P<of>\d+)$")
_GAVE_UP = re.compile(r"not sent: (?P<why>.*) (?P<n>\d+) times; run the batch again later$")
_FIXED_NOTES = {
    "provider: duplicate reference": "the provider already had this reference; its status is being read back",
    "the previous run stopped while sending": "the previous run stopped while sending it; its status is "
    "being read back",
    "not found at the provider twice; resent with the same reference": (
        "the provider had no record of it after two reads a while apart; it is sent again with the same "
        "reference (the provider refuses a second payment with it)"
    ),
}


def _note_reason(note: str) -> str:
    """A ledger note (why a row waits or was not sent) in plain words."""
    if note in _FIXED_NOTES:
        return _FIXED_NOTES[note]
    if found := _TRY_AGAIN.match(note):
        return f"not sent yet: {plain(found['why'])} (try {found['n']} of {found['of']})"
    if found := _GAVE_UP.match(note):
        return f"not sent: {plain(found['why'])} ({found['n']} tries); run the batch again later"
    if note.startswith("waiting: "):
        return f"the payout balance does not cover it ({plain(note[len('waiting: ') :])}); top it up"
    if note.startswith("no clear answer: "):
        return (
            f"sent, but no clear answer came back ({plain(note[len('no clear answer: ') :])}); "
            "its status is being read back"
        )
    if note.startswith("corrected by the provider: "):
        return "the provider changed its answer: " + note[len("corrected by the provider: ") :]
    return plain(note)


def reason(
    state: RowState, *, error: str | None, note: str | None, problems: list[dict[str, str]], provider_status: str | None
) -> str:
    """Why a row is where it is, in plain words ("" for a plainly paid row)."""
    word = word_for(state)
    if state is RowState.HELD:  # held before sending: the note is the check's sentence, already plain
        return plain(note or "")
    corrected = _note_reason(note) if note and note.startswith("corrected by the provider") else ""
    if word is Word.INVALID or word is Word.REPEAT:
        return "; ".join(_problem(p) for p in problems if p.get("severity") == "error")
    if word is Word.PAID:
        return corrected
    if word in (Word.FAILED, Word.HELD):
        text = plain(error or "")
        if text.startswith("customer: "):
            text = "the provider refused the recipient's details: " + text[len("customer: ") :]
        if not text:
            text = f"the provider reported {provider_status}" if provider_status else "refused by the provider"
        return "; ".join(t for t in (text, corrected) if t)
    if word is Word.WAITING:
        if note and state is not RowState.SUBMITTED:
            return _note_reason(note)
        shown = f" (status {provider_status})" if provider_status else ""
        return f"sent; the provider has not given a final answer yet{shown}"
    if note:
        return _note_reason(note)
    return "the run ended before this row was sent"


def _problem(problem: dict[str, str]) -> str:
    message = problem.get("message", "")
    message = re.sub(r"\s*\(use --allow-repeat to pay again\)", "", message)
    column = problem.get("column")
    return f"{column}: {message}" if column else message


def what_to_do(state: RowState, *, note: str | None = None) -> str:
    """The next step for a row that was not paid ("" for a paid row)."""
    word = word_for(state)
    if state is RowState.HELD:
        return HELD_BY_A_GUARDRAIL if note and note.startswith("Row ") else HELD_BEFORE_SENDING
    if word is Word.NOT_SENT and note and note.startswith("waiting: "):
        return "Top up the payout balance of this currency, then resume the batch."
    return WHAT_TO_DO[word]


def markdown() -> str:
    """The vocabulary as a Markdown document (``docs/vocabulary.md``)."""
    lines = [
        "# The words in results files and on screen",
        "",
        "Every screen, results file and PDF summary uses these words for what happened to a row",
        "(written from `batch_payouts/vocabulary.py`; do not edit by hand).",
        "",
        "| word | what it means | what to do |",
        "|---|---|---|",
    ]
    for word in ORDER:
        todo = WHAT_TO_DO[word] or "Nothing."
        if word is Word.HELD:
            todo = f"Held by the provider: {todo} Held before sending: {HELD_BEFORE_SENDING}"
        lines.append(f"| **{word}** | {DEFINITIONS[word]} | {todo} |")
    lines += [
        "",
        "Totals reconcile: the rows of a file are exactly the paid, failed, held, waiting, "
        "not sent, repeat and invalid rows, and so are the amounts (an invalid row whose amount "
        "cannot be read is counted in rows and listed, never taken as 0).",
        "",
        "Reasons are in plain words; the technical detail (HTTP answers, timeouts) stays in the ledger's audit trail.",
        "",
    ]
    return "\n".join(lines)

"""The exception tree of batch-payouts.

Every error carries structured fields; ``str()`` is the sentence a user reads. Only the front
ends (the CLI) turn these into printed messages and exit codes.

::

    BatchPayoutsError
    ├── InputFileError            the spreadsheet cannot be used at all (exit 2)
    ├── ConfigError               missing or unsafe settings: API key, key file mode (exit 2)
    │   └── UnsupportedFormat     a file to write whose kind we cannot write (exit 2)
    ├── UsageProblem              options that cannot be used together (exit 2, as a usage error)
    │   ├── OptionRemoved         an option that no longer exists, and what to use instead
    │   ├── OverrideOnOldBatch    --pay-again on a file already run as a batch
    │   └── BadValue              one option's value cannot be used
    │       ├── NotAnAmount       an amount that is not a number
    │       ├── NotHostPort       an address that is not HOST:PORT
    │       └── ResultsPathRefused  the results would overwrite the input, or go nowhere
    ├── NotConfirmed              the operator did not confirm the total (exit 2)
    ├── LedgerError               the local state store
    │   ├── IllegalTransition     a row state change the life cycle forbids
    │   ├── BatchLocked           another runner holds the batch lease
    │   ├── BatchExists           another run created the same batch meanwhile
    │   ├── WrongEnvironment      a batch used from another host or account (exit 2)
    │   ├── NotHeld               accepting rows that are not held
    │   └── BatchNotFound         no batch with that id
    ├── PlanRefused               balance cannot cover the run, repeats blocked (exit 3)
    ├── ApiError                  the provider answered with an error status
    │   ├── AuthenticationError   401
    │   ├── PermissionDenied      403
    │   ├── NotFound              404
    │   ├── BadRequest            400 with a reason we do not classify further
    │   │   ├── ValidationFailed  400 "Validation failed: ..." with per-field messages
    │   │   ├── InsufficientFunds 400 "Insufficient funds ..."
    │   │   └── DuplicateReference 400 "Duplicate referenceId"
    │   ├── RateLimited           429, with the advised wait in seconds
    │   ├── ServerError           5xx: the request may or may not have been acted on
    │   └── UnexpectedResponse    a 2xx whose body we cannot read: acted on, but how is unclear
    ├── NoAnswer                  no HTTP answer at all
    │   ├── NotSent               provably never left this machine (refused, DNS, connect/pool timeout)
    │   └── AnswerLost            may have reached the provider (timeout after send, reset, deadline)
    ├── OutputExists              a file to write is already there (``template`` without --force)
    └── AccessError               people and what they may do (console, ``users``) (exit 2)
        ├── SignInFailed          wrong username, password or code (the same sentence for each)
        ├── SignInThrottled       too many failed sign-ins; the wait in seconds
        ├── NotAllowed            a role that may not do this action
        ├── SamePerson            the two-person rule: the maker cannot approve their own batch
        ├── WrongStage            the batch is not at the step the action needs
        ├── TotalNotConfirmed     the typed total is not the batch's total; nothing was paid
        ├── UserExists            ``users add`` of a name already taken
        ├── UnknownUser           no person of that name
        └── UnknownDraft          no uploaded file waiting to be submitted under that id
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal


class BatchPayoutsError(Exception):
    """Root of every error this package raises on purpose."""


class InputFileError(BatchPayoutsError):
    """The input file cannot be used: unreadable, not a spreadsheet, columns missing, empty."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"{path}: {cause}")


class MissingColumns(InputFileError):
    """The file reads, but no column was recognised for each of ``missing``; ``headers`` are the
    file's own column names, so that a person can say which holds what."""

    def __init__(self, path: str, missing: list[str], headers: list[str]) -> None:
        self.missing = missing
        self.headers = headers
        super().__init__(path, "required columns missing: " + ", ".join(missing))


class ConfigError(BatchPayoutsError):
    """A setting is missing or unsafe."""


class NoApiKey(ConfigError):
    """No source has the Kotani API key (and no one can be asked)."""

    def __init__(self) -> None:
        super().__init__("no API key: set KOTANI_API_KEY, use --api-key-file, or run with --sandbox")


class UnsupportedFormat(ConfigError):
    """A file we would write has a suffix we cannot write (only .csv and .xlsx)."""

    SENTENCES: ClassVar[dict[str, str]] = {
        "template": "the template must be a .csv or .xlsx file",
        "results file": "the results file must be .csv or .xlsx",
    }

    def __init__(self, path: Path, what: Literal["template", "results file"]) -> None:
        self.path = path
        self.what = what
        super().__init__(self.SENTENCES[what])


class UsageProblem(BatchPayoutsError):
    """Options that cannot be used (together); nothing was done. Front ends show it as a usage error."""


class OptionRemoved(UsageProblem):
    """An option that is gone: why, and what to use instead."""

    def __init__(self, option: str, why: str, instead: str) -> None:
        self.option = option
        self.why = why
        self.instead = instead
        super().__init__(f"{option} is gone: {why}. {instead}")


class OverrideOnOldBatch(UsageProblem):
    """Rows to pay again were named for a file already run as a batch: overrides belong to a new batch."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(
            f"this file was already run as batch {batch_id}: --pay-again applies to a new batch "
            "(change the file or its --label)"
        )


class BadValue(UsageProblem):
    """One option's value cannot be used. ``option`` is the setting as the command line spells it
    (``--results``), or None when the sentence names the value alone."""

    def __init__(self, message: str, option: str | None = None) -> None:
        self.option = option
        self.problem = message
        super().__init__(message)


class NotAnAmount(BadValue):
    def __init__(self, text: str, option: str) -> None:
        self.text = text
        super().__init__(f"{text!r} is not an amount", option)


class NotHostPort(BadValue):
    def __init__(self, text: str, option: str = "--listen") -> None:
        self.text = text
        super().__init__(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8787", option)


class ResultsPathRefused(BadValue):
    """The results file would overwrite an input file, or its folder does not exist."""

    def __init__(self, path: Path, cause: Literal["is the input", "no folder"]) -> None:
        self.path = path
        self.cause = cause
        if cause == "is the input":
            message = f"{path} is the input file; choose another name for the results"
        else:
            message = f"the folder {path.parent} does not exist"
        super().__init__(message, "--results")


class NotConfirmed(BatchPayoutsError):
    """The total was not confirmed: no one could be asked, or the typed total was wrong. Nothing was paid."""

    SENTENCES: ClassVar[dict[str, str]] = {
        "no terminal": "confirmation needed: run in a terminal, or pass --yes",
        "mismatch": "the total typed does not match; nothing was paid",
    }

    def __init__(self, cause: Literal["no terminal", "mismatch"]) -> None:
        self.cause = cause
        super().__init__(self.SENTENCES[cause])


class LedgerError(BatchPayoutsError):
    """The local ledger refused an operation."""


class IllegalTransition(LedgerError):
    """A row state change that the life cycle forbids."""

    def __init__(self, row: int, current: str, wanted: str) -> None:
        self.row = row
        self.current = current
        self.wanted = wanted
        super().__init__(f"row {row}: cannot move from {current} to {wanted}")


class BatchLocked(LedgerError):
    """Another runner holds the lease on this batch."""

    def __init__(self, batch_id: str, holder: str, expires_in: float) -> None:
        self.batch_id = batch_id
        self.holder = holder
        self.expires_in = expires_in
        super().__init__(
            f"batch {batch_id} is being run by {holder}; wait for it to finish "
            f"(its lease expires in {expires_in:.0f} s if that process is gone)"
        )


class BatchExists(LedgerError):
    """A batch with this id was created meanwhile (two runs of the same new file at once)."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(
            f"batch {batch_id} was just created by another run of the same file; "
            f"let that run finish, or follow it with: batch-payouts status {batch_id}"
        )


class WrongEnvironment(LedgerError):
    """A batch of one environment used from another (another host or another Kotani account)."""

    def __init__(self, batch_id: str, batch_env: str, current_env: str) -> None:
        self.batch_id = batch_id
        self.batch_env = batch_env
        self.current_env = current_env
        super().__init__(
            f"batch {batch_id} belongs to {batch_env}, but this command is using {current_env}; "
            "nothing was done. Run it against the batch's own environment"
        )


class NotHeld(LedgerError):
    """Rows an operator tried to accept are not held; ``rows``: row number -> its state (None: no such row)."""

    def __init__(self, batch_id: str, rows: dict[int, str | None]) -> None:
        self.batch_id = batch_id
        self.rows = rows
        parts = [f"row {n} is {state}" if state else f"there is no row {n}" for n, state in sorted(rows.items())]
        super().__init__(
            f"only held rows can be accepted, and in batch {batch_id} {', '.join(parts)}; nothing was accepted"
        )


class BatchReplaced(LedgerError):
    """A batch whose file was run again (changed): its rows never sent are not sent from it."""

    def __init__(self, batch_id: str, replaced_by: str, unsent: list[int]) -> None:
        self.batch_id = batch_id
        self.replaced_by = replaced_by
        self.unsent = unsent
        rows = ", ".join(str(r) for r in unsent[:10]) + (" …" if len(unsent) > 10 else "")
        super().__init__(
            f"batch {batch_id} was replaced by batch {replaced_by} (the same file, run again with changes); "
            f"nothing was sent from {batch_id}. Continue with: batch-payouts resume {replaced_by}. "
            f"Its rows the newer file does not pay ({rows}) stay unpaid: to pay them, put them in the file "
            "and run it again"
        )


class BatchNotFound(LedgerError):
    """No batch with this id in the ledger."""

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(f"no batch {batch_id!r} in the ledger; 'batch-payouts status' lists the recent batches")


class PlanRefused(BatchPayoutsError):
    """The plan cannot go ahead as asked (e.g. the balance does not cover it)."""


class ApiError(BatchPayoutsError):
    """The provider answered with an error status."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"Kotani answered {status}: {message}{where}")


class AuthenticationError(ApiError):
    """401: the API key is missing, wrong or for the other environment."""


class PermissionDenied(ApiError):
    """403: the key lacks a permission, or the customer is suspended."""


class NotFound(ApiError):
    """404: the resource does not exist (yet)."""


class BadRequest(ApiError):
    """400 with a reason: the provider refused before creating anything."""


class ValidationFailed(BadRequest):
    """400 "Validation failed": ``errors`` holds one message per field problem."""

    def __init__(self, status: int, message: str, errors: list[str], *, method: str = "", path: str = "") -> None:
        self.errors = errors
        super().__init__(status, message, method=method, path=path)


class InsufficientFunds(BadRequest):
    """400: the payout wallet's balance does not cover the payout."""


class DuplicateReference(BadRequest):
    """400 "Duplicate referenceId": a payout with this reference already exists."""


class RateLimited(ApiError):
    """429: wait ``retry_after`` seconds (None when the provider did not say)."""

    def __init__(
        self, status: int, message: str, retry_after: float | None, *, method: str = "", path: str = ""
    ) -> None:
        self.retry_after = retry_after
        super().__init__(status, message, method=method, path=path)


class ServerError(ApiError):
    """5xx: the provider failed; the request may have been acted on."""


class UnexpectedResponse(ApiError):
    """A success status with a body we cannot read. For a payout this is ambiguous."""


class NoAnswer(BatchPayoutsError):
    """No HTTP answer came back."""

    def __init__(self, reason: str, *, method: str = "", path: str = "") -> None:
        self.reason = reason
        self.method = method
        self.path = path
        super().__init__(f"no answer from Kotani ({reason}) for {method} {path}".rstrip())


class NotSent(NoAnswer):
    """The request provably never left this machine; it is safe to send again."""


class AnswerLost(NoAnswer):
    """The request may have reached the provider; only a status read can tell."""


class OutputExists(BatchPayoutsError):
    """A file we were asked to write is already there and may not be replaced."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} already exists; nothing was written (use --force to replace it)")


class AccessError(BatchPayoutsError):
    """Who may do what: people, roles, approvals. Nothing was changed."""


class SignInFailed(AccessError):
    """Wrong username, password or code; one sentence for every cause, so a guess learns nothing."""

    def __init__(self) -> None:
        super().__init__("wrong username, password or code")


class SignInThrottled(AccessError):
    """Too many failed sign-ins for this name or address; ``retry_after`` in seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed sign-ins; try again in {max(1, round(retry_after))} s")


class NotAllowed(AccessError):
    """``who`` (with ``role``) may not ``action`` (a phrase such as "approve a batch")."""

    def __init__(self, who: str, role: str, action: str) -> None:
        self.who = who
        self.role = role
        self.action = action
        super().__init__(f"{who} is a {role} and may not {action}")


class SamePerson(AccessError):
    """The two-person rule: ``who`` submitted ``batch_id``, so someone else must approve it."""

    def __init__(self, who: str, batch_id: str) -> None:
        self.who = who
        self.batch_id = batch_id
        super().__init__(f"{who} submitted batch {batch_id}; the two-person rule needs another approver")


class WrongStage(AccessError):
    """``batch_id`` is ``stage``; ``wanted`` says what the action needs."""

    def __init__(self, batch_id: str, stage: str, wanted: str) -> None:
        self.batch_id = batch_id
        self.stage = stage
        self.wanted = wanted
        super().__init__(f"batch {batch_id} is {stage}; {wanted}")


class TotalNotConfirmed(AccessError):
    """The total typed is not the batch's total; nothing was approved or paid."""

    def __init__(self, typed: str, expected: str) -> None:
        self.typed = typed
        self.expected = expected
        super().__init__(f"the total typed ({typed}) is not the batch's total ({expected}); nothing was approved")


class UserExists(AccessError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a person named {name!r} already exists")


class UnknownUser(AccessError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no person named {name!r}")


class UnknownDraft(AccessError):
    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__(f"no uploaded file {token!r} is waiting to be submitted")

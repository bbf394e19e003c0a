"""What the ledger says about batches, without calling the provider: a batch's totals per
status, its corrections, rows paid twice, the exit code its rows call for; the recent batches."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from batch_payouts import environment as envs
from batch_payouts import errors
from batch_payouts.engine import results as results_mod
from batch_payouts.environment import Environment
from batch_payouts.ledger import BatchRecord, Ledger, RowRecord, default_path
from batch_payouts.model import IN_FLIGHT_STATES, RowState

EXIT_PAID_TWICE = 5
OnEnvironment = Callable[[Environment], None]
SHOWN_CORRECTIONS = 20  # rows listed by ``status``; the results file has every row


@dataclass(frozen=True)
class Where:
    """Which ledger (None: ``BATCH_PAYOUTS_STATE`` or the per-user data directory), and optionally
    the environment the operator insists on: the built-in sandbox, or a host."""

    state_path: Path | None = None
    sandbox: bool = False
    base_url: str | None = None


@dataclass(frozen=True)
class PaidTwice:
    """Two rows (of any batches) that both paid one payee for one obligation, without an override."""

    row: RowRecord
    other: RowRecord


@dataclass(frozen=True)
class Verdict:
    """How a command about one batch ends: PAID TWICE (exit 5) wins over ``code``."""

    paid_twice: list[PaidTwice]
    code: int

    @property
    def exit_code(self) -> int:
        return EXIT_PAID_TWICE if self.paid_twice else self.code


@dataclass(frozen=True)
class SummaryLine:
    """Rows of one status in one currency, and their amount (major units)."""

    status: str
    currency: str
    rows: int
    amount: Decimal


@dataclass(frozen=True)
class BatchStatus:
    """A batch's totals and verdict; the first rows the provider corrected (``SHOWN_CORRECTIONS``
    at most) and how many more there are (every row is in the results file)."""

    batch_id: str
    summary: list[SummaryLine]
    corrections: list[tuple[int, str]]  # row -> what the provider corrected
    verdict: Verdict
    more_corrections: int = 0


@dataclass(frozen=True)
class BatchLine:
    """One batch in the list of recent batches; ``created_at`` in seconds since the epoch."""

    batch_id: str
    environment: str
    label: str
    source: str
    rows: int
    created_at: float


def exit_code_of(rows: list[RowRecord]) -> int:
    """The exit code a batch's rows call for (docs/row-lifecycle.md): 4 some pending, 3 not every row
    paid, 0 all paid."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state.value] = counts.get(r.state.value, 0) + 1
    return exit_code_for(counts)


def exit_code_for(counts: dict[str, int]) -> int:
    """:func:`exit_code_of` from the rows per state (``Ledger.counts``)."""
    if any(counts.get(s.value) for s in IN_FLIGHT_STATES):
        return 4
    return 0 if all(state == RowState.SUCCEEDED.value for state, n in counts.items() if n) else 3


def paid_twice(ledger: Ledger, batch_id: str) -> list[PaidTwice]:
    """Payees of this batch also paid for the same obligation by another row of any batch (a
    retry, an earlier or later run), without an operator override."""
    return [PaidTwice(row, other) for row, other in ledger.paid_twice(batch_id)]


def verdict(ledger: Ledger, batch_id: str, code: int) -> Verdict:
    return Verdict(paid_twice(ledger, batch_id), code)


def summary(ledger: Ledger, batch_id: str) -> list[SummaryLine]:
    """Rows and amount per (status, currency) present in the batch."""
    return [SummaryLine(s, c, n, t) for s, c, n, t in results_mod.summary(ledger, batch_id)]


def corrections(ledger: Ledger, batch_id: str, limit: int = -1) -> list[tuple[int, str]]:
    """Rows whose settled status the provider corrected later, with what happened (the first
    ``limit``; -1: all)."""
    return ledger.corrections(batch_id, limit)[0]


def batch_status(ledger: Ledger, batch_id: str, *, code: int | None = None) -> BatchStatus:
    """The batch's totals, first corrections and verdict (``code`` None: the code its rows call
    for), asked of the ledger: counted and summed there, no row decoded but those without a payout."""
    shown, total = ledger.corrections(batch_id, SHOWN_CORRECTIONS)
    code = exit_code_for(ledger.counts(batch_id)) if code is None else code
    return BatchStatus(
        batch_id, summary(ledger, batch_id), shown, verdict(ledger, batch_id, code), more_corrections=total - len(shown)
    )


@contextlib.contextmanager
def open_ledger(where: Where) -> Iterator[Ledger]:
    """The ledger ``where`` names, closed at the end."""
    with contextlib.closing(Ledger(where.state_path or default_path())) as ledger:
        yield ledger


def read_batch(ledger: Ledger, batch_id: str, where: Where, on_environment: OnEnvironment | None = None) -> BatchRecord:
    """A batch read without calling the provider; WrongEnvironment when ``where`` insists on
    another environment than the batch's. ``on_environment`` hears the batch's environment first."""
    batch = ledger.batch(batch_id)
    env = ledger.environment(batch.env_id)
    wanted = (
        envs.BUILT_IN_SANDBOX_URL if where.sandbox else envs.normalise_url(where.base_url) if where.base_url else None
    )
    if env is not None:
        if on_environment is not None:
            on_environment(env)
        if wanted is not None and env.base_url != wanted:
            here = "SANDBOX · built-in sandbox" if where.sandbox else f"{envs.host_of(wanted)}"
            raise errors.WrongEnvironment(batch_id, env.describe(), here)
    return batch


def status_of(where: Where, batch_id: str, *, on_environment: OnEnvironment | None = None) -> BatchStatus:
    """One batch in detail, from the ledger alone."""
    with open_ledger(where) as ledger:
        read_batch(ledger, batch_id, where, on_environment)
        return batch_status(ledger, batch_id)


def recent_batches(where: Where) -> list[BatchLine]:
    """The most recent batches of every environment, newest first."""
    with open_ledger(where) as ledger:
        names = {e.id: f"{e.kind} {e.host}" for e in ledger.environments()}
        return [
            BatchLine(
                b.id, names.get(b.env_id, "?"), b.label, b.source, sum(ledger.counts(b.id).values()), b.created_at
            )
            for b in ledger.batches()
        ]


def sent_so_far(ledger_path: Path, batch_id: str) -> int | None:
    """How many payouts of the batch have left (None when the ledger cannot tell)."""
    try:
        with contextlib.closing(Ledger(ledger_path)) as ledger:
            return ledger.sent_count(batch_id)
    except (errors.BatchPayoutsError, sqlite3.Error):
        return None

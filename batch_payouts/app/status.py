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
    batch_id: str
    summary: list[SummaryLine]
    corrections: list[tuple[int, str]]  # row -> what the provider corrected
    verdict: Verdict


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
    if any(r.state in IN_FLIGHT_STATES for r in rows):
        return 4
    return 0 if all(r.state is RowState.SUCCEEDED for r in rows) else 3


def paid_twice(ledger: Ledger, batch_id: str) -> list[PaidTwice]:
    """Payees of this batch also paid for the same obligation by another row of any batch (a
    retry, an earlier or later run), without an operator override."""
    return [PaidTwice(row, other) for row, other in ledger.paid_twice(batch_id)]


def verdict(ledger: Ledger, batch_id: str, code: int) -> Verdict:
    return Verdict(paid_twice(ledger, batch_id), code)


def summary(ledger: Ledger, batch_id: str) -> list[SummaryLine]:
    """Rows and amount per (status, currency) present in the batch."""
    return [SummaryLine(s, c, n, t) for s, c, n, t in results_mod.summary(ledger, batch_id)]


def corrections(ledger: Ledger, batch_id: str) -> list[tuple[int, str]]:
    """Rows whose settled status the provider corrected later, with what happened."""
    return [(r.row, r.note) for r in ledger.rows(batch_id) if r.note and r.note.startswith("corrected")]


def batch_status(ledger: Ledger, batch_id: str, *, code: int | None = None) -> BatchStatus:
    """The batch's totals, corrections and verdict (``code`` None: the code its rows call for)."""
    rows = ledger.rows(batch_id)
    return BatchStatus(batch_id, summary(ledger, batch_id), corrections(ledger, batch_id),
                       verdict(ledger, batch_id, exit_code_of(rows) if code is None else code))


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
    wanted = envs.BUILT_IN_SANDBOX_URL if where.sandbox else envs.normalise_url(where.base_url) if where.base_url \
        else None
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
        return [BatchLine(b.id, names.get(b.env_id, "?"), b.label, b.source, len(ledger.rows(b.id)), b.created_at)
                for b in ledger.batches()]


def sent_so_far(ledger_path: Path, batch_id: str) -> int | None:
    """How many payouts of the batch have left (None when the ledger cannot tell)."""
    try:
        with contextlib.closing(Ledger(ledger_path)) as ledger:
            return ledger.sent_count(batch_id)
    except (errors.BatchPayoutsError, sqlite3.Error):
        return None

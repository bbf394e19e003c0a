"""The ledger: SQLite state of batches, rows, attempts, customers, events and the audit trail.

Every state change is one ``BEGIN IMMEDIATE`` transaction; the row life cycle of
``model.ALLOWED_MOVES`` is enforced here and nowhere else. The database is in WAL mode with
``synchronous=NORMAL``, and the transactions that must survive a power cut before anything is
sent — a new batch with its references, a row claimed for sending, an operator's override — run
with ``synchronous=FULL`` (and ``fullfsync`` on macOS): their commit syncs the write-ahead log,
and with it every commit made before. Other changes reach the disk with the next such commit or
checkpoint; losing one to a power cut loses nothing the provider cannot tell us again (see
docs/exactly-once.md, "Durability"). A process that is killed loses no committed change at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as pysecrets
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict, Unpack

from pydantic import TypeAdapter

from batch_payouts import errors
from batch_payouts.environment import Environment
from batch_payouts.errors import BatchLocked, BatchNotFound, IllegalTransition, LedgerError
from batch_payouts.model import IN_FLIGHT_STATES, LIVE_STATES, SENT_STATES, Payout, RowState, can_move
from batch_payouts.redact import redact

SCHEMA_VERSION = 1
AUDIT_GROUP = 200  # API calls written to the audit trail in one transaction at most
_PAYOUT: TypeAdapter[Payout] = TypeAdapter(Payout)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL, options TEXT NOT NULL DEFAULT '{}', headers TEXT NOT NULL DEFAULT '[]',
        parent TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        lease_owner TEXT, lease_expires REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE rows (
        batch_id TEXT NOT NULL REFERENCES batches(id), row INTEGER NOT NULL,
        state TEXT NOT NULL, payout TEXT, cells TEXT NOT NULL, problems TEXT NOT NULL DEFAULT '[]',
        reference TEXT UNIQUE, attempt INTEGER NOT NULL DEFAULT 1, payee_fp TEXT,
        provider_id TEXT, reference_number TEXT, provider_status TEXT, fee TEXT,
        recipient_amount TEXT, telco_receipt TEXT, error TEXT, note TEXT,
        submitting_at REAL, submitted_at REAL, completed_at REAL, not_found_at REAL,
        next_check REAL NOT NULL DEFAULT 0, checks INTEGER NOT NULL DEFAULT 0,
        confirm INTEGER NOT NULL DEFAULT 0,
        origin_batch TEXT, origin_row INTEGER, updated_at REAL NOT NULL,
        PRIMARY KEY (batch_id, row)
    );
    CREATE INDEX rows_state ON rows(batch_id, state);
    CREATE INDEX rows_payee ON rows(payee_fp);
    CREATE TABLE customers (
        phone TEXT NOT NULL, country TEXT NOT NULL, network TEXT NOT NULL DEFAULT '',
        customer_key TEXT NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY (phone, country, network)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, received_at REAL NOT NULL, reference TEXT, status TEXT,
        mode TEXT, verified INTEGER NOT NULL, outcome TEXT NOT NULL, body TEXT
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
        status INTEGER, duration REAL NOT NULL, request TEXT, response TEXT, error TEXT
    );
    """,
    # 2: environments (host + account), obligations claimed across batches, recorded overrides,
    # and a customers cache scoped by environment (the old cache, keyed by phone alone, is dropped).
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE environments (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, base_url TEXT NOT NULL, host TEXT NOT NULL,
        account TEXT NOT NULL, created_at REAL NOT NULL
    );
    ALTER TABLE batches ADD COLUMN env_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE batches ADD COLUMN replaced_by TEXT;
    ALTER TABLE rows ADD COLUMN obligation TEXT;
    CREATE INDEX batches_env ON batches(env_id, label);
    CREATE TABLE claims (
        env_id TEXT NOT NULL, key TEXT NOT NULL, batch_id TEXT NOT NULL, row INTEGER NOT NULL,
        PRIMARY KEY (env_id, key, batch_id, row)
    );
    CREATE INDEX claims_row ON claims(batch_id, row);
    CREATE INDEX rows_due ON rows(batch_id, state, next_check);
    CREATE INDEX rows_confirm ON rows(batch_id) WHERE confirm = 1;
    CREATE INDEX rows_origin ON rows(origin_batch, origin_row);
    CREATE TABLE overrides (
        id INTEGER PRIMARY KEY, env_id TEXT NOT NULL, batch_id TEXT NOT NULL, row INTEGER NOT NULL,
        who TEXT NOT NULL, why TEXT NOT NULL, at REAL NOT NULL
    );
    CREATE INDEX overrides_row ON overrides(batch_id, row);
    DROP TABLE customers;
    CREATE TABLE customers (
        env_id TEXT NOT NULL, phone TEXT NOT NULL, country TEXT NOT NULL, network TEXT NOT NULL DEFAULT '',
        customer_key TEXT NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY (env_id, phone, country, network)
    );
    """,
    # 3: confirmation of payee: account look-ups cached per environment with their time, the
    # verdict of each row and the run that made it, and operators' acceptances of held rows.
    """
    CREATE TABLE lookups (
        env_id TEXT NOT NULL, payee TEXT NOT NULL, name TEXT NOT NULL, answer TEXT NOT NULL,
        checked_at REAL NOT NULL,
        PRIMARY KEY (env_id, payee, name)
    );
    ALTER TABLE rows ADD COLUMN name_check TEXT;
    ALTER TABLE rows ADD COLUMN verify_run TEXT;
    CREATE TABLE acceptances (
        id INTEGER PRIMARY KEY, env_id TEXT NOT NULL, batch_id TEXT NOT NULL, row INTEGER NOT NULL,
        who TEXT NOT NULL, at REAL NOT NULL, what TEXT NOT NULL, registered_name TEXT,
        sentence TEXT NOT NULL
    );
    CREATE INDEX acceptances_row ON acceptances(batch_id, row);
    """,
    # 4: people and who did what (the web console): users with a role, an argon2 hash and an
    # optional TOTP secret; approvals of batches with the total typed; every action on a batch
    # with its actor; and the actor of each API call in the audit trail.
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, totp_secret TEXT,
        disabled INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL
    );
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, approver TEXT NOT NULL, at REAL NOT NULL,
        typed_total TEXT NOT NULL
    );
    CREATE INDEX approvals_batch ON approvals(batch_id);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY, batch_id TEXT, actor TEXT NOT NULL, action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '', at REAL NOT NULL
    );
    CREATE INDEX actions_batch ON actions(batch_id, id);
    ALTER TABLE audit ADD COLUMN actor TEXT;
    """,
    # 5: a batch's rows of one state in row order, so the run loop's "next rows to send" reads the
    # first few ready rows instead of sorting every ready row of a large batch on each pass.
    """
    CREATE INDEX rows_ready ON rows(batch_id, state, row);
    """,
    # 6: a batch's money, grouped by state, currency, amount, fee and amount received, read from an
    # index alone: the status, resume and results of a 100,000-row batch no longer parse every
    # row's payout twice (0.48 s -> 0.06 s). The expressions are the very ones money_groups and
    # totals group by, so that SQLite uses the index.
    """
    CREATE INDEX rows_money ON rows(
        batch_id, state, json_extract(payout, '$.currency'), json_extract(payout, '$.amount'), fee,
        recipient_amount, row
    ) WHERE payout IS NOT NULL;
    CREATE INDEX rows_no_payout ON rows(batch_id, state) WHERE payout IS NULL;
    """,
    # 7: the obligation keys claimed by more than one row (of one batch or of two). Who paid an
    # obligation twice, and which other batch may still pay one, is looked for among these keys
    # alone, not by probing every claim of a 100,000-row batch (0.25 s each, on every status and
    # resume). Kept by create_batch and adopt, the only writers of claims, and for claims an
    # older version wrote, on opening the ledger and before each search; never too few keys.
    """
    CREATE TABLE shared_claims (
        env_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (env_id, key)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO shared_claims SELECT env_id, key FROM claims GROUP BY env_id, key HAVING COUNT(*) > 1;
    INSERT OR REPLACE INTO meta VALUES ('shared_claims_rowid', (SELECT COALESCE(MAX(rowid), 0) FROM claims));
    """,
)

# The upkeep of shared_claims (migration 7): the keys that claims share with any other claim
# (another row of the batch, or of another batch), among the claims the WHERE clause names:
# _SHARE_NEW_CLAIMS_SQL, those written since the list was last kept (meta "shared_claims_rowid"):
# a new batch's, and any an older version of the tool wrote without keeping the list;
# _SHARE_CLAIMS_SQL, one batch's, after adopt gave them an environment.
_SHARED_KEYS_SQL = (
    "INSERT OR IGNORE INTO shared_claims SELECT DISTINCT a.env_id, a.key FROM claims a"
    " JOIN claims b ON b.env_id = a.env_id AND b.key = a.key AND NOT (b.batch_id = a.batch_id AND b.row = a.row)"
)
_SHARE_CLAIMS_SQL = _SHARED_KEYS_SQL + " WHERE a.batch_id = ?"
_SHARE_NEW_CLAIMS_SQL = _SHARED_KEYS_SQL + " WHERE a.rowid > ?"


# A row's payee as ``Payout.payee()`` spells it, from its stored payout.
_PAYEE_SQL = (
    "CASE json_extract(r.payout, '$.method')"
    " WHEN 'mobile_money' THEN 'mobile_money:' || json_extract(r.payout, '$.phone')"
    " WHEN 'till' THEN 'till:' || json_extract(r.payout, '$.till_number')"
    " WHEN 'paybill' THEN 'paybill:' || json_extract(r.payout, '$.paybill_number') || ':'"
    " || json_extract(r.payout, '$.account_reference')"
    " ELSE 'bank:' || json_extract(r.payout, '$.country') || ':' || json_extract(r.payout, '$.bank_code')"
    " || ':' || json_extract(r.payout, '$.account_number') END"
)

_PAID_AMOUNTS_SQL = (
    "SELECT " + _PAYEE_SQL + ", json_extract(r.payout, '$.currency'), json_extract(r.payout, '$.amount')"  # noqa: S608
    " FROM rows r JOIN batches b ON b.id = r.batch_id"
    " WHERE b.env_id = ? AND r.state = 'succeeded' AND json_extract(r.payout, '$.currency') IN ({marks})"
)
_FEES_PAID_SQL = (
    "SELECT json_extract(r.payout, '$.currency'), json_extract(r.payout, '$.method'),"
    " json_extract(r.payout, '$.amount'), r.fee, r.recipient_amount"
    " FROM rows r JOIN batches b ON b.id = r.batch_id WHERE b.env_id = ? AND r.state = 'succeeded'"
    " AND r.fee IS NOT NULL AND json_extract(r.payout, '$.currency') IN ({marks})"
    " ORDER BY r.completed_at DESC LIMIT ?"
)

_HOLDERS_SQL = (
    "SELECT DISTINCT {key}r.batch_id, r.row, r.state, r.payout, r.submitting_at,"
    " EXISTS (SELECT 1 FROM overrides o WHERE o.batch_id = r.batch_id AND o.row = r.row) AS overridden"
    " FROM claims c JOIN rows r ON r.batch_id = c.batch_id AND r.row = c.row"
    " WHERE c.env_id = ? AND c.key IN ({marks}) ORDER BY r.updated_at, r.batch_id, r.row"
)
_PER_STATEMENT = 500  # keys or row numbers asked about in one statement


@dataclass(frozen=True)
class RowRecord:
    """One row of a batch as the ledger holds it."""

    batch_id: str
    row: int
    state: RowState
    payout: Payout | None
    cells: dict[str, str]
    problems: list[dict[str, str]]
    reference: str | None
    attempt: int
    provider_id: str | None
    reference_number: str | None
    provider_status: str | None
    fee: Decimal | None
    recipient_amount: Decimal | None
    telco_receipt: str | None
    error: str | None
    note: str | None
    submitting_at: float | None
    submitted_at: float | None
    completed_at: float | None
    not_found_at: float | None
    next_check: float
    checks: int
    confirm: bool
    origin_batch: str | None
    origin_row: int | None
    updated_at: float
    obligation: str | None = None
    name_check: str | None = None  # the payee check's verdict (JSON, ``verify.verdict_to_json``)
    verify_run: str | None = None  # the run that made it


@dataclass(frozen=True)
class MoneyGroup:
    """``count`` rows of one state alike in currency, amount, fee and amount received (major
    units); ``unreported``: their row numbers when they are paid rows without a fee or amount
    received reported."""

    state: RowState
    currency: str
    amount: Decimal
    fee: Decimal | None
    received: Decimal | None
    count: int
    unreported: tuple[int, ...] = ()


@dataclass(frozen=True)
class Acceptance:
    """An operator let a held row through: who, when (epoch seconds), and what was held.

    ``what``: the finding accepted (``verify.Finding`` value, or ``"held"`` for any other hold);
    ``registered_name``: the account holder's name as the provider gave it, when that was the point."""

    batch_id: str
    row: int
    who: str
    at: float
    what: str
    registered_name: str | None
    sentence: str


@dataclass(frozen=True)
class FeePaid:
    """One earlier payout's fee: what was asked (``amount``), the fee, and what the recipient got
    (None when not reported). Major units of ``currency``."""

    currency: str
    method: str
    amount: Decimal
    fee: Decimal
    received: Decimal | None


@dataclass(frozen=True)
class UserRecord:
    """A person of the console: ``role`` one of maker, approver, viewer, admin; ``created_at``
    in epoch seconds. The hash and the TOTP secret never leave the application layer."""

    name: str
    role: str
    password_hash: str
    totp_secret: str | None
    disabled: bool
    created_at: float


# Names of recorded actions that more than the console reads (the results cover: who ran, who approved).
RUN_STARTED, APPROVED, ACCEPTED = "run started", "approved", "accepted held row"


@dataclass(frozen=True)
class ActionRecord:
    """Who (``actor``) did what (``action``, ``detail``) to a batch, at ``at`` (epoch seconds)."""

    batch_id: str | None
    actor: str
    action: str
    detail: str
    at: float


@dataclass(frozen=True)
class ApprovalRecord:
    batch_id: str
    approver: str
    at: float
    typed_total: str


@dataclass(frozen=True)
class BatchRecord:
    id: str
    fingerprint: str
    label: str
    source: str
    options: dict[str, Any]
    headers: list[str]
    parent: str | None
    created_at: float
    updated_at: float
    lease_owner: str | None
    lease_expires: float
    env_id: str = ""
    replaced_by: str | None = None


@dataclass(frozen=True)
class NewRow:
    """A row as a new batch stores it.

    ``keys``: the obligations it pays (docs/obligations.md); ``origin``: for a retry, the
    (batch, row, attempt number) of the attempt it follows."""

    row: int
    state: RowState
    payout: Payout | None
    cells: dict[str, str]
    problems: list[dict[str, str]]
    keys: tuple[str, ...] = ()
    origin: tuple[str, int, int] | None = None
    note: str | None = None


@dataclass(frozen=True)
class Holder:
    """A row of some batch that pays (or paid) the same obligation."""

    batch_id: str
    row: int
    state: RowState
    amount: Decimal | None
    currency: str | None
    ever_sent: bool
    overridden: bool

    @property
    def live(self) -> bool:
        """Paid, being paid, or perhaps paid: a second attempt would risk paying twice."""
        return self.state in LIVE_STATES or (self.state is RowState.READY and self.ever_sent)


def blocks_sending(live: Sequence[Holder], overridden: bool, not_excused: Sequence[Holder] = ()) -> bool:
    """The send-time claim: a row is not sent while another row of its environment that pays the
    same obligation is ``live`` (paid, being paid or perhaps paid), unless a person overrode it;
    an overridden row not while one of the live rows its override does not excuse is there
    (another attempt of the same row, or a payee it was corrected to: ``Ledger._not_excused``)."""
    return bool(not_excused) if overridden else bool(live)


class RowFields(TypedDict, total=False):
    """Columns of a row that engine steps write (times in epoch seconds; money as Decimal)."""

    payout: str | None
    problems: str
    provider_id: str | None
    reference_number: str | None
    provider_status: str | None
    fee: Decimal | None
    recipient_amount: Decimal | None
    telco_receipt: str | None
    error: str | None
    note: str | None
    submitting_at: float | None
    submitted_at: float | None
    completed_at: float | None
    not_found_at: float | None
    next_check: float
    checks: int
    confirm: int
    name_check: str | None
    verify_run: str | None


def _sql_set(states: frozenset[RowState]) -> str:
    """``('a', 'b')``: a named set of states as an SQL list (the values are our own enum's)."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(states)) + ")"


_IN_FLIGHT = _sql_set(IN_FLIGHT_STATES)
_IN_FLIGHT_OR_SENT = _sql_set(IN_FLIGHT_STATES | SENT_STATES)
READ_AGAIN_STATES = (RowState.FAILED.value, RowState.SUBMITTED.value, RowState.UNKNOWN.value)


def default_path() -> Path:
    """``BATCH_PAYOUTS_STATE`` or the per-user data directory."""
    env = os.environ.get("BATCH_PAYOUTS_STATE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("batch-payouts")) / "ledger.sqlite3"


def _dec(text: str | None) -> Decimal | None:
    return Decimal(text) if text not in (None, "") else None


class Ledger:
    """All persistent state. One connection; every write is one immediate transaction."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        secrets: tuple[str, ...] = (),
        read_only: bool = False,
    ) -> None:
        """Open (or create and migrate) the ledger at ``path``. ``read_only``: a connection that
        only reads a ledger another connection has opened, e.g. in a helper process writing part of
        a results file; it never creates, migrates or writes (SQLite refuses any write)."""
        self.path = Path(path)
        self.clock = clock
        self.secrets = secrets
        self._audit_waiting: list[tuple[Any, ...]] = []  # API calls not yet written (see ``audit``)
        self.read_only = read_only
        if read_only:
            self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            self.db.row_factory = sqlite3.Row
            return
        if self.path.is_dir():
            raise LedgerError(
                f"the ledger path {self.path} is a folder; point --state (or "
                "BATCH_PAYOUTS_STATE) at a file, e.g. " + str(self.path / "ledger.sqlite3")
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        if new:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        try:
            self._configure()
            self._migrate()
            self._keep_shared_claims()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise LedgerError(
                f"the ledger at {self.path} cannot be read ({exc}): it is damaged or not a "
                "batch-payouts ledger. Nothing was changed. Keep it for inspection and point "
                "--state at a good copy"
            ) from None

    # -- setup ---------------------------------------------------------------------------------

    def _configure(self) -> None:
        db = self.db
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        if sys.platform == "darwin":  # pragma: no cover - macOS only
            db.execute("PRAGMA fullfsync = ON")
        checks = {
            "journal_mode": ("wal",),
            "synchronous": (1,),
            "busy_timeout": (30000,),
            "foreign_keys": (1,),
        }
        for pragma, expected in checks.items():
            got = db.execute(f"PRAGMA {pragma}").fetchone()[0]
            if got not in expected:
                raise LedgerError(f"the ledger at {self.path} could not be opened safely (PRAGMA {pragma} is {got!r})")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            self.db.close()
            raise LedgerError(
                f"the ledger at {self.path} was written by a newer version of batch-payouts (ledger "
                f"version {version}; this version knows {len(MIGRATIONS)}). Nothing was changed. "
                "Use the newer version with this ledger"
            )
        for number, script in enumerate(MIGRATIONS, start=1):
            if version < number:
                with self.transaction() as db:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {number}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def _claims_not_shared_since(self) -> int | None:
        """The last claim (rowid) shared_claims was kept for, when claims were written after it."""
        kept = self.db.execute("SELECT value FROM meta WHERE name = 'shared_claims_rowid'").fetchone()
        last = int(kept[0]) if kept else 0
        top = self.db.execute("SELECT MAX(rowid) FROM claims").fetchone()[0]
        return last if top is not None and top > last else None

    def _keep_shared_claims(self) -> None:
        """List the shared keys of claims written since the list was last kept, here or by another
        process (an older version of the tool writes claims without keeping it)."""
        if not self.read_only and self._claims_not_shared_since() is not None:
            with self.transaction() as db:
                self._share_new_claims(db)

    def _share_new_claims(self, db: sqlite3.Connection) -> None:
        """Keep shared_claims for every claim written since it was last kept (inside a write)."""
        last = self._claims_not_shared_since()
        if last is not None:
            db.execute(_SHARE_NEW_CLAIMS_SQL, (last,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('shared_claims_rowid', (SELECT MAX(rowid) FROM claims))")

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error.

        ``durable``: the commit syncs the log to disk before it returns (and with it every
        earlier commit), for what must survive a power cut before a request leaves."""
        if durable:
            self.db.execute("PRAGMA synchronous = FULL")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            waiting: list[tuple[Any, ...]] = []
            try:
                waiting = self._write_audit(self.db)
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                self._audit_waiting[:0] = waiting
                raise
            self.db.execute("COMMIT")
        finally:
            if durable:
                self.db.execute("PRAGMA synchronous = NORMAL")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """The reads in the block see one moment of the ledger (one read transaction), not each its own."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._audit_waiting:
            with self.transaction():
                pass
        self.db.close()

    def integrity_ok(self) -> bool:
        return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- batches ---------------------------------------------------------------------------------

    def create_batch(
        self,
        batch_id: str,
        *,
        env_id: str,
        fingerprint: str,
        label: str,
        source: str,
        options: dict[str, Any],
        headers: list[str],
        rows: Sequence[NewRow],
        parent: str | None = None,
        supersede: Sequence[tuple[str, int, str]] = (),
        replaces: Sequence[str] = (),
    ) -> None:
        """Persist a batch and all its rows, their obligation claims, and what it takes over, in
        one transaction.

        ``supersede``: (batch, row, note) of never-sent READY rows in other batches that this
        batch now pays instead; they become BLOCKED (only if still never sent).
        ``replaces``: earlier batches of the same file and label that this one replaces.
        """
        now, rows = self.clock(), list(rows)  # (read twice below: rows, then their claims)
        with self.transaction(durable=True) as db:
            if db.execute("SELECT 1 FROM batches WHERE id = ?", (batch_id,)).fetchone():
                raise errors.BatchExists(batch_id)
            db.execute(
                "INSERT INTO batches (id, fingerprint, label, source, options, headers, parent,"
                " created_at, updated_at, env_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    batch_id,
                    fingerprint,
                    label,
                    source,
                    json.dumps(options),
                    json.dumps(headers),
                    parent,
                    now,
                    now,
                    env_id,
                ),
            )
            db.executemany(  # one statement for every row: 100,000 rows in a second, not in seven
                "INSERT INTO rows (batch_id, row, state, payout, cells, problems, reference,"
                " attempt, obligation, origin_batch, origin_row, note, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (_new_row_values(batch_id, new, now) for new in rows),
            )
            db.executemany(
                "INSERT OR IGNORE INTO claims VALUES (?,?,?,?)",
                ((env_id, key, batch_id, new.row) for new in rows for key in new.keys),
            )
            self._share_new_claims(db)
            for other, number, note in supersede:
                db.execute(
                    "UPDATE rows SET state = 'blocked', note = ?, updated_at = ? WHERE batch_id = ?"
                    " AND row = ? AND state = 'ready' AND submitting_at IS NULL",
                    (note, now, other, number),
                )
            for other in replaces:
                db.execute("UPDATE batches SET replaced_by = ?, updated_at = ? WHERE id = ?", (batch_id, now, other))

    def batch(self, batch_id: str) -> BatchRecord:
        row = self.db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise BatchNotFound(batch_id)
        return BatchRecord(
            row["id"],
            row["fingerprint"],
            row["label"],
            row["source"],
            json.loads(row["options"]),
            json.loads(row["headers"]),
            row["parent"],
            row["created_at"],
            row["updated_at"],
            row["lease_owner"],
            row["lease_expires"],
            row["env_id"],
            row["replaced_by"],
        )

    def adopt(self, batch_id: str, env_id: str) -> None:
        """Give a batch made before environments existed the environment it is first used in."""
        with self.transaction() as db:
            db.execute("UPDATE batches SET env_id = ? WHERE id = ? AND env_id = ''", (env_id, batch_id))
            db.execute("UPDATE claims SET env_id = ? WHERE batch_id = ? AND env_id = ''", (env_id, batch_id))
            db.execute(_SHARE_CLAIMS_SQL, (batch_id,))

    def unfinished_batches(self, env_id: str, label: str, source_stem: str) -> list[BatchRecord]:
        """Batches of this environment and label, from a file of this name (any extension), that
        are not replaced and still have rows never sent."""
        ids = [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT b.id FROM batches b JOIN rows r ON r.batch_id = b.id"
                " WHERE b.env_id = ? AND b.label = ? AND b.replaced_by IS NULL AND b.parent IS NULL"
                " AND r.state = 'ready' AND r.submitting_at IS NULL",
                (env_id, label),
            )
        ]
        return [b for b in (self.batch(i) for i in ids) if Path(b.source).stem == source_stem]

    def has_batch(self, batch_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM batches WHERE id = ?", (batch_id,)).fetchone() is not None

    def batches(self, limit: int = 20, *, env_id: str | None = None) -> list[BatchRecord]:
        if env_id is None:
            ids = [r[0] for r in self.db.execute("SELECT id FROM batches ORDER BY created_at DESC LIMIT ?", (limit,))]
        else:
            ids = [
                r[0]
                for r in self.db.execute(
                    "SELECT id FROM batches WHERE env_id = ? ORDER BY created_at DESC LIMIT ?", (env_id, limit)
                )
            ]
        return [self.batch(i) for i in ids]

    # -- environments ------------------------------------------------------------------------------

    def salt(self) -> bytes:
        """A random secret of this ledger, for keyed fingerprints of API keys."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()
            if row is None:
                value = pysecrets.token_hex(32)
                db.execute("INSERT INTO meta VALUES ('salt', ?)", (value,))
            else:
                value = row[0]
        return bytes.fromhex(value)

    def note(self, name: str, value: str) -> None:
        """Keep ``value`` under ``name`` in the ledger's own notes (replacing an older one)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def noted(self, name: str) -> str | None:
        """The value kept under ``name``, if any."""
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def register_environment(self, env: Environment) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO environments VALUES (?,?,?,?,?,?)",
                (env.id, env.kind, env.base_url, env.host, env.account, self.clock()),
            )

    def environment(self, env_id: str) -> Environment | None:
        r = self.db.execute("SELECT * FROM environments WHERE id = ?", (env_id,)).fetchone()
        if r is None:
            return None
        return Environment(r["id"], r["kind"], r["base_url"], r["host"], r["account"])

    def environments(self) -> list[Environment]:
        return [
            Environment(r["id"], r["kind"], r["base_url"], r["host"], r["account"])
            for r in self.db.execute("SELECT * FROM environments ORDER BY created_at")
        ]

    def children(self, batch_id: str) -> list[str]:
        return [
            r[0] for r in self.db.execute("SELECT id FROM batches WHERE parent = ? ORDER BY created_at", (batch_id,))
        ]

    # -- the lease: one runner per batch -----------------------------------------------------------

    def acquire_lease(self, batch_id: str, *, ttl: float = 30.0) -> str:
        """Take the batch's lease or raise :class:`BatchLocked`; return the owner id."""
        owner = f"pid {os.getpid()} on {socket.gethostname()}"
        now = self.clock()
        with self.transaction() as db:
            row = db.execute("SELECT lease_owner, lease_expires FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if row is None:
                raise BatchNotFound(batch_id)
            holder = row["lease_owner"]
            if holder and holder != owner and row["lease_expires"] > now and not _dead_here(holder):
                raise BatchLocked(batch_id, holder, row["lease_expires"] - now)
            db.execute(
                "UPDATE batches SET lease_owner = ?, lease_expires = ? WHERE id = ?", (owner, now + ttl, batch_id)
            )
        return owner

    def renew_lease(self, batch_id: str, owner: str, *, ttl: float = 30.0) -> None:
        with self.transaction() as db:
            current = db.execute("SELECT lease_owner FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if current is None or current["lease_owner"] != owner:
                raise BatchLocked(batch_id, str(current["lease_owner"] if current else "?"), 0)
            db.execute("UPDATE batches SET lease_expires = ? WHERE id = ?", (self.clock() + ttl, batch_id))

    def release_lease(self, batch_id: str, owner: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET lease_owner = NULL, lease_expires = 0 WHERE id = ? AND lease_owner = ?",
                (batch_id, owner),
            )

    # -- rows --------------------------------------------------------------------------------------

    def rows(self, batch_id: str, *states: RowState) -> list[RowRecord]:
        sql, args = _of_batch("*", batch_id, states)
        return [self._record(r) for r in self.db.execute(sql + " ORDER BY row", args)]

    def page_of_rows(
        self, batch_id: str, states: Collection[RowState] = (), *, offset: int = 0, limit: int = 100
    ) -> list[RowRecord]:
        """One page of the batch's rows by number (only those in ``states``, if given): ``limit``
        rows from the ``offset``-th (0-based); only those are decoded."""
        sql, args = _of_batch("*", batch_id, states)
        return [
            self._record(r) for r in self.db.execute(sql + " ORDER BY row LIMIT ? OFFSET ?", [*args, limit, offset])
        ]

    def rows_numbered(self, batch_id: str, numbers: Collection[int]) -> Iterator[RowRecord]:
        """The batch's rows of these numbers, by number; only those are decoded, a few hundred at a
        time (memory does not grow with ``numbers``)."""
        wanted = sorted(set(numbers))
        for start in range(0, len(wanted), _PER_STATEMENT):
            chunk = wanted[start : start + _PER_STATEMENT]
            sql = f"SELECT * FROM rows WHERE batch_id = ? AND row IN ({','.join('?' * len(chunk))}) ORDER BY row"  # noqa: S608
            yield from [self._record(r) for r in self.db.execute(sql, (batch_id, *chunk))]

    def latest_rows(self, batch_id: str, limit: int) -> list[RowRecord]:
        """The ``limit`` rows of the batch changed last, newest first; only those are decoded."""
        sql = "SELECT * FROM rows WHERE batch_id = ? ORDER BY updated_at DESC, row LIMIT ?"
        return [self._record(r) for r in self.db.execute(sql, (batch_id, limit))]

    def stream_rows(
        self, batch_id: str, *, unpaid: bool = False, rows: tuple[int, int | None] = (0, None)
    ) -> Iterator[RowRecord]:
        """The batch's rows by number (``unpaid``: all but the succeeded ones; ``rows``: only the
        row numbers from the first up to, not including, the second, None for no end), each
        decoded as it is read: memory does not grow with the batch."""
        first, end = rows
        sql = "SELECT * FROM rows WHERE batch_id = ? AND row >= ? AND row < ?"
        if unpaid:
            sql += " AND state != 'succeeded'"
        for r in self.db.execute(sql + " ORDER BY row", (batch_id, first, end if end is not None else 2**62)):
            yield self._record(r)

    def references(self, batch_id: str) -> list[tuple[int, str, RowState]]:
        """(row number, reference, state) of each row of the batch that has a reference, by row
        number: what a comparison with the provider's list needs, without decoding the rows."""
        sql = "SELECT row, reference, state FROM rows WHERE batch_id = ? AND reference IS NOT NULL ORDER BY row"
        return [(number, reference, RowState(state)) for number, reference, state in self.db.execute(sql, (batch_id,))]

    def row_numbers(self, batch_id: str, *states: RowState) -> set[int]:
        """The numbers of the batch's rows (in ``states``, if given); no row is decoded."""
        sql, args = _of_batch("row", batch_id, states)
        return {int(n) for (n,) in self.db.execute(sql, args)}

    def descendants(self, batch_id: str) -> list[str]:
        """The retry batches made from ``batch_id``, and from those, and so on."""
        found, todo = [], self.children(batch_id)
        while todo:
            child = todo.pop()
            found.append(child)
            todo += self.children(child)
        return found

    def row_number_at(self, batch_id: str, position: int) -> int | None:
        """The number of the batch's row at ``position`` (0-based) in row order; None past the end."""
        sql = "SELECT row FROM rows WHERE batch_id = ? ORDER BY row LIMIT 1 OFFSET ?"
        found = self.db.execute(sql, (batch_id, position)).fetchone()
        return None if found is None else int(found[0])

    def first_sent_last_answer(self, batch_ids: Sequence[str]) -> tuple[float | None, float | None]:
        """When the first payout of these batches left (epoch seconds), and when the last final
        answer came; None where there is none."""
        marks = ",".join("?" * len(batch_ids))
        sql = f"SELECT MIN(COALESCE(submitting_at, submitted_at)), MAX(completed_at) FROM rows WHERE batch_id IN ({marks})"  # noqa: S608, E501
        first, last = self.db.execute(sql, list(batch_ids)).fetchone()
        return first, last

    def sent_count(self, batch_id: str) -> int:
        """Rows of the batch whose payout has left (or may have left) this machine."""
        sql = f"SELECT COUNT(*) FROM rows WHERE batch_id = ? AND state IN {_IN_FLIGHT_OR_SENT}"  # noqa: S608
        return int(self.db.execute(sql, (batch_id,)).fetchone()[0])

    def row(self, batch_id: str, number: int) -> RowRecord:
        r = self.db.execute("SELECT * FROM rows WHERE batch_id = ? AND row = ?", (batch_id, number)).fetchone()
        if r is None:
            raise LedgerError(f"batch {batch_id} has no row {number}")
        return self._record(r)

    def earlier_attempts(self, row: RowRecord) -> list[RowRecord]:
        """The earlier attempts of a retried row, the latest first (empty for a first attempt)."""
        out: list[RowRecord] = []
        while row.origin_batch is not None and row.origin_row is not None:
            row = self.row(row.origin_batch, row.origin_row)
            out.append(row)
        return out

    def later_attempts(self, batch_id: str) -> dict[int, list[RowRecord]]:
        """Row number -> the rows of every retry batch descended from ``batch_id``."""
        found: dict[int, list[RowRecord]] = {}
        for child in self.descendants(batch_id):
            for r in self.rows(child):
                found.setdefault(r.row, []).append(r)
        return found

    def row_by_reference(self, reference: str) -> RowRecord | None:
        r = self.db.execute("SELECT * FROM rows WHERE reference = ?", (reference,)).fetchone()
        return self._record(r) if r is not None else None

    def _record(self, r: sqlite3.Row) -> RowRecord:
        return RowRecord(
            r["batch_id"],
            r["row"],
            RowState(r["state"]),
            _PAYOUT.validate_json(r["payout"]) if r["payout"] else None,
            json.loads(r["cells"]),
            json.loads(r["problems"]),
            r["reference"],
            r["attempt"],
            r["provider_id"],
            r["reference_number"],
            r["provider_status"],
            _dec(r["fee"]),
            _dec(r["recipient_amount"]),
            r["telco_receipt"],
            r["error"],
            r["note"],
            r["submitting_at"],
            r["submitted_at"],
            r["completed_at"],
            r["not_found_at"],
            r["next_check"],
            r["checks"],
            bool(r["confirm"]),
            r["origin_batch"],
            r["origin_row"],
            r["updated_at"],
            r["obligation"],
            r["name_check"],
            r["verify_run"],
        )

    def move(self, batch_id: str, number: int, to: RowState, **fields: Unpack[RowFields]) -> RowRecord:
        """Move a row to ``to`` (enforcing the life cycle) and set ``fields``, in one transaction
        (a durable one when the row is about to be sent)."""
        with self.transaction(durable=to is RowState.SUBMITTING) as db:
            current = db.execute("SELECT state FROM rows WHERE batch_id = ? AND row = ?", (batch_id, number)).fetchone()
            if current is None:
                raise LedgerError(f"batch {batch_id} has no row {number}")
            state = RowState(current["state"])
            if state != to and not can_move(state, to):
                raise IllegalTransition(number, state.value, to.value)
            self._update(db, batch_id, number, {"state": to.value, **fields})
        return self.row(batch_id, number)

    def move_if(
        self, batch_id: str, number: int, expect: RowState, to: RowState, **fields: Unpack[RowFields]
    ) -> RowRecord | None:
        """Move a row from ``expect`` to ``to`` only if it is still in ``expect`` (another process, such as a
        webhook listener, may have moved it since it was read); return the moved row, or ``None``."""
        with self.transaction(durable=to is RowState.SUBMITTING) as db:
            current = db.execute("SELECT state FROM rows WHERE batch_id = ? AND row = ?", (batch_id, number)).fetchone()
            if current is None or current["state"] != expect.value:
                return None
            if expect != to and not can_move(expect, to):
                raise IllegalTransition(number, expect.value, to.value)
            self._update(db, batch_id, number, {"state": to.value, **fields})
        return self.row(batch_id, number)

    def update(
        self, batch_id: str, number: int, *, expect: RowState | None = None, **fields: Unpack[RowFields]
    ) -> None:
        """Change fields without a state move (e.g. the time of the next status check)."""
        with self.transaction() as db:
            if expect is not None:
                current = db.execute(
                    "SELECT state FROM rows WHERE batch_id = ? AND row = ?", (batch_id, number)
                ).fetchone()
                if current is None or current["state"] != expect.value:
                    return
            self._update(db, batch_id, number, dict(fields))

    def _update(self, db: sqlite3.Connection, batch_id: str, number: int, fields: dict[str, Any]) -> None:
        values = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in fields.items()}
        values["updated_at"] = self.clock()
        assigns = ", ".join(f"{k} = ?" for k in values)
        db.execute(
            f"UPDATE rows SET {assigns} WHERE batch_id = ? AND row = ?",  # noqa: S608
            [*values.values(), batch_id, number],
        )
        db.execute("UPDATE batches SET updated_at = ? WHERE id = ?", (values["updated_at"], batch_id))

    def due_checks(self, batch_id: str, now: float, *, poll: bool = True, limit: int = -1) -> list[RowRecord]:
        """Rows whose status should be read now: in flight (when polling), unknown, or asked to confirm."""
        polled = "submitted" if poll else "unknown"
        # Two index searches (rows_due, rows_confirm), not one "OR" that makes SQLite read every row
        # of the batch: this runs on every pass of the run loop (a 100,000-row batch: 0.2 ms, not 250).
        rows = self.db.execute(
            "SELECT * FROM rows WHERE rowid IN ("
            "SELECT rowid FROM rows WHERE batch_id = ? AND state IN (?, 'unknown') AND next_check <= ?"
            " UNION ALL SELECT rowid FROM rows INDEXED BY rows_confirm"
            " WHERE batch_id = ? AND confirm = 1 AND next_check <= ?)"
            " ORDER BY next_check LIMIT ?",
            (batch_id, polled, now, batch_id, now, limit),
        )
        return [self._record(r) for r in rows]

    def next_due(self, batch_id: str, after: float, *, poll: bool = True) -> float | None:
        """The earliest time later than ``after`` at which a row of the batch falls due: a status
        read (as in :meth:`due_checks`) or a READY row's next try. None when nothing is scheduled."""
        polled = "submitted" if poll else "unknown"
        # one search of the rows_due index per state (SQLite's MIN over an index range reads one
        # entry), and the few rows asked to confirm: O(log rows) whatever the batch's size
        found = self.db.execute(
            "SELECT MIN(t) FROM ("
            " SELECT MIN(next_check) AS t FROM rows WHERE batch_id = ? AND state = ? AND next_check > ?"
            " UNION ALL SELECT MIN(next_check) FROM rows WHERE batch_id = ? AND state = 'unknown' AND next_check > ?"
            " UNION ALL SELECT MIN(next_check) FROM rows WHERE batch_id = ? AND state = 'ready' AND next_check > ?"
            " UNION ALL SELECT MIN(next_check) FROM rows INDEXED BY rows_confirm"
            " WHERE batch_id = ? AND confirm = 1 AND next_check > ?)",
            (batch_id, polled, after, batch_id, after, batch_id, after, batch_id, after),
        ).fetchone()
        return None if found is None or found[0] is None else float(found[0])

    def ready_to_send(
        self,
        batch_id: str,
        now: float,
        *,
        skip_rows: Collection[int] = (),
        skip_currencies: Collection[str] = (),
        limit: int = -1,
        verified_in: str | None = None,
    ) -> list[RowRecord]:
        """READY rows due now (by row number), leaving out ``skip_rows`` and paused currencies.
        With ``verified_in`` (a run id), only rows whose payee that run checked, or that were sent before."""
        # "+next_check": walk the rows_ready index in row order and stop at ``limit``; searching
        # rows_due by time would sort every ready row of the batch first (40 ms at 100,000 rows)
        sql = "SELECT * FROM rows WHERE batch_id = ? AND state = 'ready' AND +next_check <= ? AND payout IS NOT NULL"
        args: list[Any] = [batch_id, now]
        if verified_in is not None:
            sql += " AND (verify_run = ? OR submitting_at IS NOT NULL)"
            args.append(verified_in)
        more, more_args = _leaving_out(skip_rows, skip_currencies)
        sql += more
        args += more_args
        return [self._record(r) for r in self.db.execute(sql + " ORDER BY row LIMIT ?", [*args, limit])]

    def counts(self, batch_id: str) -> dict[str, int]:
        """Rows per state, counted by the database."""
        return {
            r[0]: r[1]
            for r in self.db.execute("SELECT state, COUNT(*) FROM rows WHERE batch_id = ? GROUP BY state", (batch_id,))
        }

    def totals(self, batch_id: str) -> list[tuple[RowState, str, int, Decimal]]:
        """(state, currency, rows, amount) for every pair present; amounts summed as Decimal.

        The database groups the rows by state, currency and amount; only the groups are summed
        here (an amount times its count is exactly the sum of that many of it)."""
        sums: dict[tuple[str, str], tuple[int, Decimal]] = {}
        for state, currency, amount, count in self.db.execute(  # one statement: one moment of the batch
            "SELECT state, json_extract(payout, '$.currency'), json_extract(payout, '$.amount'), COUNT(*)"
            " FROM rows WHERE batch_id = ? AND payout IS NOT NULL GROUP BY 1, 2, 3"
            " UNION ALL SELECT state, NULL, NULL, COUNT(*) FROM rows WHERE batch_id = ? AND payout IS NULL GROUP BY 1",
            (batch_id, batch_id),
        ):
            key = (state, currency or "")
            rows, total = sums.get(key, (0, Decimal(0)))
            sums[key] = (rows + count, total + (Decimal(str(amount)) * count if amount is not None else Decimal(0)))
        return [(RowState(s), c, n, t) for (s, c), (n, t) in sorted(sums.items())]

    def money_groups(self, batch_id: str) -> list[MoneyGroup]:
        """The rows with a payout, grouped by the database by everything a total counts: state,
        currency, amount, fee and amount received. Paid rows without a fee or amount received
        reported carry their row numbers."""
        out = []
        for state, currency, amount, fee, received, count, unreported in self.db.execute(
            "SELECT state, json_extract(payout, '$.currency'), json_extract(payout, '$.amount'), fee,"
            " recipient_amount, COUNT(*), CASE WHEN state = 'succeeded' AND (COALESCE(fee, '') = ''"
            " OR COALESCE(recipient_amount, '') = '') THEN group_concat(row) END"
            " FROM rows WHERE batch_id = ? AND payout IS NOT NULL GROUP BY 1, 2, 3, 4, 5",
            (batch_id,),
        ):
            rows = tuple(sorted(int(n) for n in unreported.split(","))) if unreported else ()
            out.append(
                MoneyGroup(RowState(state), str(currency), Decimal(str(amount)), _dec(fee), _dec(received), count, rows)
            )
        return out

    def rows_without_payout(self, batch_id: str) -> list[RowRecord]:
        """Rows that never became a payout (invalid rows, mostly), by row number."""
        return [
            self._record(r)
            for r in self.db.execute(
                "SELECT * FROM rows WHERE batch_id = ? AND payout IS NULL ORDER BY row", (batch_id,)
            )
        ]

    def cell_currencies(self, batch_id: str, header: str) -> list[tuple[str, str, int]]:
        """(text of the cell under ``header``, payout currency, first row) for each pair present
        among rows with a payout, first rows first."""
        return [
            (str(text), str(currency), int(first))
            for text, currency, first in self.db.execute(
                "SELECT c.value, json_extract(r.payout, '$.currency'), MIN(r.row) FROM rows r, json_each(r.cells) c"
                " WHERE r.batch_id = ? AND r.payout IS NOT NULL AND c.key = ? GROUP BY 1, 2 ORDER BY 3",
                (batch_id, header),
            )
        ]

    def corrections(self, batch_id: str, limit: int) -> tuple[list[tuple[int, str]], int]:
        """The first ``limit`` rows (by number) whose settled status the provider corrected later,
        with the note saying how, and how many there are in all."""
        where = "FROM rows WHERE batch_id = ? AND substr(note, 1, 9) = 'corrected'"
        total = int(self.db.execute(f"SELECT COUNT(*) {where}", (batch_id,)).fetchone()[0])
        first = [
            (int(r[0]), str(r[1]))
            for r in self.db.execute(f"SELECT row, note {where} ORDER BY row LIMIT ?", (batch_id, limit))
        ]
        return first, total

    def still_open(
        self, batch_id: str, *, skip_rows: Collection[int] = (), skip_currencies: Collection[str] = ()
    ) -> bool:
        """Whether rows still need work in a run: in flight, asked to confirm, or READY to send
        (other than ``skip_rows`` and paused currencies). Each question is answered by an index."""
        in_flight = f"SELECT 1 FROM rows WHERE batch_id = ? AND state IN {_IN_FLIGHT} LIMIT 1"  # noqa: S608
        if self.db.execute(in_flight, (batch_id,)).fetchone():
            return True
        if self.db.execute("SELECT 1 FROM rows WHERE batch_id = ? AND confirm = 1 LIMIT 1", (batch_id,)).fetchone():
            return True
        sql = "SELECT 1 FROM rows WHERE batch_id = ? AND state = 'ready' AND payout IS NOT NULL"
        args: list[Any] = [batch_id]
        more, more_args = _leaving_out(skip_rows, skip_currencies)
        sql += more
        args += more_args
        return self.db.execute(sql + " LIMIT 1", args).fetchone() is not None

    def unsettled_elsewhere(self, batch_id: str) -> list[RowRecord]:
        """Rows of other batches that pay an obligation this batch paid and whose outcome a fresh
        read may still change: failed ones (the provider may yet turn one into a payment: "terminal
        is not final") and ones in flight (their run may have stopped before it heard they were paid)."""
        self._keep_shared_claims()
        # CROSS joins keep this order: the batch's shared keys first, never every claim of the batch
        return [
            self._record(r)
            for r in self.db.execute(
                "SELECT DISTINCT o.* FROM batches t"
                " CROSS JOIN shared_claims s ON s.env_id = t.env_id"
                " CROSS JOIN claims a ON a.env_id = s.env_id AND a.key = s.key AND a.batch_id = t.id"
                " CROSS JOIN rows r ON r.batch_id = a.batch_id AND r.row = a.row AND r.state = 'succeeded'"
                " CROSS JOIN claims b ON b.env_id = a.env_id AND b.key = a.key AND b.batch_id != a.batch_id"
                " CROSS JOIN rows o ON o.batch_id = b.batch_id AND o.row = b.row AND o.state IN (?, ?, ?)"
                " WHERE t.id = ?",
                (*READ_AGAIN_STATES, batch_id),
            )
        ]

    def retried_successes(self, batch_id: str) -> list[RowRecord]:
        """Succeeded rows of this batch that are retries of an earlier attempt."""
        return [
            self._record(r)
            for r in self.db.execute(
                "SELECT * FROM rows WHERE batch_id = ? AND state = 'succeeded' AND origin_batch IS NOT NULL"
                " ORDER BY row",
                (batch_id,),
            )
        ]

    # -- obligations: one live payment per payee --------------------------------------------------

    def holders(self, env_id: str, keys: Sequence[str], *, exclude: tuple[str, int] | None = None) -> list[Holder]:
        """Rows of any batch of ``env_id`` that claim one of ``keys`` (``exclude`` left out)."""
        return self._holders(self.db, env_id, keys, exclude)

    def holders_by_key(self, env_id: str, keys: Collection[str]) -> dict[str, list[Holder]]:
        """For each of ``keys`` claimed by a row of a batch of ``env_id``: those rows, in the order
        :meth:`holders` gives them; a few statements for many keys, not one per key."""
        found: dict[str, list[Holder]] = {}
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), _PER_STATEMENT):
            chunk = wanted[start : start + _PER_STATEMENT]
            sql = _HOLDERS_SQL.replace("{marks}", ",".join("?" * len(chunk))).replace("{key}", "c.key, ")
            for r in self.db.execute(sql, (env_id, *chunk)):
                found.setdefault(r["key"], []).append(_holder(r))
        return found

    def _holders(
        self, db: sqlite3.Connection, env_id: str, keys: Sequence[str], exclude: tuple[str, int] | None
    ) -> list[Holder]:
        if not keys:
            return []
        sql = _HOLDERS_SQL.replace("{marks}", ",".join("?" * len(keys))).replace("{key}", "")
        return [_holder(r) for r in db.execute(sql, (env_id, *keys)) if (r["batch_id"], r["row"]) != exclude]

    def keys_of(self, batch_id: str, number: int) -> list[str]:
        return [
            r[0] for r in self.db.execute("SELECT key FROM claims WHERE batch_id = ? AND row = ?", (batch_id, number))
        ]

    def claim_for_sending(self, batch_id: str, number: int) -> Holder | None:
        """Mark a READY row SUBMITTING, in the same transaction that checks no other row of its
        environment holds one of its obligations. Return the holder that stopped it (the row is
        then BLOCKED), or ``None`` when the row is now SUBMITTING.

        A row with a recorded override is sent whatever else holds its obligation."""
        now = self.clock()
        with self.transaction(durable=True) as db:
            row = db.execute(
                "SELECT r.state, b.env_id FROM rows r JOIN batches b ON b.id = r.batch_id"
                " WHERE r.batch_id = ? AND r.row = ?",
                (batch_id, number),
            ).fetchone()
            if row is None:
                raise LedgerError(f"batch {batch_id} has no row {number}")
            if row["state"] != RowState.READY.value:
                raise IllegalTransition(number, row["state"], RowState.SUBMITTING.value)
            keys = [
                r[0] for r in db.execute("SELECT key FROM claims WHERE batch_id = ? AND row = ?", (batch_id, number))
            ]
            overridden = (
                db.execute("SELECT 1 FROM overrides WHERE batch_id = ? AND row = ?", (batch_id, number)).fetchone()
                is not None
            )
            live = [h for h in self._holders(db, row["env_id"], keys, (batch_id, number)) if h.live]
            unexcused = self._not_excused(db, row["env_id"], batch_id, number, keys) if overridden else []
            if blocks_sending(live, overridden, unexcused):
                first = (unexcused or live)[0]
                self._update(
                    db,
                    batch_id,
                    number,
                    {
                        "state": RowState.BLOCKED.value,
                        "completed_at": now,
                        "error": f"not sent: batch {first.batch_id} row {first.row} already pays this payee "
                        f"({first.state.value})",
                    },
                )
                return first
            self._update(db, batch_id, number, {"state": RowState.SUBMITTING.value, "submitting_at": now})
        return None

    def _not_excused(
        self, db: sqlite3.Connection, env_id: str, batch_id: str, number: int, keys: Sequence[str]
    ) -> list[Holder]:
        """The live rows an override does not let this row pass: the override was decided for one
        payment of one payee, so it passes other batches' payments of the payee its first attempt
        claimed, never another attempt of this same row (a sibling retry, or an earlier attempt
        paid after all) nor a payee its retry was corrected to."""
        sql = _HOLDERS_SQL.replace("{marks}", ",".join("?" * len(keys))).replace("{key}", "c.key, ")
        out = []
        for r in db.execute(sql, (env_id, *keys)):
            holder = _holder(r)
            at = (holder.batch_id, holder.row)
            if at != (batch_id, number) and holder.live and not self._excuses(db, (batch_id, number), at, r["key"]):
                out.append(holder)
        return out

    def _excuses(self, db: sqlite3.Connection, overridden: tuple[str, int], other: tuple[str, int], key: str) -> bool:
        """Whether the override of row ``overridden`` lets it pay alongside row ``other``, both
        claiming ``key``: they are attempts of different first rows, and the first attempt of
        ``overridden`` claimed ``key`` (a payee the override was decided for)."""
        first = self._first_attempt(db, *overridden)
        if first == self._first_attempt(db, *other):
            return False
        claimed = db.execute("SELECT 1 FROM claims WHERE batch_id = ? AND row = ? AND key = ?", (*first, key))
        return claimed.fetchone() is not None

    def _first_attempt(self, db: sqlite3.Connection, batch_id: str, number: int) -> tuple[str, int]:
        """(batch, row) of the first attempt of a row: its origins followed back to the start."""
        at, seen = (batch_id, number), set()
        while at not in seen:  # (origins always point back in time; a loop would end here)
            seen.add(at)
            found = db.execute(
                "SELECT origin_batch, origin_row FROM rows WHERE batch_id = ? AND row = ?", at
            ).fetchone()
            if found is None or found[0] is None or found[1] is None:
                return at
            at = (str(found[0]), int(found[1]))
        return at

    def record_override(self, env_id: str, batch_id: str, number: int, *, who: str, why: str) -> None:
        """An operator's decision to pay this row although its payee was paid or is being paid."""
        with self.transaction(durable=True) as db:
            db.execute(
                "INSERT INTO overrides (env_id, batch_id, row, who, why, at) VALUES (?,?,?,?,?,?)",
                (env_id, batch_id, number, who, why, self.clock()),
            )

    def override_of(self, batch_id: str, number: int) -> dict[str, Any] | None:
        """The operator's recorded decision to pay this row again, if any."""
        r = self.db.execute(
            "SELECT * FROM overrides WHERE batch_id = ? AND row = ? ORDER BY id LIMIT 1", (batch_id, number)
        ).fetchone()
        return dict(r) if r is not None else None

    def overrides(self, batch_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM overrides WHERE batch_id = ? ORDER BY id", (batch_id,))]

    def paid_twice(self, batch_id: str) -> list[tuple[RowRecord, RowRecord]]:
        """(row of this batch, another paid row) pairs that paid the same obligation twice, in
        any batch of the environment, unless an operator override covers either of them."""
        self._keep_shared_claims()
        # CROSS joins keep this order: the batch's shared keys first, never every claim of the batch
        pairs = self.db.execute(
            "SELECT DISTINCT a.row, o.batch_id, o.row, a.key FROM batches t"
            " CROSS JOIN shared_claims s ON s.env_id = t.env_id"
            " CROSS JOIN claims a ON a.env_id = s.env_id AND a.key = s.key AND a.batch_id = t.id"
            " CROSS JOIN claims b ON b.env_id = a.env_id AND b.key = a.key"
            " AND NOT (b.batch_id = a.batch_id AND b.row = a.row)"
            " CROSS JOIN rows r ON r.batch_id = a.batch_id AND r.row = a.row AND r.state = 'succeeded'"
            " CROSS JOIN rows o ON o.batch_id = b.batch_id AND o.row = b.row AND o.state = 'succeeded'"
            " WHERE t.id = ?"
            " ORDER BY a.row",
            (batch_id,),
        ).fetchall()
        found = dict.fromkeys(
            (mine, other_batch, other)
            for mine, other_batch, other, key in pairs
            if not self._override_covers((batch_id, mine), (other_batch, other), key)
        )
        return [(self.row(batch_id, mine), self.row(other_batch, other)) for mine, other_batch, other in found]

    def _override_covers(self, one: tuple[str, int], other: tuple[str, int], key: str) -> bool:
        """Whether a person's override makes two paid rows sharing ``key`` one payment each, not a
        payment twice: one of them is overridden, they are attempts of different first rows, and
        the overridden row's first attempt claimed ``key`` (a payee it was decided for)."""
        return any(
            self.db.execute("SELECT 1 FROM overrides WHERE batch_id = ? AND row = ?", at).fetchone() is not None
            and self._excuses(self.db, at, against, key)
            for at, against in ((one, other), (other, one))
        )

    def paid_amounts(self, env_id: str, currencies: Collection[str]) -> dict[tuple[str, str], list[Decimal]]:
        """(payee as ``Payout.payee()``, currency) -> amounts paid (succeeded rows) in ``env_id``, in
        ``currencies``: what the payroll guardrails compare a new amount with."""
        if not currencies:
            return {}
        found: dict[tuple[str, str], list[Decimal]] = {}
        sql = _PAID_AMOUNTS_SQL.replace("{marks}", ",".join("?" * len(currencies)))
        for payee, currency, amount in self.db.execute(sql, (env_id, *currencies)):
            found.setdefault((payee, currency), []).append(Decimal(str(amount)))
        return found

    def fees_paid(self, env_id: str, currencies: Collection[str], *, limit: int = 2000) -> list[FeePaid]:
        """The fees of the latest succeeded payouts of ``env_id`` in ``currencies`` that reported one
        (at most ``limit``, newest first): what an estimate of the next fees can go on."""
        if not currencies:
            return []
        sql = _FEES_PAID_SQL.replace("{marks}", ",".join("?" * len(currencies)))
        return [
            FeePaid(
                currency,
                method,
                Decimal(str(amount)),
                Decimal(fee),
                Decimal(received) if received is not None else None,
            )
            for currency, method, amount, fee, received in self.db.execute(sql, (env_id, *currencies, limit))
        ]

    # -- confirmation of payee: look-ups, verdicts, acceptances -----------------------------------

    def cached_lookup(self, env_id: str, payee: str, name: str, max_age_seconds: float) -> tuple[str, float] | None:
        """(answer as JSON, epoch seconds it was received) of a look-up in ``env_id`` received at
        most ``max_age_seconds`` ago by the ledger's clock, if any."""
        r = self.db.execute(
            "SELECT answer, checked_at FROM lookups WHERE env_id = ? AND payee = ? AND name = ?", (env_id, payee, name)
        ).fetchone()
        if r is None or self.clock() - r["checked_at"] > max_age_seconds:
            return None
        return str(r["answer"]), float(r["checked_at"])

    def remember_lookup(self, env_id: str, payee: str, name: str, answer: str, checked_at: float) -> None:
        """Keep a look-up's answer (JSON) received at ``checked_at``, replacing an older one."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO lookups VALUES (?,?,?,?,?)", (env_id, payee, name, answer, checked_at))

    def rows_to_verify(self, batch_id: str, run: str, *, after: int = 0, limit: int = -1) -> list[RowRecord]:
        """Rows whose payee run ``run`` has not checked yet: READY rows never sent, and rows HELD by
        an earlier check (asked again: a timeout may have passed, an account may be active again).
        In row order, the first ``limit`` (-1: all) of those numbered above ``after``."""
        return [
            self._record(r)
            for r in self.db.execute(
                "SELECT * FROM rows WHERE batch_id = ? AND row > ? AND payout IS NOT NULL AND verify_run IS NOT ?"
                " AND ((state = 'ready' AND submitting_at IS NULL) OR (state = 'held' AND name_check IS NOT NULL))"
                " ORDER BY row LIMIT ?",
                (batch_id, after, run, limit),
            )
        ]

    def accept_held(
        self, batch_id: str, numbers: Sequence[int], *, who: str, what: Callable[[RowRecord], tuple[str, str | None]]
    ) -> list[RowRecord]:
        """Move every HELD row of ``numbers`` to READY, recording who accepted what, in one
        transaction. ``what(row)`` gives (finding, registered name) of the row's hold. Nothing
        changes if one of them is not held: :class:`NotHeld` names each with its state."""
        if not numbers:
            return []
        now = self.clock()
        with self.transaction() as db:
            batch = db.execute("SELECT env_id FROM batches WHERE id = ?", (batch_id,)).fetchone()
            if batch is None:
                raise BatchNotFound(batch_id)
            found = {
                r["row"]: self._record(r)
                for r in db.execute(
                    f"SELECT * FROM rows WHERE batch_id = ? AND row IN ({','.join('?' * len(numbers))})",  # noqa: S608
                    (batch_id, *numbers),
                )
            }
            wrong = {
                n: (found[n].state.value if n in found else None)
                for n in numbers
                if n not in found or found[n].state is not RowState.HELD
            }
            if wrong:
                raise errors.NotHeld(batch_id, wrong)
            for number in dict.fromkeys(numbers):
                row = found[number]
                finding, registered = what(row)
                db.execute(
                    "INSERT INTO acceptances (env_id, batch_id, row, who, at, what, registered_name, sentence)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    (batch["env_id"], batch_id, number, who, now, finding, registered, row.note or ""),
                )
                self._update(
                    db,
                    batch_id,
                    number,
                    {"state": RowState.READY.value, "next_check": now, "note": f"held, then accepted by {who}"},
                )
        return [self.row(batch_id, n) for n in dict.fromkeys(numbers)]

    def acceptances(self, batch_id: str, number: int | None = None) -> list[Acceptance]:
        """Operators' acceptances of held rows of a batch (of one row), oldest first."""
        sql = "SELECT * FROM acceptances WHERE batch_id = ?"
        args: list[Any] = [batch_id]
        if number is not None:
            sql += " AND row = ?"
            args.append(number)
        return [
            Acceptance(r["batch_id"], r["row"], r["who"], r["at"], r["what"], r["registered_name"], r["sentence"])
            for r in self.db.execute(sql + " ORDER BY id", args)
        ]

    # -- customers ---------------------------------------------------------------------------------

    def customer(self, env_id: str, phone: str, country: str, network: str | None) -> str | None:
        """The customer key the provider of ``env_id`` returned for this phone, if cached."""
        r = self.db.execute(
            "SELECT customer_key FROM customers WHERE env_id = ? AND phone = ? AND country = ? AND network = ?",
            (env_id, phone, country, network or ""),
        ).fetchone()
        return str(r[0]) if r else None

    def remember_customer(self, env_id: str, phone: str, country: str, network: str | None, key: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO customers VALUES (?,?,?,?,?,?)",
                (env_id, phone, country, network or "", key, self.clock()),
            )

    def forget_customer(self, env_id: str, phone: str, country: str, network: str | None) -> None:
        """Drop a cached key the provider no longer knows."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM customers WHERE env_id = ? AND phone = ? AND country = ? AND network = ?",
                (env_id, phone, country, network or ""),
            )

    # -- events and the audit trail -------------------------------------------------------------

    def record_event(
        self, *, reference: str | None, status: str | None, mode: str, verified: bool, outcome: str, body: Any
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events (received_at, reference, status, mode, verified, outcome, body)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    self.clock(),
                    reference,
                    status,
                    mode,
                    int(verified),
                    outcome,
                    json.dumps(redact(body, self.secrets), default=str)[:20000],
                ),
            )

    def events(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM events ORDER BY id")]

    def audit(
        self,
        *,
        method: str,
        path: str,
        status: int | None,
        duration: float,
        request: Any,
        response: Any,
        error: str | None,
        actor: str | None = None,
    ) -> None:
        """Record an API call with the key, secrets and phone numbers masked; ``actor``: the person
        whose action made it (None: the operator of a command).

        A command's calls are written in groups: with the next change of the ledger (the same
        transaction, so the trail is never behind the state it explains), every ``AUDIT_GROUP``
        calls, and when the ledger is closed or the trail read (docs/exactly-once.md,
        "Durability"). A person's call (``actor``) is written at once."""
        self._audit_waiting.append(
            (
                self.clock(),
                method,
                redact(path, self.secrets),
                status,
                duration,
                json.dumps(redact(request, self.secrets), default=str),
                json.dumps(redact(response, self.secrets), default=str)[:20000],
                error,
                actor,
            )
        )
        if actor is not None or len(self._audit_waiting) >= AUDIT_GROUP:
            with self.transaction():
                pass  # the transaction writes what waits

    def _write_audit(self, db: sqlite3.Connection) -> list[tuple[Any, ...]]:
        """Insert the calls waiting to be recorded; return them (to put back if the transaction fails)."""
        waiting, self._audit_waiting = self._audit_waiting, []
        if waiting:
            db.executemany(
                "INSERT INTO audit (at, method, path, status, duration, request, response, error, actor)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                waiting,
            )
        return waiting

    def audit_rows(self) -> list[dict[str, Any]]:
        if self._audit_waiting:
            with self.transaction():
                pass
        return [dict(r) for r in self.db.execute("SELECT * FROM audit ORDER BY id")]

    # -- people, approvals and actions (the web console) ------------------------------------------

    def add_user(self, name: str, *, role: str, password_hash: str, totp_secret: str | None) -> None:
        """A new person; :class:`~batch_payouts.errors.UserExists` when the name is taken."""
        with self.transaction(durable=True) as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise errors.UserExists(name)
            db.execute(
                "INSERT INTO users (name, role, password_hash, totp_secret, disabled, created_at) VALUES (?,?,?,?,0,?)",
                (name, role, password_hash, totp_secret, self.clock()),
            )

    def user(self, name: str) -> UserRecord | None:
        r = self.db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return _user(r) if r is not None else None

    def users(self) -> list[UserRecord]:
        return [_user(r) for r in self.db.execute("SELECT * FROM users ORDER BY name")]

    def update_user(self, name: str, **fields: Any) -> None:
        """Change a person's ``disabled``, ``role``, ``password_hash`` or ``totp_secret``."""
        allowed = {"disabled", "role", "password_hash", "totp_secret"}
        if not fields or set(fields) - allowed:
            raise LedgerError(f"cannot change {sorted(set(fields) - allowed)} of a person")
        with self.transaction(durable=True) as db:
            assigns = ", ".join(f"{k} = ?" for k in fields)
            found = db.execute(
                f"UPDATE users SET {assigns} WHERE name = ?",  # noqa: S608
                [*fields.values(), name],
            )
            if found.rowcount == 0:
                raise errors.UnknownUser(name)

    def record_action(self, batch_id: str | None, actor: str, action: str, detail: str = "") -> None:
        """Who did what to a batch (or, ``batch_id`` None, to the install: people), and when."""
        with self.transaction(durable=True) as db:
            db.execute(
                "INSERT INTO actions (batch_id, actor, action, detail, at) VALUES (?,?,?,?,?)",
                (batch_id, actor, action, redact(detail, self.secrets), self.clock()),
            )

    def actions(self, batch_id: str | None = None) -> list[ActionRecord]:
        """The actions on a batch (None: every action), oldest first."""
        sql, args = (
            ("SELECT * FROM actions WHERE batch_id = ? ORDER BY id", (batch_id,))
            if batch_id is not None
            else ("SELECT * FROM actions ORDER BY id", ())
        )
        return [
            ActionRecord(r["batch_id"], r["actor"], r["action"], r["detail"], r["at"])
            for r in self.db.execute(sql, args)
        ]

    def record_approval(self, batch_id: str, approver: str, typed_total: str) -> None:
        """An approval of a batch, with the total the approver typed, and the action in the trail."""
        now = self.clock()
        with self.transaction(durable=True) as db:
            db.execute(
                "INSERT INTO approvals (batch_id, approver, at, typed_total) VALUES (?,?,?,?)",
                (batch_id, approver, now, typed_total),
            )
            db.execute(
                "INSERT INTO actions (batch_id, actor, action, detail, at) VALUES (?,?,?,?,?)",
                (batch_id, approver, "approved", f"typed total {typed_total}", now),
            )

    def approvals(self, batch_id: str) -> list[ApprovalRecord]:
        return [
            ApprovalRecord(r["batch_id"], r["approver"], r["at"], r["typed_total"])
            for r in self.db.execute("SELECT * FROM approvals WHERE batch_id = ? ORDER BY id", (batch_id,))
        ]


def _user(r: sqlite3.Row) -> UserRecord:
    return UserRecord(r["name"], r["role"], r["password_hash"], r["totp_secret"], bool(r["disabled"]), r["created_at"])


def _leaving_out(rows: Collection[int], currencies: Collection[str]) -> tuple[str, list[Any]]:
    """SQL conditions (and their arguments) leaving out these row numbers and payout currencies."""
    sql = ""
    args: list[Any] = []
    if rows:
        sql += f" AND row NOT IN ({','.join('?' * len(rows))})"
        args += list(rows)
    if currencies:
        sql += f" AND json_extract(payout, '$.currency') NOT IN ({','.join('?' * len(currencies))})"
        args += list(currencies)
    return sql, args


def _dead_here(holder: str) -> bool:
    """True when ``holder`` ("pid N on HOST") is a process of this host that no longer exists."""
    words = holder.split()
    if len(words) != 4 or words[0] != "pid" or words[3] != socket.gethostname() or not words[1].isdigit():
        return False
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _of_batch(columns: str, batch_id: str, states: Collection[RowState]) -> tuple[str, list[Any]]:
    """``SELECT columns`` of the batch's rows (only those in ``states``, if any), and its arguments."""
    sql, args = f"SELECT {columns} FROM rows WHERE batch_id = ?", [batch_id]  # noqa: S608
    if states:
        sql += f" AND state IN ({','.join('?' * len(states))})"
        args += [s.value for s in states]
    return sql, args


def _holder(r: sqlite3.Row) -> Holder:
    """A row found by ``_HOLDERS_SQL``."""
    payout = _PAYOUT.validate_json(r["payout"]) if r["payout"] else None
    return Holder(
        r["batch_id"],
        r["row"],
        RowState(r["state"]),
        payout.amount if payout else None,
        payout.currency if payout else None,
        r["submitting_at"] is not None,
        bool(r["overridden"]),
    )


def _new_row_values(batch_id: str, new: NewRow, now: float) -> tuple[Any, ...]:
    """The columns of a new row, in the order ``Ledger.create_batch`` inserts them."""
    origin_batch, origin_row, attempt = new.origin or (None, None, 1)
    return (
        batch_id,
        new.row,
        new.state.value,
        new.payout.model_dump_json() if new.payout is not None else None,
        json.dumps(new.cells),
        json.dumps(new.problems),
        reference_for(batch_id, new.row, attempt) if new.payout is not None else None,
        attempt,
        new.keys[0] if new.keys else None,
        origin_batch,
        origin_row,
        new.note,
        now,
    )


def reference_for(batch_id: str, row: int, attempt: int) -> str:
    """The deterministic idempotency key of one row attempt: ``<batch>-<row>-<attempt>``."""
    ref = f"{batch_id}-{row}-{attempt}"
    if len(ref) > 40:
        raise LedgerError(f"reference {ref!r} is longer than 40 characters")
    return ref

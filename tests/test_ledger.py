"""The ledger: durable settings, the row life cycle, the lease, redaction."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_payouts.errors import BatchLocked, IllegalTransition
from batch_payouts.ledger import AUDIT_GROUP, Ledger, NewRow, reference_for
from batch_payouts.model import ALLOWED_MOVES, MobileMoneyPayout, RowState

PAYOUT = MobileMoneyPayout(row=2, name="A", amount=Decimal(100), currency="KES", country="KE", phone="+254712345678")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "l.db", clock=lambda: 1000.0, secrets=("canary-key-xyz",))
    led.create_batch(
        "b1",
        env_id="e",
        fingerprint="f",
        label="",
        source="s.csv",
        options={},
        headers=["name"],
        rows=[NewRow(2, RowState.READY, PAYOUT, {"name": "A"}, [])],
    )
    return led


def test_durability_settings_hold_at_every_open(ledger: Ledger) -> None:
    db = ledger.db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL; FULL around what must be durable
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert ledger.integrity_ok()


def test_the_ledger_file_is_private(ledger: Ledger) -> None:
    assert (ledger.path.stat().st_mode & 0o777) == 0o600


def test_references_are_deterministic_and_short() -> None:
    assert reference_for("b1a2b3c4d5e6", 1048576, 3) == "b1a2b3c4d5e6-1048576-3"
    assert len(reference_for("b1a2b3c4d5e6", 1048576, 99)) <= 40


def test_an_illegal_move_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    with pytest.raises(IllegalTransition, match="row 2: cannot move from ready to succeeded"):
        ledger.move("b1", 2, RowState.SUCCEEDED)
    assert ledger.row("b1", 2).state is RowState.READY


BATCH_NUMBERS = itertools.count()


@pytest.fixture(scope="module")
def one_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One ledger for every example of a property (a new batch each): opening a ledger is the slow part."""
    led = Ledger(tmp_path_factory.mktemp("h") / "l.db")
    yield led
    led.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(RowState)), max_size=12))
def test_no_sequence_of_moves_reaches_an_illegal_state(one_ledger: Ledger, moves: list[RowState]) -> None:
    led, batch = one_ledger, f"b{next(BATCH_NUMBERS)}"
    led.create_batch(
        batch,
        env_id="e",
        fingerprint="f",
        label="",
        source="s",
        options={},
        headers=[],
        rows=[NewRow(2, RowState.READY, PAYOUT, {}, [])],
    )
    path = [RowState.READY]
    for wanted in moves:
        current = path[-1]
        try:
            led.move(batch, 2, wanted)
        except IllegalTransition:
            assert wanted not in ALLOWED_MOVES[current] and wanted is not current
            assert led.row(batch, 2).state is current
            continue
        assert wanted in ALLOWED_MOVES[current] or wanted is current
        path.append(wanted)
    # Money safety: a row never goes back to sending without passing through unknown or a NotSent
    for before, after in itertools.pairwise(path):
        if after is RowState.READY:
            assert before in (RowState.SUBMITTING, RowState.UNKNOWN, RowState.BLOCKED, RowState.READY, RowState.HELD)
        if after is RowState.HELD:  # so held -> ready is as safe as ready itself: only a ready row is held
            assert before in (RowState.READY, RowState.HELD)
        assert not (before in (RowState.SUBMITTED, RowState.SUCCEEDED, RowState.FAILED) and after is RowState.READY)


def test_a_live_runner_holds_the_lease(ledger: Ledger) -> None:
    host = socket.gethostname()
    ledger.db.execute("UPDATE batches SET lease_owner = ?, lease_expires = ?", (f"pid 1 on {host}", 1020.0))
    with pytest.raises(BatchLocked) as info:
        ledger.acquire_lease("b1")
    assert str(info.value) == (
        f"batch b1 is being run by pid 1 on {host}; wait for it to finish "
        "(its lease expires in 20 s if that process is gone)"
    )


def test_a_lease_of_another_host_is_taken_over_only_after_it_expires(tmp_path: Path) -> None:
    now = [1000.0]
    led = Ledger(tmp_path / "l.db", clock=lambda: now[0])
    led.create_batch("b1", env_id="e", fingerprint="f", label="", source="s", options={}, headers=[], rows=[])
    led.db.execute("UPDATE batches SET lease_owner = 'pid 7 on elsewhere', lease_expires = 1030")
    with pytest.raises(BatchLocked):
        led.acquire_lease("b1")
    now[0] = 1031.0
    assert led.acquire_lease("b1").startswith("pid ")


def test_a_dead_runner_on_this_host_loses_its_lease_at_once(ledger: Ledger) -> None:
    host = socket.gethostname()
    ledger.db.execute("UPDATE batches SET lease_owner = ?, lease_expires = ?", (f"pid 999999 on {host}", 5000.0))
    assert ledger.acquire_lease("b1")


def test_the_audit_trail_masks_keys_secrets_and_phone_numbers(ledger: Ledger) -> None:
    ledger.audit(
        method="POST",
        path="/api/v3/customer/mobile-money/phone/%2B254712345678",
        status=200,
        duration=0.1,
        request={"phone_number": "+254712345678", "note": "key canary-key-xyz"},
        response={"data": {"phoneNumber": "+254712345678", "accountNumber": "0123456789"}},
        error=None,
    )
    row = ledger.audit_rows()[0]
    text = json.dumps(row)
    assert "canary-key-xyz" not in text and "712345678" not in text and "0123456789" not in text
    assert json.loads(row["request"])["phone_number"] == "+2547*****678"


def test_audit_lines_are_committed_with_the_next_change_they_explain_or_in_groups(ledger: Ledger) -> None:
    elsewhere = Ledger(ledger.path)  # another process reading the same file
    call = {
        "method": "POST",
        "path": "/api/v3/withdraw/mobile-money",
        "status": 200,
        "duration": 0.2,
        "request": {"referenceId": "b1-2-1"},
        "response": {"data": {"id": "p1"}},
        "error": None,
    }
    ledger.audit(**call)
    assert elsewhere.audit_rows() == []
    ledger.move("b1", 2, RowState.SUBMITTING)  # the change the call led to: both in one transaction
    [line] = elsewhere.audit_rows()
    assert (line["method"], line["path"], line["status"], json.loads(line["response"])) == (
        "POST",
        "/api/v3/withdraw/mobile-money",
        200,
        {"data": {"id": "p1"}},
    )
    for _ in range(AUDIT_GROUP):
        ledger.audit(**call)
    assert len(elsewhere.audit_rows()) == 1 + AUDIT_GROUP
    ledger.audit(**call)
    ledger.close()
    assert len(elsewhere.audit_rows()) == 2 + AUDIT_GROUP


def test_the_commit_that_claims_a_row_for_sending_syncs_the_log_first(ledger: Ledger) -> None:
    statements: list[str] = []
    ledger.db.set_trace_callback(statements.append)
    ledger.update("b1", 2, note="an ordinary change")
    assert "PRAGMA synchronous = FULL" not in statements
    statements.clear()
    assert ledger.claim_for_sending("b1", 2) is None
    assert statements[:2] == ["PRAGMA synchronous = FULL", "BEGIN IMMEDIATE"]
    assert statements[-2:] == ["COMMIT", "PRAGMA synchronous = NORMAL"]
    assert ledger.row("b1", 2).state is RowState.SUBMITTING


@settings(max_examples=40, deadline=None)
@given(
    st.lists(  # batches: each row claims one key of a small pool, in a state
        st.lists(st.tuples(st.integers(0, 7), st.sampled_from([RowState.READY, RowState.SUBMITTING])), max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, 1200),
)
def test_holders_of_many_keys_at_once_are_the_holders_of_each_key_asked_alone(
    one_ledger: Ledger, batches: list[list[tuple[int, RowState]]], many: int
) -> None:
    """A new batch's rows are decided against every other batch's claims with a few statements
    (500 keys each), not one per row: the holders of each key, and their order (the first live one
    is the one a repeat names), are those of the key asked alone."""
    led, run = one_ledger, next(BATCH_NUMBERS)
    env = f"e{run}"
    for number, rows in enumerate([*batches, [(1000 + n, RowState.READY) for n in range(many)]]):
        batch = f"k{run}-{number}"
        led.create_batch(
            batch,
            env_id=env,
            fingerprint="f",
            label="",
            source="s",
            options={},
            headers=[],
            rows=[NewRow(2 + i, RowState.READY, PAYOUT, {}, [], (f"key{k}",)) for i, (k, _) in enumerate(rows)],
        )
        for i, (_, state) in enumerate(rows):
            if state is RowState.SUBMITTING:
                led.move(batch, 2 + i, state)
    keys = [f"key{k}" for k in (*range(8), *range(1000, 1000 + many), 99999)]
    together = led.holders_by_key(env, keys)
    assert {k: led.holders(env, [k]) for k in keys if led.holders(env, [k])} == together


def test_what_is_left_of_a_batch_is_read_at_one_moment_while_a_run_sends_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows still to send and the money in flight are two reads: a row another process sends
    between them was in neither. Both now see one moment of the ledger."""
    from batch_payouts.engine import plan as planning

    led, run = Ledger(tmp_path / "l.db"), Ledger(tmp_path / "l.db")
    rows = [NewRow(n, RowState.READY, PAYOUT.model_copy(update={"row": n}), {}, [], (f"k{n}",)) for n in (2, 3)]
    led.create_batch("b", env_id="e", fingerprint="f", label="", source="s", options={}, headers=[], rows=rows)
    totals = Ledger.totals

    def then_the_run_sends_row_2(self: Ledger, batch_id: str) -> list[tuple[RowState, str, int, Decimal]]:
        found = totals(self, batch_id)
        if self is led:
            run.move(batch_id, 2, RowState.SUBMITTING)
        return found

    monkeypatch.setattr(Ledger, "totals", then_the_run_sends_row_2)
    assert planning.open_rows(led, "b") == ({2, 3}, {})
    monkeypatch.setattr(Ledger, "totals", totals)
    assert planning.open_rows(led, "b") == ({3}, {"KES": Decimal(100)})


def test_a_batch_made_from_an_iterator_of_rows_keeps_every_claim(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.db")
    rows = (NewRow(n, RowState.READY, PAYOUT.model_copy(update={"row": n}), {}, [], (f"k{n}",)) for n in (2, 3))
    led.create_batch("b", env_id="e", fingerprint="f", label="", source="s", options={}, headers=[], rows=rows)  # type: ignore[arg-type]
    assert led.keys_of("b", 2) == ["k2"] and led.keys_of("b", 3) == ["k3"]

"""A 100,000-row batch is as easy as a 100-row one: what `status`, `resume` and `results` need is
asked of the ledger (counted, summed and grouped there) and gives what reading every row gives."""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import nullcontext
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batch_payouts.cli import main
from batch_payouts.engine import results
from batch_payouts.ledger import Ledger, NewRow
from batch_payouts.model import MobileMoneyPayout, RowState
from batch_payouts.sandbox import persist
from batch_payouts.sandbox.persist import held
from batch_payouts.sandbox.state import SandboxState
from batch_payouts.sheets.report import totals
from batch_payouts.vocabulary import Word

MAPPING = {"name": "name", "phone": "phone", "country": "country", "amount": "amount", "currency": "currency"}
HEADERS = list(MAPPING.values())
# How each state is reached: the state a row is stored in, then the moves a run makes.
ROUTES: dict[RowState, tuple[RowState, tuple[RowState, ...]]] = {
    RowState.READY: (RowState.READY, ()),
    RowState.HELD: (RowState.HELD, ()),
    RowState.BLOCKED: (RowState.BLOCKED, ()),
    RowState.REJECTED: (RowState.READY, (RowState.REJECTED,)),
    RowState.SUBMITTED: (RowState.READY, (RowState.SUBMITTING, RowState.SUBMITTED)),
    RowState.UNKNOWN: (RowState.READY, (RowState.SUBMITTING, RowState.UNKNOWN)),
    RowState.SUCCEEDED: (RowState.READY, (RowState.SUBMITTING, RowState.SUBMITTED, RowState.SUCCEEDED)),
    RowState.FAILED: (RowState.READY, (RowState.SUBMITTING, RowState.SUBMITTED, RowState.FAILED)),
    RowState.NEEDS_REVIEW: (RowState.READY, (RowState.SUBMITTING, RowState.SUBMITTED, RowState.NEEDS_REVIEW)),
}
COUNTRIES = {"KES": "KE", "UGX": "UG", "GHS": "GH"}

paid_row = st.fixed_dictionaries(
    {
        "state": st.sampled_from(list(ROUTES)),
        "currency": st.sampled_from(list(COUNTRIES)),
        "amount": st.sampled_from([Decimal(100), Decimal("100.50"), Decimal("2500"), Decimal("0.25")]),
        "fee": st.sampled_from([None, Decimal(0), Decimal("1.50"), Decimal(7)]),
        "received": st.sampled_from(["none", "amount", "less"]),
    }
)
invalid_row = st.fixed_dictionaries(
    {
        "country": st.sampled_from(["KE", " ke ", "UG", "", "ZZ"]),
        "currency": st.sampled_from(["", "KES", "ugx"]),
        "amount": st.sampled_from(["abc", "12.5", "-3", "", "1,000", "7.123"]),
    }
)


def store(ledger: Ledger, batch_id: str, rows: list[dict[str, object]]) -> None:
    """A batch of these rows, each moved the way a run moves it, with the provider's figures."""
    new = []
    for number, spec in enumerate(rows, start=2):
        cells = {"name": f"P{number}", "phone": f"+2547120{number:05d}"}
        if "state" in spec:
            currency = str(spec["currency"])
            payout = MobileMoneyPayout(
                row=number,
                name=cells["name"],
                amount=spec["amount"],
                currency=currency,
                country=COUNTRIES[currency],
                phone=cells["phone"],
            )
            cells |= {"country": COUNTRIES[currency], "amount": str(spec["amount"]), "currency": currency}
            stored, _ = ROUTES[spec["state"]]  # type: ignore[index]
            new.append(NewRow(number, stored, payout, cells, []))
        else:
            cells |= {k: str(spec[k]) for k in ("country", "amount", "currency")}
            new.append(NewRow(number, RowState.INVALID, None, cells, [{"column": "amount", "problem": "bad"}]))
    ledger.create_batch(
        batch_id,
        env_id="e",
        fingerprint="f",
        label="",
        source="s.csv",
        options={"mapping": MAPPING},
        headers=HEADERS,
        rows=new,
    )
    for number, spec in enumerate(rows, start=2):
        if "state" not in spec:
            continue
        _, moves = ROUTES[spec["state"]]  # type: ignore[index]
        for to in moves:
            ledger.move(batch_id, number, to)
        amount, fee = spec["amount"], spec["fee"]
        received = {"none": None, "amount": amount, "less": amount - (fee or 0)}[spec["received"]]  # type: ignore[operator]
        ledger.update(batch_id, number, fee=fee, recipient_amount=received)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.one_of(paid_row, invalid_row), st.integers(1, 4)), min_size=1, max_size=10))
def test_totals_counted_by_the_ledger_are_the_totals_of_every_row(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[tuple[dict[str, object], int]]
) -> None:
    ledger = Ledger(tmp_path_factory.mktemp("t") / "l.db")
    store(ledger, "b1", [row for row, times in kinds for _ in range(times)])  # alike rows: the ledger groups them
    every_line = totals(results.batch_lines(ledger, "b1"))
    assert repr(results.batch_totals(ledger, "b1")) == repr(every_line)  # amounts written alike, too
    ledger.close()


def test_status_lists_the_first_corrections_and_says_how_many_more_and_where(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    store(
        ledger,
        "b1",
        [{"state": RowState.SUCCEEDED, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}]
        * 25,
    )
    for number in range(2, 27):
        ledger.move(
            "b1",
            number,
            RowState.FAILED,
            note="corrected by the provider: SUCCESSFUL became REVERSED at Kotani; succeeded -> failed here",
        )
    ledger.close()
    result = CliRunner().invoke(main, ["status", "b1", "--state", str(tmp_path / "l.db")])
    listed = [line for line in result.stdout.splitlines() if line.startswith("row ")]
    assert listed[0].startswith("row 2: corrected by the provider") and len(listed) == 20
    assert "… and 5 more rows the provider corrected: `batch-payouts results b1 -o FILE` lists every row." in " ".join(
        result.stdout.split()
    )
    assert result.exit_code == 3


def test_resuming_a_settled_batch_keeps_its_results_file_until_a_row_changes(tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("name,phone,country,amount,currency\nA,+254712345678,KE,100,KES\nB,+254712345679,KE,250,KES\n")
    state = str(tmp_path / "l.db")
    runner = CliRunner()
    first = runner.invoke(main, ["run", str(src), "--sandbox", "--yes", "--quiet", "--state", state])
    assert first.exit_code == 0, first.output
    batch = next(line.split()[1] for line in first.stdout.splitlines() if line.startswith("Batch "))
    results_file = next(tmp_path.glob(f"p.{batch}.results.csv"))
    written = results_file.stat().st_mtime_ns, results_file.read_bytes()

    again = runner.invoke(main, ["resume", batch, "--sandbox", "--yes", "--quiet", "--state", state])
    assert again.exit_code == 0, again.output
    assert "results (already up to date: no row changed since it was written):" in again.stdout
    assert (results_file.stat().st_mtime_ns, results_file.read_bytes()) == written

    ledger = Ledger(state)
    ledger.move(batch, 3, RowState.FAILED, note="corrected by the provider: SUCCESSFUL became REVERSED at Kotani")
    ledger.close()
    third = runner.invoke(main, ["resume", batch, "--sandbox", "--yes", "--quiet", "--state", state])
    assert third.exit_code == 3, third.output
    assert "already up to date" not in third.stdout
    assert ",failed," in results_file.read_text(encoding="utf-8-sig")


def test_the_sandbox_books_are_saved_again_only_when_something_in_them_changed(tmp_path: Path) -> None:
    books = tmp_path / "l.db.sandbox.json"
    with held(books, speed=1.0) as state:
        state.create_customer({"phone_number": "+254712345678", "country_code": "KE"})
    saved = books.stat().st_mtime_ns, books.read_bytes()
    with held(books, speed=1.0) as state:
        assert len(state.customers) == 1  # a command that only read them
    assert (books.stat().st_mtime_ns, books.read_bytes()) == saved
    with held(books, speed=1.0) as state:
        state.create_customer({"phone_number": "+254712345679", "country_code": "KE"})
    with held(books, speed=1.0) as state:
        assert len(state.customers) == 2


def test_the_sandbox_reads_its_payouts_only_when_a_command_uses_them(tmp_path: Path) -> None:
    books = tmp_path / "l.db.sandbox.json"
    with held(books, speed=1.0) as state:
        key = state.create_customer({"phone_number": "+254712345678", "country_code": "KE"})["customer_key"]
        state.create_withdrawal(
            "mobile-money",
            {"customer_key": key, "amount": 100, "referenceId": "r-1", "walletId": state.wallets["KES"].id},
        )
    with held(books, speed=1.0) as state:  # a payout still to settle: read at once, and ticked
        state.clock.advance(3600)
        state.tick()
    with held(books, speed=1.0) as state:
        assert state.wallets["KES"].balance < 10_000_000  # what `resume` of a settled batch asks
        assert "payouts" not in vars(state)
    with held(books, speed=1.0) as state:
        assert state.by_reference["r-1"].status == "SUCCESSFUL" and len(state.customers) == 1


def books_with_payouts(state: SandboxState, count: int) -> None:
    """``count`` payouts to new customers, settled."""
    for i in range(count):
        key = state.create_customer({"phone_number": f"+2547123456{i:02d}", "country_code": "KE"})["customer_key"]
        body = {"customer_key": key, "amount": 100 + i, "referenceId": f"r-{i}", "walletId": state.wallets["KES"].id}
        state.create_withdrawal("mobile-money", body)
    state.clock.advance(3600)
    state.tick()


def what_the_books_hold(state: SandboxState) -> tuple[object, ...]:
    references = {ref: state.payouts.index(p) for ref, p in state.by_reference.items()}
    return state.customers, [dataclasses.asdict(p) for p in state.payouts], references


def test_the_sandbox_books_keep_customers_and_payouts_a_line_each_and_read_them_back_whole(tmp_path: Path) -> None:
    books = tmp_path / "l.db.sandbox.json"
    with held(books, speed=1.0) as state:
        books_with_payouts(state, 3)
        kept = what_the_books_hold(state)
    [rest] = tmp_path.glob("l.db.sandbox.json.*.rest")
    lines = [json.loads(line) for line in rest.read_text(encoding="utf-8").splitlines()]
    assert [line[0] for line in lines] == ["customer"] * 3 + ["payout"] * 3 + ["reference"] * 3
    assert json.loads(books.read_text())["format"] == 3
    with held(books, speed=1.0) as state:
        assert what_the_books_hold(state) == kept
        first, second = state.payouts[0], state.payouts[1]
        assert first.status == "SUCCESSFUL" and first.status is second.status  # one object for equal texts


def one_object(state: SandboxState) -> dict[str, object]:
    """``state``'s customers, payouts and references to payouts as the books before format 3 kept them."""
    position = {id(p): i for i, p in enumerate(state.payouts)}
    return {
        "customers": persist._encode(state.customers),
        "payouts": [persist._encode(dataclasses.asdict(p)) for p in state.payouts],
        "references": {ref: position[id(p)] for ref, p in state.by_reference.items()},
    }


def save_as_format_2(state: SandboxState, books: Path) -> Path:
    """``state``'s books as session 7's code wrote them (customers and payouts as one JSON value);
    the file of customers and payouts."""
    rest = persist.rest_path(books, 1)
    rest.write_text(json.dumps(one_object(state)))
    books.write_text(json.dumps({**persist.snapshot(state), "format": 2, "rest": 1}))
    return rest


def test_sandbox_books_of_format_2_are_read_and_written_anew_once_their_payouts_are_read(tmp_path: Path) -> None:
    books = tmp_path / "l.db.sandbox.json"
    state = SandboxState(api_key="sandbox-old")
    books_with_payouts(state, 2)
    kept = what_the_books_hold(state)
    old_rest = save_as_format_2(state, books)
    with held(books, speed=1.0) as loaded:
        assert loaded.wallets["KES"].balance == state.wallets["KES"].balance  # the payouts not read
    assert old_rest.exists() and json.loads(books.read_text())["rest_format"] == 2
    with held(books, speed=1.0) as loaded:
        assert what_the_books_hold(loaded) == kept
    assert not old_rest.exists()
    with held(books, speed=1.0) as loaded:
        assert what_the_books_hold(loaded) == kept
    head = json.loads(books.read_text())
    assert (head["format"], head["rest_format"]) == (3, 3)


def save_as_format_1(state: SandboxState, books: Path, *, rest_first: bool = False) -> None:
    """``state``'s books as the code before session 4 wrote them: one JSON object, the head's keys
    first (``rest_first``: after the customers, payouts and references, as a hand-edited file may)."""
    head = {**persist.snapshot(state), "format": 1}
    del head["unsettled"]  # format 1 did not keep it
    rest = one_object(state)
    books.write_text(json.dumps(rest | head if rest_first else head | rest))


@pytest.mark.parametrize("whole_head", [persist.WHOLE_HEAD, 0], ids=["small file", "streamed"])
@pytest.mark.parametrize("rest_first", [False, True], ids=["head first", "head last"])
def test_sandbox_books_of_format_1_are_read_a_payout_at_a_time_and_written_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole_head: int, rest_first: bool
) -> None:
    """Books of one JSON object give back every customer, payout and reference, whether the file is
    small enough to read whole or streamed, and whatever the order of its keys; then format 3."""
    monkeypatch.setattr(persist, "WHOLE_HEAD", whole_head)
    books = tmp_path / "l.db.sandbox.json"
    state = SandboxState(api_key="sandbox-old")
    books_with_payouts(state, 3)
    kept = what_the_books_hold(state)
    save_as_format_1(state, books, rest_first=rest_first)
    with held(books, speed=1.0) as loaded:
        assert loaded.api_key == "sandbox-old" and loaded.wallets["KES"].balance == state.wallets["KES"].balance
        assert loaded.rng.getstate() == state.rng.getstate() and what_the_books_hold(loaded) == kept
        first, second = loaded.payouts[0], loaded.payouts[1]
        assert first.status == "SUCCESSFUL" and first.status is second.status  # one object for equal texts
    head = json.loads(books.read_text())
    assert (head["format"], head["rest_format"]) == (3, 3) and "payouts" not in head
    with held(books, speed=1.0) as loaded:
        assert what_the_books_hold(loaded) == kept


@pytest.mark.parametrize("whole_head", [persist.WHOLE_HEAD, 0], ids=["small file", "streamed"])
@pytest.mark.parametrize("value", ["Infinity", "NaN", str(2**70)])
def test_old_sandbox_books_holding_a_value_the_stream_reader_refuses_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole_head: int, value: str
) -> None:
    """A test knob can put an infinite settling time or a huge number into a payout's schedule;
    the json module writes and reads those, ijson does not: such books are read whole, as before."""
    monkeypatch.setattr(persist, "WHOLE_HEAD", whole_head)
    for fmt, save in (("one", save_as_format_1), ("two", save_as_format_2)):
        books = tmp_path / fmt / "l.db.sandbox.json"
        books.parent.mkdir()
        state = SandboxState(api_key="sandbox-old")
        books_with_payouts(state, 2)
        state.payouts[0].reference_number = -1  # a stand-in, written as ``value`` below
        save(state, books)
        holder = books if fmt == "one" else persist.rest_path(books, 1)
        holder.write_text(holder.read_text().replace('"reference_number": -1', f'"reference_number": {value}'))
        with held(books, speed=1.0) as loaded:
            assert [p.reference for p in loaded.payouts] == ["r-0", "r-1"], fmt
            assert str(loaded.payouts[0].reference_number) == str(json.loads(value)), fmt


def _peak_bytes_reading(books: Path) -> int:
    """Peak memory Python allocated (tracemalloc) while a command reads the books' payouts."""
    import tracemalloc

    tracemalloc.start()
    try:
        state, _ = persist.load(books, speed=1.0)
        assert len(state.payouts) > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_sandbox_books_of_one_json_object_take_no_more_memory_to_read_than_json_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Books of formats 1 and 2 are streamed, never parsed as one value: at their peak they hold
    about what books of format 3 hold (parsed whole, they held over twice as much)."""
    monkeypatch.setattr(persist, "WHOLE_HEAD", 0)  # format 1's head streamed too, as from a large file
    state = SandboxState(api_key="sandbox-old")
    books_with_payouts(state, 400)
    lines = tmp_path / "three" / "l.db.sandbox.json"
    lines.parent.mkdir()
    persist.save(state, lines)
    two = tmp_path / "two" / "l.db.sandbox.json"
    two.parent.mkdir()
    save_as_format_2(state, two)
    one = tmp_path / "one" / "l.db.sandbox.json"
    one.parent.mkdir()
    save_as_format_1(state, one)
    floor = _peak_bytes_reading(lines)
    assert _peak_bytes_reading(two) < 1.3 * floor
    assert _peak_bytes_reading(one) < 1.3 * floor


def test_sandbox_books_are_read_by_what_their_file_holds_not_by_what_the_head_says(tmp_path: Path) -> None:
    """An older version of the tool rewrites the head as format 2 and keeps the file of payouts it
    did not read, which is JSON lines: the books are still read whole."""
    books = tmp_path / "l.db.sandbox.json"
    with held(books, speed=1.0) as state:
        books_with_payouts(state, 2)
        kept = what_the_books_hold(state)
    head = json.loads(books.read_text())
    books.write_text(json.dumps({key: value for key, value in head.items() if key != "rest_format"} | {"format": 2}))
    with held(books, speed=1.0) as state:
        assert what_the_books_hold(state) == kept


def test_old_books_with_payouts_out_of_time_order_are_listed_in_time_order(tmp_path: Path) -> None:
    """Books of a version whose sandbox clock could go back: sorted by creation time once read."""
    books = tmp_path / "l.db.sandbox.json"
    state = SandboxState(api_key="sandbox-old")
    books_with_payouts(state, 3)
    state.payouts[0].created_at = state.payouts[2].created_at + 1  # made "after" the last one
    save_as_format_2(state, books)
    with held(books, speed=1.0) as loaded:
        assert [p.reference for p in loaded.payouts] == ["r-1", "r-2", "r-0"]
        assert {ref: p.reference for ref, p in loaded.by_reference.items()} == {f"r-{i}": f"r-{i}" for i in range(3)}


def test_the_run_loop_finds_rows_due_for_a_read_by_index_not_by_reading_the_batch(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    paid = {"state": RowState.SUCCEEDED, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    waiting = {**paid, "state": RowState.SUBMITTED}
    store(ledger, "b1", [paid, waiting, paid, waiting])
    ledger.update("b1", 4, confirm=1)  # a settled row a webhook asked to confirm
    ledger.update("b1", 3, next_check=10**12)  # an in-flight row not due yet
    statements: list[str] = []
    ledger.db.set_trace_callback(statements.append)
    assert sorted(r.row for r in ledger.due_checks("b1", 10**11)) == [4, 5]
    ledger.db.set_trace_callback(None)
    [asked] = [sql for sql in statements if sql.startswith("SELECT")]
    plan = " ".join(r[3] for r in ledger.db.execute("EXPLAIN QUERY PLAN " + asked))
    assert "rows_due" in plan and "rows_confirm" in plan  # two index searches, never a pass over the batch


# What every claim of a batch, probed one by one, says (the queries before migration 7): the
# reference the queries over shared keys must agree with.
REFERENCE_PAID_TWICE = (
    "SELECT DISTINCT a.row, o.batch_id, o.row FROM claims a"
    " JOIN claims b ON b.env_id = a.env_id AND b.key = a.key AND NOT (b.batch_id = a.batch_id AND b.row = a.row)"
    " JOIN rows r ON r.batch_id = a.batch_id AND r.row = a.row AND r.state = 'succeeded'"
    " JOIN rows o ON o.batch_id = b.batch_id AND o.row = b.row AND o.state = 'succeeded'"
    " WHERE a.batch_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM overrides v WHERE v.batch_id = a.batch_id AND v.row = a.row)"
    " AND NOT EXISTS (SELECT 1 FROM overrides v WHERE v.batch_id = o.batch_id AND v.row = o.row)"
)
REFERENCE_UNSETTLED_ELSEWHERE = (
    "SELECT DISTINCT o.batch_id, o.row FROM claims a"
    " JOIN rows r ON r.batch_id = a.batch_id AND r.row = a.row AND r.state = 'succeeded'"
    " JOIN claims b ON b.env_id = a.env_id AND b.key = a.key AND b.batch_id != a.batch_id"
    " JOIN rows o ON o.batch_id = b.batch_id AND o.row = b.row AND o.state IN ('failed', 'submitted', 'unknown')"
    " WHERE a.batch_id = ?"
)
claimed_row = st.tuples(
    st.lists(st.sampled_from("pqrstu"), min_size=0, max_size=2, unique=True),  # its obligation keys
    st.sampled_from(["succeeded", "failed", "submitted", "unknown", "ready", "blocked"]),
    st.booleans(),  # an operator override
)
batch_spec = st.tuples(st.sampled_from(["e1", "e2", ""]), st.lists(claimed_row, min_size=1, max_size=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(batch_spec, min_size=1, max_size=5),
    adopt=st.booleans(),
    migrate=st.booleans(),
    old_tool=st.booleans(),
    reopen=st.booleans(),
)
@example(  # a batch from before environments pays what a batch of the environment it joins paid
    batches=[("", [(["p"], "succeeded", False)]), ("e1", [(["p"], "succeeded", False)])],
    adopt=True,
    migrate=False,
    old_tool=False,
    reopen=False,
)
@example(  # an older version of the tool, which does not keep the list, pays an obligation again
    batches=[("e1", [(["p"], "succeeded", False)]), ("e1", [(["p"], "succeeded", False)])],
    adopt=False,
    migrate=False,
    old_tool=True,
    reopen=False,
)
def test_who_paid_twice_is_found_among_shared_keys_as_every_claim_would_say(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[tuple[str, list[tuple[list[str], str, bool]]]],
    adopt: bool,
    migrate: bool,
    old_tool: bool,
    reopen: bool,
) -> None:
    """paid_twice and unsettled_elsewhere look only at obligation keys claimed more than once
    (kept as batches are made, adopted into an environment, by the migration that brought them
    to an older ledger, or once an older version of the tool has written claims: when the ledger
    is next opened, or asked by a process that had it open) and find exactly what probing every
    claim of the batch finds."""
    path = tmp_path_factory.mktemp("shared") / "l.db"
    ledger = Ledger(path)
    for number, (env_id, rows) in enumerate(batches):
        new = [NewRow(n, RowState.READY, None, {}, [], tuple(keys)) for n, (keys, _, _) in enumerate(rows, start=2)]
        older = old_tool and number == len(batches) - 1  # the last batch, made by an older version
        with mock.patch.object(Ledger, "_share_new_claims", lambda self, db: None) if older else nullcontext():
            ledger.create_batch(
                f"b{number}", env_id=env_id, fingerprint="f", label="", source="s.csv", options={}, headers=[], rows=new
            )
        with ledger.transaction() as db:
            for n, (_, state, _) in enumerate(rows, start=2):
                db.execute("UPDATE rows SET state = ? WHERE batch_id = ? AND row = ?", (state, f"b{number}", n))
        for n, (_, _, overridden) in enumerate(rows, start=2):
            if overridden:
                ledger.record_override(env_id, f"b{number}", n, who="test", why="test")
    if adopt:  # batches made before environments existed join the first environment that uses them
        for number, (env_id, _) in enumerate(batches):
            if env_id == "":
                ledger.adopt(f"b{number}", "e1")
    if migrate:  # an older ledger: its shared keys are found by migration 7
        with ledger.transaction() as db:
            db.execute("DROP TABLE shared_claims")
            db.execute("DELETE FROM meta WHERE name = 'shared_claims_rowid'")
            db.execute("PRAGMA user_version = 6")
    if migrate or reopen:
        ledger = Ledger(path)  # opened again, as by the next command
    for number in range(len(batches)):
        batch = f"b{number}"
        pairs = {(mine.row, other.batch_id, other.row) for mine, other in ledger.paid_twice(batch)}
        assert pairs == {tuple(r) for r in ledger.db.execute(REFERENCE_PAID_TWICE, (batch,))}
        elsewhere = {(r.batch_id, r.row) for r in ledger.unsettled_elsewhere(batch)}
        assert elsewhere == {tuple(r) for r in ledger.db.execute(REFERENCE_UNSETTLED_ELSEWHERE, (batch,))}


def test_the_run_loop_learns_when_the_next_row_falls_due_from_one_index_search_per_state(tmp_path: Path) -> None:
    """Between passes the loop sleeps until the next status read, confirmation or retry falls due:
    the earliest time later than now, found without a pass over the batch."""
    ledger = Ledger(tmp_path / "l.db")
    row = {"state": RowState.SUBMITTED, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    paid, ready = {**row, "state": RowState.SUCCEEDED}, {**row, "state": RowState.READY}
    store(ledger, "b1", [row, row, paid, ready, paid])
    ledger.update("b1", 2, next_check=50.0)  # a status read due already: not "next"
    ledger.update("b1", 3, next_check=300.0)  # the next status read
    ledger.update("b1", 5, expect=RowState.READY, next_check=200.0)  # a retry backing off
    ledger.update("b1", 4, confirm=1, next_check=250.0)  # a settled row a webhook asked to confirm
    ledger.update("b1", 6, next_check=150.0)  # settled, not asked to confirm: nothing to do
    assert ledger.next_due("b1", 100.0) == 200.0
    ledger.update("b1", 5, expect=RowState.READY, next_check=400.0)
    assert ledger.next_due("b1", 100.0) == 250.0
    assert ledger.next_due("b1", 100.0, poll=False) == 250.0, "without polling, submitted rows are not read"
    assert ledger.next_due("b1", 1000.0) is None
    statements: list[str] = []
    ledger.db.set_trace_callback(statements.append)
    ledger.next_due("b1", 100.0)
    ledger.db.set_trace_callback(None)
    [asked] = [sql for sql in statements if sql.startswith("SELECT")]
    plan = " ".join(r[3] for r in ledger.db.execute("EXPLAIN QUERY PLAN " + asked))
    assert "SCAN rows" not in plan and plan.count("rows_due") == 3, plan


def test_the_run_loop_reads_the_next_rows_to_send_in_row_order_without_sorting_the_batch(tmp_path: Path) -> None:
    """The first few ready rows come from walking an index in row order; a batch of 100,000 ready
    rows is never sorted on a pass of the loop (that took 40 ms a pass, on every pass)."""
    ledger = Ledger(tmp_path / "l.db")
    ready = {"state": RowState.READY, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    store(ledger, "b1", [ready] * 6)
    ledger.update("b1", 3, expect=RowState.READY, next_check=10**12)  # backing off: not due yet
    statements: list[str] = []
    ledger.db.set_trace_callback(statements.append)
    assert [r.row for r in ledger.ready_to_send("b1", 10**11, skip_rows=[2], limit=3)] == [4, 5, 6]
    ledger.db.set_trace_callback(None)
    [asked] = [sql for sql in statements if sql.startswith("SELECT")]
    plan = " ".join(r[3] for r in ledger.db.execute("EXPLAIN QUERY PLAN " + asked))
    assert "rows_ready" in plan and "TEMP B-TREE" not in plan, plan


def test_a_batchs_money_is_summed_from_indexes_without_parsing_a_payout(tmp_path: Path) -> None:
    """status, resume and results group a batch's money by state, currency, amount, fee and amount
    received: from an index of exactly those values, never by reading every row's payout."""
    ledger = Ledger(tmp_path / "l.db")
    paid = {"state": RowState.SUCCEEDED, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    invalid = {"country": "KE", "amount": "abc", "currency": "KES"}
    store(ledger, "b1", [paid, {**paid, "amount": Decimal("250.50")}, invalid, {**paid, "currency": "UGX"}, invalid])
    assert ledger.totals("b1") == [
        (RowState.INVALID, "", 2, Decimal(0)),
        (RowState.SUCCEEDED, "KES", 2, Decimal("350.50")),
        (RowState.SUCCEEDED, "UGX", 1, Decimal(100)),
    ]
    assert sum(group.count for group in ledger.money_groups("b1")) == 3
    statements: list[str] = []
    ledger.db.set_trace_callback(statements.append)
    ledger.totals("b1")
    ledger.money_groups("b1")
    ledger.db.set_trace_callback(None)
    for asked in [sql for sql in statements if sql.startswith("SELECT")]:
        plan = " ".join(r[3] for r in ledger.db.execute("EXPLAIN QUERY PLAN " + asked))
        assert "rows_money" in plan, plan
        assert "SCAN rows" not in plan, plan


def test_a_retry_decodes_only_the_rows_it_may_pay_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning a retry read and decoded every row of the batch (hundreds of MiB at 100,000 rows):
    it now decodes the failed rows only, and of a results file's other rows only those the file
    marks failed (to refuse them by name); a row number the batch has not is still named."""
    from batch_payouts.engine import retry as retry_mod
    from tests.support import sandbox_catalog

    ledger = Ledger(tmp_path / "l.db")
    row = {"currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    store(ledger, "b1", [{**row, "state": RowState.SUCCEEDED}] * 8 + [{**row, "state": RowState.FAILED}] * 2)
    decoded: list[int] = []
    record = Ledger._record
    monkeypatch.setattr(Ledger, "_record", lambda self, r: decoded.append(r["row"]) or record(self, r))
    catalog, now = sandbox_catalog(), time.time() + 3600

    plan = retry_mod.plan_retry(ledger, "b1", catalog, now=now, cooloff=0)
    assert [o.row for o, _ in plan.rows] == [10, 11] and sorted(decoded) == [10, 11]

    decoded.clear()
    selection = [{"row": str(n), "status": "paid"} for n in range(2, 12)]
    selection[0]["status"] = "failed"  # row 2: paid in the ledger, marked failed in the file
    selection.append({"row": "99", "status": "failed"})
    plan = retry_mod.plan_retry(ledger, "b1", catalog, now=now, cooloff=0, selection=selection)
    assert [o.row for o, _ in plan.rows] == [10, 11] and sorted(set(decoded)) == [2, 10, 11]
    assert plan.refused == [
        "row 2: marked failed in the file but succeeded in the ledger; not paid again",
        "a row of the file (99) is not in batch b1",
    ]


def test_sandbox_books_whose_payout_history_was_kept_as_objects_are_read_as_before(tmp_path: Path) -> None:
    """A payout's history is kept as (time, status) pairs (a 100,000-payout rehearsal's books take
    50 MiB less); books written when each entry was a {"at", "status"} object read the same, and
    the sandbox's own ledger view still shows them as objects."""
    books = tmp_path / "l.db.sandbox.json"
    with held(books, speed=1.0) as state:
        books_with_payouts(state, 2)
        history = [list(p.history) for p in state.payouts]
        view = state.ledger()["payouts"]
    assert all(type(entry) is tuple for entries in history for entry in entries)
    [rest] = tmp_path.glob("l.db.sandbox.json.*.rest")
    old = []
    for line in rest.read_text(encoding="utf-8").splitlines():
        kind, *value = json.loads(line)
        if kind == "payout":
            value[0]["history"] = [{"at": e["$tuple"][0], "status": e["$tuple"][1]} for e in value[0]["history"]]
        old.append(json.dumps([kind, *value]))
    rest.write_text("\n".join(old) + "\n", encoding="utf-8")
    with held(books, speed=1.0) as state:
        assert [p.history for p in state.payouts] == history
        assert state.ledger()["payouts"] == view
        assert view[0]["history"][0] == {"at": history[0][0][0], "status": "PENDING"}


def test_a_new_batch_is_decided_against_every_claim_whichever_chunk_its_rows_fall_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new batch's rows are decided against the other batches' claims 500 rows at a time (one
    statement per row took seconds at 100,000 rows). An edited copy of a 1,203-row file, its first
    batch partly paid, partly sending, partly never sent, is decided exactly as row by row."""
    from batch_payouts.engine import plan as planning
    from batch_payouts.sheets.read import read_sheet
    from tests.support import sandbox_catalog

    def payout_file(path: Path, bump_every: int) -> Path:
        lines = ["name,phone,country,amount,currency"]
        for n in range(1203):
            amount = 100 + n % 9 + (1 if bump_every and n % bump_every == 0 else 0)
            lines.append(f"P{n},+2547124{n:05d},KE,{amount},KES")
        path.write_text("\n".join(lines) + "\n")
        return path

    ledger, catalog = Ledger(tmp_path / "l.db"), sandbox_catalog()
    first = read_sheet(payout_file(tmp_path / "first.csv", 0))
    new = planning.prepare_batch(ledger, "b1", first, planning.check_sheet(first, catalog), env_id="e", label="m")
    planning.persist_batch(ledger, new, first, fingerprint="b1", options={}, who="test")
    for number in range(2, 1205, 3):
        ledger.move("b1", number, RowState.SUBMITTING)
        if number % 2:
            ledger.move("b1", number, RowState.SUBMITTED)
            ledger.move("b1", number, RowState.SUCCEEDED)

    edited = read_sheet(payout_file(tmp_path / "edited.csv", 5))
    report = planning.check_sheet(edited, catalog)
    in_chunks = planning.prepare_batch(ledger, "b2", edited, report, env_id="e", label="m")
    chunked = planning._with_holders
    monkeypatch.setattr(planning, "_with_holders", lambda *args: chunked(*args, per=1))
    row_by_row = planning.prepare_batch(ledger, "b2", edited, report, env_id="e", label="m")
    assert in_chunks == row_by_row
    assert len(in_chunks.repeats) == 401 and len(in_chunks.supersede) == 802


def decoding(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The numbers of the ledger rows decoded from here on, in order."""
    decoded: list[int] = []
    record = Ledger._record
    monkeypatch.setattr(Ledger, "_record", lambda self, r: decoded.append(r["row"]) or record(self, r))
    return decoded


def test_the_pdf_summary_reads_only_the_rows_not_paid_that_fit_its_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-page summary of a 100,000-row batch decoded every row (532 MiB): its totals are
    counted by the ledger and only the first rows not paid, as many as the page holds, are read."""
    import pypdf

    ledger = Ledger(tmp_path / "l.db")
    row = {"currency": "KES", "amount": Decimal(100), "fee": Decimal(1), "received": "amount"}
    store(ledger, "b1", [{**row, "state": RowState.SUCCEEDED}] * 50 + [{**row, "state": RowState.FAILED}] * 300)
    decoded = decoding(monkeypatch)
    pdf = results.write_summary_pdf(ledger, "b1", tmp_path / "s.pdf")
    text = pypdf.PdfReader(pdf).pages[0].extract_text()
    assert "Rows not paid: 300" in text and "more rows not paid: see the Problems sheet" in text
    assert 0 < len(decoded) < 40 and min(decoded) == 52  # the first failed rows, none of the paid ones


def test_the_final_outcome_across_retries_is_written_as_its_rows_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`results --final` of a 100,000-row batch held every row's line at once (502 MiB): the lines
    are made as the file is written, the rows read in order, never all at once."""
    ledger = Ledger(tmp_path / "l.db")
    row = {"currency": "KES", "amount": Decimal(100), "fee": Decimal(1), "received": "amount"}
    store(ledger, "b1", [{**row, "state": RowState.SUCCEEDED}, {**row, "state": RowState.FAILED}] * 40)
    lines = results.final_lines(ledger, "b1")
    decoded = decoding(monkeypatch)
    first = next(lines)
    assert first.row == 2 and len(decoded) <= 2, "a line is made as its row is read"
    assert [line.row for line in results.final_lines(ledger, "b1", only=[81, 3])] == [3, 81]


def test_an_amount_too_large_to_pay_is_counted_unreadable_in_the_totals(tmp_path: Path) -> None:
    """An amount of 41 digits is refused; summed into the invalid rows' total it printed it as
    1.000000000000000000001000000E+40 (inexact). It is counted as an amount that cannot be read."""
    from batch_payouts.engine import plan as planning
    from batch_payouts.sheets.read import read_sheet
    from tests.support import sandbox_catalog

    data = tmp_path / "pay.csv"
    data.write_text(
        "name,phone,country,amount,currency\nA,+254712300001,KE,1" + "0" * 40 + ",KES\n"
        "B,+254712300002,KE,1" + "0" * 19 + ",KES\nC,+254712300003,KE,999999999999999,KES\n"
    )
    sheet = read_sheet(data)
    report = planning.check_sheet(sheet, sandbox_catalog())
    ledger = Ledger(tmp_path / "l.db")
    new = planning.prepare_batch(ledger, "b1", sheet, report, env_id="e", label="")
    planning.persist_batch(ledger, new, sheet, fingerprint="b1", options={"mapping": dict(sheet.mapping)}, who="t")
    [kes] = results.batch_totals(ledger, "b1")
    invalid, ready = kes.by_word[Word.INVALID], kes.by_word[Word.NOT_SENT]
    assert (invalid.rows, invalid.amount, kes.unreadable) == (2, Decimal(0), [2, 3])
    assert (ready.rows, ready.amount) == (1, Decimal("999999999999999"))


def test_the_final_outcome_and_the_pdf_summary_read_one_moment_while_a_retry_runs(tmp_path: Path) -> None:
    """Written while a retry runs, their passes over the ledger (totals, table, rows not paid) read
    different moments: a retry row paid in between was paid in the table, waiting in the totals,
    and listed on the Problems sheet as paid. Each file now reads one moment."""
    import openpyxl
    import pypdf

    ledger, run = Ledger(tmp_path / "l.db"), Ledger(tmp_path / "l.db")
    row = {"currency": "KES", "amount": Decimal(100), "fee": Decimal(1), "received": "amount"}
    store(ledger, "b0", [{**row, "state": RowState.SUCCEEDED}] * 2 + [{**row, "state": RowState.FAILED}] * 2)
    originals = [ledger.row("b0", n) for n in (4, 5)]
    retry = [
        NewRow(r.row, RowState.READY, r.payout, r.cells, [], (f"k{r.row}",), origin=("b0", r.row, 2)) for r in originals
    ]
    ledger.create_batch(
        "r1", env_id="e", fingerprint="f", label="", source="s.csv", options={"mapping": MAPPING}, headers=HEADERS,
        rows=retry, parent="b0",
    )  # fmt: skip
    for number in (4, 5):
        ledger.move("r1", number, RowState.SUBMITTING)
        ledger.move("r1", number, RowState.SUBMITTED)
    paying, cover, waiting = iter([4, 5]), results.make_cover, str(Word.WAITING)

    def the_run_pays_a_row_meanwhile(*args: object, **kwargs: object) -> object:
        number = next(paying)
        run.move("r1", number, RowState.SUCCEEDED, fee=Decimal(1), recipient_amount=Decimal(100))
        return cover(*args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(results, "make_cover", the_run_pays_a_row_meanwhile):
        results.write_final_results(ledger, "b0", tmp_path / "final.xlsx")
        results.write_summary_pdf(ledger, "r1", tmp_path / "s.pdf")
    book = openpyxl.load_workbook(tmp_path / "final.xlsx")
    header, *table = book.worksheets[0].iter_rows(values_only=True)
    status = header.index("status")
    assert [r[status] for r in table] == ["paid", "paid", waiting, waiting]  # row 4 paid after the snapshot
    problems = [r for r in book["Problems"].iter_rows(min_row=2, values_only=True) if r[0]]
    assert [(r[0], r[5]) for r in problems] == [(4, waiting), (5, waiting)]
    summary = {(r[1], r[2]): r[3] for r in book["Summary"].iter_rows(min_row=2, values_only=True) if r[0]}
    assert (summary.get(("KES", "paid")), summary.get(("KES", waiting))) == (2, 2), summary
    text = pypdf.PdfReader(tmp_path / "s.pdf").pages[0].extract_text()
    assert "Rows not paid: 1" in text and "more rows not paid" not in text  # row 4 paid before, 5 after


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.one_of(paid_row, invalid_row), st.integers(1, 3)), min_size=1, max_size=8))
def test_the_final_outcome_of_a_batch_never_retried_is_counted_by_the_ledger(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[tuple[dict[str, object], int]]
) -> None:
    """Without a retry, each row's final line is its own: the final workbook's totals and rows not
    paid are asked of the ledger, not made from a pass over every line (a third of its time)."""
    ledger = Ledger(tmp_path_factory.mktemp("t") / "l.db")
    store(ledger, "b1", [row for row, times in kinds for _ in range(times)])
    lines = list(results.final_lines(ledger, "b1"))
    all_totals, unpaid = results._final_totals(ledger, "b1")
    assert repr(all_totals) == repr(totals(lines))
    assert unpaid == [line.row for line in lines if line.word is not Word.PAID]
    ledger.close()


def test_a_row_paid_again_on_purpose_is_not_planned_again_once_an_earlier_attempt_is_paid_after_all(
    tmp_path: Path,
) -> None:
    """An override lets a row be paid although another batch paid its payee: once more, not once
    per attempt. Its first attempt failed, its retry failed, then the provider corrected the first
    attempt to paid: a retry planned a third attempt (the run found the payment and sent nothing,
    but the plan and the total to approve counted it)."""
    from batch_payouts.engine import retry as retry_mod
    from tests.support import sandbox_catalog

    ledger = Ledger(tmp_path / "l.db")
    row = {"currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    store(ledger, "b1", [{**row, "state": RowState.FAILED}])
    ledger.record_override("e", "b1", 2, who="amina", why="bank returned it")
    first = ledger.row("b1", 2)
    again = NewRow(
        2, RowState.READY, first.payout, first.cells, [], tuple(ledger.keys_of("b1", 2)), origin=("b1", 2, 2)
    )
    ledger.create_batch(
        "r1", env_id="e", fingerprint="f", label="", source="s.csv", options={"mapping": MAPPING}, headers=HEADERS,
        rows=[again], parent="b1",
    )  # fmt: skip
    ledger.record_override("e", "r1", 2, who="amina", why="bank returned it (decided for batch b1 row 2)")
    for to in (RowState.SUBMITTING, RowState.SUBMITTED, RowState.FAILED):
        ledger.move("r1", 2, to)
    ledger.move("b1", 2, RowState.SUCCEEDED)  # the provider's correction of the first attempt

    plan = retry_mod.plan_retry(ledger, "b1", sandbox_catalog(), now=time.time() + 3600, cooloff=0)
    assert plan.rows == []
    assert plan.refused == ["row 2: batch b1 row 2 (attempt 1) was paid; not paid again"]


def overridden_failed_row(tmp_path: Path) -> Ledger:
    """A ledger whose batch b1 row 2 was paid again on purpose (an override) and failed; the row
    claims its payee's obligation, as a run leaves it."""
    from batch_payouts.engine.plan import obligation_key

    ledger = Ledger(tmp_path / "l.db")
    row = {"currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    store(ledger, "b1", [{**row, "state": RowState.FAILED}])
    payee = ledger.row("b1", 2).payout
    assert payee is not None
    key = obligation_key("", payee.payee(), "KES", "n:1")
    with ledger.transaction() as db:
        db.execute("INSERT INTO claims VALUES ('e', ?, 'b1', 2)", (key,))
    ledger.record_override("e", "b1", 2, who="amina", why="bank returned it")
    return ledger


def retried(ledger: Ledger, parent: str, settle_as: RowState, selection: list[dict[str, str]] | None = None) -> str:
    """A retry of ``parent`` planned, stored, sent and settled as ``settle_as``; its id."""
    from batch_payouts.engine import retry as retry_mod
    from tests.support import sandbox_catalog

    plan = retry_mod.plan_retry(
        ledger, parent, sandbox_catalog(), now=time.time() + 3600, cooloff=0, selection=selection
    )
    assert plan.rows, plan.refused
    retry_mod.persist_retry(ledger, plan, sandbox_catalog(), HEADERS)
    assert ledger.claim_for_sending(plan.batch_id, 2) is None
    ledger.move(plan.batch_id, 2, RowState.SUBMITTED)
    ledger.move(plan.batch_id, 2, settle_as)
    return plan.batch_id


@pytest.mark.campaign  # a test of the send-time claim's guard (bench/reliability.py, broken builds)
def test_a_row_paid_again_on_purpose_is_paid_once_whichever_retry_is_retried_again(tmp_path: Path) -> None:
    """Its first attempt failed; a retry of it failed; a second retry of the first batch (from the
    failed retry's attempt) paid it. Retrying the failed retry again found no paid attempt (the
    paid one is its sibling, not its ancestor nor its descendant), and the override let the send
    pass the paid sibling's claim: paid twice. Planning refuses it, and sending refuses it too."""
    from batch_payouts.engine import retry as retry_mod
    from tests.support import sandbox_catalog

    ledger = overridden_failed_row(tmp_path)
    r1 = retried(ledger, "b1", RowState.FAILED)
    r2 = retried(ledger, "b1", RowState.SUCCEEDED)
    plan = retry_mod.plan_retry(ledger, r1, sandbox_catalog(), now=time.time() + 3600, cooloff=0)
    assert plan.rows == [] and plan.refused == [f"row 2: batch {r2} row 2 (attempt 3) was paid; not paid again"]

    plan.rows = [(ledger.row(r1, 2), dict(ledger.row(r1, 2).cells))]  # planned anyway (an older version)
    retry_mod.persist_retry(ledger, plan, sandbox_catalog(), HEADERS)
    held_back = ledger.claim_for_sending(plan.batch_id, 2)
    assert held_back is not None and (held_back.batch_id, held_back.row) == (r2, 2)
    assert ledger.row(plan.batch_id, 2).state is RowState.BLOCKED


def test_a_retry_corrected_to_a_payee_already_paid_is_refused_even_under_an_override(tmp_path: Path) -> None:
    """The override was decided for the first payee; a retry whose phone the team corrected to a
    payee another batch paid was planned, and sent past that batch's claim: paid twice."""
    from batch_payouts.engine import retry as retry_mod
    from tests.support import sandbox_catalog

    ledger = overridden_failed_row(tmp_path)
    other = "+254712399999"
    store(
        ledger,
        "x1",
        [{"state": RowState.SUCCEEDED, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}],
    )
    from batch_payouts.engine.plan import obligation_key

    with ledger.transaction() as db:
        db.execute(
            "INSERT INTO claims VALUES ('e', ?, 'x1', 2)", (obligation_key("", f"mobile_money:{other}", "KES", "n:1"),)
        )
    cells = {**ledger.row("b1", 2).cells, "row": "2", "status": "failed", "phone": other}
    plan = retry_mod.plan_retry(ledger, "b1", sandbox_catalog(), now=time.time() + 3600, cooloff=0, selection=[cells])
    assert plan.rows == []
    assert plan.refused == [
        "row 2: the corrected payee is already paid or being paid in batch x1 row 2; not paid again"
    ]

    plan.rows = [(ledger.row("b1", 2), cells)]  # planned anyway (an older version)
    retry_mod.persist_retry(ledger, plan, sandbox_catalog(), HEADERS)
    held_back = ledger.claim_for_sending(plan.batch_id, 2)
    assert held_back is not None and held_back.batch_id == "x1"


def paid_elsewhere(ledger: Ledger, batch_id: str, phone: str) -> None:
    """Another batch that paid the payee of ``phone`` (its claim written as a run writes it)."""
    from batch_payouts.engine.plan import obligation_key

    row = {"state": RowState.SUCCEEDED, "currency": "KES", "amount": Decimal(100), "fee": None, "received": "none"}
    store(ledger, batch_id, [row])
    key = obligation_key("", f"mobile_money:{phone}", "KES", "n:1")
    with ledger.transaction() as db:
        db.execute("INSERT INTO claims VALUES ('e', ?, ?, 2)", (key, batch_id))


def test_paid_twice_is_reported_for_two_attempts_of_one_overridden_row_not_for_the_payment_it_decided(
    tmp_path: Path,
) -> None:
    """PAID TWICE stayed silent on any pair with an overridden row: the override's own decision
    (another batch paid the payee) is still not reported, two paid attempts of the same row are."""
    ledger = overridden_failed_row(tmp_path)
    payee = ledger.row("b1", 2).payout
    assert payee is not None
    paid_elsewhere(ledger, "a1", payee.phone)  # the payment the override was decided against
    r1 = retried(ledger, "b1", RowState.SUCCEEDED)
    assert ledger.paid_twice("b1") == [] and ledger.paid_twice(r1) == []
    ledger.move("b1", 2, RowState.SUCCEEDED)  # the provider: the first attempt was paid after all
    assert [(a.batch_id, b.batch_id) for a, b in ledger.paid_twice("b1")] == [("b1", r1)]
    assert [(a.batch_id, b.batch_id) for a, b in ledger.paid_twice(r1)] == [(r1, "b1")]


def test_a_retry_whose_payee_is_changed_back_to_the_one_the_override_was_for_is_paid(tmp_path: Path) -> None:
    """A retry corrected to another phone failed; its retry, the phone changed back, was refused
    as "the corrected payee is already paid": the very payment the override was decided against."""
    from batch_payouts.engine import retry as retry_mod
    from tests.support import sandbox_catalog

    ledger = overridden_failed_row(tmp_path)
    first = ledger.row("b1", 2)
    assert first.payout is not None
    paid_elsewhere(ledger, "a1", first.payout.phone)
    changed = {**first.cells, "row": "2", "status": "failed", "phone": "+254712388888"}
    r1 = retried(ledger, "b1", RowState.FAILED, selection=[changed])
    back = {**changed, "phone": first.payout.phone}
    plan = retry_mod.plan_retry(ledger, r1, sandbox_catalog(), now=time.time() + 3600, cooloff=0, selection=[back])
    assert [o.row for o, _ in plan.rows] == [2] and plan.refused == []

"""The application layer on its own, as a web console will use it: options as data, no terminal,
no standard input, progress through a callback, a run started from a worker thread, and
failures as structured errors."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest

from batch_payouts import errors
from batch_payouts.app import files, keys, options, payouts, results, status
from batch_payouts.app.files import FileOptions
from batch_payouts.app.keys import KeyOptions
from batch_payouts.app.session import SessionOptions, open_session
from batch_payouts.environment import Environment
from batch_payouts.ratelimit import Window

T = TypeVar("T")
FAST = payouts.RunOptions(
    money_rate=(Window(3000, 60.0), Window(500, 5.0)),
    reads_rate=(Window(2000, 5.0),),
    visibility_lag=0.5,
    poll_interval=0.2,
)


class NoStdin(io.StringIO):
    """Standard input that fails the test if anything reads it."""

    def read(self, size: int | None = -1) -> str:
        raise AssertionError("the application layer read standard input")

    def readline(self, size: int | None = -1) -> str:
        raise AssertionError("the application layer read standard input")


def in_a_worker_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread of its own, as a server's background worker would."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test below
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the run did not finish"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def payout_file(path: Path) -> Path:
    path.write_text(
        "name,phone,country,amount,currency\nAmina Njeri,+254712300001,KE,100,KES\n"
        "Brian Otieno,+254712300002,KE,200,KES\n"
    )
    return path


def pay(
    ledger: Path, data: Path, heard: list[Environment], progress: list[payouts.RunProgress]
) -> payouts.RunOutcome | payouts.AlreadyPaid:
    """The whole journey of a file through the use cases, the confirmation given as data."""
    with open_session(
        SessionOptions(state_path=ledger, sandbox=True, attempt_timeout=2.0), on_environment=heard.append
    ) as session:
        sheet = files.load(data, FileOptions())
        report = files.check(session, sheet, FileOptions())
        planned = payouts.prepare_run(session, data, sheet, report, label="2026-11", pay_again={}, strict=False)
        if isinstance(planned, payouts.AlreadyPaid):
            return planned
        assert payouts.needs_confirmation(planned)
        assert payouts.total_matches("kes 300", planned.plan) and not payouts.total_matches("KES 30", planned.plan)
        payouts.create_batch(session, planned, sheet, who="console: amina")
        result = payouts.run_batch(session, planned.batch_id, FAST, progress=progress.append)
        return payouts.finish(session, planned.batch_id, result, results.default_path(str(data), planned.batch_id))


def test_a_file_is_paid_through_the_use_cases_from_a_worker_thread_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", NoStdin())
    data = payout_file(tmp_path / "pay.csv")
    heard: list[Environment] = []
    progress: list[payouts.RunProgress] = []

    outcome = in_a_worker_thread(lambda: pay(tmp_path / "l.db", data, heard, progress))

    assert isinstance(outcome, payouts.RunOutcome)
    assert outcome.verdict.exit_code == 0 and not outcome.verdict.paid_twice
    assert [(s.status, s.currency, s.rows, s.amount) for s in outcome.status.summary] == [
        ("paid", "KES", 2, Decimal(300))
    ]
    assert outcome.results_path == tmp_path / f"pay.{outcome.batch_id}.results.csv" and outcome.results_path.exists()
    assert [env.kind for env in heard] == ["SANDBOX"], "the environment is told once, when first known"
    assert progress and progress[-1].rows == 2 and progress[-1].settled == 2 and progress[-1].to_send == 0


def test_a_run_nobody_watches_never_counts_its_rows_while_it_pays(tmp_path: Path) -> None:
    """Counting a batch's rows by state reads every row (20 ms at 100,000 rows). A run with no
    progress listener and no events file counts them once before the loop and once after, never
    on its passes."""
    data = payout_file(tmp_path / "pay.csv")
    with open_session(SessionOptions(state_path=tmp_path / "l.db", sandbox=True, attempt_timeout=2.0)) as session:
        sheet = files.load(data, FileOptions())
        report = files.check(session, sheet, FileOptions())
        planned = payouts.prepare_run(session, data, sheet, report, label="", pay_again={}, strict=False)
        assert not isinstance(planned, payouts.AlreadyPaid)
        payouts.create_batch(session, planned, sheet, who="test")
        statements: list[str] = []
        session.ledger.db.set_trace_callback(statements.append)
        result = payouts.run_batch(session, planned.batch_id, FAST, progress=None)
        session.ledger.db.set_trace_callback(None)
    counted = [sql for sql in statements if "COUNT(*)" in sql and "GROUP BY state" in sql]
    assert result.exit_code == 0 and len(counted) <= 3, f"counted {len(counted)} times"


def test_the_same_file_again_is_already_paid_and_overrides_belong_to_a_new_batch(tmp_path: Path) -> None:
    data = payout_file(tmp_path / "pay.csv")
    first = pay(tmp_path / "l.db", data, [], [])
    assert isinstance(first, payouts.RunOutcome)

    again = in_a_worker_thread(lambda: pay(tmp_path / "l.db", data, [], []))

    assert isinstance(again, payouts.AlreadyPaid)
    assert again.batch.id == first.batch_id and again.outcome == {"paid": 2} and again.label == "2026-11"
    with open_session(SessionOptions(state_path=tmp_path / "l.db", sandbox=True)) as session:
        sheet = files.load(data, FileOptions())
        report = files.check(session, sheet, FileOptions())
        with pytest.raises(errors.OverrideOnOldBatch) as refused:
            payouts.prepare_run(
                session, data, sheet, report, label="2026-11", pay_again={2: "bank returned it"}, strict=False
            )
        assert refused.value.batch_id == first.batch_id
        written = payouts.write_finished(session, again, None)
    assert written.path == first.results_path and written.verdict.exit_code == 0


def test_a_batch_read_from_the_ledger_alone_names_its_environment_and_refuses_another(tmp_path: Path) -> None:
    data = payout_file(tmp_path / "pay.csv")
    outcome = pay(tmp_path / "l.db", data, [], [])
    assert isinstance(outcome, payouts.RunOutcome)
    heard: list[Environment] = []

    found = status.status_of(status.Where(tmp_path / "l.db"), outcome.batch_id, on_environment=heard.append)

    assert found.verdict.exit_code == 0 and [e.kind for e in heard] == ["SANDBOX"]
    with pytest.raises(errors.WrongEnvironment):
        status.status_of(status.Where(tmp_path / "l.db", base_url="https://api.example"), outcome.batch_id)
    with pytest.raises(errors.BatchNotFound):
        status.status_of(status.Where(tmp_path / "l.db"), "bnope")
    with pytest.raises(errors.UnsupportedFormat) as unsupported:
        results.write_for(status.Where(tmp_path / "l.db"), outcome.batch_id, tmp_path / "r.txt")
    assert unsupported.value.what == "results file"
    assert [b.batch_id for b in status.recent_batches(status.Where(tmp_path / "l.db"))] == [outcome.batch_id]


def test_text_that_cannot_be_used_is_a_structured_usage_error(tmp_path: Path) -> None:
    with pytest.raises(errors.NotAnAmount) as amount:
        options.amount("lots", "--balance")
    assert (amount.value.text, amount.value.option, str(amount.value)) == (
        "lots",
        "--balance",
        "'lots' is not an amount",
    )
    with pytest.raises(errors.NotHostPort) as where:
        options.host_port("nowhere")
    assert where.value.option == "--listen"
    assert options.host_port(":8787") == ("127.0.0.1", 8787)
    with pytest.raises(errors.UsageProblem) as no_reason:
        options.pay_again_rows("2", None)
    assert not isinstance(no_reason.value, errors.BadValue), "a combination of options, not one value"
    with pytest.raises(errors.BadValue) as not_a_row:
        options.pay_again_rows("two", "why")
    assert not_a_row.value.option == "--pay-again"
    assert options.pay_again_rows("4,7", " bank returned it ") == {4: "bank returned it", 7: "bank returned it"}
    with pytest.raises(errors.ConfigError):
        options.money_rate("fast")

    data = payout_file(tmp_path / "pay.csv")
    with pytest.raises(errors.ResultsPathRefused) as same:
        results.check_path(data, data)
    assert same.value.cause == "is the input" and same.value.option == "--results"
    with pytest.raises(errors.ResultsPathRefused) as nowhere:
        results.check_path(tmp_path / "nowhere" / "r.csv")
    assert nowhere.value.cause == "no folder"


def test_the_key_comes_from_the_front_ends_question_never_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", NoStdin())
    monkeypatch.setattr(keys, "_from_keyring", lambda: None)
    warned: list[str] = []
    assert keys.resolve_key(KeyOptions(given="typed-out"), warn=warned.append).reveal() == "typed-out"
    assert warned == [keys.EXPOSED_KEY]
    assert keys.resolve_key(KeyOptions(), environ={"KOTANI_API_KEY": "from-env"}).reveal() == "from-env"
    assert keys.resolve_key(KeyOptions(), ask=lambda: "asked", environ={}).reveal() == "asked"
    with pytest.raises(errors.ConfigError):
        keys.resolve_key(KeyOptions(), environ={})
    assert keys.webhook_secrets({"KOTANI_WEBHOOK_SECRET": "a,,b"}) == ("a", "b")


def test_row_work_pauses_the_cycle_collector_and_resumes_it_even_after_an_error() -> None:
    import gc

    from batch_payouts.app.bulk import no_cycle_collection, row_work

    seen: list[bool] = []

    @row_work
    def work(fail: bool) -> None:
        seen.append(gc.isenabled())
        with no_cycle_collection():  # nested: still paused after the inner block
            pass
        seen.append(gc.isenabled())
        if fail:
            raise ValueError("boom")

    assert gc.isenabled()
    work(False)
    with pytest.raises(ValueError, match="boom"):
        work(True)
    assert seen == [False, False, False, False] and gc.isenabled()


def test_a_one_file_command_freezes_what_it_built_and_resumes_the_collector() -> None:
    import gc

    from batch_payouts.app.bulk import one_file_command

    before = gc.get_freeze_count()
    try:
        with one_file_command():
            assert not gc.isenabled()
            built = [[i] for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(built)
    finally:
        gc.unfreeze()


def test_a_file_run_again_reads_only_the_rows_a_guardrail_may_now_hold_or_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running a file again brings its batch under this run's guardrails. It decoded every row
    never sent (644 MiB at 100,000 rows left to send): it now reads only the rows held now or
    held before, and decides the same."""
    from batch_payouts.ledger import Ledger
    from batch_payouts.policy import Policy

    rows = "".join(f"P{n},+2547123{n:05d},KE,{100 + n},KES\n" for n in range(40))
    data = tmp_path / "pay.csv"
    data.write_text("name,phone,country,amount,currency\n" + rows + "P0,+254712300000,KE,100,KES\n")  # row 42: twice
    allowing = FileOptions(policy=Policy().with_overrides(allow_duplicates=True))
    with open_session(SessionOptions(state_path=tmp_path / "l.db", sandbox=True)) as session:
        sheet = files.load(data, allowing)
        planned = payouts.prepare_run(
            session, data, sheet, files.check(session, sheet, allowing), label="", pay_again={}, strict=False
        )
        assert not isinstance(planned, payouts.AlreadyPaid)
        payouts.create_batch(session, planned, sheet, who="test")
        decoded: list[int] = []
        record = Ledger._record
        monkeypatch.setattr(Ledger, "_record", lambda self, r: decoded.append(r["row"]) or record(self, r))

        holding = files.check(session, sheet, FileOptions())
        assert payouts.guard_continued(session, planned.batch_id, holding) == ([42], [])
        assert set(decoded) == {42}  # (and once more as it moves)
        decoded.clear()
        assert payouts.guard_continued(session, planned.batch_id, files.check(session, sheet, allowing)) == ([], [42])
        assert set(decoded) == {42}  # (and once more, to record its acceptance)

"""One payment per payee, across every batch, retry, edited file, environment and account.

Each numbered case is a journey a finance team makes that once paid someone twice or reported a
payment that never happened. Every figure is read from the sandboxes' own books.
"""

from __future__ import annotations

import csv
import errno
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.environment import environment
from batch_payouts.ledger import MIGRATIONS, Ledger
from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState, serve_in_thread
from tests.support import FAST, results_file

KEY = "truth-key-5b1"
HEADER = "name,phone,country,amount,currency"


def cli(*args: str, key: str = KEY) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"KOTANI_API_KEY": key}, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def sandbox(key: str = KEY, **kw: object) -> SandboxState:
    return SandboxState(api_key=key, clock=SandboxClock(speed=20), **kw)  # type: ignore[arg-type]


def write(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def paid(state: SandboxState) -> Counter[str]:
    """Payee -> payouts that are not definitively failed at the sandbox."""
    return Counter(
        p["payee"]
        for p in state.ledger()["payouts"]
        if p["status"] not in ("FAILED", "CANCELLED", "DECLINED", "EXPIRED", "REVERSED")
    )


def posts(state: SandboxState) -> Counter[str]:
    return Counter(p["payee"] for p in state.ledger()["payouts"])


def batch_of(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("batch "))


PEOPLE = (
    "Amina Njeri,+254712300001,KE,100,KES",
    "Brian Otieno,+254712300002,KE,200,KES",
    "Carol Wanjiku,+254712300003,KE,300,KES",
    "David Kamau,+254712300004,KE,400,KES",
)


# -- 1. a sandbox rehearsal, then the same file for real ---------------------------------------


def test_1_a_sandbox_rehearsal_does_not_stand_in_for_the_real_run(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE)
    where = ["--state", str(tmp_path / "l.db")]
    code, out = cli("run", str(data), "--sandbox", *where, *FAST)
    assert code == 0, out
    rehearsal = batch_of(out)
    assert out.startswith("SANDBOX · built-in sandbox · account ")
    live = sandbox()
    with serve_in_thread(live) as sb:
        code, out = cli("run", str(data), "--base-url", sb.base_url, *where, *FAST)
        assert code == 0, out
        assert batch_of(out) != rehearsal
        assert sorted(paid(live).values()) == [1, 1, 1, 1]
        code, out = cli("resume", rehearsal, "--base-url", sb.base_url, *where, *FAST)
    assert code == 2
    assert f"error: batch {rehearsal} belongs to SANDBOX · built-in sandbox" in " ".join(out.split())
    assert f"but this command is using LIVE · 127.0.0.1:{sb.base_url.rsplit(':', 1)[1]}" in " ".join(out.split())


def test_1_the_built_in_sandbox_keeps_its_books_between_commands(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE)
    where = ["--state", str(tmp_path / "l.db")]
    code, out = cli("run", str(data), "--sandbox", *where, *FAST)
    batch = batch_of(out)
    code, out = cli("reconcile", batch, "--sandbox", *where)
    assert code == 0, out
    assert "4 rows agree with the provider" in out


# -- 2. interrupted, one name fixed, run again, then the first batch resumed --------------------


def test_2_an_edited_file_run_again_takes_over_the_unsent_rows_of_the_first_run(tmp_path: Path) -> None:
    state = sandbox()
    first = write(tmp_path / "pay.csv", *PEOPLE)
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        # Two payouts a minute and a one-second wait: the run stops with rows not yet sent.
        code, out = cli("run", str(first), *where, *FAST, "--rate", "2/60", "--wait-timeout", "1")
        b1 = batch_of(out)
        sent_first = sum(posts(state).values())
        assert 0 < sent_first < 4, out
        fixed = tmp_path / "pay.xlsx"  # a name fixed, rows reordered, saved as a workbook
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(HEADER.split(","))
        for line in reversed(PEOPLE):
            ws.append(line.replace("Brian Otieno", "Brian Otieno Ouma").split(","))
        wb.save(fixed)
        code, out = cli("run", str(fixed), *where, *FAST)
        assert code == 3, out  # the rows already paid by the first run are not paid again
        assert f"this run takes over the rows never sent of batch {b1}" in out
        code, out = cli("resume", b1, *where, *FAST)
        assert f"batch {b1} was replaced by batch " in out
    assert sorted(paid(state).values()) == [1, 1, 1, 1]


# -- 3. a corrected failed row retried, then the corrected master file run again ---------------


def test_3_a_retried_correction_is_not_paid_again_by_the_corrected_master_file(tmp_path: Path) -> None:
    state = sandbox()
    master = write(tmp_path / "pay.csv", "Amina Njeri,+254700000011,KE,100,KES", PEOPLE[1])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        assert cli("run", str(master), *where, *FAST)[0] == 3  # ...0011 fails at the sandbox
        corrected = correct(results_file(tmp_path, "pay"), tmp_path / "fix.csv", "+254700000011", "+254712999001")
        code, out = cli("retry", str(corrected), "--cooloff", "0", *where, *FAST)
        assert code == 0, out
        write(master, "Amina Njeri,+254712999001,KE,100,KES", PEOPLE[1])
        code, out = cli("run", str(master), *where, *FAST)
    assert "not paid (repeat): 2 rows (2, 3)" in out
    assert paid(state) == Counter({"+254712999001": 1, "+254712300002": 1})


@pytest.mark.campaign  # the send-time claim's guard test (bench/reliability.py, broken builds)
def test_only_the_claim_at_the_moment_of_sending_stops_a_resumed_batch(tmp_path: Path) -> None:
    """A payee's payment fails; an edited copy of the file is run and stopped before it sends anything
    (its row for that payee is rightly ready: the earlier attempt failed); the original is retried and
    pays; then the stopped batch is resumed. Nothing at batch creation can see the retry's payment:
    only the claim taken in the same transaction that marks a row sending stops the second one."""
    state = sandbox()
    amina = "+254712300001"
    state.knobs.scripts = {amina: [(0.5, "FAILED")]}
    master = write(tmp_path / "pay.csv", *PEOPLE[:2])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(master), *where, *FAST)
        assert code == 3, out
        original = batch_of(out)
        state.knobs.scripts = {}
        edited = write(tmp_path / "edited.csv", PEOPLE[0].replace("Amina Njeri", "Amina W. Njeri"), PEOPLE[1])
        code, out = cli("run", str(edited), *where, *FAST, "--wait-timeout", "0")
        stopped = batch_of(out)
        assert Ledger(tmp_path / "l.db").row(stopped, 2).state.value == "ready", out
        code, out = cli("retry", original, "--cooloff", "0", *where, *FAST)
        assert code == 0, out
        retried = batch_of(out)
        assert paid(state)[amina] == 1
        code, out = cli("resume", stopped, *where, *FAST)
        row = Ledger(tmp_path / "l.db").row(stopped, 2)
    assert paid(state)[amina] == 1, out
    assert code == 3 and "│ not paid (repeat) │ KES      │ 2    │ 300    │" in out
    assert row.state.value == "blocked"
    assert row.error == f"not sent: batch {retried} row 2 already pays this payee (succeeded)"


def correct(results: Path, out: Path, old: str, new: str) -> Path:
    rows = list(csv.DictReader(results.read_text(encoding="utf-8-sig").splitlines()))
    for r in rows:
        if r["phone"] == old:
            r["phone"] = new
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


# -- 4. the original batch and its retry both retried with the same correction ------------------


def test_4_an_original_and_its_retry_retried_alike_pay_once(tmp_path: Path) -> None:
    state = sandbox()
    master = write(tmp_path / "pay.csv", "Amina Njeri,+254700000011,KE,100,KES")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(master), *where, *FAST)
        original = batch_of(out)
        first = correct(results_file(tmp_path, "pay"), tmp_path / "a.csv", "+254700000011", "+254700000012")
        code, out = cli("retry", str(first), "--cooloff", "0", *where, *FAST)
        assert code == 3, out  # ...0012 fails too
        retry_batch = batch_of(out)
        second = correct(results_file(tmp_path, "pay"), tmp_path / "b.csv", "+254700000011", "+254712999002")
        assert cli("retry", str(second), "--cooloff", "0", *where, *FAST)[0] == 0
        code, out = cli("retry", retry_batch, "--cooloff", "0", *where, *FAST)
        assert "is already paying this payee" in out or "already paid this payee" in out, out
        for batch in (original, retry_batch):
            assert cli("reconcile", batch, *where)[0] == 0
    assert paid(state)["+254712999002"] == 1


def test_4_paid_twice_is_seen_from_any_batch_of_the_obligation(tmp_path: Path) -> None:
    state = sandbox()
    master = write(tmp_path / "pay.csv", "Amina Njeri,+254712000111,KE,100,KES")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        state.knobs.scripts = {"+254712000111": [(0.5, "CANCELLED"), (400, "SUCCESSFUL")]}
        code, out = cli("run", str(master), *where, *FAST)
        original = batch_of(out)
        state.knobs.scripts = {}
        assert cli("retry", original, "--cooloff", "0", *where, *FAST)[0] == 0
        state.clock.advance(500)  # the provider turns the cancelled first attempt into a payment
        code, out = cli("reconcile", original, *where)
        assert code == 5 and "PAID TWICE: row 2 of batch" in out
        code, out = cli("status", original, "--state", str(tmp_path / "l.db"))
    assert code == 5 and "PAID TWICE" in out


def test_4_reconcile_reads_another_batchs_payment_still_in_flight_to_see_paid_twice(tmp_path: Path) -> None:
    """Found by the batch graph's long profile: a payee's payment fails (and the provider will turn
    it into a payment much later); an edited copy pays the payee again and is stopped while that
    payout is in flight; the provider pays it, then corrects the first. Reconciling the first batch
    must read the second batch's payout too, or it cannot know the payee was paid twice."""
    state = sandbox()
    amina = "+254712300001"
    master = write(tmp_path / "pay.csv", PEOPLE[0])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        state.knobs.scripts = {amina: [(0.5, "CANCELLED"), (400, "SUCCESSFUL")]}
        code, out = cli("run", str(master), *where, *FAST)
        assert code == 3, out
        original = batch_of(out)
        state.knobs.scripts = {amina: [(300, "SUCCESSFUL")]}
        edited = write(tmp_path / "edited.csv", PEOPLE[0].replace("Amina Njeri", "Amina W. Njeri"))
        code, out = cli("run", str(edited), *where, *FAST, "--wait-timeout", "1")
        assert code == 4, out  # stopped with the payout in flight
        state.clock.advance(500)  # the provider pays the second, then corrects the first to paid
        code, out = cli("reconcile", original, *where)
    assert paid(state)[amina] == 2
    assert code == 5 and "PAID TWICE: row 2 of batch" in out, out


# -- 5. an amount edited in a paid file ---------------------------------------------------------


def test_5_an_edited_amount_is_refused_naming_the_earlier_payment(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", *PEOPLE[:2])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(data), *where, *FAST)
        first = batch_of(out)
        write(data, PEOPLE[0].replace(",100,", ",150,"), PEOPLE[1])
        code, out = cli("run", str(data), *where, *FAST)
    assert code == 3
    assert (
        f"refused: row 2: this payee was already paid KES 100 in batch {first} row 2 (no --label); the file "
        "now says KES 150. An edited amount is never paid on top: to pay more, use a new --label"
    ) in " ".join(out.split())
    assert sorted(posts(state).values()) == [1, 1]


# -- 6. the customers cache belongs to one environment -----------------------------------------


def test_6_a_rehearsal_leaves_no_customer_keys_for_the_real_run(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE)
    where = ["--state", str(tmp_path / "l.db")]
    assert cli("run", str(data), "--sandbox", *where, *FAST)[0] == 0
    live = sandbox(seed_value=3)
    with serve_in_thread(live) as sb:
        code, out = cli("run", str(data), "--base-url", sb.base_url, *where, *FAST)
    assert code == 0, out
    assert sorted(paid(live).values()) == [1, 1, 1, 1]


def test_6_two_accounts_with_colliding_customer_keys_pay_each_their_own_payee(tmp_path: Path) -> None:
    # The same seed makes both sandboxes hand out the same customer keys to different people.
    one, two = sandbox("acct-one", seed_value=9), sandbox("acct-two", seed_value=9)
    a = write(tmp_path / "a.csv", PEOPLE[0])
    b = write(tmp_path / "b.csv", PEOPLE[1])
    with serve_in_thread(one) as s1, serve_in_thread(two) as s2:
        assert (
            cli("run", str(a), "--base-url", s1.base_url, "--state", str(tmp_path / "l.db"), *FAST, key="acct-one")[0]
            == 0
        )
        assert (
            cli("run", str(b), "--base-url", s2.base_url, "--state", str(tmp_path / "l.db"), *FAST, key="acct-two")[0]
            == 0
        )
    assert paid(one) == Counter({"+254712300001": 1})
    assert paid(two) == Counter({"+254712300002": 1})


def test_6_a_cached_customer_the_provider_no_longer_knows_is_looked_up_again(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", PEOPLE[0])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        assert cli("run", str(data), *where, *FAST)[0] == 0
        state.customers.clear()  # the provider forgot the customer
        code, out = cli("run", str(data), *where, *FAST, "--label", "december")
    assert code == 0, out
    assert paid(state) == Counter({"+254712300001": 2})


def test_6_the_same_key_at_two_hosts_or_two_keys_at_one_host_are_two_environments() -> None:
    a = environment("https://api.example.test", "665f0a11b7e4d90012ab0001")
    assert a == environment("HTTPS://api.example.test:443/", "665f0a11b7e4d90012ab0001")
    assert a.id != environment("https://api.example.test", "665f0a11b7e4d90012ab0002").id
    assert a.id != environment("https://other.example.test", "665f0a11b7e4d90012ab0001").id


# -- 7. the repeat guard across environments; no blanket way out --------------------------------


def test_7_sandbox_payments_do_not_block_the_real_run_and_allow_repeat_is_gone(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE[:2])
    where = ["--state", str(tmp_path / "l.db")]
    assert cli("run", str(data), "--sandbox", *where, *FAST)[0] == 0
    live = sandbox()
    with serve_in_thread(live) as sb:
        code, out = cli("run", str(data), "--base-url", sb.base_url, *where, *FAST)
        assert code == 0 and "repeat" not in out, out
        code, out = cli("run", str(data), "--base-url", sb.base_url, *where, *FAST, "--allow-repeat")
    assert code == 2
    assert "--allow-repeat is gone: it let every repeat through" in out


def test_7_one_row_is_paid_again_only_by_a_recorded_override(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", *PEOPLE[:2])
    copy = tmp_path / "copy.csv"
    copy.write_text(f"{HEADER},note\n{PEOPLE[0]},again\n{PEOPLE[1]},again\n")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        assert cli("run", str(data), *where, *FAST)[0] == 0
        code, out = cli("run", str(copy), *where, *FAST, "--pay-again", "2")
        assert code == 2 and "--pay-again needs --reason TEXT" in out
        code, out = cli("run", str(copy), *where, *FAST, "--pay-again", "2", "--reason", "bank returned it")
        assert code == 3, out  # row 3 stays a repeat
        second = batch_of(out)
        code, out = cli("status", second, "--state", str(tmp_path / "l.db"))
    assert code == 3 and "PAID TWICE" not in out
    assert paid(state) == Counter({"+254712300001": 2, "+254712300002": 1})
    (override,) = Ledger(tmp_path / "l.db").overrides(second)
    assert override["row"] == 2 and override["why"] == "bank returned it" and override["who"]


def test_7_an_override_that_failed_is_carried_to_its_retry(tmp_path: Path) -> None:
    state = sandbox()
    amina = "+254712300001"
    data = write(tmp_path / "pay.csv", PEOPLE[0])
    copy = tmp_path / "copy.csv"
    copy.write_text(f"{HEADER},note\n{PEOPLE[0]},again\n")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        assert cli("run", str(data), *where, *FAST)[0] == 0
        state.knobs.scripts = {amina: [(0.5, "FAILED")]}
        code, out = cli("run", str(copy), *where, *FAST, "--pay-again", "2", "--reason", "bank returned it")
        assert code == 3, out  # the payment decided again failed at the provider
        second = batch_of(out)
        state.knobs.scripts = {}
        code, out = cli("retry", second, "--cooloff", "0", *where, *FAST)
        assert code == 0, out
        retried = batch_of(out)
    assert paid(state)[amina] == 2
    (carried,) = Ledger(tmp_path / "l.db").overrides(retried)
    assert carried["row"] == 2 and carried["why"] == f"bank returned it (decided for batch {second} row 2)"


# -- 8. status of a batch the ledger does not hold ----------------------------------------------


def test_8_status_of_an_unknown_batch_says_so_and_exits_1(tmp_path: Path) -> None:
    code, out = cli("status", "bnope", "--state", str(tmp_path / "l.db"))
    assert code == 1
    assert out.strip() == "error: no batch 'bnope' in the ledger; 'batch-payouts status' lists the recent batches"


# -- what must still work ---------------------------------------------------------------------


def test_a_template_path_that_cannot_be_written_is_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("a file, not a folder")
    for name in ("t.xlsx", "t.csv"):
        target = tmp_path / "f" / name
        code, out = cli("template", str(target))
        assert (code, out) == (1, f"error: cannot write there ({target}): part of that path is a file, not a folder\n")


def test_a_full_disk_while_writing_results_is_a_sentence_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE[:2])
    where = ["--state", str(tmp_path / "l.db")]
    code, out = cli("run", str(data), "--sandbox", *where, *FAST, "--results", str(tmp_path / "first.csv"))
    assert code == 0, out
    batch = batch_of(out)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("batch_payouts.sheets.write.os.fsync", disk_full)
    for name in ("out.csv", "out.xlsx"):
        target = tmp_path / name
        code, out = cli("results", batch, "-o", str(target), *where)
        assert code == 1
        assert out.splitlines()[-1] == (
            f"error: the disk is full ({target}); what was recorded before is safe. "
            "Free some space, then run the same command again"
        )
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))) == []


def test_a_full_disk_during_a_run_stops_it_with_a_sentence_and_resume_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", *PEOPLE)
    real_update = Ledger._update
    writes = {"left": 12}

    def filling(self: Ledger, *args: Any, **kw: Any) -> None:
        writes["left"] -= 1
        if writes["left"] < 0:
            raise sqlite3.OperationalError("database or disk is full")
        real_update(self, *args, **kw)

    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        monkeypatch.setattr(Ledger, "_update", filling)
        code, out = cli("run", str(data), *where, *FAST)
        assert code == 1, out
        assert out.splitlines()[-1] == (
            "error: the disk is full; what was recorded before is safe. "
            "Free some space, then run the same command again"
        )
        monkeypatch.setattr(Ledger, "_update", real_update)
        batch = next(b.id for b in Ledger(tmp_path / "l.db").batches())
        code, out = cli("resume", batch, *where, *FAST)
        assert code == 0, out
    assert sorted(paid(state).values()) == [1, 1, 1, 1]


def test_next_month_with_a_new_label_pays_everyone_again(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", *PEOPLE)
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        assert cli("run", str(data), *where, *FAST, "--label", "2026-11")[0] == 0
        assert cli("run", str(data), *where, *FAST, "--label", "2026-12")[0] == 0
    assert sorted(paid(state).values()) == [2, 2, 2, 2]


def test_the_same_person_twice_in_one_file_is_paid_twice_when_the_file_says_so(tmp_path: Path) -> None:
    state = sandbox()
    amounts = write(tmp_path / "a.csv", "Amina,+254712300001,KE,100,KES", "Amina,+254712300001,KE,250,KES")
    refs = tmp_path / "r.csv"
    refs.write_text(
        "name,phone,country,amount,currency,reference\nBo,+254712300002,KE,100,KES,NOV-1\n"
        "Bo,+254712300002,KE,100,KES,NOV-2\n"
    )
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        assert cli("run", str(amounts), *where, *FAST)[0] == 0
        code, out = cli("run", str(refs), *where, *FAST, "--label", "refs")
        assert code == 0, out
        # Run again unchanged: nothing more is paid, and the tool says what happened.
        code, out = cli("run", str(amounts), *where, *FAST)
    assert paid(state) == Counter({"+254712300001": 2, "+254712300002": 2})
    assert "this file was already paid as batch " in out and "nothing more is sent" in out


def test_a_finished_file_run_again_says_so_in_one_sentence(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", *PEOPLE[:2])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(data), *where, *FAST)
        batch = batch_of(out)
        code, out = cli("run", str(data), *where, *FAST)
    assert code == 0
    assert f"this file was already paid as batch {batch} on " in out
    assert "(2 paid); nothing more is sent. To pay it again as a new disbursement, run it with a --label" in out


def test_results_never_overwrite_the_input_or_another_batchs_file(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE[:1])
    where = ["--sandbox", "--state", str(tmp_path / "l.db")]
    code, out = cli("run", str(data), *where, *FAST, "--results", str(data))
    assert code == 2 and "is the input file; choose another name for the results" in out
    code, out = cli("run", str(data), *where, *FAST, "--results", str(tmp_path / "nowhere" / "r.csv"))
    assert code == 2 and "the folder" in out and "does not exist" in out
    assert cli("run", str(data), *where, *FAST, "--label", "a")[0] == 0
    assert cli("run", str(data), *where, *FAST, "--label", "b")[0] == 0
    assert len(list(tmp_path.glob("pay.b*.results.csv"))) == 2


def test_malformed_options_are_sentences(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE[:1])
    where = ["--sandbox", "--state", str(tmp_path / "l.db"), "--yes", "--quiet"]
    code, out = cli("run", str(data), *where, "--rate", "fast")
    assert code == 2 and "error: 'fast' is not a rate: write limit/seconds pairs, e.g. 60/60,20/5" in out
    code, out = cli("run", str(data), *where, "--reads-rate", "10/0")
    assert code == 2 and "is not a rate" in out
    code, out = cli("run", str(data), *where, "--listen", "nowhere")
    assert code == 2 and "'nowhere': expected HOST:PORT" in out
    code, out = cli("sandbox", "--balance", "KES=lots")
    assert code == 2 and "'lots' is not an amount" in out


def test_a_ledger_that_is_a_folder_or_damaged_is_a_sentence(tmp_path: Path) -> None:
    code, out = cli("status", "--state", str(tmp_path))
    assert code == 1 and f"error: the ledger path {tmp_path} is a folder" in out
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database at all" * 100)
    code, out = cli("status", "--state", str(bad))
    assert code == 1 and "cannot be read" in out and "Traceback" not in out


def test_a_ledger_written_by_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    """An older version would write claims without the upkeep a newer one relies on (the shared
    claims of migration 7): it refuses the ledger instead, and changes nothing."""
    path = tmp_path / "l.db"
    Ledger(path).db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    before = list(sqlite3.connect(path).iterdump())
    code, out = cli("status", "--state", str(path))
    assert code == 1 and out.strip() == (
        f"error: the ledger at {path} was written by a newer version of batch-payouts (ledger version "
        f"{len(MIGRATIONS) + 1}; this version knows {len(MIGRATIONS)}). Nothing was changed. "
        "Use the newer version with this ledger"
    )
    after = sqlite3.connect(path)
    assert (
        list(after.iterdump()) == before and after.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    )


# -- 9. webhook-only runs: a confirming read that comes too early is read again ----------------


def test_9_a_confirming_read_that_answers_404_is_read_again_within_the_visibility_lag(tmp_path: Path) -> None:
    import anyio

    from batch_payouts.engine import settle, submit
    from batch_payouts.engine.submit import Context, Settings
    from batch_payouts.kotani.client import ApiKey, KotaniClient
    from batch_payouts.ledger import NewRow
    from batch_payouts.model import MobileMoneyPayout, RowState
    from batch_payouts.ratelimit import Limiter, Window

    clock = SandboxClock(speed=0.0)
    state = SandboxState(api_key=KEY, clock=clock, knobs=Knobs(visibility_delay=30))
    ledger = Ledger(tmp_path / "l.db", clock=lambda: 1000.0 + clock.now())
    payout = MobileMoneyPayout(
        row=2, name="A", amount=Decimal(100), currency="KES", country="KE", phone="+254712345678"
    )
    ledger.create_batch(
        "bW",
        env_id="e",
        fingerprint="f",
        label="",
        source="s",
        options={},
        headers=[],
        rows=[NewRow(2, RowState.READY, payout, {}, [], ("k",))],
    )

    async def go(url: str) -> None:
        async with KotaniClient(url, ApiKey(KEY)) as client:
            fast = Limiter((Window(1000, 1.0),), margin=0, klass="money")
            ctx = Context(
                ledger, client, fast, fast, Settings(poll=False, poll_interval=1.0), env_id="e", clock=ledger.clock
            )
            await submit.discover_wallets(ctx)
            await submit.pay(ctx, ledger.row("bW", 2))
            assert ledger.row("bW", 2).state is RowState.SUBMITTED
            ledger.update("bW", 2, confirm=1, next_check=ctx.clock())  # a callback asked for a read
            await settle.poll_row(ctx, ledger.row("bW", 2))  # too early: the payout is not visible yet
            row = ledger.row("bW", 2)
            assert row.state is RowState.SUBMITTED and row.confirm and row.next_check > ctx.clock()
            clock.advance(31)
            (due,) = ledger.due_checks("bW", ctx.clock(), poll=False)
            await settle.poll_row(ctx, due)

    with serve_in_thread(state, deliver_webhooks=False) as sb:
        anyio.run(go, sb.base_url)
    assert ledger.row("bW", 2).state is RowState.SUCCEEDED


# -- SIGTERM is Ctrl-C: resumable, and it says how many payouts had left ------------------------


@pytest.mark.slow  # a real process and a real signal
def test_sigterm_stops_a_run_resumably_and_counts_what_had_left(tmp_path: Path) -> None:
    import signal
    import time

    from tests.support import SandboxProcess, start_tool, tool_env

    data = write(tmp_path / "pay.csv", *PEOPLE)
    log = tmp_path / "run.log"
    with SandboxProcess(KEY, speed=20) as sb:
        env = tool_env(KEY, sb.url, BATCH_PAYOUTS_STATE=str(tmp_path / "l.db"))
        proc = start_tool(["run", str(data), "--yes", "--quiet", "--rate", "1/60", "--poll-interval", "0.2"], env, log)
        deadline = time.monotonic() + 60
        while not sb.ledger()["payouts"] and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 130
        text = log.read_text()
        assert "interrupted; 1 payout of batch b" in text and "had already left and are recorded" in text
        batch = text.split("Continue with: batch-payouts resume ")[1].split()[0]
        code, out = cli("resume", batch, "--base-url", sb.url, "--state", str(tmp_path / "l.db"), *FAST)
        assert code == 0, out
        assert sorted(Counter(p["payee"] for p in sb.ledger()["payouts"]).values()) == [1, 1, 1, 1]


# -- confirmation of payee through the command line ---------------------------------------------


def test_a_name_that_differs_is_held_until_accepted_and_the_check_can_be_switched_off(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", "Amina Njeri,+254700000030,KE,100,KES", PEOPLE[1])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(data), *where, *FAST)
        batch = batch_of(out)
        assert code == 3, out
        assert paid(state) == Counter({"+254712300002": 1})
        code, out = cli("resume", batch, *where, *FAST, "--accept-name", "3")
        assert code == 2 and "only held rows can be accepted" in out
        code, out = cli("resume", batch, *where, *FAST, "--accept-name", "2")
        assert code == 0, out
        assert f"accepted: row 2 of batch {batch} will be paid; your acceptance is recorded" in out
        other = write(tmp_path / "other.csv", "Amina Njeri,+254700000030,KE,100,KES")
        code, out = cli("run", str(other), *where, *FAST, "--label", "dec", "--no-name-check")
    assert code == 0, out
    assert paid(state) == Counter({"+254712300002": 1, "+254700000030": 2})


def test_results_final_and_the_pdf_summary_from_the_command_line(tmp_path: Path) -> None:
    state = sandbox()
    master = write(tmp_path / "pay.csv", "Amina Njeri,+254700000011,KE,100,KES", PEOPLE[1])
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(master), *where, *FAST)
        original = batch_of(out)
        corrected = correct(results_file(tmp_path, "pay"), tmp_path / "fix.csv", "+254700000011", "+254712999001")
        assert cli("retry", str(corrected), "--cooloff", "0", *where, *FAST)[0] == 0
    final = tmp_path / "final.csv"
    code, out = cli("results", original, "-o", str(final), "--final", "--state", str(tmp_path / "l.db"))
    assert code == 0, out
    rows = list(csv.DictReader(final.read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"paid"}
    pdf = tmp_path / "summary.pdf"
    code, out = cli("results", original, "-o", str(pdf), "--state", str(tmp_path / "l.db"))
    assert code == 0 and pdf.read_bytes().startswith(b"%PDF")


def test_a_delimiter_that_is_not_one_is_a_sentence(tmp_path: Path) -> None:
    data = write(tmp_path / "pay.csv", *PEOPLE[:1])
    code, out = cli("validate", str(data), "--sandbox", "--state", str(tmp_path / "l.db"), "--delimiter", "xx")
    assert code == 2 and "'xx' is not a delimiter: use ',', ';', '|' or 'tab'" in out and "Traceback" not in out
    code, out = cli("validate", str(data), "--sandbox", "--state", str(tmp_path / "l.db"), "--delimiter", ",")
    assert code == 0, out


def test_4_reconcile_of_the_later_batch_finds_an_earlier_batchs_failure_turned_payment(tmp_path: Path) -> None:
    state = sandbox()
    data = write(tmp_path / "pay.csv", "Amina Njeri,+254712000131,KE,100,KES")
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        state.knobs.scripts = {"+254712000131": [(0.5, "CANCELLED"), (50_000, "SUCCESSFUL")]}
        assert cli("run", str(data), *where, *FAST)[0] == 3
        state.knobs.scripts = {}
        write(data, "Amina Njeri Wambui,+254712000131,KE,100,KES")  # a name fixed, the file run again
        code, out = cli("run", str(data), *where, *FAST)
        assert code == 0, out
        later = batch_of(out)
        state.clock.advance(100_000)  # the provider turns the cancelled payout into a payment
        code, out = cli("reconcile", later, *where)
    assert code == 5 and "PAID TWICE" in out


def test_2_a_row_left_out_of_the_newer_file_is_not_lost(tmp_path: Path) -> None:
    state = sandbox()
    first = write(tmp_path / "pay.csv", *PEOPLE)
    with serve_in_thread(state) as sb:
        where = ["--base-url", sb.base_url, "--state", str(tmp_path / "l.db")]
        code, out = cli("run", str(first), *where, *FAST, "--wait-timeout", "0")
        b1 = batch_of(out)
        assert sum(posts(state).values()) == 0, out
        newer = tmp_path / "pay.xlsx"  # the same file saved as a workbook, David's row left out
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(HEADER.split(","))
        for line in PEOPLE[:3]:
            ws.append(line.split(","))
        wb.save(newer)
        assert cli("run", str(newer), *where, *FAST)[0] == 0
        code, out = cli("resume", b1, *where, *FAST)
        assert code == 2
        assert (
            f"batch {b1} was replaced by batch "
        ) in out and "rows the newer file does not pay (5) stay unpaid" in " ".join(out.split())
        code, out = cli("run", str(first), *where, *FAST)  # the original file, run on purpose
    assert paid(state) == Counter({"+254712300001": 1, "+254712300002": 1, "+254712300003": 1, "+254712300004": 1})

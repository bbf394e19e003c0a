"""The batch graph as a finance team walks it, against two Kotani accounts.

A hypothesis state machine writes a payout file and edits it (rows inserted, deleted and reordered,
a name typo fixed, an amount or a phone changed, the file re-saved as XLSX), runs it against either
of two sandboxes served on loopback (two API keys: two Kotani accounts), stops runs part-way,
resumes, retries (from a batch or a results file, with a corrected phone) and reconciles any batch
against its own account or the other one, pays a row again on purpose, and lets the provider fail a
payee once, settle late, or correct a failure into a success much later. Every command goes through
the command line, in-process, as a user types it.

After every step, read from the sandboxes' own books:

1. nobody is paid twice: within one account, no obligation (label, payee, currency) has two
   payouts that are not definitively failed, unless the ledger records an operator override for
   one of them, or the earlier one had definitively failed at the provider before the later one was
   sent (the provider corrected it afterwards: the tool cannot prevent that, only report it). A
   retry with a corrected phone pays the obligation of the row it retries;
2. every row the ledger calls paid is SUCCESSFUL at the provider of its own environment, under its
   own reference, for its own payee and amount;
3. no row is lost: every valid row of every file run is in the batch of that run, and every row of
   the file as last run per account and label is paid, being paid, failed or waiting to be sent in
   some batch (not merely blocked). A stale copy run again (its batch was taken over by a run of a
   newer version of the file) is not the file as last run.

Determinism: the rules draw nothing from what the runs did. The provider's clock moves only while a
command is meant to see payouts settle, and by explicit advances: a stopped run faces a provider
that stands still, so whatever it sent stays in flight until a later command or advance.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from batch_payouts.cli import main
from batch_payouts.ledger import Ledger, RowRecord
from batch_payouts.model import MobileMoneyPayout, RowState
from batch_payouts.sandbox import Knobs, RunningSandbox, SandboxClock, SandboxState, serve_in_thread
from batch_payouts.sandbox.state import FAILURE
from batch_payouts.sheets.write import unescape_cell
from tests.figures import record, scale, shard

# A minute of commands even in the quick profile: the slow tier, and bench/reliability.py reports it.
pytestmark = [pytest.mark.slow, pytest.mark.campaign]

KEYS = {"A": "graph-account-a-5c1e", "B": "graph-account-b-9e7d"}
OTHER = {"A": "B", "B": "A"}
ACCOUNTS = st.sampled_from(["A", "A", "A", "B"])  # mostly one account and label, so that batches meet
LABELS = st.sampled_from(["", "", "", "nov"])
SPEED = 50.0  # provider seconds per real second while the provider's time flows
LATE = 50_000.0  # provider seconds after which a cancelled payout is corrected to SUCCESSFUL
# How the provider settles the next payout to a payee (after that one, the payee is paid normally).
SCRIPTS: dict[str, list[tuple[float, str]] | None] = {
    "pays": None,
    "fails once": [(0.5, "FAILED")],
    "is cancelled once, then corrected to paid much later": [(0.5, "CANCELLED"), (LATE, "SUCCESSFUL")],
}
# A generous attempt deadline: the sandboxes answer on loopback, and only a starved machine is slow.
FAST = [
    "--yes",
    "--quiet",
    "--reads-rate",
    "5000/5",
    "--rate",
    "5000/60,1000/5",
    "--visibility-lag",
    "0.2",
    "--attempt-timeout",
    "15",
    "--poll-interval",
    "0.05",
]
# The sandboxes speak plain HTTP on loopback: spare every client of every command loading the CA
# bundle (~0.1 s each, four clients a command), which would otherwise be half the time of a run.
NO_TLS: dict[str, str | None] = {"SSL_CERT_FILE": None, "SSL_CERT_DIR": str(Path(__file__).parent / "no-ca-here")}
COMPLETE = "8"  # seconds of real time a run may wait for its rows to settle
# None: the run waits for every row; else it is stopped after so many seconds (before anything is
# sent, while requests are on the wire, or once they are in flight)
STOPS = st.sampled_from([None, None, "0", "0.05", "0.3"])
ELSEWHERE = st.sampled_from([False, False, False, True])  # against the other account: must be refused
PICKS = st.integers(0, 1000)  # which row, batch or payee, modulo how many there are
# One rule draws the action (rather than a rule per action): hypothesis would otherwise switch whole
# rules off per example ("swarm testing"), and with a dozen slow steps an example that only
# reconciles teaches nothing.
ACTIONS = st.sampled_from(
    ["edit the file and run it"] * 3
    + ["resume a batch"] * 2
    + ["retry a batch"] * 2
    + ["reconcile a batch", "the provider moves", "the provider moves"]
)
EDITS = st.sampled_from(
    [
        "none",
        "insert a row",
        "delete a row",
        "reorder the rows",
        "fix a name typo",
        "change an amount",
        "change a phone",
        "re-save in the other format",
    ]
)
OTHER_FORMAT = {"csv": "xlsx", "xlsx": "csv"}
NAMES = [
    "Achieng Otieno",
    "Baraka Mwangi",
    "Chebet Kiprop",
    "Daudi Njoroge",
    "Esther Wanjiru",
    "Faith Akinyi",
    "Gitau Kamau",
    "Halima Hassan",
    "Imani Mutua",
    "Jabari Ouma",
    "Kerubo Nyaboke",
    "Lempaa Sankale",
]
HEADER = ["name", "phone", "country", "amount", "currency"]
MAX_ROWS = 6
NOT_PAYING = (RowState.BLOCKED, RowState.INVALID)

# What the model saw, summed over every example: printed at the end of the module and recorded for
# the reliability report.
FIGURES: Counter[str] = Counter(dict.fromkeys(["examples", "steps", "double payments", "false paid", "rows lost"], 0))


def keep_running_figures() -> None:
    """After each example, the figures so far in ``$BATCH_GRAPH_RUNNING`` (when set): a long run by
    hand can be stopped at any time and still report what it saw."""
    if path := os.environ.get("BATCH_GRAPH_RUNNING"):
        Path(path).write_text(json.dumps(dict(sorted(FIGURES.items()))))


def teardown_module() -> None:
    print("batch graph:", dict(sorted(FIGURES.items())))
    for name, value in FIGURES.items():
        record("batch_graph_" + re.sub(r"\W+", "_", name).strip("_"), value)


def misspelt(name: str) -> str:
    """The name with its second and third letters swapped, as a tired hand types it."""
    return name[0] + name[2] + name[1] + name[3:]


def phone_of(row: RowRecord) -> str:
    assert isinstance(row.payout, MobileMoneyPayout), row
    return row.payout.phone


class ProviderTime:
    """Real seconds that pass only while the provider is allowed to move (``flowing``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.since: float | None = None

    def __call__(self) -> float:
        return self.total + (time.monotonic() - self.since if self.since is not None else 0.0)

    @contextlib.contextmanager
    def flowing(self, flows: bool) -> Iterator[None]:
        if not flows:
            yield
            return
        self.since = time.monotonic()
        try:
            yield
        finally:
            self.total += time.monotonic() - self.since
            self.since = None


@dataclass(frozen=True)
class Person:
    """One payee as the file shows them."""

    name: str
    phone: str
    amount: int
    typo: bool = False

    def cells(self) -> list[Any]:
        return [misspelt(self.name) if self.typo else self.name, self.phone, "KE", self.amount, "KES"]


@dataclass
class FileRun:
    """A file the tool was asked to run, and the batch it ran it as."""

    account: str
    label: str
    rows: list[tuple[int, str, int]]  # (row number, phone, amount)
    batch: str


@dataclass(frozen=True)
class PaidTwice:
    """Two payouts of one obligation, neither definitively failed at the provider."""

    account: str
    label: str
    payees: list[str]
    earlier: dict[str, Any]
    later: dict[str, Any]
    corrected: bool  # the earlier one had definitively failed before the later one was sent

    @property
    def both_paid(self) -> bool:
        return bool(self.earlier["status"] == self.later["status"] == "SUCCESSFUL")

    def of(self, batch: str) -> bool:
        return any(p["reference"].startswith(f"{batch}-") for p in (self.earlier, self.later))

    def __str__(self) -> str:
        return (
            f"{self.payees} (label {self.label!r}) at {self.account}: {self.earlier['reference']} "
            f"{self.earlier['status']} and {self.later['reference']} {self.later['status']}"
        )


@dataclass
class Sheet:
    """The payout file on disk in one format, and whom it lists."""

    path: Path
    people: list[Person] = field(default_factory=list)


class BatchGraph(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="batch-graph-"))
        self.ledger_path = self.tmp / "ledger.sqlite3"
        self.time = ProviderTime()
        self.stack = contextlib.ExitStack()
        self.sandboxes: dict[str, RunningSandbox] = {}
        for account, key in KEYS.items():
            state = SandboxState(
                api_key=key,
                clock=SandboxClock(speed=SPEED, source=self.time),
                knobs=Knobs(rate_limits=False, settle_seconds=2.0),
            )
            self.sandboxes[account] = self.stack.enter_context(serve_in_thread(state, deliver_webhooks=False))
        self.people: list[Person] = []
        self.format = "csv"
        self.sheets: dict[str, Sheet] = {}
        self.fresh = 0
        self.phones: list[str] = []
        self.armed: dict[tuple[str, str], int] = {}  # (account, phone) -> payouts to it when scripted
        self.batches: list[str] = []
        self.runs: list[FileRun] = []
        self.latest: dict[tuple[str, str], FileRun] = {}
        self.corrections = 0
        self.flaky = False  # the next command meets 502s before payouts are recorded, and lost answers
        FIGURES["examples"] += 1

    def teardown(self) -> None:
        self.stack.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        keep_running_figures()

    # -- plumbing ---------------------------------------------------------------------------------

    def new_phone(self, series: str = "00") -> str:
        self.fresh += 1
        phone = f"+254713{series}{self.fresh:04d}"
        self.phones.append(phone)
        return phone

    def new_person(self) -> Person:
        phone = self.new_phone()
        return Person(NAMES[self.fresh % len(NAMES)], phone, 100 + 10 * self.fresh)

    def save(self) -> None:
        """Write the file in its current format (a copy in the other format stays as it was)."""
        path = self.tmp / f"pay.{self.format}"
        lines = [HEADER, *(p.cells() for p in self.people)]
        if self.format == "csv":
            with path.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(lines)
        else:
            book = openpyxl.Workbook()
            sheet = book.active
            assert sheet is not None
            for line in lines:
                sheet.append(line)
            book.save(path)
        self.sheets[self.format] = Sheet(path, list(self.people))

    def cli(self, account: str, *args: str, stop: str | None = None) -> tuple[int, str]:
        """One command as the user types it, against ``account`` with its key.

        ``stop``: for commands that pay, the seconds after which the run stops waiting, as an
        interruption does; the provider then stands still (whatever was sent stays in flight) and
        answers a created payout slowly, so that the stop may fall in the middle of the answer.
        Without ``stop`` the provider's time flows and the run waits for every row to settle."""
        started = time.monotonic()
        if args[0] in ("run", "resume", "retry"):
            args = (*args, *FAST, "--wait-timeout", stop or COMPLETE)
        for sb in self.sandboxes.values():
            knobs = sb.state.knobs
            knobs.drip_delay = 0.0005 if stop else 0.0  # a created payout's answer takes ~0.1 s to arrive
            knobs.p_5xx_before, knobs.p_drop_after = (0.3, 0.3) if self.flaky else (0.0, 0.0)
        self.flaky = False
        where = ["--base-url", self.sandboxes[account].base_url, "--state", str(self.ledger_path)]
        with self.time.flowing(stop is None):
            result = CliRunner().invoke(
                main, [*args, *where], env={"KOTANI_API_KEY": KEYS[account], **NO_TLS}, catch_exceptions=False
            )
        FIGURES[f"exit {args[0]}{' (stopped)' if stop else ''} {result.exit_code}"] += 1
        FIGURES[f"ms in {args[0]}"] += round(1000 * (time.monotonic() - started))
        self.learn_batches()
        self.disarm_scripts_used()
        return result.exit_code, result.stdout + result.stderr

    @contextlib.contextmanager
    def ledger(self) -> Iterator[Ledger | None]:
        if not self.ledger_path.exists():
            yield None
            return
        ledger = Ledger(self.ledger_path)
        try:
            yield ledger
        finally:
            ledger.close()

    def learn_batches(self) -> None:
        with self.ledger() as ledger:
            if ledger is None:
                return
            known = {b.id for b in ledger.batches(limit=10_000)}
        self.batches += sorted(known - set(self.batches))

    def account_of(self, ledger: Ledger, batch: str) -> str:
        env = ledger.environment(ledger.batch(batch).env_id)
        assert env is not None, batch
        (account,) = [a for a, sb in self.sandboxes.items() if sb.base_url.rstrip("/") == env.base_url]
        return account

    def batch_and_account(self, pick: int) -> tuple[str, str] | None:
        if not self.batches:
            return None
        batch = self.batches[-1 - pick % len(self.batches)]  # the latest first: it is the likeliest to matter
        with self.ledger() as ledger:
            assert ledger is not None
            return batch, self.account_of(ledger, batch)

    def payouts(self, account: str) -> list[dict[str, Any]]:
        """The provider's own books: every payout it executed, oldest first."""
        state = self.sandboxes[account].state
        with state.lock:
            state.tick()
            return [p for p in state.ledger()["payouts"] if p["executed"]]

    def counts(self) -> dict[str, int]:
        return {a: len(self.payouts(a)) for a in self.sandboxes}

    def to(self, account: str, phone: str) -> int:
        return sum(1 for p in self.payouts(account) if p["payee"] == phone)

    # -- the file and its runs ----------------------------------------------------------------------

    @initialize(
        n=st.integers(2, 5),
        typos=st.lists(st.booleans(), min_size=5, max_size=5),
        scripts=st.lists(st.sampled_from(sorted(SCRIPTS)), min_size=5, max_size=5),
        account=ACCOUNTS,
        label=LABELS,
        stop=STOPS,
    )
    def write_the_file_and_run_it(
        self, n: int, typos: list[bool], scripts: list[str], account: str, label: str, stop: str | None
    ) -> None:
        """A base set of payees, some names misspelt, some the provider will fail once; then a run."""
        self.people = [replace(self.new_person(), typo=typo) for typo, _ in zip(typos, range(n), strict=False)]
        for person, script in zip(self.people, scripts, strict=False):
            for sandbox in self.sandboxes:
                self.script(sandbox, person.phone, script)
        self.save()
        FIGURES["steps"] += 1
        self.run_file(account, label, "current", stop)

    # The actions of one step. Each draws all its choices first, whatever the state: hypothesis must
    # see the same draws for the same choices, even when loopback timing made a run end differently.

    def edit(self, edit: str, pick: int, order: list[int]) -> None:
        people = self.people
        i = pick % len(people)
        if edit == "insert a row" and len(people) < MAX_ROWS:
            people.insert(pick % (len(people) + 1), self.new_person())
        elif edit == "delete a row" and len(people) > 1:
            del people[i]
        elif edit == "reorder the rows":
            self.people = [people[k] for k in order if k < len(people)]
        elif edit == "fix a name typo":
            people[i] = replace(people[i], typo=not people[i].typo)
        elif edit == "change an amount":
            people[i] = replace(people[i], amount=people[i].amount + 5)
        elif edit == "change a phone":
            people[i] = replace(people[i], phone=self.new_phone())
        elif edit == "re-save in the other format":
            self.format = OTHER_FORMAT[self.format]
        if edit != "none":
            self.save()

    def run_file(self, account: str, label: str, which: str, stop: str | None, *extra: str) -> None:
        fmt = self.format if which == "current" or len(self.sheets) == 1 else OTHER_FORMAT[self.format]
        sheet = self.sheets[fmt]
        code, out = self.cli(account, "run", str(sheet.path), "--label", label, *extra, stop=stop)
        if code == 2 and "--pay-again" in extra and "--pay-again applies to a new batch" in out:
            FIGURES["--pay-again refused: the file was already run"] += 1
            return
        assert code in (0, 3, 4, 5), out
        found = re.search(r"^batch (b\w+)$", out, re.M) or re.search(r"already paid as batch (b\w+)", out)
        assert found, out
        rows = [(n, p.phone, p.amount) for n, p in enumerate(sheet.people, start=2)]
        run = FileRun(account, label, rows, found.group(1))
        self.runs.append(run)
        with self.ledger() as ledger:
            assert ledger is not None
            stale = ledger.batch(run.batch).replaced_by is not None
        if stale:  # a stale copy: its batch was taken over by a run of a newer version of the file
            FIGURES["runs of a stale copy of the file"] += 1
        else:
            self.latest[(account, label)] = run

    def edit_the_file_and_run_it(self, data: st.DataObject) -> None:
        """Edit the file (or not), then run it, or the copy in the other format still on disk; now and
        then with one row paid again on purpose (an override, recorded with a reason)."""
        edit, pick = data.draw(EDITS, label="edit"), data.draw(PICKS, label="row")
        order = data.draw(st.permutations(range(MAX_ROWS)), label="order")
        account, label = data.draw(ACCOUNTS, label="account"), data.draw(LABELS, label="label")
        which = data.draw(st.sampled_from(["current", "current", "other"]), label="file")
        again = data.draw(st.sampled_from([False] * 5 + [True]), label="pay a row again")
        stop = data.draw(STOPS, label="stopped after")
        self.edit(edit, pick, order)
        if again:
            extra = ["--pay-again", str(2 + pick % len(self.people)), "--reason", "agreed top-up"]
            self.run_file(account, label, "current", stop, *extra)
        else:
            self.run_file(account, label, which, stop)

    # -- any batch ----------------------------------------------------------------------------------

    def refused_elsewhere(self, account: str, batch: str, *args: str) -> None:
        """A command on a batch of one account, run against the other: refused, nothing sent."""
        before = self.counts()
        code, out = self.cli(OTHER[account], *args)
        assert code == 2, out
        assert f"batch {batch} belongs to" in out, out
        assert self.counts() == before
        FIGURES["commands refused in the other account"] += 1

    def target(self, data: st.DataObject, command: str) -> tuple[str, str] | None:
        """Draw a batch and its account for ``command``; drawn in the other account instead, the
        command is checked to be refused there (and ``None`` is returned: nothing more to do)."""
        pick, elsewhere = data.draw(PICKS, label="batch"), data.draw(ELSEWHERE, label="in the other account")
        found = self.batch_and_account(pick)
        if found is not None and elsewhere:
            self.refused_elsewhere(found[1], found[0], command, found[0])
            return None
        return found

    def resume_a_batch(self, data: st.DataObject) -> None:
        stop = data.draw(STOPS, label="stopped after")
        found = self.target(data, "resume")
        if found is None:
            return
        batch, account = found
        code, out = self.cli(account, "resume", batch, stop=stop)
        assert code in (0, 3, 4, 5) or (code == 2 and "was replaced by batch" in out), out

    def retry_a_batch(self, data: st.DataObject) -> None:
        """Retry failed rows, from the batch or its results file; a phone corrected in the results file
        may be corrected in the payout file too."""
        pick = data.draw(PICKS, label="batch")
        source = data.draw(st.sampled_from(["batch id", "results file", "corrected results file"]), label="from")
        in_the_file = data.draw(st.booleans(), label="the correction made in the payout file too")
        elsewhere, stop = data.draw(ELSEWHERE, label="in the other account"), data.draw(STOPS, label="stopped after")
        found = self.batch_and_account(pick)
        if found is None:
            return
        batch, account = found
        what = batch
        results = sorted(self.tmp.glob(f"*.{batch}.results.*"))
        if source != "batch id" and results:
            what = str(results[0])
            if source == "corrected results file":
                what = str(self.correct(results[0], in_the_file))
        if elsewhere:
            self.refused_elsewhere(account, batch, "retry", what, "--cooloff", "0")
            return
        code, out = self.cli(account, "retry", what, "--cooloff", "0", stop=stop)
        assert code in (0, 3, 4, 5), out

    def correct(self, results: Path, in_the_file: bool) -> Path:
        """A copy of a results file with the first failed row's phone corrected."""
        if results.suffix == ".xlsx":
            book = openpyxl.load_workbook(results, read_only=True)
            try:
                rows = book["Results"].iter_rows(values_only=True)
                table = [["" if v is None else str(v) for v in row] for row in rows]
            finally:
                book.close()
        else:
            table = list(csv.reader(results.read_text(encoding="utf-8-sig").splitlines()))
        header, body = table[0], table[1:]
        status, phone = header.index("status"), header.index("phone")
        for line in body:
            if unescape_cell(line[status]) == "failed":
                old, line[phone] = unescape_cell(line[phone]), self.new_phone("99")
                FIGURES["phones corrected in a results file"] += 1
                if in_the_file:
                    self.people = [replace(p, phone=line[phone]) if p.phone == old else p for p in self.people]
                    self.save()
                break
        self.corrections += 1
        path = self.tmp / f"corrected-{self.corrections}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([header, *body])
        return path

    def reconcile_a_batch(self, data: st.DataObject) -> None:
        found = self.target(data, "reconcile")
        if found is None:
            return
        batch, account = found
        code, out = self.cli(account, "reconcile", batch)
        assert code in (0, 3, 5), out
        with self.ledger() as ledger:
            assert ledger is not None
            twice = [p for p in self.double_payments(ledger, account) if p.corrected and p.both_paid and p.of(batch)]
        if twice:
            FIGURES["reconciles of a batch whose payee a provider correction paid twice"] += 1
            FIGURES["... that did not say PAID TWICE"] += code != 5 or "PAID TWICE" not in out
            assert code == 5 and "PAID TWICE" in out, (
                f"reconcile {batch} exited {code} without PAID TWICE, yet the provider paid twice: "
                + "; ".join(map(str, twice))
                + "\n"
                + out
            )

    # -- the provider ---------------------------------------------------------------------------------

    def script(self, account: str, phone: str, script: str) -> None:
        """How the provider settles the next payout to ``phone``."""
        state = self.sandboxes[account].state
        steps = SCRIPTS[script]
        with state.lock:
            scripts = dict(state.knobs.scripts)
            if steps is None:
                scripts.pop(phone, None)
                self.armed.pop((account, phone), None)
            else:
                scripts[phone] = steps
                self.armed[(account, phone)] = self.to(account, phone)
            state.knobs.scripts = scripts

    def disarm_scripts_used(self) -> None:
        for (account, phone), before in list(self.armed.items()):
            if self.to(account, phone) > before:
                self.script(account, phone, "pays")

    def the_provider_moves(self, data: st.DataObject) -> None:
        """Time passes at the provider (in-flight payouts settle in 30 s; much later, cancelled ones are
        corrected to paid), the provider will treat a payee's next payout differently, or it will be
        flaky during the next command (502s before recording a payout, answers lost after)."""
        event = data.draw(st.sampled_from(["30 s pass", "much later", "flaky", *sorted(SCRIPTS)]), label="event")
        pick, account = data.draw(PICKS, label="payee"), data.draw(ACCOUNTS, label="account")
        if event == "flaky":
            self.flaky = True
        elif event in SCRIPTS:
            self.script(account, self.phones[pick % len(self.phones)], event)
        else:
            for sb in self.sandboxes.values():
                with sb.state.lock:
                    sb.state.clock.advance(30.0 if event == "30 s pass" else 2 * LATE)
                    sb.state.tick()

    @rule(action=ACTIONS, data=st.data())
    def act(self, action: str, data: st.DataObject) -> None:
        """One step: someone in the finance team does something, or the provider does."""
        FIGURES["steps"] += 1
        getattr(self, action.replace(" ", "_"))(data)

    # -- what the provider's books say -----------------------------------------------------------------

    def identities(self, ledger: Ledger, reference: str) -> set[str]:
        """The payees a payout stands for: its own, and that of every earlier attempt of its row (a
        retry with a corrected phone pays the obligation of the row it retries)."""
        row = ledger.row_by_reference(reference)
        assert row is not None, f"{reference} was paid but no row of ours has that reference"
        return {phone_of(r) for r in [row, *ledger.earlier_attempts(row)]}

    def overridden(self, ledger: Ledger, reference: str) -> bool:
        """An operator chose to pay this row again (or the row it retries), with a recorded reason."""
        row = ledger.row_by_reference(reference)
        assert row is not None
        attempts = [row, *ledger.earlier_attempts(row)]
        return any(o["row"] == r.row for r in attempts for o in ledger.overrides(r.batch_id))

    def double_payments(self, ledger: Ledger, account: str) -> list[PaidTwice]:
        """Pairs of payouts of one obligation at ``account`` that are both not definitively failed."""
        found: list[PaidTwice] = []
        live = []
        for p in self.payouts(account):
            batch = p["reference"].rsplit("-", 2)[0]
            assert ledger.has_batch(batch), f"{p['reference']} was paid at {account} but no batch of ours made it"
            if p["status"] not in FAILURE:
                live.append((p, ledger.batch(batch).label, self.identities(ledger, p["reference"])))
        for i, (later, label, who) in enumerate(live):
            sent_at = later["history"][0]["at"]
            for earlier, earlier_label, earlier_who in live[:i]:
                if (earlier_label, earlier["currency"]) != (label, later["currency"]) or not who & earlier_who:
                    continue
                if self.overridden(ledger, earlier["reference"]) or self.overridden(ledger, later["reference"]):
                    continue
                failed_first = any(h["status"] in FAILURE and h["at"] <= sent_at for h in earlier["history"])
                found.append(PaidTwice(account, label, sorted(who & earlier_who), earlier, later, failed_first))
        return found

    # -- invariants ------------------------------------------------------------------------------------

    @invariant()
    def nobody_is_paid_twice(self) -> None:
        with self.ledger() as ledger:
            if ledger is None:
                return
            for account in self.sandboxes:
                twice = self.double_payments(ledger, account)
                ours = [str(p) for p in twice if not p.corrected]
                FIGURES["double payments"] += len(ours)
                corrected = any(p.corrected for p in twice)
                FIGURES["steps ending with a payee paid twice by a provider correction"] += corrected
                assert not ours, "paid twice: " + "; ".join(ours)

    @invariant()
    def every_row_called_paid_is_paid_at_its_own_provider(self) -> None:
        with self.ledger() as ledger:
            if ledger is None:
                return
            for batch in self.batches:
                account = self.account_of(ledger, batch)
                books = {p["reference"]: p for p in self.payouts(account)}
                for row in ledger.rows(batch, RowState.SUCCEEDED):
                    FIGURES["paid rows checked"] += 1
                    payout = books.get(str(row.reference))
                    truth = (payout["status"], payout["payee"], payout["amount"]) if payout else None
                    assert row.payout is not None
                    if truth != ("SUCCESSFUL", phone_of(row), row.payout.amount):
                        FIGURES["false paid"] += 1
                        raise AssertionError(
                            f"row {row.row} of batch {batch} ({row.reference}) is paid in the "
                            f"ledger; {account}'s books say (status, payee, amount) = {truth}"
                        )

    @invariant()
    def no_row_is_lost(self) -> None:
        with self.ledger() as ledger:
            if ledger is None:
                return
            lost: list[str] = []
            for run in self.runs:
                rows = {r.row: r for r in ledger.rows(run.batch)}
                for number, phone, amount in run.rows:
                    r = rows.get(number)
                    if r is None or r.payout is None or (phone_of(r), r.payout.amount) != (phone, Decimal(amount)):
                        lost.append(f"row {number} ({phone}, {amount}) of a file run is not in its batch {run.batch}")
            for run in self.latest.values():
                paying = self.paying(ledger, run.account, run.label)
                FIGURES["rows of the file as last run, accounted for"] += len(run.rows)
                lost += [
                    f"row {number} ({phone}) of the file as last run in account {run.account} with label "
                    f"{run.label!r} (batch {run.batch}) is neither paid, in flight, failed nor waiting in any "
                    "batch"
                    for number, phone, _ in run.rows
                    if phone not in paying
                ]
            FIGURES["rows lost"] += len(lost)
            assert not lost, "; ".join(lost)

    def paying(self, ledger: Ledger, account: str, label: str) -> set[str]:
        """Phones some row of ``account`` and ``label`` pays, is paying, failed to pay, or will send to
        (a retry stands for the payees of its earlier attempts too)."""
        phones: set[str] = set()
        for batch in self.batches:
            if self.account_of(ledger, batch) != account or ledger.batch(batch).label != label:
                continue
            for r in ledger.rows(batch):
                if r.payout is not None and r.state not in NOT_PAYING:
                    phones |= {phone_of(a) for a in [r, *ledger.earlier_attempts(r)]}
        return phones


BatchGraph.TestCase.settings = settings(
    max_examples=int(os.environ.get("BATCH_GRAPH_EXAMPLES", scale(15, 1000))) // shard()[1],
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
TestBatchGraph = BatchGraph.TestCase

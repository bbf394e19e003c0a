"""The batch graph as a finance team walks it, against two Kotani accounts.

A hypothesis state machine writes a payout file and edits it (rows inserted, deleted and reordered,
a name typo fixed, an amount or a phone changed, the file re-saved as XLSX), runs it against either
of two sandboxes served on loopback (two API keys: two Kotani accounts), interrupts runs, resumes,
retries (from a batch or a results file, with a corrected phone) and reconciles any batch against
its own account or the other one, pays a row again on purpose, and lets the provider settle late or
correct a failure into a success. Everything goes through the command line, in-process.

After every step, read from the sandboxes' own books:

1. nobody is paid twice: within one account, no obligation (label, payee, currency) has two
   payouts that are not definitively failed, unless the ledger records an operator override, or
   the earlier one had definitively failed at the provider before the later one was sent (the
   provider then corrected it: the tool cannot prevent that, only report it as PAID TWICE);
2. every row the ledger calls paid is SUCCESSFUL at the provider of its own environment, under
   its own reference, for its own payee and amount;
3. no row is lost: every valid row of every file run is in the batch of that run, and every row of
   the latest file run per account and label is paid, being paid, failed or waiting in some batch
   (not only blocked).

Determinism: the rules draw nothing from what the runs did. The provider's clock only moves while
a command is meant to see payouts settle, and by explicit advances: an interrupted run faces a
provider that stands still, so whatever it sent stays in flight.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openpyxl
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from batch_payouts.cli import main
from batch_payouts.ledger import Ledger
from batch_payouts.model import RowState
from batch_payouts.sandbox import Knobs, RunningSandbox, SandboxClock, SandboxState, serve_in_thread
from batch_payouts.sandbox.state import FAILURE, SUCCESS
from batch_payouts.sheets.write import unescape_cell
from tests.figures import record, scale, shard

KEYS = {"A": "graph-account-a-5c1e", "B": "graph-account-b-9e7d"}
ACCOUNTS = st.sampled_from(["A", "A", "B"])  # mostly one account, so that batches meet
LABELS = st.sampled_from(["", "", "nov"])
OTHER = {"A": "B", "B": "A"}
SPEED = 20.0  # provider seconds per real second while the provider's time flows
LATE = 50_000.0  # provider seconds after which a cancelled payout is corrected to SUCCESSFUL
SCRIPTS: dict[str, list[tuple[float, str]] | None] = {
    "pays": None,
    "fails": [(0.5, "FAILED")],
    "cancelled, corrected to paid much later": [(0.5, "CANCELLED"), (LATE, "SUCCESSFUL")],
}
FAST = ["--yes", "--quiet", "--reads-rate", "5000/5", "--rate", "5000/60,1000/5", "--visibility-lag", "0.2",
        "--attempt-timeout", "1", "--poll-interval", "0.05"]
COMPLETE = "8"  # seconds of real time a run may wait for its rows to settle
# None: the run waits for every row; else it is stopped after so many seconds (before anything is
# sent, while requests are on the wire, or once they are in flight)
STOPS = st.sampled_from([None, None, "0", "0.05", "0.3"])
ELSEWHERE = st.sampled_from([False, False, True])  # against the other account: must be refused
OTHER_FORMAT = {"csv": "xlsx", "xlsx": "csv"}
NAMES = ["Achieng Otieno", "Baraka Mwangi", "Chebet Kiprop", "Daudi Njoroge", "Esther Wanjiru", "Faith Akinyi",
         "Gitau Kamau", "Halima Hassan", "Imani Mutua", "Jabari Ouma", "Kerubo Nyaboke", "Lempaa Sankale"]
HEADER = ["name", "phone", "country", "amount", "currency"]
MAX_ROWS = 6

# What the model saw, summed over every example (printed at the end of the module, recorded for
# the reliability report).
FIGURES: Counter[str] = Counter()


def teardown_module() -> None:
    print("batch graph:", dict(sorted(FIGURES.items())))
    for name, value in FIGURES.items():
        record(f"batch_graph_{name}", value)


def misspelt(name: str) -> str:
    """The name with its second and third letters swapped, as a tired hand types it."""
    return name[0] + name[2] + name[1] + name[3:]


class ProviderTime:
    """Real seconds that pass only while the provider is allowed to move (``flowing``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.since: float | None = None

    def __call__(self) -> float:
        return self.total + (time.monotonic() - self.since if self.since is not None else 0.0)

    @contextlib.contextmanager
    def flowing(self, flows: bool = True) -> Iterator[None]:
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

    def row(self) -> list[Any]:
        return [misspelt(self.name) if self.typo else self.name, self.phone, "KE", self.amount, "KES"]


@dataclass
class FileRun:
    """A file the tool was asked to run and the batch it ran it as."""

    account: str
    label: str
    rows: list[tuple[int, str, int]]  # (row number, phone, amount)
    batch: str


@dataclass
class Sheet:
    """The payout file as it lies on disk, in one format."""

    path: Path
    people: list[Person] = field(default_factory=list)


class BatchGraph(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="graph-"))
        self.ledger_path = self.tmp / "ledger.sqlite3"
        self.time = ProviderTime()
        self.stack = contextlib.ExitStack()
        self.sandboxes: dict[str, RunningSandbox] = {}
        for account, key in KEYS.items():
            state = SandboxState(api_key=key, clock=SandboxClock(speed=SPEED, source=self.time),
                                 knobs=Knobs(rate_limits=False, settle_seconds=2.0))
            self.sandboxes[account] = self.stack.enter_context(serve_in_thread(state, deliver_webhooks=False))
        self.people: list[Person] = []
        self.format = "csv"
        self.sheets: dict[str, Sheet] = {}
        self.fresh = 0
        self.phones: list[str] = []
        self.batches: list[str] = []
        self.runs: list[FileRun] = []
        self.latest: dict[tuple[str, str], FileRun] = {}
        self.corrections = 0
        self.steps = 0
        FIGURES["examples"] += 1

    def teardown(self) -> None:
        self.stack.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- plumbing ---------------------------------------------------------------------------------

    def new_person(self) -> Person:
        n = self.fresh
        self.fresh += 1
        phone = f"+25471300{n:04d}"
        self.phones.append(phone)
        return Person(NAMES[n % len(NAMES)], phone, 100 + 10 * n)

    def new_phone(self) -> str:
        self.fresh += 1
        phone = f"+25471399{self.fresh:04d}"
        self.phones.append(phone)
        return phone

    def save(self) -> None:
        """Write the file in its current format (the other format's copy stays as it was)."""
        path = self.tmp / f"pay.{self.format}"
        rows = [p.row() for p in self.people]
        if self.format == "csv":
            with path.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows([HEADER, *rows])
        else:
            book = openpyxl.Workbook()
            sheet = book.active
            assert sheet is not None
            for line in [HEADER, *rows]:
                sheet.append(line)
            book.save(path)
        self.sheets[self.format] = Sheet(path, list(self.people))

    def where(self, account: str) -> list[str]:
        return ["--base-url", self.sandboxes[account].base_url, "--state", str(self.ledger_path)]

    def cli(self, account: str, *args: str, stop: str | None = None) -> tuple[int, str]:
        """One command as the user types it, against ``account`` with its key.

        ``stop``: for commands that pay, the seconds after which the run stops waiting, as an
        interruption does; the provider then stands still (whatever was sent stays in flight) and
        answers a little slowly, so that the stop may fall in the middle of a request. Without
        ``stop`` the provider's time flows and the run waits for every row to settle."""
        started = time.monotonic()
        driven = args[0] in ("run", "resume", "retry")
        if driven:
            args = (*args, *FAST, "--wait-timeout", stop or COMPLETE)
        for sb in self.sandboxes.values():
            sb.state.knobs.latency = 0.02 if stop else 0.0
        with self.time.flowing(stop is None):
            result = CliRunner().invoke(main, [*args, *self.where(account)], env={"KOTANI_API_KEY": KEYS[account]},
                                        catch_exceptions=False)
        FIGURES[f"exit {args[0]}{' (stopped)' if stop else ''} {result.exit_code}"] += 1
        FIGURES[f"ms {args[0]}"] += int(1000 * (time.monotonic() - started))
        self.learn_batches()
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
        assert env is not None
        (account,) = [a for a, sb in self.sandboxes.items() if sb.base_url.rstrip("/") == env.base_url]
        return account

    def payouts(self, account: str) -> list[dict[str, Any]]:
        """The provider's own books: every payout it executed, oldest first."""
        state = self.sandboxes[account].state
        with state.lock:
            state.tick()
            return [p for p in state.ledger()["payouts"] if p["executed"]]

    def counts(self) -> dict[str, int]:
        return {a: len(self.payouts(a)) for a in self.sandboxes}

    def step(self) -> None:
        self.steps += 1
        FIGURES["steps"] += 1

    # -- the file -----------------------------------------------------------------------------------

    @initialize(n=st.integers(2, 5), typos=st.lists(st.booleans(), min_size=5, max_size=5),
                scripts=st.lists(st.sampled_from(["pays", "pays", *sorted(SCRIPTS)]), min_size=5, max_size=5),
                account=ACCOUNTS, label=LABELS, stop=STOPS)
    def write_the_file_and_run_it(self, n: int, typos: list[bool], scripts: list[str], account: str, label: str,
                                  stop: str | None) -> None:
        """A base set of payees, some names misspelt; the provider fails or corrects some of them. The
        file is run at once (to the end, or interrupted)."""
        self.people = [replace(self.new_person(), typo=typo) for typo, _ in zip(typos, range(n), strict=False)]
        for person, script in zip(self.people, scripts, strict=False):
            for sandbox in self.sandboxes:
                self.set_script(sandbox, person.phone, script)
        self.save()
        self.step()
        self.run_file(account, label, "current", stop)

    @rule(edit=st.sampled_from(["insert", "delete", "reorder", "fix a typo", "change an amount", "change a phone",
                                "re-save in the other format"]),
          pick=st.integers(0, 1000), order=st.permutations(range(MAX_ROWS)))
    def edit_the_file(self, edit: str, pick: int, order: list[int]) -> None:
        self.step()
        people = self.people
        i = pick % len(people)
        if edit == "insert" and len(people) < MAX_ROWS:
            people.insert(pick % (len(people) + 1), self.new_person())
        elif edit == "delete" and len(people) > 1:
            del people[i]
        elif edit == "reorder":
            self.people = [people[k] for k in order if k < len(people)]
        elif edit == "fix a typo":
            people[i] = replace(people[i], typo=not people[i].typo)
        elif edit == "change an amount":
            people[i] = replace(people[i], amount=people[i].amount + 5)
        elif edit == "change a phone":
            people[i] = replace(people[i], phone=self.new_phone())
        elif edit == "re-save in the other format":
            self.format = OTHER_FORMAT[self.format]
        self.save()

    # -- runs ---------------------------------------------------------------------------------------

    def run_file(self, account: str, label: str, which: str, stop: str | None, *extra: str) -> None:
        fmt = self.format if which == "current" or len(self.sheets) == 1 else OTHER_FORMAT[self.format]
        sheet = self.sheets[fmt]
        code, out = self.cli(account, "run", str(sheet.path), "--label", label, *extra, stop=stop)
        if code == 2 and "--pay-again" in extra and "--pay-again applies to a new batch" in out:
            FIGURES["--pay-again refused on a file already run"] += 1
            return
        assert code in (0, 3, 4, 5), out
        found = re.search(r"^batch (b\w+)$", out, re.M) or re.search(r"already paid as batch (b\w+)", out)
        assert found, out
        rows = [(n, p.phone, p.amount) for n, p in enumerate(sheet.people, start=2)]
        run = FileRun(account, label, rows, found.group(1))
        self.runs.append(run)
        self.latest[(account, label)] = run

    @rule(account=ACCOUNTS, label=LABELS, which=st.sampled_from(["current", "current", "other"]), stop=STOPS)
    def run_the_file(self, account: str, label: str, which: str, stop: str | None) -> None:
        """Run the file (or the copy in the other format still on disk)."""
        self.step()
        self.run_file(account, label, which, stop)

    @rule(account=ACCOUNTS, label=LABELS, pick=st.integers(0, 1000))
    def pay_one_row_again_on_purpose(self, account: str, label: str, pick: int) -> None:
        self.step()
        row = 2 + pick % len(self.people)
        self.run_file(account, label, "current", None, "--pay-again", str(row), "--reason", "agreed top-up")

    def batch_and_account(self, pick: int) -> tuple[str, str] | None:
        if not self.batches:
            return None
        batch = self.batches[pick % len(self.batches)]
        with self.ledger() as ledger:
            assert ledger is not None
            return batch, self.account_of(ledger, batch)

    def refused_elsewhere(self, account: str, batch: str, *args: str) -> None:
        """A command on a batch of one account, run against the other: refused, nothing sent."""
        before = self.counts()
        code, out = self.cli(OTHER[account], *args)
        assert code == 2, out
        assert f"batch {batch} belongs to" in out, out
        assert self.counts() == before
        FIGURES["commands refused in the other account"] += 1

    @rule(pick=st.integers(0, 1000), elsewhere=ELSEWHERE, stop=STOPS)
    def resume_a_batch(self, pick: int, elsewhere: bool, stop: str | None) -> None:
        self.step()
        found = self.batch_and_account(pick)
        if found is None:
            return
        batch, account = found
        if elsewhere:
            self.refused_elsewhere(account, batch, "resume", batch)
            return
        code, out = self.cli(account, "resume", batch, stop=stop)
        assert code in (0, 3, 4, 5), out

    @rule(pick=st.integers(0, 1000), source=st.sampled_from(["batch id", "results file", "corrected results file"]),
          also_in_the_file=st.booleans(), elsewhere=ELSEWHERE, stop=STOPS)
    def retry_a_batch(self, pick: int, source: str, also_in_the_file: bool, elsewhere: bool,
                      stop: str | None) -> None:
        """Retry failed rows, from the batch or its results file; a phone corrected in the results file
        may be corrected in the payout file too."""
        self.step()
        found = self.batch_and_account(pick)
        if found is None:
            return
        batch, account = found
        what = batch
        results = sorted(self.tmp.glob(f"*.{batch}.results.*"))
        if source != "batch id" and results:
            what = str(results[0])
            if source == "corrected results file":
                what = str(self.correct(results[0], also_in_the_file))
        if elsewhere:
            self.refused_elsewhere(account, batch, "retry", what, "--cooloff", "0")
            return
        code, out = self.cli(account, "retry", what, "--cooloff", "0", stop=stop)
        assert code in (0, 3, 4, 5), out

    def correct(self, results: Path, in_the_file: bool) -> Path:
        """A copy of a results file with the first failed row's phone corrected."""
        if results.suffix == ".xlsx":
            sheet = openpyxl.load_workbook(results, read_only=True)["Results"]
            table = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        else:
            table = list(csv.reader(results.read_text(encoding="utf-8-sig").splitlines()))
        header, body = table[0], table[1:]
        status, phone = header.index("status"), header.index("phone")
        for line in body:
            if unescape_cell(line[status]) == "failed":
                old, line[phone] = unescape_cell(line[phone]), self.new_phone()
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

    @rule(pick=st.integers(0, 1000), elsewhere=ELSEWHERE)
    def reconcile_a_batch(self, pick: int, elsewhere: bool) -> None:
        self.step()
        found = self.batch_and_account(pick)
        if found is None:
            return
        batch, account = found
        if elsewhere:
            self.refused_elsewhere(account, batch, "reconcile", batch)
            return
        doubles = self.paid_twice_at_the_provider(account, batch)
        code, out = self.cli(account, "reconcile", batch)
        assert code in (0, 3, 5), out
        if doubles:
            FIGURES["reconciles of a batch paid twice by a provider correction"] += 1
            FIGURES[f"... of which exit {code}"] += 1

    # -- the provider ---------------------------------------------------------------------------------

    def set_script(self, account: str, phone: str, script: str) -> None:
        state = self.sandboxes[account].state
        with state.lock:
            scripts = dict(state.knobs.scripts)
            steps = SCRIPTS[script]
            if steps is None:
                scripts.pop(phone, None)
            else:
                scripts[phone] = steps
            state.knobs.scripts = scripts

    @rule(account=ACCOUNTS, pick=st.integers(0, 1000), script=st.sampled_from(sorted(SCRIPTS)))
    def the_provider_changes_how_a_payee_settles(self, account: str, pick: int, script: str) -> None:
        self.step()
        self.set_script(account, self.phones[pick % len(self.phones)], script)

    @rule(seconds=st.sampled_from([30.0, 2 * LATE]))
    def provider_time_passes(self, seconds: float) -> None:
        """Payouts in flight settle (30 s); much later, cancelled ones are corrected to paid."""
        self.step()
        for sb in self.sandboxes.values():
            with sb.state.lock:
                sb.state.clock.advance(seconds)
                sb.state.tick()

    # -- what the provider's books say -----------------------------------------------------------------

    def obligations(self, ledger: Ledger, account: str) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        """(label, payee, currency) -> the provider's payouts for it, oldest first."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for p in self.payouts(account):
            batch = p["reference"].rsplit("-", 2)[0]
            assert ledger.has_batch(batch), f"{p['reference']} was paid at {account} but no batch of ours made it"
            groups[(ledger.batch(batch).label, p["payee"], p["currency"])].append(p)
        return groups

    def overridden(self, ledger: Ledger, reference: str) -> bool:
        row = ledger.row_by_reference(reference)
        return row is not None and any(o["row"] == row.row for o in ledger.overrides(row.batch_id))

    def double_payments(self, ledger: Ledger, account: str) -> tuple[list[str], list[str]]:
        """(paid twice by the tool, paid twice because the provider corrected a failure later)."""
        ours, theirs = [], []
        for (label, payee, _), payouts in self.obligations(ledger, account).items():
            live = [p for p in payouts if p["status"] not in FAILURE]
            for i, later in enumerate(live):
                sent_at = later["history"][0]["at"]
                for earlier in live[:i]:
                    if self.overridden(ledger, earlier["reference"]) or self.overridden(ledger, later["reference"]):
                        continue
                    pair = f"{payee} (label {label!r}) at {account}: {earlier['reference']} and {later['reference']}"
                    failed_first = any(h["status"] in FAILURE and h["at"] <= sent_at for h in earlier["history"])
                    (theirs if failed_first else ours).append(pair)
        return ours, theirs

    def paid_twice_at_the_provider(self, account: str, batch: str) -> list[str]:
        with self.ledger() as ledger:
            assert ledger is not None
            _, theirs = self.double_payments(ledger, account)
        return [pair for pair in theirs if f" {batch}-" in pair or f"and {batch}-" in pair]

    # -- invariants ------------------------------------------------------------------------------------

    @invariant()
    def nobody_is_paid_twice(self) -> None:
        with self.ledger() as ledger:
            if ledger is None:
                return
            for account in self.sandboxes:
                ours, theirs = self.double_payments(ledger, account)
                FIGURES["double payments"] += len(ours)
                FIGURES["payee-label pairs paid twice after a provider correction (seen, per step)"] += len(theirs)
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
                    assert row.payout is not None
                    truth = (payout["status"], payout["payee"], payout["amount"]) if payout else None
                    if truth != ("SUCCESSFUL", row.payout.phone, row.payout.amount):  # type: ignore[union-attr]
                        FIGURES["false paid"] += 1
                        raise AssertionError(f"row {row.row} of batch {batch} ({row.reference}) is paid in the "
                                             f"ledger; {account}'s books say {truth}")
                    assert payout is not None and payout["status"] in SUCCESS

    @invariant()
    def no_row_is_lost(self) -> None:
        with self.ledger() as ledger:
            if ledger is None:
                return
            for run in self.runs:
                rows = {r.row: r for r in ledger.rows(run.batch)}
                for number, phone, amount in run.rows:
                    r = rows.get(number)
                    assert r is not None and r.payout is not None, f"row {number} missing from batch {run.batch}"
                    assert (r.payout.phone, r.payout.amount) == (phone, amount), (run.batch, number)  # type: ignore[union-attr]
            for run in self.latest.values():
                holding = self.accounted(ledger, run.account, run.label)
                for number, phone, _ in run.rows:
                    FIGURES["rows of a latest run accounted for"] += 1
                    assert phone in holding, (
                        f"row {number} ({phone}) of the last file run in {run.account} with label {run.label!r} "
                        f"(batch {run.batch}) is neither paid, in flight, failed nor waiting in any batch")

    def accounted(self, ledger: Ledger, account: str, label: str) -> set[str]:
        """Phones some row of ``account`` and ``label`` pays, is paying, failed, or will send (a retry
        stands for the payee of its first attempt too)."""
        phones: set[str] = set()
        for batch in self.batches:
            if self.account_of(ledger, batch) != account or ledger.batch(batch).label != label:
                continue
            for r in ledger.rows(batch):
                if r.payout is None or r.state in (RowState.BLOCKED, RowState.INVALID):
                    continue
                phones.add(r.payout.phone)  # type: ignore[union-attr]
                for earlier in ledger.earlier_attempts(r):
                    if earlier.payout is not None:
                        phones.add(earlier.payout.phone)  # type: ignore[union-attr]
        return phones


BatchGraph.TestCase.settings = settings(
    max_examples=int(os.environ.get("BATCH_GRAPH_EXAMPLES", scale(15, 1000))) // shard()[1],
    stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
TestBatchGraph = BatchGraph.TestCase

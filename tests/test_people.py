"""People, roles and approvals in the application layer, and the `users` commands: who may do
what, the two-person rule, the typed total, and the ledger's record of who did what and when."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_payouts import errors
from batch_payouts.app import people, second_factor
from batch_payouts.app.people import Action, Person, Role, Throttle
from batch_payouts.app.session import SessionOptions
from batch_payouts.app.status import Where, open_ledger
from batch_payouts.app.workspace import Workspace, WorkspaceOptions
from batch_payouts.cli import main
from batch_payouts.engine.results import identity_of
from batch_payouts.ledger import MIGRATIONS, Ledger
from batch_payouts.policy import Approval, Policy, parse_policy
from tests.test_app import FAST

PASSWORD = "correct horse battery"
MAKER = Person("amina", Role.MAKER, False)
APPROVER = Person("brian", Role.APPROVER, False)
SECOND_APPROVER = Person("chao", Role.APPROVER, False)
VIEWER = Person("dora", Role.VIEWER, False)
ADMIN = Person("eve", Role.ADMIN, False)
FILE = (
    "name,phone,country,amount,currency\nAmina Njeri,+254712300001,KE,100,KES\nBrian Otieno,+254712300002,KE,200,KES\n"
)


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(Where(tmp_path / "l.db")) as opened:
        yield opened


def workspace_for(tmp_path: Path, policy: Policy | None = None) -> Iterator[Workspace]:
    from batch_payouts.app import serving

    with serving.workspace(
        SessionOptions(state_path=tmp_path / "l.db", sandbox=True, attempt_timeout=2.0),
        WorkspaceOptions(policy=policy or Policy(), run=FAST),
    ) as ws:
        yield ws


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    yield from workspace_for(tmp_path)


def test_the_ledger_keeps_an_argon2_hash_never_the_password(ledger: Ledger) -> None:
    people.add_person(ledger, "amina", Role.MAKER, PASSWORD)
    stored = ledger.user("amina")
    assert stored is not None and stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 4

    person = people.sign_in(ledger, Throttle(), name="amina", password=PASSWORD)

    assert person == Person("amina", Role.MAKER, False)
    with pytest.raises(errors.SignInFailed) as wrong:
        people.sign_in(ledger, Throttle(), name="amina", password=PASSWORD + "!")
    with pytest.raises(errors.SignInFailed) as unknown:
        people.sign_in(ledger, Throttle(), name="nobody", password=PASSWORD)
    assert str(wrong.value) == str(unknown.value) == "wrong username, password or code"
    assert [(a.actor, a.action) for a in ledger.actions()] == [("command line", "added person"), ("amina", "signed in")]


def test_a_person_with_a_second_factor_needs_the_current_code(ledger: Ledger) -> None:
    added = people.add_person(ledger, "brian", Role.APPROVER, PASSWORD, totp=True)
    assert added.totp_uri is not None and added.totp_uri.startswith("otpauth://totp/batch-payouts:brian?secret=")
    secret = ledger.user("brian").totp_secret  # type: ignore[union-attr]
    assert secret is not None

    with pytest.raises(errors.SignInFailed):
        people.sign_in(ledger, Throttle(), name="brian", password=PASSWORD, code="000000", at=1_700_000_000)
    person = people.sign_in(
        ledger,
        Throttle(),
        name="brian",
        password=PASSWORD,
        code=second_factor.code_now(secret, 1_700_000_000),
        at=1_700_000_000,
    )
    assert person.second_factor


def test_failed_sign_ins_are_throttled_per_name_until_the_window_passes(ledger: Ledger) -> None:
    people.add_person(ledger, "amina", Role.MAKER, PASSWORD)
    clock = Ticks()
    throttle = Throttle(limit=3, window=60.0, clock=clock)
    for _ in range(3):
        with pytest.raises(errors.SignInFailed):
            people.sign_in(ledger, throttle, name="amina", password="guess guess guess", address="a")

    with pytest.raises(errors.SignInThrottled) as throttled:
        people.sign_in(ledger, throttle, name="amina", password=PASSWORD, address="b")
    assert str(throttled.value) == "too many failed sign-ins; try again in 60 s"
    clock.now += 61
    assert people.sign_in(ledger, throttle, name="amina", password=PASSWORD, address="b").name == "amina"


def test_a_disabled_person_cannot_sign_in_and_their_session_ends(ledger: Ledger) -> None:
    people.add_person(ledger, "amina", Role.MAKER, PASSWORD)
    assert people.active_person(ledger, "amina") == MAKER
    people.disable_person(ledger, "amina")
    assert people.active_person(ledger, "amina") is None
    with pytest.raises(errors.SignInFailed):
        people.sign_in(ledger, Throttle(), name="amina", password=PASSWORD)
    with pytest.raises(errors.UnknownUser):
        people.disable_person(ledger, "nobody")
    with pytest.raises(errors.UserExists):
        people.add_person(ledger, "amina", Role.VIEWER, PASSWORD)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Action.READ}),
        (Role.MAKER, {Action.READ, Action.UPLOAD, Action.SUBMIT, Action.RETRY}),
        (Role.APPROVER, {Action.READ, Action.UPLOAD, Action.SUBMIT, Action.RETRY, Action.APPROVE, Action.ACCEPT_HELD}),
        (Role.ADMIN, {Action.READ, Action.MANAGE_PEOPLE}),
    ],
)
def test_each_role_may_do_exactly_its_actions(role: Role, allowed: set[Action]) -> None:
    person = Person("x", role, False)
    for action in Action:
        if action in allowed:
            people.require(person, action)
        else:
            with pytest.raises(errors.NotAllowed) as refused:
                people.require(person, action)
            assert str(refused.value) == f"x is a {role.value} and may not {action.value}"


def test_the_two_person_rule_is_on_for_live_batches_above_the_policys_threshold() -> None:
    default = Approval()
    assert default.two_people(live=True, totals={"KES": Decimal(1)})
    assert not default.two_people(live=False, totals={"KES": Decimal(10**9)})
    policy = parse_policy("[approval]\nlive_threshold = { KES = 50000 }\nsandbox = true\n")
    assert not policy.approval.two_people(live=True, totals={"KES": Decimal(50000)})
    assert policy.approval.two_people(live=True, totals={"KES": Decimal("50000.01")})
    assert policy.approval.two_people(live=True, totals={"UGX": Decimal(1)}), "a currency not named: always"
    assert policy.approval.sandbox and policy.approval.two_people(live=False, totals={})


def test_a_batch_is_submitted_then_approved_by_typing_its_total_and_paid_in_the_background(tmp_path: Path) -> None:
    (tmp_path / "pay.csv").write_text(FILE)
    for ws in workspace_for(tmp_path, parse_policy("[approval]\nsandbox = true\n")):
        uploaded = ws.upload(MAKER, "pay.csv", (tmp_path / "pay.csv").read_bytes(), label="2026-11")
        assert uploaded.batch_id is None and uploaded.draft is not None
        assert [d.token for d in ws.drafts(VIEWER)] == [uploaded.draft]
        with pytest.raises(errors.NotAllowed):
            ws.submit_draft(VIEWER, uploaded.draft)
        batch_id = ws.submit_draft(APPROVER, uploaded.draft)
        assert ws.batch(VIEWER, batch_id).stage.value == "awaiting approval" and ws.drafts(VIEWER) == []
        with pytest.raises(errors.WrongStage):
            ws.submit_draft(APPROVER, uploaded.draft)

        with pytest.raises(errors.NotAllowed) as maker:
            ws.approve(MAKER, batch_id, "KES 300")
        assert str(maker.value) == "amina is a maker and may not approve a batch"
        with pytest.raises(errors.SamePerson) as own:
            ws.approve(APPROVER, batch_id, "KES 300")
        assert str(own.value) == f"brian submitted batch {batch_id}; the two-person rule needs another approver"
        with pytest.raises(errors.TotalNotConfirmed) as typo:
            ws.approve(SECOND_APPROVER, batch_id, "KES 30")
        assert str(typo.value) == "the total typed (KES 30) is not the batch's total (KES 300); nothing was approved"

        ws.approve(SECOND_APPROVER, batch_id, "kes 300")
        assert ws.runs.wait(batch_id, 60)

        view = ws.batch(VIEWER, batch_id)
        assert view.stage.value == "finished" and [r.kind for r in view.rows] == ["paid", "paid"]
        assert view.makers == ("amina", "brian") and view.approvers == ("chao",)
        assert [(a.actor, a.action) for a in ws.audit(VIEWER, batch_id)] == [
            ("amina", "uploaded"),
            ("brian", "submitted for approval"),
            ("chao", "approved"),
            ("chao", "run started"),
            ("chao", "run ended"),
        ]
        with pytest.raises(errors.WrongStage):
            ws.approve(SECOND_APPROVER, batch_id, "KES 300")
    with sqlite3.connect(tmp_path / "l.db") as db:
        actors = {a for (a,) in db.execute("SELECT actor FROM audit WHERE path LIKE '%withdraw%'")}
    assert actors == {"chao"}, "each API call of the run is recorded with the person who started it"
    with Ledger(tmp_path / "l.db") as ledger:
        identity = identity_of(ledger, ledger.batch(batch_id))
    assert (identity.ran_by, identity.approved_by) == ("chao", "chao"), "the results cover names them"


def test_without_the_rule_an_approver_may_approve_their_own_sandbox_batch(workspace: Workspace, tmp_path: Path) -> None:
    uploaded = workspace.upload(APPROVER, "pay.csv", FILE.encode(), label="")
    assert uploaded.draft is not None
    batch_id = workspace.submit_draft(APPROVER, uploaded.draft)
    assert not workspace.batch(APPROVER, batch_id).two_person
    workspace.approve(APPROVER, batch_id, "KES 300")
    assert workspace.runs.wait(batch_id, 60)
    assert workspace.runs.state(batch_id).outcome is not None  # type: ignore[union-attr]


def test_uploads_refuse_other_kinds_and_files_over_the_cap(tmp_path: Path) -> None:
    from batch_payouts.app import serving

    with serving.workspace(
        SessionOptions(state_path=tmp_path / "l.db", sandbox=True), WorkspaceOptions(max_file_bytes=100)
    ) as ws:
        with pytest.raises(errors.InputFileError) as kind:
            ws.upload(MAKER, "../../etc/passwd", b"x", label="")
        assert str(kind.value).endswith("is not a .csv or .xlsx file")
        with pytest.raises(errors.InputFileError) as big:
            ws.upload(MAKER, "pay.csv", FILE.encode() * 2, label="")
        assert "is larger than the 0 MB limit for uploads" in str(big.value)
        with pytest.raises(errors.NotAllowed):
            ws.upload(VIEWER, "pay.csv", FILE.encode(), label="")
        with pytest.raises(errors.NotAllowed):
            ws.upload(ADMIN, "pay.csv", FILE.encode(), label="")


# -- the users commands ------------------------------------------------------------------------------


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_users_add_list_and_disable(tmp_path: Path) -> None:
    state = str(tmp_path / "l.db")
    code, out, _ = invoke(
        "users", "add", "amina", "--role", "maker", "--password-stdin", "--state", state, stdin=PASSWORD + "\n"
    )
    assert (code, out) == (0, "added amina as maker\n")
    code, out, _ = invoke(
        "users",
        "add",
        "brian",
        "--role",
        "approver",
        "--password-stdin",
        "--totp",
        "--state",
        state,
        stdin=PASSWORD + "\n",
    )
    assert code == 0 and "it is not shown again" in out and "otpauth://totp/batch-payouts:brian?secret=" in out

    code, out, _ = invoke("users", "list", "--state", state)
    assert code == 0 and "amina" in out and "approver" in out and "active" in out

    assert invoke("users", "disable", "amina", "--state", state)[:2] == (
        0,
        "disabled amina: they can no longer sign in\n",
    )
    assert "disabled" in invoke("users", "list", "--state", state)[1]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("users", "add", "amina", "--role", "boss", "--password-stdin"),
            PASSWORD,
            "Invalid value for --role: 'boss' is not a role: use maker, approver, viewer or admin",
        ),
        (
            ("users", "add", "amina", "--role", "maker", "--password-stdin"),
            "short",
            "Invalid value for password: the password is too short: use at least 10 characters",
        ),
        (
            ("users", "add", "Amina Njeri", "--role", "maker", "--password-stdin"),
            PASSWORD,
            "Invalid value for NAME: 'Amina Njeri' is not a username",
        ),
        (("users", "disable", "nobody"), None, "error: no person named 'nobody'"),
    ],
)
def test_users_commands_refuse_with_a_sentence_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    code, _, err = invoke(*args, "--state", str(tmp_path / "l.db"), stdin=stdin)
    assert code == 2 and message in " ".join(err.split())


def test_adding_a_name_twice_is_refused(tmp_path: Path) -> None:
    state = str(tmp_path / "l.db")
    invoke("users", "add", "amina", "--role", "maker", "--password-stdin", "--state", state, stdin=PASSWORD)
    code, _, err = invoke(
        "users", "add", "amina", "--role", "viewer", "--password-stdin", "--state", state, stdin=PASSWORD
    )
    assert (code, err) == (2, "error: a person named 'amina' already exists\n")


def test_the_command_line_does_not_pay_a_console_batch_before_it_is_approved(tmp_path: Path) -> None:
    (tmp_path / "pay.csv").write_text(FILE)
    for ws in workspace_for(tmp_path, parse_policy("[approval]\nsandbox = true\n")):
        uploaded = ws.upload(MAKER, "pay.csv", (tmp_path / "pay.csv").read_bytes(), label="2026-11")
        assert uploaded.draft is not None
        batch_id = ws.submit_draft(APPROVER, uploaded.draft)
    where = ["--sandbox", "--yes", "--state", str(tmp_path / "l.db")]
    for command in (["resume", batch_id], ["run", str(tmp_path / "pay.csv"), "--label", "2026-11"]):
        result = CliRunner().invoke(main, [*command, *where])
        assert result.exit_code == 2, result.output
        assert result.output.splitlines()[-1] == (
            f"error: batch {batch_id} is awaiting approval in the console; "
            "it is paid only once an approver approves it there"
        )
    with sqlite3.connect(tmp_path / "l.db") as db:
        assert db.execute("SELECT COUNT(*) FROM audit WHERE path LIKE '%withdraw%'").fetchone()[0] == 0

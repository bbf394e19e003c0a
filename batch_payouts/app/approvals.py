"""A batch's way through the console: made (uploaded), submitted for approval, approved by a
person who typed its total (someone other than its maker under the two-person rule), run,
finished; held rows accepted by an approver; failed rows retried as a new batch that needs a new
approval. Every step is an action in the ledger with who and when."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from batch_payouts import errors
from batch_payouts.app import payouts
from batch_payouts.app.people import Action, Person, require
from batch_payouts.app.session import Session
from batch_payouts.app.stages import ACCEPTED, APPROVED, SUBMITTED, UPLOADED, latest_decision
from batch_payouts.engine.plan import CurrencyPlan, Plan
from batch_payouts.ledger import ActionRecord, Ledger
from batch_payouts.model import RowState
from batch_payouts.policy import Policy

OPEN = frozenset({RowState.SUBMITTING, RowState.SUBMITTED, RowState.UNKNOWN})


class Stage(StrEnum):
    """Where a batch is; the value is how a page says it."""

    DRAFT = "not submitted"
    AWAITING = "awaiting approval"
    APPROVED = "approved, not running"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(frozen=True)
class People:
    """Who made (uploaded or submitted) a batch and who approved it, in order."""

    makers: tuple[str, ...]
    approvers: tuple[str, ...]


def people_of(actions: Iterable[ActionRecord]) -> People:
    makers: list[str] = []
    approvers: list[str] = []
    for a in actions:
        if a.action in (UPLOADED, SUBMITTED) and a.actor not in makers:
            makers.append(a.actor)
        if a.action == APPROVED and a.actor not in approvers:
            approvers.append(a.actor)
    return People(tuple(makers), tuple(approvers))


def to_pay(ledger: Ledger, batch_id: str) -> Plan:
    """What approving the batch lets leave: rows READY to send, per currency (major units),
    counted and summed by the ledger."""
    plan = Plan()
    for state, currency, rows, total in ledger.totals(batch_id):
        if state is RowState.READY and currency:
            plan.currencies[currency] = CurrencyPlan(currency, rows, total, Decimal(0), None)
    return plan


def stage_of(ledger: Ledger, batch_id: str, *, running: bool) -> Stage:
    """The batch's stage: RUNNING while a worker pays it; FINISHED when no row is left to send or
    in flight; else the latest of submitted / approved (or a held row accepted) decides."""
    if running:
        return Stage.RUNNING
    left = any(
        rows and (state in OPEN or (state is RowState.READY and currency))
        for state, currency, rows, _ in ledger.totals(batch_id)
    )
    if not left:
        return Stage.FINISHED
    latest = latest_decision(ledger, batch_id)
    if latest in (APPROVED, ACCEPTED):
        return Stage.APPROVED
    if latest == SUBMITTED:
        return Stage.AWAITING
    return Stage.DRAFT


def submit(session: Session, person: Person, batch_id: str, *, running: bool) -> None:
    """The maker asks for approval of a batch not yet submitted."""
    require(person, Action.SUBMIT)
    session.batch_here(batch_id)
    stage = stage_of(session.ledger, batch_id, running=running)
    if stage is not Stage.DRAFT:
        raise errors.WrongStage(batch_id, stage.value, "only a batch not yet submitted can be submitted")
    total = to_pay(session.ledger, batch_id).grand_total
    session.ledger.record_action(batch_id, person.name, SUBMITTED, f"total {total}")


def needs_second_person(session: Session, policy: Policy, batch_id: str) -> bool:
    """The two-person rule for this batch: every LIVE batch (above the policy's threshold), and
    SANDBOX batches when the policy says so."""
    totals = {c: p.total for c, p in to_pay(session.ledger, batch_id).currencies.items()}
    return policy.approval.two_people(live=session.environment().kind == "LIVE", totals=totals)


def approve(session: Session, policy: Policy, person: Person, batch_id: str, typed: str, *, running: bool) -> None:
    """An approver approves a batch awaiting approval by typing its total; refused for its maker
    under the two-person rule. The caller starts the run."""
    require(person, Action.APPROVE)
    session.batch_here(batch_id)
    ledger = session.ledger
    stage = stage_of(ledger, batch_id, running=running)
    if stage is not Stage.AWAITING:
        raise errors.WrongStage(batch_id, stage.value, "only a batch awaiting approval can be approved")
    if needs_second_person(session, policy, batch_id) and person.name in people_of(ledger.actions(batch_id)).makers:
        raise errors.SamePerson(person.name, batch_id)
    plan = to_pay(ledger, batch_id)
    if not payouts.total_matches(typed, plan):
        raise errors.TotalNotConfirmed(typed.strip() or "nothing", plan.grand_total)
    ledger.record_approval(batch_id, person.name, " ".join(typed.split()))


def resume(session: Session, policy: Policy, person: Person, batch_id: str) -> None:
    """An approver starts paying again an approved batch that stopped (no new typed total): the
    same rules as approving it."""
    require(person, Action.APPROVE)
    session.batch_here(batch_id)
    if (
        needs_second_person(session, policy, batch_id)
        and person.name in people_of(session.ledger.actions(batch_id)).makers
    ):
        raise errors.SamePerson(person.name, batch_id)
    session.ledger.record_action(batch_id, person.name, "asked to pay the rows left")


def accept_held(session: Session, policy: Policy, person: Person, batch_id: str, row: int, *, running: bool) -> None:
    """An approver lets a held row be paid (recorded with who and when); the caller runs the batch
    again. Not while it runs, and not by its maker under the two-person rule."""
    require(person, Action.ACCEPT_HELD)
    if running:
        raise errors.WrongStage(batch_id, Stage.RUNNING.value, "wait for the run to finish before accepting rows")
    if (
        needs_second_person(session, policy, batch_id)
        and person.name in people_of(session.ledger.actions(batch_id)).makers
    ):
        raise errors.SamePerson(person.name, batch_id)
    payouts.accept_names(session, batch_id, [row], who=person.name)
    session.ledger.record_action(batch_id, person.name, ACCEPTED, f"row {row}")

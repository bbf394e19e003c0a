"""Hook points for the kill tests and the broken-build tests: inert in the shipped package.

``point(name)`` calls ``on_point`` when a test has installed one (the crash-point tests install a
hook that SIGKILLs the process on a chosen pass); ``broken(guard)`` is true only for a guard a
test has put in ``removed_guards`` (to show that the guard's own test fails without it). Nothing
in the package sets either, and no environment variable does: the tests inject them, in-process
with monkeypatch and in real processes through ``tests/launch.py``.
"""

from __future__ import annotations

from collections.abc import Callable

POINTS = (
    "after_validation",
    "after_batch_persisted",
    "after_customer_lookup",
    "after_customer_post",
    "after_customer_commit",
    "after_submitting_commit",
    "after_response_before_commit",
    "after_status_commit",
    "inside_reconcile_after_read",
    "inside_receiver_after_verify",
    "while_writing_results",
)
GUARDS = ("reconciliation", "grace", "constant_time_compare", "output_escaping", "zip_cap", "send_time_claim")

on_point: Callable[[str], None] | None = None
removed_guards: frozenset[str] = frozenset()


def point(name: str) -> None:
    """A named moment a kill test may stop the process at; does nothing unless a hook is installed."""
    hook = on_point
    if hook is not None:
        hook(name)


def broken(guard: str) -> bool:
    """True only when a test removed ``guard`` to see its test fail; never in normal use."""
    return guard in removed_guards

"""Named moments for the kill tests: inert in the shipped package.

``point(name)`` calls ``on_point`` when a test has installed one (the crash-point tests install a
hook that SIGKILLs the process on a chosen pass). Nothing in the package sets it, and no
environment variable does: the tests install it, in-process with monkeypatch and in real processes
through ``tests/launch.py``. (The broken builds that show each money-safety guard's test failing
without it live in the tests alone: ``tests/hooks.py`` replaces the guard's function.)
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

on_point: Callable[[str], None] | None = None


def point(name: str) -> None:
    """A named moment a kill test may stop the process at; does nothing unless a hook is installed."""
    hook = on_point
    if hook is not None:
        hook(name)

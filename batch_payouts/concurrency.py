"""Failures of steps run together, reported as the failure of one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from batch_payouts import errors


def first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The failure a person should hear about from ``group`` (nested groups opened): the first of
    our own errors, else the first other error, else the first interruption or cancellation. A full
    disk is then a full disk, whichever of the concurrent tasks met it."""
    leaves = _leaves(group)
    ours = (e for e in leaves if isinstance(e, errors.BatchPayoutsError))
    return next(ours, next((e for e in leaves if isinstance(e, Exception)), leaves[0]))


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """Steps run together fail as one: :func:`first_cause`, raised as itself."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise first_cause(group) from group


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found

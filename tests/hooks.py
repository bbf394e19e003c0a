"""The test-only hooks: the kill tests' crash hook and the broken builds, and the switches that
install them.

The shipped package only holds inert crash points (``batch_payouts.crash``) and, for each
money-safety guard, a function that does the guard's work. A broken build replaces that function
with an unsafe one (:data:`REMOVALS`), to show that the guard's own test fails without it. These
are installed by the tests: in-process through the ``--without-guard`` pytest option
(tests/conftest.py) and in real processes by ``tests/launch.py`` from the variables below, which
only that launcher reads.
"""

from __future__ import annotations

import contextlib
import importlib
import operator
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

from batch_payouts import crash
from batch_payouts.engine.submit import Context
from batch_payouts.ledger import RowRecord
from batch_payouts.model import RowState

CRASH_VAR = "PAYOUTS_TEST_CRASH"  # point:n[,point:n]: SIGKILL on the n-th pass of that point
BROKEN_VAR = "PAYOUTS_TEST_BROKEN"  # guard[,guard]: a build without these safety guards
RECEIVER_VAR = "PAYOUTS_TEST_RECEIVER_TO"  # a relay URL told where the run's webhook receiver listens
VARS = (CRASH_VAR, BROKEN_VAR, RECEIVER_VAR)
CRASH_MARK = "crash point reached: "


def crash_targets(spec: str) -> dict[str, int]:
    """``after_submitting_commit:3,while_writing_results`` -> {name: pass}; unknown names are refused."""
    targets: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in crash.POINTS:
            raise SystemExit(f"tests/launch.py: no crash point {name!r}")
        targets[name] = int(count or 1)
    return targets


async def _resend_without_asking(ctx: Context, row: RowRecord, apply: object) -> None:
    """The build without reconciliation: an UNKNOWN row is sent again without asking the provider."""
    ctx.ledger.move(row.batch_id, row.row, RowState.READY)


def _believe_first_not_found(ctx: Context, row: RowRecord, now: float) -> None:
    """The build without the grace period: one "not found" is believed at once."""
    ctx.ledger.move(row.batch_id, row.row, RowState.READY, not_found_at=None)


def _nothing_inflated(*args: object) -> int:
    """The build without the zip cap: no member is inflated and counted before it is read."""
    return 0


# guard -> (module, function, the unsafe function that replaces it in the broken build)
REMOVALS: dict[str, tuple[str, str, Callable[..., object]]] = {
    "reconciliation": ("batch_payouts.engine.submit", "reconcile", _resend_without_asking),
    "grace": ("batch_payouts.engine.submit", "not_found", _believe_first_not_found),
    "constant_time_compare": ("batch_payouts.kotani.webhooks", "same_signature", operator.eq),
    "output_escaping": ("batch_payouts.sheets.write", "_number_or_phone", lambda text: True),
    "zip_cap": ("batch_payouts.sheets.guard", "_inflate_counting", _nothing_inflated),
    "send_time_claim": ("batch_payouts.ledger", "blocks_sending", lambda *claim: False),
}
GUARDS = tuple(REMOVALS)
removed: frozenset[str] = frozenset()  # the guards this process runs without


def guards(spec: str) -> frozenset[str]:
    named = frozenset(filter(None, (g.strip() for g in spec.split(","))))
    if unknown := named - set(GUARDS):
        raise SystemExit(f"tests/launch.py: no guard {sorted(unknown)}")
    return named


def remove_guards(names: Iterable[str], assign: Callable[[object, str, object], None] = setattr) -> None:
    """Make this process the build without the guards ``names``: each guard's function replaced by
    its unsafe one through ``assign`` (``setattr``, or a monkeypatch's, undone after the tests)."""
    named = frozenset(names)
    for name in sorted(named):
        module, function, unsafe = REMOVALS[name]
        assign(importlib.import_module(module), function, unsafe)
    assign(sys.modules[__name__], "removed", named)


def killer(targets: Mapping[str, int]) -> Callable[[str], None]:
    """A crash hook that prints which point struck, then SIGKILLs this process (no clean-up at all)."""
    passes: Counter[str] = Counter()
    lock = threading.Lock()

    def hook(name: str) -> None:
        with lock:
            passes[name] += 1
            strike = targets.get(name) == passes[name]
        if strike:
            sys.stderr.write(f"{CRASH_MARK}{name}:{passes[name]}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def announce_receiver(relay: str) -> None:
    """Make the webhook receiver of this process tell ``relay`` where it listens once it does."""
    import httpx

    from batch_payouts.engine import receiver_server

    def tell(url: str) -> None:
        httpx.post(relay, json={"url": url}, timeout=5).raise_for_status()

    receiver_server.serve_receiver = reporting_to(receiver_server.serve_receiver, tell)  # type: ignore[assignment]


def reporting_to(
    serve_receiver: Callable[..., contextlib.AbstractContextManager[str]], tell: Callable[[str], None]
) -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``serve_receiver`` that also calls ``tell(url)`` with the URL it bound (port 0 in the tests)."""

    @contextlib.contextmanager
    def serving(*args: object, **kwargs: object) -> Iterator[str]:
        with serve_receiver(*args, **kwargs) as url:
            tell(url)
            yield url

    return serving


def install_from(environ: Mapping[str, str]) -> None:
    """Install the hooks the launcher's environment asks for."""
    if targets := crash_targets(environ.get(CRASH_VAR, "")):
        crash.on_point = killer(targets)
    remove_guards(guards(environ.get(BROKEN_VAR, "")))
    if relay := environ.get(RECEIVER_VAR):
        announce_receiver(relay)

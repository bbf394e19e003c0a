"""The test-only hooks of ``batch_payouts.crash``, and the switches that install them.

The shipped package only holds inert hook points; these are installed by the tests: in-process
through the ``--without-guard`` pytest option (tests/conftest.py) and in real processes by
``tests/launch.py`` from the variables below, which only that launcher reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from batch_payouts import crash

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


def guards(spec: str) -> frozenset[str]:
    named = frozenset(filter(None, (g.strip() for g in spec.split(","))))
    if unknown := named - set(crash.GUARDS):
        raise SystemExit(f"tests/launch.py: no guard {sorted(unknown)}")
    return named


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
    crash.removed_guards = guards(environ.get(BROKEN_VAR, ""))
    if relay := environ.get(RECEIVER_VAR):
        announce_receiver(relay)

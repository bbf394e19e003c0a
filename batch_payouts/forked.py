"""Run a function in a forked copy of this process, to use a second core for a long piece of work.

The copy starts at once (nothing is imported again) and shares nothing with this process after
the fork: what it returns comes back pickled through a pipe. It is only a way to go faster, so a
caller always has a way to do the work itself: :meth:`Forked.start` gives None where a fork is
not safe, and :meth:`Forked.result` gives None when the copy failed in any way (an exception, a
kill, a result that cannot be pickled). The copy never prints: an exception in it is not shown
(the caller does the work again and meets the same exception, if any, in its own process).

A fork is made only from a process with one thread (the command line): a thread of another
process's making (a server's) may hold a lock at the moment of the fork that the copy could
then never take. The copy ignores Ctrl-C (this process decides), is killed by the kernel when
this process dies (Linux), and leaves through ``os._exit``: no buffered output or file of this
process is flushed twice and no exit handler runs in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1  # prctl option (Linux): a signal sent to this process when its parent dies


def can_fork() -> bool:
    """True where a fork is safe: the platform has one and this process runs a single thread."""
    return hasattr(os, "fork") and threading.active_count() == 1


class Forked(Generic[T]):
    """``func()`` running in a forked copy of this process."""

    def __init__(self, pid: int, reader: int) -> None:
        self.pid = pid
        self._reader = reader
        self._done = False

    @classmethod
    def start(cls, func: Callable[[], T]) -> Forked[T] | None:
        """Fork and call ``func`` in the copy; None when no fork can be made here."""
        if not can_fork():
            return None
        for stream in (sys.stdout, sys.stderr):  # what is buffered now must not be written twice
            with contextlib.suppress(Exception):
                stream.flush()
        reader, writer = os.pipe()
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            os.close(reader)
            os.close(writer)
            return None
        if pid == 0:  # pragma: no cover - the copy (its coverage is not collected)
            os.close(reader)
            _run_in_copy(func, writer, parent)
        os.close(writer)
        return cls(pid, reader)

    def result(self) -> T | None:
        """Wait for the copy to end; what ``func`` returned, or None when it failed."""
        chunks = []
        try:
            while chunk := os.read(self._reader, 1 << 20):
                chunks.append(chunk)
        finally:
            self._finish()
        try:
            status, value = pickle.loads(b"".join(chunks))  # noqa: S301 - from our own fork, through a private pipe
        except Exception:
            return None
        return value if status == "ok" else None

    def cancel(self) -> None:
        """Stop the copy (its work is not needed) and wait for it."""
        if not self._done:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        os.close(self._reader)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _run_in_copy(func: Callable[[], object], writer: int, parent: int) -> None:  # pragma: no cover
    """The copy's whole life: call ``func``, send its result (or that it failed), and leave."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with(parent)
        gc.freeze()  # what the copy inherited is never collected (nor flushed) here
        try:
            data = pickle.dumps(("ok", func()))
        except BaseException:
            data = pickle.dumps(("failed", None))
        view = memoryview(data)
        while view:
            view = view[os.write(writer, view) :]
    finally:
        os._exit(0)


def _die_with(parent: int) -> None:  # pragma: no cover - runs in the copy
    """Have the kernel kill this copy when its parent dies (Linux); leave if it is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)

"""Run a job in a fresh helper process, to use a second core for a long piece of work.

The helper is a new Python process (this Python, this package, see :func:`_command`), not a fork: it inherits
no open database connection, lock, thread or buffered output of this one, so it is safe from any
process (the command line, the console's server). The job is a picklable callable (a module-level
function, or a ``functools.partial`` of one, with picklable arguments); it goes to the helper on
its standard input and what it returns comes back pickled on its standard output.

A helper is only a way to go faster, so a caller always has a way to do the work itself:
:meth:`HelperProcess.start` gives None when no helper can be started (the job does not pickle,
the platform cannot start one) and :meth:`HelperProcess.result` gives None when the helper failed
in any way (an exception, a kill, a result that does not pickle).

The helper never prints (its error output goes nowhere), runs in a session of its own (Ctrl-C at
the terminal reaches this process alone, which stops the helper), and dies with this process
(Linux: the kernel kills it; elsewhere it ends when it cannot send its result).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1  # prctl option (Linux): the signal this process gets when its parent dies


class HelperProcess(Generic[T]):
    """``job()`` running in a helper process."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    @classmethod
    def start(cls, job: Callable[[], T]) -> HelperProcess[T] | None:
        """Start a helper running ``job``; None when it cannot be started here."""
        try:
            data = pickle.dumps((sys.path, job))
        except Exception:
            return None
        try:
            process = subprocess.Popen(  # noqa: S603 - this Python, this package, no user input
                _command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except Exception:  # no usable Python to start (none, or not found)
            return None
        helper = cls(process)
        try:
            _send(process.stdin, data)
        except BaseException as exc:  # a broken pipe gives no helper; anything else is raised on
            helper.cancel()
            if isinstance(exc, OSError):
                return None
            raise
        return helper

    def result(self) -> T | None:
        """Wait for the helper to end; what ``job`` returned, or None when it failed. Stopped
        while waiting (Ctrl-C), this stops the helper too."""
        process = self._process
        assert process.stdout is not None
        try:
            data = process.stdout.read()
            process.wait()
        except BaseException:
            self.cancel()
            raise
        process.stdout.close()
        try:
            status, value = pickle.loads(data)  # noqa: S301 - from our own helper, through a private pipe
        except Exception:
            return None
        return value if status == "ok" and process.returncode == 0 else None

    def cancel(self) -> None:
        """Stop the helper (its work is not needed) and wait for it."""
        process = self._process
        with contextlib.suppress(OSError):
            process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


# The helper's start: its import path is the package's folder alone until it has this process's
# (``-P``: not the working directory, where any file could stand in for a module).
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from batch_payouts.helper import _main; _main(int(sys.argv[2]))"


def _command() -> list[str]:
    """This Python with this process's interpreter options (``-E``, ``-s``, ``-I``...), starting
    the helper from the folder this package was imported from: it runs the very code this
    process runs, and finds every module the way this process does (its ``sys.path``)."""
    package_root = str(Path(__file__).resolve().parent.parent)
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]  # what multiprocessing passes on
    return [sys.executable, *flags, "-P", "-c", _BOOT, package_root, str(os.getpid())]


def _send(stream: IO[bytes] | None, data: bytes) -> None:
    assert stream is not None
    stream.write(data)
    stream.close()


def _die_with(parent: int) -> None:  # pragma: no cover - runs in the helper
    """Have the kernel kill this process when its parent dies (Linux); leave if it is gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _main(parent: int) -> None:  # pragma: no cover - runs in the helper
    """The helper's whole life: read the job, run it, send back its result or that it failed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    outcome: tuple[str, Any]
    try:
        path, job = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from our own parent, private pipe
        sys.path[:] = path
        outcome = ("ok", job())
        data = pickle.dumps(outcome)
    except BaseException:
        data = pickle.dumps(("failed", None))
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()

"""Where the API key comes from: environment, a 0600 key file, the OS keyring, or a hidden
prompt. Each is used by a real process against the sandbox; the key never shows in that
process's command line, its output or the terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support import SandboxProcess, tool_command, tool_env

pytestmark = pytest.mark.slow  # real processes and a terminal, a few seconds each

KEY = "key-source-canary-7f3"


def _cmdline_once_started(pid: int) -> bytes:
    """The process's command line once it is running our tool (not the pre-exec fork)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            break
        if b"batch_payouts" in cmdline:
            return cmdline
        time.sleep(0.01)
    raise AssertionError("the tool's command line could not be read while it ran")


def _env_for(source: str, sandbox: SandboxProcess, tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    env = tool_env(KEY, sandbox.url)
    if source == "environment":
        return env, []
    del env["KOTANI_API_KEY"]
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHON_KEYRING_BACKEND"] = "tests.keyring_backend.FileKeyring"
    env["TEST_KEYRING_FILE"] = str(tmp_path / "keyring.json")
    if source == "key file":
        key_file = tmp_path / "key"
        key_file.write_text(KEY + "\n")
        key_file.chmod(0o600)
        return env, ["--api-key-file", str(key_file)]
    if source == "keyring":
        (tmp_path / "keyring.json").write_text(json.dumps({"batch-payouts/kotani": KEY}))
    return env, []


@pytest.mark.parametrize("source", ["environment", "key file", "keyring"])
def test_the_key_is_used_and_never_shown(tmp_path: Path, source: str) -> None:
    with SandboxProcess(KEY, speed=10) as sandbox:
        env, extra = _env_for(source, sandbox, tmp_path)
        args = tool_command("banks", "--currency", "KES", "--state", str(tmp_path / "l.db"), *extra)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        cmdline = _cmdline_once_started(proc.pid)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"KCB" in out or b"Equity" in out  # the sandbox answered: the key was accepted
    assert KEY.encode() not in cmdline + out + err


def test_the_prompt_hides_the_key_and_uses_it(tmp_path: Path) -> None:
    with SandboxProcess(KEY, speed=10) as sandbox:
        env, _ = _env_for("prompt", sandbox, tmp_path)
        master, slave = pty.openpty()

        def controlling_terminal() -> None:  # the child's /dev/tty is our pty, as in a real terminal
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            tool_command("banks", "--currency", "KES", "--state", str(tmp_path / "l.db")),
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=controlling_terminal,
        )
        os.close(slave)
        cmdline = _cmdline_once_started(proc.pid)
        screen = _read_until(master, b"Kotani API key")
        os.write(master, KEY.encode() + b"\n")
        out, err = proc.communicate(timeout=60)
        screen += _read_available(master)
        os.close(master)
    assert proc.returncode == 0, err.decode()
    assert b"KCB" in out or b"Equity" in out
    assert KEY.encode() not in cmdline + out + err + screen, "the key was echoed or printed"


def _read_until(fd: int, wanted: bytes) -> bytes:
    seen = b""
    deadline = time.monotonic() + 20
    while wanted not in seen:
        assert time.monotonic() < deadline, f"no prompt; the terminal showed {seen!r}"
        seen += _read_available(fd, wait=0.1)
    return seen


def _read_available(fd: int, wait: float = 0.0) -> bytes:
    data = b""
    while select.select([fd], [], [], wait)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        data += chunk
        wait = 0.0
    return data

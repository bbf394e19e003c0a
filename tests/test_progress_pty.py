"""The live progress a person watches in an 80-column terminal: a real run in a pseudo-terminal,
against a sandbox whose payouts settle seconds after they are sent."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.support import SandboxProcess, payout_file, tool_command

pytestmark = pytest.mark.slow

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args: list[str], env: dict[str, str], columns: int = 80) -> tuple[int, list[str]]:
    """Run ``args`` with a pseudo-terminal of ``columns`` columns as its stdout and stderr; return the
    exit code and every line drawn (control sequences removed, each redraw its own line)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        args,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"},
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    text = _ANSI.sub("", drawn.decode("utf-8", errors="replace"))
    return proc.wait(timeout=60), [line for line in re.split(r"[\r\n]+", text) if line.strip()]


def test_paid_rises_during_the_run_with_an_eta_and_amounts_in_80_columns(tmp_path: Path) -> None:
    data = payout_file(tmp_path / "pay.csv", 30)
    with SandboxProcess("pty-key", speed=1) as sb:
        env = {**os.environ, "KOTANI_API_KEY": "pty-key"}
        code, lines = run_in_terminal(
            tool_command(
                "run",
                str(data),
                "--base-url",
                sb.url,
                "--state",
                str(tmp_path / "l.db"),
                "--yes",
                "--rate",
                "120/60,10/5",
                "--poll-interval",
                "0.5",
                "--no-name-check",
            ),
            env,
        )
    assert code == 0, "\n".join(lines)
    bars = [line for line in lines if re.search(r"\d+/30$", line)]
    amounts = [line for line in lines if line.startswith("KES ")]
    assert max(len(line) for line in bars + amounts) <= 80, [line for line in bars + amounts if len(line) > 80]
    paid_while_sending = {
        int(m.group(1)) for line in bars if (m := re.match(r"paid (\d+) · .*not sent \d+ · ETA \d+:\d\d", line))
    }
    assert paid_while_sending and min(paid_while_sending) < 30, bars  # paid moves before the last payout leaves
    paid_seen = sorted({int(m.group(1)) for line in bars if (m := re.match(r"paid (\d+)", line))})
    assert len(paid_seen) >= 3 and paid_seen[-1] == 30, paid_seen
    assert any(re.fullmatch(r"KES paid [\d,]+ · waiting [\d,]+ · not sent [\d,]+", line) for line in amounts), amounts

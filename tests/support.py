"""Test helpers: serving any ASGI app on a loopback port, the sandbox's catalog, real processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batch_payouts import serve
from batch_payouts.catalog import Catalog
from batch_payouts.catalog_reads import fetch_catalog
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.sandbox import SandboxState, serve_in_thread
from tests import hooks


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a thread; yield its base URL."""
    with serve.in_thread(app, lifespan="off") as url:
        yield url


def sandbox_catalog() -> Catalog:
    """The catalog (countries, networks, banks) as the client fetches it from a loopback sandbox."""

    async def fetch(url: str) -> Catalog:
        async with KotaniClient(url, ApiKey("k")) as client:
            return await fetch_catalog(client)

    with serve_in_thread(SandboxState(api_key="k"), deliver_webhooks=False) as sb:
        return anyio.run(fetch, sb.base_url)


# -- real processes: the sandbox and the tool, as a user would run them ----------------------------

# Command-line options that make a run against a loopback sandbox quick: allowances far above the
# provider's, a short visibility lag, attempt deadline and poll interval; no prompt, no progress.
FAST = [
    "--yes",
    "--quiet",
    "--reads-rate",
    "2000/5",
    "--rate",
    "3000/60,500/5",
    "--visibility-lag",
    "0.5",
    "--attempt-timeout",
    "2",
    "--poll-interval",
    "0.2",
]
LAUNCHER = Path(__file__).resolve().parent / "launch.py"
_LISTENING = re.compile(rb"Kotani sandbox listening on (http://\S+)")


class SandboxProcess:
    """``batch-payouts sandbox --port 0`` in its own process, so that it outlives the runs it serves;
    its URL is the one it printed once listening."""

    def __init__(
        self,
        api_key: str,
        *,
        speed: float = 10.0,
        knobs: dict[str, Any] | None = None,
        balances: dict[str, str] | None = None,
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        args = [
            sys.executable,
            "-m",
            "batch_payouts",
            "sandbox",
            "--port",
            "0",
            "--api-key",
            api_key,
            "--clock-speed",
            str(speed),
        ]
        for name, value in (knobs or {}).items():
            args += ["--knob", f"{name}={json.dumps(value)}"]
        for cur, amount in (balances or {}).items():
            args += ["--balance", f"{cur}={amount}"]
        if webhook_secret:
            args += ["--webhook-secret", webhook_secret]
        if webhook_url:
            args += ["--webhook-url", webhook_url]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)
        self.url = self._announced_url(deadline=time.monotonic() + 20)

    def _announced_url(self, deadline: float) -> str:
        while True:
            self.log.seek(0)
            said = self.log.read()
            if found := _LISTENING.search(said):
                return found.group(1).decode()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("sandbox did not start: " + said.decode(errors="replace"))
            time.sleep(0.02)  # waiting on another process's start-up, not on test time

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]

    def knobs(self, **values: Any) -> None:
        httpx.post(
            self.url + "/__sandbox__/knobs",
            json=values,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        ).raise_for_status()

    def ledger(self) -> dict[str, Any]:
        return dict(self.get("/__sandbox__/ledger"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WebhookRelay:
    """The public callback URL in front of a tool's webhook receiver, as a reverse proxy would be:
    the sandbox delivers to ``url`` for good, while the receiver behind it listens on a port of its
    own choosing (port 0) in each new process. A tool started with ``relay.hook_env()`` tells the
    relay where its receiver listens; while nothing listens there the relay answers 502, and the
    sandbox delivers again later, as it would to a public URL whose host is down."""

    def __init__(self) -> None:
        self.target: str | None = None
        app = Starlette(
            routes=[
                Route("/kotani", self._forward, methods=["POST"]),
                Route("/receiver", self._point_at, methods=["POST"]),
            ]
        )
        self._serving = serve_app(app)
        self.base_url = self._serving.__enter__()
        self.url = self.base_url + "/kotani"

    def hook_env(self) -> dict[str, str]:
        return {hooks.RECEIVER_VAR: self.base_url + "/receiver"}

    async def _point_at(self, request: Request) -> Response:
        self.target = str((await request.json())["url"]) + "/kotani"
        return Response(status_code=204)

    async def _forward(self, request: Request) -> Response:
        if self.target is None:
            return Response(status_code=502)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(self.target, content=await request.body(), headers=headers)
        except httpx.HTTPError:
            return Response(status_code=502)
        return Response(answer.content, status_code=answer.status_code)

    def close(self) -> None:
        self._serving.__exit__(None, None, None)

    def __enter__(self) -> WebhookRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tool_command(*args: str, with_hooks: bool = False) -> list[str]:
    """The tool as a user runs it; ``with_hooks=True`` runs it through tests/launch.py, which installs
    the test-only hooks its environment asks for (the package itself reads none)."""
    if with_hooks:
        return [sys.executable, str(LAUNCHER), *args]
    return [sys.executable, "-m", "batch_payouts", *args]


def asks_for_hooks(env: dict[str, str]) -> bool:
    """True when ``env`` sets a test-only hook: only then is the tool started through the launcher."""
    return any(name in env for name in hooks.VARS)


def run_tool(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tool_command(*args, with_hooks=asks_for_hooks(env)),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_tool(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    try:
        return subprocess.Popen(tool_command(*args, with_hooks=asks_for_hooks(env)), env=env, stdout=fh, stderr=fh)
    finally:
        fh.close()


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def tool_env(api_key: str, base_url: str, **extra: str) -> dict[str, str]:
    """A clean environment for the tool. A build with guards removed (``--without-guard``) is passed
    on to processes started through tests/launch.py."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOTANI_", "BATCH_PAYOUTS_", "PAYOUTS_TEST_"))}
    env.update({"KOTANI_API_KEY": api_key, "KOTANI_BASE_URL": base_url, **without_guards_env(), **extra})
    return env


def without_guards_env() -> dict[str, str]:
    """tests/launch.py's variable for the guards ``--without-guard`` removed in this test run, if any."""
    return {hooks.BROKEN_VAR: ",".join(sorted(hooks.removed))} if hooks.removed else {}


def payout_file(path: Path, rows: int, *, start: int = 0, currency_mix: bool = False) -> Path:
    """``rows`` valid rows with distinct Kenyan payees (some till), and UGX ones if asked."""
    lines = ["name,phone,country,amount,currency,method,till_number"]
    for i in range(start, start + rows):
        if currency_mix and i % 3 == 2:
            lines.append(f"Person {i},+25677{2000000 + i:07d},UG,{1000 + i},UGX,mobile_money,")
        elif i % 10 == 9:
            lines.append(f"Shop {i},,KE,{100 + i},KES,till,{174000 + i}")
        else:
            lines.append(f"Person {i},+25471{2000000 + i:07d},KE,{100 + i},KES,mobile_money,")
    path.write_text("\n".join(lines) + "\n")
    return path


def results_file(folder: Path, stem: str, suffix: str = ".csv") -> Path:
    """The results file the first run of ``stem`` wrote (its name carries the batch id)."""
    (found,) = sorted(folder.glob(f"{stem}.b*.results{suffix}"))
    return found


class ConsoleProcess:
    """``batch-payouts serve --sandbox --port 0`` in its own process, on ``state``; its URL is the one
    it printed once listening. ``args``: more options (``--policy``, ``--notify-url`` …)."""

    def __init__(self, state: Path, *args: str, wait: bool = True) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batch_payouts", "serve", "--sandbox", "--port", "0", "--state", str(state), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.url = ""
        if wait:
            self.ready()

    def ready(self) -> str:
        """The console's URL, once it listens (``wait=False`` lets the caller do other work meanwhile)."""
        if not self.url:
            self.url = self._announced_url(deadline=time.monotonic() + 30)
        return self.url

    def _announced_url(self, deadline: float) -> str:
        while True:
            self.log.seek(0)
            said = self.log.read()
            if found := re.search(rb"Console listening on (https?://\S+)", said):
                return found.group(1).decode()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the console did not start: " + said.decode(errors="replace"))
            time.sleep(0.02)  # waiting on another process's start-up, not on test time

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> ConsoleProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

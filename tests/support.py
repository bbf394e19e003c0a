"""Test helpers: serving any ASGI app on a loopback port, the sandbox's catalog, real processes."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio

from batch_payouts import serve
from batch_payouts.catalog import Catalog, fetch_catalog
from batch_payouts.kotani.client import ApiKey, KotaniClient
from batch_payouts.sandbox import SandboxState, serve_in_thread


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

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """``batch-payouts sandbox`` in its own process, so that it outlives the runs it serves."""

    def __init__(self, api_key: str, *, speed: float = 10.0, knobs: dict[str, Any] | None = None,
                 balances: dict[str, str] | None = None, webhook_secret: str | None = None,
                 webhook_url: str | None = None) -> None:
        self.api_key = api_key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "batch_payouts", "sandbox", "--port", str(self.port),
                "--api-key", api_key, "--clock-speed", str(speed)]
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
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError("sandbox did not start: " + self.log.read().decode())
            time.sleep(0.05)

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]

    def knobs(self, **values: Any) -> None:
        httpx.post(self.url + "/__sandbox__/knobs", json=values,
                   headers={"Authorization": f"Bearer {self.api_key}"}, timeout=10).raise_for_status()

    def ledger(self) -> dict[str, Any]:
        return dict(self.get("/__sandbox__/ledger"))

    def close(self) -> None:
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


def tool_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "batch_payouts", *args]


def run_tool(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tool_command(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False)


def start_tool(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    try:
        return subprocess.Popen(tool_command(*args), env=env, stdout=fh, stderr=fh)
    finally:
        fh.close()


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def tool_env(api_key: str, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOTANI_", "BATCH_PAYOUTS_"))}
    env.update({"KOTANI_API_KEY": api_key, "KOTANI_BASE_URL": base_url, **extra})
    return env


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

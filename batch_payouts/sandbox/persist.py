"""The built-in sandbox's books kept on disk, so that a rehearsal spans several commands.

``run --sandbox`` then ``resume``, ``retry`` and ``reconcile --sandbox`` see the same payouts,
customers and balances. The books are a JSON file beside the ledger, written atomically; one
command at a time holds them (an exclusive lock on a sibling ``.lock`` file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import random
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from batch_payouts.sandbox.state import Payout, SandboxClock, SandboxState, Wallet

FORMAT = 1
SAVE_EVERY = 2.0  # seconds of real time between saves while a command runs, at the least


class SandboxBusy(Exception):
    """Another command is using the same built-in sandbox."""


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dec"}:
            return Decimal(value["$dec"])
        if set(value) == {"$tuple"}:
            return tuple(_decode(v) for v in value["$tuple"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def snapshot(state: SandboxState) -> dict[str, Any]:
    """Everything the sandbox must remember between commands, as JSON-ready data."""
    with state.lock:
        position = {id(p): i for i, p in enumerate(state.payouts)}  # list.index would make saving O(payouts²)
        return {
            "format": FORMAT, "api_key": state.api_key, "integrator": state.integrator,
            "now": state.clock.now(), "epoch": state.clock.epoch, "saved_at": time.time(),
            "rng": _encode(state.rng.getstate()), "next_number": state._next_number,
            "wallets": [_encode(dataclasses.asdict(w)) for w in state.wallets.values()],
            "customers": _encode(state.customers),
            "payouts": [_encode(dataclasses.asdict(p)) for p in state.payouts],
            "references": {ref: position[id(p)] for ref, p in state.by_reference.items()},
        }


def restore(data: dict[str, Any], *, speed: float) -> SandboxState:
    """A sandbox with the saved books, its clock going on from where it stopped."""
    clock = SandboxClock(speed=speed)
    elapsed = max(0.0, time.time() - float(data["saved_at"])) * speed
    clock.advance(float(data["now"]) + elapsed)
    clock.epoch = float(data["epoch"])
    state = SandboxState(api_key=data["api_key"], clock=clock, integrator=data["integrator"])
    state.rng = random.Random()
    state.rng.setstate(_decode(data["rng"]))
    state._next_number = int(data["next_number"])
    state.wallets = {w["currency"]: Wallet(**_decode(w)) for w in data["wallets"]}
    state.customers = _decode(data["customers"])
    state.payouts = [Payout(**_decode(p)) for p in data["payouts"]]
    state.by_reference = {ref: state.payouts[i] for ref, i in data["references"].items()}
    state.unsettled = {p.id: p for p in state.payouts if p.applied < len(p.schedule)}
    return state


def fresh(*, speed: float) -> SandboxState:
    """A new built-in sandbox with a key and an account of its own."""
    return SandboxState(api_key="sandbox-" + secrets.token_hex(8), clock=SandboxClock(speed=speed))


def save(state: SandboxState, path: Path) -> None:
    """Write the books atomically (a temporary file renamed over the old one), mode 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(snapshot(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def held(path: Path, *, speed: float) -> Iterator[SandboxState]:
    """The built-in sandbox stored at ``path`` for the length of one command, saved at the end
    (unless nothing in it changed: saving 100,000 payouts takes seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - closed below
    try:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxBusy(str(path)) from None
        state = restore(json.loads(path.read_text(encoding="utf-8")), speed=speed) if path.exists() \
            else fresh(speed=speed)
        next_save = [time.monotonic() + SAVE_EVERY]
        as_loaded = (state.rng.getstate(), bool(state.unsettled)) if path.exists() else None
        changed = [False]

        def save_now_and_then() -> None:
            # Saving costs more as the books grow: keep it under ~5 % of the time.
            changed[0] = True
            started = time.monotonic()
            if started >= next_save[0]:
                save(state, path)
                took = time.monotonic() - started
                next_save[0] = time.monotonic() + max(SAVE_EVERY, 20 * took)

        state.after_change = save_now_and_then
        try:
            yield state
        finally:
            state.after_change = None
            # Books that nothing changed (no customer, no payout, nothing left to settle, the same
            # random state) are left as they are: their clock goes on from the time they were saved.
            if changed[0] or as_loaded != (state.rng.getstate(), False) or state.unsettled:
                save(state, path)
    finally:
        lock.close()

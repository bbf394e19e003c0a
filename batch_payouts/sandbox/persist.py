"""The built-in sandbox's books kept on disk, so that a rehearsal spans several commands.

``run --sandbox`` then ``resume``, ``retry`` and ``reconcile --sandbox`` see the same payouts,
customers and balances. The books are JSON files beside the ledger, written atomically: a head
(clock, wallets, counters) naming a file of customers and payouts, read only when a command uses
them; one command at a time holds them (an exclusive lock on a sibling ``.lock`` file).

That file has one customer, payout or reference a line (JSON lines), written and read a line at a
time: the books of 100,000 payouts are never one JSON text in memory, nor a tree of its values
beside the objects made from it, and equal texts and amounts are shared as one object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import random
import secrets
import time
from collections.abc import Callable, Generator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from batch_payouts.sandbox.state import Payout, SandboxClock, SandboxState, Wallet

FORMAT = 3  # 1: one file; 2: a head, and the customers and payouts in a JSON file it names; 3: ... in JSON lines
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


def _decode(value: Any, shared: dict[Any, Any] | None = None) -> Any:
    """``value`` as :func:`_encode` found it; with ``shared``, equal texts and amounts are one
    object (the memo of one load: statuses, currencies and keys repeat in every payout)."""
    if isinstance(value, dict):
        if set(value) == {"$dec"}:
            amount = Decimal(value["$dec"])
            return amount if shared is None else shared.setdefault(("$dec", value["$dec"]), amount)
        if set(value) == {"$tuple"}:
            return tuple(_decode(v, shared) for v in value["$tuple"])
        return {_decode(k, shared): _decode(v, shared) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, shared) for v in value]
    if shared is not None and isinstance(value, str):
        return shared.setdefault(value, value)
    return value


HEAVY = ("customers", "payouts", "by_reference")  # what a settled sandbox keeps in its second file


class _Books(SandboxState):
    """A restored sandbox whose customers and payouts are read from their file when first used: a
    command that only lists wallets (``resume`` of a settled batch) never reads 100,000 payouts."""

    _read_rest: Callable[[SandboxState], None] | None = None

    def __getattr__(self, name: str) -> Any:
        read = self.__dict__.get("_read_rest")
        if name not in HEAVY or read is None:
            raise AttributeError(name)
        with self.lock:
            if self.__dict__.get("_read_rest") is not None:
                self._read_rest = None
                read(self)
        return self.__dict__[name]


def _rest_read(state: SandboxState) -> bool:
    """Whether the customers and payouts are in memory (always, but for books not touched yet)."""
    return all(name in vars(state) for name in HEAVY)


def snapshot(state: SandboxState) -> dict[str, Any]:
    """The head of the books: everything but customers and payouts, as JSON-ready data."""
    with state.lock:
        return {
            "format": FORMAT,
            "api_key": state.api_key,
            "integrator": state.integrator,
            "now": state.clock.now(),
            "epoch": state.clock.epoch,
            "saved_at": time.time(),
            "rng": _encode(state.rng.getstate()),
            "next_number": state._next_number,
            "wallets": [_encode(dataclasses.asdict(w)) for w in state.wallets.values()],
            "unsettled": len(state.unsettled),
        }


def rest_lines(state: SandboxState) -> Generator[str, None, None]:
    """The customers, payouts and references to payouts, a JSON line each (the books of format 3)."""
    with state.lock:
        for key, customer in state.customers.items():
            yield json.dumps(["customer", key, _encode(customer)])
        for payout in state.payouts:
            yield json.dumps(["payout", _encode(dataclasses.asdict(payout))])
        position = {id(p): i for i, p in enumerate(state.payouts)}  # list.index would make saving O(payouts²)
        for ref, payout in state.by_reference.items():
            yield json.dumps(["reference", ref, position[id(payout)]])


STREAM_BUFFER = 16 * 1024  # bytes read at a time; what they hold is built before any is handed on


def _put_rest_streamed(state: SandboxState, path: Path) -> None:
    """Customers and payouts from one JSON object (books of formats 1 and 2), a customer, a payout
    and a reference at a time: the object is never held whole (for 100,000 payouts that took
    over a GiB). Format 1 keeps them in the head's own file, under the same keys. A file holding a
    value ijson does not read is read whole, as before."""
    import ijson  # only books written before format 3 need it

    try:
        _install(state, *_streamed_rest(path))
    except ijson.JSONError:
        _put_rest_whole(state, json.loads(path.read_text(encoding="utf-8")))


def _streamed_rest(path: Path) -> tuple[dict[str, Any], list[Payout], dict[str, Payout]]:
    """The customers, payouts and references of one JSON object, a value at a time, equal texts
    and amounts shared."""
    import ijson

    shared: dict[Any, Any] = {}
    with path.open("rb") as fh:
        customers = {
            shared.setdefault(key, key): _decode(value, shared)
            for key, value in ijson.kvitems(fh, "customers", use_float=True, buf_size=STREAM_BUFFER)
        }
        fh.seek(0)
        payouts = [
            Payout(**_decode(p, shared))
            for p in ijson.items(fh, "payouts.item", use_float=True, buf_size=STREAM_BUFFER)
        ]
        fh.seek(0)
        references = {
            shared.setdefault(ref, ref): payouts[i]
            for ref, i in ijson.kvitems(fh, "references", buf_size=STREAM_BUFFER)
        }
    return customers, payouts, references


def _put_rest_whole(state: SandboxState, data: dict[str, Any]) -> None:
    """Customers and payouts from one JSON object read whole: books of format 1 or 2 holding a value
    ijson does not read (NaN, an infinity, an integer beyond 64 bits: only a test knob puts one
    there), at the cost in memory of holding that object."""
    payouts = [Payout(**_decode(p)) for p in data["payouts"]]
    _install(state, _decode(data["customers"]), payouts, {ref: payouts[i] for ref, i in data["references"].items()})


def _install(
    state: SandboxState, customers: dict[str, Any], payouts: list[Payout], references: dict[str, Payout]
) -> None:
    """Put what was read of the books into ``state``, payouts in creation order."""
    state.customers, state.by_reference = customers, references
    state.payouts = _in_creation_order(payouts)


def _in_creation_order(payouts: list[Payout]) -> list[Payout]:
    """``payouts`` ordered by creation time, as this sandbox keeps them (its list of withdrawals
    finds the visible ones by bisection); books whose clock an older version moved back are
    sorted once, ties kept in the order they were saved in."""
    if all(a.created_at <= b.created_at for a, b in itertools.pairwise(payouts)):
        return payouts
    return sorted(payouts, key=lambda p: p.created_at)


def _read_rest(state: SandboxState, path: Path) -> None:
    """Customers and payouts from the file ``path``, in whichever format it was written: one JSON
    value (an object: format 2) or JSON lines (format 3). Told apart by the file itself, not by the
    head, which another version of this tool may have rewritten."""
    with path.open(encoding="utf-8") as fh:
        first = fh.read(64).lstrip()[:1]
    if first == "{":
        _put_rest_streamed(state, path)
    else:
        _put_rest_lines(state, path)


def _put_rest_lines(state: SandboxState, path: Path) -> None:
    """Customers and payouts from a file of JSON lines (books of format 3), a line at a time."""
    customers: dict[str, dict[str, Any]] = {}
    payouts: list[Payout] = []
    references: dict[str, Payout] = {}
    shared: dict[Any, Any] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            kind, *value = json.loads(line)
            if kind == "customer":
                customers[shared.setdefault(value[0], value[0])] = _decode(value[1], shared)
            elif kind == "payout":
                payouts.append(Payout(**_decode(value[0], shared)))
            else:
                references[shared.setdefault(value[0], value[0])] = payouts[value[1]]
    _install(state, customers, payouts, references)


def restore(data: dict[str, Any], *, speed: float, rest: Path) -> SandboxState:
    """A sandbox with the saved books, its clock going on from where it stopped. The customers and
    payouts are in the file ``rest`` (the head's own in format 1, one JSON object in format 2, JSON
    lines in format 3), read at once when payouts may still be to settle, else when first used."""
    clock = SandboxClock(speed=speed)
    elapsed = max(0.0, time.time() - float(data["saved_at"])) * speed
    clock.advance(float(data["now"]) + elapsed)
    clock.epoch = float(data["epoch"])
    state = _Books(api_key=data["api_key"], clock=clock, integrator=data["integrator"])
    state.rng = random.Random()
    state.rng.setstate(_decode(data["rng"]))
    state._next_number = int(data["next_number"])
    state.wallets = {w["currency"]: Wallet(**_decode(w)) for w in data["wallets"]}
    for name in HEAVY:
        delattr(state, name)
    state._read_rest = lambda books: _read_rest(books, rest)
    if data.get("unsettled", True):  # format 1 does not say: read it now
        state.payouts  # noqa: B018 - read now: the payouts still to settle are ticked from the start
    state.unsettled = {p.id: p for p in state.payouts if p.applied < len(p.schedule)} if _rest_read(state) else {}
    return state


def fresh(*, speed: float) -> SandboxState:
    """A new built-in sandbox with a key and an account of its own."""
    return SandboxState(api_key="sandbox-" + secrets.token_hex(8), clock=SandboxClock(speed=speed))


def rest_path(path: Path, generation: int) -> Path:
    """Where the customers and payouts of the books at ``path`` are kept (one file per save)."""
    return path.with_name(f"{path.name}.{generation}.rest")


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[IO[str]]:
    """A text file to write that replaces ``path`` whole once written and synced (mode 0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with _private_file(path) as fh:
        json.dump(data, fh)


def _write_lines(path: Path, lines: Generator[str, None, None]) -> None:
    """Write ``lines`` to ``path`` as :func:`_private_file` does; the generator is closed however
    this ends (it may hold the sandbox's lock while paused)."""
    with contextlib.closing(lines), _private_file(path) as fh:
        for line in lines:
            fh.write(line + "\n")


def save(state: SandboxState, path: Path) -> None:
    """Write the books atomically, mode 0600: the customers and payouts to a new file of their own
    (unless they were never read, so unchanged), then the head naming it, renamed over the old head
    (so the books on disk are the old or the new, whole); older files of customers and payouts go."""
    old = _head(path)
    generation = int(old.get("rest", 0)) if old else 0
    if not _rest_read(state) and old and "rest" in old:  # kept as it is, in the format it was written in
        head = {**snapshot(state), "rest": generation, "rest_format": _rest_format(old)}
    else:
        generation += 1
        _write_lines(rest_path(path, generation), rest_lines(state))
        head = {**snapshot(state), "rest": generation, "rest_format": FORMAT}
    _write_json(path, head)
    for stale in path.parent.glob(f"{path.name}.*.rest"):
        if stale != rest_path(path, generation):
            stale.unlink(missing_ok=True)


def _rest_format(head: dict[str, Any]) -> int:
    """The format the file of customers and payouts a head names was written in."""
    return int(head.get("rest_format", head.get("format", 1)))


REST_KEYS = frozenset({"customers", "payouts", "references"})  # what format 1 keeps in the head's file
FORMAT_1_HEAD = frozenset(
    {"format", "api_key", "integrator", "now", "epoch", "saved_at", "rng", "next_number", "wallets"}
)
WHOLE_HEAD = 1 << 20  # bytes: a head file this large is of format 1, with many payouts in it


def _head(path: Path) -> dict[str, Any] | None:
    """The head of the books at ``path``, without the customers, payouts and references to payouts
    that books of format 1 keep in the same file (a large one is read as a stream, not whole)."""
    if not path.exists():
        return None
    if path.stat().st_size > WHOLE_HEAD:
        head = _streamed_head(path)
        if head is not None:
            return head
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if key not in REST_KEYS}


def _streamed_head(path: Path) -> dict[str, Any] | None:
    """:func:`_head` of a large file, its other values skipped as they stream by. Format 1 wrote
    its head first: once every key of it is read, the rest of the file is not. None when the
    file holds a value ijson does not read (it is then read whole)."""
    import ijson  # only books written before format 3 need it

    head: dict[str, Any] = {}
    try:
        with path.open("rb") as fh:
            events = ijson.parse(fh, use_float=True, buf_size=STREAM_BUFFER)
            for prefix, event, key in events:
                if prefix or event != "map_key":
                    continue
                if key not in REST_KEYS:
                    head[key] = _one_value(events, ijson.ObjectBuilder())
                elif head.keys() >= FORMAT_1_HEAD:
                    break
                else:
                    _one_value(events, None)
    except ijson.JSONError:
        return None
    return head


def _one_value(events: Iterator[tuple[str, str, Any]], builder: Any) -> Any:
    """The next JSON value of a stream of ijson ``events``, built by ``builder`` (None: skipped)."""
    depth = 0
    for _, event, value in events:
        if builder is not None:
            builder.event(event, value)
        depth += (event in ("start_map", "start_array")) - (event in ("end_map", "end_array"))
        if depth == 0:
            break
    return builder.value if builder is not None else None


def load(path: Path, *, speed: float) -> tuple[SandboxState, int]:
    """The books at ``path`` and their format (the older of the head's and of its file of customers
    and payouts), or a new sandbox (format 0) when there are none."""
    head = _head(path)
    if head is None:
        return fresh(speed=speed), 0
    rest = rest_path(path, int(head["rest"])) if "rest" in head else path  # format 1: one file
    oldest = min(int(head.get("format", 1)), _rest_format(head))  # books of an older format are saved anew
    return restore(head, speed=speed, rest=rest), oldest


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
        state, found = load(path, speed=speed)
        next_save = [time.monotonic() + SAVE_EVERY]
        as_loaded = (state.rng.getstate(), bool(state.unsettled)) if found == FORMAT else None
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
            # Books of this format that nothing changed (no customer, no payout, nothing left to
            # settle, the same random state) are left as they are: their clock goes on from the
            # time they were saved.
            if changed[0] or as_loaded != (state.rng.getstate(), False) or state.unsettled:
                save(state, path)
    finally:
        lock.close()

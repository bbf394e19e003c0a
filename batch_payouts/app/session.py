"""One use of the provider: the ledger, the API key, the built-in sandbox with its books, a
client per call, and the environment (host and Kotani account) the work belongs to."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from batch_payouts import environment as envs
from batch_payouts import errors
from batch_payouts.app.keys import KeyOptions, resolve_key, webhook_secrets
from batch_payouts.catalog import Catalog
from batch_payouts.catalog_reads import fetch_catalog, fetch_catalog_and_wallets
from batch_payouts.concurrency import first_error
from batch_payouts.environment import Environment
from batch_payouts.kotani.client import (
    DEFAULT_BASE_URL,
    ApiKey,
    CallRecord,
    KotaniClient,
    Timeouts,
    in_process,
    request_class,
)
from batch_payouts.kotani.wire import Wallet
from batch_payouts.ledger import BatchRecord, Ledger, default_path
from batch_payouts.ratelimit import READS, READS_DEFAULT, READS_MARGIN, Holds, Limiter, Window

if TYPE_CHECKING:
    from batch_payouts.sandbox import RunningSandbox

T = TypeVar("T")
READS_KEPT = 1000  # send times of the latest reads a session remembers (more than any window holds)
WALLETS_FRESH = 30.0  # seconds a wallets read answers again (one command's checks, not a day's run)
CATALOG_FRESH = 600.0  # seconds the catalog read answers again (a console stays up for days)
__all__ = ["DEFAULT_BASE_URL", "Session", "SessionOptions", "batch_in", "open_session", "sandbox_books"]


@dataclass(frozen=True)
class SessionOptions:
    """Where to work: the ledger file, and the provider at ``base_url`` or the built-in sandbox.

    ``state_path`` None: ``BATCH_PAYOUTS_STATE`` or the per-user data directory. Times in seconds;
    ``sandbox_speed`` is built-in sandbox seconds per real second."""

    state_path: Path | None = None
    sandbox: bool = False
    base_url: str = DEFAULT_BASE_URL
    key: KeyOptions = field(default_factory=KeyOptions)
    attempt_timeout: float = 30.0
    sandbox_speed: float = 20.0
    serve_sandbox: bool = True  # False: the built-in sandbox answers in this process (commands that only read)


@dataclass
class Session:
    """An open ledger and a way to the provider. ``on_environment`` hears the environment once,
    when it is first known (every screen says LIVE or SANDBOX, the host and the account)."""

    base_url: str
    key: ApiKey
    ledger: Ledger
    sandbox: RunningSandbox | None
    secrets: tuple[str, ...]
    attempt_timeout: float
    on_environment: Callable[[Environment], None] | None = None
    clock: Callable[[], float] = time.time
    holds: Holds = field(default_factory=Holds)  # 429 holds shared by this session's clients and limiters
    read_times: deque[float] = field(default_factory=lambda: deque(maxlen=READS_KEPT))  # monotonic s, reads sent
    actor: str | None = None  # the person whose actions the API calls serve (the console), for the audit trail
    _env: Environment | None = None
    _catalog: tuple[float, Catalog] | None = None  # monotonic s when read, what was read
    _wallets: tuple[float, list[Wallet]] | None = None  # monotonic s when read, what was read

    @property
    def is_sandbox(self) -> bool:
        """True with the built-in sandbox."""
        return self.sandbox is not None

    def call(self, fn: Callable[[KotaniClient], Awaitable[T]]) -> T:
        """Run ``fn`` with a fresh client in its own event loop (callable from any thread)."""

        def audit(call: CallRecord) -> None:
            if request_class(call.method, call.path) == "reads":
                self.read_times.append(time.monotonic() - call.duration)
            self.ledger.audit(
                method=call.method,
                path=call.path,
                status=call.status,
                duration=call.duration,
                request=call.request_body,
                response=call.response_body,
                error=call.error,
                actor=self.actor,
            )

        async def go() -> T:
            async with KotaniClient(
                self.base_url,
                self.key,
                transport=self._transport(),
                on_call=audit,
                holds=self.holds,
                timeouts=Timeouts(attempt=self.attempt_timeout),
            ) as client:
                return await fn(client)

        with first_error():  # concurrent steps failed: report the first cause as itself
            return anyio.run(go)

    def _transport(self) -> Any:
        """The built-in sandbox's app in process when it is not served; None (the client's own
        connections) for the real API or a served sandbox."""
        if self.sandbox is None or self.sandbox.served:
            return None
        return in_process(self.sandbox.sandbox.app)

    def reads_limiter(self, rate: tuple[Window, ...] = READS_DEFAULT) -> Limiter:
        """A limiter of the reads allowance ``rate`` that counts the reads this session already sent
        (the catalog, the wallets): the look-ups that follow cannot overfill the provider's window."""
        limiter = Limiter(rate, klass=READS, holds=self.holds, margin=READS_MARGIN)
        limiter.seed(self.read_times)
        return limiter

    def environment(self) -> Environment:
        """This session's host and Kotani account (asked of the provider once), registered in the ledger."""
        if self._env is None:
            if self.sandbox is not None:
                env = envs.environment(envs.BUILT_IN_SANDBOX_URL, self.sandbox.state.integrator, built_in_sandbox=True)
            else:
                integrators = [w.integrator for w in self.wallets()]
                account = envs.account_from(integrators, self.key.reveal(), self.ledger.salt())
                env = envs.environment(self.base_url, account)
            self.ledger.register_environment(env)
            self._env = env
            if self.on_environment is not None:
                self.on_environment(env)
        return self._env

    def batch_here(self, batch_id: str) -> BatchRecord:
        """The batch, if it belongs to this session's environment; else WrongEnvironment naming both."""
        return batch_in(self.ledger, batch_id, self.environment())

    def prefetch(self) -> None:
        """Read the catalog and the wallets together (one wave of reads instead of one after another),
        for the checks a command is about to make: environment, file, balances."""
        if self._fresh(self._catalog, CATALOG_FRESH) and self._fresh(self._wallets, WALLETS_FRESH):
            return
        catalog, wallets = self.call(fetch_catalog_and_wallets)
        now = time.monotonic()
        self._catalog, self._wallets = (now, catalog), (now, wallets)

    def catalog(self) -> Catalog:
        """What the provider can pay where: countries, networks, banks (read again after
        :data:`CATALOG_FRESH` seconds)."""
        if self._catalog is None or not self._fresh(self._catalog, CATALOG_FRESH):
            self._catalog = (time.monotonic(), self.call(fetch_catalog))
        return self._catalog[1]

    def wallets(self) -> list[Wallet]:
        """The account's wallets and their balances, as read at most :data:`WALLETS_FRESH` seconds ago."""
        if self._wallets is None or not self._fresh(self._wallets, WALLETS_FRESH):

            async def fetch(client: KotaniClient) -> list[Wallet]:
                return await client.list_wallets()

            self._wallets = (time.monotonic(), self.call(fetch))
        return self._wallets[1]

    def balances(self) -> dict[str, Decimal]:
        """The payout balance per currency (major units)."""
        return {w.currency.upper(): w.balance for w in self.wallets()}

    @staticmethod
    def _fresh(read: tuple[float, object] | None, seconds: float) -> bool:
        return read is not None and time.monotonic() - read[0] < seconds


def batch_in(ledger: Ledger, batch_id: str, env: Environment) -> BatchRecord:
    """The batch if it belongs to ``env``; a batch made before environments existed is adopted."""
    batch = ledger.batch(batch_id)
    if not batch.env_id:
        ledger.adopt(batch_id, env.id)
        batch = ledger.batch(batch_id)
    if batch.env_id != env.id:
        theirs = ledger.environment(batch.env_id)
        raise errors.WrongEnvironment(batch_id, theirs.describe() if theirs else batch.env_id, env.describe())
    return batch


def sandbox_books(ledger_path: Path) -> Path:
    """Where the built-in sandbox of a ledger keeps its books between commands."""
    return ledger_path.with_name(ledger_path.name + ".sandbox.json")


@contextlib.contextmanager
def open_session(
    options: SessionOptions,
    *,
    ask_key: Callable[[], str] | None = None,
    warn: Callable[[str], None] | None = None,
    on_environment: Callable[[Environment], None] | None = None,
) -> Iterator[Session]:
    """The ledger and the provider (the real API, or the built-in sandbox served on a loopback
    port with its books), with every call recorded in the ledger's audit trail.

    ``ask_key`` asks a person for the API key when no other source has it (None: never ask);
    ``warn`` hears warnings (a key given in a way others can see)."""
    state_path = options.state_path or default_path()
    with contextlib.ExitStack() as stack:
        sandbox = None
        base_url = options.base_url
        if not options.sandbox:
            key = resolve_key(options.key, ask=ask_key, warn=warn)
        ledger = stack.enter_context(contextlib.closing(Ledger(state_path)))
        if options.sandbox:
            from batch_payouts.sandbox import answering_in_process, serve_in_thread
            from batch_payouts.sandbox.persist import SandboxBusy, held

            try:
                state = stack.enter_context(held(sandbox_books(Path(state_path)), speed=options.sandbox_speed))
            except SandboxBusy:
                raise errors.ConfigError(
                    "the built-in sandbox of this ledger is being used by another command; "
                    "wait for it to finish, then try again"
                ) from None
            key = ApiKey(state.api_key)
            sandbox = (
                stack.enter_context(serve_in_thread(state)) if options.serve_sandbox else answering_in_process(state)
            )
            base_url = sandbox.base_url
        secrets = (key.reveal(), *webhook_secrets())
        ledger.secrets = secrets
        yield Session(base_url, key, ledger, sandbox, secrets, options.attempt_timeout, on_environment)

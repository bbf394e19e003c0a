"""The command line: the only module that prints, prompts or exits.

Exit codes (docs/row-lifecycle.md): 0 every row paid; 1 fatal error; 2 bad usage or unusable file;
3 finished with failed, rejected or invalid rows; 4 stopped waiting with rows pending;
5 a row was paid twice (a retry paid a row whose first attempt later succeeded); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import signal
import sqlite3
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
from rich.console import Console
from rich.table import Table

from batch_payouts import crash, errors
from batch_payouts import environment as envs
from batch_payouts.catalog import Catalog, fetch_catalog
from batch_payouts.engine import plan as planning
from batch_payouts.engine import results as results_mod
from batch_payouts.engine.run import RunResult, run_batch
from batch_payouts.engine.submit import Context, Settings
from batch_payouts.environment import Environment
from batch_payouts.kotani.client import DEFAULT_BASE_URL, ApiKey, CallRecord, KotaniClient, Timeouts
from batch_payouts.ledger import BatchRecord, Ledger, RowRecord, default_path
from batch_payouts.model import RowState
from batch_payouts.ratelimit import MONEY_DEFAULT, READS_DEFAULT, Limiter, parse_rate
from batch_payouts.sheets.guard import Limits
from batch_payouts.sheets.read import RawSheet, read_sheet
from batch_payouts.validate import Report, Rules

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_PAID_TWICE = 5
T = TypeVar("T")


@dataclass
class Running:
    """The batch this process is paying, for the sentence an interruption prints."""

    ledger: Path | None = None
    batch_id: str | None = None


RUNNING = Running()


def interrupted_sentence() -> str:
    """What Ctrl-C or SIGTERM says: how many payouts had already left, and how to go on."""
    plain = "interrupted; everything done so far is saved. Run the same command again to continue."
    if RUNNING.ledger is None or RUNNING.batch_id is None:
        return plain
    try:
        ledger = Ledger(RUNNING.ledger)
        try:
            sent = ledger.sent_count(RUNNING.batch_id)
        finally:
            ledger.close()
    except (errors.BatchPayoutsError, sqlite3.Error):
        return plain
    return (f"interrupted; {sent} payout{'s' if sent != 1 else ''} of batch {RUNNING.batch_id} had already "
            f"left and are recorded; nothing is lost. Continue with: batch-payouts resume {RUNNING.batch_id}")


def disk_sentence(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return (f"the disk is full{where}; what was recorded before is safe. Free some space, then run the "
                "same command again")
    if exc.errno == errno.ENOENT:
        return f"no such file or folder{where}"
    if exc.errno == errno.EISDIR:
        return f"{exc.filename or 'that path'} is a folder, not a file"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write there{where}: permission denied"
    return f"{exc.strerror or exc}{where}"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True)
    sys.exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the error tree into one sentence and an exit code."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(interrupted_sentence())
        sys.exit(130)
    except errors.InputFileError as exc:
        fail(str(exc), 2)
    except errors.ConfigError as exc:
        fail(str(exc), 2)
    except errors.WrongEnvironment as exc:
        fail(str(exc), 2)
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc):
            fail(disk_sentence(OSError(errno.ENOSPC, "disk full")), 1)
        fail(f"the ledger cannot be read ({exc}); it may be damaged or not a ledger. Everything recorded "
             "before is kept. Keep the file for inspection and point --state at a good copy", 1)
    except OSError as exc:
        fail(disk_sentence(exc), 1)
    except errors.PlanRefused as exc:
        fail(str(exc), 3)
    except errors.RateLimited as exc:
        wait = f"{exc.retry_after:.0f} s" if exc.retry_after is not None else "a while"
        fail(f"Kotani asked us to wait {wait} before sending more ({exc.method} {exc.path}); nothing more "
             "was sent. Run the same command again later", 1)
    except errors.BatchPayoutsError as exc:
        fail(str(exc), 1)


# -- shared options ------------------------------------------------------------------------------

def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise click.BadParameter(f"{value!r}: expected {what}")
        pairs[key.strip()] = val.strip().strip('"')
    return pairs


def decimal_or_none(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value.replace(",", ""))
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount", param_hint=option) from None


def file_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--encoding", help="Force the CSV text encoding (e.g. utf-8, utf-16, cp1252)."),
        click.option("--delimiter", help="Force the CSV delimiter: ',', ';' or 'tab'."),
        click.option("--sheet", help="The XLSX sheet to read (default: the first)."),
        click.option("--map", "mapping", multiple=True, metavar='COLUMN="Header"',
                     help='Map a column explicitly, e.g. phone="Mobile No". Repeatable.'),
        click.option("--max-row-amount", help="Refuse rows paying more than this amount."),
        click.option("--max-total", help="Refuse a currency whose total is more than this."),
        click.option("--strict", is_flag=True, help="Treat repeated payees as errors; invalid rows block the run."),
        click.option("--max-rows", type=int, default=Limits.max_rows, show_default=True),
        click.option("--max-file-mb", type=int, default=Limits.max_file_bytes // (1024 * 1024), show_default=True),
    ]):
        fn = option(fn)
    return fn


def api_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--sandbox", is_flag=True, help="Use the built-in offline Kotani sandbox."),
        click.option("--base-url", envvar="KOTANI_BASE_URL", default=DEFAULT_BASE_URL, show_default=True),
        click.option("--api-key", "api_key_arg", help="The API key (visible to other users: prefer KOTANI_API_KEY)."),
        click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="A file holding the API key; must be mode 0600."),
        click.option("--state", "state_path", envvar="BATCH_PAYOUTS_STATE", type=click.Path(path_type=Path),
                     help="The ledger file (default: a per-user data directory)."),
    ]):
        fn = option(fn)
    return fn


@dataclass
class FileArgs:
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    mapping: dict[str, str]
    rules: Rules
    limits: Limits


def file_args(kw: dict[str, Any]) -> FileArgs:
    rules = Rules(max_row_amount=decimal_or_none(kw.pop("max_row_amount"), "--max-row-amount"),
                  max_total=decimal_or_none(kw.pop("max_total"), "--max-total"), strict=kw.pop("strict"))
    limits = Limits(max_rows=kw.pop("max_rows"), max_file_bytes=kw.pop("max_file_mb") * 1024 * 1024)
    return FileArgs(kw.pop("encoding"), kw.pop("delimiter"), kw.pop("sheet"),
                    parse_pairs(kw.pop("mapping"), 'COLUMN="Header"'), rules, limits)


def load(path: Path, fa: FileArgs) -> RawSheet:
    return read_sheet(path, encoding=fa.encoding, delimiter=fa.delimiter, sheet=fa.sheet,
                      mapping=fa.mapping, limits=fa.limits)


def resolve_key(api_key_arg: str | None, api_key_file: Path | None) -> ApiKey:
    """--api-key (with a warning), then KOTANI_API_KEY, then a 0600 key file, then the OS keyring
    (service "batch-payouts", user "kotani"), then a hidden prompt on a terminal."""
    if api_key_arg:
        err.print("warning: --api-key is visible to other users of this machine; "
                  "prefer KOTANI_API_KEY or --api-key-file")
        return ApiKey(api_key_arg)
    if os.environ.get("KOTANI_API_KEY"):
        return ApiKey(os.environ["KOTANI_API_KEY"])
    if api_key_file is not None:
        try:
            mode = stat.S_IMODE(api_key_file.stat().st_mode)
        except OSError as exc:
            raise errors.ConfigError(f"cannot read the key file {api_key_file}: {exc.strerror}") from None
        if mode & 0o077:
            raise errors.ConfigError(f"the key file {api_key_file} is readable by others "
                                     f"(mode {mode:04o}); run: chmod 600 {api_key_file}")
        return ApiKey(api_key_file.read_text().strip())
    with contextlib.suppress(Exception):
        import keyring

        stored = keyring.get_password("batch-payouts", "kotani")
        if stored:
            return ApiKey(stored)
    if sys.stdin.isatty():
        return ApiKey(click.prompt("Kotani API key", hide_input=True))
    raise errors.ConfigError("no API key: set KOTANI_API_KEY, use --api-key-file, or run with --sandbox")


@dataclass
class Connection:
    """Where the API is, the ledger, and (with --sandbox) the in-process sandbox."""

    base_url: str
    key: ApiKey
    ledger: Ledger
    sandbox: Any
    secrets: tuple[str, ...]
    attempt_timeout: float
    holds: dict[str, float] = field(default_factory=dict)  # 429 holds shared by this session's clients
    _env: Environment | None = None

    def call(self, fn: Callable[[KotaniClient], Awaitable[T]]) -> T:
        """Run ``fn`` with a fresh client in its own event loop."""
        def audit(call: CallRecord) -> None:
            self.ledger.audit(method=call.method, path=call.path, status=call.status,
                              duration=call.duration, request=call.request_body,
                              response=call.response_body, error=call.error)

        async def go() -> T:
            async with KotaniClient(self.base_url, self.key, on_call=audit, holds=self.holds,
                                    timeouts=Timeouts(attempt=self.attempt_timeout)) as client:
                return await fn(client)
        return anyio.run(go)

    def environment(self) -> Environment:
        """This command's host and Kotani account (asked of the provider once), registered in the ledger."""
        if self._env is None:
            if self.sandbox is not None:
                env = envs.environment(envs.BUILT_IN_SANDBOX_URL, self.sandbox.state.integrator,
                                       built_in_sandbox=True)
            else:
                async def integrators(client: KotaniClient) -> list[str | None]:
                    return [w.integrator for w in await client.list_wallets()]
                account = envs.account_from(self.call(integrators), self.key.reveal(), self.ledger.salt())
                env = envs.environment(self.base_url, account)
            self.ledger.register_environment(env)
            self._env = env
            out.print(f"[bold]{env.describe()}[/]", markup=True)
        return self._env

    def batch_here(self, batch_id: str) -> BatchRecord:
        """The batch, if it belongs to this command's environment; else a sentence naming both."""
        return batch_in(self.ledger, batch_id, self.environment())


def batch_in(ledger: Ledger, batch_id: str, env: Environment) -> BatchRecord:
    batch = ledger.batch(batch_id)
    if not batch.env_id:  # made before environments existed: it belongs where it is first used
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
def connect(kw: dict[str, Any], *, speed: float = 20.0, attempt_timeout: float = 30.0) -> Iterator[Connection]:
    """The client (real API or the built-in sandbox) and the ledger, with the audit trail wired."""
    use_sandbox = kw.pop("sandbox")
    base_url, key_arg, key_file = kw.pop("base_url"), kw.pop("api_key_arg"), kw.pop("api_key_file")
    state_path = kw.pop("state_path") or default_path()
    stack = contextlib.ExitStack()
    with stack:
        sandbox = None
        if not use_sandbox:
            key = resolve_key(key_arg, key_file)
        ledger = stack.enter_context(contextlib.closing(Ledger(state_path)))
        if use_sandbox:
            from batch_payouts.sandbox import serve_in_thread
            from batch_payouts.sandbox.persist import SandboxBusy, held

            try:
                state = stack.enter_context(held(sandbox_books(Path(state_path)), speed=speed))
            except SandboxBusy:
                raise errors.ConfigError("the built-in sandbox of this ledger is being used by another command; "
                                         "wait for it to finish, then try again") from None
            key = ApiKey(state.api_key)
            sandbox = stack.enter_context(serve_in_thread(state))
            base_url = sandbox.base_url
        secrets = (key.reveal(), *(s for s in os.environ.get("KOTANI_WEBHOOK_SECRET", "").split(",") if s))
        ledger.secrets = secrets
        yield Connection(base_url, key, ledger, sandbox, secrets, attempt_timeout)


def get_catalog(conn: Connection) -> Catalog:
    return conn.call(fetch_catalog)


# -- rendering -------------------------------------------------------------------------------------

def show_report(report: Report, sheet: RawSheet, first: int = 15) -> None:
    valid, rows = len(report.valid_rows), len(report.rows)
    for note in sheet.notes:
        out.print(f"note: {note}")
    out.print(f"{rows} rows: {valid} valid, {rows - valid} invalid, {len(report.warnings())} warnings")
    table = Table("currency", "method", "rows", "total", title="Valid rows")
    for (cur, method), (count, total) in sorted(report.totals().items()):
        table.add_row(cur, method, str(count), f"{total:,}")
    if report.totals():
        out.print(table)
    problems = report.errors() + report.warnings()
    for problem in problems[:first]:
        out.print(f"  {problem.severity}: {problem}", markup=False, soft_wrap=True)
    if len(problems) > first:
        out.print(f"  ... and {len(problems) - first} more (write them all with --report)")


def write_report(path: Path, sheet: RawSheet, report: Report) -> None:
    from batch_payouts.sheets.write import write_table

    by_row = {r.row: r for r in report.rows}
    headers = [*sheet.headers, "row", "valid", "problems", "normalised_phone"]
    rows = []
    for raw in sheet.rows:
        result = by_row[raw.row]
        text = "; ".join(f"{p.severity}: {p.column + ': ' if p.column else ''}{p.message}" for p in result.problems)
        rows.append([*(raw.cells.get(h, "") for h in sheet.headers), raw.row,
                     "yes" if result.valid else "no", text, result.normalised_phone])
    write_table(path, headers, rows, text_columns={"normalised_phone"})


def show_plan(plan: planning.Plan) -> None:
    table = Table("currency", "rows", "to send", "in flight", "payout balance", "shortfall", title="Plan")
    for cp in sorted(plan.currencies.values(), key=lambda c: c.currency):
        table.add_row(cp.currency, str(cp.rows), f"{cp.total:,}", f"{cp.in_flight:,}",
                      "?" if cp.balance is None else f"{cp.balance:,}",
                      f"[red]{cp.shortfall:,}[/]" if cp.shortfall else "0")
    out.print(table)


def balances(conn: Connection) -> dict[str, Decimal]:
    async def fetch(client: KotaniClient) -> dict[str, Decimal]:
        return {w.currency.upper(): w.balance for w in await client.list_wallets()}
    return conn.call(fetch)


# -- commands --------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batch-payouts")
def main() -> None:
    """Pay a spreadsheet of recipients through Kotani Pay, exactly once."""


@main.command()
@click.argument("out_path", metavar="OUT.xlsx|OUT.csv", type=click.Path(dir_okay=False, path_type=Path))
def template(out_path: Path) -> None:
    """Write an empty payout file with one example row per method."""
    from batch_payouts.sheets.template import write_template

    with user_errors():
        if out_path.suffix.lower() not in (".csv", ".xlsx"):
            fail("the template must be a .csv or .xlsx file", 2)
        write_template(out_path)
        out.print(f"wrote {out_path}")


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every row with its problems to this CSV or XLSX.")
@file_options
@api_options
def validate(file: Path, report_path: Path | None, **kw: Any) -> None:
    """Check every row of FILE; nothing is paid."""
    with user_errors():
        fa = file_args(kw)
        sheet = load(file, fa)
        with connect(kw) as conn:
            report = planning.check_sheet(sheet, get_catalog(conn), fa.rules)
        show_report(report, sheet)
        if report_path:
            write_report(report_path, sheet, report)
            out.print(f"report: {report_path}")
        if not report.valid_rows:
            fail("no valid row in the file", 3)
        sys.exit(0 if len(report.valid_rows) == len(report.rows) else 3)


LABEL_HELP = ("Names this disbursement (e.g. 2026-11). A payee is paid at most once per label: "
              "use a new label to pay the same people again, e.g. next month.")


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--label", default="", help=LABEL_HELP)
@file_options
@api_options
def plan(file: Path, label: str, **kw: Any) -> None:
    """Validate FILE and show totals against the payout balances."""
    with user_errors():
        fa = file_args(kw)
        sheet = load(file, fa)
        with connect(kw) as conn:
            env = conn.environment()
            report = planning.check_sheet(sheet, get_catalog(conn), fa.rules)
            batch_id = planning.batch_key(file.read_bytes(), label, env.id)
            the_plan, _ = plan_for(conn, batch_id, sheet, report, label, {})
        show_report(report, sheet, first=5)
        show_plan(the_plan)
        sys.exit(0 if the_plan.covered and len(report.valid_rows) == len(report.rows) else 3)


def plan_for(conn: Connection, batch_id: str, sheet: RawSheet, report: Report, label: str,
             pay_again: dict[int, str]) -> tuple[planning.Plan, planning.NewBatch | None]:
    """The plan of the rows that will actually be sent: of a new batch (with its repeats), or
    what is left of an existing one."""
    money = balances(conn)
    if conn.ledger.has_batch(batch_id):
        to_send, in_flight = planning.open_rows(conn.ledger, batch_id)
        return planning.make_plan(report, money, sendable=to_send, in_flight=in_flight), None
    new = planning.prepare_batch(conn.ledger, batch_id, sheet, report, env_id=conn.environment().id,
                                 label=label, pay_again=pay_again)
    show_repeats(new)
    return planning.make_plan(report, money, sendable=new.sendable), new


def show_repeats(new: planning.NewBatch) -> None:
    """Repeats summed in one line (each row in the results file), edited amounts one by one."""
    plain = [r for r in new.repeats if not r.edited_amount]
    if plain:
        rows = ", ".join(str(r.row) for r in plain[:12]) + (" …" if len(plain) > 12 else "")
        batches = sorted({r.other_batch for r in plain})
        out.print(f"not paid (repeat): {len(plain)} row{'s' if len(plain) != 1 else ''} ({rows}) already paid or "
                  f"being paid for this label in batch{'es' if len(batches) > 1 else ''} {', '.join(batches)}; "
                  "to pay one again on purpose: --pay-again ROW --reason TEXT", markup=False)
    for r in new.repeats:
        if r.edited_amount:
            err.print(f"refused: row {r.row}: {r.sentence}", markup=False)
    taken = sorted({other for other, _, _ in new.supersede})
    if taken:
        out.print(f"this run takes over the rows never sent of batch{'es' if len(taken) > 1 else ''} "
                  f"{', '.join(taken)}: resuming {'them' if len(taken) > 1 else 'it'} will not pay those rows",
                  markup=False)


def _no_allow_repeat(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        raise click.UsageError("--allow-repeat is gone: it let every repeat through. Name the rows to pay "
                               "again with --pay-again ROW[,ROW…] --reason TEXT, or use a new --label")


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
        click.option("--allow-partial", is_flag=True, help="Run even if the balance does not cover everything."),
        click.option("--allow-repeat", is_flag=True, hidden=True, callback=_no_allow_repeat, expose_value=False),
        click.option("--wallet", multiple=True, metavar="CUR=ID", help="The wallet to pay a currency from."),
        click.option("--rate", default="60/60,20/5", show_default=True,
                     help="Payout allowance as limit/seconds windows."),
        click.option("--reads-rate", default="100/5", show_default=True),
        click.option("--concurrency", type=int, default=8, show_default=True),
        click.option("--wait-timeout", type=float, default=3600.0, show_default=True,
                     help="Seconds to wait for pending rows before exiting with 4."),
        click.option("--visibility-lag", type=float, default=60.0, show_default=True,
                     help="Seconds a new payout may take to show at the status endpoint."),
        click.option("--poll-interval", type=float, default=5.0, show_default=True),
        click.option("--attempt-timeout", type=float, default=30.0, show_default=True,
                     help="Seconds one HTTP attempt may take in all."),
        click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--callback-url", help="Where Kotani should send status callbacks."),
        click.option("--listen", help="Run the webhook receiver on HOST:PORT."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--no-poll", is_flag=True, help="Rely on webhooks alone (status reads only when they ask)."),
        click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write progress as JSON lines."),
    ]):
        fn = option(fn)
    return fn


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--label", default="", help=LABEL_HELP)
@click.option("--pay-again", "pay_again", metavar="ROW[,ROW…]",
              help="Pay these rows although their payee is already paid for this label (needs --reason).")
@click.option("--reason", help="Why --pay-again rows are paid again; recorded in the ledger with your name.")
@file_options
@api_options
@run_options
def run(file: Path, label: str, pay_again: str | None, reason: str | None, **kw: Any) -> None:
    """Validate, plan, confirm, pay every valid row of FILE once, and write the results."""
    with user_errors():
        fa = file_args(kw)
        again = pay_again_rows(pay_again, reason)
        run_kw = _pop_run(kw)
        check_results_path(run_kw["results_path"], file)
        sheet = load(file, fa)
        with connect(kw, attempt_timeout=run_kw["attempt_timeout"]) as conn:
            env = conn.environment()
            if conn.sandbox is not None:
                run_kw["visibility_lag"] = min(run_kw["visibility_lag"], 2.0)
            report = planning.check_sheet(sheet, get_catalog(conn), fa.rules)
            crash.point("after_validation")
            show_report(report, sheet, first=10)
            if not report.valid_rows:
                fail("no valid row in the file; nothing to pay", 3)
            if fa.rules.strict and len(report.valid_rows) != len(report.rows):
                fail("--strict: fix the invalid rows first", 3)
            batch_id = planning.batch_key(file.read_bytes(), label, env.id)
            if conn.ledger.has_batch(batch_id):
                if again:
                    raise click.UsageError(f"this file was already run as batch {batch_id}: --pay-again applies "
                                           "to a new batch (change the file or its --label)")
                already_run(conn, batch_id, label, run_kw)
            the_plan, new = plan_for(conn, batch_id, sheet, report, label, again)
            show_plan(the_plan)
            if not the_plan.covered and not run_kw["allow_partial"]:
                raise errors.PlanRefused("the payout balance does not cover this run; top up, "
                                         "or use --allow-partial to pay what it covers")
            if new is not None:
                if the_plan.currencies:
                    confirm(the_plan, run_kw["yes"])
                planning.persist_batch(conn.ledger, new, sheet, fingerprint=batch_id,
                                       options={"mapping": sheet.mapping}, who=operator())
            out.print(f"batch {batch_id}")
            result = drive(conn, batch_id, run_kw)
            finish(conn, batch_id, result, run_kw["results_path"] or results_path_for(str(file), batch_id))


def already_run(conn: Connection, batch_id: str, label: str, run_kw: dict[str, Any]) -> None:
    """A file whose batch is finished: one sentence, then the batch's own outcome."""
    rows = conn.ledger.rows(batch_id)
    if any(r.state in OPEN_STATES for r in rows):
        out.print(f"this file was already started as batch {batch_id}; continuing it")
        return
    batch = conn.ledger.batch(batch_id)
    counts: dict[str, int] = {}
    for r in rows:
        counts[results_mod.STATUS_WORDS[r.state]] = counts.get(results_mod.STATUS_WORDS[r.state], 0) + 1
    outcome = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(batch.created_at))
    hint = "another --label" if label else "a --label, e.g. --label " + time.strftime("%Y-%m")
    out.print(f"this file was already paid as batch {batch_id} on {when} ({outcome}); nothing more is sent. "
              f"To pay it again as a new disbursement, run it with {hint}.", markup=False)
    path = run_kw["results_path"] or results_path_for(batch.source, batch_id)
    results_mod.write_results(conn.ledger, batch_id, path)
    out.print(f"results: {path}")
    report_paid_twice(conn.ledger, batch_id)
    sys.exit(exit_code_of(rows))


OPEN_STATES = frozenset({RowState.READY, RowState.SUBMITTING, RowState.SUBMITTED, RowState.UNKNOWN})


def exit_code_of(rows: list[RowRecord]) -> int:
    """Exit codes from a batch's rows (docs/row-lifecycle.md): 4 pending, 3 not every row paid, 0 all paid."""
    if any(r.state in (RowState.SUBMITTED, RowState.UNKNOWN, RowState.SUBMITTING) for r in rows):
        return 4
    return 0 if all(r.state is RowState.SUCCEEDED for r in rows) else 3


def pay_again_rows(text: str | None, reason: str | None) -> dict[int, str]:
    """--pay-again 4,7 with --reason: row -> the reason recorded with the override."""
    if not text:
        if reason:
            raise click.UsageError("--reason goes with --pay-again ROW[,ROW…]")
        return {}
    if not reason or not reason.strip():
        raise click.UsageError("--pay-again needs --reason TEXT: why these rows are paid again is recorded")
    rows = {}
    for part in text.split(","):
        if not part.strip().isdigit():
            raise click.BadParameter(f"{part.strip()!r} is not a row number", param_hint="--pay-again")
        rows[int(part)] = reason.strip()
    return rows


def operator() -> str:
    """Who is running this command, for the ledger's record of overrides."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def results_path_for(source: str, batch_id: str) -> Path:
    """Next to the input, named after the batch, so that another batch never overwrites it."""
    default = results_mod.default_results_path(source)
    return default.with_name(f"{Path(source).stem}.{batch_id}.results{default.suffix}")


def check_results_path(path: Path | None, *inputs: Path) -> None:
    if path is None:
        return
    for given in inputs:
        if given.exists() and path.exists() and path.resolve() == given.resolve():
            raise click.BadParameter(f"{path} is the input file; choose another name for the results",
                                     param_hint="--results")
    if not path.parent.exists():
        raise click.BadParameter(f"the folder {path.parent} does not exist", param_hint="--results")


@main.command()
@click.argument("batch_id")
@api_options
@run_options
def resume(batch_id: str, **kw: Any) -> None:
    """Continue a batch by its id."""
    with user_errors():
        run_kw = _pop_run(kw)
        check_results_path(run_kw["results_path"])
        with connect(kw, attempt_timeout=run_kw["attempt_timeout"]) as conn:
            batch = conn.batch_here(batch_id)
            if batch.replaced_by:
                out.print(f"batch {batch_id} was replaced by batch {batch.replaced_by} (the same file run again): "
                          f"its rows never sent are paid there, not here. Continue with: batch-payouts resume "
                          f"{batch.replaced_by}", markup=False)
            if conn.sandbox is not None:
                run_kw["visibility_lag"] = min(run_kw["visibility_lag"], 2.0)
            result = drive(conn, batch_id, run_kw)
            finish(conn, batch_id, result, run_kw["results_path"] or results_path_for(batch.source, batch_id))


def _pop_run(kw: dict[str, Any]) -> dict[str, Any]:
    names = ("yes", "allow_partial", "wallet", "rate", "reads_rate", "concurrency",
             "wait_timeout", "visibility_lag", "poll_interval", "attempt_timeout", "results_path",
             "callback_url", "listen", "quiet", "events_path", "no_poll")
    return {n: kw.pop(n) for n in names}


def confirm(the_plan: planning.Plan, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail("confirmation needed: run in a terminal, or pass --yes", 2)
    for _ in range(3):
        typed = click.prompt(f"Type the total to pay ({the_plan.grand_total}) to confirm")
        if _same_total(typed, the_plan.grand_total):
            return
        err.print("that is not the total; type it again (thousands separators are fine)")
    fail("the total typed does not match; nothing was paid", 2)


def _same_total(typed: str, expected: str) -> bool:
    """The typed total, thousands separators and spacing aside."""
    return " ".join(typed.replace(",", "").split()).upper() == " ".join(expected.replace(",", "").split()).upper()


def drive(conn: Connection, batch_id: str, kw: dict[str, Any]) -> RunResult:
    """Run the engine with progress on the terminal and the receiver if asked."""
    settings = Settings(concurrency=kw["concurrency"], visibility_lag=kw["visibility_lag"],
                        poll_interval=kw["poll_interval"], callback_url=kw["callback_url"],
                        wallets=parse_pairs(kw["wallet"], "CUR=ID"), poll=not kw["no_poll"])
    if conn.sandbox is not None:
        settings.poll_interval = min(settings.poll_interval, 0.25)
    money = Limiter(parse_rate(kw["rate"]) if kw["rate"] else MONEY_DEFAULT, name="payouts")
    reads = Limiter(parse_rate(kw["reads_rate"]) if kw["reads_rate"] else READS_DEFAULT, name="reads")
    events = kw["events_path"].open("a") if kw["events_path"] else None
    total = len(conn.ledger.rows(batch_id))
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), console=err, disable=kw["quiet"], transient=False)
    task = bar.add_task("paying", total=total)

    def progress(counts: dict[str, int]) -> None:
        settled = sum(counts.get(s, 0) for s in ("succeeded", "failed", "rejected", "invalid",
                                                  "blocked", "needs_review"))
        ready = counts.get("ready", 0)
        eta = ready / max(money.rate_per_minute(), 1e-9) * 60
        desc = (f"paid {counts.get('succeeded', 0)} · failed {counts.get('failed', 0)} · "
                f"rejected {counts.get('rejected', 0)} · in flight {counts.get('submitted', 0)} · "
                f"unknown {counts.get('unknown', 0)} · to send {ready} (≥{eta:.0f} s)")
        bar.update(task, completed=settled, description=desc)
        if events:
            events.write(json.dumps({"at": time.time(), "batch": batch_id, "counts": counts}) + "\n")
            events.flush()

    receiver_ctx = listening(conn, kw["listen"]) if kw["listen"] else contextlib.nullcontext()
    try:
        with bar, receiver_ctx:
            async def go(client: KotaniClient) -> RunResult:
                ctx = Context(conn.ledger, client, money, reads, settings, env_id=conn.environment().id)
                return await run_batch(ctx, batch_id, wait_timeout=kw["wait_timeout"], progress=progress)
            RUNNING.ledger, RUNNING.batch_id = conn.ledger.path, batch_id
            previous = signal.signal(signal.SIGTERM, _terminate)
            try:
                return conn.call(go)
            finally:
                signal.signal(signal.SIGTERM, previous)
    finally:
        if events:
            events.close()


@contextlib.contextmanager
def listening(conn: Connection, where: str) -> Iterator[None]:
    from batch_payouts.engine.receiver_server import serve_receiver

    host, port = host_port(where)
    with serve_receiver(conn.ledger.path, host, port, conn.secrets[1:]):
        yield


def host_port(where: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``) for --listen; port 0 is any free port (``listen`` prints the one bound)."""
    host, _, port = where.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise click.BadParameter(f"{where!r}: expected HOST:PORT, e.g. 127.0.0.1:8787", param_hint="--listen")
    return host or "127.0.0.1", int(port)


def finish(conn: Connection, batch_id: str, result: RunResult, results_path: Path) -> None:
    path = results_mod.write_results(conn.ledger, batch_id, results_path)
    show_status(conn.ledger, batch_id)
    out.print(f"results: {path}")
    report_paid_twice(conn.ledger, batch_id)
    for currency, reason in result.paused.items():
        err.print(f"{currency} rows paused: {reason}. Top up the {currency} payout balance, then run again.")
    if result.stopped:
        fail(f"{result.stopped}. Continue with: batch-payouts resume {batch_id}", 1)
    if result.timed_out and result.pending:
        err.print(f"{result.pending} rows still pending; continue with: batch-payouts resume {batch_id}")
    sys.exit(result.exit_code)


def report_paid_twice(ledger: Ledger, batch_id: str) -> None:
    """Say loudly, and exit 5, when a payee of this batch was also paid for the same obligation by
    another row of any batch (a retry, an earlier or later run), without an operator override."""
    twice = ledger.paid_twice(batch_id)
    for row, other in twice:
        err.print(f"[bold red]PAID TWICE: row {row.row} of batch {row.batch_id} ({row.reference}) and row "
                  f"{other.row} of batch {other.batch_id} ({other.reference}) both paid the same payee for this "
                  "label. Recover the money from the recipient.[/]", markup=True)
    if twice:
        sys.exit(EXIT_PAID_TWICE)


def show_status(ledger: Ledger, batch_id: str) -> None:
    rows = ledger.rows(batch_id)
    table = Table("status", "currency", "rows", "amount", title=f"Batch {batch_id}")
    for status, currency, count, amount in results_mod.summary(ledger, batch_id):
        table.add_row(status, currency, str(count), f"{amount:,}")
    out.print(table)
    corrections = [r for r in rows if r.note and r.note.startswith("corrected")]
    for r in corrections:
        out.print(f"row {r.row}: {r.note}")


@main.command()
@click.argument("source", metavar="RESULTS_FILE|BATCH_ID")
@click.option("--cooloff", type=float, default=600.0, show_default=True,
              help="Seconds a failed row must have been failed before it is paid again.")
@api_options
@run_options
def retry(source: str, cooloff: float, **kw: Any) -> None:
    """Pay again only the rows that definitively failed, as new attempts in a new batch."""
    from batch_payouts.engine import retry as retry_mod
    from batch_payouts.sheets.write import unescape_cell

    with user_errors():
        run_kw = _pop_run(kw)
        with connect(kw, attempt_timeout=run_kw["attempt_timeout"]) as conn:
            selection = None
            parent = source
            if Path(source).exists():
                sheet = read_sheet(Path(source))
                selection = [{h: unescape_cell(v) for h, v in r.cells.items()} for r in sheet.rows]
                parent = _batch_of(selection)
            batch = conn.batch_here(parent)
            catalog = get_catalog(conn)
            plan = retry_mod.plan_retry(conn.ledger, parent, catalog, now=time.time(), cooloff=cooloff,
                                        selection=selection)
            for line in plan.corrections:
                out.print(f"correction: {line}", markup=False)
            for line in plan.refused + plan.invalid:
                err.print(f"refused: {line}", markup=False)
            for line in plan.waiting:
                out.print(f"waiting: {line}", markup=False)
            if not plan.rows:
                out.print("nothing to retry")
                report_paid_twice(conn.ledger, parent)
                sys.exit(3 if plan.refused or plan.invalid else 0)
            totals: dict[str, Decimal] = {}
            for original, _ in plan.rows:
                assert original.payout is not None
                cur = original.payout.currency
                totals[cur] = totals.get(cur, Decimal(0)) + original.payout.amount
            the_plan = planning.Plan(currencies={c: planning.CurrencyPlan(c, 0, t, Decimal(0), None)
                                                 for c, t in totals.items()})
            out.print(f"retry {len(plan.rows)} rows of batch {parent}: {the_plan.grand_total}")
            confirm(the_plan, run_kw["yes"])
            retry_mod.persist_retry(conn.ledger, plan, catalog, batch.headers)
            out.print(f"batch {plan.batch_id} (retry of {parent})")
            result = drive(conn, plan.batch_id, run_kw)
            finish(conn, plan.batch_id, result, run_kw["results_path"] or results_path_for(batch.source, plan.batch_id))


def _batch_of(selection: list[dict[str, str]]) -> str:
    refs = {(r.get("reference_id") or r.get("result_reference_id") or "").strip() for r in selection}
    batches = {ref.rsplit("-", 2)[0] for ref in refs if ref.count("-") >= 2}
    if len(batches) != 1:
        raise errors.InputFileError("results file", "cannot tell which batch these results belong to "
                                    "(the reference_id column is missing or mixes batches)")
    return batches.pop()


@main.command()
@click.argument("batch_id")
@api_options
def reconcile(batch_id: str, **kw: Any) -> None:
    """Compare the ledger with the provider's withdrawals list for this batch."""
    from batch_payouts.engine.reconcile import compare

    with user_errors(), connect(kw) as conn:
        conn.batch_here(batch_id)

        async def go(client: KotaniClient) -> Any:
            return await compare(conn.ledger, client, batch_id)
        found = conn.call(go)
        out.print(f"{found.matched} rows agree with the provider")
        for line in found.paid_not_recorded:
            err.print(f"paid at Kotani but not recorded as sent here: {line}", markup=False)
        for line in found.recorded_unknown:
            err.print(f"recorded as sent here but unknown to Kotani: {line}", markup=False)
        for line in found.status_differs:
            out.print(f"status differs: {line}", markup=False)
        for line in found.corrected:
            err.print(f"corrected by the provider: {line}", markup=False)
        report_paid_twice(conn.ledger, batch_id)
        sys.exit(3 if found.paid_not_recorded or found.recorded_unknown or found.corrected else 0)


@main.command()
@click.option("--listen", "where", default="127.0.0.1:8787", show_default=True, help="HOST:PORT")
@click.option("--state", "state_path", envvar="BATCH_PAYOUTS_STATE", type=click.Path(path_type=Path))
def listen(where: str, state_path: Path | None) -> None:
    """Run the webhook receiver alone, writing into the ledger (KOTANI_WEBHOOK_SECRET to verify)."""
    from batch_payouts.engine.receiver_server import serve_receiver

    with user_errors():
        secrets = [s for s in os.environ.get("KOTANI_WEBHOOK_SECRET", "").split(",") if s]
        host, port = host_port(where)
        with serve_receiver(state_path or default_path(), host, port, secrets) as url:
            err.print(f"receiving webhooks on {url} ({'signed' if secrets else 'unsigned: reads only'}); Ctrl-C stops")
            while True:
                time.sleep(3600)


def where_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--state, and --sandbox/--base-url to insist on an environment (commands that send nothing)."""
    for option in reversed([
        click.option("--state", "state_path", envvar="BATCH_PAYOUTS_STATE", type=click.Path(path_type=Path)),
        click.option("--sandbox", is_flag=True, help="Only batches of the built-in sandbox."),
        click.option("--base-url", help="Only batches of this Kotani host."),
    ]):
        fn = option(fn)
    return fn


def local_batch(ledger: Ledger, batch_id: str, sandbox: bool, base_url: str | None) -> BatchRecord:
    """A batch read without calling the provider; refused when --sandbox or --base-url names
    another environment than the batch's."""
    batch = ledger.batch(batch_id)
    env = ledger.environment(batch.env_id)
    wanted = envs.BUILT_IN_SANDBOX_URL if sandbox else envs.normalise_url(base_url) if base_url else None
    if env is not None:
        out.print(f"[bold]{env.describe()}[/]", markup=True)
        if wanted is not None and env.base_url != wanted:
            here = "SANDBOX · built-in sandbox" if sandbox else f"{envs.host_of(wanted)}"
            raise errors.WrongEnvironment(batch_id, env.describe(), here)
    return batch


@main.command()
@click.argument("batch_id", required=False)
@where_options
def status(batch_id: str | None, state_path: Path | None, sandbox: bool, base_url: str | None) -> None:
    """One batch in detail, or a table of recent batches."""
    with user_errors():
        ledger = Ledger(state_path or default_path())
        if batch_id:
            local_batch(ledger, batch_id, sandbox, base_url)
            show_status(ledger, batch_id)
            report_paid_twice(ledger, batch_id)
            sys.exit(exit_code_of(ledger.rows(batch_id)))
        table = Table("batch", "environment", "label", "source", "rows", "created", title="Recent batches")
        names = {e.id: f"{e.kind} {e.host}" for e in ledger.environments()}
        for b in ledger.batches():
            table.add_row(b.id, names.get(b.env_id, "?"), b.label, b.source, str(len(ledger.rows(b.id))),
                          time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created_at)))
        out.print(table)


@main.command()
@click.argument("batch_id")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@where_options
def results(batch_id: str, output: Path, state_path: Path | None, sandbox: bool, base_url: str | None) -> None:
    """Write the results file of a batch (also mid-run)."""
    with user_errors():
        ledger = Ledger(state_path or default_path())
        batch = local_batch(ledger, batch_id, sandbox, base_url)
        if output.suffix.lower() not in (".csv", ".xlsx"):
            fail("the results file must be .csv or .xlsx", 2)
        check_results_path(output, Path(batch.source))
        results_mod.write_results(ledger, batch_id, output)
        out.print(f"results: {output}")


@main.command()
@click.option("--currency", default="KES", show_default=True)
@api_options
def banks(currency: str, **kw: Any) -> None:
    """List the banks Kotani supports for a currency."""
    with user_errors(), connect(kw) as conn:
        async def fetch(client: KotaniClient) -> list[Any]:
            return await client.list_banks(currency.upper())
        table = Table("code", "name", title=f"Banks for {currency.upper()}")
        for bank in conn.call(fetch):
            table.add_row(bank.code, bank.name)
        out.print(table)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--api-key", default="test-key", show_default=True, help="The key the sandbox accepts.")
@click.option("--webhook-secret", help="Sign webhooks with this secret (else direct callbacks).")
@click.option("--webhook-url", help="Where signed webhooks go (default: each payout's callbackUrl).")
@click.option("--clock-speed", type=float, default=1.0, show_default=True,
              help="Sandbox seconds per real second (10 settles a 5 s payout in 0.5 s).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--balance", multiple=True, metavar="CUR=AMOUNT", help="Starting payout balance.")
@click.option("--knob", multiple=True, metavar="NAME=VALUE",
              help="A fault knob, e.g. p_5xx_after=0.1, duplicate_mode=accept, visibility_delay=30. "
                   "See batch_payouts.sandbox.Knobs for all.")
def sandbox(host: str, port: int, api_key: str, webhook_secret: str | None, webhook_url: str | None,
            clock_speed: float, seed: int, balance: tuple[str, ...], knob: tuple[str, ...]) -> None:
    """Serve the offline Kotani sandbox."""
    from batch_payouts.sandbox import Knobs, SandboxClock, SandboxState
    from batch_payouts.sandbox.server import serve_forever

    with user_errors():
        try:
            knobs = Knobs.model_validate({k: _knob_value(v) for k, v in parse_pairs(knob, "NAME=VALUE").items()})
        except ValueError as exc:
            raise click.BadParameter(str(exc).splitlines()[0] + ": see batch_payouts.sandbox.Knobs",
                                     param_hint="--knob") from None
        amounts = {k.upper(): decimal_or_none(v, "--balance") or Decimal(0)
                   for k, v in parse_pairs(balance, "CUR=AMOUNT").items()}
        state = SandboxState(api_key=api_key, webhook_secret=webhook_secret, webhook_url=webhook_url,
                             clock=SandboxClock(speed=clock_speed), seed_value=seed, balances=amounts,
                             knobs=knobs)
        err.print(f"Kotani sandbox on http://{host}:{port} (ledger at /__sandbox__/ledger)")
        serve_forever(state, host=host, port=port, log_level="warning")


def _knob_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text

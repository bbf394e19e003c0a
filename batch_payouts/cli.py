"""The command line: click commands over the application layer (``batch_payouts.app``).

Each command turns its options into the app layer's typed options, calls the use cases, shows
their results through ``render`` and turns errors into one sentence and an exit code. The only
module that prompts (the API key, the typed total), handles signals or exits.

Exit codes (docs/row-lifecycle.md): 0 every row paid; 1 fatal error; 2 bad usage or unusable file;
3 finished with failed, rejected or invalid rows; 4 stopped waiting with rows pending;
5 a row was paid twice (a retry paid a row whose first attempt later succeeded); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from batch_payouts import errors, render
from batch_payouts.app import bulk, confirmation, files, namecheck, notify, payouts, people, sandbox_server
from batch_payouts.app import options as opts
from batch_payouts.app import receiver as app_receiver
from batch_payouts.app import reconcile as app_reconcile
from batch_payouts.app import results as app_results
from batch_payouts.app import retry as app_retry
from batch_payouts.app import status as app_status
from batch_payouts.app.files import FileOptions
from batch_payouts.app.keys import KeyOptions
from batch_payouts.app.sandbox_server import SandboxServerOptions
from batch_payouts.app.session import DEFAULT_BASE_URL, Session, SessionOptions, open_session


@dataclass
class Running:
    """The batch this process is paying, for the sentence an interruption prints."""

    ledger: Path | None = None
    batch_id: str | None = None


RUNNING = Running()


def disk_sentence(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return (
            f"the disk is full{where}; what was recorded before is safe. Free some space, then run the "
            "same command again"
        )
    if exc.errno == errno.ENOENT:
        return f"no such file or folder{where}"
    if exc.errno == errno.ENOTDIR:
        return f"cannot write there{where}: part of that path is a file, not a folder"
    if exc.errno == errno.EISDIR:
        return f"{exc.filename or 'that path'} is a folder, not a file"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write there{where}: permission denied"
    return f"{exc.strerror or exc}{where}"


def fail(message: str, code: int) -> NoReturn:
    render.error(message)
    sys.exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the error tree into one sentence and an exit code."""
    try:
        yield
    except KeyboardInterrupt:
        sent = app_status.sent_so_far(RUNNING.ledger, RUNNING.batch_id) if RUNNING.ledger and RUNNING.batch_id else None
        render.interrupted(sent, RUNNING.batch_id)
        sys.exit(130)
    except errors.BadValue as exc:
        raise click.BadParameter(exc.problem, param_hint=exc.option) from None
    except errors.UsageProblem as exc:
        raise click.UsageError(str(exc)) from None
    except errors.InputFileError as exc:
        fail(str(exc), 2)
    except errors.ConfigError as exc:
        fail(str(exc), 2)
    except (errors.WrongEnvironment, errors.NotHeld, errors.OutputExists, errors.BatchReplaced) as exc:
        fail(str(exc), 2)
    except errors.NotConfirmed as exc:
        fail(str(exc), 2)
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc):
            fail(disk_sentence(OSError(errno.ENOSPC, "disk full")), 1)
        fail(
            f"the ledger cannot be read ({exc}); it may be damaged or not a ledger. Everything recorded "
            "before is kept. Keep the file for inspection and point --state at a good copy",
            1,
        )
    except OSError as exc:
        fail(disk_sentence(exc), 1)
    except errors.PlanRefused as exc:
        fail(str(exc), 3)
    except errors.RateLimited as exc:
        wait = f"{exc.retry_after:.0f} s" if exc.retry_after is not None else "a while"
        fail(
            f"Kotani asked us to wait {wait} before sending more ({exc.method} {exc.path}); nothing more "
            "was sent. Run the same command again later",
            1,
        )
    except errors.AccessError as exc:
        fail(str(exc), 2)
    except errors.BatchPayoutsError as exc:
        fail(str(exc), 1)


# -- shared options ------------------------------------------------------------------------------


def file_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--encoding", help="Force the CSV text encoding (e.g. utf-8, utf-16, cp1252)."),
            click.option("--delimiter", help="Force the CSV delimiter: ',', ';' or 'tab'."),
            click.option("--sheet", help="The XLSX sheet to read (default: the first)."),
            click.option(
                "--map",
                "mapping",
                multiple=True,
                metavar='COLUMN="Header"',
                help='Map a column explicitly, e.g. phone="Mobile No". Repeatable.',
            ),
            click.option(
                "--max-row-amount",
                multiple=True,
                metavar="CUR=AMOUNT",
                help="Hold rows paying more than this, per currency, e.g. KES=50000. Repeatable.",
            ),
            click.option(
                "--max-total",
                multiple=True,
                metavar="CUR=AMOUNT",
                help="Hold every row of a currency whose total is more than this, e.g. KES=1000000.",
            ),
            click.option(
                "--allow-duplicates",
                is_flag=True,
                help="Pay rows that repeat another row (an exact copy, or the same payee, amount and method).",
            ),
            click.option("--include-hidden", is_flag=True, help="Pay rows hidden in the spreadsheet."),
            click.option("--strict", is_flag=True, help="Treat repeated payees as errors; invalid rows block the run."),
            click.option("--max-rows", type=int, default=FileOptions.max_rows, show_default=True),
            click.option(
                "--max-file-mb", type=int, default=FileOptions.max_file_bytes // (1024 * 1024), show_default=True
            ),
        ]
    ):
        fn = option(fn)
    return fn


def api_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--sandbox", is_flag=True, help="Use the built-in offline Kotani sandbox."),
            click.option("--base-url", envvar="KOTANI_BASE_URL", default=DEFAULT_BASE_URL, show_default=True),
            click.option(
                "--api-key", "api_key_arg", help="The API key (visible to other users: prefer KOTANI_API_KEY)."
            ),
            click.option(
                "--api-key-file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="A file holding the API key; must be mode 0600.",
            ),
            click.option(
                "--state",
                "state_path",
                envvar="BATCH_PAYOUTS_STATE",
                type=click.Path(path_type=Path),
                help="The ledger file (default: a per-user data directory).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def policy_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--policy",
        "policy_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A policy file (TOML): limits, duplicates, outliers, name checks. See docs/policy.md.",
    )(fn)


def file_args(kw: dict[str, Any]) -> FileOptions:
    """The file options of a command as data (the policy file is read here; ``run_args`` takes it too)."""
    policy = opts.guard_policy(
        kw.get("policy_path"),
        allow_duplicates=kw.pop("allow_duplicates"),
        include_hidden=kw.pop("include_hidden"),
        max_row_amount=kw.pop("max_row_amount"),
        max_total=kw.pop("max_total"),
    )
    return FileOptions(
        encoding=kw.pop("encoding"),
        delimiter=opts.delimiter(kw.pop("delimiter")),
        sheet=kw.pop("sheet"),
        mapping=opts.pairs(kw.pop("mapping"), 'COLUMN="Header"'),
        policy=policy,
        strict=kw.pop("strict"),
        max_rows=kw.pop("max_rows"),
        max_file_bytes=kw.pop("max_file_mb") * 1024 * 1024,
    )


def ask_key() -> str:
    return str(click.prompt("Kotani API key", hide_input=True))


def connect(
    kw: dict[str, Any], *, attempt_timeout: float = 30.0, may_ask: bool = True, only_reads: bool = False
) -> contextlib.AbstractContextManager[Session]:
    """The session of a command that talks to the provider (the real API or the built-in sandbox);
    ``may_ask``: a person at a terminal is asked for the key when no other source has it;
    ``only_reads``: the command pays nothing, so the built-in sandbox need not be served on a port."""
    options = SessionOptions(
        state_path=kw.pop("state_path"),
        sandbox=kw.pop("sandbox"),
        base_url=kw.pop("base_url"),
        key=KeyOptions(kw.pop("api_key_arg"), kw.pop("api_key_file")),
        attempt_timeout=attempt_timeout,
        serve_sandbox=not only_reads,
    )
    return open_session(
        options,
        ask_key=ask_key if may_ask and sys.stdin.isatty() else None,
        warn=render.warning,
        on_environment=render.environment,
    )


# -- commands --------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batch-payouts")
def main() -> None:
    """Pay a spreadsheet of recipients through Kotani Pay, exactly once."""


@main.command()
@click.argument("out_path", metavar="OUT.xlsx|OUT.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def template(out_path: Path, force: bool) -> None:
    """Write an empty payout file: drop-downs, an Examples sheet and Instructions (XLSX), or the header (CSV)."""
    with user_errors():
        render.wrote(files.write_template(out_path, force=force))


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every row with its problems to this CSV or XLSX.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Also ask Kotani whose account each row pays and compare the names (needs an API key or --sandbox).",
)
@file_options
@policy_option
@api_options
def validate(file: Path, report_path: Path | None, verify: bool, **kw: Any) -> None:
    """Check every row of FILE; nothing is paid. Without an API key, against the built-in sandbox's lists."""
    # A check of one file ends when the file is done (--verify waits on the provider: not then).
    with user_errors(), contextlib.nullcontext() if verify else bulk.one_file_command():
        options = file_args(kw)
        sheet = files.load(file, options)
        checks = None
        try:
            with connect(kw, may_ask=verify, only_reads=True) as conn:  # only --verify asks a person for the key
                report = files.check(conn, sheet, options)
                if verify:
                    payees, seconds = namecheck.time_to_ask(conn, report, options.policy)
                    if seconds > namecheck.ASK_FIRST_WITHIN:
                        render.asking_names(payees, seconds)
                    with render.checks_progress() as heard:
                        checks = namecheck.check_names(conn, report, options.policy, heard=heard)
        except errors.NoApiKey:
            if verify:
                raise errors.UsageProblem(
                    "--verify asks Kotani whose account each row pays: it needs an API key "
                    "(KOTANI_API_KEY or --api-key-file) or --sandbox"
                ) from None
            render.note(files.OFFLINE_NOTE)
            report = files.check_offline(sheet, options)
        render.report(report, sheet)
        if checks is not None:
            render.name_checks(checks)
        if report_path:
            render.written(
                "report",
                files.write_report(report_path, sheet, report, namecheck.report_columns(checks) if verify else None),
            )
        files.require_valid_rows(report)
        sys.exit(max(files.validation_exit_code(report), 3 if checks is not None and checks.not_paid else 0))


LABEL_HELP = (
    "Names this disbursement (e.g. 2026-11). A payee is paid at most once per label: "
    "use a new label to pay the same people again, e.g. next month."
)


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--label", default="", help=LABEL_HELP)
@file_options
@policy_option
@click.option(
    "--no-name-check",
    "no_name_check",
    is_flag=True,
    help="Do not ask Kotani whose account each number is (confirmation of payee).",
)
@api_options
def plan(file: Path, label: str, no_name_check: bool, **kw: Any) -> None:
    """Validate FILE, check the payees' names with Kotani and show totals against the payout balances."""
    with user_errors():
        options = file_args(kw)
        sheet = files.load(file, options)
        with connect(kw) as conn:
            conn.prefetch()
            conn.environment()
            report = files.check(conn, sheet, options)
            checks = None
            if options.policy.verify.enabled and not no_name_check:
                checks = namecheck.check_names_for_plan(conn, report, options.policy)
            planned = payouts.plan_batch(
                conn,
                payouts.batch_id_for(conn, file, label),
                sheet,
                report,
                label=label,
                held_by_check=checks.not_paid if checks else (),
            )
            if planned.new is not None:
                render.repeats(planned.new)
        render.report(report, sheet, first=5)
        if checks is not None:
            render.name_checks(checks)
        render.plan(planned.plan)
        sys.exit(max(payouts.plan_exit_code(planned, report), 3 if checks is not None and checks.not_paid else 0))


def _no_allow_repeat(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        raise click.UsageError(
            str(
                errors.OptionRemoved(
                    "--allow-repeat",
                    "it let every repeat through",
                    "Name the rows to pay again with --pay-again ROW[,ROW…] --reason TEXT, or use a new --label",
                )
            )
        )


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
            click.option("--allow-partial", is_flag=True, help="Run even if the balance does not cover everything."),
            click.option("--allow-repeat", is_flag=True, hidden=True, callback=_no_allow_repeat, expose_value=False),
            click.option("--wallet", multiple=True, metavar="CUR=ID", help="The wallet to pay a currency from."),
            click.option(
                "--rate", default="60/60,20/5", show_default=True, help="Payout allowance as limit/seconds windows."
            ),
            click.option("--reads-rate", default="100/5", show_default=True),
            click.option("--concurrency", type=int, default=8, show_default=True),
            click.option(
                "--wait-timeout",
                type=float,
                default=3600.0,
                show_default=True,
                help="Seconds to wait for pending rows before exiting with 4.",
            ),
            click.option(
                "--visibility-lag",
                type=float,
                default=60.0,
                show_default=True,
                help="Seconds a new payout may take to show at the status endpoint.",
            ),
            click.option("--poll-interval", type=float, default=5.0, show_default=True),
            click.option(
                "--attempt-timeout",
                type=float,
                default=30.0,
                show_default=True,
                help="Seconds one HTTP attempt may take in all.",
            ),
            click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path)),
            click.option("--callback-url", help="Where Kotani should send status callbacks."),
            click.option("--listen", help="Run the webhook receiver on HOST:PORT."),
            click.option("--quiet", is_flag=True, help="No progress bar."),
            click.option("--no-poll", is_flag=True, help="Rely on webhooks alone (status reads only when they ask)."),
            click.option(
                "--events",
                "events_path",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Write progress as JSON lines.",
            ),
            click.option(
                "--accept-name",
                "accept_name",
                metavar="ROW[,ROW…]",
                help="Pay these held rows of the batch (a name that differs, an account that could not be "
                "checked, a likely duplicate, an unusual amount); recorded with your name.",
            ),
            click.option(
                "--no-name-check",
                "no_name_check",
                is_flag=True,
                help="Pay without asking Kotani whose account each number is (confirmation of payee).",
            ),
            click.option(
                "--allow-unverified",
                is_flag=True,
                help="Pay rows whose name could not be checked (Kotani timed out) instead of holding them.",
            ),
            click.option(
                "--policy",
                "policy_path",
                type=click.Path(dir_okay=False, path_type=Path),
                help="A policy file (TOML): limits, duplicates, outliers, name checks. See docs/policy.md.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class RunArgs:
    """The run options of a command: the engine's as data, and what only the terminal needs."""

    options: payouts.RunOptions
    attempt_timeout: float
    results_path: Path | None
    yes: bool
    allow_partial: bool
    quiet: bool
    accept_names: list[int] = field(default_factory=list)


def run_args(kw: dict[str, Any]) -> RunArgs:
    options = payouts.RunOptions(
        concurrency=kw.pop("concurrency"),
        wait_timeout=kw.pop("wait_timeout"),
        visibility_lag=kw.pop("visibility_lag"),
        poll_interval=kw.pop("poll_interval"),
        money_rate=opts.money_rate(kw.pop("rate")),
        reads_rate=opts.reads_rate(kw.pop("reads_rate")),
        wallets=opts.pairs(kw.pop("wallet"), "CUR=ID"),
        callback_url=kw.pop("callback_url"),
        listen=opts.host_port(where) if (where := kw.pop("listen")) else None,
        poll=not kw.pop("no_poll"),
        events_path=kw.pop("events_path"),
        policy=opts.policy(kw.pop("policy_path")),
        name_check=not kw.pop("no_name_check"),
        allow_unverified=kw.pop("allow_unverified"),
    )
    return RunArgs(
        options,
        kw.pop("attempt_timeout"),
        kw.pop("results_path"),
        kw.pop("yes"),
        kw.pop("allow_partial"),
        kw.pop("quiet"),
        opts.row_numbers(kw.pop("accept_name"), "--accept-name"),
    )


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--label", default="", help=LABEL_HELP)
@click.option(
    "--pay-again",
    "pay_again",
    metavar="ROW[,ROW…]",
    help="Pay these rows although their payee is already paid for this label (needs --reason).",
)
@click.option("--reason", help="Why --pay-again rows are paid again; recorded in the ledger with your name.")
@file_options
@api_options
@run_options
def run(file: Path, label: str, pay_again: str | None, reason: str | None, **kw: Any) -> None:
    """Validate, plan, confirm, pay every valid row of FILE once, and write the results."""
    with user_errors():
        options = file_args(kw)
        again = opts.pay_again_rows(pay_again, reason)
        args = run_args(kw)
        app_results.check_path(args.results_path, file)
        sheet = files.load(file, options)
        with connect(kw, attempt_timeout=args.attempt_timeout) as conn:
            conn.prefetch()
            conn.environment()
            report = files.check(conn, sheet, options)
            render.report(report, sheet, first=10)
            prepared = payouts.prepare_run(
                conn,
                file,
                sheet,
                report,
                label=label,
                pay_again=again,
                strict=options.strict,
                accepted=args.accept_names,
            )
            if isinstance(prepared, payouts.AlreadyPaid):
                render.guarded_again(prepared.batch.id, prepared.reheld, [])
                render.already_paid(prepared)
                written = payouts.write_finished(conn, prepared, args.results_path)
                render.written("results", written.path)
                render.paid_twice(written.verdict.paid_twice)
                sys.exit(written.verdict.exit_code)
            if prepared.continuing:
                render.continuing(prepared.batch_id)
                render.guarded_again(prepared.batch_id, prepared.reheld, prepared.released)
            if prepared.new is not None:
                render.repeats(prepared.new)
            render.plan(prepared.plan)
            payouts.require_covered(prepared, allow_partial=args.allow_partial)
            if payouts.needs_confirmation(prepared):
                render.confirmation(confirmation.confirmation(conn, prepared, report, args.options, options.policy))
                confirm(prepared.plan, args.yes)
            payouts.create_batch(conn, prepared, sheet)
            batch_id = prepared.batch_id
            del sheet, report, prepared  # the file's rows are in the ledger: not held for the whole run
            render.batch_started(batch_id)
            accept(conn, batch_id, args)
            result = drive(conn, batch_id, args)
            finish(conn, batch_id, result, args.results_path or app_results.default_path(str(file), batch_id))


@main.command()
@click.argument("batch_id")
@api_options
@run_options
def resume(batch_id: str, **kw: Any) -> None:
    """Continue a batch by its id."""
    with user_errors():
        args = run_args(kw)
        app_results.check_path(args.results_path)
        with connect(kw, attempt_timeout=args.attempt_timeout) as conn:
            batch = payouts.resumable(conn, batch_id)
            if batch.replaced_by:
                render.replaced(batch_id, batch.replaced_by)
            accept(conn, batch_id, args)
            result = drive(conn, batch_id, args)
            finish(conn, batch_id, result, args.results_path or app_results.default_path(batch.source, batch_id))


def accept(conn: Session, batch_id: str, args: RunArgs) -> None:
    """--accept-name: the operator lets held rows through before the run pays."""
    if args.accept_names:
        rows = payouts.accept_names(conn, batch_id, args.accept_names)
        render.accepted(batch_id, rows)


def confirm(plan: payouts.Plan, yes: bool) -> None:
    """The person types the total to pay (three tries); NotConfirmed when no one can be asked."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise errors.NotConfirmed("no terminal")
    for _ in range(3):
        if payouts.total_matches(click.prompt(f"Type the total to pay ({plan.grand_total}) to confirm"), plan):
            return
        render.confirm_again()
    raise errors.NotConfirmed("mismatch")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def drive(conn: Session, batch_id: str, args: RunArgs) -> payouts.RunResult:
    """Run the batch with a progress bar (none with --quiet: the run then sums no amounts for it);
    SIGTERM stops it like Ctrl-C (resumable)."""
    with render.progress_bar(quiet=args.quiet) as show:
        RUNNING.ledger, RUNNING.batch_id = conn.ledger.path, batch_id
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return payouts.run_batch(conn, batch_id, args.options, progress=None if args.quiet else show)
        finally:
            signal.signal(signal.SIGTERM, previous)


def finish(conn: Session, batch_id: str, result: payouts.RunResult, results_path: Path) -> NoReturn:
    outcome = payouts.finish(conn, batch_id, result, results_path)
    render.run_outcome(outcome)
    sys.exit(outcome.verdict.exit_code)


@main.command()
@click.argument("source", metavar="RESULTS_FILE|BATCH_ID")
@click.option(
    "--cooloff",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds a failed row must have been failed before it is paid again.",
)
@api_options
@run_options
def retry(source: str, cooloff: float, **kw: Any) -> None:
    """Pay again only the rows that definitively failed, as new attempts in a new batch."""
    with user_errors():
        args = run_args(kw)
        with connect(kw, attempt_timeout=args.attempt_timeout) as conn:
            planned = app_retry.plan_retry(conn, source, cooloff=cooloff)
            render.retry_plan(planned)
            if not planned.plan.rows:
                verdict = app_retry.nothing_to_retry(conn, planned)
                render.paid_twice(verdict.paid_twice)
                sys.exit(verdict.exit_code)
            confirm(planned.totals, args.yes)
            batch_id = app_retry.create_retry(conn, planned)
            parent = planned.parent
            del planned  # the rows to pay are in the ledger: not held for the whole run
            render.retry_started(batch_id, parent.id)
            result = drive(conn, batch_id, args)
            finish(conn, batch_id, result, args.results_path or app_results.default_path(parent.source, batch_id))


@main.command()
@click.argument("batch_id")
@api_options
def reconcile(batch_id: str, **kw: Any) -> None:
    """Compare the ledger with the provider's withdrawals list for this batch."""
    with user_errors(), connect(kw) as conn:
        done = app_reconcile.reconcile(conn, batch_id)
        render.reconciled(done)
        sys.exit(done.verdict.exit_code)


@main.command()
@click.option("--listen", "where", default="127.0.0.1:8787", show_default=True, help="HOST:PORT")
@click.option("--state", "state_path", envvar="BATCH_PAYOUTS_STATE", type=click.Path(path_type=Path))
def listen(where: str, state_path: Path | None) -> None:
    """Run the webhook receiver alone, writing into the ledger (KOTANI_WEBHOOK_SECRET to verify)."""
    with user_errors():
        host, port = opts.host_port(where)
        with app_receiver.receiving(state_path, host, port) as receiving:
            render.receiving(receiving)
            while True:
                time.sleep(3600)


def where_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--state, and --sandbox/--base-url to insist on an environment (commands that send nothing)."""
    for option in reversed(
        [
            click.option("--state", "state_path", envvar="BATCH_PAYOUTS_STATE", type=click.Path(path_type=Path)),
            click.option("--sandbox", is_flag=True, help="Only batches of the built-in sandbox."),
            click.option("--base-url", help="Only batches of this Kotani host."),
        ]
    ):
        fn = option(fn)
    return fn


@main.command()
@click.argument("batch_id", required=False)
@where_options
def status(batch_id: str | None, state_path: Path | None, sandbox: bool, base_url: str | None) -> None:
    """One batch in detail, or a table of recent batches."""
    with user_errors():
        where = app_status.Where(state_path, sandbox, base_url)
        if batch_id:
            found = app_status.status_of(where, batch_id, on_environment=render.environment)
            render.batch_status(found)
            render.paid_twice(found.verdict.paid_twice)
            sys.exit(found.verdict.exit_code)
        render.recent_batches(app_status.recent_batches(where))


@main.command()
@click.argument("batch_id")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OUT.csv or OUT.xlsx (the results), or OUT.pdf (a one-page summary).",
)
@click.option("--final", is_flag=True, help="One line per row of the original file: its outcome after every retry.")
@where_options
def results(
    batch_id: str, output: Path, final: bool, state_path: Path | None, sandbox: bool, base_url: str | None
) -> None:
    """Write the results file of a batch (also mid-run), its final outcome across retries, or a PDF summary."""
    with user_errors():
        where = app_status.Where(state_path, sandbox, base_url)
        render.written(
            "results", app_results.write_for(where, batch_id, output, on_environment=render.environment, final=final)
        )


@main.command()
@click.option("--currency", default="KES", show_default=True)
@api_options
def banks(currency: str, **kw: Any) -> None:
    """List the banks Kotani supports for a currency."""
    with user_errors(), connect(kw) as conn:
        render.banks(currency, files.banks(conn, currency))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--api-key", default="test-key", show_default=True, help="The key the sandbox accepts.")
@click.option("--webhook-secret", help="Sign webhooks with this secret (else direct callbacks).")
@click.option("--webhook-url", help="Where signed webhooks go (default: each payout's callbackUrl).")
@click.option(
    "--clock-speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Sandbox seconds per real second (10 settles a 5 s payout in 0.5 s).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--balance", multiple=True, metavar="CUR=AMOUNT", help="Starting payout balance.")
@click.option(
    "--knob",
    multiple=True,
    metavar="NAME=VALUE",
    help="A fault knob, e.g. p_5xx_after=0.1, duplicate_mode=accept, visibility_delay=30. "
    "See batch_payouts.sandbox.Knobs for all.",
)
def sandbox(
    host: str,
    port: int,
    api_key: str,
    webhook_secret: str | None,
    webhook_url: str | None,
    clock_speed: float,
    seed: int,
    balance: tuple[str, ...],
    knob: tuple[str, ...],
) -> None:
    """Serve the offline Kotani sandbox."""
    with user_errors():
        options = SandboxServerOptions(
            host=host,
            port=port,
            api_key=api_key,
            webhook_secret=webhook_secret,
            webhook_url=webhook_url,
            clock_speed=clock_speed,
            seed=seed,
            knobs=sandbox_server.knobs_from(knob),
            balances=sandbox_server.balances_from(balance),
        )
        sandbox_server.serve_sandbox(options, announce=render.sandbox_serving)


# -- people and the web console -------------------------------------------------------------------


@main.group()
def users() -> None:
    """The people of the web console: add, list, disable."""


def state_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--state",
        "state_path",
        envvar="BATCH_PAYOUTS_STATE",
        type=click.Path(path_type=Path),
        help="The ledger file (default: a per-user data directory).",
    )(fn)


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of standard input, or asked twice (hidden)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise errors.UsageProblem("no terminal to ask for the password: use --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, help="maker, approver, viewer or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--totp", is_flag=True, help="Also require a code from an authenticator app (shown once).")
@state_option
def users_add(name: str, role: str, password_stdin: bool, totp: bool, state_path: Path | None) -> None:
    """Add a person who may sign in to the console with ROLE."""
    with user_errors():
        chosen = people.role_of(role)
        people.check_name(name)
        password = read_password(password_stdin)
        with app_status.open_ledger(app_status.Where(state_path)) as ledger:
            render.person_added(
                people.add_person(ledger, name, chosen, password, totp=totp, by=f"command line ({payouts.operator()})")
            )


@users.command("list")
@state_option
def users_list(state_path: Path | None) -> None:
    """Every person: role, second factor, active or disabled."""
    with user_errors(), app_status.open_ledger(app_status.Where(state_path)) as ledger:
        render.people(people.people(ledger))


@users.command("disable")
@click.argument("name")
@state_option
def users_disable(name: str, state_path: Path | None) -> None:
    """NAME can no longer sign in; what they did stays in the audit trail."""
    with user_errors(), app_status.open_ledger(app_status.Where(state_path)) as ledger:
        people.disable_person(ledger, name, by=f"command line ({payouts.operator()})")
        render.person_disabled(name)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; another than loopback needs TLS or --insecure-http.",
)
@click.option("--port", type=int, default=8080, show_default=True, help="0 picks a free port (printed).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="The certificate's private key.")
@click.option("--insecure-http", is_flag=True, help="Serve plain HTTP on a non-loopback address anyway (warned).")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A policy file (TOML): the two-person rule's threshold, name checks. See docs/policy.md.",
)
@click.option(
    "--notify-url",
    envvar="BATCH_PAYOUTS_NOTIFY_URL",
    help="A Slack-compatible webhook told when a batch awaits approval, finishes or has PAID TWICE.",
)
@click.option(
    "--max-file-mb",
    type=int,
    default=FileOptions.max_file_bytes // (1024 * 1024),
    show_default=True,
    help="The largest payout file an upload may be.",
)
@api_options
def serve(
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    insecure_http: bool,
    policy_path: Path | None,
    notify_url: str | None,
    max_file_mb: int,
    **kw: Any,
) -> None:
    """Serve the web console: upload, review, approve with a second person, watch, download, retry."""
    from batch_payouts import console  # the console's libraries load only for this command
    from batch_payouts.app import serving
    from batch_payouts.app.workspace import WorkspaceOptions

    with user_errors():
        listen = serving.listen_from(host, port, tls_cert, tls_key, insecure_http, render.warning)
        hook = notify.check_url(notify_url, lambda sentence: errors.BadValue(sentence, "--notify-url"))
        options = WorkspaceOptions(
            policy=opts.policy(policy_path), max_file_bytes=max_file_mb * 1024 * 1024, notify_url=hook
        )
        session = SessionOptions(
            state_path=kw.pop("state_path"),
            sandbox=kw.pop("sandbox"),
            base_url=kw.pop("base_url"),
            key=KeyOptions(kw.pop("api_key_arg"), kw.pop("api_key_file")),
        )
        previous = signal.signal(signal.SIGTERM, _terminate)  # stop like Ctrl-C: the sandbox's books are kept
        try:
            with serving.workspace(session, options, ask_key=ask_key if sys.stdin.isatty() else None) as workspace:
                render.environment(workspace.environment)
                serving.serve_forever(
                    console.build_app(workspace, secure=listen.tls is not None), listen, render.console_listening
                )
        except KeyboardInterrupt:
            render.console_stopped()
        finally:
            signal.signal(signal.SIGTERM, previous)

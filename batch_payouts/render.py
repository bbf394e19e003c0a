"""What the command line shows: every table, line and progress bar, on stdout or stderr.

The only module that uses rich. Nothing here decides anything: it shows the typed results of
``batch_payouts.app``.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from batch_payouts.app.files import Bank, RawSheet, Report
from batch_payouts.app.status import BatchLine, BatchStatus, PaidTwice
from batch_payouts.environment import Environment

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """``error: …`` on stderr."""
    err.print(f"[bold red]error:[/] {message}", markup=True)


def warning(text: str) -> None:
    err.print(f"warning: {text}")


def environment(env: Environment) -> None:
    """The LIVE or SANDBOX line, host and account, before anything about a batch."""
    out.print(f"[bold]{env.describe()}[/]", markup=True)


def report(report: Report, sheet: RawSheet, first: int = 15) -> None:
    """Counts, valid totals per currency and method, and the first ``first`` problems."""
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


def written(what: str, path: Path) -> None:
    """``report: PATH``, ``results: PATH``."""
    out.print(f"{what}: {path}")


def wrote(path: Path) -> None:
    out.print(f"wrote {path}")


def banks(currency: str, found: list[Bank]) -> None:
    table = Table("code", "name", title=f"Banks for {currency.upper()}")
    for bank in found:
        table.add_row(bank.code, bank.name)
    out.print(table)


def batch_status(status: BatchStatus) -> None:
    """Rows and amounts per status and currency, then the rows the provider corrected."""
    table = Table("status", "currency", "rows", "amount", title=f"Batch {status.batch_id}")
    for line in status.summary:
        table.add_row(line.status, line.currency, str(line.rows), f"{line.amount:,}")
    out.print(table)
    for row, note in status.corrections:
        out.print(f"row {row}: {note}")


def paid_twice(pairs: list[PaidTwice]) -> None:
    """Said loudly: each payee paid twice for one obligation, and what to do."""
    for pair in pairs:
        row, other = pair.row, pair.other
        err.print(f"[bold red]PAID TWICE: row {row.row} of batch {row.batch_id} ({row.reference}) and row "
                  f"{other.row} of batch {other.batch_id} ({other.reference}) both paid the same payee for this "
                  "label. Recover the money from the recipient.[/]", markup=True)


def recent_batches(lines: list[BatchLine]) -> None:
    table = Table("batch", "environment", "label", "source", "rows", "created", title="Recent batches")
    for b in lines:
        table.add_row(b.batch_id, b.environment, b.label, b.source, str(b.rows),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created_at)))
    out.print(table)


def interrupted(sent: int | None, batch_id: str | None) -> None:
    """What Ctrl-C or SIGTERM says: how many payouts had already left, and how to go on."""
    if sent is None or batch_id is None:
        err.print("interrupted; everything done so far is saved. Run the same command again to continue.")
        return
    err.print(f"interrupted; {sent} payout{'s' if sent != 1 else ''} of batch {batch_id} had already "
              f"left and are recorded; nothing is lost. Continue with: batch-payouts resume {batch_id}")

"""What the command line shows: every table, line and progress bar, on stdout or stderr.

The only module that uses rich. Nothing here decides anything: it shows the typed results of
``batch_payouts.app``.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from batch_payouts.app.files import Bank, RawSheet, Report
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

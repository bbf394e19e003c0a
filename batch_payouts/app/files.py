"""A payout file: read it (through the hostile-file guard), check every row against what the
provider can pay and against the payroll guardrails of the policy, write the validation report;
the empty template; the provider's bank list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from batch_payouts import errors
from batch_payouts.app.bulk import row_work
from batch_payouts.app.session import Session
from batch_payouts.catalog import Catalog
from batch_payouts.catalog_reads import fetch_catalog
from batch_payouts.engine import plan as planning
from batch_payouts.guardrails import PayeeHistory, apply_guardrails
from batch_payouts.kotani.client import ApiKey, KotaniClient, in_process
from batch_payouts.kotani.wire import Bank
from batch_payouts.policy import Policy
from batch_payouts.sheets.guard import Limits
from batch_payouts.sheets.layout import NAME_CHECK_COLUMNS
from batch_payouts.sheets.read import RawSheet, read_sheet
from batch_payouts.validate import Problem, Report, Rules

__all__ = [
    "OFFLINE_NOTE",
    "Bank",
    "FileOptions",
    "RawSheet",
    "Report",
    "banks",
    "check",
    "check_offline",
    "load",
    "require_valid_rows",
    "validation_exit_code",
    "write_report",
    "write_template",
]
OFFLINE_NOTE = (
    "no API key: the file was checked against the sandbox's built-in list of countries, currencies, "
    "networks and banks; Kotani's live lists were not asked. Set KOTANI_API_KEY to check against them"
)
WRITABLE = (".csv", ".xlsx")


@dataclass(frozen=True)
class FileOptions:
    """How to read a file and what to hold or refuse in it. ``mapping``: canonical column -> header;
    ``policy``: the payroll guardrails (limits per currency in major units, duplicates, outliers,
    hidden and example rows), the command line's overrides applied; ``max_file_bytes`` in bytes."""

    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    strict: bool = False
    max_rows: int = Limits.max_rows
    max_file_bytes: int = Limits.max_file_bytes

    @property
    def rules(self) -> Rules:
        return Rules(strict=self.strict)

    @property
    def limits(self) -> Limits:
        return Limits(max_rows=self.max_rows, max_file_bytes=self.max_file_bytes)


@row_work
def load(path: Path, options: FileOptions) -> RawSheet:
    """The file's rows and headers, or InputFileError saying why it cannot be used."""
    return read_sheet(
        path,
        encoding=options.encoding,
        delimiter=options.delimiter,
        sheet=options.sheet,
        mapping=options.mapping,
        limits=options.limits,
    )


@row_work
def check(session: Session, sheet: RawSheet, options: FileOptions) -> Report:
    """Every row checked against the provider's catalog (countries, networks, banks), then against
    the guardrails (each hold a problem of severity ``"held"``), with what this environment paid
    the same payees before."""
    report = planning.check_sheet(sheet, session.catalog(), options.rules)
    currencies = {r.payout.currency for r in report.valid_rows if r.payout is not None}
    history = session.ledger.paid_amounts(session.environment().id, currencies)
    return guard(report, sheet, options.policy, history)


@row_work
def check_offline(sheet: RawSheet, options: FileOptions) -> Report:
    """As :func:`check` without an API key: against the catalog of the built-in sandbox (say
    :data:`OFFLINE_NOTE`), and without earlier payouts to compare amounts with."""
    return guard(planning.check_sheet(sheet, bundled_catalog(), options.rules), sheet, options.policy, {})


def guard(report: Report, sheet: RawSheet, policy: Policy, history: PayeeHistory) -> Report:
    """``report`` with the guardrails' holds, refusals and warnings added (to its own rows: the
    callers pass a report just made)."""
    return apply_guardrails(report, sheet, policy, history=history, in_place=True).report


def bundled_catalog() -> Catalog:
    """The countries, currencies, networks and banks of the built-in sandbox, read the way the live
    catalog is read: over HTTP, from a sandbox answering in this process (no port, no thread)."""
    from batch_payouts.sandbox import SandboxState, answering_in_process

    sandbox = answering_in_process(SandboxState(api_key="offline"))

    async def fetch() -> Catalog:
        async with KotaniClient(
            sandbox.base_url, ApiKey("offline"), transport=in_process(sandbox.sandbox.app)
        ) as client:
            return await fetch_catalog(client)

    return anyio.run(fetch)


def require_valid_rows(report: Report) -> None:
    """PlanRefused when no row of the file can be paid."""
    if not report.valid_rows:
        raise errors.PlanRefused("no valid row in the file")


def validation_exit_code(report: Report) -> int:
    """0 when every row is valid and none is held, else 3."""
    return 0 if len(report.valid_rows) == len(report.rows) and not report.holds() else 3


@row_work
def write_report(
    path: Path, sheet: RawSheet, report: Report, name_checks: Mapping[int, dict[str, str]] | None = None
) -> Path:
    """Every row with its problems and normalised phone, as CSV or XLSX by suffix; with
    ``name_checks`` (row -> the name-check columns), each row's verdict, registered name and score too."""
    from batch_payouts.sheets.write import write_columns

    by_row = {r.row: r for r in report.rows}
    raws = sheet.rows
    results = [by_row[raw.row] for raw in raws]
    extra = list(NAME_CHECK_COLUMNS) if name_checks is not None else []
    headers = [*sheet.headers, "row", "valid", "problems", "normalised_phone", *extra]
    columns: list[list[str] | list[int]] = [[raw.cells.get(h, "") for raw in raws] for h in sheet.headers]
    columns += [
        [raw.row for raw in raws],
        ["yes" if r.valid else "no" for r in results],
        [_problems_text(r.problems) for r in results],
        [r.normalised_phone for r in results],
    ]
    if name_checks is not None:
        checked = [name_checks.get(raw.row, {}) for raw in raws]
        columns += [[c.get(column, "") for c in checked] for column in extra]
    write_columns(path, headers, columns, text_columns={"normalised_phone", "registered_name"})
    return path


def _problems_text(problems: list[Problem]) -> str:
    """A row's problems in one cell: ``error: amount: the amount is empty; warning: ...``."""
    if not problems:
        return ""
    return "; ".join(f"{p.severity}: {p.column + ': ' if p.column else ''}{p.message}" for p in problems)


def write_template(path: Path, *, force: bool = False) -> Path:
    """An empty payout file (.csv or .xlsx; the workbook with drop-downs, examples and
    instructions); an existing file is replaced only with ``force``."""
    from batch_payouts.sheets.template import write_template as write

    if path.suffix.lower() not in WRITABLE:
        raise errors.UnsupportedFormat(path, "template")
    write(path, force=force)
    return path


def banks(session: Session, currency: str) -> list[Bank]:
    """The banks the provider pays in ``currency``."""

    async def fetch(client: KotaniClient) -> list[Bank]:
        return await client.list_banks(currency.upper())

    return session.call(fetch)

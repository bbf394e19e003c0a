"""Payroll guardrails: each everyday mistake is refused or held with its sentence, and each has
an override. Files are written and read as a user's would be, then validated for real."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from batch_payouts.catalog import Catalog
from batch_payouts.guardrails import Action, Guarded, PayeeHistory, Rule, apply_guardrails
from batch_payouts.policy import Policy, parse_policy
from batch_payouts.sheets.read import RawSheet, read_sheet
from batch_payouts.sheets.template import write_template
from batch_payouts.validate import Report, validate_rows
from tests.support import sandbox_catalog

HEADER = ["name", "phone", "country", "amount", "currency", "method", "till_number", "reference"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return sandbox_catalog()


def person(n: int, amount: str = "2000", currency: str = "KES", **cells: str) -> dict[str, str]:
    base = {
        "name": f"Student {n}",
        "phone": f"+2547120{n:05d}" if currency == "KES" else f"+2567720{n:05d}",
        "country": "KE" if currency == "KES" else "UG",
        "amount": amount,
        "currency": currency,
        "method": "mobile_money",
        "reference": f"NOV-{n:03d}",
    }
    return {**base, **cells}


def write_csv(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, HEADER)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    return path


def check(
    path: Path,
    catalog: Catalog,
    policy: Policy | None = None,
    *,
    history: PayeeHistory | None = None,
    accepted: Sequence[int] = (),
) -> tuple[Report, RawSheet, Guarded]:
    sheet = read_sheet(path)
    rows = [(r.row, {c: r.cells.get(h, "") for c, h in sheet.mapping.items()}) for r in sheet.rows]
    report = validate_rows(rows, catalog)
    return report, sheet, apply_guardrails(report, sheet, policy or Policy(), history=history, accepted=accepted)


def said(guarded: Guarded, rule: Rule) -> list[tuple[int, Action, str]]:
    return [(g.row, g.action, g.sentence) for g in guarded.findings if g.rule is rule]


def valid(guarded: Guarded) -> list[int]:
    """Rows paid as the file stands: valid and not held."""
    held = guarded.report.held_rows()
    return [r.row for r in guarded.report.valid_rows if r.row not in held]


# -- rows that should not be in the file ------------------------------------------------------------


def test_the_templates_example_rows_are_held_if_left_in(tmp_path: Path, catalog: Catalog) -> None:
    template = tmp_path / "payouts.xlsx"
    write_template(template)
    wb = openpyxl.load_workbook(template)
    examples = list(wb["Examples"].iter_rows(min_row=2, values_only=True))  # pasted into the Payouts sheet
    for r, example in enumerate(examples, 2):
        for column, value in enumerate(example, 1):
            wb["Payouts"].cell(row=r, column=column, value=value)
    for column, value in enumerate(["Achieng Odhiambo", "+254712000111", "KE", "", "1800", "KES", "mobile_money"], 1):
        wb["Payouts"].cell(row=7, column=column, value=value)
    wb.save(template)
    _, _, guarded = check(template, catalog)
    assert said(guarded, Rule.TEMPLATE_EXAMPLE) == [
        (
            2,
            Action.HOLD,
            "Row 2 is the template's example row for Akinyi Odera: held, not paid; delete it from the file.",
        ),
        (
            3,
            Action.HOLD,
            "Row 3 is the template's example row for Kofi Mensah: held, not paid; delete it from the file.",
        ),
        (
            4,
            Action.HOLD,
            "Row 4 is the template's example row for Mama Mboga Stores: held, not paid; delete it from the file.",
        ),
        (
            5,
            Action.HOLD,
            "Row 5 is the template's example row for Kisumu Water: held, not paid; delete it from the file.",
        ),
        (
            6,
            Action.HOLD,
            "Row 6 is the template's example row for Lindiwe Dube: held, not paid; delete it from the file.",
        ),
    ]
    assert valid(guarded) == [7]
    allowed = parse_policy("[rows]\nrefuse_template_examples = false\n")
    assert valid(check(template, catalog, allowed)[2]) == [2, 3, 4, 5, 6, 7]


def test_a_real_person_who_shares_the_example_name_is_paid(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "p.csv", [person(1, name="Akinyi Odera")])
    assert valid(check(path, catalog)[2]) == [2]


def test_rows_hidden_in_excel_are_held_unless_included(tmp_path: Path, catalog: Catalog) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for n in range(1, 6):
        ws.append([person(n).get(h, "") for h in HEADER])
    ws.row_dimensions[4].hidden = True
    path = tmp_path / "hidden.xlsx"
    wb.save(path)
    _, sheet, guarded = check(path, catalog)
    assert sheet.hidden_rows == {4}
    assert said(guarded, Rule.HIDDEN_ROW) == [
        (
            4,
            Action.HOLD,
            "Row 4 is hidden in the spreadsheet: held, not paid; "
            "unhide it to check it, or pass --include-hidden to "
            "pay hidden rows.",
        )
    ]
    assert valid(guarded) == [2, 3, 5, 6]
    _, _, included = check(path, catalog, Policy().with_overrides(include_hidden=True))
    assert said(included, Rule.HIDDEN_ROW) == [
        (4, Action.WARN, "Row 4 is hidden in the spreadsheet; paid because hidden rows are included.")
    ]
    assert valid(included) == [2, 3, 4, 5, 6]


def test_a_csv_has_no_hidden_rows(tmp_path: Path, catalog: Catalog) -> None:
    _, sheet, guarded = check(write_csv(tmp_path / "p.csv", [person(1)]), catalog)
    assert sheet.hidden_rows == frozenset() and not guarded.findings


# -- duplicates --------------------------------------------------------------------------------------


def test_an_exact_copy_is_held_unless_duplicates_are_allowed(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "p.csv", [person(1), person(2), person(1)])
    report, _, guarded = check(path, catalog)
    assert said(guarded, Rule.EXACT_DUPLICATE) == [
        (
            4,
            Action.HOLD,
            "Row 4 is an exact copy of row 2: held as a duplicate, not paid; pass --allow-duplicates "
            "if both payments are intended.",
        )
    ]
    assert [(p.severity, str(p)) for p in guarded.report.rows[2].problems] == [
        (
            "held",
            "row 4: is an exact copy of row 2: held as a duplicate, not paid; pass --allow-duplicates if both "
            "payments are intended",
        )
    ]
    assert valid(guarded) == [2, 3]
    _, _, allowed = check(path, catalog, Policy().with_overrides(allow_duplicates=True))
    assert said(allowed, Rule.EXACT_DUPLICATE) == [
        (4, Action.WARN, "Row 4 is an exact copy of row 2; both are paid because duplicates are allowed.")
    ]
    assert valid(allowed) == [2, 3, 4]
    assert [str(p) for p in report.rows[2].problems] == ["row 4: exact duplicate of row 2"], "input left unchanged"


def test_guardrails_in_place_give_the_same_findings_on_the_reports_own_rows(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "p.csv", [person(1), person(2), person(1), person(3, amount="900000")])
    report, sheet, copied = check(path, catalog)
    in_place = apply_guardrails(report, sheet, Policy(), in_place=True)
    assert in_place.findings and in_place.findings == copied.findings
    assert [r.problems for r in in_place.report.rows] == [r.problems for r in copied.report.rows]
    assert in_place.report.rows == report.rows and in_place.report.rows[2] is report.rows[2]


def test_the_same_payee_amount_and_method_twice_is_held_unless_allowed(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "p.csv", [person(1), person(2), person(1, reference="")])
    _, _, guarded = check(path, catalog)
    assert said(guarded, Rule.REPEATED_PAYMENT) == [
        (
            4,
            Action.HOLD,
            "Row 4 pays the same recipient the same amount (KES 2,000) by the same method as row 2: "
            "held as a likely duplicate, not paid; pass --allow-duplicates if both payments are intended.",
        )
    ]
    assert valid(guarded) == [2, 3]
    _, _, allowed = check(path, catalog, parse_policy("[duplicates]\nallow = true\n"))
    assert said(allowed, Rule.REPEATED_PAYMENT) == [
        (
            4,
            Action.WARN,
            "Row 4 pays the same recipient the same amount (KES 2,000) by the same method as row 2; "
            "both are paid because duplicates are allowed.",
        )
    ]
    assert valid(allowed) == [2, 3, 4]


def test_the_same_payment_under_a_reference_of_its_own_is_paid_with_a_warning(tmp_path: Path, catalog: Catalog) -> None:
    """Two rows that each carry their own reference are two payments by the file's own word
    (docs/obligations.md): both are paid, and the second says what to check."""
    path = write_csv(tmp_path / "p.csv", [person(1), person(2), person(1, reference="DEC-001")])
    _, _, guarded = check(path, catalog)
    assert said(guarded, Rule.REPEATED_PAYMENT) == [
        (
            4,
            Action.WARN,
            "Row 4 pays the same recipient the same amount (KES 2,000) by the same method as row 2, "
            "under a reference of its own (DEC-001; row 2: NOV-001): paid as a separate payment; check "
            "that both are intended.",
        )
    ]
    assert valid(guarded) == [2, 3, 4]


def test_the_same_payee_with_another_amount_is_a_warning(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "p.csv", [person(1), person(1, amount="2500", reference="NOV-901")])
    _, _, guarded = check(path, catalog)
    assert said(guarded, Rule.SAME_PAYEE) == [
        (
            3,
            Action.WARN,
            "Row 3 pays the same recipient as row 2 a different amount (KES 2,500 here, KES 2,000 "
            "there): check that both payments are intended.",
        )
    ]
    assert [p.message for p in guarded.report.rows[1].problems] == [
        "pays the same recipient as row 2 a different amount (KES 2,500 here, KES 2,000 there): check that both "
        "payments are intended"
    ], "replaces validation's vaguer warning"
    assert valid(guarded) == [2, 3]


def test_a_payees_third_row_is_compared_with_the_first_row_of_its_amount(tmp_path: Path, catalog: Catalog) -> None:
    """The same payee paid 2,000, then 2,500, then 2,500 again: the third row repeats the second
    (same amount), and the second differs from the first."""
    rows = [person(1), person(1, amount="2500", reference="NOV-901"), person(1, amount="2500", reference="")]
    _, _, guarded = check(write_csv(tmp_path / "p.csv", rows), catalog)
    assert [(row, action) for row, action, _ in said(guarded, Rule.SAME_PAYEE)] == [(3, Action.WARN)]
    assert [(row, action) for row, action, _ in said(guarded, Rule.REPEATED_PAYMENT)] == [(4, Action.HOLD)]
    assert "by the same method as row 3: held" in said(guarded, Rule.REPEATED_PAYMENT)[0][2]


# -- amounts -----------------------------------------------------------------------------------------


def test_per_currency_row_limits(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        [
            person(1, amount="250000"),
            person(2, amount="6000000", currency="UGX"),
            person(3, amount="4000000", currency="UGX"),
        ],
    )
    policy = parse_policy("[limits]\nmax_row_amount = { KES = 200000, ugx = 5000000 }\n")
    _, _, guarded = check(path, catalog, policy)
    assert said(guarded, Rule.ROW_LIMIT) == [
        (2, Action.HOLD, "Row 2 pays KES 250,000, more than the KES 200,000 limit per row: held, not paid."),
        (3, Action.HOLD, "Row 3 pays UGX 6,000,000, more than the UGX 5,000,000 limit per row: held, not paid."),
    ]
    assert [str(p) for p in guarded.report.holds()] == [
        "row 2, amount: pays KES 250,000, more than the KES 200,000 limit per row: held, not paid (saw '250000')",
        "row 3, amount: pays UGX 6,000,000, more than the UGX 5,000,000 limit per row: held, not paid (saw '6000000')",
    ]
    assert valid(guarded) == [4]
    raised = policy.with_overrides(max_row_amount={"KES": Decimal(300000), "UGX": Decimal(7000000)})
    assert valid(check(path, catalog, raised)[2]) == [2, 3, 4]


def test_per_currency_batch_limits(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        [person(1, amount="600000"), person(2, amount="500000"), person(3, amount="10000", currency="UGX")],
    )
    policy = Policy().with_overrides(max_batch_total={"KES": Decimal(1000000)})
    _, _, guarded = check(path, catalog, policy)
    assert said(guarded, Rule.BATCH_LIMIT) == [
        (
            2,
            Action.HOLD,
            "Row 2 is one of 2 KES rows totalling KES 1,100,000, more than the KES 1,000,000 limit "
            "per batch: held, not paid.",
        ),
        (
            3,
            Action.HOLD,
            "Row 3 is one of 2 KES rows totalling KES 1,100,000, more than the KES 1,000,000 limit "
            "per batch: held, not paid.",
        ),
    ]
    assert valid(guarded) == [4]
    assert valid(check(path, catalog, policy.with_overrides(max_batch_total={"KES": Decimal(1100000)}))[2]) == [2, 3, 4]


def stipends(tmp_path: Path, typo: str = "1000000") -> Path:
    rows = [person(n) for n in range(1, 10)] + [person(10, amount=typo)]
    return write_csv(tmp_path / "stipends.csv", rows)


def test_an_amount_far_above_the_files_typical_amount_is_held(tmp_path: Path, catalog: Catalog) -> None:
    _, _, guarded = check(stipends(tmp_path), catalog)
    assert said(guarded, Rule.FILE_OUTLIER) == [
        (
            11,
            Action.HOLD,
            "Row 11 pays KES 1,000,000, 500 times the file's typical KES amount (the median of its "
            "10 KES rows is KES 2,000): held until you accept it.",
        )
    ]
    assert list(guarded.held_rows()) == [11] and 11 not in valid(guarded)
    assert 11 in [r.row for r in guarded.report.valid_rows], "held is not invalid: it waits for a person"


def test_an_accepted_outlier_is_paid_with_a_warning(tmp_path: Path, catalog: Catalog) -> None:
    _, _, guarded = check(stipends(tmp_path), catalog, accepted=[11])
    assert said(guarded, Rule.FILE_OUTLIER) == [
        (
            11,
            Action.WARN,
            "Row 11 pays KES 1,000,000, 500 times the file's typical KES amount (the median of its "
            "10 KES rows is KES 2,000): held until you accept it; accepted by the operator.",
        )
    ]
    assert guarded.held_rows() == {}


def test_the_file_comparison_follows_the_policy(tmp_path: Path, catalog: Catalog) -> None:
    assert not check(stipends(tmp_path, "19000"), catalog)[2].findings, "9.5 times the median is under 10"
    tight = parse_policy("[outliers]\nfile_multiple = 5\n")
    assert [g.row for g in check(stipends(tmp_path, "19000"), catalog, tight)[2].held_rows()[11]] == [11]
    off = parse_policy("[outliers]\nfile_multiple = 0\n")
    assert check(stipends(tmp_path), catalog, off)[2].held_rows() == {}
    few = write_csv(tmp_path / "few.csv", [person(1), person(2, amount="900000")])
    assert check(few, catalog)[2].held_rows() == {}, "two rows tell nothing about what is typical"


def test_an_amount_far_above_the_payees_earlier_payouts_is_held(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "p.csv", [person(1, amount="60000"), person(2, amount="2000")])
    history = {
        ("mobile_money:+254712000001", "KES"): [Decimal(5000), Decimal(4000)],
        ("mobile_money:+254712000002", "KES"): [Decimal(2000)],
    }
    _, _, guarded = check(path, catalog, history=history)
    assert said(guarded, Rule.HISTORY_OUTLIER) == [
        (
            2,
            Action.HOLD,
            "Row 2 pays KES 60,000, 12 times the most this recipient was paid before (KES 5,000, in "
            "2 earlier payouts): held until you accept it.",
        )
    ]
    assert check(path, catalog, history=history, accepted=[2])[2].held_rows() == {}
    off = parse_policy("[outliers]\nhistory_multiple = 0\n")
    assert check(path, catalog, off, history=history)[2].held_rows() == {}


def test_the_issues_file_shows_every_mistake_at_once(tmp_path: Path, catalog: Catalog) -> None:
    rows = [person(n) for n in range(1, 15)] + [person(3, reference=""), person(15, amount="1000000")]
    _, _, guarded = check(write_csv(tmp_path / "p.csv", rows), catalog)
    assert [(g.row, g.rule, g.action) for g in guarded.findings] == [
        (16, Rule.REPEATED_PAYMENT, Action.HOLD),
        (17, Rule.FILE_OUTLIER, Action.HOLD),
    ]

"""The template: a bold frozen header with drop-downs, examples and instructions on their own sheets,
example rows recognised wherever they are pasted, and no file overwritten by accident."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batch_payouts.cli import main
from batch_payouts.errors import OutputExists
from batch_payouts.sheets.columns import CANONICAL
from batch_payouts.sheets.read import read_sheet
from batch_payouts.sheets.template import EXAMPLES, is_example_row, write_template
from batch_payouts.validate import validate_rows
from tests.conftest import ROOT
from tests.support import sandbox_catalog


def test_xlsx_template_has_a_bold_frozen_header_and_no_rows_to_pay(tmp_path: Path) -> None:
    write_template(tmp_path / "t.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "t.xlsx")
    assert wb.sheetnames == ["Payouts", "Examples", "Instructions"]
    ws = wb["Payouts"]
    assert [c.value for c in ws[1]] == list(CANONICAL)
    assert all(c.font.b for c in ws[1]) and ws.freeze_panes == "A2"
    assert all(c.value is None for row in ws.iter_rows(min_row=2) for c in row)
    phone = CANONICAL.index("phone") + 1
    assert ws.cell(row=300, column=phone).number_format == "@", "rows the team will type in keep leading zeros"
    with pytest.raises(Exception, match="no data rows"):
        read_sheet(tmp_path / "t.xlsx")


def test_xlsx_template_offers_drop_downs_for_country_currency_method_and_network(tmp_path: Path) -> None:
    write_template(tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "t.xlsx")["Payouts"]
    letters = {
        name: openpyxl.utils.get_column_letter(CANONICAL.index(name) + 1)
        for name in ("country", "currency", "method", "network")
    }
    found = {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}
    for name, letter in letters.items():
        dv = found[f"{letter}2:{letter}1001"]
        assert dv.type == "list" and not dv.showDropDown  # (openpyxl's showDropDown=True hides the arrow)
        options = dv.formula1.strip('"').split(",")
        assert {"country": "KE", "currency": "KES", "method": "mobile_money", "network": "MPESA"}[name] in options
    assert found[f"{letters['method']}2:{letters['method']}1001"].formula1 == '"mobile_money,till,paybill,bank"'
    method = found[f"{letters['method']}2:{letters['method']}1001"]
    # a list check without an errorStyle refuses other values: "stop" is the file format's default
    assert (method.errorStyle or "stop") == "stop" and method.showErrorMessage
    assert method.showInputMessage and method.prompt == "How to pay"
    assert found[f"{letters['country']}2:{letters['country']}1001"].errorStyle == "warning", "names are accepted"


def test_examples_and_instructions_sit_on_their_own_sheets_and_the_examples_validate(tmp_path: Path) -> None:
    write_template(tmp_path / "t.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "t.xlsx")
    sheet = read_sheet(tmp_path / "t.xlsx", sheet="Examples")
    assert {r.cells["method"] for r in sheet.rows} == {"mobile_money", "till", "paybill", "bank"}
    assert [c.value for c in wb["Instructions"][1]] == ["column", "what to put in it"]
    rows = [(r.row, {c: r.cells.get(c, "") for c in CANONICAL}) for r in sheet.rows]
    report = validate_rows(rows, sandbox_catalog())
    assert [str(p) for p in report.errors()] == []
    assert all(is_example_row(cells) for _, cells in rows)


def test_csv_template_is_the_header_alone(tmp_path: Path) -> None:
    write_template(tmp_path / "t.csv")
    assert list(csv.reader((tmp_path / "t.csv").read_text(encoding="utf-8-sig").splitlines())) == [list(CANONICAL)]


def test_example_rows_are_recognised_even_as_a_spreadsheet_mangles_them() -> None:
    first = EXAMPLES[0]
    assert is_example_row(first)
    mangled = {
        **first,
        "name": f"  {first['name'].upper()} ",
        "phone": first["phone"].lstrip("+"),
        "amount": "1,500.00",
    }
    assert is_example_row(mangled)
    assert is_example_row({**first, "phone": "0" + first["phone"][-9:]})
    assert not is_example_row({**first, "amount": "1501"})
    assert not is_example_row({**first, "phone": "+254711000102"})


def test_real_rows_are_not_taken_for_examples() -> None:
    for path in (ROOT / "samples" / "payouts.csv", ROOT / "samples" / "messy.csv"):
        sheet = read_sheet(path)
        canonical = [{c: r.cells.get(h, "") for c, h in sheet.mapping.items()} for r in sheet.rows]
        assert not any(is_example_row(cells) for cells in canonical), path
    assert not is_example_row({"name": "Wanjiru Kamau", "phone": "+254712345678", "amount": "1500"})


def test_an_existing_file_is_not_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    path.write_bytes(b"my own work")
    with pytest.raises(OutputExists) as info:
        write_template(path)
    assert str(info.value) == f"{path} already exists; nothing was written (use --force to replace it)"
    assert path.read_bytes() == b"my own work"
    result = CliRunner().invoke(main, ["template", str(path)])
    assert result.exit_code == 2
    assert f"error: {path} already exists; nothing was written (use --force to replace it)" in " ".join(
        result.stderr.split()
    )
    assert path.read_bytes() == b"my own work"
    assert CliRunner().invoke(main, ["template", str(path), "--force"]).exit_code == 0
    assert openpyxl.load_workbook(path).sheetnames == ["Payouts", "Examples", "Instructions"]

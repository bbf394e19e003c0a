"""Every validation rule, each shown with a row that breaks it, on files the tests write."""

from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from batch_payouts.catalog import Catalog
from batch_payouts.engine.plan import check_sheet
from batch_payouts.errors import InputFileError
from batch_payouts.sheets.guard import Limits
from batch_payouts.sheets.read import read_sheet
from batch_payouts.validate import AmountError, Report, Rules, parse_amount
from tests.conftest import ROOT
from tests.support import sandbox_catalog

HEADER = [
    "name",
    "phone",
    "country",
    "network",
    "amount",
    "currency",
    "method",
    "bank_code",
    "bank_name",
    "account_number",
    "till_number",
    "paybill_number",
    "account_reference",
    "reference",
]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return sandbox_catalog()


def row(**cells: str) -> list[str]:
    base = {"name": "Wanjiru Kamau", "phone": "+254712345678", "country": "KE", "amount": "1500", "currency": "KES"}
    base.update(cells)
    return [base.get(h, "") for h in HEADER]


def write_csv(
    path: Path,
    rows: list[list[str]],
    *,
    delimiter: str = ",",
    bom: bool = False,
    title: str | None = None,
    encoding: str = "utf-8",
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    if title:
        writer.writerow([title])
    writer.writerow(HEADER)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def write_xlsx(path: Path, rows: list[list[Any]], *, title: str | None = None) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    if title:
        ws.append([title])
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text such as a name "=0", as typed: openpyxl would store a formula
    wb.save(path)
    return path


def check(path: Path, catalog: Catalog, rules: Rules | None = None, **kw: Any) -> Report:
    return check_sheet(read_sheet(path, **kw), catalog, rules)


def messages(report: Report, severity: str = "error") -> list[str]:
    return [str(p) for p in report.problems if p.severity == severity]


# -- one rule, one breaking row -------------------------------------------------------------------

RULES = [
    (row(phone="0712"), "row 2, phone: this is not a valid Kenya phone number (saw '0712')"),
    (
        row(phone="2.54712E+11"),
        "row 2, phone: the spreadsheet turned this phone number into a rounded number "
        "(scientific notation); digits are lost, retype it as text (saw '2.54712E+11')",
    ),
    (
        row(phone="+256772123456"),
        "row 2, phone: this is a number of UG (+256), but the row's country is KE (saw '+256772123456')",
    ),
    (row(phone="+254202345678"), "row 2, phone: this is not a Kenya mobile number (saw '+254202345678')"),
    (
        row(phone="+25471234567８"),
        "row 2, phone: the phone number contains digits from another script; type it with 0-9 (saw '+25471234567８')",
    ),
    (row(phone=""), "row 2, phone: a mobile money payment needs a phone number"),
    (row(country="Narnia"), "row 2, country: this country is not supported for payouts (saw 'Narnia')"),
    (row(currency="UGX"), "row 2, currency: Kenya is paid in KES, not UGX (saw 'UGX')"),
    (row(amount="100.50"), "row 2, amount: KES amounts take whole units (saw '100.50')"),
    (row(amount="0"), "row 2, amount: the amount must be more than zero (saw '0')"),
    (row(amount="-5"), "row 2, amount: the amount is negative (saw '-5')"),
    (row(amount="abc"), "row 2, amount: the amount is not a number (saw 'abc')"),
    (row(amount="UGX 100"), "row 2, amount: the amount says UGX but the row's currency is KES (saw 'UGX 100')"),
    (
        row(amount="1500,5"),
        "row 2, amount: a comma here could be a decimal comma or a thousands separator; "
        "write the amount like 1500.50 (saw '1500,5')",
    ),
    (
        row(amount="1" + "0" * 15),
        "row 2, amount: the amount has more than 15 digits before the decimal point; no payout is that large "
        "(saw '1000000000000000')",
    ),
    (
        row(amount="1" + "0" * 400),
        "row 2, amount: the amount has more than 15 digits before the decimal point; no payout is that large "
        f"(saw '1{'0' * 400}')",
    ),
    (
        row(amount="1.5E+03"),
        "row 2, amount: the amount is in scientific notation; type the full number (saw '1.5E+03')",
    ),
    (
        row(country="GH", currency="GHS", phone="+233241234567", amount="10"),
        "row 2, network: Ghana payments need the network (MTN, VODAFONE, AIRTEL, TIGO)",
    ),
    (
        row(country="UG", currency="UGX", phone="+256772123456", network="MPESA"),
        "row 2, network: not a network Kotani pays in Uganda; use one of MTN, AIRTEL (saw 'MPESA')",
    ),
    (
        row(method="cheque"),
        "row 2, method: unknown payment method; use mobile_money, till, paybill or bank (saw 'cheque')",
    ),
    (
        row(country="UG", currency="UGX", phone="", method="till", till_number="174379"),
        "row 2, method: till and paybill payments exist only in Kenya, in KES (saw 'till')",
    ),
    (row(phone="", method="till", till_number="12"), "row 2, till_number: a till number has 5 to 8 digits (saw '12')"),
    (
        row(phone="", method="paybill", paybill_number="888880"),
        "row 2, account_reference: a paybill payment needs the account reference",
    ),
    (
        row(phone="", method="bank", bank_code="999", account_number="0123456789"),
        "row 2, bank_code: not a bank code Kotani supports for KES (saw '999')",
    ),
    (
        row(phone="", method="bank", bank_code="68", account_number="12ab"),
        "row 2, account_number: a Kenya account number has 6 to 16 digits (saw '12ab')",
    ),
    (
        row(
            phone="",
            country="ZA",
            currency="ZAR",
            method="bank",
            bank_code="250655",
            account_number="62000000001",
            amount="10",
        ),
        "row 2, bank_name: South African bank payments need the bank name (code 250655 is FNB)",
    ),
    (
        row(phone="", country="UG", currency="UGX", method="bank", bank_code="01", account_number="0123456789"),
        "row 2, method: bank payouts are available only in Kenya and South Africa (saw 'bank')",
    ),
    (row(name=""), "row 2, name: the recipient's name is empty"),
]


@pytest.mark.parametrize(
    ("bad", "message"), RULES, ids=[m.split(": ")[0][7:] + str(i) for i, (_, m) in enumerate(RULES)]
)
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_each_rule_names_row_column_and_value(
    tmp_path: Path, catalog: Catalog, bad: list[str], message: str, fmt: str
) -> None:
    path = write_csv(tmp_path / "f.csv", [bad]) if fmt == "csv" else write_xlsx(tmp_path / "f.xlsx", [bad])
    report = check(path, catalog)
    assert message in messages(report)
    assert not report.valid_rows


def test_batch_checks(tmp_path: Path, catalog: Catalog) -> None:
    rows = [row(reference="A"), row(reference="A"), row(reference="B", amount="700"), row(reference="C", amount="800")]
    report = check(write_csv(tmp_path / "f.csv", rows), catalog)
    assert messages(report) == ["row 3: exact duplicate of row 2"]
    assert messages(report, "warning") == [
        "row 4: the same payee is also paid in row 2",
        "row 5: the same payee is also paid in row 2",
    ]
    strict = check(write_csv(tmp_path / "f.csv", rows[2:]), catalog, Rules(strict=True))
    assert messages(strict) == ["row 3: the same payee is also paid in row 2"]
    dup_ref = check(
        write_csv(tmp_path / "g.csv", [row(reference="X"), row(reference="X", phone="+254722000111")]), catalog
    )
    assert messages(dup_ref) == ["row 3, reference: this reference is already used in row 2 (saw 'X')"]


def test_operator_limits(tmp_path: Path, catalog: Catalog) -> None:
    rows = [row(amount="600"), row(amount="500", phone="+254722000111")]
    report = check(write_csv(tmp_path / "f.csv", rows), catalog, Rules(max_row_amount=Decimal(550)))
    assert messages(report) == ["row 2, amount: more than the 550 per-row limit (--max-row-amount) (saw '600')"]
    report = check(write_csv(tmp_path / "f.csv", rows), catalog, Rules(max_total=Decimal(1000)))
    assert len(messages(report)) == 2 and "the KES total 1100 is more than --max-total 1000" in messages(report)[0]


# -- repairs are applied and reported as warnings -------------------------------------------------

REPAIRS = [
    ("712345678", "+254712345678", "restored the leading 0 the spreadsheet dropped"),
    ("7.12345678E+08", "+254712345678", "rebuilt from scientific notation (the cell was a number)"),
    ("+254 712-345-678", "+254712345678", "removed spaces, dashes or brackets"),
    ("+254\u00a0712345678", "+254712345678", "removed invisible or non-breaking spaces"),
    ("254712345678", "+254712345678", "added the + before the country code"),
]


@pytest.mark.parametrize(("raw", "e164", "warning"), REPAIRS)
def test_safe_phone_repairs_are_warnings(tmp_path: Path, catalog: Catalog, raw: str, e164: str, warning: str) -> None:
    report = check(write_csv(tmp_path / "f.csv", [row(phone=raw)]), catalog)
    assert report.rows[0].valid and report.rows[0].normalised_phone == e164
    assert any(warning in m for m in messages(report, "warning"))


def test_a_numeric_phone_cell_in_xlsx_keeps_its_digits(tmp_path: Path, catalog: Catalog) -> None:
    bad = row()
    bad[HEADER.index("phone")] = 712345678  # type: ignore[call-overload]
    report = check(write_xlsx(tmp_path / "f.xlsx", [bad]), catalog)
    assert report.rows[0].valid and report.rows[0].normalised_phone == "+254712345678"


def test_a_typed_network_that_disagrees_with_the_prefix_is_a_warning(tmp_path: Path, catalog: Catalog) -> None:
    report = check(write_csv(tmp_path / "f.csv", [row(network="AIRTEL")]), catalog)
    assert report.rows[0].valid
    assert "row 2, network: the number looks like a MPESA number (saw 'AIRTEL')" in messages(report, "warning")


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("1,500.00", "KES", Decimal(1500)),
        ("KES 1 500", "KES", Decimal(1500)),
        ("Ksh 2,000", "KES", Decimal(2000)),
        ("1500.5", "ZAR", Decimal("1500.50")),
        ("R 99.99", "ZAR", Decimal("99.99")),
        ("1.000.000", "UGX", Decimal(1000000)),
        ("  250 ", "GHS", Decimal("250.00")),
        ("999,999,999,999,999.99", "ZAR", Decimal("999999999999999.99")),  # the largest amount read
    ],
)
def test_amounts_are_exact_decimals(text: str, currency: str, expected: Decimal) -> None:
    assert parse_amount(text, currency) == expected


def test_amount_never_becomes_a_float() -> None:
    value = parse_amount("0.10", "USD") + parse_amount("0.20", "USD")
    assert value == Decimal("0.30") and isinstance(value, Decimal)
    with pytest.raises(AmountError):
        parse_amount("0.001", "USD")


# -- files as finance teams make them -------------------------------------------------------------


def test_bom_semicolons_title_line_and_blank_trailing_rows(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(
        tmp_path / "f.csv",
        [row(), row(phone="+254722000111", amount="700"), [""] * len(HEADER), [""] * 3],
        delimiter=";",
        bom=True,
        title="ACME payroll November",
    )
    sheet = read_sheet(path)
    assert [r.row for r in sheet.rows] == [3, 4]
    assert len(check(path, catalog).valid_rows) == 2


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252"])
def test_other_encodings(tmp_path: Path, catalog: Catalog, encoding: str) -> None:
    path = write_csv(tmp_path / "f.csv", [row(name="Zoë Ñandú")], encoding=encoding)
    report = check(path, catalog)
    assert report.valid_rows and report.valid_rows[0].payout.name == "Zoë Ñandú"  # type: ignore[union-attr]


def test_bytes_that_windows_1252_cannot_read_are_counted_in_a_note(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"name,phone,country,amount,currency\nZo\xeb \x81,+254712345678,KE,100,KES\n")
    sheet = read_sheet(path)
    assert sheet.notes == [
        "the file is not UTF-8; it was read as Windows-1252 (cp1252): check accented names, "
        "or pass --encoding; 1 bytes could not be read and show as \ufffd"
    ]
    assert sheet.rows[0].cells["name"] == "Zoë \ufffd"
    assert read_sheet(path, encoding="latin-1").notes == []


def test_tab_delimiter_and_forced_options(tmp_path: Path, catalog: Catalog) -> None:
    path = write_csv(tmp_path / "f.txt", [row()], delimiter="\t")
    assert check(path, catalog).valid_rows
    assert check(path, catalog, delimiter="\t", encoding="utf-8").valid_rows


def test_headers_by_alias_and_explicit_map(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "f.csv"
    path.write_text("Beneficiary,Mobile No,Country Code,Value,CCY,Cost centre\nA B,0712345678,KE,100,KES,X1\n")
    sheet = read_sheet(path)
    assert sheet.mapping["phone"] == "Mobile No" and sheet.mapping["amount"] == "Value"
    path.write_text("Payee,Contact,Country,Pay,Currency\nA B,0712345678,KE,100,KES\n")
    sheet = read_sheet(path, mapping={"phone": "Contact", "amount": "Pay"})
    assert check_sheet(sheet, catalog).valid_rows


def test_formulas_are_read_as_cached_values_and_reported(tmp_path: Path, catalog: Catalog) -> None:
    path = write_xlsx(tmp_path / "f.xlsx", [row()])
    wb = openpyxl.load_workbook(path)
    wb.active["E2"] = "=1000+500"
    wb.save(path)
    _set_cached_value(path, "E2", "1500")
    report = check(path, catalog)
    assert report.rows[0].valid and report.rows[0].payout.amount == 1500  # type: ignore[union-attr]
    assert "row 2, amount: this cell is a formula; its saved value was used (saw '=1000+500')" in messages(
        report, "warning"
    )


def _set_cached_value(path: Path, cell: str, value: str) -> None:
    """openpyxl writes no cached value for a formula; add one as Excel would."""
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    sheet = sheet.replace("<f>1000+500</f><v></v>", f"<f>1000+500</f><v>{value}</v>").replace(
        "<f>1000+500</f><v/>", f"<f>1000+500</f><v>{value}</v>"
    )
    if f"<v>{value}</v>" not in sheet:
        sheet = sheet.replace("<f>1000+500</f>", f"<f>1000+500</f><v>{value}</v>")
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)


# -- protection -----------------------------------------------------------------------------------


def test_limits_on_size_and_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", [row(phone=f"+2547123456{i:02d}") for i in range(20)])
    with pytest.raises(InputFileError, match="the file has more than 10 rows, the limit"):
        read_sheet(path, limits=Limits(max_rows=10))
    with pytest.raises(InputFileError, match=r"more than the 0 MiB limit"):
        read_sheet(path, limits=Limits(max_file_bytes=100))


def test_an_xlsx_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "f.xlsx", [row()])
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/media/padding.xml", b"0" * (20 * 1024 * 1024))
    with pytest.raises(
        InputFileError, match=r"part xl/media/padding.xml is compressed more than 100:1; refused as a zip bomb"
    ):
        read_sheet(path)


def test_external_links_and_disguised_files_are_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "f.xlsx", [row()])
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("xl/externalLinks/externalLink1.xml", b"<externalLink/>")
    with pytest.raises(InputFileError, match="links to other workbooks"):
        read_sheet(path)
    html = tmp_path / "report.xlsx"
    html.write_bytes(b"<html><table><tr><td>1</td></tr></table></html>")
    with pytest.raises(InputFileError, match="web page saved with a spreadsheet name"):
        read_sheet(html)
    ole = tmp_path / "old.xlsx"
    ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(InputFileError, match=r"encrypted workbook or an old \.xls file"):
        read_sheet(ole)


def test_the_messy_sample_gives_its_expected_report(catalog: Catalog) -> None:
    report = check(ROOT / "samples" / "messy.csv", catalog)
    expected = (ROOT / "samples" / "messy.expected.txt").read_text(encoding="utf-8").splitlines()
    got = [f"{p.severity}: {p}" for p in report.problems]
    assert got == expected
    assert sorted(r.row for r in report.valid_rows) == [3, 4, 5, 6, 22, 26]


# -- property: what we write we read back the same ----------------------------------------------

payouts = st.fixed_dictionaries(
    {
        "name": st.text(
            st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Zs")), min_size=1, max_size=20
        ),
        "phone": st.integers(10_000_000, 99_999_999).map(lambda n: f"+2547{n}"),
        "amount": st.integers(1, 10**9).map(str),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payouts)
def test_any_valid_row_round_trips_through_csv_and_xlsx(tmp_path: Path, catalog: Catalog, p: dict[str, str]) -> None:
    cells = row(**p)
    first = check(write_csv(tmp_path / "p.csv", [cells]), catalog)
    assume(first.valid_rows)  # not every generated number is a valid Kenyan mobile number
    second = check(write_xlsx(tmp_path / "p.xlsx", [cells]), catalog)
    assert first.valid_rows[0].payout == second.valid_rows[0].payout


# -- country names and codes, from the local ISO 3166 table ---------------------------------------


@pytest.mark.parametrize(
    ("written", "code", "currency"),
    [
        ("Kenya", "KE", "KES"),
        ("KEN", "KE", "KES"),
        ("kenya", "KE", "KES"),
        (" KENYA ", "KE", "KES"),
        ("Uganda", "UG", "UGX"),
        ("UGA", "UG", "UGX"),
        ("Cote d’Ivoire", "CI", "XOF"),
        ("Tanzania", "TZ", "TZS"),
    ],
)
def test_country_names_and_iso3_codes_are_read_with_a_warning(
    tmp_path: Path, catalog: Catalog, written: str, code: str, currency: str
) -> None:
    phone = {"KE": "+254712345678", "UG": "+256772123456", "CI": "+2250701234567", "TZ": "+255754123456"}[code]
    report = check(
        write_csv(tmp_path / "f.csv", [row(country=written, currency=currency, phone=phone, amount="100")]), catalog
    )
    assert report.rows[0].valid, messages(report)
    assert report.rows[0].payout.country == code  # type: ignore[union-attr]
    assert f"row 2, country: country {written.strip()!r} read as {code}" in messages(report, "warning")


def test_a_two_letter_code_needs_no_warning_and_an_unknown_name_is_still_refused(
    tmp_path: Path, catalog: Catalog
) -> None:
    report = check(
        write_csv(
            tmp_path / "f.csv",
            [
                row(country="KE"),
                row(country="Narnia", phone="+254722000111"),
                row(country="France", phone="+254733000111"),
            ],
        ),
        catalog,
    )
    assert report.rows[0].valid and not [m for m in messages(report, "warning") if "country" in m]
    assert messages(report) == [
        "row 3, country: this country is not supported for payouts (saw 'Narnia')",
        "row 4, country: this country is not supported for payouts (saw 'France')",
    ]


def test_the_catalog_reads_names_without_the_providers_optional_fields(catalog: Catalog) -> None:
    for written in ("KEN", "Kenya", "kenya", "KE", "ke"):
        found = catalog.country(written)
        assert found is not None and found.code == "KE", written
    assert catalog.country("DR Congo") is not None  # the provider's own name for CD
    assert catalog.country("Narnia") is None


# -- the quick lane for plain rows gives the answer the full checks give ------------------------------

CELL_CHOICES = {
    "name": ["Wanjiru Kamau", "", " Otieno ", "Zoë"],
    "phone": [
        "+254712345678",
        "0712345678",
        "712345678",
        "+254 712 345 678",
        "+256772123456",
        "+254700000001",
        "",
        "0712",
        "+254202345678",
    ],
    "country": ["KE", "ke", "Kenya", "UG", "", "Narnia"],
    "network": ["", "MPESA", "AIRTEL", "mpesa", "MTN"],
    "amount": ["1500", "1,500", "1500.50", "0", "-5", "KES 1 500", "100.5", "1.000.000", "abc", ""],
    "currency": ["KES", "kes", "", "UGX"],
    "method": ["", "mobile_money", "till", "bank", "cheque"],
    "reference": ["", "R-1"],
}


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries({k: st.sampled_from(v) for k, v in CELL_CHOICES.items()}),
    st.sampled_from([Rules(), Rules(max_row_amount=Decimal(1000)), Rules(strict=True)]),
)
def test_the_plain_row_lane_agrees_with_the_full_checks(catalog: Catalog, cells: dict[str, str], rules: Rules) -> None:
    from batch_payouts.validate import _Memo, _plain_row, _Row

    quick = _plain_row(2, dict(cells), _Memo(catalog), rules)
    full = _Row(2, dict(cells), _Memo(catalog), rules).run()
    if quick is not None:
        assert (quick.cells, quick.payout, quick.problems, quick.normalised_phone) == (
            full.cells,
            full.payout,
            full.problems,
            full.normalised_phone,
        )


ANY_ROW = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in CELL_CHOICES.items()})
QUICK_LANE_ROW = st.fixed_dictionaries(  # rows the quick lane takes, most of them
    {
        "name": st.sampled_from(["Wanjiru Kamau", "Otieno", "Achieng Odhiambo"]),
        "phone": st.sampled_from(["+254712345678", "+254722000111", "+254733444555", "+254700000001"]),
        "country": st.just("KE"),
        "network": st.sampled_from(["", "MPESA", "AIRTEL"]),
        "amount": st.sampled_from(["1500", "1,500", "250.50", "99"]),
        "currency": st.just("KES"),
        "method": st.sampled_from(["", "mobile_money"]),
        "reference": st.sampled_from(["", "R-1", "R-2"]),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(QUICK_LANE_ROW, ANY_ROW), max_size=8))
def test_a_list_of_rows_checked_together_gives_each_row_its_full_checks_answer(
    catalog: Catalog, rows: list[dict[str, str]]
) -> None:
    """validate_each builds the quick lane's payouts in one pydantic call: every row still gets
    what the full checks of that row alone would say, in file order."""
    from batch_payouts.validate import _Memo, _Row, validate_each

    numbered = [(n, dict(cells)) for n, cells in enumerate(rows, start=2)]
    together = validate_each(numbered, catalog, Rules())
    alone = [_Row(n, dict(cells), _Memo(catalog), Rules()).run() for n, cells in numbered]
    assume(sum(r.valid for r in alone) >= 2)
    assert [(r.row, r.cells, r.payout, r.problems, r.normalised_phone) for r in together] == [
        (r.row, r.cells, r.payout, r.problems, r.normalised_phone) for r in alone
    ]


def test_a_quick_lane_row_pydantic_refuses_goes_to_the_full_checks_alone() -> None:
    from batch_payouts.validate import _payouts

    good = {
        "row": 2,
        "name": "Wanjiru Kamau",
        "amount": Decimal(1500),
        "currency": "KES",
        "country": "KE",
        "phone": "+254712345678",
        "method": "mobile_money",
    }
    found = _payouts([good, {**good, "row": 3, "name": None}, {**good, "row": 4}])
    assert [p.row if p is not None else None for p in found] == [2, None, 4]


def test_a_plain_row_takes_the_quick_lane(catalog: Catalog) -> None:
    from batch_payouts.validate import _Memo, _plain_row

    plain = {
        "name": "Wanjiru Kamau",
        "phone": "+254712345678",
        "country": "KE",
        "network": "MPESA",
        "amount": "1,500",
        "currency": "KES",
        "method": "mobile_money",
        "reference": "R-1",
    }
    quick = _plain_row(2, plain, _Memo(catalog), Rules())
    assert quick is not None and quick.valid and quick.payout.amount == Decimal(1500)  # type: ignore[union-attr]


def test_validation_is_pure_it_cannot_reach_the_network() -> None:
    """Checking a sheet imports no HTTP client: validation works on data the run read before."""
    import subprocess
    import sys

    probe = (
        "import sys, batch_payouts.validate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpcore', 'anyio') "
        "or m.startswith('batch_payouts.kotani')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# -- the international-number lane gives the answer phonenumbers' parse gives -------------------------


def _phone_outcome(parse: Any, raw: str, country: Any) -> tuple[str, ...] | None:
    """What a phone parser says of ``raw``: its E.164, warnings and number, or its refusal; None
    when it does not answer."""
    from batch_payouts.validate import PhoneError

    try:
        phone = parse(raw, country)
    except PhoneError as exc:
        return ("error", str(exc))
    return None if phone is None else ("ok", phone.e164, *phone.warnings, str(phone.number))


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(["KE", "UG", "TZ", "GH", "ZM", "RW", "MW", "CM", "CI", "SN", "CD", "ZA"]),
    st.sampled_from(["", "0", "00", "1", "2", "25", "254", "255", "7", "70", "71", "44", "7000000"]),
    st.text("0123456789", min_size=0, max_size=16),
)
@example("CI", "", "0707123456")  # a number that keeps its leading 0 (phonenumbers' "Italian" zero)
@example("KE", "0", "712345678")  # the national prefix written after the country code
@example("KE", "", "900223456")  # premium rate: valid, not mobile
@example("KE", "", "700000001")  # a sandbox test number
def test_an_international_number_read_without_parse_reads_as_parse_reads_it(
    catalog: Catalog, region: str, prefix: str, digits: str
) -> None:
    """Every number the quick lane answers for is answered the same by phonenumbers' parse: the
    same E.164, the same warnings, the same refusal, word for word."""
    import phonenumbers

    from batch_payouts.validate import _parse_any, _parse_international

    country = catalog.country(region)
    assert country is not None
    own_code = str(phonenumbers.country_code_for_region(region))
    for raw in (f"+{prefix}{digits}", f"+{own_code}{prefix}{digits}"):
        quick = _phone_outcome(_parse_international, raw, country)
        if quick is not None:
            assert quick == _phone_outcome(lambda r, c: _parse_any(r, c, []), raw, country), raw


def test_the_international_lane_answers_for_the_usual_numbers(catalog: Catalog) -> None:
    from batch_payouts.validate import _parse_international

    kenya, south_africa = catalog.country("KE"), catalog.country("ZA")
    assert kenya is not None and south_africa is not None
    assert _parse_international("+254712345678", kenya) is not None
    assert _parse_international("+27821234567", south_africa) is not None
    assert _parse_international("0712345678", kenya) is None  # national format: parse reads it
    assert _parse_international("+2540712345678", kenya) is None  # a national prefix after the code
    assert _parse_international("+12025550123", kenya) is None  # another country's code

"""Workbooks as written say exactly what was given: any text reads back as the same text (control
characters, text that looks like an escape or like XML included) and never as a formula, number or
link; every amount reads back as the same amount, or as its text when a spreadsheet number cannot
hold all its digits; dates read back as the same dates. Read back both by openpyxl and by the
tool's own reader."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batch_payouts.sheets import xlsx_write
from batch_payouts.sheets.spec import DATE_FORMAT, ListCheck, SheetSpec
from batch_payouts.sheets.xlsx import cell_text
from batch_payouts.sheets.xlsx_read import read_grid
from batch_payouts.sheets.xlsx_write import write_workbook

MONEY = "#,##0.00"
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_cells(path: Path, values: list[Any], *, formats: list[str | None] | None = None, **spec: Any) -> Path:
    """One sheet: a header row, then each value alone in column A of its own row, "end" in column B
    (so that no row is empty and dropped by a reader)."""
    rows = [[v, "end"] for v in values]
    fmt = [[f, None] for f in (formats or [None] * len(values))]
    write_workbook(path, [SheetSpec("Sheet", ["value", "marker"], rows, formats=fmt, **spec)])
    return path


def openpyxl_column(path: Path) -> list[Any]:
    ws = openpyxl.load_workbook(path)["Sheet"]
    return [ws.cell(row=r, column=1) for r in range(2, ws.max_row + 1)]


def own_reader_column(path: Path) -> list[str]:
    grid, formulas, _, _ = read_grid(path, "Sheet", 10_000)
    assert formulas == {}
    return [row[0] if row else "" for row in grid[1:]]


# -- text ---------------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    ["_x", "_x0041_", "_x000D_", "_x005F_", "x0042_", "_", "0041", "\r", "\n", "\t", "\x00", "\x1f", "\x0b",
     "\ufffe", "\uffff", "<r>", "</r>", "<t>", "</t>", "&", "<", ">", '"', "=", "+", "@", "-", " ", "a", "é", "😀"]
)  # fmt: skip
TEXTS = st.one_of(
    st.lists(FRAGMENTS, min_size=1, max_size=8).map("".join),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1),
)


@_SETTINGS
@given(texts=st.lists(TEXTS, min_size=1, max_size=8))
@example(texts=["a_x0041_x0042_b", "_x0041\r", "<r>rich</r>", "<r>_x0041_\r</r>", "\ufffe_x0041_", "=1+1"])
def test_any_text_reads_back_exactly_and_as_text(tmp_path_factory: pytest.TempPathFactory, texts: list[str]) -> None:
    path = write_cells(tmp_path_factory.mktemp("t") / "t.xlsx", texts)
    cells = openpyxl_column(path)
    assert [cell_text(c.value) for c in cells] == texts
    assert {c.data_type for c in cells} == {"s"}, "never a formula, a number or a date"
    assert not [c for c in cells if c.hyperlink], "never a link"
    assert own_reader_column(path) == texts


def test_text_that_looks_like_rich_text_xml_stays_text_and_injects_nothing(tmp_path: Path) -> None:
    injection = '<r><t>a</t></r></is></c><c r="Z9"><f>HYPERLINK("http://x","y")</f></c><c r="Z8" t="inlineStr"><is><r><t>b</t></r>'
    texts = ["<r><t>bold?</t></r>", "<r>&</r>", injection, "<r><rPr><b/></rPr><t>x</t></r>"]
    path = write_cells(tmp_path / "t.xlsx", texts)
    ws = openpyxl.load_workbook(path)["Sheet"]
    assert [ws.cell(row=r, column=1).value for r in range(2, 6)] == texts
    assert ws["Z9"].value is None and ws["Z8"].value is None
    assert [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"] == []
    assert own_reader_column(path) == texts


def test_numbers_in_text_formulas_and_links_stay_text(tmp_path: Path) -> None:
    texts = ["0712000302", "1500", "1e5", "=SUM(1,2)", "http://example.com", "mailto:a@b.c", "TRUE", "2026-11-30"]
    cells = openpyxl_column(write_cells(tmp_path / "t.xlsx", texts))
    assert [(c.value, c.data_type, c.hyperlink) for c in cells] == [(t, "s", None) for t in texts]


def test_a_text_column_and_the_blank_rows_below_it_are_formatted_as_text(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    write_workbook(path, [SheetSpec("Sheet", ["phone", "n"], [["0712", 5], ["", 6]], {"phone"}, blank_text_rows=3)])
    ws = openpyxl.load_workbook(path)["Sheet"]
    assert [ws.cell(row=r, column=1).number_format for r in range(2, 7)] == ["@"] * 5
    assert [ws.cell(row=r, column=1).value for r in range(2, 7)] == ["0712", None, None, None, None]
    assert ws.cell(row=2, column=2).number_format == "General", "only the text column"


# -- numbers ----------------------------------------------------------------------------------------------


def decimals(max_digits: int, min_digits: int = 1) -> st.SearchStrategy[Decimal]:
    """Decimals of min_digits..max_digits significant digits, from 10^-12 to 10^18 in size, either sign."""
    return st.builds(
        lambda sign, digits, exponent: Decimal((sign, tuple(int(d) for d in digits), exponent)),
        st.integers(0, 1),
        st.text(alphabet="0123456789", min_size=min_digits, max_size=max_digits).filter(lambda d: d[0] != "0"),
        st.integers(-12, 18 - max_digits),
    )


def read_amounts(path: Path) -> list[Any]:
    return [c.value for c in openpyxl_column(path)]


@_SETTINGS
@given(amounts=st.lists(decimals(15), min_size=1, max_size=20))
@example(amounts=[Decimal("999999999999999"), Decimal("0.1"), Decimal("9.99999999999999"), Decimal("-0.00")])
@example(amounts=[Decimal("123456789012.345"), Decimal("1E+18"), Decimal("1500.00"), Decimal("0.000000000001")])
def test_amounts_of_up_to_15_digits_read_back_as_the_same_number(
    tmp_path_factory: pytest.TempPathFactory, amounts: list[Decimal]
) -> None:
    path = write_cells(tmp_path_factory.mktemp("n") / "n.xlsx", amounts, formats=[MONEY] * len(amounts))
    got = read_amounts(path)
    assert all(isinstance(v, int | float) for v in got), "numbers, not text"
    assert [Decimal(str(v)) for v in got] == amounts
    assert [Decimal(t) for t in own_reader_column(path)] == amounts


@_SETTINGS
@given(amounts=st.lists(decimals(25, min_digits=16), min_size=1, max_size=20))
@example(amounts=[Decimal("12345678901234567.89"), Decimal("0.1234567890123456789"), Decimal("1.000000000000000001")])
def test_longer_amounts_are_numbers_only_when_every_digit_survives_else_their_text(
    tmp_path_factory: pytest.TempPathFactory, amounts: list[Decimal]
) -> None:
    path = write_cells(tmp_path_factory.mktemp("n") / "n.xlsx", amounts, formats=[MONEY] * len(amounts))
    for amount, value in zip(amounts, read_amounts(path), strict=True):
        if isinstance(value, str):
            assert value == str(amount)
        else:
            assert Decimal(str(value)) == amount
    assert read_amounts(path)[0] is not None


def test_what_a_float_cannot_hold_is_written_as_text(tmp_path: Path) -> None:
    values = [Decimal("12345678901234567.89"), Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), 10**15, -(10**20)]
    values += [0.1 + 0.2, 7, True, Decimal("1E+400"), Decimal("-1" + "0" * 309)]  # (past a float's range)
    got = read_amounts(write_cells(tmp_path / "n.xlsx", values))
    assert got == [
        "12345678901234567.89",
        "NaN",
        "sNaN",
        "Infinity",
        "1000000000000000",
        "-100000000000000000000",
        "0.30000000000000004",
        7,
        "True",
        "1E+400",
        "-1" + "0" * 309,
    ]


@_SETTINGS
@given(moments=st.lists(st.datetimes(dt.datetime(1900, 3, 1), dt.datetime(9999, 12, 31)), min_size=1, max_size=10))
def test_dates_read_back_as_the_same_dates_shown_as_dates(
    tmp_path_factory: pytest.TempPathFactory, moments: list[dt.datetime]
) -> None:
    moments = [m.replace(microsecond=0) for m in moments]
    cells = openpyxl_column(write_cells(tmp_path_factory.mktemp("d") / "d.xlsx", moments))
    assert [c.value for c in cells] == moments
    assert {c.number_format for c in cells} == {DATE_FORMAT}


# -- the sheet around the cells ----------------------------------------------------------------------------


def test_bold_rows_wrapped_columns_row_heights_widths_and_the_active_sheet(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    rows = [["short", "x"], ["a reason long enough to wrap over three lines of ten", "y"], ["total", 3]]
    write_workbook(
        path,
        [
            SheetSpec("First", ["a"], [["1"]]),
            SheetSpec(
                "Second",
                ["reason", "other"],
                rows,
                bold_rows=frozenset({2}),
                wrap=frozenset({1}),
                widths={1: 20.0},
                active=True,
                checks=[ListCheck(2, ("x", "y"), 4, strict=False, prompt="Pick one")],
            ),
        ],
    )
    wb = openpyxl.load_workbook(path)
    assert wb.active.title == "Second"
    assert not wb["First"].sheet_view.tabSelected and wb["Second"].sheet_view.tabSelected
    ws = wb["Second"]
    assert ws.column_dimensions["A"].width == pytest.approx(20, abs=1), "20 characters shown"
    assert ws.column_dimensions["B"].width == pytest.approx(7, abs=1), "6 at least: from the content"
    assert ws.row_dimensions[3].height == 45, "3 lines of 15 points"
    assert ws.row_dimensions[2].height is None
    assert ws["A3"].alignment.wrap_text and ws["A3"].alignment.vertical == "top"
    assert ws["B3"].alignment.vertical == "top" and not ws["B3"].alignment.wrap_text
    assert ws["A4"].font.b and ws["B4"].font.b and not ws["A3"].font.b
    (check,) = ws.data_validations.dataValidation
    assert (str(check.sqref), check.errorStyle, check.prompt) == ("B2:B4", "warning", "Pick one")


def test_a_failed_write_raises_the_disk_error_and_leaves_no_scratch_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))

    def rows_then_failure() -> Any:
        yield ["a"]
        raise RuntimeError("the ledger went away")

    with pytest.raises(RuntimeError, match="the ledger went away"):
        write_workbook(tmp_path / "a.xlsx", [SheetSpec("Sheet", ["h"], rows_then_failure())])
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):  # the OSError itself, for the sentence a user reads
        write_workbook(tmp_path / "file" / "b.xlsx", [SheetSpec("Sheet", ["h"], [["a"]])])
    assert list(scratch.iterdir()) == []


def test_rows_stream_to_the_file_in_order(tmp_path: Path) -> None:
    path = tmp_path / "t.xlsx"
    count = 5_000
    write_workbook(path, [SheetSpec("Sheet", ["n", "text"], ([n, f"row {n}"] for n in range(count)))])
    grid, _, _, _ = read_grid(path, "Sheet", count + 1)
    assert grid[1:] == [[str(n), f"row {n}"] for n in range(count)]
    with zipfile.ZipFile(path) as archive:
        assert "xl/sharedStrings.xml" not in archive.namelist(), "text is written inline, row by row"


# -- rows written directly: the XML XlsxWriter itself writes ----------------------------------------------

USUAL_CELLS = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\ufffe\uffff_")),
    st.sampled_from(["", " lead", "trail ", "\u3000wide", "a & b < c > d", "line\nbreak", "\ttab", "x" * 16_383]),
    st.none(),
    decimals(15),
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.datetimes(dt.datetime(1900, 3, 1), dt.datetime(9999, 12, 31)),
)
CELLS = st.one_of(USUAL_CELLS, TEXTS, decimals(18), st.integers(), st.booleans(), st.floats(), st.just("x" * 16_384))
ROWS = st.lists(st.one_of(st.lists(USUAL_CELLS, max_size=5), st.lists(CELLS, max_size=5)), min_size=1, max_size=10)
LOOKS = st.sampled_from([None, MONEY, "0", "@", DATE_FORMAT])


@_SETTINGS
@given(
    rows=ROWS,
    looks=st.lists(LOOKS, min_size=5, max_size=5),
    bold=st.frozensets(st.integers(0, 9)),
    wrap=st.booleans(),
    blank=st.integers(0, 2),
)
@example(rows=[["plain", Decimal("12.50"), 7, dt.datetime(2026, 11, 30, 21, 0), None, ""], [" lead", "trail ", "<&>"]], looks=[None] * 5, bold=frozenset(), wrap=False, blank=2)  # fmt: skip
@example(rows=[["a", Decimal("1.5")]], looks=[None, MONEY, None, None, None], bold=frozenset({0}), wrap=False, blank=0)  # fmt: skip
def test_rows_written_directly_are_the_xml_xlsxwriter_writes_cell_by_cell(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[list[Any]],
    looks: list[str | None],
    bold: frozenset[int],
    wrap: bool,
    blank: int,
) -> None:
    """Any mix of usual rows (written directly), unusual ones and tall ones (written by XlsxWriter)
    gives a workbook equal, part for part, to the one XlsxWriter writes alone (two sheets: looks
    are numbered in the same order across sheets too)."""
    folder = tmp_path_factory.mktemp("direct")

    def workbook(name: str) -> dict[str, bytes]:
        spec = SheetSpec(
            "Sheet",
            ["a", "b", "c", "d", "e"],
            rows,
            text_columns={"e"},
            formats=[looks] * len(rows),
            bold_rows=bold,
            table_header=True,
            wrap=frozenset({2}) if wrap else frozenset(),
            widths={2: 8.0},
            blank_text_rows=blank,
        )
        write_workbook(
            folder / name, [spec, dataclasses.replace(spec, title="Second", rows=rows[::-1], bold_rows=frozenset())]
        )
        with zipfile.ZipFile(folder / name) as archive:
            return {n: archive.read(n) for n in archive.namelist() if n != "docProps/core.xml"}

    direct = xlsx_write._DirectRows.write
    used: list[bool] = []

    def counted(self: Any, *args: Any) -> bool:
        used.append(direct(self, *args))
        return used[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xlsx_write._DirectRows, "write", counted)
        mixed = workbook("mixed.xlsx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xlsx_write._DirectRows, "write", lambda self, *args: False)
        alone = workbook("alone.xlsx")
    assert mixed == alone
    if not wrap:  # (a tall row goes XlsxWriter's way)
        assert used.count(True) == 2 * len([r for r in rows if all(map(_usual, r))]), "each usual row went directly"


def _usual(value: Any) -> bool:
    """What the direct way writes (a long text or one XlsxWriter escapes goes the other way)."""
    if isinstance(value, str):
        escaped = any((ord(ch) < 32 and ch not in "\t\n") or ch in "\ufffe\uffff" for ch in value)
        return len(value) <= 16_383 and not value.startswith("<r>") and not escaped and "_x" not in value
    if type(value) is int:
        return abs(value) < 10**15
    if type(value) is Decimal:
        return xlsx_write._float_of(value) is not None
    return value is None or type(value) is dt.datetime


def test_a_row_past_a_sheets_last_row_is_left_to_xlsxwriter(tmp_path: Path) -> None:
    """Excel's sheets end at row 1,048,576: a row after it is not written directly (XlsxWriter
    refuses its cells, as it always did), never as a row the file format does not allow."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(tmp_path / "x.xlsx"), {"constant_memory": True})
    ws = book.add_worksheet()
    look = xlsx_write._RowLook([None], [None], None)
    assert xlsx_write._DirectRows(ws).write(1_048_575, ["last"], look)
    assert not xlsx_write._DirectRows(ws).write(1_048_576, ["past"], look)
    book.close()

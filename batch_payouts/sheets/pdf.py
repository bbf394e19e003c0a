"""The one-page PDF summary of a batch, for approval packs and audit files (the one place using fpdf2).

A4 landscape: the environment banner (LIVE, SANDBOX or unknown), which run of which file and who
is answerable, rows and amounts per currency and word with fees, debits and receipts, and the
rows that were not paid (as many as fit; the rest are counted and left to the workbook).
Text is set in DejaVu Sans when the system has it, else in Helvetica with any character outside
Latin-1 shown as "?".
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from batch_payouts.sheets.layout import cover_notes
from batch_payouts.sheets.report import Cover, CurrencyTotals, Line, money, when
from batch_payouts.sheets.write import atomic_write
from batch_payouts.vocabulary import ORDER, SHORT

FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    ("/Library/Fonts/DejaVuSans.ttf", "/Library/Fonts/DejaVuSans-Bold.ttf"),
)
BANNER = {"LIVE": (176, 32, 32), "SANDBOX": (32, 96, 160)}
GREY = (90, 90, 90)
LINE_H = 5.0
PAGE_BOTTOM = 200.0  # mm: A4 landscape is 210 high; keep a margin


class _Page:
    """An fpdf2 page with one font family and a text filter for fonts without Unicode."""

    def __init__(self) -> None:
        self.pdf = FPDF(orientation="L", unit="mm", format="A4")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_margins(10, 10, 10)
        self.pdf.add_page()
        self.pdf.set_title("Payout summary")
        self.pdf.set_creator("batch-payouts")
        self.family, self.unicode = "Helvetica", False
        for regular, bold in FONT_CANDIDATES:
            if Path(regular).exists() and Path(bold).exists():
                self.pdf.add_font("DejaVu", "", regular)
                self.pdf.add_font("DejaVu", "B", bold)
                self.family, self.unicode = "DejaVu", True
                break

    def text(self, value: str) -> str:
        if self.unicode:
            return value
        value = value.replace("—", "-").replace("–", "-").replace("…", "...").replace("’", "'")
        return value.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, *, bold: bool = False, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.set_text_color(*colour)

    def cell(
        self,
        width: float,
        value: str,
        *,
        align: str = "L",
        border: str = "",
        fill: bool = False,
        last: bool = False,
        height: float = LINE_H,
    ) -> None:
        room = width or self.pdf.w - self.pdf.r_margin - self.pdf.get_x()
        text = self.fit(self.text(value), room - 1.5)
        self.pdf.cell(
            width,
            height,
            text,
            border=border,
            align=align,
            fill=fill,
            new_x=XPos.LMARGIN if last else XPos.RIGHT,
            new_y=YPos.NEXT if last else YPos.TOP,
        )

    def fit(self, text: str, width: float) -> str:
        """``text`` cut with an ellipsis to fit ``width`` mm in the current font."""
        if self.pdf.get_string_width(text) <= width:
            return text
        ellipsis = "…" if self.unicode else "..."
        while text and self.pdf.get_string_width(text + ellipsis) > width:
            text = text[:-1]
        return text + ellipsis

    def row(
        self,
        widths: Sequence[float],
        values: Sequence[str],
        aligns: str,
        *,
        bold: bool = False,
        fill: bool = False,
        size: float = 8.5,
    ) -> None:
        self.font(size, bold=bold)
        for i, (width, value) in enumerate(zip(widths, values, strict=True)):
            self.cell(width, value, align=aligns[i], border="B", fill=fill, last=i == len(widths) - 1)


def _banner(page: _Page, cover: Cover) -> None:
    pdf = page.pdf
    environment = cover.identity.environment
    pdf.set_fill_color(*BANNER.get(environment, (200, 120, 0)))
    page.font(16, bold=True, colour=(255, 255, 255))
    label = environment if environment in BANNER else f"environment {environment}"
    page.cell(0, f"  {cover.title} — {label}", fill=True, last=True, height=10)
    page.font(9, colour=GREY)
    page.cell(0, f"host {cover.identity.host} · account {cover.identity.account}", last=True)
    pdf.ln(1)


def _facts(page: _Page, cover: Cover) -> None:
    who = cover.identity
    wallets = "; ".join(f"{c}: {w}" for c, w in sorted(who.wallets.items())) or "unknown"
    left = [
        ("Batch", cover.batch + (f" (retry of {cover.retry_of})" if cover.retry_of else "")),
        ("Label", cover.label or "(none)"),
        ("Source file", cover.source),
        ("SHA-256", cover.source_sha256),
        ("Wallets", wallets),
    ]
    right = [
        ("Run by", who.ran_by),
        ("Approved by", who.approved_by),
        ("Batch created", when(cover.created_at)),
        ("First payout sent", when(cover.first_sent_at)),
        ("Last answer", when(cover.last_answer_at)),
    ]
    for (lk, lv), (rk, rv) in zip(left, right, strict=True):
        page.font(8.5, bold=True)
        page.cell(28, lk)
        page.font(8.5)
        page.cell(132, lv)
        page.font(8.5, bold=True)
        page.cell(32, rk)
        page.font(8.5)
        page.cell(0, rv, last=True)
    page.pdf.ln(2)


def _totals(page: _Page, all_totals: list[CurrencyTotals]) -> None:
    page.font(11, bold=True)
    page.cell(0, "Totals per currency", last=True, height=7)
    words = [SHORT[w] for w in ORDER]
    headers = ["Currency", "", "in file", *words, "fees", "debited", "received"]
    widths = [19.0, 14.0, 25.0, *([21.0] * len(words)), 19.0, 25.0, 25.0]
    aligns = "LLR" + "R" * len(words) + "RRR"
    page.pdf.set_fill_color(221, 228, 238)
    page.row(widths, headers, aligns, bold=True, fill=True)
    for t in all_totals:
        counts = [str(t.in_file.rows), *(str(t.by_word[w].rows) for w in ORDER), "", "", ""]
        amounts = [
            money(t.in_file.amount, t.currency),
            *(money(t.by_word[w].amount, t.currency) for w in ORDER),
            money(t.fees, t.currency),
            money(t.debited, t.currency),
            money(t.received, t.currency),
        ]
        page.row(widths, [t.label, "rows", *counts], aligns, bold=False)
        page.row(widths, ["", "amount", *amounts], aligns)
    page.font(7.5, colour=GREY)
    page.pdf.ln(1)
    notes = cover_notes(all_totals)  # the same sentences as the workbook's cover
    for note in notes:
        page.pdf.multi_cell(0, 3.6, page.text(note), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    page.pdf.ln(2)


def _problems(page: _Page, unpaid: int, unpaid_lines: Iterable[Line]) -> None:
    """How many rows were not paid, and as many of ``unpaid_lines`` (in row order) as the page holds."""
    page.font(11, bold=True)
    page.cell(0, f"Rows not paid: {unpaid}" if unpaid else "Rows not paid: none", last=True, height=7)
    if not unpaid:
        return
    widths = [12.0, 44.0, 42.0, 30.0, 38.0, 111.0]
    aligns = "RLLRLL"
    page.pdf.set_fill_color(221, 228, 238)
    page.row(
        widths, ["Row", "Name", "Phone or account", "Amount", "Status", "Reason"], aligns, bold=True, fill=True, size=8
    )
    room = int((PAGE_BOTTOM - page.pdf.get_y() - LINE_H) // LINE_H)
    shown = list(itertools.islice(unpaid_lines, room if unpaid <= room else max(room - 1, 0)))
    for line in shown:
        amount = (
            f"{money(line.amount, line.currency)} {line.currency}".strip()
            if line.amount is not None
            else f"{line.amount_text} (unreadable)"
        )
        page.row(widths, [str(line.row), line.name, line.paid_to, amount, str(line.word), line.reason], aligns, size=8)
    if len(shown) < unpaid:
        page.font(8, bold=True)
        page.cell(
            0,
            f"… and {unpaid - len(shown)} more rows not paid: see the Problems sheet of the results workbook.",
            last=True,
        )


def _footer(page: _Page, cover: Cover) -> None:
    page.pdf.set_y(PAGE_BOTTOM + 1)
    page.font(7.5, colour=GREY)
    page.cell(
        0,
        f"Written {when(cover.written_at)} by batch-payouts {cover.tool_version}. Words used: docs/vocabulary.md.",
        last=True,
        height=4,
    )


def summary_pdf(cover: Cover, all_totals: list[CurrencyTotals], unpaid: int, unpaid_lines: Iterable[Line]) -> bytes:
    """The summary page as PDF bytes, from the totals counted beforehand, the number of rows not
    paid, and those rows' lines in row order (only the first that fit the page are read)."""
    page = _Page()
    _banner(page, cover)
    _facts(page, cover)
    _totals(page, all_totals)
    _problems(page, unpaid, unpaid_lines)
    _footer(page, cover)
    return bytes(page.pdf.output())


def write_summary(
    path: Path, cover: Cover, all_totals: list[CurrencyTotals], unpaid: int, unpaid_lines: Iterable[Line]
) -> None:
    """Write the summary page (:func:`summary_pdf`) to ``path`` atomically, mode 0600."""
    atomic_write(path, summary_pdf(cover, all_totals, unpaid, unpaid_lines))

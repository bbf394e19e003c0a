"""Render pictures of the results workbook's sheets and of the PDF summary into docs/results/*.png.

Pays samples/payouts.csv (plus two invalid rows) on the in-process sandbox, writes the results
workbook and the PDF summary, prints the workbook through LibreOffice headless (as it would go to
paper: landscape, one page wide) and turns every page into a PNG with pdftoppm.

Needs Debian's ``libreoffice-calc-nogui`` and ``poppler-utils``. Run from the repository root:
``python docs/render_results.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results"
SHEETS = ("results", "cover", "problems", "summary")  # the workbook's sheets, in print order
EXTRA_ROWS = (
    "Bad Amount,+254712000999,KE,MPESA,abc,KES,mobile_money,,,,,,,NOV-023,Typo in the amount,Ops\n"
    "Bad Phone,0712,KE,MPESA,250,KES,mobile_money,,,,,,,NOV-024,Number cut short,Ops\n"
)


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        sys.exit(f"{name} is missing: apt-get install -y libreoffice-calc-nogui poppler-utils")
    return found


def pay_the_sample(work: Path) -> tuple[Path, Path]:
    """Run the sample on the sandbox; return the results workbook and the PDF summary."""
    from batch_payouts.engine import results
    from batch_payouts.ledger import Ledger

    source = work / "payouts.csv"
    source.write_text((ROOT / "samples" / "payouts.csv").read_text() + EXTRA_ROWS)
    state = work / "ledger.sqlite3"
    os.chdir(work)  # the cover names the file as it was given: payouts.csv
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_payouts",
            "run",
            source.name,
            "--sandbox",
            "--yes",
            "--quiet",
            "--state",
            str(state),
            "--results",
            str(work / "payouts.results.xlsx"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if run.returncode not in (0, 3):
        sys.exit(f"the run failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    ledger = Ledger(state)
    try:
        (batch,) = ledger.batches()
        pdf = results.write_summary_pdf(ledger, batch.id, work / "payouts.summary.pdf")
    finally:
        ledger.close()
    return work / "payouts.results.xlsx", pdf


def pages_to_png(pdf: Path, prefix: Path, dpi: int) -> list[Path]:
    subprocess.run([tool("pdftoppm"), "-png", "-r", str(dpi), str(pdf), str(prefix)], check=True, timeout=300)
    return sorted(prefix.parent.glob(prefix.name + "-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        workbook, summary = pay_the_sample(work)
        subprocess.run(
            [tool("soffice"), "--headless", "--convert-to", "pdf", "--outdir", str(work / "printed"), str(workbook)],
            check=True,
            capture_output=True,
            timeout=300,
            env={"HOME": str(work), "PATH": "/usr/bin:/bin"},
        )
        pages = pages_to_png(work / "printed" / "payouts.results.pdf", work / "page", dpi=110)
        names = SHEETS if len(pages) == len(SHEETS) else tuple(f"workbook-page-{i}" for i in range(1, len(pages) + 1))
        for page, name in zip(pages, names, strict=True):
            shutil.copyfile(page, OUT / f"workbook-{name}.png" if name in SHEETS else OUT / f"{name}.png")
        if len(pages) == len(SHEETS):  # the first rows of the Results table, large enough to read
            crop = ["-r", "300", "-x", "0", "-y", "250", "-W", "3508", "-H", "700", "-f", "1", "-l", "1", "-singlefile"]
            subprocess.run(
                [
                    tool("pdftoppm"),
                    "-png",
                    *crop,
                    str(work / "printed" / "payouts.results.pdf"),
                    str(OUT / "workbook-results-detail"),
                ],
                check=True,
                timeout=300,
            )
        (summary_png,) = pages_to_png(summary, work / "summary", dpi=110)
        shutil.copyfile(summary_png, OUT / "summary-pdf.png")
    os.chdir(ROOT)
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()

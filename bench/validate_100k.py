"""Validate a 100,000-row CSV and compare with a naive sequential baseline, side by side.

The baseline reads with the csv module and validates each row alone, re-parsing the header
mapping and catalog look-ups per row, the way a first script would. Run:
    python bench/validate_100k.py [ROWS]
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for tests.support

from batch_payouts.catalog import Catalog
from batch_payouts.engine.plan import check_sheet
from batch_payouts.sheets.read import read_sheet
from batch_payouts.validate import validate_rows
from tests.support import sandbox_catalog


def make_file(path: Path, rows: int) -> None:
    rng = random.Random(1)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "phone", "country", "amount", "currency", "method", "department"])
        for i in range(rows):
            w.writerow([f"Person {i}", f"+2547{rng.randint(10_000_000, 29_999_999)}", "KE",
                        f"{rng.randint(100, 50_000):,}", "KES", "mobile_money", "Ops"])


def naive(path: Path, cat: Catalog, limit: int) -> float:
    """Row-at-a-time: csv module, one validate call per row."""
    started = time.perf_counter()
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        for n, cells in enumerate(reader, start=2):
            if n - 2 >= limit:
                break
            validate_rows([(n, dict(zip(header, cells, strict=False)))], cat)
    return time.perf_counter() - started


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    cat = sandbox_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        make_file(path, rows)
        t0 = time.perf_counter()
        sheet = read_sheet(path)
        t1 = time.perf_counter()
        report = check_sheet(sheet, cat)
        t2 = time.perf_counter()
        sample = min(rows, 10_000)
        base = naive(path, cat, sample) * rows / sample
    ours = t2 - t0
    print(f"rows: {rows}  valid: {len(report.valid_rows)}")
    print(f"read:     {t1 - t0:6.2f} s")
    print(f"validate: {t2 - t1:6.2f} s")
    print(f"total:    {ours:6.2f} s  ({rows / ours:,.0f} rows/s)")
    print(f"naive baseline (csv module, one row at a time, extrapolated from {sample}): {base:6.2f} s")
    print(f"ratio baseline/ours: {base / ours:4.2f}x")


if __name__ == "__main__":
    main()

"""`validate` on a 100,000-row CSV and XLSX as a user runs it, next to a floor measured in the same run.

The floor is what any validator of these files must at least do: read the CSV with the csv module,
parse and check every phone number with phonenumbers (parse + is_valid_number), and read every
amount as a Decimal. Each `validate` is a separate process (`--sandbox`, `--report` written), timed
from start to exit, with its peak RSS. This machine's speed drifts by a quarter from one minute to
the next, so the floor is timed right before and right after every command, and each command's time
is divided by the mean of those two floors; of `--runs` rounds (3), the best and the median ratio are
printed. The same ratio in CPU seconds (the command's user + system time against the floor's) is
printed beside it: on a shared machine it moves far less than the wall clock, though polars' reader
threads count in it. `--compare TREE` also times another checkout (e.g. main).
Run:
    python bench/validate_100k.py [--rows N] [--runs 3] [--compare /work/main]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import phonenumbers

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["name", "phone", "country", "amount", "currency", "method", "department"]


def rows(count: int) -> list[list[object]]:
    rng = random.Random(1)
    return [
        [
            f"Person {i}",
            f"+2547{rng.randint(10_000_000, 29_999_999)}",
            "KE",
            rng.randint(100, 50_000),
            "KES",
            "mobile_money",
            "Ops",
        ]
        for i in range(count)
    ]


def write_csv(path: Path, data: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows([[*r[:3], f"{r[3]:,}", *r[4:]] for r in data])


def _column(i: int) -> str:
    out, i = "", i + 1
    while i:
        i, rem = divmod(i - 1, 26)
        out = chr(65 + rem) + out
    return out


def write_xlsx(path: Path, data: list[list[object]]) -> None:
    """A workbook as Excel writes one: shared strings, a <dimension>, amounts as numbers."""
    strings: dict[str, int] = {}
    body = []
    for r, row in enumerate([HEADER, *data], start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{_column(c)}{r}"
            if isinstance(value, int):
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            else:
                cells.append(f'<c r="{ref}" t="s"><v>{strings.setdefault(str(value), len(strings))}</v></c>')
        body.append(f'<row r="{r}">{"".join(cells)}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" '
        f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
        '<sheet name="Payouts" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{pkg}">'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/sharedStrings.xml": f'<sst xmlns="{main}">'
        + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        + "</sst>",
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><dimension ref="A1:G{len(data) + 1}"/><sheetData>'
        + "".join(body)
        + "</sheetData></worksheet>",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + text)


def write_wide_csv(path: Path, data: list[list[object]]) -> None:
    """The same rows with four more columns, as payroll exports have: a reference of each row's own,
    a narration, a cost centre and an employee number (11 columns: more text held per row)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*HEADER, "reference", "narration", "cost centre", "employee id"])
        w.writerows(
            [*r[:3], f"{r[3]:,}", *r[4:], f"NOV26-{i:06d}", "Stipend November 2026", "Nairobi West", f"EMP{i:07d}"]
            for i, r in enumerate(data)
        )


# the files validated, and the goal for each (times the floor, which reads the 7-column CSV)
FILES = (("big.csv", 1.5), ("big.xlsx", 4.0), ("wide.csv", 1.5))


def floor(path: Path) -> tuple[float, float]:
    """csv.reader + phonenumbers (parse, is_valid_number) + Decimal, every row: (wall, CPU) seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for cells in reader:
            number = phonenumbers.parse(cells[1], "KE")
            phonenumbers.is_valid_number(number)
            Decimal(cells[3].replace(",", ""))
    return time.perf_counter() - started, time.process_time() - cpu


CHILD = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
    "use = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(time.perf_counter() - t, use.ru_maxrss / 1024, done.returncode, use.ru_utime + use.ru_stime, "
    "repr(done.stderr[-300:]))"
)


def set_bytecode(tree: Path, *, compiled: bool) -> None:
    """Write the package's bytecode (``compiled``: as Python does on a user's first run, or as pip
    does when it installs a wheel), or remove it (cold: every start compiles the package, as on
    this machine, which sets PYTHONDONTWRITEBYTECODE=1)."""
    package = tree / "batch_payouts"
    if compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL)
    else:
        for cache in package.rglob("__pycache__"):
            shutil.rmtree(cache)


def timed(args: list[str], tree: Path) -> tuple[float, float, int, float]:
    """Seconds, peak RSS (MiB), exit code and CPU seconds of one process, measured by a fresh parent
    of its own."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, sys.executable, "-m", "batch_payouts", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=True,
    ).stdout.split(maxsplit=4)
    return float(out[0]), float(out[1]), int(out[2]), float(out[3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--compare", type=Path, help="another checkout to time the same way (e.g. main)")
    parser.add_argument("--runs", type=int, default=3, help="rounds of floor + every command; best and median shown")
    opts = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("compare", opts.compare.resolve())] if opts.compare else [])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = rows(opts.rows)
        write_csv(folder / "big.csv", data)
        write_xlsx(folder / "big.xlsx", data)
        write_wide_csv(folder / "wide.csv", data)
        print(f"rows: {opts.rows}; {opts.runs} rounds, each command timed between two floors")
        print("floor: csv.reader + phonenumbers parse/is_valid_number + Decimal, every row, in this process")
        ratios: dict[tuple[str, str], list[tuple[float, float, float, int]]] = {}
        before = floor(folder / "big.csv")
        for _ in range(opts.runs):
            for label, tree in trees:
                start_s, _, _, _ = timed(["--version"], tree)
                ratios.setdefault((label, "start-up"), []).append((start_s / before[0], start_s, before[0], 0))
                for kind, _goal in FILES:
                    command = [
                        "validate",
                        str(folder / f"{kind}"),
                        "--sandbox",
                        "--state",
                        str(folder / f"{label}.db"),
                        "--report",
                        str(folder / f"report-{kind}.csv"),  # a CSV report for every file
                    ]
                    seconds, mib, code, cpu = timed(command, tree)
                    after = floor(folder / "big.csv")
                    floor_s = (before[0] + after[0]) / 2  # the machine's speed on either side of the command
                    floor_cpu = (before[1] + after[1]) / 2
                    before = after
                    ratios.setdefault((label, kind), []).append((seconds / floor_s, seconds, floor_s, code))
                    ratios.setdefault((label, kind + " cpu"), []).append((cpu / floor_cpu, cpu, floor_cpu, code))
                    ratios.setdefault((label, kind + " MiB"), []).append((mib, mib, floor_s, code))
        for label, _tree in trees:
            start = min(ratios[(label, "start-up")])
            print(f"[{label}] start-up (--version): {start[1]:5.2f} s (round with floor {start[2]:.2f} s)")
            for kind, goal in FILES:
                found = sorted(ratios[(label, kind)])
                best, median = found[0], statistics.median(r[0] for r in found)
                cpu = statistics.median(r[0] for r in ratios[(label, kind + " cpu")])
                mib = max(r[0] for r in ratios[(label, kind + " MiB")])
                verdict = "ok" if best[0] <= goal and mib < 500 else "over"
                print(
                    f"[{label}] validate {kind:9} (report written): best {best[0]:4.2f}x floor "
                    f"({best[1]:.2f} s against {best[2]:.2f} s), median {median:4.2f}x (goal <= {goal}x), "
                    f"CPU median {cpu:4.2f}x; "
                    f"peak {mib:4.0f} MiB (goal < 500); exit {best[3]}: {verdict}"
                )


if __name__ == "__main__":
    main()

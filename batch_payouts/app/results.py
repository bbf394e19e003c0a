"""Results files: where they go (never over the input, never over another batch's), and writing
one for any batch, also mid-run."""

from __future__ import annotations

import json
from pathlib import Path

from batch_payouts import __version__, errors
from batch_payouts.app.status import OnEnvironment, Where, open_ledger, read_batch
from batch_payouts.engine import results as results_mod
from batch_payouts.ledger import Ledger

WRITABLE = (".csv", ".xlsx")


def default_path(source: str, batch_id: str) -> Path:
    """Next to the input, named after the batch, so that another batch never overwrites it."""
    default = results_mod.default_results_path(source)
    return default.with_name(f"{Path(source).stem}.{batch_id}.results{default.suffix}")


def check_path(path: Path | None, *inputs: Path) -> None:
    """ResultsPathRefused when ``path`` is one of the ``inputs`` or its folder does not exist."""
    if path is None:
        return
    for given in inputs:
        if given.exists() and path.exists() and path.resolve() == given.resolve():
            raise errors.ResultsPathRefused(path, "is the input")
    if not path.parent.exists():
        raise errors.ResultsPathRefused(path, "no folder")


def write(ledger: Ledger, batch_id: str, path: Path) -> Path:
    """The batch's results file (CSV or XLSX by suffix), written atomically."""
    written = results_mod.write_results(ledger, batch_id, path)
    ledger.note(_results_note(batch_id, path), _stamp(ledger, batch_id, path))
    return written


def write_unless_current(ledger: Ledger, batch_id: str, path: Path) -> bool:
    """Write the batch's results file unless the file at ``path`` is the one this tool last wrote
    there for the batch and no row has changed since (a settled batch resumed): True if written."""
    if path.exists() and ledger.noted(_results_note(batch_id, path)) == _stamp(ledger, batch_id, path):
        return False
    write(ledger, batch_id, path)
    return True


def _results_note(batch_id: str, path: Path) -> str:
    return f"results {batch_id} {path.resolve()}"


def _stamp(ledger: Ledger, batch_id: str, path: Path) -> str:
    """What a results file depends on: the batch's last change (rows, environment, options), the
    tool's version, and the file itself (its size and time, as written)."""
    batch = ledger.batch(batch_id)
    stat = path.stat() if path.exists() else None
    return json.dumps(
        [
            batch.updated_at,
            batch.env_id,
            batch.options,
            __version__,
            stat.st_size if stat else None,
            stat.st_mtime_ns if stat else None,
        ]
    )


def write_for(
    where: Where, batch_id: str, output: Path, *, on_environment: OnEnvironment | None = None, final: bool = False
) -> Path:
    """The results file of a batch, from the ledger alone (also while the batch runs). ``final``:
    one line per row of the original file with its latest attempt's outcome across every retry.
    An output ending in .pdf is the one-page summary of the batch."""
    with open_ledger(where) as ledger:
        batch = read_batch(ledger, batch_id, where, on_environment)
        suffix = output.suffix.lower()
        if suffix not in (*WRITABLE, ".pdf") or (final and suffix == ".pdf"):
            raise errors.UnsupportedFormat(output, "results file")
        check_path(output, Path(batch.source))
        if suffix == ".pdf":
            return results_mod.write_summary_pdf(ledger, batch_id, output)
        if final:
            return results_mod.write_final_results(ledger, batch_id, output)
        return write(ledger, batch_id, output)

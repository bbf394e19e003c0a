"""What a workbook to write holds: its sheets (``SheetSpec``), a chart (``ChartSpec``) and
drop-downs (``ListCheck``). No spreadsheet library is loaded here; ``xlsx_write.py`` writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T", covariant=True)
U = TypeVar("U")


@dataclass(frozen=True)
class ChartSpec:
    """A bar chart of one column against the category labels beside it (1-based columns, data rows
    from 2 to ``last_row``), placed at ``anchor``."""

    title: str
    category_column: int
    value_column: int
    last_row: int
    anchor: str
    y_title: str = ""


@dataclass(frozen=True)
class ListCheck:
    """A drop-down on one column (1-based) of rows 2..``last_row``. ``strict`` refuses anything else;
    otherwise other values are allowed after a warning."""

    column: int
    options: tuple[str, ...]
    last_row: int
    strict: bool
    prompt: str = ""


@dataclass(frozen=True)
class LaterRows(Generic[T]):
    """The rows that follow a sheet's ``rows``: ``rows`` holds ``after`` of them, then ``rows()``
    here yields the ``count`` others (``make()`` passed through each of ``steps``). A long table
    is written by two processes at once: a helper process (a fresh one, see ``helper.py``) makes
    and writes these rows while this one writes the sheet's ``rows``. So ``make`` and ``steps``
    must pickle (module-level functions, or ``functools.partial`` of them) and ``make`` opens
    whatever it reads itself. When no helper can be had, or it fails, this process calls them."""

    after: int
    count: int
    make: Callable[[], Iterable[Any]]
    steps: tuple[Callable[[Iterable[Any]], Iterable[Any]], ...] = ()

    def then(self, step: Callable[[Iterable[T]], Iterable[U]]) -> LaterRows[U]:
        """The same rows passed through ``step`` too (a picklable function of the rows)."""
        return LaterRows(self.after, self.count, self.make, (*self.steps, step))

    def rows(self) -> Iterable[T]:
        rows = self.make()
        for step in self.steps:
            rows = step(rows)
        return rows


@dataclass
class SheetSpec:
    """One sheet to write: headers, rows of cells, which columns are forced to text, and how it
    looks: per-cell number formats, a bold frozen filtered header, print settings, a chart.

    ``rows`` may be any iterable (a generator streams a large table to the file, read once);
    each row's number formats come from ``formats`` (a sequence, row by row) or ``format_of``
    (a function of the row's cells). ``later``: more rows after ``rows`` (see :class:`LaterRows`);
    ``bold_rows`` and ``formats`` count them on from ``rows``."""

    title: str
    headers: list[str]
    rows: Iterable[Sequence[Any]]
    text_columns: set[str] = field(default_factory=set)
    chart: ChartSpec | None = None
    blank_text_rows: int = 0  # empty rows below the data pre-formatted as text (templates)
    formats: Sequence[Sequence[str | None]] | None = None  # number format per data cell
    table_header: bool = False  # bold, frozen, filtered header row
    printable: bool = False  # landscape, one page wide, header row repeated on every page
    bold_rows: frozenset[int] = frozenset()  # 0-based indexes into ``rows``
    widths: dict[int, float] | None = None  # 1-based column -> width; else from the content
    checks: Sequence[ListCheck] = ()
    active: bool = False  # the sheet a spreadsheet opens on
    wrap: frozenset[int] = frozenset()  # 1-based columns whose text wraps inside the cell
    format_of: Callable[[Sequence[Any]], Sequence[str | None]] | None = None  # number formats of a row
    later: LaterRows[Sequence[Any]] | None = None  # rows after ``rows``, which a helper process may write


DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
WIDTH_SAMPLE = 200  # rows (the header included) whose content sets a column's width

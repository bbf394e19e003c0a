"""Work on every row of a large file without the cycle collector walking the heap again and again.

Reading, checking and reporting on a 100,000-row file creates millions of small objects that are
kept until the end (rows, results, problems). Each of them counts towards Python's next cyclic
garbage collection, and each full collection walks every object alive: on such a file the collector
took about as long as the checks themselves. These objects form no reference cycles (they are freed
by reference counting as usual), so the collector is paused while the work runs and resumed after.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (nested blocks keep it paused). The
    collector is the process's: blocks overlapping in threads (the console) may resume it while
    another still runs, which costs that one speed, never memory for good."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def one_file_command() -> Iterator[None]:
    """For a command that ends once its one file is checked (``validate``): the collector stays
    paused to the end, then what the command built is frozen (``gc.freeze``) before it is resumed,
    so that neither the collection that resuming would start nor the interpreter's last one at
    exit walks 100,000 rows' objects for nothing (about 1 s of a 7-s check). Not for a long-lived
    process: what is frozen is never examined for cycles again."""
    with no_cycle_collection():
        try:
            yield
        finally:
            gc.freeze()  # before the collector resumes


def row_work(func: Callable[P, T]) -> Callable[P, T]:
    """Run ``func`` inside :func:`no_cycle_collection`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with no_cycle_collection():
            return func(*args, **kwargs)

    return wrapper

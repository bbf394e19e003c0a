"""Background runs owned by a server: one worker thread per batch, each on its own ledger
connection, holding the ledger's lease (so a batch never runs twice, and a command-line run of
the same batch is refused while the console runs it, and the other way round)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from batch_payouts import errors
from batch_payouts.app import payouts
from batch_payouts.app import results as app_results
from batch_payouts.app.session import Session

OpenSession = Callable[[str], contextlib.AbstractContextManager[Session]]  # actor -> a session of its own
Finished = Callable[[str, "RunState"], None]


@dataclass
class RunState:
    """One background run; times in epoch seconds. ``error``: the sentence that stopped it."""

    batch_id: str
    actor: str
    started_at: float
    progress: payouts.RunProgress | None = None
    outcome: payouts.RunOutcome | None = None
    error: str | None = None
    finished_at: float | None = None


class Runs:
    """Starts and watches the server's runs."""

    def __init__(
        self,
        open_session: OpenSession,
        options: payouts.RunOptions,
        *,
        on_finished: Finished | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._open = open_session
        self._options = options
        self._on_finished = on_finished
        self._clock = clock
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._states: dict[str, RunState] = {}

    def running(self, batch_id: str) -> bool:
        with self._lock:
            thread = self._threads.get(batch_id)
            return thread is not None and thread.is_alive()

    def state(self, batch_id: str) -> RunState | None:
        with self._lock:
            return self._states.get(batch_id)

    def start(self, batch_id: str, actor: str) -> None:
        """Run the batch in a worker thread; WrongStage when this server already runs it."""
        with self._lock:
            thread = self._threads.get(batch_id)
            if thread is not None and thread.is_alive():
                raise errors.WrongStage(batch_id, "running", "it is already being paid")
            self._states[batch_id] = RunState(batch_id, actor, self._clock())
            thread = threading.Thread(target=self._work, args=(batch_id, actor), name=f"run {batch_id}", daemon=True)
            self._threads[batch_id] = thread
        thread.start()

    def wait(self, batch_id: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the batch's run to end; whether it has."""
        with self._lock:
            thread = self._threads.get(batch_id)
        if thread is not None:
            thread.join(timeout)
        return not self.running(batch_id)

    def _work(self, batch_id: str, actor: str) -> None:
        state = self._states[batch_id]

        def heard(progress: payouts.RunProgress) -> None:
            state.progress = progress

        try:
            with self._open(actor) as session:
                batch = session.batch_here(batch_id)
                try:
                    result = payouts.run_batch(session, batch_id, self._options, progress=heard, actor=actor)
                    state.outcome = payouts.finish(
                        session, batch_id, result, app_results.default_path(batch.source, batch_id)
                    )
                    code = state.outcome.verdict.exit_code
                    session.ledger.record_action(batch_id, actor, "run ended", f"exit code {code}")
                except errors.BatchPayoutsError as exc:
                    state.error = str(exc)
                    session.ledger.record_action(batch_id, actor, "run stopped", str(exc))
        except errors.BatchPayoutsError as exc:
            state.error = str(exc)
        except Exception as exc:  # a worker must say why it stopped; the next run picks the batch up
            state.error = (
                f"the run stopped unexpectedly ({type(exc).__name__}); what was recorded is safe: "
                "an approver can pay the rows left"
            )
        finally:
            state.finished_at = self._clock()
            if self._on_finished is not None:
                self._on_finished(batch_id, state)

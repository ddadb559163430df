"""One run's interruption, recorded as it happens and reported once it is over.

Owns: the times of the cancel request about to be applied (the client's send time, our
receive time), the :class:`~._progress.Interruption` begun when the run's abort fires, its
``stopped`` mark (first wins), and the report once the terminal sequence was acknowledged:
the ``published`` mark, the log and span event (:func:`~._progress.report_interruption`),
then the application's ``on_interrupted``, whose exception is logged and reported, never
raised. The timeline itself is :mod:`._progress`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._abort import CancelReason
from ._progress import Interruption, now_ms, report_interruption
from ._source import as_error

if TYPE_CHECKING:
    from ._run import OnInterrupted, Run

__all__ = ["InterruptionRecord"]

logger = logging.getLogger("langgraph_interrupt.transport")


class InterruptionRecord:
    """The interruption of one run (see the module notes)."""

    __slots__ = ("_on_interrupted", "_request", "current")

    def __init__(self, on_interrupted: OnInterrupted | None) -> None:
        self._on_interrupted = on_interrupted
        self._request: tuple[float | None, float | None] = (None, None)
        self.current: Interruption | None = None  #: ``None`` until the run is cancelled

    def note_request(self, sent_at: float | None, received_at: float | None) -> None:
        """The client's send time and our receive time of the cancel about to be applied."""
        if self.current is None:
            self._request = (sent_at, received_at)

    def aborted(self, reason: CancelReason) -> None:
        """The run's abort fired (on any thread): the timeline begins."""
        now = now_ms()
        sent_at, received_at = self._request
        self.current = Interruption(reason.name, reason.requester, sent_at,
                                    received_at or now, now)

    def stopped(self) -> None:
        """The model and the tools stopped (only the first call counts)."""
        if self.current is not None:
            self.current = self.current.with_marks(stopped_at=now_ms())

    def report(self, run: Run) -> None:
        """The terminal sequence was acknowledged: mark it, log it, tell the application."""
        interruption = self.current
        if interruption is None:
            return
        self.current = interruption = interruption.with_marks(published_at=now_ms())
        report_interruption(run.run_id, interruption)
        if self._on_interrupted is not None:
            try:
                self._on_interrupted(run, interruption)
            except Exception as exc:
                logger.exception("run %s: on_interrupted raised", run.run_id)
                run._session._report(as_error(exc))

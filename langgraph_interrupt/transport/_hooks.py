"""The application's hooks on one run, called inside the run's lifecycle.

Owns: the finalizers (each called once, in the order added, then forgotten) and
``on_cancelled`` (called at most once, and only while the run is still active, so it may
write final outputs); either may be sync or async, and one that raises is logged and
reported to the session, never raised into the terminal sequence. When they are called,
and what is published around them, is :mod:`._run`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from .._abort import CancelReason
from .._wire import RunEndReason
from ._source import as_error

if TYPE_CHECKING:
    from ._run import Finalizer, OnCancelled, Run

__all__ = ["RunHooks"]

logger = logging.getLogger("langgraph_interrupt.transport")


class RunHooks:
    """The finalizers and the ``on_cancelled`` hook of one run (see the module notes)."""

    __slots__ = ("_cancel_handled", "_finalizers", "_on_cancelled")

    def __init__(self, on_cancelled: OnCancelled | None) -> None:
        self._on_cancelled = on_cancelled
        self._cancel_handled = False
        self._finalizers: list[Finalizer] = []

    def add_finalizer(self, finalizer: Finalizer) -> None:
        self._finalizers.append(finalizer)

    async def finalize(self, run: Run, reason: RunEndReason | Literal["suspended"]) -> None:
        """Call every finalizer added so far, once."""
        finalizers, self._finalizers = self._finalizers, []
        for finalizer in finalizers:
            try:
                result = finalizer(run, reason)
                if result is not None:
                    await result
            except Exception as exc:
                logger.exception("run %s: finalizer raised", run.run_id)
                run._session._report(as_error(exc))

    async def cancelled(self, run: Run) -> None:
        """Call ``on_cancelled`` with the run's cancel reason, the first time only."""
        if self._cancel_handled or self._on_cancelled is None or run.state != "active":
            self._cancel_handled = True
            return
        self._cancel_handled = True
        reason = run.signal.reason or CancelReason()
        try:
            result = self._on_cancelled(run, reason)
            if result is not None:
                await result
        except Exception as exc:
            logger.exception("run %s: on_cancelled raised", run.run_id)
            run._session._report(as_error(exc))

"""A run's admission under the session's multitask strategy, seen from the run.

Owns: asking the session's gate once (:meth:`Run.admit`), ending a refused run on the wire
before the refusal is raised, and waiting for the turn the gate gave (the runs it
interrupted ended, or its place in the queue came up), bounded under ``interrupt`` and
``rollback`` by twice the terminal timeout; a cancel or the session closing meanwhile ends
the run as one that never ran. What the strategies decide is :mod:`._multitask`'s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .._errors import OperationCancelledError, RunRejectedError, unable_to

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["Admission"]

logger = logging.getLogger("langgraph_interrupt.transport")


class Admission:
    """The admission of one run (see the module notes)."""

    __slots__ = ("_admitted", "_run", "_turn")

    def __init__(self, run: Run) -> None:
        self._run = run
        self._admitted = False
        self._turn: asyncio.Future[Any] | None = None

    async def admit(self) -> None:
        """Ask the session's gate, once (the run's trigger is located)."""
        if self._admitted:
            return
        self._admitted = True
        run = self._run
        try:
            self._turn = run._session._admit(run)
        except RunRejectedError as exc:
            logger.info("run %s refused: %s", run.run_id, exc.message)
            if run.trigger is not None and run.trigger.is_continuation:
                await run.end()  # the suspended run stays suspended: the answer may come again
            else:
                await run._end_unstarted("error", exc)
            raise
        if self._turn is not None and run.multitask in ("interrupt", "rollback"):
            # The runs this one interrupted start ending in tasks: let them take their first
            # step (their terminal publishes) before the caller writes its HTTP answer.
            await asyncio.sleep(0)

    async def wait_turn(self) -> None:
        """Wait until the runs this one interrupted have ended, or its turn in the queue
        came; a cancel meanwhile ends it (on the wire: it never ran)."""
        turn, self._turn = self._turn, None
        if turn is None:
            return
        run = self._run
        # Interrupted runs end within their terminal bound; a queue waits as long as it takes.
        bound = 2 * run._terminal_timeout if run.multitask in ("interrupt", "rollback") \
            else None
        if not turn.done():
            # One future woken by callbacks, not asyncio.wait on a task per signal: the
            # hand-over from the interrupted run's end to this run's start is the hot path.
            loop = run.loop
            woken: asyncio.Future[None] = loop.create_future()

            def wake(*_: object) -> None:
                if not woken.done():
                    woken.set_result(None)

            turn.add_done_callback(wake)
            stop_listening = run.signal.add_callback(
                lambda _reason: loop.call_soon_threadsafe(wake))
            try:
                async with asyncio.timeout(bound):
                    await woken
            except TimeoutError:
                pass
            finally:
                turn.remove_done_callback(wake)
                stop_listening()
        if turn.cancelled() or run.cancelled:  # (a cancelled turn: the session closed)
            await run._end_unstarted("cancelled", None)
            raise OperationCancelledError(unable_to("start run", run.signal.reason
                                                    or "the session closed"))
        if not turn.done():
            logger.warning("run %s: the run(s) it interrupted did not end within %.1f s; "
                           "starting anyway", run.run_id, bound)

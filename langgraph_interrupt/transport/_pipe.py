"""Piping one chunk source into a run: the loop behind :meth:`Run.pipe`.

Owns: one pipe call's state (its task, whether it waits for the source, whether we
interrupted that wait, when it is done), the pull loop (a forced loop yield every
``_YIELD_EVERY`` chunks, the ``finish`` chunk's reason, the model counted as generating),
interrupting the wait for the source when the run is cancelled (from any thread, on the
run's loop; the terminal sequence then starts in the same loop iteration), telling our
interruption from a cancellation of the caller's task, and closing a pipe that was not
cancelled: streams terminated, step ended, acknowledgements awaited. What a cancelled run
publishes, and in which order, is the run's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from .._abort import CancelReason
from .._errors import AITransportError, StreamError, unable_to
from .._wire import RunEndReason
from ..codec import Chunk
from ._output import shielded, wait_shielded
from ._publisher import STEP_END
from ._source import PipeResult, as_error, chunks_of, close_quietly

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["Pipe", "interrupt_pipe"]

logger = logging.getLogger("langgraph_interrupt.transport")

_YIELD_EVERY = 64  # chunks between forced loop yields; cheap, keeps cancel live


def _stopping(run: Run) -> bool:
    """Cancelled, and not asked to let the current step (the piped source) finish, or a
    drain escalated to a stop (:meth:`Run.cancel` with a reason that does not drain)."""
    reason = run.signal.reason
    return reason is not None and (not reason.drain or run._escalated)


class Pipe:
    """One :meth:`Run.pipe` call, from its first pull to its last acknowledgement.

    Made in the task that pipes, after the run began the message and the step; the run
    keeps the latest one, to interrupt it and to let :meth:`Run.end` wait for it.
    """

    __slots__ = ("_run", "done", "interrupted", "pulling", "task")

    def __init__(self, run: Run) -> None:
        self._run = run
        self.task: asyncio.Task[Any] | None = asyncio.current_task()
        self.pulling = False  # waiting for the source's next chunk
        self.interrupted = False  # we cancelled the task to stop that wait
        self.done = asyncio.Event()  # set once the pipe published all it will

    def interrupt(self) -> None:
        """The run was cancelled: stop waiting for the source (on the run's loop)."""
        # Only interrupt while waiting for the source: a chunk being published finishes
        # first, and the loop sees the signal right after it.
        task = self.task
        if task is not None and self.pulling and not self.interrupted \
                and _stopping(self._run):
            self.interrupted = True
            task.cancel()
            # No chunk is being written (we were pulling), so the terminal sequence can
            # start now, in the same loop iteration as the abort, not after the pipe wakes.
            self._run._start_cancelled_end()

    async def run(self, source: AsyncIterable[Chunk] | Iterable[Chunk]) -> PipeResult:
        """Pull and write every chunk of ``source``; see :meth:`Run.pipe`."""
        run = self._run
        signal = run.signal
        finish_reason: str | None = None
        outcome: RunEndReason = "complete"
        error: AITransportError | None = None
        external_cancel = False
        iterator: AsyncIterator[Chunk] | None = None
        pulled = 0
        progress = run.progress
        progress.model_calls += 1  # the source is the model: generating until it ends
        try:
            iterator = chunks_of(source)  # in here: a failing __aiter__ is the source's error
            while not _stopping(run):
                self.pulling = True
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                finally:
                    self.pulling = False
                pulled += 1
                if pulled % _YIELD_EVERY == 0:
                    # A source that never suspends (a list, a fast local model) would
                    # otherwise starve the loop, and a cancel could not be read.
                    await asyncio.sleep(0)
                if _stopping(run):
                    break
                if chunk.get("type") == "finish":
                    reason = chunk.get("finishReason")
                    finish_reason = reason if isinstance(reason, str) else None
                await run.write(chunk)
        except asyncio.CancelledError:
            task, ours = self.task, self.interrupted
            self.interrupted = False  # our request is withdrawn here, once, if it was made
            if not (ours and task is not None and task.uncancel() == 0):
                # Someone else's cancel (maybe as well as ours): re-raised after the end.
                external_cancel = True
                run.cancel(CancelReason("shutdown", "the task running the run was cancelled"))
        except Exception as exc:
            outcome, error = "error", as_error(exc)
        finally:
            progress.model_calls -= 1
        if self.interrupted:  # the source swallowed our interruption: clear the request
            self.interrupted = False
            if self.task is not None:
                self.task.uncancel()
        if run.cancelled:
            outcome, error = "cancelled", None
            run.note_stopped()
        try:
            if outcome == "cancelled":
                # A cancelled run can only end: publish its whole terminal sequence
                # (on_cancelled output, streams, step, ai-run-end) in one shielded task,
                # which saves the loop iterations of a second hand-off in end().
                await wait_shielded(run._start_cancelled_end())
            else:
                await shielded(self._finish(outcome), run._terminal_timeout)
        except AITransportError as exc:
            outcome, error = "error", exc
        except TimeoutError:
            logger.error("run %s: terminal publishes timed out", run.run_id)
        finally:
            self.task = None
            self.done.set()
            if iterator is not None:
                await close_quietly(iterator)
        if external_cancel:
            raise asyncio.CancelledError
        if outcome == "error" and error is None:
            error = StreamError(unable_to("complete run", "unknown error"))
        cancelled = outcome == "cancelled"
        return PipeResult(outcome, error, signal.reason if cancelled else None, finish_reason,
                          self._run.interruption if cancelled else None)

    async def _finish(self, outcome: RunEndReason) -> None:
        """Close a pipe that was not cancelled: its streams, its step, then wait for the
        acknowledgements (raising the first refusal)."""
        run = self._run
        try:
            run._publisher.cancel_streams()  # dangling or cancelled streams are terminated
        finally:
            run._publisher.end_step(STEP_END[outcome])
        await run._publisher.settled()


def interrupt_pipe(run: Run) -> None:
    """The run was cancelled, on any thread: interrupt its pipe's wait for the source."""
    # Any thread may abort: hop to the loop before touching the pipe task. On the loop
    # itself, interrupt at once: the hop costs a loop iteration of latency.
    loop = run.loop
    try:
        if asyncio.get_running_loop() is loop:
            _interrupt(run)
            return
    except RuntimeError:  # not on any loop: a worker thread
        pass
    try:
        loop.call_soon_threadsafe(_interrupt, run)
    except RuntimeError:  # loop closed; nothing left to interrupt
        pass


def _interrupt(run: Run) -> None:
    pipe = run._pipe  # the latest pipe(), if any, when this runs
    if pipe is not None:
        pipe.interrupt()

"""Runs of this session that other agent workers serve, as this worker's multitask gate sees
them.

Owns: :class:`ForeignRuns`: which runs of the session other workers serve (the
:class:`~._workers.WorkerRegistry` knows every worker's runs), which of them have ended or
suspended on the wire (``ai-run-end``/``ai-run-suspend`` from an agent), asking another
worker to stop a run (an ``ai-cancel`` published as the agent, reason ``new_input``; a
worker accepts its own identity's cancels without the ``on_cancel`` hook), and a future
resolved once given runs are gone. With it, ``interrupt`` and ``rollback`` stop a run
another worker serves, ``enqueue`` waits for it and ``reject`` refuses, as they do within
a worker (a foreign run under ``rollback`` is repaired, not rolled back: its graph writes
are the other worker's).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .._cancel import build_cancel
from .._errors import RunRejectedError, unable_to
from .._wire import H_RUN_ID, ChannelMessage, batch_ids, read_envelope
from ..channels import Channel
from ._multitask import RunGate
from ._workers import WorkerRegistry

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["ForeignRuns"]

logger = logging.getLogger("langgraph_interrupt.transport")

_ENDED_KEPT = 1000


class ForeignRuns:
    """Other workers' runs of one session (see the module notes)."""

    __slots__ = ("_channel", "_ended", "_registry", "_waiters")

    def __init__(self, channel: Channel, registry: WorkerRegistry) -> None:
        self._channel = channel
        self._registry = registry
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def active(self, before: str | None = None) -> list[str]:
        """Run ids other workers serve on this session, not seen ending here; with
        ``before``, only those of inputs published before that serial. Ordering by input
        keeps two workers from each waiting for, or stopping, the other's run."""
        return [run_id for run_id in self._registry.runs_of(self._channel.name, before=before)
                if run_id not in self._ended]

    def admit(self, run: Run, gate: RunGate) -> asyncio.Future[Any] | None:
        """Admit ``run`` through this worker's ``gate``, counting the other workers' runs:
        ``reject`` refuses while one is active, ``interrupt``/``rollback`` stop them, and the
        run's turn also waits for them to end (see :meth:`RunGate.admit`)."""
        strategy, trigger = run.multitask, run.trigger
        others = self.active(trigger.serial if trigger is not None else None) \
            if strategy != "concurrent" and not run.cancelled else []
        if others and strategy == "reject":
            raise RunRejectedError(unable_to(
                "start run", f"{len(others)} run(s) already active on this session (on "
                "another worker) and its multitask strategy is reject"))
        turn = gate.admit(run, strategy)
        if not others:
            return turn
        if strategy in ("interrupt", "rollback"):
            self.cancel(others)
        gone = self.gone(others)
        return gone if turn is None else asyncio.gather(turn, gone)

    async def wait_gone(self, run: Run) -> bool:
        """Wait until the other workers' runs of inputs before ``run``'s have ended or
        suspended; False if ``run`` was cancelled first."""
        trigger = run.trigger
        others = self.active(trigger.serial if trigger is not None else None)
        if not others:
            return True
        gone = self.gone(others)
        aborted = asyncio.ensure_future(run.signal.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {gone, aborted}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
        return gone.done()

    def saw_end(self, message: ChannelMessage) -> None:
        """An ``ai-run-end`` or ``ai-run-suspend`` on the channel: an agent's ends a run."""
        if message.client_id != self._channel.client_id:
            return  # only the agent speaks for its runs
        envelope = read_envelope(message.extras)
        run_id = envelope.transport.get(H_RUN_ID) if envelope is not None else None
        if run_id:
            self.ended(run_id)

    def ended(self, run_id: str) -> None:
        """An agent's ``ai-run-end`` or ``ai-run-suspend`` for ``run_id`` was seen."""
        ended = self._ended
        ended[run_id] = None
        while len(ended) > _ENDED_KEPT:
            ended.popitem(last=False)
        for future in self._waiters.pop(run_id, ()):
            if not future.done():
                future.set_result(None)

    def gone(self, run_ids: list[str]) -> asyncio.Future[Any]:
        """A future resolved once every run of ``run_ids`` has ended or suspended."""
        loop = asyncio.get_running_loop()
        futures = []
        for run_id in run_ids:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(run_id, []).append(future)
            futures.append(future)
        return asyncio.gather(*futures)  # futures only: no task is made

    def cancel(self, run_ids: list[str]) -> None:
        """Ask the workers serving ``run_ids`` to stop them (reason ``new_input``)."""
        messages = batch_ids([build_cancel(run_id=run_id, reason="new_input")
                              for run_id in run_ids], str(uuid.uuid4()))
        task = asyncio.ensure_future(self._channel.publish(messages))
        task.add_done_callback(_report)


def _report(task: asyncio.Future[list[str]]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("asking another worker to stop its run failed: %r", task.exception())

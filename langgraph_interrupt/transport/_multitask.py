"""Multitask strategies: what a session does with a new input while its runs are active.

Owns: the strategy vocabulary (LangGraph Platform's ``multitask_strategy``, plus today's
``concurrent``), per-input overrides and which ones an agent allows, the limit on active
runs, and :class:`RunGate`, which admits runs: at once, after interrupting the oldest
active runs, after a place in a bounded queue, or not at all (:class:`RunRejectedError`).

The gate decides synchronously, when the endpoint asks (so a refusal is the POST's 409),
and the waiting happens later, in :meth:`Run.start`: the POST is answered at once even for
a run that waits in the queue. Suspended runs (waiting for a human) are not active.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

from .._abort import CancelReason
from .._errors import InvalidArgumentError, RunRejectedError, unable_to

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["STRATEGIES", "MultitaskStrategy", "RunGate", "check_strategy"]

logger = logging.getLogger("langgraph_interrupt.transport")

#: ``concurrent``: a new input runs alongside (the default). ``interrupt``: it cancels the
#: oldest active run(s) (reason ``new_input``), then starts. ``rollback``: as ``interrupt``,
#: and the interrupted run's graph writes are discarded. ``enqueue``: it waits until a
#: run ends. ``reject``: it is refused (409, and ``ai-run-end{error}`` 40900 on the wire).
MultitaskStrategy: TypeAlias = Literal["concurrent", "interrupt", "rollback", "enqueue",
                                       "reject"]
STRATEGIES: frozenset[str] = frozenset(get_args(MultitaskStrategy))


def check_strategy(value: object, *, what: str = "multitask strategy") -> MultitaskStrategy:
    """``value`` as a strategy, or :class:`InvalidArgumentError` naming the valid ones."""
    if isinstance(value, str) and value in STRATEGIES:
        return value  # type: ignore[return-value]
    shown = repr(value) if isinstance(value, str) and len(value) <= 40 else type(value).__name__
    raise InvalidArgumentError(unable_to(
        "start run", f"unknown {what} {shown}; use one of {', '.join(sorted(STRATEGIES))}"))


class RunGate:
    """Admits a session's runs under its multitask strategy.

    Args:
        strategy: the session's strategy.
        max_active: runs active at once before the strategy applies; ``None``: 1 for every
            strategy but ``concurrent``, unlimited for it (with a limit, ``concurrent``
            refuses past it).
        max_queued: inputs waiting under ``enqueue``; one more is refused.
        overrides: strategies a single input may ask for instead of the session's.
    """

    def __init__(self, strategy: MultitaskStrategy = "concurrent", *,
                 max_active: int | None = None, max_queued: int = 16,
                 overrides: Collection[str] = ()) -> None:
        self.strategy = check_strategy(strategy)
        if max_active is not None and max_active < 1:
            raise InvalidArgumentError("max_active_runs must be at least 1")
        if max_queued < 0:
            raise InvalidArgumentError("max_queued_runs must not be negative")
        self.overrides = frozenset(check_strategy(s) for s in overrides)
        self._max_active = max_active
        self._max_queued = max_queued
        self._active: dict[Run, asyncio.Future[None]] = {}  # admitted -> resolved when gone
        self._queue: deque[tuple[Run, asyncio.Future[None]]] = deque()

    def resolve(self, requested: object | None) -> MultitaskStrategy:
        """The strategy for one input: the session's, or an allowed override."""
        if requested is None or requested == self.strategy:
            return self.strategy
        strategy = check_strategy(requested)
        if strategy not in self.overrides:
            allowed = ", ".join(sorted(self.overrides)) or "none"
            raise InvalidArgumentError(unable_to(
                "start run", f"this agent does not allow the multitask strategy "
                f"{strategy!r} per input (allowed: {allowed})"))
        return strategy

    def _limit(self, strategy: MultitaskStrategy) -> int | None:
        if self._max_active is not None:
            return self._max_active
        return None if strategy == "concurrent" else 1

    @property
    def active(self) -> list[Run]:
        """Admitted runs that have not ended or suspended, oldest first."""
        return list(self._active)

    @property
    def queued(self) -> list[Run]:
        return [run for run, _ in self._queue]

    def admit(self, run: Run, strategy: MultitaskStrategy) -> asyncio.Future[Any] | None:
        """Admit ``run`` now, or say what it waits for: ``None`` (start at once) or a future
        that resolves when it may start (its interrupted runs ended, or its turn came).

        Raises:
            RunRejectedError: ``reject``, ``concurrent`` past its limit, or a full queue.
        """
        if run.cancelled:  # its client cancelled it already: it ends, and takes no place
            return None
        limit = self._limit(strategy)
        busy = limit is not None and len(self._active) >= limit
        if strategy == "enqueue" and (busy or self._queue):
            if len(self._queue) >= self._max_queued:
                raise RunRejectedError(unable_to(
                    "start run", f"{len(self._active)} run(s) active and the queue is full "
                    f"({self._max_queued} waiting); try again when a run has ended"))
            turn: asyncio.Future[None] = run.loop.create_future()
            self._queue.append((run, turn))
            return turn
        if busy and strategy in ("reject", "concurrent"):
            raise RunRejectedError(unable_to(
                "start run", f"{len(self._active)} run(s) already active on this session "
                f"(at most {limit}) and its multitask strategy is {strategy}"))
        waiting: asyncio.Future[Any] | None = None
        if busy and strategy in ("interrupt", "rollback"):
            assert limit is not None
            victims = list(self._active)[:len(self._active) - limit + 1]
            reason = CancelReason("input", f"interrupted by a new input "
                                  f"({run.trigger.codec_message_id if run.trigger else '?'})",
                                  run.trigger.client_id if run.trigger else None,
                                  rollback=strategy == "rollback")
            for victim in victims:
                victim.cancel(reason)  # a victim cancelled earlier keeps its first reason
            gone = [self._active[victim] for victim in victims]
            waiting = gone[0] if len(gone) == 1 else asyncio.gather(*gone)
        self._active[run] = run.loop.create_future()
        return waiting

    def release(self, run: Run) -> None:
        """``run`` ended, suspended or gave up its place: wake what waited for it."""
        gone = self._active.pop(run, None)
        if gone is not None and not gone.done():
            gone.set_result(None)
        for index, (queued, turn) in enumerate(self._queue):
            if queued is run:
                del self._queue[index]
                if not turn.done():
                    turn.cancel()
                break
        while self._queue:
            head, turn = self._queue[0]
            limit = self._limit("enqueue")
            if limit is not None and len(self._active) >= limit:
                break
            self._queue.popleft()
            if head.cancelled:  # it ends itself, on the wire, without running
                turn.cancel()
                continue
            self._active[head] = head.loop.create_future()
            if not turn.done():
                turn.set_result(None)

    def close(self) -> None:
        """The session closed: nothing waits any more."""
        for _, turn in self._queue:
            if not turn.done():
                turn.cancel()
        self._queue.clear()
        for gone in self._active.values():
            if not gone.done():
                gone.set_result(None)
        self._active.clear()

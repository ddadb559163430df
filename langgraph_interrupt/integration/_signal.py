"""The run's abort signal as seen from inside graph nodes and tools.

Owns: :func:`get_abort_signal`, :func:`bind_abort_signal` and the run's *critical sections*
(the bodies of shielded nodes, which a cancel waits for instead of interrupting).

How the signal travels: :func:`run_graph` binds it in a context variable around the graph;
LangGraph copies the context into every node task, and LangChain into the worker threads of
sync tools, so the lookup works everywhere. In drop-in mode (only a
:class:`RunCallbackHandler` in ``config["callbacks"]``) there is no binding, so the lookup
falls back to the handler found in the current runnable config.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from .._abort import AbortController, AbortSignal

__all__ = ["RunScope", "bind_abort_signal", "current_scope", "get_abort_signal"]


class RunScope:
    """What graph code of one run shares: the abort signal and the critical-section count.

    A cancel in immediate mode interrupts the graph at once unless a critical section (a
    shielded node's body) is running; then it waits for the last one to finish, so the
    shielded work completes and its writes are committed before the graph stops.
    """

    __slots__ = ("_idle", "_lock", "_running", "run", "signal", "tool_outputs", "tool_results")

    def __init__(self, signal: AbortSignal, run: Any = None) -> None:
        self.signal = signal
        #: The run this scope belongs to (``None`` for a bare signal): nodes reach its
        #: steers through it (:func:`take_steers`).
        self.run = run
        #: tool call id -> the ToolMessage of every tool that completed in this run, so a
        #: checkpoint repair after a cancel records real results instead of "cancelled".
        self.tool_results: dict[str, Any] = {}
        #: What tools of this run returned before LangChain encoded it into a ToolMessage's
        #: text, by message (see ``_tool_output``): the values that go on the wire.
        self.tool_outputs: dict[int, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._running = 0
        self._idle = threading.Event()
        self._idle.set()

    @property
    def in_critical_section(self) -> bool:
        """Whether a shielded body is running now."""
        return self._running > 0

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Mark a body that a cancel must not interrupt (thread-safe, re-entrant)."""
        with self._lock:
            self._running += 1
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self._idle.set()

    async def idle(self, timeout: float | None = None) -> bool:
        """Wait until no critical section runs (sections may end on worker threads, so
        this waits on a thread; it only happens during a cancel that found one running)."""
        if self._running == 0:
            return True
        return await asyncio.to_thread(self._idle.wait, timeout)


_scope: ContextVar[RunScope | None] = ContextVar("langgraph_interrupt_scope", default=None)
_never = AbortController().signal  # outside any run: a signal that never fires


def current_scope() -> RunScope | None:
    """The run scope of the calling code: bound by :func:`run_graph`, else found through a
    :class:`RunCallbackHandler` in the current runnable config, else ``None``."""
    scope = _scope.get()
    if scope is not None:
        return scope
    return _scope_from_config()


def get_abort_signal() -> AbortSignal:
    """The abort signal of the run this code is part of.

    Call it inside a node or a tool (async, sync, or on a worker thread) to stop early::

        @tool
        def crawl(urls: list[str]) -> str:
            signal = get_abort_signal()
            for url in urls:
                if signal.aborted:
                    return f"cancelled after {done} pages"
                ...

    Outside a run (a unit test calling the tool directly) it returns a signal that never
    fires, so the same code runs unchanged.
    """
    scope = current_scope()
    return scope.signal if scope is not None else _never


@contextlib.contextmanager
def bind_abort_signal(signal: AbortSignal | RunScope) -> Iterator[RunScope]:
    """Make ``signal`` the one :func:`get_abort_signal` returns in this context (and in the
    tasks and threads started from it). :func:`run_graph` does this for you."""
    scope = signal if isinstance(signal, RunScope) else RunScope(signal)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def _scope_from_config() -> RunScope | None:
    try:
        from langchain_core.runnables.config import var_child_runnable_config
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return None
    config = var_child_runnable_config.get()
    if not config:
        return None
    callbacks: Any = config.get("callbacks")
    handlers = getattr(callbacks, "handlers", callbacks)
    if not isinstance(handlers, list):
        return None
    for handler in handlers:
        scope = getattr(handler, "run_scope", None)
        if isinstance(scope, RunScope):
            return scope
    return None

"""The ``@cancellable`` decorator for graph nodes.

Owns: :func:`cancellable`. It gives a node function three things, sync or async:

* **skip**: when the run's abort signal has already fired as the node starts, the body never
  runs and the node returns ``None`` (no state update). A cancel in drain mode lets the
  current superstep finish; without the decorator, a node scheduled in that step would still
  start an LLM call or a side effect nobody is waiting for.
* **signal**: the run's scope is bound around the body, so :func:`get_abort_signal` works in
  it and in the threads and tasks it starts.
* **shielded** (``@cancellable(shielded=True)``): the body is never interrupted mid-way. An
  async body runs in its own task; when the node's task is cancelled, the wrapper waits for
  the body to finish and then re-raises ``CancelledError``. The body is also a *critical
  section* of the run (:meth:`RunScope.critical`), so an immediate cancel waits for it before
  it interrupts the graph, which lets the node's writes be committed. A sync body cannot be
  interrupted anyway (it runs on a thread); it is marked critical for the same reason.

Outside a run (no scope bound, no :class:`RunCallbackHandler` in the config) the decorator is
transparent: the function is called as if undecorated.

The wrapper keeps the function's signature (``functools.wraps`` sets ``__wrapped__``, which
``inspect.signature`` and ``typing.get_type_hints`` follow), so LangGraph still injects
``config``, ``runtime``, ``store`` and ``writer`` and still infers the input schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast, overload

from ._signal import RunScope, bind_abort_signal, current_scope

__all__ = ["cancellable"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def cancellable(func: F, /) -> F: ...


@overload
def cancellable(*, shielded: bool = False) -> Callable[[F], F]: ...


def cancellable(func: F | None = None, /, *, shielded: bool = False) -> F | Callable[[F], F]:
    """Make a graph node cancellation-aware; use bare or with options.

    Example::

        @cancellable
        async def agent(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"], config)]}

        @cancellable(shielded=True)
        def save_order(state: State) -> dict[str, Any]:
            ...  # never stopped half-way; a cancel takes effect after it

    Args:
        func: a plain ``def`` or ``async def`` node function.
        shielded: run the body to completion even when the run is cancelled while it runs
            (see the module docstring). It is still skipped if the cancel came first.

    Note that skipping does not end the graph: with no update, the edges after the node route
    as before. :func:`run_graph` (or a drop-in :class:`RunCallbackHandler`) is what stops the
    graph; the decorator only keeps work from starting in the meantime.

    The decorated function's declared return type is kept for LangGraph's and the type
    checker's sake, although a skipped node returns ``None``.
    """
    if func is None:
        return lambda f: _decorate(f, shielded)
    return _decorate(func, shielded)


def _decorate(func: F, shielded: bool) -> F:
    if not callable(func):
        raise TypeError(f"@cancellable decorates node functions, not {type(func).__name__}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        # A generator node's body runs after the wrapper returned: nothing to guard.
        raise TypeError("@cancellable does not support generator nodes")
    if inspect.iscoroutinefunction(func):
        wrapper: Callable[..., Any] = _async_wrapper(func, shielded)
    else:
        wrapper = _sync_wrapper(func, shielded)
    wrapper.__cancellable_shielded__ = shielded  # type: ignore[attr-defined]
    return cast(F, wrapper)


def _sync_wrapper(func: Callable[..., Any], shielded: bool) -> Callable[..., Any]:
    @functools.wraps(func)
    def node(*args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        if scope is None:
            return func(*args, **kwargs)
        if scope.signal.aborted:
            return None
        # The critical section is entered here, on the node's thread, so a cancel arriving
        # from now on finds it and waits; the body cannot be interrupted on a thread anyway.
        critical = scope.critical() if shielded else contextlib.nullcontext()
        with bind_abort_signal(scope), critical:
            return func(*args, **kwargs)

    return node


def _async_wrapper(func: Callable[..., Awaitable[Any]], shielded: bool) -> Callable[..., Any]:
    @functools.wraps(func)
    async def node(*args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        if scope is None:
            return await func(*args, **kwargs)
        if scope.signal.aborted:
            return None
        if not shielded:
            with bind_abort_signal(scope):
                return await func(*args, **kwargs)
        return await _run_shielded(scope, func, args, kwargs)

    return node


async def _run_shielded(scope: RunScope, func: Callable[..., Awaitable[Any]],
                        args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run ``func`` in a task the node's cancellation cannot reach, inside a critical section.

    The section is entered before the task is created (a cancel arriving before the body's
    first step must already wait for it) and left only when the body is done, even if the
    node's task was cancelled in between.
    """

    async def body() -> Any:
        return await func(*args, **kwargs)

    with scope.critical():
        with bind_abort_signal(scope):  # the task copies this context, binding included
            task = asyncio.ensure_future(body())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # someone cancelled the body itself: nothing to wait for
                raise
            await _wait_ignoring_cancel(task)
            raise


async def _wait_ignoring_cancel(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to finish even if the caller is cancelled again meanwhile (a runner
    may cancel repeatedly); the caller re-raises ``CancelledError`` afterwards."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: the node is cancelled, its result or error is moot

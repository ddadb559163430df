"""One run at a time per LangGraph thread, in this process.

Owns: :func:`thread_turn`. Two runs of one checkpointed thread at once corrupt it: each
writes its own chain of checkpoints from the same parent, so the one that finishes last
becomes the head and the other's turn vanishes from every later model call, while every
client shows both as answered; and the second run's input step would answer the first
run's running tool call as cancelled. So ``run_graph`` takes the thread's turn first: a
run of a busy thread (the ``concurrent`` multitask strategy, or a second worker task)
starts on the wire, then waits for the thread, and is cancelled cleanly if asked to while
it waits. Graphs without a checkpointer share no state and never wait.

Workers in other processes are not covered (the checkpointer would need a lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .._abort import AbortSignal

__all__ = ["thread_turn"]

# checkpointer -> thread id -> [lock, users]; entries go when their last user leaves.
_TURNS: weakref.WeakKeyDictionary[Any, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


def _key(graph: Any, config: Mapping[str, Any]) -> tuple[dict[str, list[Any]], str] | None:
    checkpointer = getattr(graph, "checkpointer", None)
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if checkpointer is None or isinstance(checkpointer, bool) or thread_id is None:
        return None
    try:
        threads = _TURNS.setdefault(checkpointer, {})
    except TypeError:  # not weakly referenceable: no serialisation (never seen in practice)
        return None
    return threads, str(thread_id)


@contextlib.asynccontextmanager
async def thread_turn(graph: Any, config: Mapping[str, Any],
                      signal: AbortSignal) -> AsyncIterator[bool]:
    """Hold the thread's turn; yields False (without it) if ``signal`` fired first."""
    key = _key(graph, config)
    if key is None:
        yield True
        return
    threads, thread_id = key
    entry = threads.setdefault(thread_id, [asyncio.Lock(), 0])
    lock: asyncio.Lock = entry[0]
    entry[1] += 1
    try:
        if not await _acquire(lock, signal):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
    finally:
        entry[1] -= 1
        if entry[1] == 0 and threads.get(thread_id) is entry:
            del threads[thread_id]


async def _acquire(lock: asyncio.Lock, signal: AbortSignal) -> bool:
    if signal.aborted:
        return False
    # Always watched: a lock that looks free may still have a woken waiter ahead of us, and
    # then acquire() blocks; a cancel must end that wait too.
    acquiring = asyncio.ensure_future(lock.acquire())
    aborted = asyncio.ensure_future(signal.wait())
    try:
        await asyncio.wait({acquiring, aborted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        aborted.cancel()
    if acquiring.done() and not acquiring.cancelled():
        if signal.aborted:
            lock.release()
            return False
        return True
    acquiring.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await acquiring
    if acquiring.done() and not acquiring.cancelled():  # got it just as it was cancelled
        lock.release()
    return False

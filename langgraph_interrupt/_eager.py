"""Starting a coroutine now, in the caller, rather than at the loop's next turn.

Owns: :func:`start_eagerly` (what Python 3.12's eager tasks do, for 3.11) and
:func:`resume`, which drives a coroutine whose first step already ran. Used where the first
step puts something on the wire (a publish, an ATTACH): it leaves when the call returns, in
call order, instead of after whatever else the loop has queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

__all__ = ["resume", "start_eagerly"]

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coro``'s first step now; a future of its result (a task if it suspended)."""
    loop = asyncio.get_running_loop()
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except Exception as exc:
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        return failed
    return loop.create_task(resume(coro, yielded))


class _Rest:
    """Awaiting it drives a coroutine whose first step already ran and yielded ``yielded``
    (what a task does with a coroutine)."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, None, Any]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                yield yielded  # the task waits for it, then resumes us (or throws into us)
            except GeneratorExit:  # a pending task garbage-collected: close, as a task would
                coro.close()  # (the coroutine may be collected, so closed, already)
                raise
            except BaseException as exc:  # handed to the coroutine, as a task would
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(None)
                except StopIteration as stop:
                    return stop.value


async def resume(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    """The rest of ``coro`` after a first step that yielded ``yielded``."""
    result: T = await _Rest(coro, yielded)
    return result

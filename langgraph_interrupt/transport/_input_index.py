"""The agent session's index of recent inputs, and those waiting for one.

Owns: :class:`InputIndex`, the bounded map of the ``ai-input`` triggers seen live (by event
id, the oldest forgotten first) and the futures of runs and requests waiting for a trigger
not yet seen. A run finds its trigger here first (no history read); a POST that arrives
before its input is resolved the moment the input does.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from ._trigger import Trigger

__all__ = ["InputIndex"]


class InputIndex:
    """Recent inputs by event id, and waiters for inputs not seen yet."""

    __slots__ = ("_inputs", "_size", "_waiters")

    def __init__(self, size: int) -> None:
        self._size = size
        self._inputs: OrderedDict[str, Trigger] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[Trigger]]] = {}

    def __len__(self) -> int:
        return len(self._inputs)

    def get(self, event_id: str) -> Trigger | None:
        return self._inputs.get(event_id)

    def add(self, trigger: Trigger) -> None:
        """Index ``trigger`` and resolve whoever waits for it."""
        inputs = self._inputs
        inputs[trigger.event_id] = trigger
        inputs.move_to_end(trigger.event_id)
        while len(inputs) > self._size:
            inputs.popitem(last=False)
        for future in self._waiters.get(trigger.event_id, ()):
            if not future.done():
                future.set_result(trigger)

    def waiter(self, event_id: str) -> asyncio.Future[Trigger]:
        """A future resolved when ``event_id`` is indexed; :meth:`forget` it when done."""
        future: asyncio.Future[Trigger] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(event_id, []).append(future)
        return future

    def forget(self, event_id: str, future: asyncio.Future[Trigger]) -> None:
        waiters = self._waiters.get(event_id, [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._waiters.pop(event_id, None)

    async def wait(self, event_id: str, timeout: float) -> Trigger | None:
        """The trigger of ``event_id``, waiting up to ``timeout`` for it; ``None`` if late."""
        trigger = self._inputs.get(event_id)
        if trigger is not None or timeout <= 0:
            return trigger
        future = self.waiter(event_id)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None
        finally:
            self.forget(event_id, future)

    def fail_waiters(self, error: BaseException) -> None:
        """Fail every waiter with ``error`` (the session closed)."""
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(error)

"""A listener that records channel messages and lets tests wait for them without sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .._wire import ChannelMessage

__all__ = ["Inbox"]


class Inbox:
    """Collects every message a channel delivers; ``await inbox.wait_for(pred)`` waits
    (event-driven) until some message matches.

    Example::

        inbox = Inbox()
        channel.subscribe(inbox)
        message = await inbox.wait_for(lambda m: m.name == "ai-run-end")
    """

    def __init__(self) -> None:
        self.messages: list[ChannelMessage] = []
        self._waiters: list[
            tuple[Callable[[ChannelMessage], bool], asyncio.Future[ChannelMessage]]
        ] = []

    def __call__(self, message: ChannelMessage) -> None:
        self.messages.append(message)
        for predicate, future in tuple(self._waiters):
            if not future.done() and predicate(message):
                future.set_result(message)

    async def wait_for(self, predicate: Callable[[ChannelMessage], bool], *,
                       timeout: float = 5.0) -> ChannelMessage:
        """The first recorded message matching ``predicate``, waiting up to ``timeout``."""
        for message in self.messages:
            if predicate(message):
                return message
        return await self.wait_for_new(predicate, timeout=timeout)

    async def wait_count(self, predicate: Callable[[ChannelMessage], bool], count: int, *,
                         timeout: float = 5.0) -> list[ChannelMessage]:
        """Wait until ``count`` recorded messages match; returns them in arrival order."""
        seen = 0

        def enough(message: ChannelMessage) -> bool:
            nonlocal seen
            if predicate(message):
                seen += 1
            return seen >= count

        seen = sum(1 for m in self.messages if predicate(m))
        if seen < count:
            await self.wait_for_new(enough, timeout=timeout)
        return [m for m in self.messages if predicate(m)][:count]

    async def wait_for_new(self, predicate: Callable[[ChannelMessage], bool], *,
                           timeout: float = 5.0) -> ChannelMessage:
        """Like :meth:`wait_for`, but only messages arriving from now on count."""
        future: asyncio.Future[ChannelMessage] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiters.remove(entry)

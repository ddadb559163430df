"""Finding a run's input on the channel: live, or in history, bounded.

Owns: :func:`find_input`, the race between the live ``ai-input`` a run waits for and a
history read (up to the attach point), with the history grace of an attached session and
the overall ``trigger_timeout``. Called by the session when the input is not in its
:class:`InputIndex` yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._abort import AbortSignal
from .._cancel import CancelTarget
from .._errors import InputEventNotFoundError, OperationCancelledError, unable_to
from ..channels import Channel
from ._input_index import InputIndex
from ._trigger import HistoryScan, Trigger, scan_history

__all__ = ["HISTORY_GRACE", "find_input"]

#: An attached session looks for a missing input in history only this long after the POST
#: (seconds): the input is almost always on its way live, and a history read started at
#: once costs a REST request and, on a fast link, delays handling the input it races.
HISTORY_GRACE = 0.05


async def find_input(channel: Channel, inputs: InputIndex, event_id: str,
                     signal: AbortSignal, connecting: asyncio.Future[None], *,
                     timeout: float, max_pages: int, page_size: int
                     ) -> tuple[Trigger, list[CancelTarget]]:
    """The input ``event_id``, and the cancels a history read found next to it.

    A session that is attaching reads no history first: its attach asks for the newest
    earlier messages to be delivered with it (``recent``), and the input a POST names
    was usually published just before. Only if the attach brought nothing is history
    read: one round trip in all on a conversation's first turn, two at worst.

    A session already attached sees every input published since it attached: the one
    a POST names is on its way (the client published it before POSTing). History is
    read only if it has not arrived :data:`HISTORY_GRACE` after the POST, for an input
    published before the session attached. That bound is cancelled, never waited,
    when the input arrives live.

    Raises:
        OperationCancelledError: ``signal`` aborted first.
        InputEventNotFoundError: neither live nor in history within ``timeout``.
        Exception: the attach's failure, once it is needed for the read.
    """
    loop = asyncio.get_running_loop()
    future = inputs.waiter(event_id)
    aborted = asyncio.ensure_future(signal.wait())
    now = loop.time()
    deadline = now + timeout
    read_at = now + min(HISTORY_GRACE, timeout / 2) if connecting.done() else now
    scanning: asyncio.Future[HistoryScan] | None = None
    read = False
    try:
        while True:
            if not read and connecting.done() and loop.time() >= read_at:
                connecting.result()
                read = True
                scanning = asyncio.ensure_future(scan_history(
                    channel, event_id, max_pages=max_pages, page_size=page_size))
            waiting: set[asyncio.Future[Any]] = {future, aborted}
            if scanning is not None:
                waiting.add(scanning)
            elif not read:
                waiting.add(connecting)
            until = deadline if read or not connecting.done() else min(deadline, read_at)
            done, _ = await asyncio.wait(waiting, timeout=max(0.0, until - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)
            if future.done():  # live first: the read is not waited for
                return future.result(), []
            if aborted in done:
                raise OperationCancelledError(unable_to("start run", signal.reason))
            if scanning is not None and scanning in done:
                found = scanning.result()
                scanning = None
                if found.trigger is not None:
                    return found.trigger, found.cancels
            if not done and loop.time() >= deadline:
                raise InputEventNotFoundError(unable_to(
                    "start run", f"input event {event_id!r} not found on {channel.name!r}"))
    finally:
        aborted.cancel()
        if scanning is not None:
            scanning.cancel()
        inputs.forget(event_id, future)

"""Executing encoder operations on a channel, and shielded terminal publishes.

Owns: :class:`MessageWriter` (one per assistant message: maps stream ids to serials, keeps
appends going after a failure and repairs a failed stream with one full-text update at its
close) and :func:`shielded` (run an awaitable to completion even while the calling task is
being cancelled, bounded in time).

Why the repair replaces the terminal append instead of following it: a live subscriber
closes its stream tracker on ``status:"complete"`` and ignores later updates (the JS agent's
anomaly §11.4), so an update sent after the terminal append fixes history but not screens.
Sending the full text as the terminal ``message.update`` fixes both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._errors import (
    AITransportError,
    ChannelError,
    EncoderRecoveryFailedError,
    MutableMessagesDisabledError,
    unable_to,
)
from .._wire import EVENT_OUTPUT, OutboundMessage
from ..channels import Channel
from ..codec import UIMessageEncoder, WireOp

__all__ = ["MessageWriter", "shielded"]

logger = logging.getLogger("langgraph_interrupt.transport")
T = TypeVar("T")


def start_bounded(awaitable: Awaitable[T], timeout: float) -> asyncio.Task[T]:
    """Start ``awaitable`` in its own task, bounded by ``timeout`` (``TimeoutError`` past it).

    Starting early matters on a busy loop: the task runs in the next iteration, while the
    task that will wait for it may still be waking up from an interruption.
    """

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await awaitable

    return asyncio.ensure_future(bounded())


async def wait_shielded(task: asyncio.Future[T]) -> T:
    """Wait for ``task`` to the end even if the caller is cancelled meanwhile, then re-raise
    the caller's cancellation: terminal publishes must go out even during shutdown."""
    caller_cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            caller_cancelled = True
    if caller_cancelled:
        raise asyncio.CancelledError
    return result


async def shielded(awaitable: Awaitable[T], timeout: float) -> T:
    """Await ``awaitable`` to the end even if the caller is cancelled meanwhile.

    The work runs in its own task, bounded by ``timeout`` (``TimeoutError`` past it). If the
    caller is cancelled while waiting, it keeps waiting for the work and re-raises the
    cancellation afterwards: terminal publishes must go out even during shutdown.
    """
    return await wait_shielded(start_bounded(awaitable, timeout))


class MessageWriter:
    """Publishes one assistant message's wire operations in order.

    Args:
        channel: where to publish.
        encoder: the message's encoder (its ``headers`` carry the run and step headers).
        next_id: returns an idempotency id for each publish.
    """

    __slots__ = ("_channel", "_failed", "_next_id", "_serials", "encoder", "fatal")

    def __init__(self, channel: Channel, encoder: UIMessageEncoder,
                 next_id: Callable[[], str]) -> None:
        self._channel = channel
        self.encoder = encoder
        self._next_id = next_id
        self._serials: dict[str, str] = {}
        self._failed: set[str] = set()
        #: Set when the channel cannot stream at all (no mutable-messages rule): the run
        #: must fail with one clear error rather than a failure per delta.
        self.fatal: AITransportError | None = None

    async def write(self, ops: list[WireOp]) -> None:
        for op in ops:
            kind = op.kind
            if kind == "append":
                stream_id = op.stream_id
                assert stream_id is not None
                if stream_id in self._failed:
                    continue
                try:
                    await self._channel.append(self._serials[stream_id], op.data, op.extras)
                except ChannelError as exc:
                    self._append_failed(stream_id, exc)
            elif kind == "publish":
                await self._publish(op.data, op.extras)
            elif kind == "create":
                assert op.stream_id is not None
                self._serials[op.stream_id] = await self._publish(op.data, op.extras)
            else:
                await self._close(op)
        if self.fatal is not None:
            raise self.fatal

    async def cancel_streams(self) -> None:
        """Terminate every open stream with ``status:"cancelled"`` (idempotent)."""
        await self.write(self.encoder.cancel_streams())

    async def _publish(self, data: Any, extras: dict[str, Any]) -> str:
        message = OutboundMessage(EVENT_OUTPUT, data, extras, self._next_id())
        serials = await self._channel.publish([message])
        if not serials:
            raise ChannelError(unable_to("publish output", "the channel returned no serial"))
        return serials[0]

    def _append_failed(self, stream_id: str, exc: ChannelError) -> None:
        self._failed.add(stream_id)
        if isinstance(exc, MutableMessagesDisabledError):
            self.fatal = EncoderRecoveryFailedError(unable_to(
                "stream output",
                f"{exc.message} (enable the \"Message annotations, updates, deletes and "
                f"appends\" rule on the channel namespace)"))
            self.fatal.__cause__ = exc
        else:
            logger.warning("append to stream %s failed (%s); it will be repaired at its end",
                           stream_id, exc)

    async def _close(self, op: WireOp) -> None:
        stream_id = op.stream_id
        assert stream_id is not None
        serial = self._serials.pop(stream_id, None)
        if serial is None:
            return
        if stream_id not in self._failed:
            try:
                await self._channel.append(serial, "", op.extras)
                return
            except ChannelError as exc:
                self._append_failed(stream_id, exc)
                if self.fatal is not None:
                    return
        self._failed.discard(stream_id)
        text = "".join(op.parts or ())
        try:
            await self._channel.update(serial, text, op.extras)
        except ChannelError as exc:
            error = EncoderRecoveryFailedError(unable_to(
                "flush pending appends", f"recovery failed for stream(s): {stream_id}"))
            error.__cause__ = exc
            self.fatal = self.fatal or error

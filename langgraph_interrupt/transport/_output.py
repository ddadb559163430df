"""Executing encoder operations through a run's outbox, and shielded terminal publishes.

Owns: :class:`MessageWriter` (one per assistant message: keeps each stream's serial,
coalesces deltas while an append is in flight, caps the append rate with a rollup window,
keeps appends going after a failure and repairs a failed stream with one full-text update)
and :func:`shielded` (run an awaitable to completion even while the calling task is being
cancelled, bounded in time).

Why the repair replaces the terminal append instead of following it: a live subscriber
closes its stream tracker on ``status:"complete"`` and ignores later updates (the JS agent's
anomaly §11.4), so an update sent after the terminal append fixes history but not screens.
Sending the full text as the terminal ``message.update`` fixes both. A failure learnt only
after the terminal append went out (the writer does not wait for acknowledgements) is
repaired right then: history and late joiners are right, a live screen may miss a fragment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from .._errors import (
    AITransportError,
    EncoderRecoveryFailedError,
    MutableMessagesDisabledError,
    unable_to,
)
from .._wire import EVENT_OUTPUT, H_STATUS, OutboundMessage
from ..codec import UIMessageEncoder, WireOp
from ._outbox import Outbox, Target, TargetNotPublishedError

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


class _Stream:
    """What the writer knows of one stream it created."""

    __slots__ = ("buffer", "extras", "failed", "inflight", "last", "repaired", "serial",
                 "timer")

    def __init__(self, serial: Target) -> None:
        self.serial = serial
        self.inflight: asyncio.Future[None] | None = None  # the stream's append in flight
        self.buffer: list[str] = []  # deltas waiting for it, sent as one append
        self.extras: Mapping[str, Any] = {}
        self.failed = False
        self.repaired = False  # a full-text update was sent
        self.last = float("-inf")  # loop time of the last append sent
        self.timer: asyncio.TimerHandle | None = None


class MessageWriter:
    """Publishes one assistant message's wire operations, in order, through the run's
    :class:`~._outbox.Outbox`: nothing here waits for an acknowledgement.

    Each stream has at most one append in flight: later deltas wait in a buffer and go out
    as one append when it is acknowledged (and, with ``rollup_window``, at most one append
    per window). So a slow link carries fewer, larger appends, and a retried append (the
    backend retries a refused one) can never land after a later fragment. A stream's
    closing append carries what is still buffered and waits for the append in flight, so
    whether the stream needs a repair is known before its terminal status goes out; the
    run's later publishes (``finish``, ``ai-step-end``, ``ai-run-end``) queue behind it.
    A cancel's closing append does not wait (the user is waiting for the stop): an append
    in flight that then fails, or is acknowledged after the close, is repaired after it.

    Args:
        outbox: the run's ordered sender.
        encoder: the message's encoder (its ``headers`` carry the run and step headers).
        next_id: returns an idempotency id for each publish.
        rollup_window: minimum seconds between two appends of one stream (0: no minimum).
    """

    __slots__ = ("_loop", "_next_id", "_outbox", "_streams", "_window", "encoder", "fatal")

    def __init__(self, outbox: Outbox, encoder: UIMessageEncoder, next_id: Callable[[], str],
                 *, rollup_window: float = 0.0) -> None:
        self._outbox = outbox
        self.encoder = encoder
        self._next_id = next_id
        self._window = rollup_window
        self._loop = asyncio.get_running_loop()
        self._streams: dict[str, _Stream] = {}
        #: Set when the channel cannot stream at all (no mutable-messages rule): the run
        #: must fail with one clear error rather than a failure per delta.
        self.fatal: AITransportError | None = None

    def write(self, ops: list[WireOp]) -> None:
        """Submit ``ops`` in order. Raises the fatal error (every time), or the first refusal
        of the run's outbox learnt since it was last taken (once)."""
        for op in ops:
            kind = op.kind
            if kind == "append":
                stream = self._streams.get(op.stream_id)  # type: ignore[arg-type]
                if stream is not None and not stream.failed and self.fatal is None:
                    self._append(stream, op.data, op.extras)
            elif kind == "close":
                self._close(op)
            else:
                future = self._outbox.publish(OutboundMessage(EVENT_OUTPUT, op.data, op.extras,
                                                              self._next_id()))
                if kind == "create":
                    assert op.stream_id is not None
                    self._streams[op.stream_id] = _Stream(future)
        if self.fatal is not None:
            raise self.fatal
        error = self._outbox.take_error()
        if error is not None:
            raise error

    @property
    def buffered(self) -> bool:
        """Whether deltas are waiting for an append in flight or the rollup window."""
        return any(stream.buffer for stream in self._streams.values())

    def send_buffered(self) -> None:
        """Send what waits only for the rollup window now (what waits for an append in
        flight goes when it is acknowledged)."""
        for stream in self._streams.values():
            if stream.timer is not None and stream.inflight is None:
                stream.timer.cancel()
                self._flush_later(stream)

    def cancel_streams(self) -> None:
        """Terminate every open stream with ``status:"cancelled"`` (idempotent)."""
        self.write(self.encoder.cancel_streams())

    # -- appends ----------------------------------------------------------------------------
    def _append(self, stream: _Stream, data: str, extras: Mapping[str, Any]) -> None:
        inflight = stream.inflight
        if inflight is not None and inflight.done():  # acknowledged already: settle it now
            self._appended(stream, inflight)
            if stream.failed:
                return
        if stream.inflight is not None or stream.timer is not None:
            stream.buffer.append(data)
            stream.extras = extras
            return
        wait = stream.last + self._window - self._loop.time() if self._window else 0.0
        if wait > 0:
            stream.buffer.append(data)
            stream.extras = extras
            stream.timer = self._loop.call_later(wait, self._flush_later, stream)
            return
        if self._window:
            stream.last = self._loop.time()
        serial = stream.serial
        if not isinstance(serial, str) and serial.done() and not serial.cancelled() \
                and serial.exception() is None:
            serial = stream.serial = serial.result()  # known now: the hot path takes a str
        future = self._outbox.append_now(serial, data, extras)
        if future is not None:  # None: applied already (the in-memory broker's hot path)
            stream.inflight = future
            future.add_done_callback(lambda future: self._appended(stream, future))

    def _appended(self, stream: _Stream, future: asyncio.Future[None]) -> None:
        if stream.inflight is not future:
            return  # settled already (by _append, which saw it done first)
        stream.inflight = None
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            self._append_failed(stream, exc)
        elif stream.buffer and stream.timer is None:
            self._append(stream, self._take(stream), stream.extras)

    def _flush_later(self, stream: _Stream) -> None:
        stream.timer = None
        if stream.buffer and stream.inflight is None:
            self._append(stream, self._take(stream), stream.extras)

    @staticmethod
    def _take(stream: _Stream) -> str:
        data = "".join(stream.buffer)
        stream.buffer.clear()
        return data

    def _append_failed(self, stream: _Stream, exc: BaseException) -> None:
        if stream.failed:
            return
        stream.failed = True
        stream.buffer.clear()
        if isinstance(exc, MutableMessagesDisabledError):
            if self.fatal is None:
                self.fatal = EncoderRecoveryFailedError(unable_to(
                    "stream output",
                    f"{exc.message} (enable the \"Message annotations, updates, deletes and "
                    f"appends\" rule on the channel namespace)"))
                self.fatal.__cause__ = exc
        elif not isinstance(exc, TargetNotPublishedError):  # that refusal is reported
            logger.warning("append to a stream failed (%s); it will be repaired at its end",
                           exc)

    # -- closing ----------------------------------------------------------------------------
    def _close(self, op: WireOp) -> None:
        stream = self._streams.pop(op.stream_id, None)  # type: ignore[arg-type]
        if stream is None:
            return
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        rest = self._take(stream)
        outbox, channel, full_text = self._outbox, self._outbox.channel, "".join(op.parts or ())

        def failed(future: asyncio.Future[None]) -> BaseException | None:
            return asyncio.CancelledError() if future.cancelled() else future.exception()

        def repaired(future: asyncio.Future[None]) -> None:
            exc = failed(future)
            if exc is not None and not isinstance(exc, TargetNotPublishedError):
                error = EncoderRecoveryFailedError(unable_to(
                    "flush pending appends", f"recovery failed for stream(s): {op.stream_id}"))
                error.__cause__ = exc
                outbox.report(error)

        def repair() -> None:
            """One full-text update with the terminal status (at most one per stream)."""
            if stream.repaired or self.fatal is not None:
                return
            stream.repaired = True
            logger.warning("stream %s lost a fragment; repairing it", op.stream_id)
            outbox.update(stream.serial, full_text, op.extras, report=False).add_done_callback(
                repaired)

        def start(serial: str) -> Coroutine[Any, Any, None] | None:
            # Runs once what it waits for settled: close or repair, decided now.
            if self.fatal is not None:
                return None  # no mutation can succeed; the run fails with the fatal error
            if stream.failed:  # the terminal op is the repair, so live subscribers apply it
                stream.repaired = True
                return channel.update(serial, full_text, op.extras)
            return channel.append(serial, rest, op.extras)

        def closed(future: asyncio.Future[None]) -> None:
            exc = failed(future)
            if exc is None or isinstance(exc, TargetNotPublishedError):
                return
            if isinstance(exc, MutableMessagesDisabledError):
                self._append_failed(stream, exc)
            elif stream.repaired:  # the repair itself failed
                repaired(future)
            else:  # the closing append failed: what followed it is on its way already
                repair()

        inflight = stream.inflight
        if op.extras["ai"]["transport"].get(H_STATUS) != "cancelled" or inflight is None:
            outbox.submit("close stream", start, target=stream.serial, after=inflight,
                          report=False).add_done_callback(closed)
            return
        # A cancel does not wait for the append in flight: the user is waiting for the stop.
        # That append can still fail, or be retried and land after the close; either way
        # its acknowledgement comes back after the close's (one connection acknowledges in
        # order), and one full-text update then puts the history right.
        closed_first = False

        def close_settled() -> None:
            nonlocal closed_first
            closed_first = not inflight.done()

        outbox.submit("close stream", start, target=stream.serial, report=False,
                      on_settled=close_settled).add_done_callback(closed)
        inflight.add_done_callback(
            lambda future: repair() if failed(future) is not None or closed_first else None)

"""A run's channel operations, sent in order without waiting for each acknowledgement.

Owns: pipelining. Every publish, append and update of a run goes through one
:class:`Outbox`, which starts each operation as soon as everything submitted before it has
been started and its target serial is known. Only an operation on a message whose create
has not been acknowledged yet (an append needs its stream's serial) waits, and everything
submitted after it waits behind it, so the order on the wire is the order of submission.
It also bounds the operations in flight (backpressure) and keeps what the broker refused:
every operation has its own future, and the first refusal is kept until a caller takes it.

Why the order holds: a backend starts an operation's I/O in the first step of its coroutine
(the in-memory broker applies it there; ably-python assigns the connection's ``msgSerial``
and writes the frame there, see ``Channel``), the outbox runs that first step at once, in
the caller (as Python 3.12's eager tasks do), and Ably applies one connection's messages in
``msgSerial`` order. So an operation is on its way when the call that submitted it returns.
Over a link with a 15 ms one-way delay this turns the ten round trips of a run's lifecycle
into two (the first output of a step waits for the ``ai-step-start``'s serial, and an
append for its stream's create; see ``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeAlias

from .._eager import resume, start_eagerly
from .._errors import AITransportError, ChannelError, unable_to
from .._wire import OutboundMessage
from ..channels import Channel

__all__ = ["Outbox", "Start", "Target", "TargetNotPublishedError"]

logger = logging.getLogger("langgraph_interrupt.transport")

#: A message's serial, or the future serial of a publish still in flight.
Target: TypeAlias = "str | asyncio.Future[str]"
#: Starts an operation given its target's serial; ``None``: nothing to send after all.
Start: TypeAlias = Callable[[str], "Coroutine[Any, Any, Any] | None"]


class TargetNotPublishedError(ChannelError):
    """An append or update was not sent: the publish that creates its message failed."""


class _Op:
    __slots__ = ("after", "future", "on_settled", "report", "start", "target", "what")

    def __init__(self, what: str, target: Target | None, after: asyncio.Future[Any] | None,
                 start: Start, future: asyncio.Future[Any], report: bool,
                 on_settled: Callable[[], None] | None = None) -> None:
        self.what = what
        self.target = target
        self.after = after
        self.start = start
        self.future = future
        self.report = report
        self.on_settled = on_settled

    def waits_for(self) -> asyncio.Future[Any] | None:
        """What must complete before this operation can start (``None``: nothing)."""
        target = self.target
        if isinstance(target, asyncio.Future) and not target.done():
            return target
        after = self.after
        return after if after is not None and not after.done() else None


def _as_error(what: str, exc: BaseException) -> AITransportError:
    if isinstance(exc, AITransportError):
        return exc
    error = ChannelError(unable_to(what, f"{type(exc).__name__}: {exc}"))
    error.__cause__ = exc
    return error


class Outbox:
    """The ordered, pipelined channel operations of one run.

    Args:
        channel: where to send.
        window: operations in flight before :meth:`room` makes producers wait.
    """

    __slots__ = ("_blocked", "_channel", "_check", "_error", "_loop", "_pending", "_room",
                 "_sent_waiters", "_window")

    def __init__(self, channel: Channel, *, window: int = 256,
                 check_serial: Callable[[str], None] | None = None) -> None:
        self._channel = channel
        self._window = window
        self._check = check_serial
        self._loop = asyncio.get_running_loop()
        self._blocked: deque[_Op] = deque()
        self._pending: set[asyncio.Future[Any]] = set()
        self._room: asyncio.Future[None] | None = None
        self._error: AITransportError | None = None
        self._sent_waiters: dict[_Op, asyncio.Future[None]] = {}

    # -- submitting ---------------------------------------------------------------------------
    def publish(self, message: OutboundMessage) -> asyncio.Future[str]:
        """Publish one message; the future resolves to its serial (``check_serial`` may
        refuse it: an acknowledgement that names someone else's message)."""
        channel, check = self._channel, self._check

        async def start(_: str) -> str:
            serials = await channel.publish([message])
            if not serials:
                raise ChannelError(unable_to("publish", "the channel returned no serial"))
            if check is not None:
                check(serials[0])
            return serials[0]

        return self.submit(f"publish {message.name}", start)

    def publish_together(self, what: str, messages_of: Callable[[str], list[OutboundMessage]],
                         *, target: Target | None = None) -> asyncio.Future[list[str]]:
        """Publish several messages in one atomic publish (one protocol message, one
        acknowledgement), built by ``messages_of(target serial)`` once it is known; the
        future resolves to their serials. Their ids must suit a batch (``batch_ids``)."""
        channel, check = self._channel, self._check

        async def start(serial: str) -> list[str]:
            messages = messages_of(serial)
            serials = await channel.publish(messages)
            if len(serials) != len(messages):
                raise ChannelError(unable_to("publish", "the channel returned "
                                             f"{len(serials)} serials for {len(messages)}"))
            if check is not None:
                for each in serials:
                    check(each)
            return serials

        return self.submit(what, start, target=target)

    def append(self, target: Target, data: str, extras: Mapping[str, Any], *,
               report: bool = True) -> asyncio.Future[None]:
        """Append ``data`` to the message at ``target`` (sent once its serial is known).

        ``report=False``: a refusal only fails the future (the caller repairs it) and is
        not kept for :meth:`take_error`.
        """
        channel = self._channel
        return self.submit("append message", lambda serial: channel.append(serial, data, extras),
                           target=target, report=report)

    def update(self, target: Target, data: Any, extras: Mapping[str, Any], *,
               report: bool = True) -> asyncio.Future[None]:
        """Replace the contents of the message at ``target`` (``report`` as for appends)."""
        channel = self._channel
        return self.submit("update message", lambda serial: channel.update(serial, data, extras),
                           target=target, report=report)

    def append_now(self, target: Target, data: str, extras: Mapping[str, Any]
                   ) -> asyncio.Future[None] | None:
        """:meth:`append` with ``report=False``, on the hot path: an append the channel
        completes within its first step (the in-memory broker) returns ``None``, with no
        future or callback made for it."""
        if self._blocked or type(target) is not str:
            return self.append(target, data, extras, report=False)
        coro = self._channel.append(target, data, extras)
        try:
            yielded = coro.send(None)
        except StopIteration:
            return None
        except Exception as exc:
            failed: asyncio.Future[None] = self._loop.create_future()
            failed.set_exception(_as_error("append message", exc))
            return failed
        future: asyncio.Future[None] = self._loop.create_future()
        self._pending.add(future)
        op = _Op("append message", target, None, _nothing, future, False)
        task: asyncio.Task[Any] = self._loop.create_task(resume(coro, yielded))
        task.add_done_callback(lambda task: self._done(op, task))
        return future

    def report(self, error: AITransportError) -> None:
        """Keep ``error`` for :meth:`take_error`, unless an earlier one is waiting."""
        if self._error is None:
            self._error = error

    def submit(self, what: str, start: Start, *, target: Target | None = None,
               after: asyncio.Future[Any] | None = None, report: bool = True,
               on_settled: Callable[[], None] | None = None) -> asyncio.Future[Any]:
        """Submit an operation: ``start(serial)`` runs once everything submitted before it
        has started, ``target``'s serial is known and ``after`` has completed (whatever its
        outcome); everything submitted later waits behind it.

        Args:
            what: names the operation in errors (``"append message"``).
            start: ``(target serial or "") -> coroutine``, or ``None`` to send nothing.
            report: keep a refusal for :meth:`take_error` (else only the future fails).
            on_settled: called at the moment the operation is acknowledged or refused,
                before any done callback of any future runs (so the order in which
                operations settle can be told).
        """
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.add(future)
        op = _Op(what, target, after, start, future, report, on_settled)
        if self._blocked:
            self._blocked.append(op)
            return future
        waits_for = op.waits_for()
        if waits_for is None:
            self._start(op)
        else:
            self._blocked.append(op)
            waits_for.add_done_callback(self._release)
        return future

    def _release(self, _: object) -> None:
        blocked = self._blocked
        while blocked:
            waits_for = blocked[0].waits_for()
            if waits_for is not None:
                waits_for.add_done_callback(self._release)
                return
            self._start(blocked.popleft())

    def _start(self, op: _Op) -> None:
        if self._sent_waiters:
            waiter = self._sent_waiters.pop(op, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        target = op.target
        serial = ""
        if isinstance(target, asyncio.Future):
            if target.cancelled() or target.exception() is not None:
                cause = None if target.cancelled() else target.exception()
                error = TargetNotPublishedError(unable_to(
                    op.what, "the message it changes was not published"))
                error.__cause__ = cause
                self._settle(op, error)
                return
            serial = target.result()
        elif target is not None:
            serial = target
        try:
            coro = op.start(serial)
        except Exception as exc:
            self._settle(op, _as_error(op.what, exc))
            return
        if coro is None:
            self._settle(op, None)
            return
        sent = start_eagerly(coro)  # the first step, now: it puts the operation on its way
        if sent.done():  # done without suspending (the in-memory broker)
            self._done(op, sent)
        else:
            sent.add_done_callback(lambda sent: self._done(op, sent))

    # -- completing ---------------------------------------------------------------------------
    def _done(self, op: _Op, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            self._settle(op, ChannelError(unable_to(op.what, "the send was cancelled")))
            return
        exc = task.exception()
        if exc is not None:
            self._settle(op, _as_error(op.what, exc))
        else:
            self._settle(op, None, task.result())

    def _settle(self, op: _Op, error: AITransportError | None, result: Any = None) -> None:
        future = op.future
        if op.on_settled is not None:
            try:
                op.on_settled()
            except Exception:
                logger.exception("on_settled of %s raised", op.what)
        if error is not None:
            if op.report and self._error is None:
                self._error = error
            logger.debug("%s refused: %s", op.what, error)
            if not future.done():
                future.set_exception(error)
                future.exception()  # kept in self._error: never "never retrieved"
        elif not future.done():
            future.set_result(result)
        self._pending.discard(future)
        room = self._room
        if room is not None and len(self._pending) < self._window and not room.done():
            room.set_result(None)

    # -- waiting ------------------------------------------------------------------------------
    @property
    def channel(self) -> Channel:
        """Where the operations go."""
        return self._channel

    @property
    def in_flight(self) -> int:
        """Operations submitted and not yet acknowledged or refused."""
        return len(self._pending)

    @property
    def full(self) -> bool:
        """Whether the window of operations in flight is full (:meth:`room` would wait)."""
        return len(self._pending) >= self._window

    async def room(self) -> None:
        """Wait while the window of operations in flight is full (backpressure)."""
        while len(self._pending) >= self._window:
            if self._room is None or self._room.done():
                self._room = self._loop.create_future()
            await self._room

    def sent(self) -> asyncio.Future[None]:
        """A future that resolves once every operation submitted so far is on its way (its
        first step ran: on the wire in submission order), not acknowledged. Another run may
        then publish and be sure to come after these on the channel."""
        future: asyncio.Future[None] = self._loop.create_future()
        if not self._blocked:
            future.set_result(None)
            return future
        last = self._blocked[-1]
        waiter = self._sent_waiters.get(last)
        if waiter is None:
            waiter = self._sent_waiters[last] = future
        return waiter

    async def drain(self) -> None:
        """Wait until every operation submitted so far was acknowledged or refused.

        Never raises for a refusal: :meth:`take_error` tells.
        """
        pending = set(self._pending)
        if pending:
            await asyncio.wait(pending)

    def take_error(self) -> AITransportError | None:
        """The first refusal not yet taken, and forget it."""
        error, self._error = self._error, None
        return error


def _nothing(_: str) -> None:
    return None

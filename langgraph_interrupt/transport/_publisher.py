"""The publishing machinery of one run: its outbox, its steps and its current message.

Owns: the run's one ordered :class:`~._outbox.Outbox` (refusing an acknowledgement that
names a message another participant published: the broker de-duplicated ours as a copy of
theirs), its :class:`~._steps.Steps` (and which ``ai-step-end`` reason a run's outcome
gives the open step), the :class:`~._output.MessageWriter` of the current assistant message
(its headers follow the step it writes in), writing a chunk into it (opening the step
first, waiting only while too many publishes are in flight), and settling: waiting for
every acknowledgement, then raising the first refusal not reported yet. Whether the run may
publish at all, and what, is :mod:`._run`'s.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from .._errors import ChannelError, unable_to
from .._wire import EVENT_RUN_END, OutboundMessage, RunEndReason, StepEndReason, make_extras
from ..codec import Chunk, UIMessageEncoder
from ._outbox import Outbox
from ._output import MessageWriter
from ._steps import Steps

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["STEP_END", "RunPublisher"]

#: The ``ai-step-end`` reason of the step open when a run (or a pipe) ends this way.
STEP_END: dict[RunEndReason, StepEndReason] = {
    "complete": "complete", "cancelled": "cancelled", "error": "failed"}


class RunPublisher:
    """What one run publishes through (see the module notes)."""

    __slots__ = ("_fresh", "_rollup", "_run", "_steer_ids", "outbox", "steps", "writer")

    def __init__(self, run: Run, rollup_window: float) -> None:
        self._run = run
        self._rollup = rollup_window
        self.outbox = Outbox(run.channel, check_serial=self._check_serial)
        self.steps = Steps(self.outbox, run._next_id)
        self.writer: MessageWriter | None = None
        self._fresh = False  # the current message has published nothing yet
        self._steer_ids: tuple[str, ...] = ()  # the steers its next publishes answer

    def _check_serial(self, serial: str) -> None:
        """Refuse an acknowledgement that names a message another participant published: the
        broker de-duplicates ids, so our message was dropped as a copy of theirs."""
        run = self._run
        known, sender = run._session._sender_of(serial)
        if known and sender != run.channel.client_id:
            raise ChannelError(unable_to(
                "publish", f"the channel took it for a duplicate of message {serial!r}, which "
                f"{sender!r} published with the same id; the message was not delivered"))

    def publish(self, name: str, transport: dict[str, str]) -> asyncio.Future[str]:
        """Submit a message of the run's own (no data), under a fresh id."""
        return self.outbox.publish(
            OutboundMessage(name, None, make_extras(transport), self._run._next_id()))

    def new_message(self) -> str:
        """A new writer, for a fresh codec-message-id; returns that id."""
        run = self._run
        cmid = str(uuid.uuid4())
        self.writer = MessageWriter(self.outbox,
                                    UIMessageEncoder(cmid, run._h.output(cmid, self.steps.open)),
                                    run._next_id, rollup_window=self._rollup)
        self._fresh, self._steer_ids = True, ()
        return cmid

    async def write(self, chunk: Chunk) -> None:
        """Submit one chunk into the current message (a new one if none)."""
        if self.writer is None:
            self.new_message()
        if self.steps.open is None:  # right before the first output, unless begun earlier
            await self._open_step()
        steering = self._run._steering
        if self._fresh:
            self._fresh = False
            steering.produced = True
        if steering.has_drained:  # what is published from now on answers those steers
            self._steer_ids = steering.take()
            self._set_headers(self.steps.open)
        outbox = self.outbox
        if outbox.full:
            await outbox.room()
        writer = self.writer
        assert writer is not None
        writer.write(writer.encoder.encode(chunk))

    def begin_step(self) -> None:
        self.steps.begin(self._run._h)

    async def _open_step(self) -> None:
        self._set_headers(await self.steps.opened(self._run._h))

    def _set_headers(self, step: tuple[str, str] | None) -> None:
        if self.writer is not None:
            self.writer.encoder.headers = self._run._h.output(
                self.writer.encoder.codec_message_id, step, self._steer_ids)

    def cancel_streams(self) -> None:
        """Terminate the current message's open streams (``status:"cancelled"``)."""
        if self.writer is not None:
            self.writer.cancel_streams()

    def end_step(self, reason: StepEndReason) -> None:
        """End the open step, if any (in order, even before its start is acknowledged)."""
        self.steps.end(self._run._h, reason)

    def end_run(self, step_reason: StepEndReason, transport: dict[str, str]) -> None:
        """End the open step, if any, and the run (``ai-run-end`` with ``transport``): in
        one publish when a step is open, so the run's end costs one acknowledgement."""
        run_end = OutboundMessage(EVENT_RUN_END, None, make_extras(transport),
                                  self._run._next_id())
        together = self.steps.end(self._run._h, step_reason, then=run_end)
        if together is None:
            self.outbox.publish(run_end)
            return

        def refused(future: asyncio.Future[Any]) -> None:
            # The refusal is reported; the run must still end on the wire, alone (its own
            # id: the batch's were others). Settling waits for it (in_flight).
            if not future.cancelled() and future.exception() is not None:
                self.outbox.publish(run_end)

        together.add_done_callback(refused)

    async def settled(self, *, fatal: bool = True) -> None:
        """Wait for every publish so far; raise the first refusal not yet reported (and,
        with ``fatal``, the writer's fatal error)."""
        outbox, writer = self.outbox, self.writer
        while True:  # an acknowledged append releases the deltas coalesced behind it
            if writer is not None:
                writer.send_buffered()
            await outbox.drain()
            if not outbox.in_flight and (writer is None or not writer.buffered):
                break
        error = outbox.take_error()
        if error is None and fatal and self.writer is not None:
            error = self.writer.fatal
        if error is not None:
            raise error

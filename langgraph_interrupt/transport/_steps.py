"""A run's steps: ``ai-step-start`` / ``ai-step-end`` and the serial outputs carry.

Owns: step ids (``<invocation>-step-<n>``), the step that is begun (its ``ai-step-start``
sent, its serial not back yet) or open (serial known), waiting for that serial once (outputs
carry it as ``step-start-serial``), and ending a step, by its serial, even one whose start is
not acknowledged yet: the end then goes out, in order, as soon as the serial is known.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from .._wire import (
    EVENT_STEP_END,
    EVENT_STEP_START,
    OutboundMessage,
    StepEndReason,
    batch_ids,
    make_extras,
)
from ._headers import RunHeaders
from ._outbox import Outbox

__all__ = ["Steps"]


class Steps:
    """The steps of one run (see the module notes)."""

    __slots__ = ("_begun", "_count", "_next_id", "_outbox", "open")

    def __init__(self, outbox: Outbox, next_id: Callable[[], str]) -> None:
        self._outbox = outbox
        self._next_id = next_id
        self._count = itertools.count()
        self._begun: tuple[str, asyncio.Future[str]] | None = None
        #: The open step, ``(step id, step-start serial)``, or ``None``.
        self.open: tuple[str, str] | None = None

    @property
    def active(self) -> bool:
        """A step is begun or open."""
        return self.open is not None or self._begun is not None

    def begin(self, headers: RunHeaders) -> None:
        """Send ``ai-step-start`` unless a step is begun or open; do not wait for it."""
        if self.active:
            return
        step_id = f"{headers.invocation_id}-step-{next(self._count)}"
        self._begun = (step_id, self._outbox.publish(OutboundMessage(
            EVENT_STEP_START, None, make_extras(headers.step(step_id)), self._next_id())))

    async def opened(self, headers: RunHeaders) -> tuple[str, str] | None:
        """Begin a step if none is, and wait for its serial (the one acknowledgement a step
        waits for). Returns the open step, or ``None`` if it ended meanwhile."""
        if self.open is not None:
            return self.open
        self.begin(headers)
        begun = self._begun
        assert begun is not None
        serial = await asyncio.shield(begun[1])
        if self._begun is begun:  # not ended, nor opened by a concurrent writer, meanwhile
            self._begun = None
            self.open = (begun[0], serial)
        return self.open

    def end(self, headers: RunHeaders, reason: StepEndReason,
            then: OutboundMessage | None = None) -> asyncio.Future[Any] | None:
        """Send ``ai-step-end`` for the begun or open step; the future of its publish, or
        ``None`` (nothing sent) without one.

        ``then``: a message that follows the step end in the same publish (the run's end:
        one protocol message and one acknowledgement instead of two).
        """
        step: tuple[str, str | asyncio.Future[str]] | None = self.open or self._begun
        if step is None:
            return None
        self.open = self._begun = None
        step_id, serial = step
        message_id = self._next_id()

        def message(serial: str) -> OutboundMessage:
            return OutboundMessage(EVENT_STEP_END, None, make_extras(
                headers.step_end(step_id, serial, reason)), message_id)

        if then is not None:
            return self._outbox.publish_together(
                f"publish {EVENT_STEP_END} and {then.name}",
                lambda serial: batch_ids([message(serial), then], message_id), target=serial)
        if isinstance(serial, str):
            return self._outbox.publish(message(serial))
        channel = self._outbox.channel  # begun: the end waits for the start's serial
        return self._outbox.submit(f"publish {EVENT_STEP_END}",
                                   lambda serial: channel.publish([message(serial)]),
                                   target=serial)

"""Finding and reading the input that triggers a run.

Owns: :class:`Trigger` (what the agent reads off the matched ``ai-input``, §1.3 of the
protocol notes) and the bounded history scan that looks for it. The scan also collects
``ai-cancel`` messages newer than the trigger: a cancel published before a per-request
agent attached exists only in history, and the JS agent loses it (trace c3); we honour it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from .._cancel import CancelTarget, read_cancel
from .._errors import ChannelError, HistoryFetchFailedError, unable_to
from .._wire import (
    EVENT_INPUT,
    H_CODEC_MESSAGE_ID,
    H_EVENT_ID,
    H_FORK_OF,
    H_MSG_REGENERATE,
    H_PARENT,
    H_ROLE,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_SUPERSEDES,
    ChannelMessage,
    read_envelope,
)
from ..channels import Channel, HistoryPage

__all__ = ["HistoryScan", "Trigger", "scan_history"]


@dataclass(frozen=True, slots=True)
class Trigger:
    """The triggering input of a run, as read off the channel."""

    event_id: str
    codec_message_id: str
    serial: str
    client_id: str | None
    run_id: str | None
    run_client_id: str
    parent: str | None
    fork_of: str | None
    msg_regenerate: str | None
    role: str
    kind: str | None
    supersedes: str | None
    tool_call_id: str | None = None  # a tool result or approval: the call it answers

    @classmethod
    def read(cls, message: ChannelMessage) -> Trigger | None:
        """The trigger carried by an ``ai-input`` message, or ``None`` if it is not one."""
        if message.name != EVENT_INPUT:
            return None
        envelope = read_envelope(message.extras)
        if envelope is None:
            return None
        h = envelope.transport
        event_id, cmid = h.get(H_EVENT_ID), h.get(H_CODEC_MESSAGE_ID)
        if not event_id or not cmid:
            return None
        return cls(
            event_id=event_id,
            codec_message_id=cmid,
            serial=message.serial,
            client_id=message.client_id if isinstance(message.client_id, str) else None,
            run_id=h.get(H_RUN_ID) or None,
            run_client_id=h.get(H_RUN_CLIENT_ID, ""),
            parent=h.get(H_PARENT) or None,
            fork_of=h.get(H_FORK_OF) or None,
            msg_regenerate=h.get(H_MSG_REGENERATE) or None,
            role=h.get(H_ROLE, "user"),
            kind=envelope.codec.get("kind"),
            supersedes=h.get(H_SUPERSEDES) or None,
            tool_call_id=envelope.codec.get("toolCallId") or None,
        )

    @property
    def is_continuation(self) -> bool:
        """True when the input re-enters an existing run (it carries a ``run-id``)."""
        return self.run_id is not None

    @property
    def output_parent(self) -> str | None:
        """``parent`` stamped on outputs: the input itself, unless it backs no node."""
        return self.parent if self.kind == "regenerate" else self.codec_message_id

    @property
    def run_parent(self) -> str | None:
        """``parent`` stamped on ``ai-run-start``: a fork hangs off the suspended run's input."""
        if self.kind == "regenerate" or (self.role != "user" and not self.is_continuation):
            return self.parent
        return self.codec_message_id

    def cancelled_by(self, target: CancelTarget) -> bool:
        """Whether a cancel names the run this input triggers."""
        if target.input_codec_message_id == self.codec_message_id:
            return True
        return self.run_id is not None and target.run_id == self.run_id


@dataclass(slots=True)
class HistoryScan:
    """What a history scan found."""

    trigger: Trigger | None
    cancels: list[CancelTarget]
    pages: int


def _retryable(exc: BaseException) -> bool:
    # Never a cancellation: a scan cancelled because the live input won must stop, not
    # read history again after a backoff.
    if not isinstance(exc, Exception):
        return False
    return not isinstance(exc, ChannelError) or exc.retryable


async def _fetch(call: object, attempts: int) -> HistoryPage:
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.1, max=0.4),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                return await call()  # type: ignore[operator,no-any-return]
    except Exception as exc:
        raise HistoryFetchFailedError(unable_to("fetch history", exc)) from exc
    raise AssertionError("unreachable")  # pragma: no cover


async def scan_history(
    channel: Channel, event_id: str, *, max_pages: int, page_size: int, attempts: int = 3
) -> HistoryScan:
    """Page history newest-first (up to the attach point) until the trigger is found.

    Every message newer than the trigger has been seen when it is found, so the cancels
    collected on the way are exactly those published after it. Bounded by ``max_pages``;
    each fetch is retried ``attempts`` times with backoff (100, 200, 400 ms) before
    :class:`HistoryFetchFailedError` (104011).
    """
    cancels: list[CancelTarget] = []
    page = await _fetch(lambda: channel.history(limit=page_size, until_attach=True), attempts)
    pages = 1
    while True:
        items: Sequence[ChannelMessage] = page.items
        for message in items:
            trigger = Trigger.read(message)
            if trigger is not None and trigger.event_id == event_id:
                newer = [c for c in cancels if trigger.cancelled_by(c)]
                return HistoryScan(trigger, newer, pages)
            target = read_cancel(message)
            if target is not None:
                cancels.append(target)
        if pages >= max_pages or not page.has_next():
            return HistoryScan(None, [], pages)
        current = page
        page = await _fetch(current.next, attempts)
        pages += 1

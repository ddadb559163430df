"""The ``ai-cancel`` envelope: the single source of truth for its shape.

Owns: building a cancel message and reading its target (§2.8, §6.1 of the protocol notes).
A cancel carries a fresh ``event-id`` plus at least one of ``run-id`` (cancel a known run)
and ``input-codec-message-id`` (cancel the run a given input triggers, possibly before
that run exists).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ._wire import (
    EVENT_CANCEL,
    H_EVENT_ID,
    H_INPUT_CODEC_MESSAGE_ID,
    H_RUN_ID,
    ChannelMessage,
    OutboundMessage,
    make_extras,
    read_envelope,
)

__all__ = ["CancelTarget", "build_cancel", "read_cancel"]


@dataclass(frozen=True, slots=True)
class CancelTarget:
    """Who asked to cancel what. ``client_id`` is the requester's channel client id."""

    run_id: str | None
    input_codec_message_id: str | None
    client_id: str | None
    event_id: str | None = None
    serial: str | None = None


def build_cancel(
    *, run_id: str | None = None, input_codec_message_id: str | None = None
) -> OutboundMessage:
    """Build an ``ai-cancel`` message. At least one target is required."""
    if not run_id and not input_codec_message_id:
        raise ValueError("a cancel needs a run_id or an input_codec_message_id")
    event_id = str(uuid.uuid4())
    transport = {H_EVENT_ID: event_id}
    if run_id:
        transport[H_RUN_ID] = run_id
    if input_codec_message_id:
        transport[H_INPUT_CODEC_MESSAGE_ID] = input_codec_message_id
    return OutboundMessage(EVENT_CANCEL, None, make_extras(transport), id=event_id)


def read_cancel(message: ChannelMessage) -> CancelTarget | None:
    """Read a cancel's target; ``None`` if the message is not a usable cancel."""
    if message.name != EVENT_CANCEL:
        return None
    envelope = read_envelope(message.extras)
    if envelope is None:
        return None
    headers = envelope.transport
    run_id = headers.get(H_RUN_ID) or None
    input_id = headers.get(H_INPUT_CODEC_MESSAGE_ID) or None
    if run_id is None and input_id is None:
        return None
    client_id = message.client_id if isinstance(message.client_id, str) else None
    return CancelTarget(run_id, input_id, client_id, headers.get(H_EVENT_ID), message.serial)

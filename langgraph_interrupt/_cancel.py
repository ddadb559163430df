"""The ``ai-cancel`` envelope: the single source of truth for its shape.

Owns: building a cancel message and reading its target (§2.8, §6.1 of the protocol notes).
A cancel carries a fresh ``event-id`` plus at least one of ``run-id`` (cancel a known run)
and ``input-codec-message-id`` (cancel the run a given input triggers, possibly before
that run exists). This package's client may add a reason name (``x-cancel-reason``) and its
send time (``x-cancel-sent-at``); the official client sends neither, and ignores them.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass

from ._wire import (
    EVENT_CANCEL,
    H_CANCEL_REASON,
    H_CANCEL_SENT_AT,
    H_EVENT_ID,
    H_INPUT_CODEC_MESSAGE_ID,
    H_RUN_ID,
    MAX_REASON_LENGTH,
    ChannelMessage,
    OutboundMessage,
    check_reason_name,
    make_extras,
    read_envelope,
)

__all__ = ["CancelTarget", "build_cancel", "read_cancel"]

logger = logging.getLogger("langgraph_interrupt.transport")


@dataclass(frozen=True, slots=True)
class CancelTarget:
    """Who asked to cancel what, and why.

    ``client_id`` is the requester's channel client id (the channel's, not a header's);
    ``reason`` the reason name it gave, if usable; ``sent_at`` its clock when it asked
    (Unix ms); ``received_at`` ours when the cancel was read.
    """

    run_id: str | None
    input_codec_message_id: str | None
    client_id: str | None
    event_id: str | None = None
    serial: str | None = None
    reason: str | None = None
    sent_at: float | None = None
    received_at: float | None = None


def build_cancel(
    *, run_id: str | None = None, input_codec_message_id: str | None = None,
    reason: str | None = None, sent_at: float | None = None
) -> OutboundMessage:
    """Build an ``ai-cancel`` message. At least one target is required.

    ``reason`` (a reason name) and ``sent_at`` (Unix ms; default now) are written only
    when a reason is given.
    """
    if not run_id and not input_codec_message_id:
        raise ValueError("a cancel needs a run_id or an input_codec_message_id")
    if reason is not None and check_reason_name(reason) is None:
        raise ValueError(f"a cancel reason is 1 to {MAX_REASON_LENGTH} printable "
                         f"characters, got {reason!r:.80}")
    event_id = str(uuid.uuid4())
    transport = {H_EVENT_ID: event_id}
    if run_id:
        transport[H_RUN_ID] = run_id
    if input_codec_message_id:
        transport[H_INPUT_CODEC_MESSAGE_ID] = input_codec_message_id
    if reason is not None:
        transport[H_CANCEL_REASON] = reason
        stamp = time.time() * 1000 if sent_at is None else sent_at
        transport[H_CANCEL_SENT_AT] = f"{stamp:.3f}"
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
    reason = headers.get(H_CANCEL_REASON)
    if reason is not None and check_reason_name(reason) is None:
        # The cancel still counts (a Stop must work); only its reason is not believed.
        logger.warning("cancel %s from %r: ignoring a reason that is not 1 to %d printable "
                       "characters (%d characters)", message.serial, client_id,
                       MAX_REASON_LENGTH, len(reason))
        reason = None
    return CancelTarget(run_id, input_id, client_id, headers.get(H_EVENT_ID), message.serial,
                        reason, _timestamp(headers.get(H_CANCEL_SENT_AT)), time.time() * 1000)


def _timestamp(text: str | None) -> float | None:
    """A Unix-ms header value, or ``None`` if absent or not a plausible finite number."""
    if text is None or len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None

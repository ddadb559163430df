"""What a client sends, as messages: a user message and a tool result, ready to publish.

Owns: the wire form of a client's input, as the JS ``ClientSession`` writes it. A user
message (text, a ``UIMessage`` dict or its parts) is one ``ai-input`` per part, to publish
as one atomic batch, with a fresh ``event-id`` and ``codec-message-id``, the run it
re-enters if any, this client's id and the parent given (§1.1 of the protocol notes); an
empty message is one empty text part. A tool result answers a suspended run's tool call
under its ``run-id`` (a continuation, §7a). Choosing the default parent, publishing and the
:class:`~._send_handle.SendHandle` are the client's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import InvalidArgumentError
from .._wire import (
    EVENT_INPUT,
    H_CODEC_MESSAGE_ID,
    H_DISCRETE,
    H_EVENT_ID,
    H_PARENT,
    H_ROLE,
    H_RUN_CLIENT_ID,
    H_RUN_ID,
    H_STREAM,
    OutboundMessage,
    make_extras,
)

__all__ = ["tool_result", "user_message"]

Content = str | Mapping[str, Any] | Sequence[Mapping[str, Any]]


def user_message(content: Content, *, run_id: str | None, parent: str | None,
                 message_id: str | None, client_id: str | None
                 ) -> tuple[str, str, list[OutboundMessage]]:
    """A user message's ``ai-input`` messages, with its ``event-id`` and
    ``codec-message-id``: ``(event_id, codec_message_id, messages)``.

    ``client_id`` is the sender's (the wildcard ``*`` names nobody); ``parent`` is written
    as given (``None`` or empty: none).

    Raises:
        InvalidArgumentError: a part of a type that cannot be sent.
    """
    if isinstance(content, str):
        parts: Sequence[Mapping[str, Any]] = [{"type": "text", "text": content}]
    elif isinstance(content, Mapping):
        parts = content.get("parts") or []
        message_id = message_id or content.get("id")
    else:
        parts = content
    event_id, cmid = str(uuid.uuid4()), str(uuid.uuid4())
    message_id = message_id or str(uuid.uuid4())
    transport = {H_ROLE: "user", H_CODEC_MESSAGE_ID: cmid}
    if run_id:
        transport[H_RUN_ID] = run_id
    if client_id and client_id != "*":
        transport[H_RUN_CLIENT_ID] = client_id
    if parent:
        transport[H_PARENT] = parent
    transport.update({H_EVENT_ID: event_id, H_STREAM: "false", H_DISCRETE: "true"})
    messages = [OutboundMessage(EVENT_INPUT, data, make_extras(transport, codec))
                for data, codec in (_encode_part(p, message_id) for p in parts)]
    if not messages:  # an empty message is sent as one empty text part (§1.1)
        data, codec = _encode_part({"type": "text", "text": ""}, message_id)
        messages = [OutboundMessage(EVENT_INPUT, data, make_extras(transport, codec))]
    return event_id, cmid, messages


def tool_result(*, run_id: str, codec_message_id: str, tool_call_id: str, output: Any,
                error: str | None, client_id: str | None) -> tuple[str, OutboundMessage]:
    """The ``ai-input`` answering the tool call ``tool_call_id`` of the assistant message
    ``codec_message_id`` in the suspended run ``run_id``, with its ``event-id``:
    ``(event_id, message)``. A result with an ``error`` reports a failed tool."""
    event_id = str(uuid.uuid4())
    transport = {H_ROLE: "user", H_CODEC_MESSAGE_ID: codec_message_id, H_RUN_ID: run_id}
    if client_id and client_id != "*":
        transport[H_RUN_CLIENT_ID] = client_id
    transport.update({H_PARENT: codec_message_id, H_EVENT_ID: event_id, H_STREAM: "false"})
    if error is None:
        codec, data = {"kind": "tool-result", "toolCallId": tool_call_id}, {"output": output}
    else:
        codec, data = ({"kind": "tool-result-error", "toolCallId": tool_call_id},
                       {"message": error})
    return event_id, OutboundMessage(EVENT_INPUT, data, make_extras(transport, codec))


def _encode_part(part: Mapping[str, Any], message_id: str) -> tuple[Any, dict[str, str]]:
    """One part's data and codec headers."""
    kind = part.get("type")
    codec = {"kind": "user-message", "messageId": message_id}
    if kind == "text":
        codec["partType"] = "text"
        return str(part.get("text", "")), codec
    if kind == "file":
        codec.update(partType="file", mediaType=str(part.get("mediaType", "")))
        return str(part.get("url", "")), codec
    if isinstance(kind, str) and kind.startswith("data-"):
        codec["partType"] = kind
        if isinstance(part.get("id"), str):
            codec["id"] = part["id"]
        return part.get("data"), codec
    raise InvalidArgumentError(f"cannot send a part of type {kind!r}")

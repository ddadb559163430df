"""Decoder: fold wire messages back into Vercel ``UIMessage`` objects.

Owns: the decode side of the Vercel codec (§4.3 and §5.2 of the protocol notes): stream
trackers keyed by serial with a version guard, first-contact updates, the projection of
discrete chunks onto message parts, and client inputs (user messages, tool results,
approvals). Live deliveries and history pages go through the same ``apply``; duplicates
are dropped by version serial, so folding history after live (or twice) is harmless.

Messages are plain dicts shaped like the JS client's view
(``{"id", "role", "parts": [...], "metadata"?}``). Malformed wire messages are skipped with
a debug log; ``apply`` never raises on channel input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._wire import (
    EVENT_INPUT,
    EVENT_OUTPUT,
    H_CODEC_MESSAGE_ID,
    H_ROLE,
    H_RUN_ID,
    H_STATUS,
    H_STREAM,
    ChannelMessage,
    Envelope,
    read_envelope,
)

__all__ = ["DecodedMessage", "UIMessageDecoder"]

logger = logging.getLogger("langgraph_interrupt.codec")

UIMessage = dict[str, Any]
_MAX_HELD = 1000  # tool results waiting for their target message; bounded against floods


@dataclass(slots=True)
class _Tracker:
    message_id: str
    part: dict[str, Any]
    key: str  # "text" for text/reasoning, "raw" for tool input
    chunks: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """A folded message with the wire identity the view groups it by."""

    codec_message_id: str
    run_id: str | None
    message: UIMessage


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class UIMessageDecoder:
    """Folds ``ai-input`` and ``ai-output`` wire messages into ``UIMessage`` dicts."""

    def __init__(self) -> None:
        self._messages: dict[str, UIMessage] = {}
        self._runs: dict[str, str | None] = {}
        self._versions: dict[str, str] = {}
        self._trackers: dict[str, _Tracker] = {}
        self._dirty: set[str] = set()  # serials of trackers whose part text is stale
        self._tools: dict[str, dict[str, Any]] = {}
        self._held: list[tuple[str, str, Mapping[str, str], Any]] = []

    # -- reading ------------------------------------------------------------------------------
    def messages(self) -> list[UIMessage]:
        """The folded messages in order of first appearance (copies; safe to keep)."""
        return [entry.message for entry in self.entries()]

    def entries(self) -> list[DecodedMessage]:
        """Like :meth:`messages`, with each message's codec-message-id and run id."""
        self._materialise()
        return [
            DecodedMessage(cmid, self._runs.get(cmid), _copy_message(message))
            for cmid, message in self._messages.items()
        ]

    def message(self, codec_message_id: str) -> UIMessage | None:
        self._materialise()
        message = self._messages.get(codec_message_id)
        return None if message is None else _copy_message(message)

    # -- folding ------------------------------------------------------------------------------
    def apply(self, message: ChannelMessage) -> bool:
        """Fold one wire message. Returns False when it was skipped (foreign, stale, bad)."""
        try:
            return self._apply(message)
        except Exception:  # a hostile message must never break the fold
            logger.debug("skipping undecodable message %r", message.serial, exc_info=True)
            return False

    def _apply(self, message: ChannelMessage) -> bool:
        serial = message.serial
        version = message.version_serial or serial
        if not isinstance(serial, str):
            return False
        previous = self._versions.get(serial)
        if previous is not None and version <= previous:
            return False  # a re-delivery or an older version than what we applied
        if message.action == "message.create" and message.name not in (EVENT_INPUT, EVENT_OUTPUT):
            return False
        envelope = read_envelope(message.extras)
        if envelope is None:
            return False
        cmid = envelope.transport.get(H_CODEC_MESSAGE_ID)
        if not cmid:
            return False
        if message.action != "message.create" or envelope.transport.get(H_STREAM) == "true":
            if message.name == EVENT_INPUT:
                return False
            applied = self._apply_stream(message, envelope, cmid)
        elif message.name == EVENT_INPUT:
            applied = self._apply_input(message, envelope, cmid)
        else:
            applied = self._apply_output(message, envelope, cmid)
        if applied:
            self._versions[serial] = version
            if self._held and message.name != EVENT_INPUT:
                self._retry_held()  # a tool result that arrived before its tool call
        return applied

    def _ensure(self, cmid: str, envelope: Envelope, role: str) -> UIMessage:
        message = self._messages.get(cmid)
        if message is None:
            message = {"id": cmid, "role": role, "parts": []}
            self._messages[cmid] = message
            self._runs[cmid] = envelope.transport.get(H_RUN_ID)
        return message

    # -- streams --------------------------------------------------------------------------------
    def _apply_stream(self, wire: ChannelMessage, envelope: Envelope, cmid: str) -> bool:
        codec = envelope.codec
        status = envelope.transport.get(H_STATUS)
        data = wire.data if isinstance(wire.data, str) else ""
        tracker = self._trackers.get(wire.serial)
        if wire.action == "message.create":
            if tracker is not None:
                return False
            tracker = self._open_tracker(wire.serial, cmid, envelope)
            if tracker is None:
                return False
            if data:
                tracker.chunks.append(data)
        elif tracker is None:  # first contact mid-stream: the update carries everything
            tracker = self._open_tracker(wire.serial, cmid, envelope)
            if tracker is None:
                return False
            tracker.chunks.append(data)
        elif tracker.closed:
            return False
        elif wire.action == "message.append":
            if data:
                tracker.chunks.append(data)
        elif wire.action == "message.update":
            # An update carries the full contents (a recovery or a replacement).
            tracker.chunks = [data]
        else:  # delete
            tracker.closed = True
        self._dirty.add(wire.serial)
        if status == "complete":
            self._close(tracker, codec)
        elif status == "cancelled":
            tracker.closed = True
        return True

    def _open_tracker(self, serial: str, cmid: str, envelope: Envelope) -> _Tracker | None:
        codec = envelope.codec
        kind = codec.get("kind")
        message = self._ensure(cmid, envelope, "assistant")
        if kind in ("text", "reasoning"):
            part: dict[str, Any] = {"type": kind, "text": ""}
            key = "text"
        elif kind == "tool-input":
            call_id, name = codec.get("toolCallId"), codec.get("toolName")
            if not call_id or not name:
                return None
            part = self._tool_part(call_id, name, codec.get("dynamic") == "true")
            part["state"] = "input-streaming"
            key = "raw"
            if part not in message["parts"]:
                message["parts"].append(part)
            tracker = _Tracker(cmid, part, key)
            self._trackers[serial] = tracker
            return tracker
        else:
            return None
        message["parts"].append(part)
        tracker = _Tracker(cmid, part, key)
        self._trackers[serial] = tracker
        return tracker

    def _close(self, tracker: _Tracker, codec: Mapping[str, str]) -> None:
        tracker.closed = True
        if tracker.key == "raw":
            tracker.part["input"] = _parse_json(tracker.text) if tracker.text else {}
            tracker.part["state"] = "input-available"

    def _materialise(self) -> None:
        for serial in self._dirty:
            tracker = self._trackers[serial]
            if tracker.key == "text":
                tracker.part["text"] = tracker.text
            elif not tracker.closed:
                tracker.part["input"] = _parse_json(tracker.text) if tracker.text else None
        self._dirty.clear()

    # -- discrete outputs -------------------------------------------------------------------------
    def _apply_output(self, wire: ChannelMessage, envelope: Envelope, cmid: str) -> bool:
        codec = envelope.codec
        kind = codec.get("kind", "")
        data = wire.data
        if kind in ("error", "abort", "finish-step"):
            self._ensure(cmid, envelope, "assistant")
            return True
        message = self._ensure(cmid, envelope, "assistant")
        parts: list[dict[str, Any]] = message["parts"]
        if kind == "start":
            metadata = codec.get("messageMetadata")
            if metadata:
                message["metadata"] = _parse_json(metadata)
        elif kind == "start-step":
            parts.append({"type": "step-start"})
        elif kind in ("finish", "message-metadata"):
            metadata = codec.get("messageMetadata")
            if metadata:
                message["metadata"] = _parse_json(metadata)
        elif kind == "tool-input":
            call_id, name = codec.get("toolCallId"), codec.get("toolName")
            if not call_id or not name:
                return False
            part = self._tool_part(call_id, name, codec.get("dynamic") == "true")
            part.update(state="input-available", input=data)
            if part not in parts:
                parts.append(part)
        elif kind == "tool-input-error":
            call_id, name = codec.get("toolCallId"), codec.get("toolName")
            if not call_id or not name or not isinstance(data, Mapping):
                return False
            part = self._tool_part(call_id, name, codec.get("dynamic") == "true")
            part.update(state="output-error", input=data.get("input"),
                        errorText=str(data.get("errorText", "")))
            if part not in parts:
                parts.append(part)
        elif kind in ("tool-output-available", "tool-output-error", "tool-approval-request",
                      "tool-output-denied"):
            part = self._tools.get(codec.get("toolCallId", ""))
            if part is None:
                return False
            if kind == "tool-output-available":
                part["state"] = "output-available"
                part["output"] = data.get("output") if isinstance(data, Mapping) else data
                if codec.get("preliminary") == "true":
                    part["preliminary"] = True
                else:
                    part.pop("preliminary", None)
            elif kind == "tool-output-error":
                part["state"] = "output-error"
                part["errorText"] = str(data.get("errorText", "")) if isinstance(
                    data, Mapping) else str(data)
            elif kind == "tool-approval-request":
                part["state"] = "approval-requested"
                part["approval"] = {"id": codec.get("approvalId", "")}
            else:
                part["state"] = "output-denied"
        elif kind == "file":
            parts.append({"type": "file", "mediaType": codec.get("mediaType", ""), "url": data})
        elif kind == "source-url":
            part = {"type": "source-url", "sourceId": codec.get("sourceId", ""), "url": data}
            if "title" in codec:
                part["title"] = codec["title"]
            parts.append(part)
        elif kind == "source-document":
            part = {"type": "source-document", "sourceId": codec.get("sourceId", ""),
                    "mediaType": codec.get("mediaType", ""), "title": codec.get("title", "")}
            if "filename" in codec:
                part["filename"] = codec["filename"]
            parts.append(part)
        elif kind.startswith("data-"):
            if codec.get("transient") == "true":
                return True
            self._data_part(parts, kind, codec.get("id"), data)
        else:
            return False
        return True

    def _tool_part(self, call_id: str, name: str, dynamic: bool) -> dict[str, Any]:
        part = self._tools.get(call_id)
        if part is None:
            part = ({"type": "dynamic-tool", "toolName": name} if dynamic
                    else {"type": f"tool-{name}"})
            part["toolCallId"] = call_id
            self._tools[call_id] = part
        return part

    @staticmethod
    def _data_part(parts: list[dict[str, Any]], kind: str, part_id: str | None, data: Any) -> None:
        part: dict[str, Any] = {"type": kind}
        if part_id is not None:
            part["id"] = part_id
            for i, existing in enumerate(parts):
                if existing.get("type") == kind and existing.get("id") == part_id:
                    part["data"] = data
                    parts[i] = part
                    return
        part["data"] = data
        parts.append(part)

    # -- client inputs ------------------------------------------------------------------------
    def _apply_input(self, wire: ChannelMessage, envelope: Envelope, cmid: str) -> bool:
        codec = envelope.codec
        kind = codec.get("kind")
        data = wire.data
        if kind == "user-message":
            role = envelope.transport.get(H_ROLE, "user")
            message = self._ensure(cmid, envelope, role if role in ("user", "system") else "user")
            message_id = codec.get("messageId")
            if message_id:
                message["id"] = message_id
            part_type = codec.get("partType", "text")
            if part_type == "text":
                message["parts"].append({"text": data if isinstance(data, str) else "",
                                         "type": "text"})
            elif part_type == "file":
                message["parts"].append({"mediaType": codec.get("mediaType", ""), "url": data,
                                         "type": "file"})
            elif part_type.startswith("data-"):
                self._data_part(message["parts"], part_type, codec.get("id"), data)
            else:
                return False
            return True
        if kind in ("tool-result", "tool-result-error", "tool-approval-response"):
            call_id = codec.get("toolCallId")
            if not call_id:
                return False
            if not self._resolve_tool_input(cmid, call_id, codec, data):
                if len(self._held) >= _MAX_HELD:
                    self._held.pop(0)
                self._held.append((cmid, call_id, dict(codec), data))
            return True
        return kind == "regenerate"

    def _resolve_tool_input(self, cmid: str, call_id: str, codec: Mapping[str, str],
                            data: Any) -> bool:
        part = self._tools.get(call_id)
        if part is None:
            return False
        kind = codec.get("kind")
        if kind == "tool-result":
            part["state"] = "output-available"
            part["output"] = data.get("output") if isinstance(data, Mapping) else data
        elif kind == "tool-result-error":
            part["state"] = "output-error"
            part["errorText"] = str(data.get("message", "")) if isinstance(data, Mapping) else ""
        elif codec.get("approved") == "true":
            part["state"] = "approval-responded"
            part["approval"] = {**part.get("approval", {}), "approved": True}
        else:
            part["state"] = "output-denied"
            approval = {**part.get("approval", {}), "approved": False}
            if "reason" in codec:
                approval["reason"] = codec["reason"]
            part["approval"] = approval
        return True

    def _retry_held(self) -> None:
        held, self._held = self._held, []
        for cmid, call_id, codec, data in held:
            if not self._resolve_tool_input(cmid, call_id, codec, data):
                self._held.append((cmid, call_id, codec, data))


def _copy_message(message: UIMessage) -> UIMessage:
    copy = dict(message)
    copy["parts"] = [dict(part) for part in message["parts"]]
    return copy

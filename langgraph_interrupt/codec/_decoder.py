"""Decoder: fold wire messages back into Vercel ``UIMessage`` objects.

Owns: the decode side of the Vercel codec (§4.3 and §5.2 of the protocol notes): stream
trackers keyed by serial with a version guard, first-contact updates, the projection of
discrete chunks onto message parts, and client inputs (user messages, tool results,
approvals). Live deliveries and history pages go through the same ``apply``; duplicates
are dropped by version serial, so folding history after live (or twice) is harmless.

Messages are plain dicts shaped like the JS client's view
(``{"id", "role", "parts": [...], "metadata"?}``). Malformed wire messages are skipped with
a debug log; ``apply`` never raises on channel input.

Where the JS client is knowingly weak this fold is stricter or more forgiving, never
different on well-formed traffic: a full-contents ``message.update`` is applied even after
the stream's terminal append (the JS client drops it, §11.4, so a repaired stream stays
broken on screen), and a tool-input stream completing after its tool already has a result
does not move the part back to ``input-available``.
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
_ACTIONS = frozenset({"message.create", "message.append", "message.update", "message.delete"})
#: The fields of a tool part that survive every state transition (the JS ``toolBase``).
_TOOL_IDENTITY = ("type", "toolCallId", "toolName", "title", "providerExecuted")
_TOOL_OUTPUTS = frozenset({"tool-output-available", "tool-output-error",
                           "tool-approval-request", "tool-output-denied"})
_CONTENT = frozenset({"start", "start-step", "tool-input", "tool-input-error", "file",
                      "source-url", "source-document"})
_MISSING: Any = object()  # "no value": the key is left out of the part (JS ``undefined``)


@dataclass(slots=True)
class _Tracker:
    message_id: str
    part: dict[str, Any]
    key: str  # "text" for text/reasoning, "raw" for tool input
    chunks: list[str] = field(default_factory=list)
    status: str | None = None  # None while streaming, then "complete" or "cancelled"

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
    """Parsed JSON, or ``_MISSING`` (a partial tool input mid-stream)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nesting deeper than the interpreter allows
        return _MISSING


def _parse_json_or_string(text: str) -> Any:
    """Parsed JSON, the raw text when it is not JSON, ``_MISSING`` when empty."""
    if not text:
        return _MISSING
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts and lists; anything else is shared).

    Iterative, so data nested as deep as a JSON parser accepts (which ``copy.deepcopy``,
    using several stack frames per level, cannot copy) never makes reading fail.
    """
    if not isinstance(value, dict | list):
        return value
    top: Any = {} if isinstance(value, dict) else []
    copies: dict[int, Any] = {id(value): top}
    stack: list[tuple[Any, Any]] = [(value, top)]
    while stack:
        source, target = stack.pop()
        for key, item in (source.items() if isinstance(source, dict) else enumerate(source)):
            child = item
            if isinstance(item, dict | list):
                child = copies.get(id(item))
                if child is None:
                    child = copies[id(item)] = {} if isinstance(item, dict) else []
                    stack.append((item, child))
            if isinstance(target, dict):
                target[key] = child
            else:
                target.append(child)
    return top


def _set(part: dict[str, Any], key: str, value: Any) -> None:
    if value is _MISSING:
        part.pop(key, None)
    else:
        part[key] = value


def _transition(part: dict[str, Any], state: str, fields: Mapping[str, Any] | None = None,
                *, keep_input: bool = True) -> None:
    """Replace a tool part in place by its next state: identity (and input) survive, the
    previous state's fields (output, errorText, approval, preliminary) do not."""
    kept = {key: part[key] for key in _TOOL_IDENTITY if key in part}
    if keep_input and "input" in part:
        kept["input"] = part["input"]
    part.clear()
    part.update(kept)
    part["state"] = state
    if fields:
        for key, value in fields.items():
            _set(part, key, value)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


class UIMessageDecoder:
    """Folds ``ai-input`` and ``ai-output`` wire messages into ``UIMessage`` dicts."""

    def __init__(self) -> None:
        self._messages: dict[str, UIMessage] = {}
        self._runs: dict[str, str | None] = {}
        self._versions: dict[str, str] = {}
        self._trackers: dict[str, _Tracker] = {}
        self._dirty: set[str] = set()  # serials of trackers whose part is stale
        self._tools: dict[str, tuple[str, dict[str, Any]]] = {}  # toolCallId -> (cmid, part)
        self._held: list[tuple[str, str, dict[str, str], Any]] = []
        # One-entry cache keyed by identity: a backend that shares the headers object across
        # the appends of a stream (the in-memory broker does) is validated once per stream.
        self._last_extras: object = None
        self._last_envelope: Envelope | None = None

    # -- reading ------------------------------------------------------------------------------
    def messages(self) -> list[UIMessage]:
        """The folded messages in order of first appearance (deep copies; safe to keep)."""
        return [entry.message for entry in self.entries()]

    def entries(self) -> list[DecodedMessage]:
        """Like :meth:`messages`, with each message's codec-message-id and run id."""
        self._materialise()
        return [
            DecodedMessage(cmid, self._runs.get(cmid), _copy(message))
            for cmid, message in self._messages.items()
        ]

    def message(self, codec_message_id: str) -> UIMessage | None:
        self._materialise()
        message = self._messages.get(codec_message_id)
        return None if message is None else _copy(message)

    # -- folding ------------------------------------------------------------------------------
    def apply(self, message: ChannelMessage) -> bool:
        """Fold one wire message. Returns False when it was skipped (foreign, stale, bad)."""
        try:
            return self._apply(message)
        except Exception:  # a hostile message must never break the fold
            logger.debug("skipping undecodable message %r", message.serial, exc_info=True)
            return False

    def _apply(self, message: ChannelMessage) -> bool:
        # Typed as str, but channel input is untrusted: check what actually arrived.
        serial: object = message.serial
        version: object = message.version_serial or serial
        action, name = message.action, message.name
        if not isinstance(serial, str) or not isinstance(version, str) or not serial:
            return False
        if action not in _ACTIONS:
            return False
        previous = self._versions.get(serial)
        if previous is not None and version <= previous:
            return False  # a re-delivery or an older version than what we applied
        if action == "message.create":
            if name not in (EVENT_INPUT, EVENT_OUTPUT):
                return False
        elif name and name != EVENT_OUTPUT:  # appends carry no name; history items do
            return False
        extras = message.extras
        if extras is not None and extras is self._last_extras:
            envelope = self._last_envelope  # the same headers as the previous append
        else:
            envelope = read_envelope(extras)
            self._last_extras, self._last_envelope = extras, envelope
        if envelope is None:
            return False
        cmid = envelope.transport.get(H_CODEC_MESSAGE_ID)
        if not cmid:
            return False
        if action != "message.create" or envelope.transport.get(H_STREAM) == "true":
            if name == EVENT_INPUT:
                return False
            applied = self._apply_stream(message, envelope, cmid)
        else:
            self._materialise()  # tool transitions below must see current streamed inputs
            if name == EVENT_INPUT:
                applied = self._apply_input(message, envelope, cmid)
            else:
                applied = self._apply_output(message, envelope, cmid)
        if applied:
            self._versions[serial] = version
            if self._held and name != EVENT_INPUT:
                self._retry_held()  # a tool result that arrived before its tool call
        return applied

    def _ensure(self, cmid: str, envelope: Envelope, role: str = "assistant") -> UIMessage:
        message = self._messages.get(cmid)
        if message is None:
            message = {"id": cmid, "role": role, "parts": []}
            self._messages[cmid] = message
            self._runs[cmid] = envelope.transport.get(H_RUN_ID)
        return message

    # -- streams --------------------------------------------------------------------------------
    def _apply_stream(self, wire: ChannelMessage, envelope: Envelope, cmid: str) -> bool:
        status = envelope.transport.get(H_STATUS)
        data = wire.data if isinstance(wire.data, str) else ""
        action = wire.action
        tracker = self._trackers.get(wire.serial)
        if tracker is None:
            if action == "message.delete":
                return False
            # A create, or first contact mid-stream or from history (an update, or an append
            # out of contract): the message carries everything streamed so far.
            tracker = self._open_tracker(wire.serial, cmid, envelope)
            if tracker is None:
                return False
            if data:
                tracker.chunks.append(data)
        elif action == "message.create":
            return False  # the same serial created twice
        elif action == "message.update":
            # Full contents (a recovery or a replacement); authoritative even after the close.
            tracker.chunks = [data] if data else []
        elif tracker.status is not None:
            return False
        elif action == "message.append":
            if data:
                tracker.chunks.append(data)
        else:  # delete
            tracker.status = "cancelled"
        self._dirty.add(wire.serial)
        if tracker.status is None:
            if status == "complete":
                tracker.status = "complete"
                if tracker.key == "raw" and tracker.part.get("state") == "input-streaming":
                    tracker.part["state"] = "input-available"
            elif status == "cancelled":
                tracker.status = "cancelled"
        return True

    def _open_tracker(self, serial: str, cmid: str, envelope: Envelope) -> _Tracker | None:
        codec = envelope.codec
        kind = codec.get("kind")
        if kind in ("text", "reasoning"):
            message = self._ensure(cmid, envelope)
            part: dict[str, Any] = {"type": kind, "text": ""}
            message["parts"].append(part)
            key = "text"
        elif kind == "tool-input":
            if not codec.get("toolCallId") or not codec.get("toolName"):
                return None
            part = self._tool_part(self._ensure(cmid, envelope), cmid, codec)
            _transition(part, "input-streaming", keep_input=False)
            key = "raw"
        else:
            return None
        tracker = _Tracker(cmid, part, key)
        self._trackers[serial] = tracker
        return tracker

    def _materialise(self) -> None:
        for serial in self._dirty:
            tracker = self._trackers[serial]
            if tracker.key == "text":
                tracker.part["text"] = tracker.text
            elif tracker.status == "complete":
                _set(tracker.part, "input", _parse_json_or_string(tracker.text))
            elif tracker.part.get("state") == "input-streaming":
                _set(tracker.part, "input", _parse_json(tracker.text))
        self._dirty.clear()

    # -- discrete outputs -------------------------------------------------------------------------
    def _apply_output(self, wire: ChannelMessage, envelope: Envelope, cmid: str) -> bool:
        codec = envelope.codec
        kind = codec.get("kind", "")
        data = wire.data
        if kind in ("error", "abort", "finish-step"):
            return True  # no projection change (§5.2)
        if kind in ("finish", "message-metadata"):
            existing = self._messages.get(cmid)
            metadata = codec.get("messageMetadata")
            if existing is not None and metadata is not None:
                existing["metadata"] = _parse_json_or_string(metadata)
            return True
        if kind in _TOOL_OUTPUTS:
            # Applied by toolCallId wherever the call is: after an approval the output comes
            # under a new codec-message-id. Never creates a message of its own.
            return self._tool_output(kind, codec, data)
        if kind.startswith("data-") and len(kind) > 5:
            if codec.get("transient") == "true":
                return True
            message = self._ensure(cmid, envelope)
            self._data_part(message["parts"], kind, codec.get("id"), data)
            return True
        if kind not in _CONTENT:
            return False
        if kind.startswith("tool-") and (not codec.get("toolCallId") or not codec.get("toolName")):
            return False
        message = self._ensure(cmid, envelope)
        parts: list[dict[str, Any]] = message["parts"]
        if kind == "start":
            if codec.get("messageId"):
                message["id"] = codec["messageId"]
            if "messageMetadata" in codec:
                message["metadata"] = _parse_json_or_string(codec["messageMetadata"])
        elif kind == "start-step":
            parts.append({"type": "step-start"})
        elif kind == "tool-input":
            part = self._tool_part(message, cmid, codec)
            _transition(part, "input-available", {"input": data}, keep_input=False)
        elif kind == "tool-input-error":
            part = self._tool_part(message, cmid, codec)
            fields = {"input": _MISSING, "errorText": ""}
            if isinstance(data, Mapping):
                fields = {"input": data.get("input", _MISSING),
                          "errorText": _string(data.get("errorText"))}
            _transition(part, "output-error", fields, keep_input=False)
        elif kind == "file":
            parts.append({"type": "file", "mediaType": codec.get("mediaType", ""),
                          "url": _string(data)})
        elif kind == "source-url":
            part = {"type": "source-url", "sourceId": codec.get("sourceId", ""),
                    "url": _string(data)}
            if "title" in codec:
                part["title"] = codec["title"]
            parts.append(part)
        else:  # source-document
            part = {"type": "source-document", "sourceId": codec.get("sourceId", ""),
                    "mediaType": codec.get("mediaType", ""), "title": codec.get("title", "")}
            if "filename" in codec:
                part["filename"] = codec["filename"]
            parts.append(part)
        return True

    def _tool_output(self, kind: str, codec: Mapping[str, str], data: Any) -> bool:
        found = self._tools.get(codec.get("toolCallId", ""))
        if found is None:
            return False  # no tool call to attach to (yet): a later re-delivery may apply
        part = found[1]
        if kind == "tool-output-available":
            fields = {"output": data.get("output", _MISSING) if isinstance(data, Mapping)
                      else _MISSING}
            if "preliminary" in codec:
                fields["preliminary"] = codec["preliminary"] == "true"
            _transition(part, "output-available", fields)
        elif kind == "tool-output-error":
            error = data.get("errorText") if isinstance(data, Mapping) else data
            _transition(part, "output-error", {"errorText": _string(error)})
        elif kind == "tool-approval-request":
            _transition(part, "approval-requested",
                        {"approval": {"id": codec.get("approvalId", "")}})
        else:  # tool-output-denied
            approval = {**part.get("approval", {}), "approved": False}
            approval.setdefault("id", "")
            _transition(part, "output-denied", {"approval": approval})
        return True

    def _tool_part(self, message: UIMessage, cmid: str, codec: Mapping[str, str]
                   ) -> dict[str, Any]:
        """The message's part for the codec's tool call, created (and indexed) if needed."""
        call_id, name = codec["toolCallId"], codec["toolName"]
        known = self._tools.get(call_id)
        if known is not None and known[0] == cmid:
            return known[1]
        part: dict[str, Any] = ({"type": "dynamic-tool", "toolName": name}
                                if codec.get("dynamic") == "true" else {"type": f"tool-{name}"})
        part["toolCallId"] = call_id
        if "title" in codec:
            part["title"] = codec["title"]
        if "providerExecuted" in codec:
            part["providerExecuted"] = codec["providerExecuted"] == "true"
        message["parts"].append(part)
        self._tools[call_id] = (cmid, part)
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
            part_type = codec.get("partType", "text")
            is_data = part_type.startswith("data-") and len(part_type) > 5
            if part_type not in ("text", "file") and not is_data:
                return False
            role = envelope.transport.get(H_ROLE, "user")
            message = self._ensure(cmid, envelope, role if role in ("user", "system") else "user")
            if codec.get("messageId"):
                message["id"] = codec["messageId"]
            parts = message["parts"]
            if part_type == "text":
                parts.append({"text": _string(data), "type": "text"})
            elif part_type == "file":
                parts.append({"mediaType": codec.get("mediaType", ""), "url": _string(data),
                              "type": "file"})
            else:
                self._data_part(parts, part_type, codec.get("id"), data)
            return True
        if kind in ("tool-result", "tool-result-error", "tool-approval-response"):
            call_id = codec.get("toolCallId")
            if not call_id:
                return False
            if not self._resolve_tool_input(call_id, codec, data):
                if len(self._held) >= _MAX_HELD:
                    self._held.pop(0)
                self._held.append((cmid, call_id, dict(codec), data))
            return True
        return kind == "regenerate"

    def _resolve_tool_input(self, call_id: str, codec: Mapping[str, str], data: Any) -> bool:
        found = self._tools.get(call_id)
        if found is None:
            return False
        part = found[1]
        kind = codec.get("kind")
        if kind == "tool-result":
            output = data.get("output", _MISSING) if isinstance(data, Mapping) else _MISSING
            _transition(part, "output-available", {"output": output})
            return True
        if kind == "tool-result-error":
            error = data.get("message") if isinstance(data, Mapping) else None
            _transition(part, "output-error", {"errorText": _string(error)})
            return True
        approval: dict[str, Any] = {"id": part.get("approval", {}).get("id", "")}
        approved = codec.get("approved") == "true"
        approval["approved"] = approved
        if "reason" in codec:
            approval["reason"] = codec["reason"]
        _transition(part, "approval-responded" if approved else "output-denied",
                    {"approval": approval})
        return True

    def _retry_held(self) -> None:
        held, self._held = self._held, []
        for cmid, call_id, codec, data in held:
            if not self._resolve_tool_input(call_id, codec, data):
                self._held.append((cmid, call_id, codec, data))

"""Encoder: Vercel UI-message stream chunks to wire operations, for one assistant message.

Owns: the encode table of §5.1 of the protocol notes and the streamed-part life cycle of
§4.1 (create, appends with every header repeated, terminal append). It is pure: it turns a
chunk into :class:`WireOp` values and keeps the state of open streams; the transport does
the I/O. Chunks are the JSON objects the Vercel AI SDK's ``toUIMessageStream()`` yields,
as Python dicts (``{"type": "text-delta", "id": "t0", "delta": "Hel"}``).

Unknown chunk types raise :class:`UnsupportedChunkError` (40003) rather than being dropped:
an unknown type means producer and codec disagree about the protocol, and silently losing
output would hide that. Malformed chunks of a known type raise
:class:`InvalidArgumentError` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import InvalidArgumentError, UnsupportedChunkError
from .._wire import H_STATUS, H_STREAM, H_STREAM_ID, StreamStatus, make_extras

__all__ = ["CHUNK_TYPES", "Chunk", "UIMessageEncoder", "WireOp"]

Chunk = Mapping[str, Any]
OpKind = Literal["publish", "create", "append", "close"]

#: The stream kind each delta or end chunk type must address.
_STREAM_KIND: dict[str, str] = {
    "text-delta": "text", "text-end": "text",
    "reasoning-delta": "reasoning", "reasoning-end": "reasoning",
    "tool-input-delta": "tool-input",
}


@dataclass(slots=True)
class WireOp:
    """One channel operation produced by the encoder.

    ``publish``: a discrete ``ai-output``; ``create``: the publish that opens a stream (the
    transport keeps its serial); ``append``: a delta; ``close``: the terminal append.
    """

    kind: OpKind
    data: Any
    extras: dict[str, Any]
    stream_id: str | None = None
    parts: list[str] | None = None  # on ``close``: the stream's fragments, for a repair


@dataclass(slots=True)
class _Stream:
    stream_id: str
    kind: str  # codec kind: text | reasoning | tool-input
    codec: dict[str, str]
    streaming_extras: dict[str, Any]  # built once, shared by every delta (the hot path)
    parts: list[str] = field(default_factory=list)


def _opt_str(chunk: Chunk, key: str, out: dict[str, str], wire_key: str | None = None) -> None:
    value = chunk.get(key)
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidArgumentError(f"chunk {chunk.get('type')!r}: {key} must be a string")
    out[wire_key or key] = value


def _opt_bool(chunk: Chunk, key: str, out: dict[str, str]) -> None:
    value = chunk.get(key)
    if isinstance(value, bool):  # written only when a real boolean (§5.1)
        out[key] = "true" if value else "false"


def _to_json(chunk: Chunk, key: str, value: Any) -> str:
    # Compact and unescaped like JS ``JSON.stringify``; NaN and infinities are not JSON.
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(
            f"chunk {chunk.get('type')!r}: {key} is not JSON-serialisable ({exc})"
        ) from exc


def _opt_json(chunk: Chunk, key: str, out: dict[str, str]) -> None:
    value = chunk.get(key)
    if value is not None:
        out[key] = _to_json(chunk, key, value)


def _json_data(chunk: Chunk, key: str, value: Any) -> Any:
    """``value`` if it can travel as message data (JSON); otherwise InvalidArgumentError.

    Checked here so a bad payload fails with the field's name instead of deep inside the
    channel backend, after earlier outputs of the same message were already published.
    """
    if value is not None and not isinstance(value, str | bool | int):
        _to_json(chunk, key, value)
    return value


def _req_str(chunk: Chunk, key: str) -> str:
    value = chunk.get(key)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"chunk {chunk.get('type')!r}: {key} must be a string")
    return value


class UIMessageEncoder:
    """Encodes the chunks of one assistant ``UIMessage`` (one ``codec-message-id``).

    Args:
        codec_message_id: the message id every output of this encoder carries.
        headers: the transport headers every output carries (role, run, step, ...). The
            transport updates this mapping when a step opens; streams keep the headers they
            were created with, so every append repeats them exactly (Ably replaces extras
            wholesale on append).
    """

    def __init__(self, codec_message_id: str, headers: dict[str, str]) -> None:
        self.codec_message_id = codec_message_id
        self.headers = headers
        self._streams: dict[str, _Stream] = {}
        self._handlers: dict[str, Callable[[Chunk], list[WireOp]]] = {
            "start": self._start,
            "start-step": self._bare,
            "finish-step": self._bare,
            "finish": self._finish,
            "message-metadata": self._message_metadata,
            "error": self._error,
            "abort": self._abort,
            "text-start": self._text_start,
            "text-delta": self._delta,
            "text-end": self._end,
            "reasoning-start": self._text_start,
            "reasoning-delta": self._delta,
            "reasoning-end": self._end,
            "tool-input-start": self._tool_input_start,
            "tool-input-delta": self._delta,
            "tool-input-available": self._tool_input_available,
            "tool-input-error": self._tool_input_error,
            "tool-output-available": self._tool_output_available,
            "tool-output-error": self._tool_output_error,
            "tool-approval-request": self._tool_approval_request,
            "tool-output-denied": self._tool_output_denied,
            "file": self._file,
            "source-url": self._source_url,
            "source-document": self._source_document,
        }

    @property
    def open_streams(self) -> list[str]:
        """Stream ids created and not yet closed, in creation order."""
        return list(self._streams)

    def encode(self, chunk: Chunk) -> list[WireOp]:
        """The wire operations for one chunk.

        Raises:
            UnsupportedChunkError: the chunk type has no wire mapping.
            InvalidArgumentError: a known chunk type with a missing or mistyped field.
        """
        if not isinstance(chunk, Mapping):
            raise InvalidArgumentError(f"a chunk must be a mapping, got {type(chunk).__name__}")
        kind = chunk.get("type")
        if not isinstance(kind, str):
            raise InvalidArgumentError("a chunk needs a string 'type'")
        handler = self._handlers.get(kind)
        if handler is not None:
            return handler(chunk)
        if kind.startswith("data-") and len(kind) > 5:
            return self._data(chunk)
        raise UnsupportedChunkError(
            f"unable to encode chunk; unsupported chunk type {kind!r} (supported: "
            f"{', '.join(sorted(CHUNK_TYPES))}, data-*)"
        )

    def cancel_streams(self) -> list[WireOp]:
        """Terminal ``status:"cancelled"`` appends for every open stream. Idempotent."""
        ops = [self._close_op(s, "cancelled", s.codec) for s in self._streams.values()]
        self._streams.clear()
        return ops

    # -- helpers ----------------------------------------------------------------------------
    def _discrete(self, codec: dict[str, str], data: Any = "", *, ephemeral: bool = False
                  ) -> list[WireOp]:
        transport = {**self.headers, H_STREAM: "false"}
        return [WireOp("publish", data, make_extras(transport, codec, ephemeral=ephemeral))]

    def _open(self, stream_id: str, kind: str, codec: dict[str, str]) -> list[WireOp]:
        if stream_id in self._streams:
            raise InvalidArgumentError(f"stream {stream_id!r} is already open")
        transport = {**self.headers, H_STREAM: "true", H_STATUS: "streaming",
                     H_STREAM_ID: stream_id}
        extras = make_extras(transport, codec)
        self._streams[stream_id] = _Stream(stream_id, kind, codec, extras)
        return [WireOp("create", "", extras, stream_id)]

    def _close_op(self, stream: _Stream, status: StreamStatus, codec: dict[str, str]) -> WireOp:
        transport = dict(stream.streaming_extras["ai"]["transport"])
        transport[H_STATUS] = status
        return WireOp("close", "", make_extras(transport, codec), stream.stream_id, stream.parts)

    def _stream_for(self, chunk: Chunk, key: str, kind: str) -> _Stream:
        stream_id = _req_str(chunk, key)
        stream = self._streams.get(stream_id)
        if stream is None:
            raise InvalidArgumentError(
                f"chunk {chunk.get('type')!r} for stream {stream_id!r}, which is not open"
            )
        if stream.kind != kind:  # text and tool-call ids share one namespace of stream ids
            raise InvalidArgumentError(
                f"chunk {chunk.get('type')!r} for stream {stream_id!r}, which is a "
                f"{stream.kind} stream"
            )
        return stream

    # -- handlers ---------------------------------------------------------------------------
    def _start(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "start"}
        _opt_str(chunk, "messageId", codec)
        codec.setdefault("messageId", self.codec_message_id)
        _opt_json(chunk, "messageMetadata", codec)
        return self._discrete(codec)

    def _bare(self, chunk: Chunk) -> list[WireOp]:
        return self._discrete({"kind": chunk["type"]})

    def _finish(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "finish"}
        _opt_str(chunk, "finishReason", codec)
        _opt_json(chunk, "messageMetadata", codec)
        return self._discrete(codec)

    def _message_metadata(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "message-metadata"}
        _opt_json(chunk, "messageMetadata", codec)
        return self._discrete(codec)

    def _error(self, chunk: Chunk) -> list[WireOp]:
        return self._discrete({"kind": "error"}, _req_str(chunk, "errorText"))

    def _abort(self, chunk: Chunk) -> list[WireOp]:
        reason = chunk.get("reason")
        return self._discrete({"kind": "abort"}, reason if isinstance(reason, str) else "")

    def _text_start(self, chunk: Chunk) -> list[WireOp]:
        kind = "text" if chunk["type"] == "text-start" else "reasoning"
        stream_id = _req_str(chunk, "id")
        codec = {"kind": kind, "id": stream_id}
        _opt_json(chunk, "providerMetadata", codec)
        return self._open(stream_id, kind, codec)

    def _delta(self, chunk: Chunk) -> list[WireOp]:
        kind = _STREAM_KIND[chunk["type"]]
        if kind == "tool-input":
            stream = self._stream_for(chunk, "toolCallId", kind)
            delta = _req_str(chunk, "inputTextDelta")
        else:
            stream = self._stream_for(chunk, "id", kind)
            delta = _req_str(chunk, "delta")
        stream.parts.append(delta)
        return [WireOp("append", delta, stream.streaming_extras, stream.stream_id)]

    def _end(self, chunk: Chunk) -> list[WireOp]:
        stream = self._stream_for(chunk, "id", _STREAM_KIND[chunk["type"]])
        codec = dict(stream.codec)
        _opt_json(chunk, "providerMetadata", codec)
        del self._streams[stream.stream_id]
        return [self._close_op(stream, "complete", codec)]

    def _tool_fields(self, chunk: Chunk, kind: str) -> dict[str, str]:
        codec = {"kind": kind, "toolCallId": _req_str(chunk, "toolCallId"),
                 "toolName": _req_str(chunk, "toolName")}
        _opt_bool(chunk, "dynamic", codec)
        _opt_str(chunk, "title", codec)
        _opt_bool(chunk, "providerExecuted", codec)
        _opt_json(chunk, "providerMetadata", codec)
        return codec

    def _tool_input_start(self, chunk: Chunk) -> list[WireOp]:
        codec = self._tool_fields(chunk, "tool-input")
        return self._open(codec["toolCallId"], "tool-input", codec)

    def _tool_input_available(self, chunk: Chunk) -> list[WireOp]:
        call_id = _req_str(chunk, "toolCallId")
        if call_id not in self._streams:  # no streamed input: one discrete message (§5.1)
            codec = self._tool_fields(chunk, "tool-input")
            return self._discrete(codec, _json_data(chunk, "input", chunk.get("input")))
        stream = self._stream_for(chunk, "toolCallId", "tool-input")
        codec = dict(stream.codec)
        codec["toolName"] = _req_str(chunk, "toolName")
        _opt_json(chunk, "providerMetadata", codec)
        del self._streams[call_id]
        return [self._close_op(stream, "complete", codec)]

    def _tool_input_error(self, chunk: Chunk) -> list[WireOp]:
        codec = self._tool_fields(chunk, "tool-input-error")
        data = {"errorText": _req_str(chunk, "errorText"),
                "input": _json_data(chunk, "input", chunk.get("input"))}
        ops: list[WireOp] = []
        stream = self._streams.get(codec["toolCallId"])
        if stream is not None and stream.kind == "tool-input":
            # The input stream will never complete: terminate it on the wire (a stream left
            # "streaming" would stay open forever for every reader) before the error.
            del self._streams[stream.stream_id]
            ops.append(self._close_op(stream, "cancelled", stream.codec))
        ops.extend(self._discrete(codec, data))
        return ops

    def _tool_output_available(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "tool-output-available", "toolCallId": _req_str(chunk, "toolCallId")}
        _opt_bool(chunk, "dynamic", codec)
        _opt_bool(chunk, "providerExecuted", codec)
        _opt_bool(chunk, "preliminary", codec)
        return self._discrete(codec, {"output": _json_data(chunk, "output", chunk.get("output"))})

    def _tool_output_error(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "tool-output-error", "toolCallId": _req_str(chunk, "toolCallId")}
        _opt_bool(chunk, "dynamic", codec)
        _opt_bool(chunk, "providerExecuted", codec)
        return self._discrete(codec, {"errorText": _req_str(chunk, "errorText")})

    def _tool_approval_request(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "tool-approval-request", "toolCallId": _req_str(chunk, "toolCallId"),
                 "approvalId": _req_str(chunk, "approvalId")}
        return self._discrete(codec)

    def _tool_output_denied(self, chunk: Chunk) -> list[WireOp]:
        return self._discrete({"kind": "tool-output-denied",
                               "toolCallId": _req_str(chunk, "toolCallId")})

    def _file(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "file", "mediaType": _req_str(chunk, "mediaType")}
        _opt_json(chunk, "providerMetadata", codec)
        return self._discrete(codec, _req_str(chunk, "url"))

    def _source_url(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "source-url", "sourceId": _req_str(chunk, "sourceId")}
        _opt_str(chunk, "title", codec)
        _opt_json(chunk, "providerMetadata", codec)
        return self._discrete(codec, _req_str(chunk, "url"))

    def _source_document(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": "source-document", "sourceId": _req_str(chunk, "sourceId"),
                 "mediaType": _req_str(chunk, "mediaType"), "title": _req_str(chunk, "title")}
        _opt_str(chunk, "filename", codec)
        _opt_json(chunk, "providerMetadata", codec)
        return self._discrete(codec)

    def _data(self, chunk: Chunk) -> list[WireOp]:
        codec = {"kind": chunk["type"]}
        _opt_str(chunk, "id", codec)
        _opt_bool(chunk, "transient", codec)
        data = _json_data(chunk, "data", chunk.get("data"))
        return self._discrete(codec, data, ephemeral=chunk.get("transient") is True)


#: Every chunk type the encoder maps, besides ``data-*``.
CHUNK_TYPES: frozenset[str] = frozenset(UIMessageEncoder("", {})._handlers)

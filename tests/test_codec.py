"""The Vercel UI-message codec: encoder (§5.1, §4.1), decoder (§4.3, §5.2), golden traces.

References are to ``ai-transport-protocol.md`` in the shared research folder; the golden
traces beside it were produced by the real JS SDK 0.8.0 (see their README). Tests that need
the traces skip when the folder is absent (``LANGGRAPH_INTERRUPT_TRACES`` overrides it).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langgraph_interrupt._errors import ErrorCode, InvalidArgumentError, UnsupportedChunkError
from langgraph_interrupt._wire import ChannelMessage, make_extras
from langgraph_interrupt.codec import CHUNK_TYPES, UIMessageDecoder, UIMessageEncoder, WireOp

CMID = "00000000-0000-4000-8000-000000000005"
HEADERS = {
    "role": "assistant",
    "codec-message-id": CMID,
    "run-id": "run-1",
    "run-client-id": "user-abc",
    "invocation-id": "inv-1",
    "input-codec-message-id": "user-cmid",
}
STREAM_HEADERS = ("stream", "status", "stream-id")

TRACES = Path(os.environ.get(
    "LANGGRAPH_INTERRUPT_TRACES",
    Path(__file__).resolve().parents[2] / "shared" / "research" / "traces",
))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def encoder(headers: Mapping[str, str] = HEADERS) -> UIMessageEncoder:
    return UIMessageEncoder(CMID, dict(headers))


def encode_one(chunk: Mapping[str, Any], enc: UIMessageEncoder | None = None) -> WireOp:
    ops = (enc or encoder()).encode(chunk)
    assert len(ops) == 1
    return ops[0]


def transport(op: WireOp) -> dict[str, str]:
    return dict(op.extras["ai"]["transport"])


def codec(op: WireOp) -> dict[str, str]:
    return dict(op.extras["ai"].get("codec", {}))


def discrete_transport(headers: Mapping[str, str] = HEADERS) -> dict[str, str]:
    return {**headers, "stream": "false"}


def stream_transport(stream_id: str, status: str,
                     headers: Mapping[str, str] = HEADERS) -> dict[str, str]:
    return {**headers, "stream": "true", "status": status, "stream-id": stream_id}


class Channel:
    """Simulates what subscribers receive for encoder ops (§4.3): creates and discrete
    publishes as ``message.create``; appends and closes as ``message.append`` with no name
    and a new, lexicographically larger version serial. Also builds the history view."""

    def __init__(self) -> None:
        self._counter = 0
        self._serials: dict[str, str] = {}
        self.live: list[ChannelMessage] = []

    def _next(self) -> str:
        self._counter += 1
        return f"{1760000000000 + self._counter:014d}-{self._counter:06d}@sim:0"

    def deliver(self, ops: Iterable[WireOp]) -> list[ChannelMessage]:
        out = []
        for op in ops:
            if op.kind in ("publish", "create"):
                serial = self._next()
                if op.kind == "create":
                    assert op.stream_id is not None
                    self._serials[op.stream_id] = serial
                message = ChannelMessage("ai-output", op.data, op.extras, serial,
                                         "message.create", serial)
            else:
                assert op.stream_id is not None
                message = ChannelMessage(None, op.data, op.extras, self._serials[op.stream_id],
                                         "message.append", self._next())
            out.append(message)
        self.live.extend(out)
        return out

    def history(self) -> list[ChannelMessage]:
        """One aggregated latest version per serial, oldest first (§1.3 history)."""
        by_serial: dict[str, list[ChannelMessage]] = {}
        for message in self.live:
            by_serial.setdefault(message.serial, []).append(message)
        items = []
        for versions in by_serial.values():
            first, last = versions[0], versions[-1]
            if len(versions) == 1:
                items.append(first)
                continue
            data = "".join(v.data for v in versions)
            items.append(ChannelMessage(first.name, data, last.extras, first.serial,
                                        "message.update", last.version_serial))
        return items


def fold(messages: Iterable[ChannelMessage], decoder: UIMessageDecoder | None = None
         ) -> UIMessageDecoder:
    decoder = decoder or UIMessageDecoder()
    for message in messages:
        decoder.apply(message)
    return decoder


def roundtrip(chunks: Iterable[Mapping[str, Any]], *, cancel: bool = False) -> UIMessageDecoder:
    enc, channel = encoder(), Channel()
    for chunk in chunks:
        channel.deliver(enc.encode(chunk))
    if cancel:
        channel.deliver(enc.cancel_streams())
    return fold(channel.live)


def assistant(decoder: UIMessageDecoder) -> dict[str, Any]:
    message = decoder.message(CMID)
    assert message is not None
    return message


def wire(name: str | None, data: Any, transport_headers: Mapping[str, str],
         codec_headers: Mapping[str, str] | None, serial: str, *,
         action: str = "message.create", version: str | None = None,
         ephemeral: bool = False) -> ChannelMessage:
    extras = make_extras(dict(transport_headers), dict(codec_headers or {}), ephemeral=ephemeral)
    return ChannelMessage(name, data, extras, serial, action,  # type: ignore[arg-type]
                          version or serial)


def out(data: Any, codec_headers: Mapping[str, str], serial: str, *, cmid: str = CMID,
        **kwargs: Any) -> ChannelMessage:
    headers = {**HEADERS, "codec-message-id": cmid, "stream": "false"}
    return wire("ai-output", data, headers, codec_headers, serial, **kwargs)


def stream_msg(data: str, codec_headers: Mapping[str, str], serial: str, status: str, *,
               action: str = "message.create", version: str | None = None,
               cmid: str = CMID, stream_id: str = "t0") -> ChannelMessage:
    headers = {**HEADERS, "codec-message-id": cmid, "stream": "true", "status": status,
               "stream-id": stream_id}
    name = "ai-output" if action in ("message.create", "message.update") else None
    return wire(name, data, headers, codec_headers, serial, action=action, version=version)


def client_input(data: Any, codec_headers: Mapping[str, str], serial: str, *, cmid: str,
                 role: str = "user", **extra: str) -> ChannelMessage:
    headers = {"role": role, "codec-message-id": cmid, "event-id": f"ev-{serial}",
               "stream": "false", **extra}
    return wire("ai-input", data, headers, codec_headers, serial)


TEXT = {"kind": "text", "id": "t0"}
TOOL = {"kind": "tool-input", "toolCallId": "call-1", "toolName": "getWeather"}


# ---------------------------------------------------------------------------------------------
# golden traces
# ---------------------------------------------------------------------------------------------
def trace(name: str) -> list[dict[str, Any]]:
    path = TRACES / name
    if not path.exists():
        pytest.fail(f"golden trace {path} is missing: the shared research folder must sit "
                    "next to the repository (../shared)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def to_channel_message(message: Mapping[str, Any]) -> ChannelMessage:
    return ChannelMessage(
        name=message.get("name"), data=message.get("data"), extras=message.get("extras"),
        serial=message["serial"], action=message["action"],
        version_serial=message["version"]["serial"], client_id=message.get("clientId"),
    )


def deliveries(lines: list[dict[str, Any]], to: str) -> list[ChannelMessage]:
    return [to_channel_message(line["message"]) for line in lines
            if line["kind"] == "deliver" and line["to"] == to]


def final_view(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    views = [line for line in lines if line["kind"] == "view"]
    return [entry["message"] for entry in views[-1]["messages"]]


def agent_output_ops(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["kind"] == "op" and line["actor"] == "agent"
            and (line["op"] == "appendMessage"
                 or (line["op"] == "publish" and line["name"] == "ai-output"))]


def encoder_headers(op_line: Mapping[str, Any]) -> dict[str, str]:
    headers = op_line["extras"]["ai"]["transport"]
    return {k: v for k, v in headers.items() if k not in STREAM_HEADERS}


def encode_trace_chunks(lines: list[dict[str, Any]]) -> list[WireOp]:
    """Every chunk of the trace through an encoder; a new encoder (headers from the next
    agent output on the wire) at each ``start``, as the agent opens one message per pipe."""
    ops: list[WireOp] = []
    enc: UIMessageEncoder | None = None
    for i, line in enumerate(lines):
        if line["kind"] != "chunk":
            continue
        chunk = line["chunk"]
        if chunk["type"] == "start":
            first_output = agent_output_ops(lines[i:])[0]
            headers = encoder_headers(first_output)
            enc = UIMessageEncoder(headers["codec-message-id"], headers)
        assert enc is not None
        ops.extend(enc.encode(chunk))
    return ops


def assert_ops_match(ops: list[WireOp], expected: list[dict[str, Any]]) -> None:
    assert [(op.kind in ("publish", "create")) for op in ops] == [
        line["op"] == "publish" for line in expected]
    for op, line in zip(ops, expected, strict=True):
        assert op.data == line["data"], line["seq"]
        assert op.extras == line["extras"], line["seq"]
        assert "ephemeral" not in op.extras
        if line["op"] == "appendMessage":
            assert op.kind == ("close" if line["extras"]["ai"]["transport"]["status"] != "streaming"
                               else "append"), line["seq"]


class TestGoldenTraces:
    @pytest.mark.parametrize("name", ["a-simple-text.jsonl", "b-server-tool.jsonl",
                                      "d-stream-error.jsonl",
                                      "e1-client-tool-suspend-resume.jsonl"])
    def test_encoding_the_traced_chunks_reproduces_the_js_agents_output_operations(
            self, name: str) -> None:
        lines = trace(name)
        assert_ops_match(encode_trace_chunks(lines), agent_output_ops(lines))

    def test_a_cancelled_trace_is_reproduced_by_a_late_data_part_and_cancel_streams(
            self) -> None:
        lines = trace("c1-cancel-by-run-id.jsonl")
        chunks = [line["chunk"] for line in lines if line["kind"] == "chunk"]
        assert chunks[-1]["type"] == "abort"  # produced after the cancel, never published
        expected = agent_output_ops(lines)
        enc = UIMessageEncoder(CMID, encoder_headers(expected[0]))
        ops = [op for chunk in chunks[:-1] for op in enc.encode(chunk)]
        ops += enc.encode({"type": "data-cancel-note", "data": {"note": "stopped by user"}})
        ops += enc.cancel_streams()
        assert_ops_match(ops, expected)

    @pytest.mark.parametrize("name", ["a-simple-text.jsonl", "b-server-tool.jsonl",
                                      "c1-cancel-by-run-id.jsonl", "d-stream-error.jsonl",
                                      "e1-client-tool-suspend-resume.jsonl"])
    def test_folding_the_clients_deliveries_gives_the_js_clients_final_view(
            self, name: str) -> None:
        lines = trace(name)
        assert fold(deliveries(lines, "client")).messages() == final_view(lines)

    @pytest.mark.parametrize("name", ["a-simple-text.jsonl", "b-server-tool.jsonl",
                                      "c1-cancel-by-run-id.jsonl", "d-stream-error.jsonl",
                                      "e1-client-tool-suspend-resume.jsonl"])
    def test_folding_every_delivery_twice_changes_nothing(self, name: str) -> None:
        lines = trace(name)
        decoder = fold(deliveries(lines, "client"))
        assert not any(decoder.apply(m) for m in deliveries(lines, "client"))
        assert decoder.messages() == final_view(lines)

    def test_a_late_joiner_folding_aggregated_history_then_live_gets_the_final_view(
            self) -> None:
        lines = trace("e1-client-tool-suspend-resume.jsonl")
        history = [line for line in lines if line["kind"] == "history"][-1]
        seq = history["seq"]
        items = [to_channel_message(item) for item in reversed(history["items"])]
        assert {m.action for m in items} == {"message.create", "message.update"}
        live = deliveries([line for line in lines if line["seq"] > seq], "agent")
        assert fold(items + live).messages() == final_view(lines)

    def test_history_folded_after_live_is_dropped_by_version_serial(self) -> None:
        lines = trace("e1-client-tool-suspend-resume.jsonl")
        decoder = fold(deliveries(lines, "client"))
        history = [line for line in lines if line["kind"] == "history"][-1]
        items = [to_channel_message(item) for item in reversed(history["items"])]
        assert not any(decoder.apply(m) for m in items)
        assert decoder.messages() == final_view(lines)


# ---------------------------------------------------------------------------------------------
# encoder: the §5.1 table
# ---------------------------------------------------------------------------------------------
class TestEncoderDiscreteChunks:
    @pytest.mark.parametrize(("chunk", "codec_headers", "data"), [
        ({"type": "start"}, {"kind": "start", "messageId": CMID}, ""),
        ({"type": "start", "messageId": "m-1", "messageMetadata": {"a": [1, "é"]}},
         {"kind": "start", "messageId": "m-1", "messageMetadata": '{"a":[1,"é"]}'}, ""),
        ({"type": "start-step"}, {"kind": "start-step"}, ""),
        ({"type": "finish-step"}, {"kind": "finish-step"}, ""),
        ({"type": "finish"}, {"kind": "finish"}, ""),
        ({"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"t": 1}},
         {"kind": "finish", "finishReason": "tool-calls", "messageMetadata": '{"t":1}'}, ""),
        ({"type": "message-metadata", "messageMetadata": {"x": None}},
         {"kind": "message-metadata", "messageMetadata": '{"x":null}'}, ""),
        ({"type": "error", "errorText": "boom"}, {"kind": "error"}, "boom"),
        ({"type": "abort"}, {"kind": "abort"}, ""),
        ({"type": "abort", "reason": "user"}, {"kind": "abort"}, "user"),
        ({"type": "tool-input-error", "toolCallId": "c1", "toolName": "w", "errorText": "bad",
          "input": {"q": 1}, "dynamic": True, "title": "Weather", "providerExecuted": False,
          "providerMetadata": {"p": {"k": 1}}},
         {"kind": "tool-input-error", "toolCallId": "c1", "toolName": "w", "dynamic": "true",
          "title": "Weather", "providerExecuted": "false", "providerMetadata": '{"p":{"k":1}}'},
         {"errorText": "bad", "input": {"q": 1}}),
        ({"type": "tool-output-available", "toolCallId": "c1", "output": {"t": 21}},
         {"kind": "tool-output-available", "toolCallId": "c1"}, {"output": {"t": 21}}),
        ({"type": "tool-output-available", "toolCallId": "c1", "output": [1], "dynamic": False,
          "providerExecuted": True, "preliminary": True},
         {"kind": "tool-output-available", "toolCallId": "c1", "dynamic": "false",
          "providerExecuted": "true", "preliminary": "true"}, {"output": [1]}),
        ({"type": "tool-output-error", "toolCallId": "c1", "errorText": "e", "dynamic": True,
          "providerExecuted": False},
         {"kind": "tool-output-error", "toolCallId": "c1", "dynamic": "true",
          "providerExecuted": "false"}, {"errorText": "e"}),
        ({"type": "tool-approval-request", "toolCallId": "c1", "approvalId": "ap-1"},
         {"kind": "tool-approval-request", "toolCallId": "c1", "approvalId": "ap-1"}, ""),
        ({"type": "tool-output-denied", "toolCallId": "c1"},
         {"kind": "tool-output-denied", "toolCallId": "c1"}, ""),
        ({"type": "file", "mediaType": "image/png", "url": "https://x/y.png"},
         {"kind": "file", "mediaType": "image/png"}, "https://x/y.png"),
        ({"type": "file", "mediaType": "image/png", "url": "u", "providerMetadata": {"a": 1}},
         {"kind": "file", "mediaType": "image/png", "providerMetadata": '{"a":1}'}, "u"),
        ({"type": "source-url", "sourceId": "s1", "url": "https://a"},
         {"kind": "source-url", "sourceId": "s1"}, "https://a"),
        ({"type": "source-url", "sourceId": "s1", "url": "https://a", "title": "A",
          "providerMetadata": {}},
         {"kind": "source-url", "sourceId": "s1", "title": "A", "providerMetadata": "{}"},
         "https://a"),
        ({"type": "source-document", "sourceId": "d1", "mediaType": "application/pdf",
          "title": "Doc"},
         {"kind": "source-document", "sourceId": "d1", "mediaType": "application/pdf",
          "title": "Doc"}, ""),
        ({"type": "source-document", "sourceId": "d1", "mediaType": "text/plain", "title": "T",
          "filename": "t.txt", "providerMetadata": {"z": True}},
         {"kind": "source-document", "sourceId": "d1", "mediaType": "text/plain", "title": "T",
          "filename": "t.txt", "providerMetadata": '{"z":true}'}, ""),
        ({"type": "data-weather", "data": {"city": "Paris"}},
         {"kind": "data-weather"}, {"city": "Paris"}),
        ({"type": "data-weather", "id": "w1", "data": [1, 2], "transient": False},
         {"kind": "data-weather", "id": "w1", "transient": "false"}, [1, 2]),
    ])
    def test_each_discrete_chunk_is_one_publish_with_the_tables_headers_and_data(
            self, chunk: dict[str, Any], codec_headers: dict[str, str], data: Any) -> None:
        op = encode_one(chunk)
        assert op.kind == "publish"
        assert op.stream_id is None
        assert op.data == data
        assert codec(op) == codec_headers
        assert transport(op) == discrete_transport()
        assert "ephemeral" not in op.extras

    def test_a_transient_data_part_is_published_ephemeral(self) -> None:
        op = encode_one({"type": "data-progress", "data": 0.5, "transient": True})
        assert op.extras["ephemeral"] is True
        assert codec(op) == {"kind": "data-progress", "transient": "true"}
        assert op.data == 0.5

    @pytest.mark.parametrize("value", ["yes", 1, 0, None, "true"])
    def test_booleans_are_written_only_when_they_are_real_booleans(self, value: Any) -> None:
        op = encode_one({"type": "tool-output-available", "toolCallId": "c", "output": 1,
                         "dynamic": value, "preliminary": value, "providerExecuted": value})
        assert codec(op) == {"kind": "tool-output-available", "toolCallId": "c"}

    def test_absent_optional_fields_are_omitted_not_written_empty(self) -> None:
        op = encode_one({"type": "tool-input-error", "toolCallId": "c", "toolName": "n",
                         "errorText": "e"})
        assert codec(op) == {"kind": "tool-input-error", "toolCallId": "c", "toolName": "n"}
        assert op.data == {"errorText": "e", "input": None}

    def test_a_tool_input_with_no_open_stream_is_one_discrete_message_carrying_the_input(
            self) -> None:
        op = encode_one({"type": "tool-input-available", "toolCallId": "c9", "toolName": "calc",
                         "input": {"x": 2}, "dynamic": True, "title": "Calc",
                         "providerExecuted": True, "providerMetadata": {"m": 1}})
        assert op.kind == "publish"
        assert op.data == {"x": 2}
        assert codec(op) == {"kind": "tool-input", "toolCallId": "c9", "toolName": "calc",
                             "dynamic": "true", "title": "Calc", "providerExecuted": "true",
                             "providerMetadata": '{"m":1}'}
        assert transport(op) == discrete_transport()

    def test_headers_changed_by_the_transport_apply_to_later_discrete_outputs(self) -> None:
        enc = encoder()
        enc.headers = {**HEADERS, "step-id": "inv-1-step-0"}
        assert transport(encode_one({"type": "start-step"}, enc))["step-id"] == "inv-1-step-0"

    def test_the_supported_chunk_types_are_exactly_the_encode_tables_rows(self) -> None:
        assert {
            "start", "start-step", "finish-step", "finish", "message-metadata", "error", "abort",
            "text-start", "text-delta", "text-end", "reasoning-start", "reasoning-delta",
            "reasoning-end", "tool-input-start", "tool-input-delta", "tool-input-available",
            "tool-input-error", "tool-output-available", "tool-output-error",
            "tool-approval-request", "tool-output-denied", "file", "source-url",
            "source-document",
        } == CHUNK_TYPES


class TestEncoderStreams:
    @pytest.mark.parametrize("kind", ["text", "reasoning"])
    def test_a_text_or_reasoning_stream_is_a_create_appends_and_a_complete_append(
            self, kind: str) -> None:
        enc = encoder()
        create = encode_one({"type": f"{kind}-start", "id": "s1"}, enc)
        deltas = [encode_one({"type": f"{kind}-delta", "id": "s1", "delta": d}, enc)
                  for d in ("Hel", "lo")]
        close = encode_one({"type": f"{kind}-end", "id": "s1"}, enc)
        assert (create.kind, create.data, create.stream_id) == ("create", "", "s1")
        assert [(d.kind, d.data, d.stream_id) for d in deltas] == [
            ("append", "Hel", "s1"), ("append", "lo", "s1")]
        assert (close.kind, close.data, close.stream_id) == ("close", "", "s1")
        assert close.parts == ["Hel", "lo"]
        for op in (create, *deltas):
            assert transport(op) == stream_transport("s1", "streaming")
            assert codec(op) == {"kind": kind, "id": "s1"}
        assert transport(close) == stream_transport("s1", "complete")
        assert codec(close) == {"kind": kind, "id": "s1"}
        assert enc.open_streams == []

    def test_provider_metadata_of_the_start_persists_and_the_ends_is_merged_on_the_close(
            self) -> None:
        enc = encoder()
        encode_one({"type": "text-start", "id": "t", "providerMetadata": {"a": 1}}, enc)
        delta = encode_one({"type": "text-delta", "id": "t", "delta": "x"}, enc)
        close = encode_one({"type": "text-end", "id": "t", "providerMetadata": {"b": 2}}, enc)
        assert codec(delta) == {"kind": "text", "id": "t", "providerMetadata": '{"a":1}'}
        assert codec(close) == {"kind": "text", "id": "t", "providerMetadata": '{"b":2}'}

    def test_every_append_repeats_all_headers_even_after_the_headers_change(self) -> None:
        enc = encoder({**HEADERS, "step-id": "s-0", "step-start-serial": "serial-0"})
        create = encode_one({"type": "text-start", "id": "t"}, enc)
        enc.headers = {**HEADERS, "step-id": "s-1"}  # a later step must not touch the stream
        delta = encode_one({"type": "text-delta", "id": "t", "delta": "x"}, enc)
        close = encode_one({"type": "text-end", "id": "t"}, enc)
        assert transport(delta) == transport(create)
        assert transport(close) == {**transport(create), "status": "complete"}
        assert transport(delta)["step-start-serial"] == "serial-0"

    def test_a_tool_input_stream_is_keyed_by_tool_call_id_and_closed_by_input_available(
            self) -> None:
        enc = encoder()
        create = encode_one({"type": "tool-input-start", "toolCallId": "c1", "toolName": "w",
                             "dynamic": True, "title": "W", "providerExecuted": False,
                             "providerMetadata": {"x": 1}}, enc)
        delta = encode_one({"type": "tool-input-delta", "toolCallId": "c1",
                            "inputTextDelta": '{"q":'}, enc)
        close = encode_one({"type": "tool-input-available", "toolCallId": "c1",
                            "toolName": "w2", "input": {"q": 1}}, enc)
        persistent = {"kind": "tool-input", "toolCallId": "c1", "toolName": "w",
                      "dynamic": "true", "title": "W", "providerExecuted": "false",
                      "providerMetadata": '{"x":1}'}
        assert (create.kind, create.stream_id, codec(create)) == ("create", "c1", persistent)
        assert transport(create) == stream_transport("c1", "streaming")
        assert (delta.kind, delta.data, codec(delta)) == ("append", '{"q":', persistent)
        assert (close.kind, close.data) == ("close", "")
        assert codec(close) == {**persistent, "toolName": "w2"}
        assert transport(close) == stream_transport("c1", "complete")

    def test_cancel_streams_terminates_every_open_stream_once_with_status_cancelled(
            self) -> None:
        enc = encoder()
        enc.encode({"type": "text-start", "id": "t"})
        enc.encode({"type": "text-delta", "id": "t", "delta": "part"})
        enc.encode({"type": "reasoning-start", "id": "r"})
        enc.encode({"type": "tool-input-start", "toolCallId": "c", "toolName": "n"})
        enc.encode({"type": "reasoning-end", "id": "r"})
        ops = enc.cancel_streams()
        assert [(op.kind, op.stream_id, op.data) for op in ops] == [
            ("close", "t", ""), ("close", "c", "")]
        assert transport(ops[0]) == stream_transport("t", "cancelled")
        assert codec(ops[0]) == {"kind": "text", "id": "t"}
        assert ops[0].parts == ["part"]
        assert transport(ops[1]) == stream_transport("c", "cancelled")
        assert enc.cancel_streams() == []
        assert enc.open_streams == []

    def test_a_tool_input_error_terminates_the_calls_open_input_stream_before_the_error(
            self) -> None:
        enc = encoder()
        enc.encode({"type": "tool-input-start", "toolCallId": "c", "toolName": "n"})
        ops = enc.encode({"type": "tool-input-error", "toolCallId": "c", "toolName": "n",
                          "errorText": "bad json", "input": "{"})
        assert [op.kind for op in ops] == ["close", "publish"]
        assert transport(ops[0])["status"] == "cancelled"
        assert codec(ops[1])["kind"] == "tool-input-error"
        assert enc.open_streams == []
        assert enc.cancel_streams() == []

    def test_a_stream_id_can_be_reused_after_its_stream_closed(self) -> None:
        enc = encoder()
        for _ in range(2):
            assert encode_one({"type": "text-start", "id": "t"}, enc).kind == "create"
            assert encode_one({"type": "text-end", "id": "t"}, enc).kind == "close"

    def test_an_empty_delta_is_still_an_append(self) -> None:
        enc = encoder()
        enc.encode({"type": "text-start", "id": "t"})
        assert encode_one({"type": "text-delta", "id": "t", "delta": ""}, enc).data == ""


class TestEncoderRejects:
    def test_an_unknown_chunk_type_raises_unsupported_chunk_naming_the_type(self) -> None:
        with pytest.raises(UnsupportedChunkError, match="'reasoning-file'") as info:
            encoder().encode({"type": "reasoning-file"})
        assert info.value.code == ErrorCode.INVALID_ARGUMENT
        assert info.value.code == 40003
        assert "unsupported chunk type" in info.value.message

    @pytest.mark.parametrize("kind", ["custom", "reset-step", "steering-message",
                                      "tool-approval-response", "data-", "text"])
    def test_chunk_types_without_a_wire_mapping_are_unsupported(self, kind: str) -> None:
        with pytest.raises(UnsupportedChunkError):
            encoder().encode({"type": kind})

    @pytest.mark.parametrize("chunk", [
        None, "text-start", ["type", "start"], 42,
    ])
    def test_a_chunk_that_is_not_a_mapping_is_an_invalid_argument(self, chunk: Any) -> None:
        with pytest.raises(InvalidArgumentError, match="mapping"):
            encoder().encode(chunk)

    @pytest.mark.parametrize("chunk", [
        {}, {"type": None}, {"type": 3},
        {"type": "text-start"},
        {"type": "text-start", "id": 7},
        {"type": "reasoning-start", "id": None},
        {"type": "tool-input-start", "toolCallId": "c"},
        {"type": "tool-input-start", "toolName": "n"},
        {"type": "tool-input-available", "toolName": "n", "input": {}},
        {"type": "tool-input-available", "toolCallId": "c", "input": {}},
        {"type": "tool-input-error", "toolCallId": "c", "toolName": "n"},
        {"type": "tool-output-available", "output": 1},
        {"type": "tool-output-error", "toolCallId": "c"},
        {"type": "tool-approval-request", "toolCallId": "c"},
        {"type": "tool-output-denied"},
        {"type": "error"},
        {"type": "error", "errorText": {"m": 1}},
        {"type": "start", "messageId": 5},
        {"type": "finish", "finishReason": 1},
        {"type": "file", "url": "u"},
        {"type": "file", "mediaType": "m"},
        {"type": "source-url", "sourceId": "s"},
        {"type": "source-url", "sourceId": "s", "url": "u", "title": 1},
        {"type": "source-document", "sourceId": "s", "mediaType": "m"},
        {"type": "data-x", "id": 1, "data": 1},
    ])
    def test_a_known_chunk_missing_or_mistyping_a_field_is_an_invalid_argument(
            self, chunk: dict[str, Any]) -> None:
        with pytest.raises(InvalidArgumentError):
            encoder().encode(chunk)

    @pytest.mark.parametrize("chunk", [
        {"type": "start", "messageMetadata": {1, 2}},
        {"type": "finish", "messageMetadata": object()},
        {"type": "message-metadata", "messageMetadata": math.nan},
        {"type": "text-start", "id": "t", "providerMetadata": {"x": math.inf}},
        {"type": "tool-input-start", "toolCallId": "c", "toolName": "n",
         "providerMetadata": b"bytes"},
        {"type": "tool-output-available", "toolCallId": "c", "output": {"when": object()}},
        {"type": "tool-input-available", "toolCallId": "c", "toolName": "n", "input": {1j}},
        {"type": "data-x", "data": math.nan},
    ])
    def test_metadata_or_payloads_that_are_not_json_are_an_invalid_argument(
            self, chunk: dict[str, Any]) -> None:
        with pytest.raises(InvalidArgumentError, match="JSON"):
            encoder().encode(chunk)

    @pytest.mark.parametrize("chunk", [
        {"type": "text-delta", "id": "nope", "delta": "x"},
        {"type": "text-end", "id": "nope"},
        {"type": "reasoning-delta", "id": "nope", "delta": "x"},
        {"type": "reasoning-end", "id": "nope"},
        {"type": "tool-input-delta", "toolCallId": "nope", "inputTextDelta": "{"},
    ])
    def test_a_delta_or_end_for_a_stream_that_is_not_open_is_an_invalid_argument(
            self, chunk: dict[str, Any]) -> None:
        with pytest.raises(InvalidArgumentError, match="not open"):
            encoder().encode(chunk)

    @pytest.mark.parametrize("chunk", [
        {"type": "reasoning-delta", "id": "s", "delta": "x"},
        {"type": "reasoning-end", "id": "s"},
        {"type": "tool-input-delta", "toolCallId": "s", "inputTextDelta": "x"},
        {"type": "tool-input-available", "toolCallId": "s", "toolName": "n", "input": {}},
    ])
    def test_a_chunk_addressing_a_stream_of_another_kind_is_an_invalid_argument(
            self, chunk: dict[str, Any]) -> None:
        enc = encoder()
        enc.encode({"type": "text-start", "id": "s"})
        with pytest.raises(InvalidArgumentError, match="text stream"):
            enc.encode(chunk)
        assert enc.open_streams == ["s"]

    def test_a_delta_without_its_text_is_an_invalid_argument(self) -> None:
        enc = encoder()
        enc.encode({"type": "text-start", "id": "t"})
        with pytest.raises(InvalidArgumentError, match="delta"):
            enc.encode({"type": "text-delta", "id": "t"})

    def test_opening_a_stream_that_is_already_open_is_an_invalid_argument(self) -> None:
        enc = encoder()
        enc.encode({"type": "text-start", "id": "t"})
        with pytest.raises(InvalidArgumentError, match="already open"):
            enc.encode({"type": "tool-input-start", "toolCallId": "t", "toolName": "n"})

    def test_a_rejected_close_leaves_the_stream_open(self) -> None:
        enc = encoder()
        enc.encode({"type": "tool-input-start", "toolCallId": "c", "toolName": "n"})
        with pytest.raises(InvalidArgumentError):
            enc.encode({"type": "tool-input-available", "toolCallId": "c", "input": {}})
        with pytest.raises(InvalidArgumentError):
            enc.encode({"type": "text-end", "id": "c", "providerMetadata": math.nan})
        assert enc.open_streams == ["c"]


# ---------------------------------------------------------------------------------------------
# decoder
# ---------------------------------------------------------------------------------------------
class TestDecoderStreams:
    def test_a_stream_folds_create_appends_and_close_into_one_text_part(self) -> None:
        decoder = fold([
            stream_msg("", TEXT, "s1", "streaming"),
            stream_msg("Hel", TEXT, "s1", "streaming", action="message.append", version="s2"),
            stream_msg("lo", TEXT, "s1", "streaming", action="message.append", version="s3"),
            stream_msg("", TEXT, "s1", "complete", action="message.append", version="s4"),
        ])
        assert assistant(decoder) == {"id": CMID, "role": "assistant",
                                      "parts": [{"type": "text", "text": "Hello"}]}

    def test_a_late_joiner_takes_a_mid_stream_update_as_first_contact_and_keeps_appending(
            self) -> None:
        decoder = fold([
            stream_msg("Hello", TEXT, "s1", "streaming", action="message.update", version="s5"),
            stream_msg(" world", TEXT, "s1", "streaming", action="message.append",
                       version="s6"),
            stream_msg("", TEXT, "s1", "complete", action="message.append", version="s7"),
        ])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "Hello world"}]

    def test_a_history_aggregate_of_a_finished_stream_folds_in_one_step(self) -> None:
        decoder = fold([stream_msg('{"city":"Paris"}', TOOL, "s1", "complete",
                                   action="message.update", version="s9", stream_id="call-1")])
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "input-available",
            "input": {"city": "Paris"}}]

    def test_a_redelivered_append_is_dropped_by_its_version_serial(self) -> None:
        create = stream_msg("", TEXT, "s1", "streaming")
        append = stream_msg("ab", TEXT, "s1", "streaming", action="message.append",
                            version="s2")
        decoder = fold([create, append])
        assert not decoder.apply(append)
        assert not decoder.apply(create)
        older = stream_msg("zz", TEXT, "s1", "streaming", action="message.append",
                           version="s1-0")
        assert not decoder.apply(older)
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "ab"}]

    def test_an_append_without_a_tracker_is_taken_like_an_update(self) -> None:
        decoder = fold([stream_msg("partial", TEXT, "s1", "streaming",
                                   action="message.append", version="s3")])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "partial"}]

    def test_a_cancelled_stream_keeps_its_partial_text_and_ignores_later_appends(
            self) -> None:
        decoder = fold([
            stream_msg("", TEXT, "s1", "streaming"),
            stream_msg("par", TEXT, "s1", "streaming", action="message.append", version="s2"),
            stream_msg("", TEXT, "s1", "cancelled", action="message.append", version="s3"),
            stream_msg("tial", TEXT, "s1", "streaming", action="message.append",
                       version="s4"),
        ])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "par"}]

    def test_an_update_that_does_not_extend_the_text_replaces_it(self) -> None:
        decoder = fold([
            stream_msg("", TEXT, "s1", "streaming"),
            stream_msg("Hel", TEXT, "s1", "streaming", action="message.append", version="s2"),
            stream_msg("lo!", TEXT, "s1", "streaming", action="message.append", version="s4"),
            stream_msg("Hello there!", TEXT, "s1", "complete", action="message.update",
                       version="s5"),
        ])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "Hello there!"}]

    def test_a_recovery_update_after_the_terminal_append_still_repairs_the_text(
            self) -> None:
        decoder = fold([
            stream_msg("", TEXT, "s1", "streaming"),
            stream_msg("Hello", TEXT, "s1", "streaming", action="message.append",
                       version="s2"),
            stream_msg("!", TEXT, "s1", "streaming", action="message.append", version="s4"),
            stream_msg("", TEXT, "s1", "complete", action="message.append", version="s5"),
            stream_msg("Hello there!", TEXT, "s1", "complete", action="message.update",
                       version="s6"),
        ])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "Hello there!"}]

    def test_a_delete_closes_the_stream_and_a_delete_alone_creates_nothing(self) -> None:
        decoder = fold([stream_msg("", TEXT, "s9", "streaming", action="message.delete",
                                   version="s10")])
        assert decoder.messages() == []
        decoder = fold([
            stream_msg("", TEXT, "s1", "streaming"),
            stream_msg("a", TEXT, "s1", "streaming", action="message.append", version="s2"),
            stream_msg("", TEXT, "s1", "streaming", action="message.delete", version="s3"),
            stream_msg("b", TEXT, "s1", "streaming", action="message.append", version="s4"),
        ])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "a"}]

    def test_a_streamed_tool_input_shows_only_parseable_input_until_it_completes(
            self) -> None:
        decoder = fold([
            stream_msg("", TOOL, "s1", "streaming", stream_id="call-1"),
            stream_msg('{"city":', TOOL, "s1", "streaming", action="message.append",
                       version="s2", stream_id="call-1"),
        ])
        part = assistant(decoder)["parts"][0]
        assert part == {"type": "tool-getWeather", "toolCallId": "call-1",
                        "state": "input-streaming"}
        decoder.apply(stream_msg('"Paris"}', TOOL, "s1", "streaming", action="message.append",
                                 version="s3", stream_id="call-1"))
        assert assistant(decoder)["parts"][0]["input"] == {"city": "Paris"}
        assert assistant(decoder)["parts"][0]["state"] == "input-streaming"
        decoder.apply(stream_msg("", TOOL, "s1", "complete", action="message.append",
                                 version="s4", stream_id="call-1"))
        assert assistant(decoder)["parts"][0]["state"] == "input-available"

    def test_a_cancelled_tool_input_keeps_the_input_streamed_before_the_cancel(self) -> None:
        decoder = fold([
            stream_msg("", TOOL, "s1", "streaming", stream_id="call-1"),
            stream_msg('{"a":1}', TOOL, "s1", "streaming", action="message.append",
                       version="s2", stream_id="call-1"),
            stream_msg("", TOOL, "s1", "cancelled", action="message.append", version="s3",
                       stream_id="call-1"),
        ])
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "input-streaming",
            "input": {"a": 1}}]

    def test_a_completed_tool_input_that_is_not_json_is_kept_as_the_raw_string(self) -> None:
        decoder = fold([stream_msg("not json", TOOL, "s1", "complete",
                                   action="message.update", version="s2",
                                   stream_id="call-1")])
        assert assistant(decoder)["parts"][0]["input"] == "not json"

    def test_a_dynamic_tool_stream_becomes_a_dynamic_tool_part_with_its_identity(
            self) -> None:
        headers = {**TOOL, "dynamic": "true", "title": "Weather", "providerExecuted": "true"}
        decoder = fold([stream_msg("{}", headers, "s1", "complete", action="message.update",
                                   version="s2", stream_id="call-1")])
        assert assistant(decoder)["parts"] == [{
            "type": "dynamic-tool", "toolName": "getWeather", "toolCallId": "call-1",
            "title": "Weather", "providerExecuted": True, "state": "input-available",
            "input": {}}]

    def test_reasoning_and_text_streams_of_one_message_fold_into_parts_in_create_order(
            self) -> None:
        decoder = fold([
            stream_msg("", {"kind": "reasoning", "id": "r"}, "s1", "streaming",
                       stream_id="r"),
            stream_msg("", TEXT, "s2", "streaming"),
            stream_msg("answer", TEXT, "s2", "streaming", action="message.append",
                       version="s3"),
            stream_msg("think", {"kind": "reasoning", "id": "r"}, "s1", "streaming",
                       action="message.append", version="s4", stream_id="r"),
        ])
        assert assistant(decoder)["parts"] == [{"type": "reasoning", "text": "think"},
                                               {"type": "text", "text": "answer"}]


class TestDecoderDiscreteOutputs:
    def test_start_sets_the_message_id_and_metadata_and_finish_updates_the_metadata(
            self) -> None:
        decoder = fold([
            out("", {"kind": "start", "messageId": "msg-1", "messageMetadata": '{"a":1}'},
                "s1"),
            out("", {"kind": "finish", "finishReason": "stop",
                     "messageMetadata": '{"a":2}'}, "s2"),
        ])
        assert decoder.messages() == [{"id": "msg-1", "role": "assistant", "parts": [],
                                       "metadata": {"a": 2}}]

    def test_lifecycle_chunks_without_content_create_no_message(self) -> None:
        decoder = fold([
            out("boom", {"kind": "error"}, "s1"),
            out("", {"kind": "abort"}, "s2"),
            out("", {"kind": "finish-step"}, "s3"),
            out("", {"kind": "finish", "messageMetadata": "{}"}, "s4"),
            out("", {"kind": "message-metadata", "messageMetadata": "{}"}, "s5"),
            out({"x": 1}, {"kind": "data-progress", "transient": "true"}, "s6",
                ephemeral=True),
            out({"output": 1}, {"kind": "tool-output-available", "toolCallId": "nope"}, "s7"),
            out("", {"kind": "some-future-kind"}, "s8"),
        ])
        assert decoder.messages() == []

    def test_transient_data_parts_are_ignored(self) -> None:
        decoder = fold([
            out("", {"kind": "start-step"}, "s1"),
            out({"pct": 50}, {"kind": "data-progress", "id": "p", "transient": "true"}, "s2",
                ephemeral=True),
        ])
        assert assistant(decoder)["parts"] == [{"type": "step-start"}]

    def test_data_parts_with_an_id_are_replaced_in_place_and_without_one_appended(
            self) -> None:
        decoder = fold([
            out({"v": 1}, {"kind": "data-weather", "id": "w"}, "s1"),
            out("", {"kind": "start-step"}, "s2"),
            out({"v": 2}, {"kind": "data-weather", "id": "w"}, "s3"),
            out({"v": 3}, {"kind": "data-weather"}, "s4"),
            out({"v": 4}, {"kind": "data-other", "id": "w"}, "s5"),
        ])
        assert assistant(decoder)["parts"] == [
            {"type": "data-weather", "id": "w", "data": {"v": 2}},
            {"type": "step-start"},
            {"type": "data-weather", "data": {"v": 3}},
            {"type": "data-other", "id": "w", "data": {"v": 4}},
        ]

    def test_files_and_sources_append_parts(self) -> None:
        decoder = fold([
            out("https://f", {"kind": "file", "mediaType": "image/png"}, "s1"),
            out("https://u", {"kind": "source-url", "sourceId": "u1", "title": "U"}, "s2"),
            out("", {"kind": "source-document", "sourceId": "d1", "mediaType": "text/plain",
                     "title": "D", "filename": "d.txt"}, "s3"),
        ])
        assert assistant(decoder)["parts"] == [
            {"type": "file", "mediaType": "image/png", "url": "https://f"},
            {"type": "source-url", "sourceId": "u1", "url": "https://u", "title": "U"},
            {"type": "source-document", "sourceId": "d1", "mediaType": "text/plain",
             "title": "D", "filename": "d.txt"},
        ]

    def test_a_discrete_tool_input_is_an_input_available_tool_part(self) -> None:
        decoder = fold([out({"x": 1}, {**TOOL}, "s1")])
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "input-available",
            "input": {"x": 1}}]

    def test_a_tool_input_error_replaces_a_streaming_part_with_an_output_error(self) -> None:
        decoder = fold([
            stream_msg("", TOOL, "s1", "streaming", stream_id="call-1"),
            stream_msg('{"x":', TOOL, "s1", "streaming", action="message.append",
                       version="s2", stream_id="call-1"),
            stream_msg("", TOOL, "s1", "cancelled", action="message.append", version="s3",
                       stream_id="call-1"),
            out({"errorText": "bad", "input": '{"x":'},
                {"kind": "tool-input-error", "toolCallId": "call-1", "toolName": "getWeather"},
                "s4"),
        ])
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "output-error",
            "input": '{"x":', "errorText": "bad"}]

    def test_tool_outputs_apply_by_tool_call_id_to_a_part_in_an_earlier_message(
            self) -> None:
        decoder = fold([
            out({}, TOOL, "s1"),
            out("", {"kind": "tool-approval-request", "toolCallId": "call-1",
                     "approvalId": "ap-1"}, "s2"),
            out({"output": {"t": 21}}, {"kind": "tool-output-available",
                                        "toolCallId": "call-1"}, "s3", cmid="second"),
        ])
        assert [m["id"] for m in decoder.messages()] == [CMID]  # no phantom message
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "output-available",
            "input": {}, "output": {"t": 21}}]

    def test_tool_states_replace_each_others_fields(self) -> None:
        decoder = fold([
            out({"q": 1}, TOOL, "s1"),
            out({"output": "part"}, {"kind": "tool-output-available", "toolCallId": "call-1",
                                     "preliminary": "true"}, "s2"),
        ])
        assert assistant(decoder)["parts"][0]["preliminary"] is True
        decoder.apply(out({"errorText": "late failure"},
                          {"kind": "tool-output-error", "toolCallId": "call-1"}, "s3"))
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "output-error",
            "input": {"q": 1}, "errorText": "late failure"}]

    def test_an_approval_request_then_a_denial_leaves_an_output_denied_part(self) -> None:
        decoder = fold([
            out({}, TOOL, "s1"),
            out("", {"kind": "tool-approval-request", "toolCallId": "call-1",
                     "approvalId": "ap-1"}, "s2"),
        ])
        assert assistant(decoder)["parts"][0]["state"] == "approval-requested"
        assert assistant(decoder)["parts"][0]["approval"] == {"id": "ap-1"}
        decoder.apply(out("", {"kind": "tool-output-denied", "toolCallId": "call-1"}, "s3"))
        assert assistant(decoder)["parts"][0] == {
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "output-denied",
            "input": {}, "approval": {"id": "ap-1", "approved": False}}


class TestDecoderClientInputs:
    def test_user_message_parts_fold_into_one_message_with_the_clients_message_id(
            self) -> None:
        user = {"kind": "user-message", "messageId": "user-msg-1"}
        decoder = fold([
            client_input("hi", {**user, "partType": "text"}, "s1", cmid="u1"),
            client_input("data:,x", {**user, "partType": "file", "mediaType": "text/plain"},
                         "s2", cmid="u1"),
            client_input({"k": 1}, {**user, "partType": "data-ctx", "id": "c"}, "s3",
                         cmid="u1"),
        ])
        assert decoder.messages() == [{"id": "user-msg-1", "role": "user", "parts": [
            {"text": "hi", "type": "text"},
            {"mediaType": "text/plain", "url": "data:,x", "type": "file"},
            {"type": "data-ctx", "id": "c", "data": {"k": 1}},
        ]}]
        assert decoder.entries()[0].codec_message_id == "u1"

    def test_a_tool_result_is_held_until_its_tool_part_exists(self) -> None:
        result = client_input({"output": {"city": "Paris"}},
                              {"kind": "tool-result", "toolCallId": "call-1"}, "s1",
                              cmid=CMID, **{"run-id": "run-1"})
        decoder = fold([result])
        assert decoder.messages() == []
        decoder.apply(stream_msg("{}", TOOL, "s2", "complete", action="message.update",
                                 version="s3", stream_id="call-1"))
        assert assistant(decoder)["parts"] == [{
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "output-available",
            "input": {}, "output": {"city": "Paris"}}]

    def test_a_tool_result_error_and_approval_responses_transition_the_tool_part(
            self) -> None:
        decoder = fold([
            out({}, TOOL, "s1"),
            out("", {"kind": "tool-approval-request", "toolCallId": "call-1",
                     "approvalId": "ap-1"}, "s2"),
            client_input("", {"kind": "tool-approval-response", "toolCallId": "call-1",
                              "approved": "true", "reason": "ok"}, "s3", cmid=CMID),
        ])
        assert assistant(decoder)["parts"][0] == {
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "approval-responded",
            "input": {}, "approval": {"id": "ap-1", "approved": True, "reason": "ok"}}
        decoder.apply(client_input({"message": "denied by policy"},
                                   {"kind": "tool-result-error", "toolCallId": "call-1"}, "s4",
                                   cmid=CMID))
        assert assistant(decoder)["parts"][0] == {
            "type": "tool-getWeather", "toolCallId": "call-1", "state": "output-error",
            "input": {}, "errorText": "denied by policy"}

    def test_a_denied_approval_leaves_an_output_denied_part_with_the_reason(self) -> None:
        decoder = fold([
            out({}, TOOL, "s1"),
            client_input("", {"kind": "tool-approval-response", "toolCallId": "call-1",
                              "approved": "false", "reason": "no"}, "s2", cmid=CMID),
        ])
        assert assistant(decoder)["parts"][0]["state"] == "output-denied"
        assert assistant(decoder)["parts"][0]["approval"] == {
            "id": "", "approved": False, "reason": "no"}


class TestDecoderRobustness:
    def test_messages_without_an_envelope_or_codec_message_id_are_foreign(self) -> None:
        decoder = UIMessageDecoder()
        assert not decoder.apply(ChannelMessage("ai-output", "x", None, "s1"))
        assert not decoder.apply(ChannelMessage("ai-output", "x", {"headers": {}}, "s2"))
        assert not decoder.apply(wire("ai-output", "", {"stream": "false"},
                                      {"kind": "start"}, "s3"))
        assert not decoder.apply(wire("ai-run-start", None, {"codec-message-id": "x"}, None,
                                      "s4"))
        assert decoder.messages() == []

    def test_returned_messages_are_copies_the_caller_may_change(self) -> None:
        decoder = fold([out({"q": [1]}, TOOL, "s1"),
                        out("", {"kind": "start", "messageMetadata": '{"m":[1]}'}, "s2")])
        message = assistant(decoder)
        message["parts"][0]["input"]["q"].append(2)
        message["metadata"]["m"].append(2)
        message["parts"].clear()
        assert assistant(decoder)["parts"][0]["input"] == {"q": [1]}
        assert assistant(decoder)["metadata"] == {"m": [1]}

    def test_deeply_nested_payloads_never_break_reading_the_messages(self) -> None:
        deep: list[Any] = []
        for _ in range(5000):
            deep = [deep]
        nested_json = "[" * 30_000 + "]" * 30_000  # deeper than json.loads can recurse
        decoder = fold([
            out(deep, {"kind": "data-deep"}, "s1"),
            stream_msg(nested_json, TOOL, "s2", "complete", action="message.update",
                       version="s3", stream_id="call-1"),
            out("", {"kind": "start", "messageMetadata": nested_json}, "s4"),
        ])
        message = assistant(decoder)
        copied = message["parts"][0]["data"]
        assert copied is not deep
        for _ in range(5000):
            assert isinstance(copied, list)
            assert len(copied) == 1
            copied = copied[0]
        assert copied == []
        assert message["parts"][1]["input"] == nested_json  # kept raw, like any non-JSON
        assert message["metadata"] == nested_json


# ---------------------------------------------------------------------------------------------
# properties: encode -> deliver -> decode
# ---------------------------------------------------------------------------------------------
json_leaf = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@dataclass
class Script:
    """A random valid chunk sequence and what the fold must show for it."""

    chunks: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # id -> kind, deltas
    tools: dict[str, tuple[Any, str]] = field(default_factory=dict)  # call id -> input, state
    sent: dict[str, str] = field(default_factory=dict)  # call id -> input text streamed so far
    cancel_at_end: bool = False


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)] or [""]


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    script = Script()
    open_text: list[str] = []
    open_tools: dict[str, list[str]] = {}
    counter = 0
    script.chunks.append({"type": "start"})
    for _ in range(draw(st.integers(1, 25))):
        action = draw(st.sampled_from(["open-text", "open-tool", "delta", "delta", "delta",
                                       "end", "discrete"]))
        if action == "open-text":
            counter += 1
            kind = draw(st.sampled_from(["text", "reasoning"]))
            stream_id = f"{kind[0]}{counter}"
            script.chunks.append({"type": f"{kind}-start", "id": stream_id})
            script.texts[stream_id] = (kind, [])
            open_text.append(stream_id)
        elif action == "open-tool":
            counter += 1
            call_id = f"call-{counter}"
            value = draw(st.dictionaries(st.text(max_size=4), json_value, max_size=3))
            encoded = json.dumps(value)
            cuts = draw(st.lists(st.integers(0, 200), max_size=4))
            script.chunks.append({"type": "tool-input-start", "toolCallId": call_id,
                                  "toolName": "t"})
            open_tools[call_id] = split(encoded, cuts)
            script.tools[call_id] = (value, "input-streaming")
            script.sent[call_id] = ""
        elif action == "delta" and (open_text or open_tools):
            stream_id = draw(st.sampled_from(open_text + list(open_tools)))
            if stream_id in open_tools:
                if open_tools[stream_id]:
                    piece = open_tools[stream_id].pop(0)
                    script.chunks.append({"type": "tool-input-delta", "toolCallId": stream_id,
                                          "inputTextDelta": piece})
                    script.sent[stream_id] += piece
            else:
                kind = script.texts[stream_id][0]
                delta = draw(st.text(max_size=6))
                script.chunks.append({"type": f"{kind}-delta", "id": stream_id,
                                      "delta": delta})
                script.texts[stream_id][1].append(delta)
        elif action == "end" and (open_text or open_tools):
            stream_id = draw(st.sampled_from(open_text + list(open_tools)))
            if stream_id in open_tools:
                for rest in open_tools.pop(stream_id):
                    script.chunks.append({"type": "tool-input-delta", "toolCallId": stream_id,
                                          "inputTextDelta": rest})
                value = script.tools[stream_id][0]
                script.chunks.append({"type": "tool-input-available", "toolCallId": stream_id,
                                      "toolName": "t", "input": value})
                script.tools[stream_id] = (value, "input-available")
            else:
                open_text.remove(stream_id)
                kind = script.texts[stream_id][0]
                script.chunks.append({"type": f"{kind}-end", "id": stream_id})
        elif action == "discrete":
            counter += 1
            script.chunks.append(draw(st.sampled_from([
                {"type": "start-step"},
                {"type": "finish-step"},
                {"type": "data-note", "id": "n", "data": counter},
                {"type": "data-tick", "data": counter, "transient": True},
                {"type": "source-url", "sourceId": f"s{counter}", "url": "https://x"},
                {"type": "message-metadata", "messageMetadata": {"n": counter}},
            ])))
    script.cancel_at_end = draw(st.booleans())
    return script


def check_fold(script: Script, decoder: UIMessageDecoder) -> None:
    parts = assistant(decoder)["parts"]
    texts = [(p["type"], p["text"]) for p in parts if p["type"] in ("text", "reasoning")]
    assert texts == [(kind, "".join(deltas)) for kind, deltas in script.texts.values()]
    tools = {p["toolCallId"]: p for p in parts if p["type"] == "tool-t"}
    assert set(tools) == set(script.tools)
    for call_id, (value, state) in script.tools.items():
        assert tools[call_id]["state"] == state
        if state == "input-available":
            assert tools[call_id]["input"] == value
            continue
        try:  # mid-stream the input shows only once what was streamed parses
            expected = json.loads(script.sent[call_id])
        except ValueError:
            assert "input" not in tools[call_id]
        else:
            assert tools[call_id]["input"] == expected


class TestRoundTripProperties:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scripts())
    def test_encoded_chunks_fold_back_to_their_text_and_tool_inputs(
            self, script: Script) -> None:
        enc, channel = encoder(), Channel()
        for chunk in script.chunks:
            channel.deliver(enc.encode(chunk))
        if script.cancel_at_end:
            channel.deliver(enc.cancel_streams())
        decoder = fold(channel.live)
        check_fold(script, decoder)
        view = decoder.messages()
        assert not any(decoder.apply(m) for m in channel.live)  # re-delivery changes nothing
        assert not any(decoder.apply(m) for m in channel.history())
        assert decoder.messages() == view
        assert fold(channel.history()).messages() == view  # a late joiner sees the same

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.text(max_size=5), max_size=8), st.integers(0, 8))
    def test_a_live_subscriber_joining_mid_stream_sees_the_whole_text(
            self, deltas: list[str], joined_after: int) -> None:
        enc, channel = encoder(), Channel()
        channel.deliver(enc.encode({"type": "text-start", "id": "t"}))
        for delta in deltas:
            channel.deliver(enc.encode({"type": "text-delta", "id": "t", "delta": delta}))
        channel.deliver(enc.encode({"type": "text-end", "id": "t"}))
        joined_after = min(joined_after, len(channel.live) - 1)
        seen = channel.live[: joined_after + 1]
        # A subscriber attaching now gets the contents so far as one full-contents update,
        # then the remaining appends as they happen (§4.3).
        first_contact = ChannelMessage("ai-output", "".join(m.data for m in seen),
                                       seen[-1].extras, seen[0].serial, "message.update",
                                       seen[-1].version_serial)
        decoder = fold([first_contact, *channel.live[joined_after + 1:]])
        assert assistant(decoder)["parts"] == [{"type": "text", "text": "".join(deltas)}]


# ---------------------------------------------------------------------------------------------
# properties: hostile input
# ---------------------------------------------------------------------------------------------
names = st.sampled_from([None, "ai-input", "ai-output", "ai-run-start", "ai-cancel", "x"])
actions = st.sampled_from(["message.create", "message.append", "message.update",
                           "message.delete", "message.summary", ""])
header_values = st.sampled_from(["true", "false", "complete", "cancelled", "streaming",
                                 "{", '{"a":1}', "", "x", CMID, "call-1"])
codec_keys = st.sampled_from([
    "kind", "id", "toolCallId", "toolName", "dynamic", "messageId", "messageMetadata",
    "partType", "approved", "approvalId", "transient", "preliminary", "title", "reason"])
kinds = st.sampled_from([
    "start", "start-step", "finish", "finish-step", "message-metadata", "error", "abort",
    "text", "reasoning", "tool-input", "tool-input-error", "tool-output-available",
    "tool-output-error", "tool-approval-request", "tool-output-denied", "file", "source-url",
    "source-document", "data-x", "user-message", "tool-result", "tool-result-error",
    "tool-approval-response", "regenerate", "nope"])
plausible_codec = st.builds(
    lambda kind, rest: {**rest, "kind": kind},
    kinds, st.dictionaries(codec_keys, header_values, max_size=5))
plausible_transport = st.fixed_dictionaries(
    {"codec-message-id": st.sampled_from([CMID, "other", ""])},
    optional={"stream": header_values, "status": header_values, "role": header_values,
              "run-id": header_values})
junk = st.recursive(
    json_leaf | st.floats() | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)
extras = st.one_of(
    junk,
    st.builds(lambda t, c, e: {"ai": {"transport": t, "codec": c}, "ephemeral": e},
              plausible_transport, plausible_codec, junk),
    st.builds(lambda t, c: {"ai": {"transport": t, "codec": c}}, junk, junk),
)
serials = st.sampled_from(["s1", "s2", "s3", ""]) | st.text(max_size=3) | st.none()
junk_messages = st.builds(
    ChannelMessage, name=names, data=junk | st.text(max_size=8), extras=extras,
    serial=serials, action=actions, version_serial=serials | st.integers(),
)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture
def decoder_errors() -> Iterator[_Errors]:
    handler = _Errors()
    codec_logger = logging.getLogger("langgraph_interrupt.codec")
    level = codec_logger.level
    codec_logger.addHandler(handler)
    codec_logger.setLevel(logging.DEBUG)
    yield handler
    codec_logger.removeHandler(handler)
    codec_logger.setLevel(level)


class TestHostileInput:
    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(messages=st.lists(junk_messages, max_size=12))
    def test_junk_messages_are_rejected_by_validation_and_never_break_the_fold(
            self, messages: list[ChannelMessage], decoder_errors: _Errors) -> None:
        decoder = roundtrip([{"type": "start"}, {"type": "text-start", "id": "t0"},
                             {"type": "text-delta", "id": "t0", "delta": "ok"},
                             {"type": "tool-input-start", "toolCallId": "call-1",
                              "toolName": "getWeather"}])
        for message in messages:
            assert decoder.apply(message) in (True, False)
        decoder.messages()
        decoder.entries()
        assert decoder_errors.records == []

    @settings(max_examples=100, deadline=None)
    @given(st.lists(junk_messages, max_size=8))
    def test_messages_without_a_valid_envelope_change_nothing(
            self, messages: list[ChannelMessage]) -> None:
        decoder = roundtrip([{"type": "start"}, {"type": "text-start", "id": "t0"},
                             {"type": "text-delta", "id": "t0", "delta": "ok"}])
        before = decoder.messages()
        for message in messages:
            if isinstance(message.extras, Mapping) and isinstance(message.extras.get("ai"),
                                                                  Mapping):
                continue
            assert not decoder.apply(message)
        assert decoder.messages() == before

"""A read-only decoder of what crosses ``bench/network.py``'s proxy, for ``--trace``.

Each proxied TCP connection gets a :class:`WireTap`. It is fed every chunk the proxy reads,
in order, with the time it was read, and records one :class:`WireEvent` per Ably protocol
message on a realtime websocket (msgpack or JSON frames; heartbeats left out) and per HTTP
request or response line on a REST connection. Nothing is changed or delayed by it; a chunk
it cannot make sense of is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

ACTIONS = {0: "HEARTBEAT", 1: "ACK", 2: "NACK", 3: "CONNECT", 4: "CONNECTED", 5: "DISCONNECT",
           6: "DISCONNECTED", 7: "CLOSE", 8: "CLOSED", 9: "ERROR", 10: "ATTACH", 11: "ATTACHED",
           12: "DETACH", 13: "DETACHED", 14: "PRESENCE", 15: "MESSAGE", 16: "SYNC", 17: "AUTH"}
MESSAGE_ACTIONS = {0: "create", 1: "update", 2: "delete", 3: "meta", 4: "summary", 5: "append"}
UP, DOWN = 0, 1  # agent -> broker, broker -> agent
_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One protocol message or HTTP line; ``at`` is when the proxy read it (epoch seconds)."""

    at: float
    direction: int  # UP or DOWN
    connection: int
    text: str
    channel: str | None = None


def _describe_message(message: dict[str, Any]) -> str:
    """``create ai-output text 4 B``: action, name, codec kind, stream status, data size."""
    action = MESSAGE_ACTIONS.get(message.get("action", 0), str(message.get("action")))
    parts = [action, message.get("name") or "-"]
    extras = message.get("extras")
    ai = extras.get("ai") if isinstance(extras, dict) else None
    if isinstance(ai, dict):
        codec, transport = ai.get("codec") or {}, ai.get("transport") or {}
        if isinstance(codec, dict) and codec.get("kind"):
            parts.append(str(codec["kind"]))
        if isinstance(transport, dict) and transport.get("status"):
            parts.append(f"status={transport['status']}")
    data = message.get("data")
    if isinstance(data, str | bytes) and data:
        parts.append(f"{len(data)} B")
    return " ".join(parts)


def describe(pm: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(text, channel)`` for one protocol message; ``text`` is None for a heartbeat."""
    action = ACTIONS.get(pm.get("action", -1), f"action {pm.get('action')}")
    if action == "HEARTBEAT":
        return None, None
    channel = pm.get("channel")
    text = action
    if action in ("ACK", "NACK"):
        text += f" #{pm.get('msgSerial')}" + (f" x{pm['count']}" if pm.get("count", 1) != 1
                                              else "")
    elif action == "MESSAGE":
        serial = f" #{pm['msgSerial']}" if "msgSerial" in pm else ""
        messages = pm.get("messages") or []
        text += serial + ": " + ", ".join(_describe_message(m) for m in messages
                                         if isinstance(m, dict))
    elif channel:
        text += f" {channel}"
    if pm.get("error"):
        error = pm["error"]
        text += f" error {error.get('code')}" if isinstance(error, dict) else " error"
    return text, channel


class _Direction:
    def __init__(self) -> None:
        self.buffer = b""
        self.websocket = False
        self.fragments = b""
        self.fragment_opcode = 0


class WireTap:
    """Decodes both directions of one proxied connection into :attr:`events`."""

    def __init__(self, connection: int, events: list[WireEvent]) -> None:
        self.connection = connection
        self.events = events
        self._sides = (_Direction(), _Direction())
        self._broken = False

    def feed(self, direction: int, data: bytes, at: float) -> None:
        if self._broken or not data:
            return
        try:
            self._feed(direction, data, at)
        except Exception:  # a trace is best effort: stop decoding this connection
            self._broken = True

    def _feed(self, direction: int, data: bytes, at: float) -> None:
        side = self._sides[direction]
        if not side.websocket:
            self._http(direction, side, data, at)
            return
        side.buffer += data
        while True:
            frame = self._frame(side)
            if frame is None:
                return
            opcode, payload = frame
            if opcode not in (1, 2):
                continue
            pm = json.loads(payload) if opcode == 1 else msgpack.unpackb(
                payload, raw=False, strict_map_key=False)
            if isinstance(pm, dict):
                text, channel = describe(pm)
                if text is not None:
                    self.events.append(WireEvent(at, direction, self.connection, text, channel))

    def _http(self, direction: int, side: _Direction, data: bytes, at: float) -> None:
        side.buffer += data
        head, sep, rest = side.buffer.partition(b"\r\n\r\n")
        if not sep:
            if len(side.buffer) > 65536:  # a body, not headers: forget it
                side.buffer = b""
            return
        side.buffer = b""
        first = head.split(b"\r\n", 1)[0]
        lower = head.lower()
        if first.startswith(_METHODS) or first.startswith(b"HTTP/1."):
            line = first.decode(errors="replace")
            if first.startswith(_METHODS):
                method, _, target = line.partition(" ")
                line = f"HTTP {method} {target.split(' ')[0].split('?')[0]}"
            else:
                line = "HTTP " + line.split(" ", 1)[1]
            self.events.append(WireEvent(at, direction, self.connection, line))
        upgrade = b"upgrade: websocket" in lower
        if upgrade and (direction == UP or first.startswith(b"HTTP/1.1 101")):
            side.websocket = True
            if rest:
                self._feed(direction, rest, at)

    @staticmethod
    def _frame(side: _Direction) -> tuple[int, bytes] | None:
        buffer = side.buffer
        if len(buffer) < 2:
            return None
        fin, opcode = buffer[0] & 0x80, buffer[0] & 0x0F
        masked, length = buffer[1] & 0x80, buffer[1] & 0x7F
        index = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, index = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, index = int.from_bytes(buffer[2:10], "big"), 10
        mask = b""
        if masked:
            if len(buffer) < index + 4:
                return None
            mask, index = buffer[index:index + 4], index + 4
        if len(buffer) < index + length:
            return None
        payload, side.buffer = buffer[index:index + length], buffer[index + length:]
        if mask:
            key = (mask * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
                length, "big")
        if opcode >= 8:  # control frames may come between fragments
            return opcode, payload
        if not fin:
            if opcode:  # the first fragment says what the message is
                side.fragment_opcode = opcode
            side.fragments += payload
            return 0, b""
        if opcode == 0:  # the last fragment of a message
            payload, side.fragments = side.fragments + payload, b""
            opcode = side.fragment_opcode
        return opcode, payload

"""Ably wire vocabulary and codecs.

Owns: the numeric protocol constants (protocol-message, message and presence actions, channel
flags), the broker's error type with Ably's error codes, and the conversions between bytes on the
wire (JSON text frames, msgpack binary frames and HTTP bodies) and Python dicts, and parsing the
``rewind`` channel parameter. Nothing here knows about connections, channels or storage.

Payload rule (both SDKs rely on it): on ingest a trailing ``base64`` encoding layer is stripped and
the payload stored as ``bytes``; on JSON egress binary payloads are re-encoded as base64 with
``base64`` appended to ``encoding``; on msgpack egress they travel as ``bin``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from enum import IntEnum
from typing import Any, Final, Literal

import msgpack  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_MODE_FLAGS",
    "MAX_FRAME_SIZE",
    "MAX_MESSAGE_SIZE",
    "AblyError",
    "Action",
    "Flag",
    "Format",
    "MessageAction",
    "PresenceAction",
    "decode_body",
    "decode_frame",
    "encode_body",
    "encode_frame",
    "error_body",
    "json_safe",
    "parse_rewind",
]

Format = Literal["json", "msgpack"]

MAX_MESSAGE_SIZE: Final = 65536
"""Ably's default ``maxMessageSize``: the summed size of the messages of one publish."""

MAX_FRAME_SIZE: Final = 524288
"""Ably's default ``maxFrameSize``: a bigger inbound websocket frame closes the connection."""


class Action(IntEnum):
    """Protocol-message actions (spec TR2)."""

    HEARTBEAT = 0
    ACK = 1
    NACK = 2
    CONNECT = 3
    CONNECTED = 4
    DISCONNECT = 5
    DISCONNECTED = 6
    CLOSE = 7
    CLOSED = 8
    ERROR = 9
    ATTACH = 10
    ATTACHED = 11
    DETACH = 12
    DETACHED = 13
    PRESENCE = 14
    MESSAGE = 15
    SYNC = 16
    AUTH = 17
    ACTIVATE = 18
    OBJECT = 19
    OBJECT_SYNC = 20
    ANNOTATION = 21


class MessageAction(IntEnum):
    """Message actions (spec TM5), as integers on the wire."""

    CREATE = 0
    UPDATE = 1
    DELETE = 2
    META = 3
    SUMMARY = 4
    APPEND = 5


class PresenceAction(IntEnum):
    """Presence message actions (spec TP2), as integers on the wire."""

    ABSENT = 0
    PRESENT = 1
    ENTER = 2
    LEAVE = 3
    UPDATE = 4


class Flag(IntEnum):
    """ATTACH/ATTACHED flag bits (spec TR3)."""

    HAS_PRESENCE = 1 << 0
    HAS_BACKLOG = 1 << 1
    RESUMED = 1 << 2
    TRANSIENT = 1 << 4
    ATTACH_RESUME = 1 << 5
    PRESENCE = 1 << 16
    PUBLISH = 1 << 17
    SUBSCRIBE = 1 << 18
    PRESENCE_SUBSCRIBE = 1 << 19
    ANNOTATION_PUBLISH = 1 << 21
    ANNOTATION_SUBSCRIBE = 1 << 22


MODE_MASK: Final = (
    Flag.PRESENCE
    | Flag.PUBLISH
    | Flag.SUBSCRIBE
    | Flag.PRESENCE_SUBSCRIBE
    | Flag.ANNOTATION_PUBLISH
    | Flag.ANNOTATION_SUBSCRIBE
)

DEFAULT_MODE_FLAGS: Final = int(
    Flag.PRESENCE
    | Flag.PUBLISH
    | Flag.SUBSCRIBE
    | Flag.PRESENCE_SUBSCRIBE
    | Flag.ANNOTATION_PUBLISH
)
"""Modes granted when an ATTACH requests none: what the real service grants a default key."""


class AblyError(Exception):
    """An error the broker reports to a client in Ably's error shape.

    Raised anywhere in the broker; the realtime side turns it into ERROR/NACK/DETACHED, the REST
    side into an HTTP response whose status is ``status_code``.
    """

    def __init__(self, code: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The ``ErrorInfo`` dict both SDKs decode."""
        return {"code": self.code, "statusCode": self.status_code, "message": self.message}

    @classmethod
    def bad_request(cls, message: str) -> AblyError:
        """A malformed or unsupported request (40000)."""
        return cls(40000, 400, message)

    @classmethod
    def invalid_data(cls, message: str) -> AblyError:
        """Message data or encoding the broker cannot accept (40013)."""
        return cls(40013, 400, message)

    @classmethod
    def not_found(cls, message: str) -> AblyError:
        """An unknown channel resource or message serial (40400)."""
        return cls(40400, 404, message)

    @classmethod
    def too_large(cls, size: int, limit: int) -> AblyError:
        """A publish bigger than ``maxMessageSize`` (40009)."""
        return cls(
            40009,
            400,
            f"maximum size of messages that can be published at once exceeded "
            f"(was {size} bytes; limit is {limit} bytes)",
        )

    @classmethod
    def internal(cls, message: str = "internal broker error") -> AblyError:
        """A bug in the broker, reported instead of crashing the connection (50000)."""
        return cls(50000, 500, message)


def error_body(error: AblyError) -> dict[str, Any]:
    """The REST error envelope ``{"error": ErrorInfo}``."""
    return {"error": error.to_dict()}


# --------------------------------------------------------------------------- frame codecs


def decode_frame(raw: str | bytes) -> dict[str, Any]:
    """Decode one inbound websocket frame: text frames are JSON, binary frames msgpack.

    Raises ``AblyError`` (40000) for anything that is not a map at the top level.
    """
    try:
        if isinstance(raw, str):
            value = json.loads(raw, parse_constant=_reject_constant)
        else:
            value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        _check_value(value, 0)
    except AblyError:
        raise
    except Exception as exc:  # json/msgpack raise many types on adversarial input
        raise AblyError.bad_request(f"unable to decode protocol message: {exc!r}") from None
    if not isinstance(value, dict):
        raise AblyError.bad_request("protocol message must be a map")
    return value


_MAX_DEPTH: Final = 64
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1


def _reject_constant(name: str) -> Any:
    raise AblyError.bad_request(f"{name} is not valid JSON")


def _check_value(value: Any, depth: int) -> None:
    """Reject values that decode but cannot be re-encoded for every client.

    Lone surrogates (JSON ``"\\ud800"``) cannot be UTF-8 encoded for msgpack or aiohttp, and
    integers outside 64 bits cannot be packed; a message carrying either would poison every
    subscriber, so it is refused at the door.
    """
    if depth > _MAX_DEPTH:
        raise AblyError.bad_request("value nested too deeply")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise AblyError.bad_request("string is not valid unicode") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise AblyError.bad_request("non-finite number")
    elif isinstance(value, bool) or value is None or isinstance(value, bytes):
        return
    elif isinstance(value, int):
        if not _INT_MIN <= value <= _UINT_MAX:
            raise AblyError.bad_request("integer out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, depth + 1)
            _check_value(item, depth + 1)
    elif type(value) is list:  # not tuple: msgpack's ExtType is a namedtuple
        for item in value:
            _check_value(item, depth + 1)
    else:  # msgpack ext types, timestamps, ...
        raise AblyError.bad_request(f"unsupported value type {type(value).__name__}")


def encode_frame(value: dict[str, Any], fmt: Format) -> str | bytes:
    """Encode one outbound frame in the connection's format (text JSON or binary msgpack).

    ``value`` must already be in wire form for that format (see :func:`json_safe`).
    """
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        return packed
    return json.dumps(value, separators=(",", ":"))


def decode_body(raw: bytes, content_type: str) -> Any:
    """Decode a REST request body by its ``Content-Type`` (msgpack or JSON; JSON if unknown)."""
    if not raw:
        return None
    try:
        if "msgpack" in content_type:
            value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        else:
            value = json.loads(raw, parse_constant=_reject_constant)
        _check_value(value, 0)
    except AblyError:
        raise
    except Exception as exc:
        raise AblyError.bad_request(f"unable to decode request body: {exc!r}") from None
    return value


def encode_body(value: Any, fmt: Format) -> tuple[bytes, str]:
    """Encode a REST response body; returns ``(body, content_type)``."""
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        return packed, "application/x-msgpack"
    return json.dumps(value, separators=(",", ":")).encode(), "application/json"


# --------------------------------------------------------------------------- payloads


def strip_base64(data: Any, encoding: str | None) -> tuple[Any, str | None]:
    """Undo a trailing ``base64`` layer so binary payloads are stored as ``bytes``.

    Returns the payload and the remaining encoding (``None`` when nothing remains).
    """
    if not encoding:
        return data, None
    layers = encoding.strip("/").split("/")
    if layers and layers[-1] == "base64":
        if not isinstance(data, str):
            raise AblyError.invalid_data("base64-encoded data must be a string")
        try:
            data = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise AblyError.invalid_data("data is not valid base64") from None
        layers.pop()
    remaining = "/".join(layers)
    return data, remaining or None


def wire_payload(data: str | bytes | None, encoding: str | None, fmt: Format) -> dict[str, Any]:
    """The ``data``/``encoding`` fields of an outbound message in the given format."""
    out: dict[str, Any] = {}
    if isinstance(data, bytes) and fmt == "json":
        out["data"] = base64.b64encode(data).decode("ascii")
        out["encoding"] = f"{encoding}/base64" if encoding else "base64"
        return out
    if data is not None:
        out["data"] = data
    if encoding:
        out["encoding"] = encoding
    return out


def json_safe(value: Any) -> Any:
    """Make client-supplied JSON-ish values (``extras``, ``metadata``) JSON-serialisable.

    Msgpack clients can send binary or non-string keys inside ``extras``; JSON egress must not
    crash on them, so bytes become base64 text and keys become strings.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def wire_size(value: Any) -> int:
    """Approximate size in bytes of a JSON-ish value, as Ably counts message size."""
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    try:
        return len(json.dumps(json_safe(value), separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return 0


_REWIND: Final = re.compile(r"^(\d{1,9})(s|m)?$")


def parse_rewind(value: Any) -> tuple[int | None, int | None] | None:
    """``rewind`` channel param: a message count (``"5"``) or a duration (``"10s"``, ``"2m"``)."""
    if value is None:
        return None
    match = _REWIND.match(str(value))
    if match is None:
        raise AblyError.bad_request(f"invalid rewind parameter {value!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if unit is None:
        return amount, None
    return None, amount * (1000 if unit == "s" else 60_000)

"""What the agent endpoint reads from an HTTP request, and how it refuses bad ones.

Owns: the invocation POST body (``{"inputEventId", "sessionName", ...extra}``, §1.2 of the
protocol notes) read with a size cap before it is parsed, the :class:`AgentRequest` handed
to the agent, and :class:`RequestRejected`, the one way a request is refused with a JSON
error body. Every refusal happens before a run exists, so a bad request never starts one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._errors import ErrorCode, InvalidInvocationError
from .._invocation import Invocation

__all__ = ["INVOCATION_FIELDS", "AgentRequest", "RequestRejected", "parse_body", "read_body"]

#: The body fields that make the :class:`Invocation`; every other field is ``extra``.
INVOCATION_FIELDS = frozenset({"inputEventId", "sessionName"})
_JSON_TYPES = ("application/json",)


class RequestRejected(Exception):
    """A request the endpoint refuses, answered as ``{"error": {code, statusCode, message}}``.

    The shape follows Ably's REST errors, so a front end can show ``message`` as is.
    """

    def __init__(self, status_code: int, message: str, *,
                 code: int = ErrorCode.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = int(code)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "statusCode": self.status_code,
                          "message": self.message}}


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """One invocation as the agent sees it.

    Attributes:
        invocation: which input triggers the run, and on which session channel.
        extra: every other field of the JSON body, as sent (the Vercel ``ChatTransport``
            puts ``prepareSendMessagesRequest().body`` here). Untrusted client input.
        headers: the request headers, lower-cased names (repeated headers joined with
            ``", "``): e.g. ``authorization`` to identify the user. Untrusted client input.
    """

    invocation: Invocation
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def session_name(self) -> str:
        return self.invocation.session_name

    @property
    def input_event_id(self) -> str:
        return self.invocation.input_event_id


def check_content_type(content_type: str | None) -> None:
    """Refuse (415) a body that does not say it is JSON.

    The JS ``ChatTransport`` always sends ``application/json``; anything else is a client
    bug (or a form post) that would otherwise fail later with a less useful message.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _JSON_TYPES and not media.endswith("+json"):
        shown = media or "none"
        raise RequestRejected(415, f"unable to read invocation; the body must be "
                                   f"application/json, got content type {shown}")


async def read_body(chunks: AsyncIterable[bytes], *, content_length: str | None,
                    limit: int) -> bytes:
    """Read the body, refusing (413) anything over ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading; a body without
    one (chunked) is read only up to the limit, so a huge upload never sits in memory.
    """
    too_big = RequestRejected(413, f"unable to read invocation; the body exceeds "
                                   f"{limit} bytes")
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise RequestRejected(400, "unable to read invocation; invalid Content-Length "
                                       f"{content_length!r}") from None
        if declared > limit:
            raise too_big
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def parse_body(raw: bytes) -> tuple[Invocation, dict[str, Any]]:
    """Decode and validate an invocation body; returns the invocation and the extra fields.

    Raises:
        RequestRejected: (400) not UTF-8 JSON (or nested too deeply to decode), not an
            object, or a bad invocation field (the message names each bad field).
    """
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        reason = "empty body" if not raw.strip() else f"malformed JSON ({exc})"
        raise RequestRejected(400, f"unable to read invocation; {reason}") from None
    except RecursionError:  # a small body can still nest deeper than the decoder goes
        raise RequestRejected(400, "unable to read invocation; JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise RequestRejected(400, "unable to read invocation; expected a JSON object "
                                   '{"inputEventId", "sessionName"}, got '
                                   f"{type(body).__name__}")
    try:
        invocation = Invocation.from_json(body)
    except InvalidInvocationError as exc:
        raise RequestRejected(400, exc.message, code=exc.code) from None
    extra = {key: value for key, value in body.items() if key not in INVOCATION_FIELDS}
    return invocation, extra

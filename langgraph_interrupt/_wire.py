"""The Ably AI Transport wire vocabulary: names, headers, reasons and message shapes.

Owns: every event name and header name the protocol uses (as the JS SDK 0.8 speaks it,
``../shared/research/ai-transport-protocol.md`` §0 and §2), the run/step end reasons, the
message dataclasses exchanged with channels, and the one tolerant reader of the
``extras.ai`` envelope. Stdlib only; nothing here does I/O.

The envelope (§0.1)::

    extras = {"ai": {"transport": {str: str}, "codec": {str: str}}, "ephemeral": True?}

Both tiers are flat string maps: booleans are ``"true"``/``"false"``, numbers decimal
strings, structured values JSON strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal

# -- message names (§0.2) -----------------------------------------------------------------
EVENT_INPUT: Final = "ai-input"
EVENT_OUTPUT: Final = "ai-output"
EVENT_RUN_START: Final = "ai-run-start"
EVENT_RUN_RESUME: Final = "ai-run-resume"
EVENT_RUN_SUSPEND: Final = "ai-run-suspend"
EVENT_RUN_END: Final = "ai-run-end"
EVENT_STEP_START: Final = "ai-step-start"
EVENT_STEP_END: Final = "ai-step-end"
EVENT_CANCEL: Final = "ai-cancel"

# -- transport headers (§2) ---------------------------------------------------------------
H_ROLE: Final = "role"
H_CODEC_MESSAGE_ID: Final = "codec-message-id"
H_RUN_ID: Final = "run-id"
H_RUN_CLIENT_ID: Final = "run-client-id"
H_PARENT: Final = "parent"
H_FORK_OF: Final = "fork-of"
H_MSG_REGENERATE: Final = "msg-regenerate"
H_SUPERSEDES: Final = "supersedes"
H_EVENT_ID: Final = "event-id"
H_INVOCATION_ID: Final = "invocation-id"
H_INPUT_CLIENT_ID: Final = "input-client-id"
H_INPUT_CODEC_MESSAGE_ID: Final = "input-codec-message-id"
H_STEP_ID: Final = "step-id"
H_STEP_CLIENT_ID: Final = "step-client-id"
H_STEP_START_SERIAL: Final = "step-start-serial"
H_STEP_REASON: Final = "step-reason"
H_RUN_REASON: Final = "run-reason"
H_ERROR_CODE: Final = "error-code"
H_ERROR_MESSAGE: Final = "error-message"
H_STEER_IDS: Final = "steer-codec-message-ids"
H_STREAM: Final = "stream"
H_STATUS: Final = "status"
H_STREAM_ID: Final = "stream-id"
H_DISCRETE: Final = "discrete"

# -- extension headers (this package's; the official client ignores headers it does not
# know, and the ``x-`` prefix keeps them clear of names a later protocol version may take) --
#: ``ai-cancel``: why the client cancels (a reason name); ``ai-run-end{cancelled}``: why
#: the run was cancelled.
H_CANCEL_REASON: Final = "x-cancel-reason"
#: ``ai-run-end{cancelled}``: the client id that asked for the cancel, when known.
H_CANCEL_BY: Final = "x-cancel-by"
#: ``ai-cancel``: the client's wall clock when it asked, in Unix milliseconds (metrics).
H_CANCEL_SENT_AT: Final = "x-cancel-sent-at"
#: ``ai-run-start``/``ai-run-resume``: the agent worker serving the run, when that worker is
#: in the channel's presence (so that another worker can end the run if it dies).
H_WORKER: Final = "x-worker"

# -- reasons and statuses (§3) ------------------------------------------------------------
RunEndReason = Literal["complete", "cancelled", "error"]
StepEndReason = Literal["complete", "failed", "cancelled"]
RunStatus = Literal["active", "suspended", "complete", "cancelled", "error"]
StreamStatus = Literal["streaming", "complete", "cancelled"]
MessageAction = Literal["message.create", "message.append", "message.update", "message.delete"]

#: Cancel reason names (``x-cancel-reason``): the default when nobody gave one, by where
#: the cancel came from (``CancelReason.source``).
DEFAULT_REASONS: Final[Mapping[str, str]] = MappingProxyType({
    "client": "client_request", "input": "new_input", "shutdown": "shutdown",
    "timeout": "timeout", "error": "error", "user": "interrupted"})
#: Reason names longer than this are refused (from the wire: ignored, and logged).
MAX_REASON_LENGTH: Final = 64


def check_reason_name(name: object) -> str | None:
    """``name`` if it is a usable reason name (1 to 64 printable characters), else ``None``.

    Reason names are free text, shown to people ("Interrupted: user_speaking") and logged;
    a hostile client must not be able to put control characters or a novel in them.
    """
    if not isinstance(name, str) or not 0 < len(name) <= MAX_REASON_LENGTH:
        return None
    return name if name.isprintable() else None


RUN_END_REASONS: Final[frozenset[str]] = frozenset({"complete", "cancelled", "error"})
STEP_END_REASONS: Final[frozenset[str]] = frozenset({"complete", "failed", "cancelled"})

#: Agent string the JS SDK sends as the ``agent`` channel param; ours names itself.
CHANNEL_AGENT_PARAM: Final = "langgraph-interrupt-py/0.1 vercel-ai-sdk-ui-message/0.8.0"

#: Header values longer than this are treated as malformed (a hostile or broken peer).
MAX_HEADER_VALUE: Final = 64 * 1024
#: Header maps with more entries than this are treated as malformed.
MAX_HEADERS: Final = 64


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message to publish: what the protocol needs and nothing else.

    ``id`` is an idempotency key: a backend that supports idempotent publishing (Ably)
    drops a second publish with the same id, so a retried publish never duplicates.
    """

    name: str
    data: Any = None
    extras: Mapping[str, Any] | None = None
    id: str | None = None


#: Ably's refusal of a multi-message publish whose client-supplied ids are not one base
#: with each message's position (error 40031).
BATCH_IDS_REFUSED: Final = ("Client-specified message ids do not match the required format "
                            "for multi-message ProtocolMessages")


def batch_ids(messages: Sequence[OutboundMessage], base: str) -> list[OutboundMessage]:
    """The messages of one atomic publish, with the ids Ably requires of them.

    When several messages are published together with client-supplied ids, Ably refuses
    the publish (40031) unless every id is ``<base>:<index>``: one base, and each message's
    position. Call it for any batch whose messages carry ids; ``base`` is the batch's
    idempotency key (a retry with the same base is dropped as a whole). A single message
    keeps its own id: the rule is only for batches.
    """
    if len(messages) < 2:
        return list(messages)
    return [replace(message, id=f"{base}:{index}") for index, message in enumerate(messages)]


def batch_ids_refusal(ids: Sequence[str | None]) -> str | None:
    """Why Ably would refuse these ids in one publish (40031), or ``None`` if it would not:
    for the brokers that stand in for it."""
    if len(ids) < 2 or all(id_ is None for id_ in ids):
        return None
    base = None
    for index, id_ in enumerate(ids):
        if not id_:
            return "Client-specified message id cannot be empty"
        head, colon, tail = id_.rpartition(":")
        if not colon or not head or tail != str(index) or base not in (None, head):
            return BATCH_IDS_REFUSED
        base = head
    return None


# -- Ably's channel lifecycle metachannel (service metadata, not the AI Transport) ---------
#: Channels whose names start so are the service's metadata: nobody publishes there.
META_PREFIX: Final = "[meta]"
#: Where Ably announces each channel becoming active (``channel.opened``) and inactive.
LIFECYCLE_CHANNEL: Final = "[meta]channel.lifecycle"
EVENT_CHANNEL_OPENED: Final = "channel.opened"
EVENT_CHANNEL_CLOSED: Final = "channel.closed"


def channel_details(channel: str, connections: int) -> dict[str, Any]:
    """Ably's ``ChannelDetails`` for ``channel`` held by ``connections`` connections (the
    data of a lifecycle event), as the brokers that stand in for Ably publish it."""
    return {"channelId": channel, "status": {"isActive": connections > 0, "occupancy": {
        "metrics": {"connections": connections, "publishers": connections,
                    "subscribers": connections, "presenceConnections": 0,
                    "presenceMembers": 0, "presenceSubscribers": 0}}}}


def opened_channel(message: ChannelMessage) -> str | None:
    """The channel a ``channel.opened`` lifecycle event announces; ``None`` for any other
    message, and for one whose data is not a ``ChannelDetails`` naming a plain channel."""
    if message.name != EVENT_CHANNEL_OPENED or not isinstance(message.data, Mapping):
        return None
    channel = message.data.get("channelId")
    if not isinstance(channel, str) or not channel or channel.startswith(META_PREFIX):
        return None
    return channel


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """A message as a subscriber or a history page sees it.

    ``serial`` identifies the message for its whole life; ``version_serial`` identifies
    this version of it (a create's version serial equals its serial; each append or update
    gets a new, lexicographically larger one). Appends carry no ``name`` and only their
    fragment in ``data``; history returns one aggregated latest version per serial.
    """

    name: str | None
    data: Any
    extras: Mapping[str, Any] | None
    serial: str
    action: MessageAction = "message.create"
    version_serial: str = ""
    client_id: str | None = None
    connection_id: str | None = None
    id: str | None = None
    timestamp: int = 0


PresenceAction = Literal["present", "enter", "update", "leave"]


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A presence member as a channel reports it: who (``client_id`` and the connection the
    service stamped, never what the member claims), what happened and the member's data."""

    action: PresenceAction
    client_id: str | None
    connection_id: str | None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """The ``extras.ai`` tiers of a message, validated as flat string maps."""

    transport: Mapping[str, str]
    codec: Mapping[str, str] = field(default_factory=dict)
    ephemeral: bool = False


def _flat_str_map(value: object) -> dict[str, str] | None:
    if not isinstance(value, Mapping) or len(value) > MAX_HEADERS:
        return None
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            return None
        if len(item) > MAX_HEADER_VALUE:
            return None
    return dict(value)


def read_envelope(extras: object) -> Envelope | None:
    """Read and validate the ``extras.ai`` envelope; ``None`` if absent or malformed.

    Messages without a valid envelope are foreign (or hostile) traffic: callers skip them.
    This is the single place that decides what a well-formed envelope is.
    """
    if not isinstance(extras, Mapping):
        return None
    ai = extras.get("ai")
    if not isinstance(ai, Mapping):
        return None
    transport = _flat_str_map(ai.get("transport"))
    if transport is None:
        return None
    raw_codec = ai.get("codec")
    codec = {} if raw_codec is None else _flat_str_map(raw_codec)
    if codec is None:
        return None
    return Envelope(transport, codec, extras.get("ephemeral") is True)


def make_extras(
    transport: Mapping[str, str], codec: Mapping[str, str] | None = None, *, ephemeral: bool = False
) -> dict[str, Any]:
    """Build an ``extras`` value; the codec tier is written only when non-empty (§0.1)."""
    ai: dict[str, Any] = {"transport": transport}
    if codec:
        ai["codec"] = codec
    extras: dict[str, Any] = {"ai": ai}
    if ephemeral:
        extras["ephemeral"] = True
    return extras

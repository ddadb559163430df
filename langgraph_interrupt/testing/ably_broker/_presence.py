"""Realtime presence: each channel's presence set and the rules for changing it.

Owns: validating the presence messages a connection sends (enter/update/leave), the presence set
per channel (members keyed by ``connectionId`` + ``clientId``), the ``PRESENCE`` deliveries to
every attachment in presence-subscribe mode, the ``SYNC`` a channel sends after ``ATTACHED``
(``HAS_PRESENCE``), and leaving a connection's members: at once on ``DETACH`` or ``CLOSE``, after
``leave_timeout_ms`` when its transport is lost and not resumed in time.

Rules (the Ably spec RTP*, the error catalogue of ably-common, and ably-js's real-service tests):

* ``clientId`` and ``connectionId`` are stamped by the broker, never taken from the client: an
  identified connection acts as its own ``clientId`` only (40012 otherwise), a wildcard one
  (key auth without clientId, a ``*`` token) may name any, and one without any clientId gets
  91000. A token whose capability lacks ``presence`` for the channel gets 40160.
* ``id`` is ``{connectionId}:{msgSerial}:{index}``, what both SDKs parse to order members.
  An ``enter`` repeating the id of the member it re-enters (RTP17g, after a resume) is a
  duplicate: acknowledged, not broadcast.
* The server decides the broadcast action: ``enter`` for a member not present, ``update`` for
  one that is; a ``leave`` of a member that is not present is acknowledged and broadcasts
  nothing. A ``leave`` without data carries the member's data.
* Leaves the broker synthesizes (detach, close, lost connection) have an ``id`` that does not
  start with the member's ``connectionId``, so the SDKs order them by ``timestamp`` (RTP2b1).
* Every ``ATTACHED`` (resumed or not) has ``HAS_PRESENCE`` and is followed by a full ``SYNC``
  when the channel has members; both SDKs rebuild their set on every ``ATTACHED``, so a client
  that missed changes while away catches up. Presence is not stored in channel history and is
  not part of the resume replay.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._auth import ClientIdentity, IdentityKind
from ._faults import Faults
from ._hub import Hub
from ._protocol import (
    AblyError,
    Action,
    Flag,
    Format,
    PresenceAction,
    encode_frame,
    json_safe,
    strip_base64,
    wire_payload,
    wire_size,
)

__all__ = ["Member", "Presence", "PresenceOp", "parse_presence_list"]

log = logging.getLogger(__name__)

SYNC_PAGE_SIZE = 100
"""Members per ``SYNC`` frame; a bigger set is paged with a ``{syncId}:{cursor}`` serial."""

_MAX_ID_LENGTH = 2048
_MAX_OPS = 1000
_CLIENT_ACTIONS = frozenset({PresenceAction.ENTER, PresenceAction.LEAVE, PresenceAction.UPDATE})


@dataclass(frozen=True, slots=True)
class Member:
    """A presence message as the broker stores (latest per member) and delivers it."""

    id: str
    action: PresenceAction
    client_id: str
    connection_id: str
    timestamp: int
    data: str | bytes | None = None
    encoding: str | None = None
    extras: dict[str, Any] | None = None

    def to_wire(self, fmt: Format, action: PresenceAction | None = None) -> dict[str, Any]:
        """The presence message dict both SDKs decode (every field set: ably-python does not
        fill missing ones from the protocol message)."""
        out: dict[str, Any] = {
            "id": self.id,
            "action": int(self.action if action is None else action),
            "clientId": self.client_id,
            "connectionId": self.connection_id,
            "timestamp": self.timestamp,
        }
        out.update(wire_payload(self.data, self.encoding, fmt))
        if self.extras is not None:
            out["extras"] = self.extras if fmt == "msgpack" else json_safe(self.extras)
        return out


@dataclass(frozen=True, slots=True)
class PresenceOp:
    """One presence message a client submitted, validated but not yet applied."""

    action: PresenceAction
    id: str | None
    client_id: str | None
    data: str | bytes | None
    encoding: str | None
    extras: dict[str, Any] | None
    size: int


def _opt(obj: dict[str, Any], key: str, kind: type, max_length: int | None = None) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise AblyError.bad_request(f"presence field {key!r} has the wrong type")
    if max_length is not None and isinstance(value, str) and len(value) > max_length:
        raise AblyError.bad_request(f"presence field {key!r} is too long")
    return value


def parse_presence(obj: Any) -> PresenceOp:
    """Validate one submitted presence message (``{action, id?, clientId?, data?, ...}``)."""
    if not isinstance(obj, dict):
        raise AblyError.bad_request("presence message must be a map")
    raw_action = obj.get("action")
    if isinstance(raw_action, bool) or not isinstance(raw_action, int):
        raise AblyError.bad_request("presence action must be an integer")
    if raw_action not in _CLIENT_ACTIONS:
        raise AblyError.bad_request(f"presence action {raw_action} cannot be sent by a client")
    encoding = _opt(obj, "encoding", str, 256)
    data, encoding = strip_base64(obj.get("data"), encoding)
    if isinstance(data, bytearray):
        data = bytes(data)
    if data is not None and not isinstance(data, str | bytes):
        raise AblyError.invalid_data("presence data must be a string or binary (encode others)")
    client_id = _opt(obj, "clientId", str, _MAX_ID_LENGTH)
    extras = _opt(obj, "extras", dict)
    return PresenceOp(
        action=PresenceAction(raw_action),
        id=_opt(obj, "id", str, _MAX_ID_LENGTH),
        client_id=client_id,
        data=data,
        encoding=encoding,
        extras=extras,
        size=wire_size(data) + wire_size(client_id) + wire_size(extras),
    )


def parse_presence_list(value: Any) -> list[PresenceOp]:
    """Validate the ``presence`` of a PRESENCE protocol message: a non-empty list."""
    if not isinstance(value, list) or not value:
        raise AblyError.bad_request("presence must be a non-empty list")
    if len(value) > _MAX_OPS:
        raise AblyError.bad_request("too many presence messages in one protocol message")
    return [parse_presence(item) for item in value]


def _client_id_for(identity: ClientIdentity, op: PresenceOp) -> str:
    """The clientId a presence message acts as (never one the connection may not assume)."""
    requested = op.client_id
    if requested == "*":
        raise AblyError(40012, 400, "the wildcard clientId '*' cannot be present on a channel")
    own = identity.client_id
    if identity.kind is IdentityKind.IDENTIFIED and own is not None:
        if requested is not None and requested != own:
            raise AblyError(
                40012,
                400,
                f"mismatched clientId: presence message has {requested!r}, connection is {own!r}",
            )
        return own
    if identity.kind is IdentityKind.ANONYMOUS and requested is not None:
        raise AblyError(40012, 400, "an anonymous client cannot act as a clientId")
    if requested is None:
        raise AblyError(91000, 400, "unable to enter presence channel (no clientId)")
    return requested


class Presence:
    """The presence sets of every channel of one broker, and the timers that empty them."""

    def __init__(
        self,
        hub: Hub,
        faults: Faults,
        now_ms: Callable[[], int],
        *,
        server_id: str,
        leave_timeout_ms: int,
        max_members: int,
        max_message_size: int,
    ) -> None:
        if leave_timeout_ms < 0:
            raise ValueError("presence_leave_timeout_ms must be >= 0")
        if max_members < 1:
            raise ValueError("max_presence_members must be >= 1")
        self.hub = hub
        self.faults = faults
        self._now_ms = now_ms
        self._server_id = server_id
        self.leave_timeout_ms = leave_timeout_ms
        self.max_members = max_members
        self.max_message_size = max_message_size
        self._sets: dict[str, dict[tuple[str, str], Member]] = {}
        self._by_connection: dict[str, set[str]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ reading

    def members(
        self, channel: str, *, client_id: str | None = None, connection_id: str | None = None
    ) -> list[Member]:
        """The channel's current members (in entry order), optionally filtered."""
        return [
            m
            for m in self._sets.get(channel, {}).values()
            if (client_id is None or m.client_id == client_id)
            and (connection_id is None or m.connection_id == connection_id)
        ]

    # ------------------------------------------------------------------ changing the set

    def apply(
        self,
        channel: str,
        identity: ClientIdentity,
        connection_id: str,
        msg_serial: int,
        raw: Any,
    ) -> None:
        """Apply one PRESENCE protocol message and deliver it; raises ``AblyError`` (no change)."""
        ops = parse_presence_list(raw)
        if not identity.can(channel, "presence"):
            raise AblyError(
                40160,
                401,
                f"unable to enter presence channel; operation not permitted with provided "
                f"capability (channel {channel!r})",
            )
        total = sum(op.size for op in ops)
        if total > self.max_message_size:
            raise AblyError.too_large(total, self.max_message_size)
        client_ids = [_client_id_for(identity, op) for op in ops]
        members = self._sets.get(channel, {})
        joining = {
            (connection_id, c)
            for op, c in zip(ops, client_ids, strict=True)
            if op.action != PresenceAction.LEAVE and (connection_id, c) not in members
        }
        if len(members) + len(joining) > self.max_members:
            raise AblyError(
                91003, 400, "unable to enter presence channel (maximum member limit exceeded)"
            )

        now = self._now_ms()
        members = self._sets.setdefault(channel, members)
        out: list[Member] = []
        for index, (op, client_id) in enumerate(zip(ops, client_ids, strict=True)):
            key = (connection_id, client_id)
            current = members.get(key)
            member_id = f"{connection_id}:{msg_serial}:{index}"
            if op.action == PresenceAction.LEAVE:
                if current is None:
                    continue
                del members[key]
                keep = op.data is None
                out.append(
                    Member(
                        member_id,
                        PresenceAction.LEAVE,
                        client_id,
                        connection_id,
                        now,
                        current.data if keep else op.data,
                        current.encoding if keep else op.encoding,
                        op.extras,
                    )
                )
                continue
            if current is not None and op.action == PresenceAction.ENTER and op.id == current.id:
                continue  # an automatic re-enter (RTP17g) of a member still present
            action = PresenceAction.UPDATE if current is not None else PresenceAction.ENTER
            member = Member(
                member_id, action, client_id, connection_id, now, op.data, op.encoding, op.extras
            )
            members[key] = member
            out.append(member)
        if not members:
            del self._sets[channel]
        self._index(connection_id, channel)
        if out:
            pm = {"id": f"{connection_id}:{msg_serial}", "connectionId": connection_id}
            self._broadcast(channel, pm, now, out)

    def leave_connection(self, connection_id: str, channel: str | None = None) -> None:
        """The connection's members leave (on ``channel`` only, if given), broadcast at once."""
        channels = self._by_connection.get(connection_id, set())
        for name in sorted(channels if channel is None else channels & {channel}):
            members = self._sets.get(name, {})
            gone = [m for key, m in members.items() if key[0] == connection_id]
            if not gone:
                continue
            for member in gone:
                del members[(connection_id, member.client_id)]
            if not members:
                self._sets.pop(name, None)
            now = self._now_ms()
            pm_id = f"{self._server_id}-leave-{next(self._ids)}"
            leaves = [
                replace(m, id=f"{pm_id}:0:{i}", action=PresenceAction.LEAVE, timestamp=now)
                for i, m in enumerate(gone)
            ]
            self._broadcast(name, {"id": pm_id}, now, leaves)
        for name in list(channels if channel is None else channels & {channel}):
            self._index(connection_id, name)
        if connection_id not in self._by_connection:
            self.connection_back(connection_id)

    # ------------------------------------------------------------------ connection lifecycle

    def connection_lost(self, connection_id: str) -> None:
        """The connection's transport is gone: its members leave unless it resumes in time."""
        if connection_id not in self._by_connection or connection_id in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[connection_id] = loop.call_later(
            self.leave_timeout_ms / 1000, self._expire, connection_id
        )

    def connection_back(self, connection_id: str) -> None:
        """The connection resumed (or ended): cancel its pending leave."""
        timer = self._timers.pop(connection_id, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, connection_id: str) -> None:
        self._timers.pop(connection_id, None)
        log.debug("ably broker: %s did not come back; its members leave", connection_id)
        self.leave_connection(connection_id)

    def clear(self) -> None:
        """Forget every member and pending leave (broker reset), without broadcasting."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._sets.clear()
        self._by_connection.clear()

    # ------------------------------------------------------------------ frames

    def sync_frames(
        self, channel: str, fmt: Format, *, modes: int, force: bool
    ) -> list[str | bytes]:
        """The ``SYNC`` frames an attach (or a client's SYNC request) is answered with.

        Empty when the attachment is not in presence-subscribe mode, or when the channel has no
        members and ``force`` is false; the ATTACHED then goes without ``HAS_PRESENCE``.
        """
        if not modes & Flag.PRESENCE_SUBSCRIBE:
            return []
        members = list(self._sets.get(channel, {}).values())
        if not members and not force:
            return []
        pages = [
            members[i : i + SYNC_PAGE_SIZE] for i in range(0, len(members), SYNC_PAGE_SIZE)
        ] or [[]]
        sync_id = f"sync{next(self._ids)}"
        frames: list[str | bytes] = []
        for number, page in enumerate(pages, 1):
            cursor = str(number) if number < len(pages) else ""
            pm = {
                "action": int(Action.SYNC),
                "channel": channel,
                "channelSerial": f"{sync_id}:{cursor}",
                "presence": [m.to_wire(fmt, PresenceAction.PRESENT) for m in page],
            }
            frames.append(encode_frame(pm, fmt))
        return frames

    def _broadcast(
        self, channel: str, pm: dict[str, Any], timestamp: int, members: Sequence[Member]
    ) -> None:
        """Deliver one PRESENCE protocol message to every presence subscriber of the channel."""
        shared: dict[str, str | bytes] = {}
        for attachment in self.hub.attachments(channel):
            if not attachment.modes & Flag.PRESENCE_SUBSCRIBE:
                continue
            subscriber = attachment.subscriber
            frame = shared.get(subscriber.format)
            if frame is None:
                message = {
                    "action": int(Action.PRESENCE),
                    "channel": channel,
                    "timestamp": timestamp,
                    **pm,
                    "presence": [m.to_wire(subscriber.format) for m in members],
                }
                frame = shared[subscriber.format] = encode_frame(message, subscriber.format)
            subscriber.deliver(frame, self.faults.delay_for(channel, subscriber.connection_id))

    def _index(self, connection_id: str, channel: str) -> None:
        """Record whether the connection still has members on the channel."""
        present = any(key[0] == connection_id for key in self._sets.get(channel, {}))
        channels = self._by_connection.setdefault(connection_id, set())
        if present:
            channels.add(channel)
        else:
            channels.discard(channel)
        if not channels:
            del self._by_connection[connection_id]

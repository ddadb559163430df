"""An embedded, in-process channel backend that behaves like the real service.

Owns: :class:`InMemoryBroker` and its per-participant :class:`InMemoryChannel` handles. It
is the default backend for examples and tests (the role httpx's ``MockTransport`` plays),
so it reproduces what the golden traces show the real service doing: lexicographic
serials, create/append/update actions, asynchronous in-order delivery with echo to the
publisher, aggregated history up to the attach point, full-contents first contact for late
joiners, idempotent publish ids, ephemeral messages kept out of history. It also injects
faults (failed appends, a channel without the mutable-messages rule, a participant whose
connection dies: :meth:`InMemoryChannel.crash`) so failure paths can be tested without a
network. Presence (:class:`~._base.PresenceChannel`) is kept per channel, members keyed by
connection and client id, delivered in order with the messages. As on Ably, a channel's
first attachment and its last detach are announced on ``[meta]channel.lifecycle``
(``channel.opened`` / ``channel.closed``), where nobody may publish; unlike Ably, these
events are not kept in history (a long-lived broker would grow with every channel).

Everything runs on one event loop; nothing here is thread-safe, by design (the transport
hops to the loop before touching a channel).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import ChannelError, ErrorCode, InvalidArgumentError, MutableMessagesDisabledError
from .._wire import (
    EVENT_CHANNEL_CLOSED,
    EVENT_CHANNEL_OPENED,
    LIFECYCLE_CHANNEL,
    META_PREFIX,
    ChannelMessage,
    MessageAction,
    OutboundMessage,
    PresenceAction,
    PresenceEvent,
    batch_ids_refusal,
    channel_details,
)
from ._base import Listener, PresenceListener

__all__ = ["InMemoryBroker", "InMemoryChannel", "WireRecord"]

logger = logging.getLogger("langgraph_interrupt.channels")


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One operation as the broker accepted it, for tests, demos and trace comparison."""

    op: str  # "publish" | "append" | "update"
    channel: str
    client_id: str | None
    connection_id: str
    name: str | None
    data: Any
    extras: Mapping[str, Any] | None
    serial: str
    version_serial: str


@dataclass(slots=True)
class _Stored:
    serial: str
    name: str | None
    data: Any
    extras: Mapping[str, Any] | None
    client_id: str | None
    connection_id: str
    id: str
    timestamp: int
    version_serial: str
    mutated: bool = False
    ephemeral: bool = False
    fragments: list[str] | None = None  # appended text not yet joined into ``data``

    def snapshot(self, action: MessageAction) -> ChannelMessage:
        if self.fragments is not None:
            self.data = "".join(self.fragments)
            self.fragments = None
        return ChannelMessage(
            self.name, self.data, self.extras, self.serial, action, self.version_serial,
            self.client_id, self.connection_id, self.id, self.timestamp,
        )


@dataclass(slots=True)
class _ChannelState:
    name: str
    serials: list[str] = field(default_factory=list)  # creation order == serial order
    messages: dict[str, _Stored] = field(default_factory=dict)
    by_id: dict[str, str] = field(default_factory=dict)
    handles: list[InMemoryChannel] = field(default_factory=list)
    members: dict[tuple[str, str | None], PresenceEvent] = field(default_factory=dict)

    @property
    def last_serial(self) -> str | None:
        return self.serials[-1] if self.serials else None


def _clone(value: Any) -> Any:
    # Messages cross a process boundary on the real service; copying on ingest gives every
    # reader an independent value without a deepcopy on the hot path (strings are shared).
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


class InMemoryBroker:
    """A set of named channels in this process.

    Args:
        mutable_messages: when False, appends and updates fail with 93002, like an Ably
            channel without the "updates, deletes and appends" rule.
        record: keep a :class:`WireRecord` of every accepted operation in :attr:`records`.

    Example:
        >>> broker = InMemoryBroker()
        >>> agent = broker.channel("ai:chat-1", client_id="agent")
        >>> user = broker.channel("ai:chat-1", client_id="user-1")
    """

    def __init__(self, *, mutable_messages: bool = True, record: bool = False) -> None:
        self.mutable_messages = mutable_messages
        self.records: list[WireRecord] | None = [] if record else None
        self._channels: dict[str, _ChannelState] = {}
        self._counter = itertools.count(1)
        self._connections = itertools.count(1)
        self._last_ms = 0
        self._faults: dict[str, deque[BaseException]] = {"publish": deque(), "append": deque(),
                                                         "update": deque(), "history": deque()}

    def channel(self, name: str, *, client_id: str | None = None) -> InMemoryChannel:
        """A new participant handle on channel ``name`` (a new "connection")."""
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("channel name must be a non-empty string")
        state = self._channels.get(name)
        if state is None:
            state = self._channels[name] = _ChannelState(name)
        return InMemoryChannel(self, state, client_id, f"mem-conn-{next(self._connections)}")

    def fail_next(self, op: str, count: int = 1, error: BaseException | None = None) -> None:
        """Make the next ``count`` calls of ``op`` (publish/append/update/history) fail.

        The default error is a retryable :class:`ChannelError` (a transient service fault).
        """
        if op not in self._faults:
            raise InvalidArgumentError(f"unknown operation {op!r}")
        for _ in range(count):
            self._faults[op].append(
                error or ChannelError(f"unable to {op}; injected fault", code=50000,
                                      retryable=True)
            )

    def history_of(self, name: str) -> list[ChannelMessage]:
        """The channel's messages, oldest first, each in its latest aggregated version."""
        state = self._channels.get(name)
        if state is None:
            return []
        return [_aggregate(state.messages[s]) for s in state.serials]

    # -- internals used by InMemoryChannel ------------------------------------------------
    def _fault(self, op: str) -> None:
        faults = self._faults[op]
        if faults:
            raise faults.popleft()

    def _next_serial(self) -> tuple[str, int]:
        now = int(time.time() * 1000)
        self._last_ms = max(self._last_ms, now)
        return f"{self._last_ms:014d}-{next(self._counter):09d}@memory:0", self._last_ms

    def _lifecycle(self, event: str, state: _ChannelState) -> None:
        """Announce ``state`` opened or closed on the lifecycle metachannel, as the service."""
        meta = self._channels.get(LIFECYCLE_CHANNEL)
        if state.name.startswith(META_PREFIX) or meta is None or not meta.handles:
            return
        serial, ms = self._next_serial()
        stored = _Stored(serial, event, channel_details(state.name, len(state.handles)), None,
                         None, "", f"meta:{serial}", ms, serial)  # delivered, not kept
        snapshot = stored.snapshot("message.create")
        for handle in meta.handles:
            handle._deliver(snapshot)

    def _record(self, op: str, handle: InMemoryChannel, stored: _Stored, data: Any,
                extras: Mapping[str, Any] | None, version: str) -> None:
        assert self.records is not None
        self.records.append(WireRecord(op, handle.name, handle.client_id, handle.connection_id,
                                       stored.name if op == "publish" else None, data, extras,
                                       stored.serial, version))


def _aggregate(stored: _Stored) -> ChannelMessage:
    return stored.snapshot("message.update" if stored.mutated else "message.create")


class _Page:
    __slots__ = ("_items", "_limit", "_rest")

    def __init__(self, items: list[ChannelMessage], rest: list[ChannelMessage], limit: int):
        self._items, self._rest, self._limit = items, rest, limit

    @property
    def items(self) -> Sequence[ChannelMessage]:
        return self._items

    def has_next(self) -> bool:
        return bool(self._rest)

    async def next(self) -> _Page:
        return _Page(self._rest[: self._limit], self._rest[self._limit :], self._limit)


class InMemoryChannel:
    """One participant's handle on an :class:`InMemoryBroker` channel (see ``Channel``)."""

    def __init__(self, broker: InMemoryBroker, state: _ChannelState, client_id: str | None,
                 connection_id: str) -> None:
        self._broker = broker
        self._state = state
        self._client_id = client_id
        self.connection_id = connection_id
        self._listeners: list[Listener] = []
        self._presence_listeners: list[PresenceListener] = []
        self._crashed = False
        self._attached = False
        self._attach_serial: str | None = None
        self._seen_old: set[str] = set()
        self._pending: deque[ChannelMessage | PresenceEvent] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._msg_serial = itertools.count()

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def attach_serial(self) -> str | None:
        return self._attach_serial

    async def attach(self, *, serial: bool = True, recent: int = 0) -> str | None:
        # ``recent`` is ignored: history here is read without a round trip.
        self._alive("attach")
        if not self._attached:
            self._loop = asyncio.get_running_loop()
            self._attached = True
            self._attach_serial = self._state.last_serial
            self._state.handles.append(self)
            if len(self._state.handles) == 1:
                self._broker._lifecycle(EVENT_CHANNEL_OPENED, self._state)
        return self._attach_serial

    async def detach(self) -> None:
        if self._attached:
            self._leave()  # detaching leaves presence at once, as on the service
            self._attached = False
            self._state.handles.remove(self)
            self._pending.clear()
            if not self._state.handles:
                self._broker._lifecycle(EVENT_CHANNEL_CLOSED, self._state)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[str]:
        self._alive("publish")
        if self.name.startswith(META_PREFIX):
            raise ChannelError(f"unable to publish on metachannel {self.name!r}", code=40160)
        self._broker._fault("publish")
        state = self._state
        index = next(self._msg_serial)
        serials: list[str] = []
        fresh: list[_Stored] = []
        for message in messages:  # validate the whole batch first: it is atomic
            if message.extras is not None and not isinstance(message.extras, Mapping):
                raise InvalidArgumentError("unable to publish; extras must be an object")
        refused = batch_ids_refusal([message.id for message in messages])
        if refused is not None:  # as Ably: a batch's ids are one base with their positions
            raise ChannelError(f"unable to publish; {refused}", code=40031)
        for i, message in enumerate(messages):
            if message.id is not None and message.id in state.by_id:
                serials.append(state.by_id[message.id])  # idempotent retry: ack, no duplicate
                continue
            serial, ms = self._broker._next_serial()
            extras = _clone(message.extras) if message.extras is not None else None
            stored = _Stored(serial, message.name, _clone(message.data), extras, self._client_id,
                             self.connection_id, message.id or f"{self.connection_id}:{index}:{i}",
                             ms, serial, ephemeral=bool(extras and extras.get("ephemeral")))
            if not stored.ephemeral:
                state.serials.append(serial)
                state.messages[serial] = stored
            if message.id is not None:
                state.by_id[message.id] = serial
            serials.append(serial)
            fresh.append(stored)
            if self._broker.records is not None:
                self._broker._record("publish", self, stored, stored.data, extras, serial)
        for stored in fresh:
            snapshot = stored.snapshot("message.create")
            for handle in state.handles:
                handle._deliver(snapshot)
        return serials

    async def append(self, serial: str, data: str, extras: Mapping[str, Any]) -> None:
        self._mutate("append", serial, data, extras)

    async def update(self, serial: str, data: Any, extras: Mapping[str, Any]) -> None:
        self._mutate("update", serial, data, extras)

    def _mutate(self, op: str, serial: str, data: Any, extras: Mapping[str, Any]) -> None:
        self._alive(op)
        if self.name.startswith(META_PREFIX):
            raise ChannelError(f"unable to {op} on metachannel {self.name!r}", code=40160)
        broker = self._broker
        broker._fault(op)
        if not isinstance(extras, Mapping):
            raise InvalidArgumentError(f"unable to {op} message; extras must be an object")
        if not broker.mutable_messages:
            raise MutableMessagesDisabledError(
                f"unable to {op} message; updates and appends are not enabled on channel "
                f"{self.name!r}: enable the mutable messages rule for its namespace",
                code=ErrorCode.MUTABLE_MESSAGES_DISABLED,
            )
        stored = self._state.messages.get(serial)
        if stored is None:
            raise ChannelError(f"unable to {op} message; no message with serial {serial!r}",
                               code=40400)
        if op == "append" and not isinstance(data, str):
            raise InvalidArgumentError("unable to append message; data must be a string")
        version, _ = broker._next_serial()
        # Appends of one stream repeat the same headers: share the stored copy when equal,
        # which saves a deep copy and an allocation per token on the hot path.
        extras = stored.extras if extras == stored.extras else _clone(extras)
        if op == "append":
            # Fragments are joined when read: concatenating on every append is quadratic.
            if stored.fragments is None:
                stored.fragments = [stored.data if isinstance(stored.data, str) else ""]
            stored.fragments.append(data)
            action: MessageAction = "message.append"
        else:
            data = _clone(data)
            stored.data = data
            stored.fragments = None
            action = "message.update"
        stored.extras = extras
        stored.version_serial = version
        stored.mutated = True
        if broker.records is not None:
            broker._record(op, self, stored, data, extras, version)
        live = ChannelMessage(None if op == "append" else stored.name, data, extras, serial,
                              action, version, self._client_id, self.connection_id, stored.id,
                              stored.timestamp)
        full: ChannelMessage | None = None
        for handle in self._state.handles:
            attach = handle._attach_serial
            if attach is not None and serial <= attach and serial not in handle._seen_old:
                # First contact with a message older than this participant's attach point:
                # the real service sends the full contents (§4.3).
                handle._seen_old.add(serial)
                if full is None:
                    full = stored.snapshot("message.update")
                handle._deliver(full)
            else:
                handle._deliver(live)

    async def history(self, *, limit: int = 100, until_attach: bool = True) -> _Page:
        self._alive("history")
        self._broker._fault("history")
        if limit < 1 or limit > 1000:
            raise InvalidArgumentError("history limit must be between 1 and 1000")
        state = self._state
        serials = state.serials
        if until_attach:
            if not self._attached:
                raise ChannelError("unable to read history; until_attach needs an attached "
                                   "channel", code=ErrorCode.CHANNEL_NOT_READY)
            end = 0 if self._attach_serial is None else bisect.bisect_right(
                serials, self._attach_serial)
        else:
            end = len(serials)
        items = [_aggregate(state.messages[s]) for s in reversed(serials[:end])]
        return _Page(items[:limit], items[limit:], limit)

    # -- presence ---------------------------------------------------------------------------
    async def enter_presence(self, data: Mapping[str, Any] | None = None) -> None:
        self._alive("enter presence")
        if self._client_id is None:
            raise ChannelError("unable to enter presence; the participant has no client id",
                               code=91000)
        await self.attach()
        key = (self.connection_id, self._client_id)
        state = self._state
        action: PresenceAction = "update" if key in state.members else "enter"
        data = _clone(dict(data)) if data is not None else None
        state.members[key] = PresenceEvent("present", self._client_id, self.connection_id, data)
        self._announce(PresenceEvent(action, self._client_id, self.connection_id, data))

    async def leave_presence(self) -> None:
        self._alive("leave presence")
        self._leave()

    async def presence_members(self) -> list[PresenceEvent]:
        self._alive("get presence")
        await self.attach()
        return list(self._state.members.values())

    def subscribe_presence(self, listener: PresenceListener) -> Callable[[], None]:
        self._presence_listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._presence_listeners:
                self._presence_listeners.remove(listener)

        return unsubscribe

    def crash(self, *, leave_after: float = 0.0) -> None:
        """Simulate this participant's connection dying (a worker killed with ``kill -9``).

        Nothing more is delivered to it and every later call fails (80003); its presence
        member leaves after ``leave_after`` seconds, as the service makes a member whose
        connection was lost leave after its timeout (15 s on Ably).
        """
        if self._crashed:
            return
        self._crashed = True
        if self._attached:
            self._attached = False
            self._state.handles.remove(self)
            self._pending.clear()
            if not self._state.handles:  # Ably: once the connection is gone for good
                self._broker._lifecycle(EVENT_CHANNEL_CLOSED, self._state)
        loop = asyncio.get_running_loop()
        if leave_after > 0:
            loop.call_later(leave_after, self._leave)
        else:
            loop.call_soon(self._leave)

    def _leave(self) -> None:
        member = self._state.members.pop((self.connection_id, self._client_id), None)
        if member is not None:
            self._announce(PresenceEvent("leave", member.client_id, member.connection_id,
                                         member.data))

    def _announce(self, event: PresenceEvent) -> None:
        for handle in self._state.handles:
            handle._deliver(event)

    def _alive(self, op: str) -> None:
        if self._crashed:
            raise ChannelError(f"unable to {op}; the connection was lost", code=80003)

    # -- delivery ---------------------------------------------------------------------------
    def _deliver(self, message: ChannelMessage | PresenceEvent) -> None:
        # Asynchronous and in order, like a socket: never inside the publisher's call stack.
        if not self._pending and self._loop is not None:
            self._loop.call_soon(self._drain)
        self._pending.append(message)

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            message = pending.popleft()
            listeners: tuple[Callable[[Any], None], ...] = tuple(
                self._presence_listeners if isinstance(message, PresenceEvent)
                else self._listeners)
            for listener in listeners:
                try:
                    listener(message)
                except Exception:
                    logger.exception("channel listener %r raised; message skipped", listener)

    def __repr__(self) -> str:
        return f"<InMemoryChannel {self.name!r} client_id={self._client_id!r}>"

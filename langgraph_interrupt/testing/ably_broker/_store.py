"""In-memory channel storage and the mutable-message rules.

Owns: serial allocation, each channel's stored messages (latest aggregate plus versions), message
id dedupe for idempotent publishing, update/delete/append semantics, history queries, and the
bounded per-channel event log that lets a client resume a channel from its ``channelSerial``.

Rules (Ably docs ``messages/updates-deletes`` and ably-js's real-service tests):

* update/delete: non-null ``name``/``data``/``extras`` replace the old values, a new ``version``
  is recorded, top-level ``serial``/``clientId``/``timestamp`` stay the original's.
* append: ``data`` is concatenated (string+string or binary+binary), ``name``/``extras`` replaced
  if given; the aggregate becomes ``message.update``; appends are not listed as versions.
* history returns one item per message, the latest aggregate, at the original's position.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ._messages import Inbound, Record, Version
from ._protocol import AblyError, MessageAction, wire_size

__all__ = ["ChannelStore", "Event", "HistoryQuery", "SerialClock", "Store", "StoredMessage"]


class SerialClock:
    """Allocates lexicographically increasing serials shared by every channel of one broker.

    Format ``{ms:014d}-{seq:09d}@{server_id}:{index:03d}``: the millisecond part never goes
    backwards and ``seq`` always grows, so string order is allocation order.
    """

    def __init__(self, server_id: str, now_ms: Callable[[], int]) -> None:
        self.server_id = server_id
        self._now_ms = now_ms
        self._last_ms = 0
        self._seq = 0
        self._pattern = re.compile(
            r"^\d{14}-\d{9}@" + re.escape(server_id) + r":\d{3}$",
        )

    def allocate(self) -> tuple[str, int]:
        """A fresh serial prefix (add ``:index`` per message) and its millisecond timestamp."""
        ms = max(self._now_ms(), self._last_ms)
        self._last_ms = ms
        self._seq += 1
        return f"{ms:014d}-{self._seq:09d}@{self.server_id}", ms

    @staticmethod
    def serial(prefix: str, index: int) -> str:
        return f"{prefix}:{index:03d}"

    def owns(self, serial: str) -> bool:
        """Whether ``serial`` was allocated by this broker (so it can be compared with ours)."""
        return bool(self._pattern.match(serial))


@dataclass(slots=True)
class StoredMessage:
    """One message in history: its latest aggregate and its versions (create/update/delete)."""

    latest: Record
    versions: list[Record]
    size: int


@dataclass(frozen=True, slots=True)
class Event:
    """One delivery on a channel, kept so a resuming client can be sent what it missed."""

    channel_serial: str
    pm_id: str
    timestamp: int
    records: tuple[Record, ...]
    connection_id: str | None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A validated history/versions request. ``cursor`` is exclusive, ``until`` inclusive."""

    backwards: bool = True
    limit: int = 100
    start: int | None = None
    end: int | None = None
    until: str | None = None
    cursor: str | None = None


@dataclass(slots=True)
class ChannelStore:
    """Everything the broker remembers about one channel."""

    name: str
    origin: str
    message_limit: int
    event_limit: int
    head: str = ""
    _order: list[str] = field(default_factory=list)
    _messages: dict[str, StoredMessage] = field(default_factory=dict)
    _ids: dict[str, str] = field(default_factory=dict)
    _events: deque[Event] = field(default_factory=deque)
    _trimmed_upto: str | None = None

    def __post_init__(self) -> None:
        self.head = self.origin

    # ------------------------------------------------------------------ positions and events

    def note_position(self, channel_serial: str) -> None:
        """Advance the channel's head (every allocated serial on this channel goes through here)."""
        self.head = max(self.head, channel_serial)

    def log_event(self, event: Event) -> None:
        self.note_position(event.channel_serial)
        self._events.append(event)
        while len(self._events) > self.event_limit:
            self._trimmed_upto = self._events.popleft().channel_serial

    def events_after(self, channel_serial: str) -> list[Event] | None:
        """Events after ``channel_serial``, or ``None`` if continuity from there is impossible."""
        if channel_serial < self.origin or channel_serial > self.head:
            return None
        if self._trimmed_upto is not None and channel_serial < self._trimmed_upto:
            return None
        newer: list[Event] = []
        for event in reversed(self._events):
            if event.channel_serial <= channel_serial:
                break
            newer.append(event)
        newer.reverse()
        return newer

    # ------------------------------------------------------------------ messages

    def __len__(self) -> int:
        return len(self._order)

    def get(self, serial: str) -> StoredMessage | None:
        return self._messages.get(serial)

    def latest(self, serial: str) -> Record | None:
        stored = self._messages.get(serial)
        return stored.latest if stored is not None else None

    def duplicate_of(self, message_id: str) -> str | None:
        """The serial of an earlier message published with this id (idempotent publishing)."""
        return self._ids.get(message_id)

    def remember_id(self, message_id: str, serial: str) -> None:
        self._ids[message_id] = serial

    def add(self, record: Record, size: int) -> None:
        """Store a newly created (non-ephemeral) message."""
        self._order.append(record.serial)
        self._messages[record.serial] = StoredMessage(record, [record], size)
        if len(self._order) > self.message_limit:
            drop = max(1, self.message_limit // 10)
            for serial in self._order[:drop]:
                gone = self._messages.pop(serial)
                self._ids.pop(gone.latest.id, None)
            del self._order[:drop]

    def check_mutation(self, inbound: Inbound, max_size: int) -> StoredMessage:
        """Validate an update/delete/append against the stored message; returns the target."""
        assert inbound.serial is not None
        stored = self._messages.get(inbound.serial)
        if stored is None:
            raise AblyError.not_found(
                f"unable to {inbound.action.name.lower()} message; "
                f"no message with serial {inbound.serial!r} on channel {self.name!r}"
            )
        if inbound.is_append:
            _concat(stored.latest, inbound)
            if stored.size + wire_size(inbound.data) > max_size:
                raise AblyError.too_large(stored.size + wire_size(inbound.data), max_size)
        return stored

    def mutate(
        self,
        inbound: Inbound,
        *,
        version: Version,
        delivery_id: str,
        append_name: bool,
        max_size: int,
    ) -> Record:
        """Apply an update/delete/append; returns the record to deliver to subscribers."""
        stored = self.check_mutation(inbound, max_size)
        old = stored.latest
        if inbound.is_append:
            data, encoding = _concat(old, inbound)
            aggregate = old.with_changes(
                action=MessageAction.UPDATE if old.action != MessageAction.DELETE else old.action,
                data=data,
                encoding=encoding,
                name=inbound.name if inbound.name is not None else old.name,
                extras=inbound.extras if inbound.extras is not None else old.extras,
                version=version,
            )
            stored.size += wire_size(inbound.data)
            stored.latest = aggregate
            return Record(
                id=delivery_id,
                serial=old.serial,
                action=MessageAction.APPEND,
                timestamp=old.timestamp,
                version=version,
                name=aggregate.name if append_name else None,
                data=inbound.data if inbound.data is not None else _empty_like(old.data),
                encoding=inbound.encoding,
                extras=aggregate.extras,
                client_id=old.client_id,
                connection_id=old.connection_id,
            )
        replace_data = inbound.data is not None
        aggregate = old.with_changes(
            action=inbound.action,
            name=inbound.name if inbound.name is not None else old.name,
            data=inbound.data if replace_data else old.data,
            encoding=inbound.encoding if replace_data else old.encoding,
            extras=inbound.extras if inbound.extras is not None else old.extras,
            version=version,
        )
        stored.latest = aggregate
        stored.size = wire_size(aggregate.name) + wire_size(aggregate.data)
        stored.size += wire_size(aggregate.extras) + wire_size(aggregate.client_id)
        stored.versions.append(aggregate)
        return aggregate.with_changes(id=delivery_id)

    # ------------------------------------------------------------------ queries

    def history(self, query: HistoryQuery) -> tuple[list[Record], str | None]:
        """One page of latest aggregates, and the cursor of the next page (``None`` if last)."""
        return _page(_iter_keys(self._order, query), lambda s: self._messages[s].latest, query)

    def versions(self, serial: str, query: HistoryQuery) -> tuple[list[Record], str | None]:
        """One page of a message's versions (create, updates, deletes)."""
        stored = self._messages.get(serial)
        if stored is None:
            raise AblyError.not_found(f"no message with serial {serial!r} on channel {self.name!r}")
        by_version = {v.version.serial: v for v in stored.versions}
        keys = sorted(by_version)
        return _page(_iter_keys(keys, query), by_version.__getitem__, query)

    def rewind(self, *, count: int | None = None, since_ms: int | None = None) -> list[Record]:
        """The newest stored messages (oldest first) for a ``rewind`` channel parameter."""
        if count is not None:
            serials = self._order[-count:] if count > 0 else []
        else:
            serials = [
                s for s in self._order if self._messages[s].latest.timestamp >= (since_ms or 0)
            ]
        return [self._messages[s].latest for s in serials[-100:]]


def _iter_keys(keys: list[str], query: HistoryQuery) -> Iterator[str]:
    """Keys in query order, bounded by ``until`` (inclusive) and ``cursor`` (exclusive)."""
    hi = len(keys) if query.until is None else bisect_right(keys, query.until)
    if query.backwards:
        if query.cursor is not None:
            hi = min(hi, bisect_left(keys, query.cursor))
        for i in range(hi - 1, -1, -1):
            yield keys[i]
    else:
        lo = 0 if query.cursor is None else bisect_right(keys, query.cursor)
        for i in range(lo, hi):
            yield keys[i]


def _page(
    keys: Iterator[str],
    lookup: Callable[[str], Record],
    query: HistoryQuery,
) -> tuple[list[Record], str | None]:
    items: list[Record] = []
    last_key: str | None = None
    for key in keys:
        record = lookup(key)
        if query.start is not None and record.timestamp < query.start:
            if query.backwards:
                break
            continue
        if query.end is not None and record.timestamp > query.end:
            if query.backwards:
                continue
            break
        if len(items) == query.limit:
            return items, last_key
        items.append(record)
        last_key = key
    return items, None


def _empty_like(data: str | bytes | None) -> str | bytes | None:
    if isinstance(data, bytes):
        return b""
    return "" if isinstance(data, str) else None


def _concat(old: Record, inbound: Inbound) -> tuple[str | bytes | None, str | None]:
    """The aggregate payload after an append; raises 40013 on a type or encoding mismatch."""
    fragment = inbound.data
    if fragment is None or fragment in ("", b""):
        return old.data, old.encoding
    if old.data is None or old.data in ("", b""):
        if old.encoding is not None and old.encoding != inbound.encoding and old.data is not None:
            raise AblyError.invalid_data("unable to append; encoding differs from the message's")
        return fragment, inbound.encoding
    if (old.encoding or None) != (inbound.encoding or None):
        raise AblyError.invalid_data("unable to append; encoding differs from the message's")
    if isinstance(old.data, str) and isinstance(fragment, str):
        return old.data + fragment, old.encoding
    if isinstance(old.data, bytes) and isinstance(fragment, bytes):
        return old.data + fragment, old.encoding
    raise AblyError.invalid_data("unable to append; data must be string+string or binary+binary")


class Store:
    """All channels of one broker, created on first use and bounded in number."""

    def __init__(
        self,
        clock: SerialClock,
        *,
        message_limit: int,
        event_limit: int,
        max_channels: int,
    ) -> None:
        self.clock = clock
        self.message_limit = message_limit
        self.event_limit = event_limit
        self.max_channels = max_channels
        self._channels: dict[str, ChannelStore] = {}

    def channel(self, name: str) -> ChannelStore:
        """The channel's store, created on first use (raises 90021 past ``max_channels``)."""
        store = self._channels.get(name)
        if store is None:
            if len(self._channels) >= self.max_channels:
                raise AblyError(90021, 429, "maximum number of channels in the broker reached")
            prefix, _ = self.clock.allocate()
            store = ChannelStore(
                name=name,
                origin=SerialClock.serial(prefix, 0),
                message_limit=self.message_limit,
                event_limit=self.event_limit,
            )
            self._channels[name] = store
        return store

    def existing(self, name: str) -> ChannelStore | None:
        return self._channels.get(name)

    def names(self) -> list[str]:
        return list(self._channels)

    def clear(self) -> None:
        self._channels.clear()

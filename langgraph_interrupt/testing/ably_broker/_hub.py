"""Publishing and fan-out, shared by the realtime and REST front ends.

Owns: the publish pipeline (fault checks, size and clientId rules, idempotent ids, serial
allocation, storage, mutation rules via ``_store``) and delivering each publish to the channel's
attachments with the real service's per-subscriber semantics:

* a create is delivered as is; an append as ``message.append`` carrying only the fragment;
* a subscriber whose first contact with a message published *before it attached* is an
  append receives the full aggregate as ``message.update`` instead (then later fragments);
* the publisher gets its own messages back unless it connected with ``echo=false``.

Attachments feed the channel lifecycle (``_lifecycle``): the hub publishes its
``[meta]channel.lifecycle`` events as the service, and refuses any client's publish there.

It also computes what an ATTACH returns: a fresh attach serial, or, when the client sends a
``channelSerial`` the channel can still resume from, the missed deliveries (``RESUMED``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..._wire import LIFECYCLE_CHANNEL, META_PREFIX, batch_ids_refusal
from ._auth import ClientIdentity
from ._faults import Faults
from ._lifecycle import Lifecycle
from ._messages import Inbound, Record, Version
from ._protocol import AblyError, Action, Format, MessageAction, encode_frame
from ._store import ChannelStore, Event, SerialClock, Store

__all__ = ["AttachOutcome", "Attachment", "Hub", "Publisher", "Subscriber"]

log = logging.getLogger(__name__)


class Subscriber(Protocol):
    """A realtime connection as the hub sees it."""

    @property
    def connection_id(self) -> str: ...

    @property
    def echo(self) -> bool: ...

    @property
    def format(self) -> Format: ...

    def deliver(self, frame: str | bytes, delay_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Publisher:
    """Who is publishing: identity, connection (``None`` for REST) and protocol-message id."""

    identity: ClientIdentity
    connection_id: str | None
    pm_id: str


@dataclass(eq=False, slots=True)
class Attachment:
    """One connection attached to one channel.

    ``full_sent`` maps the serial of a message published before ``attach_serial`` to the
    version this subscriber has been sent in full; older mutations of it are not delivered.
    """

    channel: str
    subscriber: Subscriber
    attach_serial: str
    modes: int
    full_sent: dict[str, str] = field(default_factory=dict)

    def render(self, records: Sequence[Record], store: ChannelStore) -> list[Record]:
        """What this subscriber receives for a delivery (see the module docstring)."""
        out: list[Record] = []
        for record in records:
            if record.action == MessageAction.CREATE:
                out.append(record)
                continue
            target = record.serial
            sent = self.full_sent.get(target)
            if sent is not None and record.version.serial <= sent:
                continue
            if sent is None and target < self.attach_serial:
                latest = store.latest(target) if record.action == MessageAction.APPEND else None
                if latest is not None:
                    self.full_sent[target] = latest.version.serial
                    out.append(latest.with_changes(id=record.id))
                    continue
                self.full_sent[target] = record.version.serial
            out.append(record)
        return out

    def forget_unconfirmed(self, channel_serial: str) -> None:
        """On resume from ``channel_serial``: full updates sent after it may never have arrived."""
        self.full_sent = {k: v for k, v in self.full_sent.items() if v <= channel_serial}


@dataclass(slots=True)
class AttachOutcome:
    """The ATTACHED reply's fields and the frames to send right after it."""

    attachment: Attachment
    channel_serial: str
    resumed: bool
    backlog: list[str | bytes]


def message_frame(
    channel: str,
    *,
    pm_id: str,
    channel_serial: str,
    timestamp: int,
    connection_id: str | None,
    records: Sequence[Record],
    fmt: Format,
) -> str | bytes:
    """Encode a server-to-client MESSAGE protocol message."""
    pm: dict[str, Any] = {
        "action": int(Action.MESSAGE),
        "id": pm_id,
        "channel": channel,
        "channelSerial": channel_serial,
        "timestamp": timestamp,
        "messages": [r.to_wire(fmt) for r in records],
    }
    if connection_id is not None:
        pm["connectionId"] = connection_id
    return encode_frame(pm, fmt)


class Hub:
    """Routes publishes into the store and deliveries out to attachments."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        *,
        max_message_size: int,
        append_name: bool,
    ) -> None:
        self.store = store
        self.faults = faults
        self.max_message_size = max_message_size
        self.append_name = append_name
        self._attachments: dict[str, dict[Subscriber, Attachment]] = {}
        self.lifecycle = Lifecycle(self._announce)

    @property
    def clock(self) -> SerialClock:
        return self.store.clock

    # ------------------------------------------------------------------ attachments

    def attach(
        self,
        channel: str,
        subscriber: Subscriber,
        *,
        modes: int,
        channel_serial: str | None,
        previous: Attachment | None,
        rewind: tuple[int | None, int | None] | None,
    ) -> AttachOutcome:
        """Attach ``subscriber``; resumes from ``channel_serial`` when the channel still can."""
        store = self.store.channel(channel)
        self.detach(channel, subscriber)
        self.lifecycle.hold(channel, subscriber.connection_id)
        if channel_serial and self.clock.owns(channel_serial):
            events = store.events_after(channel_serial)
            if events is not None:
                if previous is not None and previous.channel == channel:
                    attachment = previous
                    attachment.subscriber = subscriber
                    attachment.modes = modes
                    attachment.forget_unconfirmed(channel_serial)
                else:
                    attachment = Attachment(channel, subscriber, channel_serial, modes)
                backlog = [
                    frame
                    for event in events
                    if (frame := self._render_for(attachment, store, event)) is not None
                ]
                self._attachments.setdefault(channel, {})[subscriber] = attachment
                return AttachOutcome(attachment, channel_serial, True, backlog)
        prefix, now = self.clock.allocate()
        attach_serial = SerialClock.serial(prefix, 0)
        store.note_position(attach_serial)
        attachment = Attachment(channel, subscriber, attach_serial, modes)
        backlog = []
        if rewind is not None:
            count, since_ms = rewind
            records = store.rewind(
                count=count, since_ms=None if since_ms is None else now - since_ms
            )
            for record in records:
                attachment.full_sent[record.serial] = record.version.serial
            if records:
                backlog.append(
                    message_frame(
                        channel,
                        pm_id=f"rewind:{prefix}",
                        channel_serial=attach_serial,
                        timestamp=now,
                        connection_id=None,
                        records=records,
                        fmt=subscriber.format,
                    )
                )
        self._attachments.setdefault(channel, {})[subscriber] = attachment
        return AttachOutcome(attachment, attach_serial, False, backlog)

    def detach(self, channel: str, subscriber: Subscriber) -> Attachment | None:
        """Stop deliveries to ``subscriber``; returns its attachment (kept for a resume)."""
        subs = self._attachments.get(channel)
        if not subs:
            return None
        attachment = subs.pop(subscriber, None)
        if not subs:
            del self._attachments[channel]
        return attachment

    def attachments(self, channel: str) -> list[Attachment]:
        """The channel's current attachments (a snapshot)."""
        return list(self._attachments.get(channel, {}).values())

    def subscriber_count(self, channel: str) -> int:
        return len(self._attachments.get(channel, {}))

    def clear(self) -> None:
        self._attachments.clear()
        self.lifecycle.clear()

    # ------------------------------------------------------------------ publishing

    def publish(self, channel: str, inbounds: Sequence[Inbound], publisher: Publisher) -> list[str]:
        """Apply one publish (a realtime MESSAGE or a REST request) and deliver it.

        Returns ``res.serials``: the new message serial for a create (the original's for an
        idempotent duplicate) and the new version serial for an update/delete/append.
        Raises ``AblyError`` without side effects when the publish is rejected (with them for
        an ``after_apply`` fault).
        """
        if channel.startswith(META_PREFIX):
            raise AblyError(40160, 401, f"unable to publish on metachannel {channel!r}")
        has_mutation = any(m.is_mutation for m in inbounds)
        has_append = any(m.is_append for m in inbounds)
        lost_ack = self.faults.check_publish(
            channel, has_mutation=has_mutation, has_append=has_append
        )
        refused = None if has_mutation else batch_ids_refusal([m.id for m in inbounds])
        if refused is not None:  # a batch's client ids: one base with their positions
            raise AblyError(40031, 400, refused)
        total = sum(m.size for m in inbounds)
        if total > self.max_message_size:
            raise AblyError.too_large(total, self.max_message_size)
        store = self.store.channel(channel)
        client_ids = [
            publisher.identity.check_message_client_id(m.client_id) if not m.is_mutation else None
            for m in inbounds
        ]
        for m in inbounds:
            if m.is_mutation:
                store.check_mutation(m, self.max_message_size)

        prefix, now = self.clock.allocate()
        serials: list[str] = []
        records: list[Record] = []
        event_serial = ""
        for index, (m, client_id) in enumerate(zip(inbounds, client_ids, strict=True)):
            serial = SerialClock.serial(prefix, index)
            if m.is_mutation:
                version = Version(
                    serial,
                    now,
                    m.op_client_id or publisher.identity.client_id,
                    m.op_description,
                    m.op_metadata,
                )
                records.append(
                    store.mutate(
                        m,
                        version=version,
                        delivery_id=f"{publisher.pm_id}:{index}",
                        append_name=self.append_name,
                        max_size=self.max_message_size,
                    )
                )
                serials.append(serial)
                event_serial = serial
                continue
            if m.id is not None and (original := store.duplicate_of(m.id)) is not None:
                serials.append(original)
                continue
            record = Record(
                id=m.id or f"{publisher.pm_id}:{index}",
                serial=serial,
                action=MessageAction.CREATE,
                timestamp=now,
                version=Version(serial, now),
                name=m.name,
                data=m.data,
                encoding=m.encoding,
                extras=m.extras,
                client_id=client_id,
                connection_id=publisher.connection_id,
            )
            if not record.is_ephemeral:
                store.add(record, m.size)
            store.remember_id(record.id, serial)
            records.append(record)
            serials.append(serial)
            event_serial = serial
        if records:
            event = Event(
                event_serial, publisher.pm_id, now, tuple(records), publisher.connection_id
            )
            store.log_event(event)
            self._fan_out(store, event)
        if lost_ack is not None:  # an ``after_apply`` fault: applied, but reported as failed
            raise lost_ack
        return serials

    def _announce(self, name: str, details: dict[str, Any]) -> None:
        """Publish a lifecycle event as the service: no client id, no connection."""
        store = self.store.channel(LIFECYCLE_CHANNEL)
        prefix, now = self.clock.allocate()
        serial = SerialClock.serial(prefix, 0)
        data = json.dumps(details, separators=(",", ":"))
        record = Record(id=f"meta:{prefix}", serial=serial, action=MessageAction.CREATE,
                        timestamp=now, version=Version(serial, now), name=name, data=data,
                        encoding="json")
        store.add(record, len(data))
        event = Event(serial, f"meta:{prefix}", now, (record,), None)
        store.log_event(event)
        self._fan_out(store, event)

    def _fan_out(self, store: ChannelStore, event: Event) -> None:
        subs = self._attachments.get(store.name)
        if not subs:
            return
        shared: dict[str, str | bytes] = {}
        for attachment in list(subs.values()):
            subscriber = attachment.subscriber
            if not subscriber.echo and subscriber.connection_id == event.connection_id:
                continue
            records = attachment.render(event.records, store)
            if not records:
                continue
            unchanged = len(records) == len(event.records) and all(
                a is b for a, b in zip(records, event.records, strict=True)
            )
            try:
                if unchanged:
                    frame = shared.get(subscriber.format)
                    if frame is None:
                        frame = shared[subscriber.format] = self._frame(
                            store.name, event, records, subscriber.format
                        )
                else:
                    frame = self._frame(store.name, event, records, subscriber.format)
            except Exception:  # an unencodable value must not stop the other deliveries
                log.exception("ably broker: unable to encode a delivery on %r", store.name)
                continue
            subscriber.deliver(frame, self.faults.delay_for(store.name, subscriber.connection_id))

    def _render_for(
        self, attachment: Attachment, store: ChannelStore, event: Event
    ) -> str | bytes | None:
        subscriber = attachment.subscriber
        if not subscriber.echo and subscriber.connection_id == event.connection_id:
            return None
        records = attachment.render(event.records, store)
        if not records:
            return None
        return self._frame(store.name, event, records, subscriber.format)

    @staticmethod
    def _frame(channel: str, event: Event, records: Sequence[Record], fmt: Format) -> str | bytes:
        return message_frame(
            channel,
            pm_id=event.pm_id,
            channel_serial=event.channel_serial,
            timestamp=event.timestamp,
            connection_id=event.connection_id,
            records=records,
            fmt=fmt,
        )

"""The ``Channel`` protocol: the narrow seam between the transport and a pub/sub backend.

Owns: what a backend must do and promise. It is as small as the protocol allows (§9 of the
protocol notes): publish (returning serials), append, update, subscribe, attach (with its
attach serial), and history paged newest-first up to the attach point.

Semantics every backend keeps (the conformance suite in ``langgraph_interrupt.testing``
checks each one):

* serials are strings that increase lexicographically in publish order, per channel;
* every publish is delivered to every attached participant, the publisher included, in
  serial order; ``publish([...])`` of several messages is one atomic batch;
* an append is delivered as ``message.append`` with the target's serial, no name, only its
  fragment as data, and a new, larger ``version_serial``; an update as ``message.update``
  with the full contents;
* a participant whose first contact with a message (one published before it attached) is
  a mutation receives the full contents as ``message.update``;
* history returns each message once, in its latest version (appends concatenated), newest
  first, and with ``until_attach`` nothing newer than the attach point; messages whose
  extras say ``ephemeral`` are not kept;
* a publish with an ``id`` already published is acknowledged again without a duplicate.

Listeners are plain callables called on the event loop; they must not block. Backends
translate their own exceptions into :class:`~langgraph_interrupt.ChannelError` at one
boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .._wire import ChannelMessage, OutboundMessage, PresenceEvent

__all__ = ["Channel", "HistoryPage", "Listener", "PresenceChannel", "PresenceListener"]

Listener = Callable[[ChannelMessage], None]
PresenceListener = Callable[[PresenceEvent], None]


class HistoryPage(Protocol):
    """One page of history, newest first."""

    @property
    def items(self) -> Sequence[ChannelMessage]: ...

    def has_next(self) -> bool:
        """True when older messages remain."""
        ...

    async def next(self) -> HistoryPage:
        """The next (older) page. Only call when :meth:`has_next` is true."""
        ...


@runtime_checkable
class Channel(Protocol):
    """One participant's handle on a named channel."""

    @property
    def name(self) -> str: ...

    @property
    def client_id(self) -> str | None:
        """The identity this handle publishes as (stamped on delivered messages)."""
        ...

    @property
    def attach_serial(self) -> str | None:
        """The channel serial at the moment of attach (``None`` on an empty channel)."""
        ...

    async def attach(self, *, serial: bool = True, recent: int = 0) -> str | None:
        """Attach (idempotent) and return the attach serial.

        ``serial=False``: the caller does not need the attach serial (the sessions do not),
        so a backend may skip the work of finding it and return ``None``; history is bounded
        at the attach point all the same. On Ably this saves a round trip per attach.

        ``recent``: a hint that the caller looks for something published just before it
        attached: a backend may deliver up to that many of the newest earlier messages to
        the listeners right after attaching (Ably's ``rewind``), saving a history read. It
        may ignore the hint, and a listener may see such a message in history too.
        """
        ...

    async def detach(self) -> None:
        """Stop receiving messages. Idempotent."""
        ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a listener for every message; returns a function that removes it."""
        ...

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[str]:
        """Publish one atomic batch; returns the serial of each message, in order."""
        ...

    async def append(self, serial: str, data: str, extras: Mapping[str, Any]) -> None:
        """Append ``data`` to the message at ``serial``; ``extras`` replace the old ones."""
        ...

    async def update(self, serial: str, data: Any, extras: Mapping[str, Any]) -> None:
        """Replace the contents of the message at ``serial``."""
        ...

    async def history(self, *, limit: int = 100, until_attach: bool = True) -> HistoryPage:
        """The newest page of history (see the module notes for its contents)."""
        ...


@runtime_checkable
class PresenceChannel(Channel, Protocol):
    """A channel whose participants can be present (Ably presence); optional for backends.

    Agent workers enter the presence of the channels they serve, so that when one dies
    (its connection lost and not resumed) the others see it leave and end its runs. Promises:
    a member is identified by its connection id and client id as the service stamped them;
    a participant enters, updates and leaves only its own member; a member whose connection
    is lost leaves after the service's timeout (15 s on Ably), one that detaches or closes at
    once; presence events are delivered in order with the channel's messages.
    """

    async def enter_presence(self, data: Mapping[str, Any] | None = None) -> None:
        """Enter (or update) this participant's member with ``data``. Attaches if needed."""
        ...

    async def leave_presence(self) -> None:
        """Leave this participant's member. Idempotent."""
        ...

    async def presence_members(self) -> list[PresenceEvent]:
        """The current members (``action="present"``), after the service's sync."""
        ...

    def subscribe_presence(self, listener: PresenceListener) -> Callable[[], None]:
        """Register a listener for presence events; returns a function that removes it."""
        ...

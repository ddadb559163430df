"""Presence on an Ably channel: the :class:`~._base.PresenceChannel` half of ``AblyChannel``.

Owns: entering, leaving and reading the members of the SDK channel's ``presence``, and
handing its events on as :class:`~langgraph_interrupt.PresenceEvent`. It touches the SDK's
objects only through the ``AblyChannel`` it is mixed into (``_sdk``, ``_call``), so
``channels/_ably.py`` stays the one module importing ``ably``; its errors leave through
that module's translation boundary.

ably-python 3.1's ``presence.enter`` attaches the channel if needed and is acknowledged
like a publish; ``presence.get`` waits for the service's SYNC; a member whose connection is
lost leaves after the service's timeout (15 s on Ably), and the SDK re-enters this client's
member by itself after a reconnection that lost the attachment.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._wire import PresenceAction, PresenceEvent
from ._base import PresenceListener

__all__ = ["AblyPresence"]

logger = logging.getLogger("langgraph_interrupt.channels")

T = TypeVar("T")

_ACTIONS: dict[Any, PresenceAction] = {1: "present", 2: "enter", 3: "leave", 4: "update"}


def to_presence_event(message: Any) -> PresenceEvent | None:
    """The SDK's ``PresenceMessage`` as a :class:`PresenceEvent`; ``None`` if unreadable."""
    action = getattr(message, "action", None)
    action = _ACTIONS.get(getattr(action, "value", action))
    if action is None:
        return None
    client_id = getattr(message, "client_id", None)
    connection_id = getattr(message, "connection_id", None)
    return PresenceEvent(action, client_id if isinstance(client_id, str) else None,
                         connection_id if isinstance(connection_id, str) else None,
                         getattr(message, "data", None))


class AblyPresence:
    """Presence methods for ``AblyChannel`` (see the module notes)."""

    _sdk: Any

    if TYPE_CHECKING:  # AblyChannel's: retries, and the one translation of SDK errors
        async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T: ...

    async def enter_presence(self, data: Mapping[str, Any] | None = None) -> None:
        payload = dict(data) if data is not None else None
        await self._call("enter presence", lambda: self._sdk.presence.enter(payload))

    async def leave_presence(self) -> None:
        await self._call("leave presence", lambda: self._sdk.presence.leave())

    async def presence_members(self) -> list[PresenceEvent]:
        members = await self._call("get presence", lambda: self._sdk.presence.get())
        events = [to_presence_event(member) for member in members]
        return [PresenceEvent("present", e.client_id, e.connection_id, e.data)
                for e in events if e is not None]

    def subscribe_presence(self, listener: PresenceListener) -> Callable[[], None]:
        def on_presence(message: Any) -> None:
            # Called by the SDK's reader task: nothing may propagate back into it.
            try:
                event = to_presence_event(message)
                if event is not None:
                    listener(event)
            except Exception:
                logger.exception("presence listener %r raised; event skipped", listener)

        presence = self._sdk.presence
        presence._subscriptions.on(on_presence)  # subscribe() would attach: the caller does

        def unsubscribe() -> None:
            presence.unsubscribe(on_presence)

        return unsubscribe

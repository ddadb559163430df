"""The Ably channel backend: the ``Channel`` protocol over ably-python's ``AblyRealtime``.

Owns: everything the package knows about the ``ably`` SDK. This is the only module that
imports it, and the one boundary where its exceptions become :class:`ChannelError` (or
:class:`MutableMessagesDisabledError` for Ably's 93002). Above this seam the transport sees
the same behaviour as on the in-memory broker; the conformance suite checks that.

How each protocol promise maps onto the SDK (ably-python 3.1.x):

* **publish** → ``RealtimeChannel.publish([...])``; the ACK's ``serials`` are returned.
  Messages without an ``id`` get ``<random base>:<index>`` ids (Ably's idempotent-publish
  form), so a retried publish is acknowledged again without a duplicate.
* **append / update** → ``append_message`` / ``update_message``. The service delivers an
  append with the original's ``name``; we drop it, as the protocol says appends carry none.
* **subscribe** is local: one SDK listener per handle fans out to the registered listeners.
  It never raises into the SDK; whatever the service sends (even malformed extras) is handed
  on as a :class:`ChannelMessage` for the transport to validate and skip.
* **attach** → ``RealtimeChannel.attach()``. ably-python exposes the ATTACHED
  ``channelSerial`` only through the private ``_RealtimeChannel__attach_serial`` (hence the
  ``ably<3.2`` pin). That serial bounds history (``from_serial``, what ably-js sends for
  ``untilAttach``, which ably-python lacks). :attr:`attach_serial` is the newest message at
  or before it, found with one REST request per attach (``None`` on an empty channel), so
  it names a real message as it does on every backend; ``attach(serial=False)`` (what the
  sessions use) skips that request.
* **Handles share the SDK's channel.** The SDK keeps one channel object per name and client,
  so several handles (say, concurrent per-request sessions of one worker) share its
  attachment. A handle joining an attachment that already exists bounds its history by the
  last position the SDK has received (``_RealtimeChannel__channel_serial``): everything up to
  there is history, everything after is delivered to it live. The SDK channel is detached
  when its last attached handle detaches.
* **presence** (enter, leave, members, events) is :mod:`._ably_presence`'s, mixed in.
* **history** → REST ``GET /channels/<name>/messages`` newest first, paged by the SDK's
  ``Link`` handling.

Failures: transient errors (5xx, 429, timeouts, connection loss) are retried with jittered
exponential backoff, bounded in attempts. Publishes and updates are always safe to repeat
(idempotent ids; an update carries the full contents). An append is not: it is retried only
when the service said no (a NACK) or it never left, not when the connection failed with the
append in flight (it may have been applied). Such an append fails with a retryable
``ChannelError``; the transport then repairs the stream with one full-text update at its end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote_plus, urlencode

from ably import AblyRealtime  # type: ignore[import-untyped]
from ably.http.http import Request  # type: ignore[import-untyped]
from ably.http.paginatedresult import PaginatedResult  # type: ignore[import-untyped]
from ably.realtime.connection import ConnectionState  # type: ignore[import-untyped]
from ably.rest.auth import Auth  # type: ignore[import-untyped]
from ably.types.channeloptions import ChannelOptions  # type: ignore[import-untyped]
from ably.types.channelstate import ChannelState  # type: ignore[import-untyped]
from ably.types.message import Message, MessageAction, make_message_response_handler  # type: ignore[import-untyped]
from ably.util.exceptions import AblyException  # type: ignore[import-untyped]
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from .._errors import (
    ChannelError,
    ErrorCode,
    InvalidArgumentError,
    MutableMessagesDisabledError,
    unable_to,
)
from .._wire import CHANNEL_AGENT_PARAM, ChannelMessage, OutboundMessage
from .._wire import MessageAction as WireAction
from ._ably_presence import AblyPresence
from ._base import Listener

__all__ = ["AblyChannel"]

logger = logging.getLogger("langgraph_interrupt.channels")
T = TypeVar("T")

#: The rule a namespace needs for appends and updates, as the Ably dashboard names it.
MUTABLE_MESSAGES_RULE = "Message annotations, updates, deletes and appends"

_ACTIONS: dict[object, WireAction] = {
    None: "message.create",  # a service that predates message actions
    MessageAction.MESSAGE_CREATE: "message.create",
    MessageAction.MESSAGE_UPDATE: "message.update",
    MessageAction.MESSAGE_DELETE: "message.delete",
    MessageAction.MESSAGE_APPEND: "message.append",
}
_GONE_STATES = (ConnectionState.CLOSING, ConnectionState.CLOSED, ConnectionState.FAILED,
                ConnectionState.SUSPENDED)

#: The attached handles of each SDK channel object: it is detached when the last one leaves.
_ATTACHED: weakref.WeakKeyDictionary[Any, set[AblyChannel]] = weakref.WeakKeyDictionary()


# -- the error boundary -----------------------------------------------------------------------
def _transient(exc: BaseException | None) -> bool:
    """Whether trying again can help: a server fault, a rate limit, a timeout, a lost link."""
    if isinstance(exc, AblyException):
        status, code = int(exc.status_code or 0), int(exc.code or 0)
        return status >= 500 or status in (408, 429) or 80000 <= code < 81000
    if isinstance(exc, (ValueError, TypeError, AttributeError, KeyError)):
        return False  # a bug or a bad argument: the same call fails the same way
    return isinstance(exc, Exception)  # transport errors (httpx, OSError, timeouts)


def _maybe_applied(exc: BaseException | None) -> bool:
    """The connection failed with the operation possibly sent: the service may have it.

    ably-python fails in-flight messages with the connection state's error (800xx), or, when
    the state change has no reason, with ``AblyException("Connection failed", 80000, 500)``:
    status and code swapped (3.1.4), so 80000 arrives as the status.
    """
    if not isinstance(exc, AblyException):
        return False
    return 80000 <= int(exc.code or 0) < 81000 or int(exc.status_code or 0) == 80000


def translate_error(operation: str, channel: str, exc: BaseException) -> ChannelError:
    """The package error for a foreign one (the original is kept as ``__cause__``)."""
    if isinstance(exc, ChannelError):
        return exc
    if isinstance(exc, AblyException):
        code = int(exc.code or ErrorCode.INTERNAL_ERROR)
        if code == ErrorCode.MUTABLE_MESSAGES_DISABLED:
            error: ChannelError = MutableMessagesDisabledError(unable_to(
                operation, f"channel {channel!r} does not allow updates and appends (Ably "
                f"93002): enable the \"{MUTABLE_MESSAGES_RULE}\" rule (mutable messages) for "
                "its namespace in the Ably app settings"), code=code)
        else:
            error = ChannelError(unable_to(operation, f"{exc.message} (Ably {code}, channel "
                                                      f"{channel!r})"),
                                 code=code, retryable=_transient(exc))
    else:
        error = ChannelError(unable_to(operation, f"{type(exc).__name__}: {exc} (channel "
                                                  f"{channel!r})"),
                             code=ErrorCode.INTERNAL_ERROR, retryable=_transient(exc))
    error.__cause__ = exc
    return error


def _to_channel_message(message: Message) -> ChannelMessage | None:
    """The SDK's message as subscribers and history pages see it; ``None`` for service
    notices that are not channel messages (annotation summaries, meta)."""
    action = _ACTIONS.get(message.action)
    if action is None:
        return None
    serial = message.serial if isinstance(message.serial, str) else ""
    version = message.version
    version_serial = getattr(version, "serial", None)
    timestamp = message.timestamp
    return ChannelMessage(
        None if action == "message.append" else message.name,  # the protocol's nameless append
        message.data,
        message.extras,
        serial,
        action,
        version_serial if isinstance(version_serial, str) else serial,
        message.client_id,
        message.connection_id,
        message.id,
        timestamp if isinstance(timestamp, int) else 0,
    )


class _Page:
    """One history page, newest first (see ``HistoryPage``)."""

    __slots__ = ("_channel", "_items", "_result")

    def __init__(self, channel: AblyChannel, result: PaginatedResult) -> None:
        self._channel = channel
        self._result = result
        self._items = [m for m in map(_to_channel_message, result.items or ()) if m is not None]

    @property
    def items(self) -> Sequence[ChannelMessage]:
        return self._items

    def has_next(self) -> bool:
        return bool(self._result.has_next())

    async def next(self) -> _Page:
        result = await self._channel._call("read history", self._result.next)
        return _Page(self._channel, result)


class AblyChannel(AblyPresence):
    """One participant's handle on an Ably channel, through a realtime client you made.

    Args:
        client: a connected (or connecting) ``ably.AblyRealtime``. Its client id is the
            identity messages are published as. Close it yourself (or use
            :meth:`from_options`, which owns its client).
        name: the channel name, e.g. ``"ai:chat-42"``; its namespace needs the mutable
            messages rule for streaming (see ``docs/ably.md``).
        retry_attempts: tries per operation on transient failures (1 disables retries).
        retry_initial: the first backoff bound in seconds; it doubles per attempt, and each
            wait is a random fraction of it (full jitter), capped at ``retry_max``.

    Handles of one channel name on one client share the SDK's channel object and its
    attachment (see the module notes); each has its own listeners and history bound.

    Example::

        client = AblyRealtime(key=os.environ["ABLY_API_KEY"], client_id="agent")
        agent = AgentSession(AblyChannel(client, "ai:chat-42"))
    """

    def __init__(self, client: AblyRealtime, name: str, *, retry_attempts: int = 4,
                 retry_initial: float = 0.05, retry_max: float = 1.0) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("channel name must be a non-empty string")
        if retry_attempts < 1:
            raise InvalidArgumentError("retry_attempts must be at least 1")
        self._client = client
        self._name = name
        self._attempts = retry_attempts
        self._initial = retry_initial
        self._max_wait = retry_max
        channels = client.channels
        self._sdk = (channels.get(name) if name in channels else
                     channels.get(name, ChannelOptions(params={"agent": CHANNEL_AGENT_PARAM})))
        self._listeners: list[Listener] = []
        self._registered = False
        self._attached = False
        self._bound: str | None = None  # history's upper bound (``from_serial``)
        self._attach_serial: str | None = None
        self._serial_known = False
        self._attaching = asyncio.Lock()
        self._owns_client = False

    @classmethod
    def from_options(cls, name: str, *, retry_attempts: int = 4, retry_initial: float = 0.05,
                     retry_max: float = 1.0, **client_options: Any) -> AblyChannel:
        """A handle with its own ``AblyRealtime(**client_options)``, closed by :meth:`close`.

        Call it from a coroutine (the SDK starts connecting at once). For example
        ``AblyChannel.from_options("ai:chat", key=KEY, client_id="agent")``, or the options
        of the offline broker: ``broker.python_client_options(client_id="agent")``.
        """
        channel = cls(AblyRealtime(**client_options), name, retry_attempts=retry_attempts,
                      retry_initial=retry_initial, retry_max=retry_max)
        channel._owns_client = True
        return channel

    # -- identity ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> AblyRealtime:
        """The realtime client this handle publishes through."""
        return self._client

    @property
    def client_id(self) -> str | None:
        client_id = self._client.auth.client_id or self._client.options.client_id
        return client_id if isinstance(client_id, str) else None

    @property
    def connection_id(self) -> str | None:
        """The realtime connection's id (``None`` before it connects)."""
        connection_id = self._client.connection.connection_manager.connection_id
        return connection_id if isinstance(connection_id, str) else None

    @property
    def attach_serial(self) -> str | None:
        return self._attach_serial

    # -- lifecycle ------------------------------------------------------------------------------
    async def attach(self, *, serial: bool = True, recent: int = 0) -> str | None:
        """Attach (idempotent); returns the serial of the newest message before the attach
        point, or ``None`` when the channel has none. Finding that serial costs one REST
        request; ``serial=False`` skips it (and returns ``None``): history is bounded at
        the attach point either way. ``recent``: ask Ably to deliver that many of the newest
        earlier messages right after the attach (the ``rewind`` channel parameter); only
        when this handle makes the attachment, not when it joins one."""
        async with self._attaching:
            if not self._attached:
                bound = await self._call("attach", lambda: self._attach_once(recent))
                if not isinstance(bound, str) or not bound:
                    raise ChannelError(unable_to("attach", f"the service sent no attach "
                                                           f"serial for {self._name!r}"),
                                       code=ErrorCode.CHANNEL_NOT_READY)
                self._bound = bound
                _ATTACHED.setdefault(self._sdk, set()).add(self)
                self._attached = True
                self._serial_known = False
            if not serial or self._serial_known:
                return self._attach_serial
            try:
                newest = await self._history_page(1, self._bound)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.detach()
                raise
            self._attach_serial = newest.items[0].serial if newest.items else None
            self._serial_known = True
            return self._attach_serial

    async def _attach_once(self, recent: int) -> object:
        """Register the SDK listener (once) and attach; returns the history bound."""
        shared = self._sdk.state == ChannelState.ATTACHED
        if not shared:
            self._rewind(recent)
        try:
            if self._registered:
                await self._sdk.attach()
            else:
                self._registered = True  # subscribe() registers before it awaits the attach
                await self._sdk.subscribe(self._on_sdk_message)
        finally:
            if recent > 0 and not shared:
                self._rewind(0)  # a later re-attach resumes; it must not replay them
        # No suspension since the listener was registered if the attachment was shared:
        # what the SDK has received so far is history, everything later reaches us live.
        if shared:
            position = getattr(self._sdk, "_RealtimeChannel__channel_serial", None)
            if isinstance(position, str) and position:
                return position
        return getattr(self._sdk, "_RealtimeChannel__attach_serial", None)

    def _rewind(self, recent: int) -> None:
        """Set (or clear) the ``rewind`` parameter the SDK sends with its next ATTACH."""
        options = getattr(self._sdk, "_RealtimeChannel__channel_options", None)
        if not isinstance(options, ChannelOptions):
            return  # an SDK whose internals moved: attach without rewind
        params = dict(options.params or {})
        if recent > 0:
            params["rewind"] = str(min(recent, 100))
        elif "rewind" not in params:
            return
        else:
            del params["rewind"]
        self._sdk.set_options_without_reattach(ChannelOptions(
            cipher=options.cipher, params=params, modes=getattr(options, "modes", None)))

    async def detach(self) -> None:
        """Stop delivering messages to this handle's listeners, and detach. Idempotent; a
        closed or failed connection has nothing to detach from and is not an error."""
        if self._registered:
            self._sdk.unsubscribe(self._on_sdk_message)
            self._registered = False
        if not self._attached:
            return
        self._attached = False
        others = _ATTACHED.get(self._sdk, set())
        others.discard(self)
        if others or self._client.connection.state in _GONE_STATES:
            return  # another handle still uses the attachment, or there is none to leave
        try:
            await self._sdk.detach()
        except Exception as exc:
            raise translate_error("detach", self._name, exc) from exc

    async def close(self) -> None:
        """Detach, then close the client if this handle made it (:meth:`from_options`)."""
        try:
            await self.detach()
        finally:
            if self._owns_client:
                await self._client.close()

    async def __aenter__(self) -> AblyChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- receiving ------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _on_sdk_message(self, message: Message) -> None:
        # Called by the SDK's reader task: nothing may propagate back into it.
        try:
            converted = _to_channel_message(message)
        except Exception:
            logger.debug("skipping an unreadable message on %r", self._name, exc_info=True)
            return
        if converted is None:
            return
        for listener in tuple(self._listeners):
            try:
                listener(converted)
            except Exception:
                logger.exception("channel listener %r raised; message skipped", listener)

    # -- publishing -----------------------------------------------------------------------------
    async def publish(self, messages: Sequence[OutboundMessage]) -> list[str]:
        for message in messages:  # the batch is atomic: validate all of it first
            if message.extras is not None and not isinstance(message.extras, Mapping):
                raise InvalidArgumentError("unable to publish; extras must be an object")
        ids: list[str | None] = [m.id for m in messages]
        if all(i is None for i in ids):  # idempotent publishing (Ably's RSL1k1 id form)
            base = base64.urlsafe_b64encode(os.urandom(12)).decode("ascii")
            ids = [f"{base}:{index}" for index in range(len(messages))]

        def send() -> Awaitable[Any]:
            sent: Awaitable[Any] = self._sdk.publish([
                Message(name=m.name, data=m.data, id=i,
                        extras=dict(m.extras) if m.extras is not None else None)
                for m, i in zip(messages, ids, strict=True)])
            return sent

        result = await self._call("publish", send)
        serials = list(getattr(result, "serials", None) or ())
        if len(serials) != len(messages) or not all(isinstance(s, str) for s in serials):
            raise ChannelError(unable_to("publish", f"the service returned serials {serials!r} "
                                                    f"for {len(messages)} message(s)"))
        return serials

    async def append(self, serial: str, data: str, extras: Mapping[str, Any]) -> None:
        if not isinstance(extras, Mapping):
            raise InvalidArgumentError("unable to append message; extras must be an object")
        if not isinstance(data, str):
            raise InvalidArgumentError("unable to append message; data must be a string")
        message = Message(serial=serial, data=data, extras=dict(extras))
        await self._call("append message", lambda: self._sdk.append_message(message),
                         repeatable=lambda exc: not _maybe_applied(exc))

    async def update(self, serial: str, data: Any, extras: Mapping[str, Any]) -> None:
        if not isinstance(extras, Mapping):
            raise InvalidArgumentError("unable to update message; extras must be an object")
        message = Message(serial=serial, data=data, extras=dict(extras))
        await self._call("update message", lambda: self._sdk.update_message(message))

    # -- history --------------------------------------------------------------------------------
    async def history(self, *, limit: int = 100, until_attach: bool = True) -> _Page:
        if limit < 1 or limit > 1000:
            raise InvalidArgumentError("history limit must be between 1 and 1000")
        if until_attach and not self._attached:
            raise ChannelError("unable to read history; until_attach needs an attached channel",
                               code=ErrorCode.CHANNEL_NOT_READY)
        return await self._history_page(limit, self._bound if until_attach else None)

    async def _history_page(self, limit: int, bound: str | None) -> _Page:
        params = {"limit": str(limit)}
        if bound is not None:
            params["from_serial"] = bound  # what ably-js sends for untilAttach
        url = f"/channels/{quote_plus(self._name, safe=':')}/messages?{urlencode(params)}"

        def query(request: Request) -> Awaitable[Any]:
            result: Awaitable[Any] = PaginatedResult.paginated_query_with_request(
                self._client.http, request, make_message_response_handler(None))
            return result

        async def fetch() -> Any:
            headers = self._token_headers()
            if headers is not None:
                try:
                    return await query(Request("GET", url, headers=headers, skip_auth=True))
                except AblyException as exc:  # a token the service no longer takes
                    if not 40140 <= int(exc.code or 0) < 40150:
                        raise
            return await query(Request("GET", url))  # the SDK authorises (and renews)

        return _Page(self, await self._call("read history", fetch))

    def _token_headers(self) -> dict[str, str] | None:
        """The REST ``Authorization`` header from the realtime client's valid token, or
        ``None`` to let the SDK authorise.

        ably-python 3.1 authorises every REST request of a realtime client that uses token
        auth as an explicit ``authorize()``: it sends ``AUTH`` on the connection and waits
        for ``CONNECTED`` (which also re-attaches its channels) even with a valid cached
        token, one more round trip per history page. A valid token needs none of that.
        """
        auth = self._client.auth
        try:
            if auth.auth_mechanism != Auth.Method.TOKEN or auth.token_details is None \
                    or auth.token_details_has_expired():
                return None
            credentials = auth.token_credentials
        except Exception:  # an SDK whose internals moved: take its own path
            return None
        return {"Authorization": f"Bearer {credentials}"} if credentials else None

    # -- retries --------------------------------------------------------------------------------
    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], *,
                    repeatable: Callable[[BaseException | None], bool] = lambda exc: True) -> T:
        """Run ``call``, retrying transient failures; foreign errors leave as ChannelError.

        The first attempt is a plain await: every publish and append comes through here,
        and building a retry loop per call costs more than most calls (about 0.1 ms). Only
        a retryable failure enters the backoff loop for the remaining attempts.
        """
        try:
            return await call()
        except Exception as exc:
            error = translate_error(operation, self._name, exc)
            if self._attempts <= 1 or not (isinstance(error, ChannelError) and error.retryable
                                           and repeatable(exc)):
                raise error from exc

        def retry(exc: BaseException) -> bool:
            return (isinstance(exc, ChannelError) and exc.retryable
                    and repeatable(exc.__cause__))

        # Attempts 2..N: wait before each, as a loop that had failed once would.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts - 1),
            wait=wait_random_exponential(multiplier=self._initial * 2, max=self._max_wait),
            retry=retry_if_exception(retry), reraise=True)
        await asyncio.sleep(random.uniform(0, min(self._initial, self._max_wait)))
        async for attempt in retrying:
            with attempt:
                try:
                    return await call()
                except Exception as exc:
                    raise translate_error(operation, self._name, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def __repr__(self) -> str:
        return f"<AblyChannel {self._name!r} client_id={self.client_id!r}>"

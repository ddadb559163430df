"""The public broker object: lifecycle, configuration, client options and inspection.

Owns: wiring the store, hub, presence, realtime and REST front ends onto one aiohttp server bound
to a loopback address, start/stop, ``reset()`` between tests, and read-only views of broker state.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from ._auth import Authenticator
from ._client_options import js_client_options, python_client_options
from ._faults import Faults
from ._hub import Hub
from ._presence import Presence
from ._protocol import MAX_FRAME_SIZE, MAX_MESSAGE_SIZE, PresenceAction
from ._realtime import RealtimeConfig, RealtimeServer
from ._rest import RestApi
from ._store import HistoryQuery, SerialClock, Store

__all__ = ["DEFAULT_KEY", "AblyBroker", "ConnectionInfo"]

DEFAULT_KEY = "broker.testkey:broker-secret"


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A snapshot of one realtime connection the broker remembers."""

    connection_id: str
    client_id: str | None
    connected: bool
    """False while the socket is gone but the connection is still resumable."""
    channels: tuple[str, ...]
    format: str
    auths: int = 0
    """How many in-band ``AUTH`` messages the connection sent (re-authentications)."""


class AblyBroker:
    """An offline, loopback-only Ably service that the unmodified SDKs talk to.

    When to use: integration tests that must exercise the real ably-python / ably-js clients
    (option traps, ACK/serial handling, append/update delivery, history paging, reconnects,
    cross-SDK interop) without network access. Unit tests of your own logic are better served by
    a fake channel object; this is the thin integration tier.

    In pytest (asyncio)::

        async with AblyBroker() as broker:
            client = ably.AblyRealtime(**broker.python_client_options(client_id="agent"))

    The broker runs in the current event loop; ``port`` is known after ``start()``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        keys: Iterable[str] = (DEFAULT_KEY,),
        append_name: Literal["original", "omit"] = "original",
        accept_any_token: bool = False,
        token_client_ids: Mapping[str, str | None] | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_frame_size: int = MAX_FRAME_SIZE,
        max_queued_frames: int = 10_000,
        max_channels: int = 10_000,
        history_limit: int = 10_000,
        event_log_limit: int = 10_000,
        max_idle_interval_ms: int = 15_000,
        heartbeat_interval_ms: int = 5_000,
        connection_state_ttl_ms: int = 120_000,
        presence_leave_timeout_ms: int = 15_000,
        max_presence_members: int = 200,
        server_id: str | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        """Configure (nothing listens until :meth:`start`).

        ``append_name``: the name on delivered ``message.append`` messages. ``"original"``
        (default) is what the real service does (ably-js's real-service tests assert it);
        ``"omit"`` delivers appends without a name, as some fakes do. Code should not depend on
        either (identify appends by ``serial``).
        ``accept_any_token``: accept tokens the broker did not issue (e.g. from an app's own
        ``authCallback``), with ``clientId`` from ``token_client_ids``.
        ``presence_leave_timeout_ms``: how long the presence members of a connection whose
        transport was lost stay present, waiting for it to resume (Ably: 15 s); a resume in
        time keeps them, otherwise they leave. ``max_presence_members`` per channel (Ably's
        default limit is 200; more gets 91003).
        ``clock``: milliseconds since the epoch, injectable for reproducible timestamps.
        """
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the broker only binds to a loopback address, not {host!r}")
        self._host = host
        self._requested_port = port
        self._now_ms = clock or (lambda: int(time.time() * 1000))
        self.server_id = server_id or f"broker-{secrets.token_hex(3)}"
        self._auth = Authenticator(
            keys,
            self._now_ms,
            accept_any_token=accept_any_token,
            token_client_ids=token_client_ids,
        )
        self.faults = Faults(self._drop)
        """Fault injection: NACKs, 93002 rejections, delivery delays, dropped connections."""
        self._store = Store(
            SerialClock(self.server_id, self._now_ms),
            message_limit=history_limit,
            event_limit=event_log_limit,
            max_channels=max_channels,
        )
        self._hub = Hub(
            self._store,
            self.faults,
            max_message_size=max_message_size,
            append_name=append_name == "original",
        )
        self._presence = Presence(
            self._hub,
            self.faults,
            self._now_ms,
            server_id=self.server_id,
            leave_timeout_ms=presence_leave_timeout_ms,
            max_members=max_presence_members,
            max_message_size=max_message_size,
        )
        self._realtime = RealtimeServer(
            self._hub,
            self._auth,
            RealtimeConfig(
                server_id=self.server_id,
                max_message_size=max_message_size,
                max_frame_size=max_frame_size,
                max_queued_frames=max_queued_frames,
                max_idle_interval_ms=max_idle_interval_ms,
                heartbeat_interval_ms=heartbeat_interval_ms,
                connection_state_ttl_ms=connection_state_ttl_ms,
            ),
            self._now_ms,
            self._presence,
        )
        self._rest = RestApi(self._hub, self._auth, self._now_ms, self.server_id, self._presence)
        self._max_frame_size = max_frame_size
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind to the loopback address and start serving (idempotent)."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=self._max_frame_size * 2)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        """Drop every connection and stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        self._realtime.close_all()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> AblyBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def reset(self) -> None:
        """Forget all channels, messages, presence members and faults; drop every connection."""
        self.faults.clear()
        self._realtime.close_all()
        self._presence.clear()
        self._hub.clear()
        self._store.clear()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if request.path.startswith("/ws-up"):  # ably-js websocket connectivity check
                ws = web.WebSocketResponse()
                await ws.prepare(request)
                with contextlib.suppress(Exception):
                    await ws.close()
                return ws
            return await self._realtime.handle(request)
        return await self._rest.handle(request)

    def _drop(self, connection_id: str | None) -> int:
        return self._realtime.drop(connection_id)

    # ------------------------------------------------------------------ addresses and options

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The TCP port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the broker is not started")
        return self._port

    @property
    def key(self) -> str:
        """The first API key (``"appId.keyId:secret"``)."""
        return self._auth.default_key.full

    @property
    def http_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def python_client_options(
        self,
        client_id: str | None = None,
        *,
        use_binary_protocol: bool = True,
        token_auth: bool = True,
        key: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Keyword arguments for ``ably.AblyRealtime(**kw)`` or ``ably.AblyRest(**kw)``.

        Token auth (signed locally with the key) is the default because ably-python refuses key
        auth for REST calls over plain HTTP; ``token_auth=False`` gives key auth (realtime only).
        """
        return python_client_options(
            self._host,
            self.port,
            key=key or self.key,
            client_id=client_id,
            use_binary_protocol=use_binary_protocol,
            token_auth=token_auth,
            **overrides,
        )

    def js_client_options(
        self,
        client_id: str | None = None,
        *,
        use_binary_protocol: bool | None = None,
        key: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """A JSON-serialisable dict for ``new Ably.Realtime(opts)`` (Node or browser)."""
        return js_client_options(
            self._host,
            self.port,
            key=key or self.key,
            client_id=client_id,
            use_binary_protocol=use_binary_protocol,
            **overrides,
        )

    def issue_token(
        self,
        client_id: str | None = None,
        *,
        ttl_ms: int = 3_600_000,
        capability: Mapping[str, list[str]] | str | None = None,
    ) -> dict[str, Any]:
        """Mint a token (TokenDetails dict) as an app server would, e.g. for ``auth_callback``.

        ``capability`` (``{"ai:*": ["publish", "subscribe"]}`` or its JSON) defaults to
        everything; the broker enforces its ``presence`` operation only.
        """
        if capability is None:
            return self._auth.issue(client_id=client_id, ttl_ms=ttl_ms).to_wire()
        text = capability if isinstance(capability, str) else json.dumps(dict(capability))
        return self._auth.issue(client_id=client_id, ttl_ms=ttl_ms, capability=text).to_wire()

    # ------------------------------------------------------------------ inspection

    def connections(self) -> list[ConnectionInfo]:
        """Snapshots of the realtime connections the broker currently remembers."""
        return [
            ConnectionInfo(
                connection_id=s.id,
                client_id=s.identity.client_id,
                connected=s.transport is not None,
                channels=tuple(sorted(s.attachments)),
                format=s.format,
                auths=s.auths,
            )
            for s in self._realtime.sessions()
        ]

    def presence(self, channel: str) -> list[dict[str, Any]]:
        """The channel's presence members, in entry order, as JSON wire dicts (action present)."""
        return [m.to_wire("json", PresenceAction.PRESENT) for m in self._presence.members(channel)]

    def channels(self) -> list[str]:
        """Names of the channels the broker has seen."""
        return self._store.names()

    def history(self, channel: str) -> list[dict[str, Any]]:
        """The channel's stored messages, oldest first, as aggregated JSON wire dicts."""
        store = self._store.existing(channel)
        if store is None:
            return []
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page, cursor = store.history(HistoryQuery(backwards=False, limit=1000, cursor=cursor))
            items.extend(r.to_wire("json") for r in page)
            if cursor is None:
                return items

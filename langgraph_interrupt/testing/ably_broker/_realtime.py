"""The realtime (websocket) front end.

Owns: accepting a websocket, authenticating it from its query string, the logical connection
(:class:`Session`, which outlives a dropped socket for ``connectionStateTtl`` so the SDKs can
resume it), heartbeats, token expiry, and the client-to-server protocol messages: HEARTBEAT,
ATTACH, DETACH, MESSAGE (ACK/NACK with ``res.serials``), PRESENCE (ACK/NACK; the set itself is
``_presence``'s), SYNC, AUTH, CLOSE and DISCONNECT. It tells ``_presence`` when a connection
detaches, closes, loses its transport or resumes.

Resume: a reconnect with ``resume=<connectionKey>`` gets the same ``connectionId`` (no error) and
re-sent ``msgSerial``s are acknowledged again without republishing; each channel re-attached with
its ``channelSerial`` is ``RESUMED`` and receives what was published meanwhile.

Every frame a client sends may be hostile: failures become ERROR/NACK replies or close only that
connection, never the broker.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from ._auth import Authenticator, ClientIdentity, IdentityKind
from ._hub import Attachment, Hub, Publisher
from ._messages import parse_inbound_list
from ._presence import Presence
from ._protocol import (
    DEFAULT_MODE_FLAGS,
    MODE_MASK,
    AblyError,
    Action,
    Flag,
    Format,
    decode_frame,
    parse_rewind,
)
from ._transport import Transport

__all__ = ["RealtimeConfig", "RealtimeServer", "Session"]

log = logging.getLogger(__name__)

_MAX_CHANNEL_NAME = 2048
_PROCESSED_REPLIES = 1000


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Connection parameters advertised in CONNECTED and enforced by the broker."""

    server_id: str
    max_message_size: int
    max_frame_size: int
    max_queued_frames: int
    max_idle_interval_ms: int
    heartbeat_interval_ms: int
    connection_state_ttl_ms: int


class Session:
    """A logical Ably connection; survives socket drops until ``connectionStateTtl``."""

    def __init__(self, identity: ClientIdentity, transport: Transport, echo: bool) -> None:
        self.id = secrets.token_urlsafe(8)
        self.key = f"{secrets.token_hex(4)}!{self.id}"
        self.identity = identity
        self.transport: Transport | None = transport
        self.echo_messages = echo
        self.last_format: Format = transport.format
        self.attachments: dict[str, Attachment] = {}
        self.saved: dict[str, Attachment] = {}
        self.replies: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.expiry: asyncio.TimerHandle | None = None
        self.token_timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.auths = 0  # in-band AUTH messages received

    # the Subscriber protocol of the hub
    @property
    def connection_id(self) -> str:
        return self.id

    @property
    def echo(self) -> bool:
        return self.echo_messages

    @property
    def format(self) -> Format:
        return self.transport.format if self.transport is not None else self.last_format

    def deliver(self, frame: str | bytes, delay_ms: int) -> None:
        if self.transport is not None:
            self.transport.send_frame(frame, delay_ms)

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            self.transport.send(message)

    def remember_reply(self, msg_serial: int, reply: dict[str, Any]) -> None:
        self.replies[msg_serial] = reply
        while len(self.replies) > _PROCESSED_REPLIES:
            self.replies.popitem(last=False)


class RealtimeServer:
    """Accepts realtime websockets and runs the connection protocol."""

    def __init__(
        self,
        hub: Hub,
        auth: Authenticator,
        config: RealtimeConfig,
        now_ms: Callable[[], int],
        presence: Presence,
    ) -> None:
        self.hub = hub
        self.auth = auth
        self.config = config
        self.presence = presence
        self._now_ms = now_ms
        self._by_key: dict[str, Session] = {}
        self._by_id: dict[str, Session] = {}
        self._transports: set[Transport] = set()

    # ------------------------------------------------------------------ public controls

    def sessions(self) -> list[Session]:
        return list(self._by_id.values())

    def drop(self, connection_id: str | None) -> int:
        """Abort the socket of one connection (or all); sessions stay resumable."""
        count = 0
        for session in list(self._by_id.values()):
            if connection_id is not None and session.id != connection_id:
                continue
            if session.transport is not None and not session.transport.aborted:
                session.transport.abort()
                count += 1
        return count

    def close_all(self) -> None:
        """Abort every socket and forget every session (broker shutdown or reset)."""
        for transport in list(self._transports):
            transport.abort()
        for session in list(self._by_id.values()):
            self._destroy(session)

    # ------------------------------------------------------------------ websocket lifecycle

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            compress=False, max_msg_size=self.config.max_frame_size, autoping=True, timeout=2.0
        )
        await ws.prepare(request)
        query = request.rel_url.query
        fmt: Format = "msgpack" if query.get("format") == "msgpack" else "json"
        transport = Transport(ws, request, fmt, max_queued_frames=self.config.max_queued_frames)
        transport.start()
        self._transports.add(transport)
        heartbeat: asyncio.Task[None] | None = None
        session: Session | None = None
        try:
            session = self._open(transport, query)
            if session is not None:
                heartbeat = asyncio.create_task(self._heartbeats(transport))
                await self._read_loop(session, transport)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            self._transports.discard(transport)
            if session is not None and session.transport is transport:
                self._lost_transport(session)
            await transport.finish()
        return ws

    def _open(self, transport: Transport, query: Any) -> Session | None:
        """Authenticate, create or resume the session, and send CONNECTED (or ERROR)."""
        try:
            identity = self.auth.identify(
                key=query.get("key"),
                token=query.get("accessToken") or query.get("access_token"),
                client_id=query.get("clientId"),
            )
        except AblyError as exc:
            transport.send({"action": int(Action.ERROR), "error": exc.to_dict()})
            transport.close_after_flush()
            return None
        echo = query.get("echo") != "false"
        resume_key = query.get("resume") or query.get("recover")
        error: AblyError | None = None
        session: Session | None = None
        if resume_key:
            old = self._by_key.get(resume_key)
            if old is not None and self.hub.faults.is_partitioned(old.id):
                transport.abort()  # still cut off from the network (faults.partition)
                return None
            if old is not None and not old.closed and old.identity.client_id == identity.client_id:
                session = old
                if old.transport is not None:
                    previous = old.transport
                    self._lost_transport(old)
                    previous.abort()
                session.identity = identity
                session.echo_messages = echo
                session.transport = transport
            else:
                error = AblyError(80008, 400, "unable to resume connection; key unknown or expired")
        if session is None:
            session = Session(identity, transport, echo)
            self._by_key[session.key] = session
            self._by_id[session.id] = session
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        self.presence.connection_back(session.id)
        session.last_format = transport.format
        session.send(self._connected(session, error))
        self._arm_token_timer(session)
        return session

    def _connected(self, session: Session, error: AblyError | None) -> dict[str, Any]:
        details: dict[str, Any] = {
            "connectionKey": session.key,
            "maxMessageSize": self.config.max_message_size,
            "maxInboundRate": 1000,
            "maxOutboundRate": 1000,
            "maxFrameSize": self.config.max_frame_size,
            "serverId": self.config.server_id,
            "connectionStateTtl": self.config.connection_state_ttl_ms,
            "maxIdleInterval": self.config.max_idle_interval_ms,
        }
        if session.identity.kind is IdentityKind.IDENTIFIED:
            details["clientId"] = session.identity.client_id
        message: dict[str, Any] = {
            "action": int(Action.CONNECTED),
            "connectionId": session.id,
            "connectionKey": session.key,
            "connectionDetails": details,
        }
        if error is not None:
            message["error"] = error.to_dict()
        return message

    def _lost_transport(self, session: Session) -> None:
        """The session's socket is gone: park its attachments and start the TTL clock."""
        for channel, attachment in list(session.attachments.items()):
            self.hub.detach(channel, session)
            session.saved[channel] = attachment
        session.attachments.clear()
        session.transport = None
        if session.token_timer is not None:
            session.token_timer.cancel()
            session.token_timer = None
        if not session.closed and session.expiry is None:
            loop = asyncio.get_running_loop()
            session.expiry = loop.call_later(
                self.config.connection_state_ttl_ms / 1000, self._destroy, session
            )
        if not session.closed:
            self.presence.connection_lost(session.id)

    def _destroy(self, session: Session) -> None:
        session.closed = True
        self.presence.leave_connection(session.id)
        for channel in list(session.attachments):
            self.hub.detach(channel, session)
        for channel in {*session.attachments, *session.saved}:
            self.hub.lifecycle.release(channel, session.id)
        session.attachments.clear()
        session.saved.clear()
        for handle in (session.expiry, session.token_timer):
            if handle is not None:
                handle.cancel()
        self._by_key.pop(session.key, None)
        self._by_id.pop(session.id, None)

    def _arm_token_timer(self, session: Session) -> None:
        if session.token_timer is not None:
            session.token_timer.cancel()
            session.token_timer = None
        expires = session.identity.expires
        transport = session.transport
        if expires is None or transport is None:
            return

        def expired() -> None:
            session.token_timer = None
            if session.transport is transport:
                error = AblyError(40142, 401, "token expired")
                transport.send({"action": int(Action.DISCONNECTED), "error": error.to_dict()})
                transport.close_after_flush()

        delay = max(0.0, (expires - self._now_ms()) / 1000)
        session.token_timer = asyncio.get_running_loop().call_later(delay, expired)

    async def _heartbeats(self, transport: Transport) -> None:
        interval = self.config.heartbeat_interval_ms / 1000
        while not transport.closing:
            await asyncio.sleep(interval)
            transport.send({"action": int(Action.HEARTBEAT)})

    async def _read_loop(self, session: Session, transport: Transport) -> None:
        async for frame in transport.ws:
            if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            try:
                self._dispatch(session, transport, decode_frame(frame.data))
            except AblyError as exc:
                self._fail(transport, exc)
            except Exception:  # a broker bug must only cost this connection
                log.exception("ably broker: error handling a protocol message")
                self._fail(transport, AblyError.internal())
            if transport.closing or session.transport is not transport:
                break

    @staticmethod
    def _fail(transport: Transport, error: AblyError) -> None:
        """Connection-level failure: ERROR, then close this socket only."""
        transport.send({"action": int(Action.ERROR), "error": error.to_dict()})
        transport.close_after_flush()

    # ------------------------------------------------------------------ protocol messages

    def _dispatch(self, session: Session, transport: Transport, pm: dict[str, Any]) -> None:
        action = pm.get("action")
        if isinstance(action, bool) or not isinstance(action, int):
            raise AblyError.bad_request("protocol message action must be an integer")
        if action == Action.HEARTBEAT:
            reply: dict[str, Any] = {"action": int(Action.HEARTBEAT)}
            if isinstance(pm.get("id"), str):
                reply["id"] = pm["id"]
            transport.send(reply)
        elif action in (Action.MESSAGE, Action.PRESENCE):
            self._on_publish(session, transport, pm)
        elif action == Action.ATTACH:
            self._on_attach(session, transport, pm)
        elif action == Action.DETACH:
            channel = _channel_name(pm)
            self.hub.detach(channel, session)
            self.hub.lifecycle.release(channel, session.id)
            session.attachments.pop(channel, None)
            session.saved.pop(channel, None)
            self.presence.leave_connection(session.id, channel)
            transport.send({"action": int(Action.DETACHED), "channel": channel})
        elif action == Action.SYNC:  # a client asks for the presence set again (ably-js sync())
            channel = _channel_name(pm)
            attachment = session.attachments.get(channel)
            if attachment is not None:
                for frame in self.presence.sync_frames(
                    channel, session.format, modes=attachment.modes, force=True
                ):
                    transport.send_frame(frame, bounded=False)
        elif action in (Action.ANNOTATION, Action.OBJECT):
            msg_serial = _msg_serial(pm)
            error = AblyError.bad_request(
                f"{Action(action).name.lower()} is not supported by the test broker"
            )
            transport.send(_nack(msg_serial, error))
        elif action == Action.AUTH:
            self._on_auth(session, transport, pm)
        elif action == Action.CLOSE:
            transport.send({"action": int(Action.CLOSED)})
            transport.close_after_flush()
            self._destroy(session)
        elif action == Action.DISCONNECT:
            transport.send({"action": int(Action.DISCONNECTED)})
            transport.close_after_flush()
        else:
            raise AblyError.bad_request(f"unexpected protocol message action {action}")

    def _on_publish(self, session: Session, transport: Transport, pm: dict[str, Any]) -> None:
        """MESSAGE or PRESENCE: apply once, then ACK (or NACK); a resend is acknowledged again."""
        msg_serial = _msg_serial(pm)
        previous = session.replies.get(msg_serial)
        if previous is not None:  # a resend after a resume: acknowledge again, publish once
            log.debug("ably broker: %s resent msgSerial %d; acked again", session.id, msg_serial)
            transport.send(previous)
            return
        reply: dict[str, Any] = {"action": int(Action.ACK), "msgSerial": msg_serial, "count": 1}
        try:
            channel = _channel_name(pm)
            if pm.get("action") == Action.PRESENCE:
                if channel not in session.attachments and channel not in session.saved:
                    raise AblyError(
                        91001, 400, "unable to enter presence channel (invalid channel state)"
                    )
                self.presence.apply(
                    channel, session.identity, session.id, msg_serial, pm.get("presence")
                )
            else:
                serials = self.hub.publish(
                    channel,
                    parse_inbound_list(pm.get("messages")),
                    Publisher(session.identity, session.id, f"{session.id}:{msg_serial}"),
                )
                reply["res"] = [{"serials": serials}]
        except AblyError as exc:
            reply = _nack(msg_serial, exc)
        session.remember_reply(msg_serial, reply)
        transport.send(reply)

    def _on_attach(self, session: Session, transport: Transport, pm: dict[str, Any]) -> None:
        channel = _channel_name(pm)
        try:
            flags = pm.get("flags")
            if flags is not None and (isinstance(flags, bool) or not isinstance(flags, int)):
                raise AblyError.bad_request("ATTACH flags must be an integer")
            modes = (flags or 0) & MODE_MASK or DEFAULT_MODE_FLAGS
            params = pm.get("params")
            if params is not None and not isinstance(params, dict):
                raise AblyError.bad_request("ATTACH params must be a map")
            rewind = parse_rewind(params.get("rewind") if params else None)
            channel_serial = pm.get("channelSerial")
            if channel_serial is not None and not isinstance(channel_serial, str):
                raise AblyError.bad_request("ATTACH channelSerial must be a string")
            previous = session.saved.pop(channel, None) or session.attachments.get(channel)
            outcome = self.hub.attach(
                channel,
                session,
                modes=modes,
                channel_serial=channel_serial,
                previous=previous,
                rewind=rewind,
            )
        except AblyError as exc:
            transport.send(
                {"action": int(Action.ERROR), "channel": channel, "error": exc.to_dict()}
            )
            return
        session.attachments[channel] = outcome.attachment
        # resumed or not: the SDKs rebuild their presence set on every ATTACHED
        sync = self.presence.sync_frames(channel, session.format, modes=modes, force=False)
        attached: dict[str, Any] = {
            "action": int(Action.ATTACHED),
            "channel": channel,
            "channelSerial": outcome.channel_serial,
            "flags": modes
            | (Flag.RESUMED if outcome.resumed else 0)
            | (Flag.HAS_PRESENCE if sync else 0),
        }
        if params and "rewind" in params:
            attached["params"] = {"rewind": params["rewind"]}
        transport.send(attached)
        for frame in [*outcome.backlog, *sync]:
            transport.send_frame(frame, bounded=False)

    def _on_auth(self, session: Session, transport: Transport, pm: dict[str, Any]) -> None:
        session.auths += 1
        auth = pm.get("auth")
        token = auth.get("accessToken") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise AblyError.bad_request("AUTH needs auth.accessToken")
        requested = session.identity.client_id
        identity = self.auth.identify(key=None, token=token, client_id=requested)
        if identity.client_id != requested:
            raise AblyError(40102, 401, "incompatible credentials; clientId cannot change")
        session.identity = identity
        transport.send(self._connected(session, None))
        self._arm_token_timer(session)


def _channel_name(pm: dict[str, Any]) -> str:
    channel = pm.get("channel")
    if not isinstance(channel, str) or not channel or len(channel) > _MAX_CHANNEL_NAME:
        raise AblyError(40010, 400, "invalid channel name")
    return channel


def _msg_serial(pm: dict[str, Any]) -> int:
    msg_serial = pm.get("msgSerial")
    if isinstance(msg_serial, bool) or not isinstance(msg_serial, int) or msg_serial < 0:
        raise AblyError.bad_request("msgSerial must be a non-negative integer")
    return msg_serial


def _nack(msg_serial: int, error: AblyError) -> dict[str, Any]:
    return {
        "action": int(Action.NACK),
        "msgSerial": msg_serial,
        "count": 1,
        "error": error.to_dict(),
    }

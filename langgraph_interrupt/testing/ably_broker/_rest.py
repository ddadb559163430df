"""The REST front end.

Owns: routing on the *raw* request path (channel names arrive percent-encoded, ``/`` as ``%2F``,
``:`` raw from ably-python and as ``%3A`` from ably-js), content negotiation (msgpack iff the
client accepts it), the error envelope plus ``X-Ably-Errorcode`` headers, ``Link`` headers in
the exact form both SDKs parse (``<./messages?...>; rel="next"``), and CORS so a browser front
end served from another origin can call it.

Endpoints: ``GET /time``, ``POST /keys/{keyName}/requestToken``, ``GET /channels/{ch}``,
``GET|POST /channels/{ch}/messages``, ``GET|PATCH /channels/{ch}/messages/{serial}``,
``GET /channels/{ch}/messages/{serial}/versions``, ``GET /channels/{ch}/presence`` (the current
members), plus the connectivity-check URL.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import web

from ._auth import Authenticator, ClientIdentity
from ._hub import Hub, Publisher
from ._messages import parse_inbound, parse_inbound_list
from ._presence import Presence
from ._protocol import AblyError, Flag, Format, PresenceAction, decode_body, encode_body, error_body
from ._store import HistoryQuery

__all__ = ["RestApi"]

log = logging.getLogger(__name__)

_EXPOSE = "Link, X-Ably-Errorcode, X-Ably-Errormessage, X-Ably-Serverid"


def _cors(request: web.Request) -> dict[str, str]:
    """CORS headers as the real service sends them: a browser's request names its origin and
    ably-js sends credentials with every authenticated request (``withCredentials``, fetch
    ``credentials: "include"``), for which browsers refuse ``Allow-Origin: *``. So the origin
    is echoed with ``Allow-Credentials``; a request without an origin gets ``*``."""
    origin = request.headers.get("Origin")
    if origin is None:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": _EXPOSE}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": _EXPOSE, "Vary": "Origin"}


class RestApi:
    """Handles every non-websocket HTTP request."""

    def __init__(
        self,
        hub: Hub,
        auth: Authenticator,
        now_ms: Callable[[], int],
        server_id: str,
        presence: Presence,
    ) -> None:
        self.hub = hub
        self.auth = auth
        self.presence = presence
        self._now_ms = now_ms
        self._server_id = server_id

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fmt: Format = "msgpack" if "msgpack" in request.headers.get("Accept", "") else "json"
        if request.method == "OPTIONS":
            return self._preflight(request)
        try:
            status, body, headers = await self._route(request)
        except AblyError as exc:
            return self._respond(request, exc.status_code, error_body(exc), fmt,
                                 _error_headers(exc))
        except web.HTTPRequestEntityTooLarge:
            too_large = AblyError(40009, 413, "request body too large")
            return self._respond(request, 413, error_body(too_large), fmt,
                                 _error_headers(too_large))
        except Exception:  # a broker bug must not take the server down
            log.exception("ably broker: error handling %s %s", request.method, request.raw_path)
            internal = AblyError.internal()
            return self._respond(request, 500, error_body(internal), fmt,
                                 _error_headers(internal))
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers={**_cors(request), **headers})
        return self._respond(request, status, body, fmt, headers)

    def _respond(
        self, request: web.Request, status: int, body: Any, fmt: Format, headers: dict[str, str]
    ) -> web.Response:
        raw, content_type = encode_body(body, fmt)
        all_headers = {**_cors(request), "X-Ably-Serverid": self._server_id, **headers}
        return web.Response(status=status, body=raw, content_type=content_type, headers=all_headers)

    @staticmethod
    def _preflight(request: web.Request) -> web.Response:
        headers = {
            **_cors(request),
            "Access-Control-Allow-Methods": "GET, POST, PATCH, PUT, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", "*"
            ),
            "Access-Control-Max-Age": "600",
        }
        return web.Response(status=204, headers=headers)

    # ------------------------------------------------------------------ routing

    async def _route(self, request: web.Request) -> tuple[int, Any, dict[str, str]]:
        raw_path, _, raw_query = request.raw_path.partition("?")
        parts = [unquote_plus(p) for p in raw_path.split("/")[1:]]
        method = request.method
        if parts and parts[-1] == "" and len(parts) > 1:
            parts.pop()
        if parts == ["time"] and method == "GET":
            return 200, [self._now_ms()], {}
        if parts == ["is-the-internet-up.txt"]:
            return 200, "yes\n", {}
        if len(parts) == 3 and parts[0] == "keys" and parts[2] == "requestToken":
            if method != "POST":
                raise _method_not_allowed()
            body = decode_body(await request.read(), request.content_type)
            return 200, self.auth.request_token(parts[1], body).to_wire(), {}
        if len(parts) >= 2 and parts[0] == "channels" and parts[1]:
            return await self._channels(request, method, parts[1], parts[2:], raw_query)
        raise AblyError.not_found(f"no route for {method} {raw_path}")

    def _identity(self, request: web.Request) -> ClientIdentity:
        return self.auth.identify_rest(
            request.headers.get("Authorization"), request.headers.get("X-Ably-ClientId")
        )

    async def _channels(
        self,
        request: web.Request,
        method: str,
        channel: str,
        rest: list[str],
        raw_query: str,
    ) -> tuple[int, Any, dict[str, str]]:
        identity = self._identity(request)
        fmt: Format = "msgpack" if "msgpack" in request.headers.get("Accept", "") else "json"
        query = request.rel_url.query
        if not rest:
            if method != "GET":
                raise _method_not_allowed()
            return 200, self._channel_details(channel), {}
        if rest == ["presence"]:
            if method != "GET":
                raise _method_not_allowed()
            return self._presence_members(channel, query, fmt)
        if rest[0] != "messages" or len(rest) > 3:
            raise AblyError.not_found(f"no route for {method} {request.raw_path}")
        if len(rest) == 1:
            if method == "GET":
                return self._history(channel, query, fmt)
            if method == "POST":
                return await self._publish(request, channel, identity)
            raise _method_not_allowed()
        serial = rest[1]
        if len(rest) == 3:
            if rest[2] != "versions" or method != "GET":
                raise AblyError.not_found(f"no route for {method} {request.raw_path}")
            store = self.hub.store.existing(channel)
            if store is None:
                raise AblyError.not_found(f"no message with serial {serial!r}")
            page_query = _history_query(query)
            items, next_cursor = store.versions(serial, page_query)
            return 200, [r.to_wire(fmt) for r in items], _links("versions", query, next_cursor)
        if method == "GET":
            store = self.hub.store.existing(channel)
            latest = store.latest(serial) if store is not None else None
            if latest is None:
                raise AblyError.not_found(f"no message with serial {serial!r} on {channel!r}")
            return 200, latest.to_wire(fmt), {}
        if method == "PATCH":
            body = decode_body(await request.read(), request.content_type)
            if not isinstance(body, dict):
                raise AblyError.bad_request("request body must be a message map")
            body = {**body, "serial": serial}
            inbound = parse_inbound(body)
            if not inbound.is_mutation:
                raise AblyError.bad_request("PATCH needs action message.update, delete or append")
            pm_id = f"rest-{secrets.token_urlsafe(9)}"
            serials = self.hub.publish(channel, [inbound], Publisher(identity, None, pm_id))
            return 200, {"versionSerial": serials[0]}, {}
        raise _method_not_allowed()

    def _presence_members(
        self, channel: str, query: Any, fmt: Format
    ) -> tuple[int, Any, dict[str, str]]:
        """``GET /channels/{ch}/presence``: members as ``present``; ``clientId``,
        ``connectionId`` and ``limit`` (1-1000, default 100) with ``Link`` paging."""
        limit = _int_param(query, "limit")
        limit = 100 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise AblyError.bad_request("limit must be between 1 and 1000")
        offset = _int_param(query, "cursor") or 0
        members = self.presence.members(
            channel,
            client_id=query.get("clientId") or None,
            connection_id=query.get("connectionId") or None,
        )
        page = members[offset : offset + limit]
        more = str(offset + limit) if offset + limit < len(members) else None
        items = [m.to_wire(fmt, PresenceAction.PRESENT) for m in page]
        return 200, items, _links("presence", query, more)

    def _channel_details(self, channel: str) -> dict[str, Any]:
        subscribers = self.hub.subscriber_count(channel)
        members = self.presence.members(channel)
        presence_subscribers = sum(
            1
            for a in self.hub.attachments(channel)
            if a.modes & Flag.PRESENCE_SUBSCRIBE
        )
        return {
            "channelId": channel,
            "name": channel,
            "status": {
                "isActive": subscribers > 0,
                "occupancy": {
                    "metrics": {
                        "connections": subscribers,
                        "publishers": subscribers,
                        "subscribers": subscribers,
                        "presenceConnections": len({m.connection_id for m in members}),
                        "presenceMembers": len(members),
                        "presenceSubscribers": presence_subscribers,
                    }
                },
            },
        }

    def _history(self, channel: str, query: Any, fmt: Format) -> tuple[int, Any, dict[str, str]]:
        page_query = _history_query(query)
        store = self.hub.store.existing(channel)
        if store is None:
            return 200, [], _links("messages", query, None)
        items, next_cursor = store.history(page_query)
        return 200, [r.to_wire(fmt) for r in items], _links("messages", query, next_cursor)

    async def _publish(
        self, request: web.Request, channel: str, identity: ClientIdentity
    ) -> tuple[int, Any, dict[str, str]]:
        body = decode_body(await request.read(), request.content_type)
        inbounds = parse_inbound_list(body)
        for inbound in inbounds:
            if inbound.is_mutation:
                raise AblyError.bad_request(
                    "use PATCH /channels/{name}/messages/{serial} to mutate"
                )
        pm_id = f"rest-{secrets.token_urlsafe(9)}"
        serials = self.hub.publish(channel, inbounds, Publisher(identity, None, pm_id))
        return 201, {"channel": channel, "messageId": pm_id, "serials": serials}, {}


def _method_not_allowed() -> AblyError:
    return AblyError(40500, 405, "method not allowed")


def _error_headers(error: AblyError) -> dict[str, str]:
    message = error.message.encode("ascii", "replace").decode()[:500].replace("\n", " ")
    return {"X-Ably-Errorcode": str(error.code), "X-Ably-Errormessage": message}


def _int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise AblyError.bad_request(f"{name} must be an integer") from None


def _history_query(query: Any) -> HistoryQuery:
    direction = query.get("direction", "backwards")
    if direction not in ("backwards", "forwards"):
        raise AblyError.bad_request("direction must be 'backwards' or 'forwards'")
    limit = _int_param(query, "limit")
    if limit is None:
        limit = 100
    if not 1 <= limit <= 1000:
        raise AblyError.bad_request("limit must be between 1 and 1000")
    start, end = _int_param(query, "start"), _int_param(query, "end")
    if start is not None and end is not None and start > end:
        raise AblyError.bad_request("start must not be after end")
    return HistoryQuery(
        backwards=direction == "backwards",
        limit=limit,
        start=start,
        end=end,
        until=query.get("from_serial") or None,
        cursor=query.get("cursor") or None,
    )


def _links(resource: str, query: Any, next_cursor: str | None) -> dict[str, str]:
    """``Link`` header: first page (the query without cursor) and the next page if any."""
    base = [(k, v) for k, v in query.items() if k != "cursor"]
    links = [f'<./{resource}?{urlencode(base)}>; rel="first"']
    if next_cursor is not None:
        links.append(f'<./{resource}?{urlencode([*base, ("cursor", next_cursor)])}>; rel="next"')
    return {"Link": ", ".join(links)}

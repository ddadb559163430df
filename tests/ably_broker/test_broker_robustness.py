"""Hostile input: garbage frames and bodies get Ably errors, and never hurt other clients."""

from __future__ import annotations

import io
import json
import logging
import random
from typing import Any

import aiohttp
import msgpack
import pytest
from ably.util.exceptions import AblyException

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import Collector, attached

ERROR, NACK, HEARTBEAT, CONNECTED = 9, 2, 0, 4


async def _open(session: aiohttp.ClientSession, broker: AblyBroker, query: str = "", **kw: Any):
    url = f"ws://127.0.0.1:{broker.port}/?{query or 'key=' + broker.key}"
    return await session.ws_connect(url, **kw)


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
    """The next protocol message (None once the broker closed the socket); skips heartbeats."""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type == aiohttp.WSMsgType.TEXT:
            frame = json.loads(msg.data)
        elif msg.type == aiohttp.WSMsgType.BINARY:
            frame = msgpack.unpackb(msg.data)
        else:
            return None
        if frame.get("action") != HEARTBEAT or "id" in frame:
            return frame


FATAL_TEXT_FRAMES = [
    pytest.param("not json at all", id="not-json"),
    pytest.param("[1, 2, 3]", id="not-a-map"),
    pytest.param('{"action": "attach"}', id="string-action"),
    pytest.param('{"action": 99}', id="unknown-action"),
    pytest.param('{"action": 1, "msgSerial": 0}', id="server-only-action"),
    pytest.param('{"action": 15, "channel": "c", "messages": []}', id="no-msgSerial"),
    pytest.param('{"action": 0, "id": NaN}', id="nan"),
    pytest.param('{"action": 0, "id": 1e400}', id="infinity"),
    pytest.param('{"action": 0, "id": 100000000000000000000000000000}', id="huge-int"),
    pytest.param(
        '{"action":15,"msgSerial":0,"channel":"c","messages":[{"data":"\\ud800"}]}',
        id="lone-surrogate",
    ),
    pytest.param("[" * 50_000 + "]" * 50_000, id="deep-nesting"),
    pytest.param('{"action": 10, "channel": ""}', id="empty-channel-name"),
]


@pytest.mark.parametrize("frame", FATAL_TEXT_FRAMES)
async def test_fatal_garbage_gets_error_and_close(ably_broker, frame):
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, ably_broker, f"key={ably_broker.key}")
        assert (await _next(ws))["action"] == CONNECTED
        await ws.send_str(frame)
        reply = await _next(ws)
        assert reply is not None
        assert reply["action"] == ERROR
        assert reply["error"]["code"] in (40000, 40010)
        assert await _next(ws) is None  # the broker closed this connection
        await ws.close()


async def test_recoverable_garbage_is_nacked_and_the_connection_stays(ably_broker):
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, ably_broker, f"key={ably_broker.key}&format=msgpack")
        assert (await _next(ws))["action"] == CONNECTED

        async def send(frame: dict[str, Any]) -> dict[str, Any]:
            await ws.send_bytes(msgpack.packb(frame, use_bin_type=True))
            reply = await _next(ws)
            assert reply is not None
            return reply

        bad_messages = await send({"action": 15, "msgSerial": 0, "channel": "c", "messages": "x"})
        assert (bad_messages["action"], bad_messages["error"]["code"]) == (NACK, 40000)
        bad_channel = await send({"action": 15, "msgSerial": 1, "channel": 5, "messages": [{}]})
        assert (bad_channel["action"], bad_channel["error"]["code"]) == (NACK, 40010)
        bad_data = await send(
            {"action": 15, "msgSerial": 2, "channel": "c", "messages": [{"data": {"obj": 1}}]}
        )
        assert (bad_data["action"], bad_data["error"]["code"]) == (NACK, 40013)
        bad_base64 = await send(
            {
                "action": 15,
                "msgSerial": 3,
                "channel": "c",
                "messages": [{"data": "@@", "encoding": "base64"}],
            }
        )
        assert bad_base64["error"]["code"] == 40013
        presence = await send({"action": 14, "msgSerial": 4, "channel": "c", "presence": []})
        assert presence["action"] == NACK
        bad_attach = await send({"action": 10, "channel": "c", "params": "rewind"})
        assert (bad_attach["action"], bad_attach["channel"]) == (ERROR, "c")
        ext = await send({"action": 0, "id": msgpack.ExtType(5, b"x")})
        assert ext["action"] == ERROR  # fatal: the broker closes after this one
        assert await _next(ws) is None
        await ws.close()


async def test_bad_credentials_on_connect(ably_broker):
    token = ably_broker.issue_token("alice")["token"]
    cases = [
        ("", 40101),
        ("key=nope.nope:nope", 40101),
        ("accessToken=unknown-token", 40140),
        (f"accessToken={token}&clientId=mallory", 40102),
    ]
    async with aiohttp.ClientSession() as session:
        for query, code in cases:
            ws = await _open(session, ably_broker, query or "v=5")
            reply = await _next(ws)
            assert reply is not None
            assert (reply["action"], reply["error"]["code"]) == (ERROR, code), query
            await ws.close()


async def test_oversized_frame_closes_only_that_connection(ably_broker):
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, ably_broker)
        assert (await _next(ws))["action"] == CONNECTED
        await ws.send_str("x" * (600 * 1024))
        assert await _next(ws) is None
        await ws.close()


async def test_broker_still_serves_sdk_clients_after_garbage(realtime, ably_broker):
    before = realtime("before")
    inbox = Collector()
    channel = await attached(before, "ai:survivor", inbox)
    async with aiohttp.ClientSession() as session:
        for frame in ["garbage", "{}", '{"action":15,"msgSerial":0,"channel":"ai:survivor"}']:
            ws = await _open(session, ably_broker)
            assert (await _next(ws))["action"] == CONNECTED
            await ws.send_str(frame)
            assert (await _next(ws))["action"] in (ERROR, NACK)
            await ws.close()
        ws = await _open(session, ably_broker, f"key={ably_broker.key}&format=msgpack")
        assert (await _next(ws))["action"] == CONNECTED
        await ws.send_bytes(b"\xc1\xff\x00garbage")
        assert (await _next(ws))["action"] == ERROR
        await ws.close()

    after = realtime("after", use_binary_protocol=False)
    after_channel = await attached(after, "ai:survivor")
    await after_channel.publish("m", "from-after")
    await channel.publish("m", "from-before")
    await inbox.wait_for(2)
    assert sorted(m.data for m in inbox.messages) == ["from-after", "from-before"]


async def test_broker_side_message_size_limit(realtime):
    async with AblyBroker(max_message_size=1024) as broker:
        client = realtime("agent", broker=broker)
        channel = await attached(client, "ai:big")
        with pytest.raises(AblyException) as too_big:
            await channel.publish("big", "x" * 2000)
        assert too_big.value.code == 40009
        serial = (await channel.publish("ok", "x" * 900)).serials[0]
        with pytest.raises(AblyException) as aggregate_too_big:  # the aggregate is capped too
            await channel.append_message(_append(serial, "y" * 200))
        assert aggregate_too_big.value.code == 40009


def _append(serial: str, data: str):
    from ably.types.message import Message

    return Message(serial=serial, data=data)


async def test_rest_rejects_garbage_with_error_envelopes(ably_broker):
    token = ably_broker.issue_token("rest-user")["token"]
    base = f"http://127.0.0.1:{ably_broker.port}"
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        cases = [
            ("POST", "/channels/c/messages", bearer, b"{not json", "application/json", 400, 40000),
            ("POST", "/channels/c/messages", bearer, b"\xc1", "application/x-msgpack", 400, 40000),
            ("POST", "/channels/c/messages", bearer, b"[]", "application/json", 400, 40000),
            ("POST", "/channels/c/messages", {}, b"{}", "application/json", 401, 40101),
            (
                "PATCH",
                "/channels/c/messages/x",
                bearer,
                b'{"action":0}',
                "application/json",
                400,
                40000,
            ),
            ("GET", "/channels/c/messages/unknown", bearer, None, None, 404, 40400),
            ("GET", "/channels/c/messages?limit=abc", bearer, None, None, 400, 40000),
            ("GET", "/no/such/route", bearer, None, None, 404, 40400),
            (
                "POST",
                "/keys/broker.testkey/requestToken",
                {},
                b'{"keyName":"broker.testkey",'
                b'"timestamp":1,"nonce":"0123456789abcdef","mac":"bad"}',
                "application/json",
                401,
                40101,
            ),
        ]
        for method, path, headers, body, content_type, status, code in cases:
            if content_type:
                headers = {**headers, "Content-Type": content_type}
            async with http.request(method, base + path, headers=headers, data=body) as response:
                assert response.status == status, (method, path)
                payload = await response.json()
                assert payload["error"]["code"] == code, (method, path)
                assert response.headers["X-Ably-Errorcode"] == str(code)
        huge = b'{"data":"' + b"x" * (2 * 1024 * 1024) + b'"}'
        async with http.post(
            base + "/channels/c/messages",
            data=io.BytesIO(huge),
            headers={**bearer, "Content-Type": "application/json"},
        ) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == 40009
        async with http.options(base + "/channels/c/messages") as preflight:
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        async with http.get(base + "/time") as response:
            assert isinstance((await response.json())[0], int)


SEEN_SERIALS: list[str] = []


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 2**63, 10**6, 3.5])
    if kind == 2:
        return rng.choice(["", "c", "ai:fuzz", "x" * rng.randrange(300), "\u00e9\u4e2d", "base64"])
    if kind == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
    if kind == 4:
        return rng.choice([0, 1, 5, 10, 14, 15, 17, 21, 99])
    if kind == 5:
        return "01795250373260-000000004@nope:000"
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "action",
        "channel",
        "msgSerial",
        "messages",
        "data",
        "encoding",
        "serial",
        "id",
        "params",
        "flags",
        "channelSerial",
        "auth",
        "extras",
        "version",
        "name",
        "clientId",
    ]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(6))}


def _random_frame(rng: random.Random, serial: int) -> dict[str, Any]:
    """Mostly well-formed publishes/attaches with hostile fields; sometimes plain garbage."""
    valid = rng.random() < 0.9
    frame: dict[str, Any] = {
        "action": rng.choice([10, 12, 15, 15, 15, 15, 0]) if valid else rng.randrange(40),
        "channel": rng.choice(["ai:fuzz", "ai:fuzz2"]) if valid else _random_value(rng, 1),
        "msgSerial": serial if valid else _random_value(rng, 2),
    }
    if rng.random() < 0.9:
        frame["messages"] = [
            _random_value(rng, 1)
            if rng.random() < 0.2
            else {
                "action": rng.choice([None, None, 0, 1, 2, 5, 5, 3, "x"]),
                "serial": rng.choice([_random_value(rng, 2), *rng.sample(SEEN_SERIALS, 1)])
                if SEEN_SERIALS
                else _random_value(rng, 2),
                "data": rng.choice(["text", b"bin", "", None, _random_value(rng, 2)]),
                "encoding": rng.choice([None, None, "base64", "json", "utf-8/base64", 5]),
                "extras": rng.choice([None, {"ephemeral": True}, _random_value(rng, 2)]),
                "name": rng.choice([None, "n", _random_value(rng, 2)]),
                "id": rng.choice([None, None, "dup-id", _random_value(rng, 2)]),
            }
            for _ in range(rng.randrange(1, 4))
        ]
    extra = _random_value(rng, 1)
    if isinstance(extra, dict) and rng.random() < 0.3:
        frame.update(extra)
    return frame


async def test_random_frames_never_hit_a_broker_bug(ably_broker, realtime, caplog):
    """Seeded fuzzing: every reply is an Ably error or a normal reply, never an internal one."""
    rng = random.Random(20251121)
    caplog.set_level(logging.ERROR, logger="langgraph_interrupt.testing.ably_broker")
    async with aiohttp.ClientSession() as session:
        for connection in range(12):
            binary = connection % 2 == 0
            fmt = "&format=msgpack" if binary else ""
            ws = await _open(session, ably_broker, f"key={ably_broker.key}{fmt}")
            for serial in range(40):
                frame = _random_frame(rng, serial)
                if binary:
                    await ws.send_bytes(msgpack.packb(frame, use_bin_type=True))
                else:
                    await ws.send_str(json.dumps(frame, default=lambda b: b.hex()))
            await ws.send_str('{"action": 0, "id": "probe"}')
            replies = []
            while (reply := await _next(ws)) is not None:
                replies.append(reply)
                if reply.get("id") == "probe":
                    break
            await ws.close()
            assert all(r.get("error", {}).get("code") != 50000 for r in replies), replies
            for reply in replies:
                for result in reply.get("res") or []:
                    SEEN_SERIALS.extend(s for s in result.get("serials") or [] if s)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    client = realtime("after-fuzz")
    inbox = Collector()
    channel = await attached(client, "ai:fuzz", inbox)
    await channel.publish("ok", "still serving")
    await inbox.wait_for_name("ok")


async def test_rest_cors_lets_a_browser_send_credentials(ably_broker: AblyBroker) -> None:
    """ably-js sends credentials with authenticated requests (withCredentials): browsers
    refuse ``Allow-Origin: *`` for those, so the origin is echoed with Allow-Credentials."""
    token = ably_broker.issue_token("user-1")["token"]
    url = f"http://127.0.0.1:{ably_broker.port}/channels/ai%3Acors/messages"
    origin = "http://127.0.0.1:1"
    async with aiohttp.ClientSession() as session:
        async with session.options(url, headers={
                "Origin": origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization"}) as preflight:
            assert preflight.headers["Access-Control-Allow-Origin"] == origin
            assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
        async with session.get(url, headers={"Origin": origin,
                                             "Authorization": f"Bearer {token}"}) as got:
            assert got.status == 200
            assert got.headers["Access-Control-Allow-Origin"] == origin
            assert got.headers["Access-Control-Allow-Credentials"] == "true"
            assert "Origin" in got.headers["Vary"]
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as no_origin:
            assert no_origin.headers["Access-Control-Allow-Origin"] == "*"

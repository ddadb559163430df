"""Cross-SDK: ably-js 2.28.0 (Node, tests/js/interop.mjs) and ably-python through the broker.

Needs Node >= 22 and the npm packages of tests/js: run ``bash scripts/setup_js.sh`` once. The
tests fail (not skip) with that hint when they are missing.
"""

from __future__ import annotations

import base64

import pytest
from ably.types.message import Message, MessageAction

from .helpers import Collector, NodeScript, attached

COMBOS = [
    pytest.param(False, True, id="js-json-py-msgpack"),
    pytest.param(True, False, id="js-msgpack-py-json"),
]


@pytest.mark.parametrize(("js_binary", "py_binary"), COMBOS)
async def test_js_publishes_and_appends_python_receives(
    realtime, ably_broker, js_binary, py_binary
):
    python = realtime("py-user", use_binary_protocol=py_binary)
    inbox = Collector()
    channel = await attached(python, "ai:js-to-py", inbox)
    options = ably_broker.js_client_options("js-agent", use_binary_protocol=js_binary)

    script = await NodeScript.start(
        "interop.mjs", "produce", {"options": options, "channel": "ai:js-to-py"}
    )
    result = await script.expect("result")
    assert await script.finish() == 0

    await inbox.wait_for_name("done")
    got = inbox.messages
    assert [m.action for m in got] == [
        MessageAction.MESSAGE_CREATE,
        MessageAction.MESSAGE_APPEND,
        MessageAction.MESSAGE_APPEND,
        MessageAction.MESSAGE_APPEND,
        MessageAction.MESSAGE_CREATE,
        MessageAction.MESSAGE_CREATE,
        MessageAction.MESSAGE_UPDATE,
        MessageAction.MESSAGE_CREATE,
    ]
    assert [m.data for m in got[:4]] == ["Hel", "lo", ", ", "world"]
    assert {m.serial for m in got[:4]} == {result["serial"]}
    assert [m.version.serial for m in got[1:4]] == result["appendVersions"]
    assert got[0].extras == {"headers": {"k": "v"}}
    assert bytes(got[4].data) == b"\x00\x01\x02\xff"
    assert (got[6].data, got[6].version.description) == ("updated", "fix")
    assert all(m.client_id == "js-agent" for m in got)

    history = (await channel.history()).items
    assert [(m.name, m.action) for m in history] == [
        ("done", MessageAction.MESSAGE_CREATE),
        ("note", MessageAction.MESSAGE_UPDATE),
        ("bin", MessageAction.MESSAGE_CREATE),
        ("ai-output", MessageAction.MESSAGE_UPDATE),
    ]
    assert history[3].data == "Hello, world"

    js_history = result["history"]
    assert js_history["pages"] == 2  # limit 2, the JS SDK followed the Link header
    assert [i["name"] for i in js_history["items"]] == ["done", "note", "bin", "ai-output"]
    assert js_history["items"][3]["data"] == "Hello, world"
    assert js_history["items"][3]["action"] == "message.update"
    assert js_history["items"][2]["data"] == {
        "$bytes": base64.b64encode(b"\x00\x01\x02\xff").decode()
    }
    assert result["fetched"]["data"] == "Hello, world"


@pytest.mark.parametrize(
    ("js_binary", "py_binary", "js_token_auth"),
    [
        pytest.param(False, True, False, id="js-json-key-py-msgpack"),
        pytest.param(True, False, True, id="js-msgpack-token-py-json"),
    ],
)
async def test_python_publishes_and_appends_js_receives(
    realtime, ably_broker, js_binary, py_binary, js_token_auth
):
    agent = realtime("py-agent", use_binary_protocol=py_binary)
    channel = await attached(agent, "ai:py-to-js")
    early = (await channel.publish("ai-output", "early")).serials[0]
    extra = {"useTokenAuth": True} if js_token_auth else {}
    options = ably_broker.js_client_options("js-user", use_binary_protocol=js_binary, **extra)

    script = await NodeScript.start(
        "interop.mjs", "consume", {"options": options, "channel": "ai:py-to-js"}
    )
    ready = await script.expect("ready")
    assert ready["attachSerial"] > early
    await channel.append_message(Message(serial=early, data="+1"))  # JS's first contact
    serial = (await channel.publish("ai-output", "Hel")).serials[0]
    await channel.append_message(Message(serial=serial, data="lo"))
    await channel.publish("bin", b"\x00\xff")
    await channel.publish("done", "")
    result = await script.expect("result")
    assert await script.finish() == 0

    received = [(m["action"], m["name"], m["data"]) for m in result["received"]]
    assert received == [
        ("message.update", "ai-output", "early+1"),
        ("message.create", "ai-output", "Hel"),
        ("message.append", "ai-output", "lo"),
        ("message.create", "bin", {"$bytes": base64.b64encode(b"\x00\xff").decode()}),
        ("message.create", "done", ""),
    ]
    assert all(m["clientId"] == "py-agent" for m in result["received"])

    # untilAttach: only what was published before JS attached (as its latest version)
    until = result["untilAttach"]
    assert [(i["serial"], i["data"]) for i in until["items"]] == [(early, "early+1")]
    assert [i["data"] for i in result["full"]["items"]][:3] == [
        "",
        {"$bytes": base64.b64encode(b"\x00\xff").decode()},
        "Hello",
    ]
    forwards = result["forwards"]
    assert forwards["pages"] == 2
    assert [i["name"] for i in forwards["items"]] == ["ai-output", "ai-output", "bin", "done"]


async def test_js_client_resumes_after_a_dropped_connection(realtime, ably_broker):
    agent = realtime("py-agent")
    channel = await attached(agent, "ai:js-resume")
    options = ably_broker.js_client_options("js-user", use_binary_protocol=False)
    script = await NodeScript.start(
        "interop.mjs", "resume", {"options": options, "channel": "ai:js-resume"}
    )
    ready = await script.expect("ready")
    serial = (await channel.publish("ai-output", "a")).serials[0]

    assert ably_broker.faults.drop_connections(ready["connectionId"]) == 1
    for fragment in ["b", "c", "d"]:  # published while the JS client is away
        await channel.append_message(Message(serial=serial, data=fragment))
    await channel.publish("done", "")
    result = await script.expect("result")
    assert await script.finish() == 0

    assert [(m["action"], m["data"]) for m in result["received"]] == [
        ("message.create", "a"),
        ("message.append", "b"),
        ("message.append", "c"),
        ("message.append", "d"),
        ("message.create", ""),
    ]
    assert result["firstId"] == result["lastId"]  # the connection was resumed
    assert "disconnected" in result["connectionStates"]
    reattached = [c for c in result["channelChanges"] if c["current"] == "attached"]
    assert reattached  # the SDK re-attached after reconnecting ...
    assert all(c["resumed"] for c in reattached)  # ... and kept channel continuity

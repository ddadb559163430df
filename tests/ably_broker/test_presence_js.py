"""Cross-SDK presence: ably-js 2.28.0 (Node, tests/js/presence_observer.mjs) sees the presence
of an ably-python client through the broker, and the other way round.

Needs Node >= 22 and the npm packages of tests/js (``bash scripts/setup_js.sh``); the test fails
with that hint when they are missing.
"""

from __future__ import annotations

import pytest
from ably.types.presence import PresenceAction

from .helpers import Collector, NodeScript, attached, connection_id


@pytest.mark.parametrize(
    ("js_binary", "py_binary"),
    [
        pytest.param(False, True, id="js-json-py-msgpack"),
        pytest.param(True, False, id="js-msgpack-py-json"),
    ],
)
async def test_js_sees_python_presence_and_python_sees_js(
    realtime, ably_broker, js_binary, py_binary
):
    agent = realtime("py-agent", use_binary_protocol=py_binary)
    room = await attached(agent, "ai:presence-js")
    events = Collector()
    await room.presence.subscribe(events.add)
    await room.presence.enter({"role": "agent"})
    agent_id = connection_id(agent)

    options = ably_broker.js_client_options("js-user", use_binary_protocol=js_binary)
    script = await NodeScript.start(
        "presence_observer.mjs",
        "observe",
        {"options": options, "channel": "ai:presence-js", "watch": "py-agent", "data": "web"},
    )
    ready = await script.expect("ready")
    assert ready["syncComplete"] is True
    members = [(m["action"], m["clientId"], m["connectionId"], m["data"]) for m in ready["members"]]
    assert members == [("present", "py-agent", agent_id, {"role": "agent"})]
    js_id = ready["connectionId"]

    await events.wait_until(lambda es: any(e.client_id == "js-user" for e in es))
    await room.presence.update("v2")
    await room.presence.leave()
    result = await script.expect("result")
    assert await script.finish() == 0

    # subscribed after get(): the SYNC's "present" events were emitted before the listener
    seen = [(e["action"], e["clientId"], e["data"]) for e in result["events"]]
    assert seen == [
        ("enter", "js-user", "web"),
        ("update", "py-agent", "v2"),
        ("leave", "py-agent", "v2"),
    ]
    owners = {"py-agent": agent_id, "js-user": js_id}
    assert [e["connectionId"] for e in result["events"]] == [
        owners[e["clientId"]] for e in result["events"]
    ]

    await events.wait_until(
        lambda es: any(e.action == PresenceAction.LEAVE and e.client_id == "js-user" for e in es)
    )  # the JS client closed: its member leaves at once
    js_events = [
        (e.action, e.connection_id, e.data) for e in events.messages if e.client_id == "js-user"
    ]
    assert js_events == [
        (PresenceAction.ENTER, js_id, "web"),
        (PresenceAction.LEAVE, js_id, "web"),
    ]

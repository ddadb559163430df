"""Presence members of a connection that is gone leave after ``presence_leave_timeout_ms``.

A connection cut off the network (``faults.partition``) or a client process killed with
SIGKILL loses its members after the timeout; one that resumes in time keeps them, and the SDK's
automatic re-enter after the resume is not broadcast again.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from ably import AblyRealtime
from ably.realtime.connection import ConnectionState
from ably.types.presence import PresenceAction

from langgraph_interrupt.testing.ably_broker import AblyBroker

from .helpers import REPO, Collector, StateWatcher, attached, connection_id

TIMEOUT_MS = 400


async def subscribed(client: Any, name: str) -> Collector:
    events = Collector()
    await client.channels.get(name).presence.subscribe(events.add)
    return events


def leaves_of(events: Collector, conn: str) -> list[Any]:
    return [
        e for e in events.messages if e.action == PresenceAction.LEAVE and e.connection_id == conn
    ]


async def test_a_cut_off_connection_leaves_after_the_timeout_and_reenters_when_back(realtime):
    async with AblyBroker(presence_leave_timeout_ms=TIMEOUT_MS) as broker:
        agent, web = realtime("agent", broker=broker), realtime("web", broker=broker)
        events = await subscribed(web, "ai:cut")
        room = await attached(agent, "ai:cut")
        await room.presence.enter({"worker": "A"})
        await events.wait_for(1)
        agent_id = connection_id(agent)
        state = StateWatcher(agent)
        loop = asyncio.get_running_loop()

        cut = broker.faults.partition(agent_id)
        cut_at = loop.time()
        await events.wait_until(lambda _: bool(leaves_of(events, agent_id)))
        waited = loop.time() - cut_at
        assert waited >= TIMEOUT_MS / 1000 * 0.9
        [leave] = leaves_of(events, agent_id)
        assert (leave.client_id, leave.connection_id, leave.data) == (
            "agent",
            agent_id,
            {"worker": "A"},
        )
        assert not leave.id.startswith(agent_id + ":")  # synthesized by the broker
        assert broker.presence("ai:cut") == []
        assert await web.channels.get("ai:cut").presence.get() == []
        assert state.changes and state.changes[-1].current != ConnectionState.CONNECTED

        cut.heal()  # the next retry resumes the connection; the SDK re-enters its member
        await events.wait_for(3, timeout=10)
        back = events.messages[2]
        assert (back.action, back.client_id, back.connection_id, back.data) == (
            PresenceAction.ENTER,
            "agent",
            agent_id,
            {"worker": "A"},
        )
        assert connection_id(agent) == agent_id  # resumed, not a new connection


async def test_a_connection_that_resumes_in_time_keeps_its_members(realtime):
    """The agent's socket drops and the SDK resumes within the timeout: no leave, and its
    automatic re-enter is not broadcast. A second connection cut off after the agent resumed
    leaves a timeout later, so by then the agent's leave would have been delivered first."""
    async with AblyBroker(presence_leave_timeout_ms=TIMEOUT_MS) as broker:
        agent, other = realtime("agent", broker=broker), realtime("other", broker=broker)
        web = realtime("web", broker=broker)
        events = await subscribed(web, "ai:resume")
        room = await attached(agent, "ai:resume")
        await room.presence.enter("working")
        await (await attached(other, "ai:resume")).presence.enter("o")
        await events.wait_for(2)
        agent_id, other_id = connection_id(agent), connection_id(other)
        state = StateWatcher(agent)

        assert broker.faults.drop_connections(agent_id) == 1
        await state.wait_for(ConnectionState.DISCONNECTED)
        await state.wait_for(ConnectionState.CONNECTED)
        assert connection_id(agent) == agent_id
        await room.presence.update("after the resume")  # queued behind the SDK's re-enter
        await events.wait_for(3)

        broker.faults.partition(other_id)
        await events.wait_until(lambda _: bool(leaves_of(events, other_id)))
        assert leaves_of(events, agent_id) == []
        agent_events = [
            (e.action, e.data) for e in events.messages if e.connection_id == agent_id
        ]
        assert agent_events == [
            (PresenceAction.ENTER, "working"),
            (PresenceAction.UPDATE, "after the resume"),
        ]
        members = await web.channels.get("ai:resume").presence.get()
        assert [(m.client_id, m.connection_id) for m in members] == [("agent", agent_id)]


CHILD = """
import asyncio, json, sys
from ably import AblyRealtime

async def main():
    config = json.loads(sys.argv[1])
    client = AblyRealtime(**config["options"])
    channel = client.channels.get(config["channel"])
    await channel.attach()
    await channel.presence.enter(config["data"])
    print(json.dumps({"connectionId": client.connection.connection_manager.connection_id}),
          flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


async def kill_a_worker_and_wait_for_its_leave(
    options: dict[str, Any], events: Collector, channel: str
) -> tuple[str, float]:
    """Run an ably-python worker process that enters ``channel``, SIGKILL it once its enter
    arrived, and wait until its leave does. Returns its connection id and the seconds waited."""
    config = {"options": options, "channel": channel, "data": {"worker": 1}}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, json.dumps(config), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        worker_id: str = json.loads(line)["connectionId"]
        await events.wait_until(lambda es: any(e.connection_id == worker_id for e in es))
        loop = asyncio.get_running_loop()
        proc.kill()
        killed_at = loop.time()
        await proc.wait()
        await events.wait_until(lambda _: bool(leaves_of(events, worker_id)), timeout=20)
        return worker_id, loop.time() - killed_at
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_members_of_a_killed_process_leave_after_the_timeout(realtime):
    """The worker-death case: a process with a live connection is killed (SIGKILL), so its
    socket closes without CLOSE and nothing ever resumes it."""
    async with AblyBroker(presence_leave_timeout_ms=TIMEOUT_MS) as broker:
        web = realtime("web", broker=broker)
        events = await subscribed(web, "ai:kill")
        options = broker.python_client_options("worker-1")
        worker_id, waited = await kill_a_worker_and_wait_for_its_leave(options, events, "ai:kill")
        assert waited >= TIMEOUT_MS / 1000 * 0.9
        [leave] = leaves_of(events, worker_id)
        assert (leave.client_id, leave.data) == ("worker-1", {"worker": 1})
        assert [c.connected for c in broker.connections() if c.connection_id == worker_id] == [
            False  # still resumable for connectionStateTtl; only its presence is gone
        ]


async def test_the_command_line_broker_takes_the_leave_timeout():
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "langgraph_interrupt.testing.ably_broker",
        "--json",
        "--lifetime",
        "60",
        "--presence-leave-timeout",
        str(TIMEOUT_MS),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    web = None
    try:
        assert command.stdout is not None
        options = json.loads(await asyncio.wait_for(command.stdout.readline(), 10))["python"]
        identify = {"client_id": "web", "default_token_params": {"client_id": "web"}}
        web = AblyRealtime(**{**options, **identify})
        events = await subscribed(web, "ai:cli-kill")
        worker = {**options, "client_id": "w", "default_token_params": {"client_id": "w"}}
        _, waited = await kill_a_worker_and_wait_for_its_leave(worker, events, "ai:cli-kill")
        assert TIMEOUT_MS / 1000 * 0.9 <= waited < 10  # not the 15 s default
    finally:
        if web is not None:
            await web.close()
        command.kill()
        await command.wait()


async def test_a_subscriber_that_was_away_catches_up_through_the_sync(realtime):
    """Presence changes are not replayed on resume: the resumed ATTACHED carries HAS_PRESENCE
    and a SYNC, from which the SDK derives what changed (and nothing spurious)."""
    async with AblyBroker(presence_leave_timeout_ms=TIMEOUT_MS) as broker:
        agent, other = realtime("agent", broker=broker), realtime("other", broker=broker)
        web = realtime("web", broker=broker)
        events = await subscribed(web, "ai:away")
        room = await attached(agent, "ai:away")
        await room.presence.enter("v1")
        leaving = await attached(other, "ai:away")
        await leaving.presence.enter("o")
        await events.wait_for(2)
        web_id = connection_id(web)
        state = StateWatcher(web)

        cut = broker.faults.partition(web_id)
        await state.wait_for(ConnectionState.DISCONNECTED)
        await room.presence.update("v2")
        await leaving.presence.leave()
        mark = len(state.changes)
        cut.heal()
        await state.wait_for(ConnectionState.CONNECTED, after=mark, timeout=10)
        assert connection_id(web) == web_id

        await events.wait_for(4)
        assert [(e.action, e.client_id, e.data) for e in events.messages[2:]] == [
            (PresenceAction.PRESENT, "agent", "v2"),
            (PresenceAction.LEAVE, "other", "o"),
        ]
        members = await web.channels.get("ai:away").presence.get()
        assert [(m.client_id, m.data) for m in members] == [("agent", "v2")]

"""Shutdown: open runs end ``cancelled`` on the wire before the app's lifespan returns."""

from __future__ import annotations

import asyncio
import socket

import httpx
import uvicorn

from langgraph_interrupt import InMemoryBroker, Run
from langgraph_interrupt.server import AgentRequest, create_agent_app

from ..helpers import describe, run_records
from .conftest import PATH, ScriptedAgent


def ended(broker: InMemoryBroker, run_id: str) -> list[tuple[object, ...]]:
    return [describe(r) for r in run_records(broker, run_id) if r.name == "ai-run-end"]


async def test_shutdown_ends_open_runs_cancelled_before_it_returns(serve, client, broker) -> None:
    agent = ScriptedAgent(hold_at=2)
    served = await serve(agent, drain_timeout=0.05)  # the model holds: the drain runs out
    handle = await client.send("hi")
    run_id = (await served.post(handle.invocation.to_json())).json()["runId"]
    await agent.held()

    await served.shutdown()

    # Published before shutdown returned, in the protocol's order; the model was stopped.
    ops = [describe(r) for r in run_records(broker, run_id)]
    assert ops[-3:] == [("append", "text", "", "cancelled"), ("ai-step-end", "cancelled"),
                        ("ai-run-end", "cancelled")]
    assert agent.streams[0].finalised.is_set()
    assert [r.reason for r in agent.results] == ["cancelled"]
    assert served.endpoint.tasks == set()
    assert (await handle.wait_ended(timeout=5)).status == "cancelled"


async def test_shutdown_lets_the_current_step_finish_then_ends_the_run_shutdown(
        serve, client, broker) -> None:
    agent = ScriptedAgent(tokens=["a", "b", "c", "d"], hold_at=2)
    served = await serve(agent)
    handle = await client.send("hi")
    run_id = (await served.post(handle.invocation.to_json())).json()["runId"]
    stream = await agent.held()

    shutting = asyncio.create_task(served.shutdown())
    reason = await agent.runs[0].signal.wait()  # SIGTERM: every run is asked to drain
    assert (reason.name, reason.drain) == ("shutdown", True)
    assert not shutting.done()
    stream.release()  # the step (here the piped source) finishes: nothing is cut
    await shutting

    assert stream.sent == 4
    info = await handle.wait_ended(timeout=5)
    assert (info.status, info.cancel_reason) == ("cancelled", "shutdown")
    texts = [r.data for r in run_records(broker, run_id) if r.op == "append"]
    assert "".join(t for t in texts if isinstance(t, str)) == "abcd"  # every token


async def test_requests_after_shutdown_get_503(serve, client) -> None:
    served = await serve(ScriptedAgent())
    handle = await client.send("hi")
    await served.endpoint.aclose()

    response = await served.post(handle.invocation.to_json())

    assert response.status_code == 503
    assert response.json()["error"] == {"code": 104004, "statusCode": 503,
                                        "message": "unable to start run; the agent is "
                                                   "shutting down"}


async def test_an_agent_ignoring_the_cancel_is_cancelled_after_the_shutdown_timeout(
        serve, client, broker) -> None:
    stuck = asyncio.Event()
    interrupted: list[bool] = []

    async def deaf(run: Run, request: AgentRequest) -> None:
        await run.start()
        stuck.set()
        try:
            await asyncio.Event().wait()  # never looks at run.signal
        except asyncio.CancelledError:
            interrupted.append(True)
            raise

    served = await serve(deaf, shutdown_timeout=0.05, drain_timeout=0.05)
    handle = await client.send("hi")
    run_id = (await served.post(handle.invocation.to_json())).json()["runId"]
    await stuck.wait()

    await served.shutdown()

    assert interrupted == [True]
    assert served.endpoint.tasks == set()
    assert ended(broker, run_id) == [("ai-run-end", "cancelled")]  # once, not twice


async def test_a_real_uvicorn_server_ends_open_runs_cancelled_when_it_stops(
        client, broker) -> None:
    agent = ScriptedAgent(hold_at=1)
    app = create_agent_app(agent, channel_factory=lambda n: broker.channel(n, client_id="agent"),
                           drain_timeout=0.05)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on",
                                           log_level="warning"))
    listener = socket.create_server(("127.0.0.1", 0))  # listening now: connects queue up
    port = listener.getsockname()[1]
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    handle = await client.send("hi")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        response = await http.post(PATH, json=handle.invocation.to_json())
    run_id = response.json()["runId"]
    await agent.held()

    server.should_exit = True
    await serving

    assert ended(broker, run_id) == [("ai-run-end", "cancelled")]
    assert (await handle.wait_ended(timeout=5)).status == "cancelled"
    listener.close()


class HangingDetach:
    """An in-memory channel handle whose detach never returns (a hung connection)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def detach(self) -> None:
        await asyncio.Event().wait()


async def test_shutdown_is_bounded_when_a_channel_never_detaches(serve, client, broker) -> None:
    agent = ScriptedAgent(hold_at=1)
    served = await serve(agent, shutdown_timeout=0.05, drain_timeout=0.05,
                         channel_factory=lambda name: (
        HangingDetach(broker.channel(name, client_id="agent"))))
    handle = await client.send("hi")
    run_id = (await served.post(handle.invocation.to_json())).json()["runId"]
    await agent.held()

    await served.shutdown()  # returns although the detach hangs

    assert ended(broker, run_id) == [("ai-run-end", "cancelled")]  # published before it
    assert served.endpoint.tasks == set()

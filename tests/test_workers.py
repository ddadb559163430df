"""Agent workers watching each other on the in-memory broker: a dead worker's runs end.

Worker A serves a run and "dies" (its handles crash, as with ``kill -9``: nothing more is
published, its presence leaves); worker B ends A's run on the wire: its open stream closed,
its step failed, ``ai-run-end{error}`` 50300, which the client shows. Forged departures and
claims from a client identity change nothing. The same over the offline broker with the real
SDK, and across processes, is in ``tests/workers/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from langgraph_interrupt import (
    AgentSession,
    ClientSession,
    InMemoryBroker,
    InvalidArgumentError,
    OutboundMessage,
    WorkerRegistry,
)
from langgraph_interrupt._errors import RunRejectedError
from langgraph_interrupt.testing import ScriptedStream
from langgraph_interrupt.transport._orphans import end_orphaned_run
from langgraph_interrupt.transport._workers import EVENT_WORKER_RUNS
from tests.conftest import SESSION
from tests.helpers import TOKENS, describe, run_records, start_streaming, transport

CONTROL = "ai-workers"


def _registry(broker: InMemoryBroker, worker_id: str, **options: Any) -> WorkerRegistry:
    return WorkerRegistry(broker.channel(CONTROL, client_id="agent"),
                          lambda name: broker.channel(name, client_id="agent"),
                          worker_id=worker_id, **options)


async def _settled(registry: WorkerRegistry) -> None:
    """Wait until ``registry`` has acted on everything delivered so far."""
    marker = asyncio.get_running_loop().create_future()
    probe = registry.control.subscribe(
        lambda m: m.name == "probe" and not marker.done() and marker.set_result(None))
    await registry.control.publish([OutboundMessage("probe")])
    await marker
    probe()
    while registry._tasks or (registry._sending and not registry._sending.done()):
        await asyncio.gather(*registry._tasks, *([registry._sending] if registry._sending
                                                  else []), return_exceptions=True)


@pytest.fixture
async def worker_b(broker: InMemoryBroker) -> AsyncIterator[WorkerRegistry]:
    async with _registry(broker, "b", backup_delay=0.0) as registry:
        yield registry


async def _serving_a(broker: InMemoryBroker, client: ClientSession
                     ) -> tuple[WorkerRegistry, AgentSession, str]:
    """Worker A with a session serving one run, held mid-stream; returns its run id."""
    registry_a = _registry(broker, "a")
    await registry_a.start()
    agent_a = AgentSession(broker.channel(SESSION, client_id="agent"), workers=registry_a,
                           trigger_timeout=1.0)
    await agent_a.connect()
    run, _, _ = await start_streaming(client, agent_a)
    await client.wait_for(lambda s: s.run(run.run_id))
    return registry_a, agent_a, run.run_id


def _crash(registry: WorkerRegistry, session: AgentSession) -> None:
    for channel in (registry.control, session.channel):
        channel.crash()  # type: ignore[attr-defined]


async def test_a_dead_workers_run_ends_error_with_its_stream_closed_first(
        broker: InMemoryBroker, client: ClientSession, worker_b: WorkerRegistry) -> None:
    registry_a, agent_a, run_id = await _serving_a(broker, client)
    await _settled(worker_b)
    assert worker_b._runs[run_id][:2] == ("a", SESSION)

    _crash(registry_a, agent_a)
    info = await client.wait_run_ended(run_id, timeout=5)

    assert (info.status, info.error_code) == ("error", 50300)
    assert info.error_message == "the agent worker serving this run stopped"
    assert worker_b.orphans_ended == 1
    ops = [describe(r) for r in run_records(broker, run_id)]
    # A streamed three deltas of an open text stream inside a step; B closed them in order.
    assert ops[-3:] == [("append", "text", "", "cancelled"), ("ai-step-end", "failed"),
                        ("ai-run-end", "error")]
    assert run_id not in worker_b._runs


async def test_a_worker_that_closes_cleanly_leaves_nothing_to_end(
        broker: InMemoryBroker, client: ClientSession, worker_b: WorkerRegistry) -> None:
    registry_a, agent_a, run_id = await _serving_a(broker, client)
    await agent_a.close()  # its run ends cancelled and it tells the others
    await registry_a.close()
    await _settled(worker_b)
    info = client.run(run_id)
    assert info is not None and info.status == "cancelled"
    assert worker_b.orphans_ended == 0 and run_id not in worker_b._runs


async def test_a_worker_starting_later_ends_the_runs_of_workers_already_gone(
        broker: InMemoryBroker, client: ClientSession) -> None:
    registry_a, agent_a, run_id = await _serving_a(broker, client)
    _crash(registry_a, agent_a)
    await asyncio.sleep(0)  # the crash's leave is delivered on the next loop turn
    async with _registry(broker, "late") as late:  # learns A's run from history
        info = await client.wait_run_ended(run_id, timeout=5)
        assert (info.status, info.error_code) == ("error", 50300)
        assert late.orphans_ended == 1


async def test_two_survivors_end_a_run_once(broker: InMemoryBroker,
                                            client: ClientSession) -> None:
    async with _registry(broker, "b", backup_delay=0.0) as b, \
            _registry(broker, "c", backup_delay=0.0) as c:
        registry_a, agent_a, run_id = await _serving_a(broker, client)
        await _settled(b)
        await _settled(c)
        _crash(registry_a, agent_a)
        await client.wait_run_ended(run_id, timeout=5)
        await _settled(b)
        await _settled(c)
        ends = [r for r in run_records(broker, run_id) if r.name == "ai-run-end"]
        assert len(ends) == 1


async def test_a_forged_departure_or_claim_from_a_client_ends_nothing(
        broker: InMemoryBroker, client: ClientSession, worker_b: WorkerRegistry) -> None:
    registry_a, agent_a, run_id = await _serving_a(broker, client)
    forger = broker.channel(CONTROL, client_id="user-abc")
    await forger.enter_presence({"worker": "a"})
    await forger.leave_presence()  # "a" seems to leave, from a user's connection
    await forger.publish([OutboundMessage(EVENT_WORKER_RUNS, {
        "worker": "ghost", "started": [[SESSION, run_id]], "ended": []})])
    await forger.enter_presence({"worker": "ghost"})
    await forger.leave_presence()  # a "ghost" worker claiming A's run leaves
    await forger.publish([OutboundMessage(EVENT_WORKER_RUNS, {"worker": 7, "started": "x"})])
    await _settled(worker_b)
    assert worker_b.orphans_ended == 0
    assert worker_b._runs[run_id][:2] == ("a", SESSION)
    info = client.run(run_id)
    assert info is not None and info.status == "active"
    await agent_a.close()
    await registry_a.close()


async def test_malformed_control_messages_from_an_agent_are_skipped(
        broker: InMemoryBroker, worker_b: WorkerRegistry) -> None:
    agent = broker.channel(CONTROL, client_id="agent")
    for data in ({"worker": "x", "started": [["s", 1]]}, "not json", {"worker": ""},
                 {"worker": "x", "started": [["s", "r"]] * 1001}, ["list"],
                 '{"worker": "x", "started": [["s", "r2"]]}'):
        await agent.publish([OutboundMessage(EVENT_WORKER_RUNS, data)])
    await _settled(worker_b)
    assert list(worker_b._runs) == ["r2"]  # only the well-formed one (a JSON string)


async def test_ending_a_run_that_already_ended_does_nothing(
        broker: InMemoryBroker, client: ClientSession, agent: AgentSession) -> None:
    run, stream, task = await start_streaming(client, agent)
    stream.release()
    await task
    handle = broker.channel(SESSION, client_id="agent")
    from langgraph_interrupt import WorkerLostError
    assert not await end_orphaned_run(handle, run.run_id, WorkerLostError("gone"), worker="w")
    assert not await end_orphaned_run(handle, "no-such-run", WorkerLostError("gone"),
                                      worker="w")
    assert [describe(r) for r in run_records(broker, run.run_id)][-1] == \
        ("ai-run-end", "complete")
    assert len(TOKENS) > 3


def test_the_control_channel_must_support_presence_and_name_a_client() -> None:
    broker = InMemoryBroker()
    with pytest.raises(InvalidArgumentError):
        WorkerRegistry(broker.channel(CONTROL), lambda name: broker.channel(name))
    with pytest.raises(InvalidArgumentError):
        WorkerRegistry(object(), lambda name: broker.channel(name))  # type: ignore[arg-type]


async def test_every_run_of_a_dead_worker_ends(broker: InMemoryBroker, client: ClientSession,
                                               worker_b: WorkerRegistry) -> None:
    registry_a, agent_a, first = await _serving_a(broker, client)
    run_ids = [first] + [(await start_streaming(client, agent_a))[0].run_id for _ in range(5)]
    await _settled(worker_b)
    assert {r for r, (w, *_) in worker_b._runs.items() if w == "a"} == set(run_ids)

    _crash(registry_a, agent_a)
    ended = [await client.wait_run_ended(run_id, timeout=5) for run_id in run_ids]

    assert {(info.status, info.error_code) for info in ended} == {("error", 50300)}
    await _settled(worker_b)
    assert worker_b.orphans_ended == 6 and not worker_b._runs


async def _two_workers(broker: InMemoryBroker, client: ClientSession, strategy: str
                       ) -> tuple[list[WorkerRegistry], AgentSession, AgentSession, Any]:
    """Workers A and B on one session; A serves a held run that B has heard of."""
    registries = [_registry(broker, worker_id) for worker_id in ("a", "b")]
    for registry in registries:
        await registry.start()
    agent_a = AgentSession(broker.channel(SESSION, client_id="agent"), workers=registries[0],
                           on_cancel=lambda request: request.client_id == "user-abc")
    agent_b = AgentSession(broker.channel(SESSION, client_id="agent"), workers=registries[1],
                           multitask=strategy)  # type: ignore[arg-type]
    for agent in (agent_a, agent_b):
        await agent.connect()
    first, stream, task = await start_streaming(client, agent_a)
    await _settled(registries[1])
    assert registries[1].runs_of(SESSION) == [first.run_id]
    return registries, agent_a, agent_b, (first, stream, task)


async def test_interrupt_stops_a_run_another_worker_serves_then_starts(
        broker: InMemoryBroker, client: ClientSession) -> None:
    _registries, _agent_a, agent_b, (first, _, first_task) = await _two_workers(
        broker, client, "interrupt")
    handle = await client.send("no, something else")
    second = agent_b.create_run(handle.invocation)
    await second.admit()

    async def drive() -> Any:
        async with second:
            return await second.pipe(ScriptedStream(TOKENS[:3]))

    assert (await asyncio.create_task(drive())).reason == "complete"
    assert (await first_task).reason == "cancelled"
    info = client.run(first.run_id)
    assert info is not None and (info.status, info.cancel_reason) == ("cancelled", "new_input")
    names = [(r.name, transport(r).get("run-id")) for r in broker.records or []
             if r.name in ("ai-run-start", "ai-run-end")]
    assert names.index(("ai-run-end", first.run_id)) < \
        names.index(("ai-run-start", second.run_id))  # A's run ended before B's began


async def test_enqueue_waits_for_a_run_another_worker_serves(
        broker: InMemoryBroker, client: ClientSession) -> None:
    registries, _agent_a, agent_b, (first, stream, first_task) = await _two_workers(
        broker, client, "enqueue")
    handle = await client.send("and then this")
    second = agent_b.create_run(handle.invocation)
    await second.admit()
    started = asyncio.create_task(second.start())
    await _settled(registries[1])
    assert not started.done()  # waiting for A's run
    stream.release()
    assert (await first_task).reason == "complete"
    await started
    await second.end("complete")
    assert client.run(first.run_id).status == "complete"  # type: ignore[union-attr]


async def test_reject_refuses_while_another_worker_serves_a_run(
        broker: InMemoryBroker, client: ClientSession) -> None:
    _registries, _agent_a, agent_b, (_first, stream, first_task) = await _two_workers(
        broker, client, "reject")
    handle = await client.send("me too")
    second = agent_b.create_run(handle.invocation)
    with pytest.raises(RunRejectedError):
        await second.admit()
    stream.release()
    assert (await first_task).reason == "complete"


async def test_what_the_others_serve_is_bounded_and_indexed_by_session(
        broker: InMemoryBroker) -> None:
    async with _registry(broker, "b", max_runs=3) as registry:
        agent = broker.channel(CONTROL, client_id="agent")
        await agent.publish([OutboundMessage(EVENT_WORKER_RUNS, {
            "worker": "a", "started": [["s1", "r1"], ["s1", "r2"], ["s2", "r3"], ["s1", "r4"]],
            "ended": []})])
        await _settled(registry)
        assert sorted(registry.runs_of("s1")) == ["r2", "r4"]  # r1, the oldest, forgotten
        assert registry.runs_of("s2") == ["r3"]
        await agent.publish([OutboundMessage(EVENT_WORKER_RUNS, {
            "worker": "a", "started": [], "ended": [["s2", "r3"]]})])
        await _settled(registry)
        assert registry.runs_of("s2") == [] and "s2" not in registry._by_session


async def test_a_run_waits_for_the_earlier_run_another_worker_serves(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """What ``run_graph`` does before it takes the thread: under ``concurrent`` too, a run
    waits for the other workers' runs of earlier inputs (one thread, one run at a time)."""
    registries, _, agent_b, (_first, stream, first_task) = await _two_workers(
        broker, client, "concurrent")
    handle = await client.send("and this")
    second = agent_b.create_run(handle.invocation)
    async with second:
        waiting = asyncio.create_task(second.wait_other_workers())
        await _settled(registries[1])
        assert not waiting.done()
        stream.release()
        assert (await first_task).reason == "complete"
        assert await waiting is True


async def test_runs_of_later_inputs_are_not_waited_for_or_interrupted(
        broker: InMemoryBroker, client: ClientSession) -> None:
    """Two workers admitting at once must not each stop (or wait for) the other's run: only
    runs of inputs published earlier count. B's input came first, A's run is of a later
    one: B's run neither waits for nor interrupts it."""
    registries = [_registry(broker, worker_id) for worker_id in ("a", "b")]
    for registry in registries:
        await registry.start()
    agent_a = AgentSession(broker.channel(SESSION, client_id="agent"), workers=registries[0])
    agent_b = AgentSession(broker.channel(SESSION, client_id="agent"), workers=registries[1],
                           multitask="interrupt")
    for agent in (agent_a, agent_b):
        await agent.connect()
    early = await client.send("first, for B")
    later, stream, later_task = await start_streaming(client, agent_a)
    await _settled(registries[1])
    assert registries[1].runs_of(SESSION) == [later.run_id]

    run_b = agent_b.create_run(early.invocation)
    await run_b.admit()
    async with run_b:
        assert await run_b.wait_other_workers() is True  # at once
        await run_b.pipe(ScriptedStream(TOKENS[:2]))
    assert not later.cancelled
    stream.release()
    assert (await later_task).reason == "complete"

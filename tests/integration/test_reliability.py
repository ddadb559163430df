"""Seeded random cancel points over graph shapes: what the user saw is never lost.

Each case draws, from its seed: where the cancel lands (token k of the model's stream, one
of the parallel tool calls, a plain node, inside a shielded node); the mode (immediate or
drain); what the agent is (a hand-built graph, or langchain's ``create_agent``) and where it
sits (the root graph, or a subgraph one or two levels down); its tool node (``ToolNode`` or
``CancellableToolNode``); its tools (async, or sync on worker threads that poll the signal
or ignore it); its checkpointer (in memory or SQLite). Every case checks: the run ended
``cancelled``, nothing of it followed ``ai-run-end`` and no stream was left open; the
checkpoint at the root has no unanswered tool call and a history a strict provider accepts;
the text the client saw is the text the thread keeps; the next turn is answered. 500 cases
in 10 blocks, about 40 s. A failure names each failing seed with what it drew;
``CASE_SEEDS=1,3 pytest tests/integration/test_reliability.py`` reruns exactly those (in
every block). Self-tests at the end break the library on purpose and check that the suite
notices.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import (
    CancellableToolNode,
    cancellable,
    get_abort_signal,
    run_graph,
    unanswered_tool_calls,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors
from tests.helpers import describe, run_records

CASES = 500
TOOLS = 3
WORDS = " ".join(f"w{i}" for i in range(30))
CALLS = AIMessage(content=WORDS, tool_calls=[
    {"name": "work", "args": {"i": i}, "id": f"call_{i}"} for i in range(TOOLS)])


def draw(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    kind = rng.choice(["token", "tool", "tool", "node", "shielded"])
    shape = rng.choice(["graph", "graph", "graph", "create_agent"])
    if shape == "create_agent" and kind in ("node", "shielded"):
        kind = "token"  # create_agent has no node of ours to cancel in
    return {"kind": kind, "shape": shape,
            "where": rng.randint(1, 25) if kind == "token" else rng.randrange(TOOLS),
            "mode": rng.choice(["immediate", "drain"]),
            "depth": rng.choice([0, 1, 1, 2]),
            "cancellable_tools": rng.random() < 0.5,
            "tools": rng.choice(["async", "async", "polite-sync", "rude-sync"]),
            "sqlite": rng.random() < 0.25}


async def case(seed: int) -> None:
    spec = draw(seed)
    if not spec["sqlite"]:
        await _case(seed, spec, InMemorySaver())
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
        await _case(seed, spec, saver)


async def _case(seed: int, spec: dict[str, Any], saver: Any) -> None:
    kind, where = spec["kind"], spec["where"]
    broker = InMemoryBroker(record=True)
    client = ClientSession(broker.channel("ai:rel", client_id="user"))
    agent = AgentSession(broker.channel("ai:rel", client_id="agent"), trigger_timeout=1.0)
    await client.connect()
    await agent.connect()
    reached = asyncio.Event()
    first_turn_over = asyncio.Event()
    release = asyncio.Event()

    loop = asyncio.get_running_loop()

    @tool
    async def work(i: int) -> str:
        """Work until cancelled (it waits for the run's signal)."""
        if first_turn_over.is_set():
            return f"tool {i} done"
        if kind == "tool" and i == where:
            reached.set()
        await get_abort_signal().wait()
        return f"tool {i} stopped early"

    @tool("work")
    def sync_work(i: int) -> str:
        """Work on a worker thread: polls the signal (polite) or ignores it (rude)."""
        if first_turn_over.is_set():
            return f"tool {i} done"
        if kind == "tool" and i == where:
            loop.call_soon_threadsafe(reached.set)
        signal = get_abort_signal()
        for _ in range(2000):
            if spec["tools"] == "polite-sync" and signal.aborted:
                return f"tool {i} stopped early"
            if spec["tools"] == "rude-sync" and signal.aborted:
                threading.Event().wait(0.02)  # finishes its work regardless
                return f"tool {i} finished anyway"
            threading.Event().wait(0.001)
        return f"tool {i} gave up waiting"

    tools = [work] if spec["tools"] == "async" else [sync_work]

    async def prep(state: MessagesState) -> dict[str, Any]:
        if kind == "node" and not reached.is_set():
            reached.set()
            await get_abort_signal().wait()
        return {}

    shielded_done: list[bool] = []

    @cancellable(shielded=True)
    async def critical(state: MessagesState) -> dict[str, Any]:
        if kind == "shielded" and not reached.is_set():
            reached.set()
            await release.wait()  # the cancel lands here and must not interrupt the body
            shielded_done.append(True)
        return {}

    model = StrictFakeChatModel([CALLS, "All done.", "Fresh answer."], token_delay=0.001)

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    own_saver = saver if not spec["depth"] else None
    graph: Any
    if spec["shape"] == "create_agent":  # langchain's: one tools task per call (Send)
        from langchain.agents import create_agent

        graph = create_agent(model, tools, checkpointer=own_saver)
    else:
        builder = StateGraph(MessagesState)
        builder.add_node("prep", prep)
        builder.add_node("critical", critical)
        builder.add_node("agent", call_model)
        builder.add_node("tools", CancellableToolNode(tools) if spec["cancellable_tools"]
                         else ToolNode(tools))
        builder.add_edge(START, "prep")
        builder.add_edge("prep", "critical")
        builder.add_edge("critical", "agent")
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
        graph = builder.compile(checkpointer=own_saver)
    for level in range(spec["depth"]):
        outer = StateGraph(MessagesState)
        outer.add_node(f"level{level}", graph)
        outer.add_edge(START, f"level{level}")
        graph = outer.compile(checkpointer=saver if level == spec["depth"] - 1 else None)

    if kind == "token":
        def on_message(message: Any) -> None:
            text = "".join(p.get("text", "") for m in client.messages[-1:]
                           for p in m["parts"] if p["type"] == "text")
            if len(text.split()) >= where:
                reached.set()
        client.on_message(on_message)

    handle = await client.send("go")
    run = agent.create_run(handle.invocation)
    task = asyncio.create_task(run_graph(graph, run, cancel_mode=spec["mode"],
                                         drain_grace=0.3))
    await asyncio.wait_for(reached.wait(), 5)
    await handle.cancel()
    if kind == "shielded":
        await asyncio.wait_for(run.signal.wait(), 5)
        release.set()
    outcome = await asyncio.wait_for(task, 5)
    first_turn_over.set()
    if kind == "shielded":
        assert shielded_done == [True], "the shielded body ran to its end"

    assert outcome.reason == "cancelled", outcome
    records = run_records(broker, run.run_id)
    ops = [describe(r) for r in records]
    assert ops[-1] == ("ai-run-end", "cancelled"), ops
    assert open_streams(records) == set(), "every stream terminated before ai-run-end"
    cfg = {"configurable": {"thread_id": "ai:rel"}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert unanswered_tool_calls(messages) == {}
    assert find_history_errors(messages) == [], find_history_errors(messages)
    seen = "".join(p.get("text", "") for m in client.messages if m["role"] == "assistant"
                   for p in m["parts"] if p["type"] == "text")
    saved = "".join(str(m.content) for m in messages if m.type == "ai")
    assert saved == seen, (saved, seen)
    again = await client.send("and now?")
    after = await asyncio.wait_for(run_graph(graph, agent.create_run(again.invocation)), 5)
    assert after.reason == "complete", after
    await agent.close()
    await client.close()


def open_streams(records: list[Any]) -> set[str]:
    """Serials of streams created and never given a terminal status on the wire."""
    streams: set[str] = set()
    for record in records:
        headers = (record.extras or {}).get("ai", {}).get("transport", {})
        if record.op == "publish" and headers.get("stream") == "true":
            streams.add(record.serial)
        elif record.op in ("append", "update") and headers.get("status") in (
                "complete", "cancelled"):
            streams.discard(record.serial)
    return streams


def seeds(block: int) -> list[int]:
    chosen = os.environ.get("CASE_SEEDS")
    if chosen:
        return [int(s) for s in chosen.split(",") if s.strip()]
    size = CASES // 10
    return list(range(block * size, (block + 1) * size))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", range(10))
async def test_random_cancel_points_never_lose_what_the_user_saw(block: int) -> None:
    failures: list[str] = []
    for seed in seeds(block):
        try:
            await case(seed)
        except BaseException as exc:  # collected and reported with its seed
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"seed {seed} {draw(seed)}: {type(exc).__name__}: {exc}"[:500])
    assert not failures, "\n".join(failures)


async def test_the_suite_catches_a_repair_that_forgets_what_the_user_saw(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Self-test: break the library on purpose (the repair no longer restores what the
    client was shown) and a subgraph case of the suite must fail."""
    from langgraph_interrupt.integration._translate import ChunkTranslator

    monkeypatch.setattr(ChunkTranslator, "shown_messages", lambda self: [])
    seed = next(s for s in range(100) if draw(s)["kind"] == "tool" and draw(s)["depth"])
    with pytest.raises(AssertionError):
        await case(seed)


async def test_the_suite_catches_a_stream_left_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Self-test: streams no longer terminated, and a token case must fail."""
    from langgraph_interrupt.transport._output import MessageWriter

    monkeypatch.setattr(MessageWriter, "_close", lambda self, op: None)
    seed = next(s for s in range(100) if draw(s)["kind"] == "token" and not draw(s)["depth"])
    with pytest.raises(AssertionError):
        await case(seed)

"""LangGraph's Postgres checkpointer (``AsyncPostgresSaver``, psycopg 3) under ``run_graph``
and the drop-in handler: a completed run, a Stop mid-tool, an ``interrupt()`` continued by
another worker, the ``rollback`` multitask strategy, a drop-in run cancelled.

What a thread holds is read back through a connection of its own (another worker's view of
what was committed), and the next turn is answered by a strict fake model, which refuses any
history a provider would reject. Each test has its own session channel, hence its own thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker, RunCallbackHandler
from langgraph_interrupt.integration import (
    CancellableToolNode,
    CompletedCalls,
    get_abort_signal,
    is_cancelled_tool_message,
    run_graph,
    unanswered_tool_calls,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors
from langgraph_interrupt.testing._postgres import PostgresCluster
from tests.integration.test_runner import chat_graph
from tests.postgres.conftest import OpenSaver

SEARCHES = AIMessage(content="Looking.", tool_calls=[
    {"name": "slow_search", "args": {"q": "a"}, "id": "call_a"},
    {"name": "slow_search", "args": {"q": "b"}, "id": "call_b"}])


def thread_of(session_name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": session_name}}


async def committed(open_saver: OpenSaver, session_name: str) -> list[BaseMessage]:
    """The thread's messages as committed to Postgres, read on a connection of its own."""
    async with open_saver() as other:
        saved = await other.aget_tuple(thread_of(session_name))
    assert saved is not None, "nothing was committed for the thread"
    messages = saved.checkpoint["channel_values"].get("messages", [])
    assert isinstance(messages, list)
    return messages


def summary(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


class LoggedSaver(AsyncPostgresSaver):
    """Notes in ``log`` each checkpoint it has committed, in order with what the test notes."""

    log: list[str]

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        saved = await super().aput(*args, **kwargs)
        self.log.append("checkpoint committed")
        return saved


async def test_a_completed_run_persists_the_thread_and_another_worker_continues_it(
        postgres: PostgresCluster, client: ClientSession, agent: AgentSession,
        saver: AsyncPostgresSaver, open_saver: OpenSaver, open_pooled_saver: OpenSaver,
        session_name: str) -> None:
    graph = chat_graph(StrictFakeChatModel(["Hello from Postgres."]), checkpointer=saver)
    handle = await client.send("hi")
    assert (await run_graph(graph, agent.create_run(handle.invocation))).reason == "complete"
    assert (await handle.wait_ended()).status == "complete"

    assert summary(await committed(open_saver, session_name)) == [
        ("human", "hi"), ("ai", "Hello from Postgres.")]
    # The rows themselves, not a view through LangGraph:
    async with await psycopg.AsyncConnection.connect(postgres.conninfo) as conn:
        cursor = await conn.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s",
                                    (session_name,))
        row = await cursor.fetchone()
    assert row is not None and row[0] >= 2  # the input step and the model's step at least

    # The next turn, served by a graph on another connection pool (another worker).
    model = StrictFakeChatModel([lambda messages: f"{len(messages)} messages so far."])
    async with open_pooled_saver() as pooled:
        other = chat_graph(model, checkpointer=pooled)
        again = await client.send("and now?")
        assert (await run_graph(other, agent.create_run(again.invocation))).reason == "complete"
    assert summary(model.calls[-1]) == [
        ("human", "hi"), ("ai", "Hello from Postgres."), ("human", "and now?")]
    assert client.messages[-1]["parts"][-1]["text"] == "3 messages so far."


@pytest.mark.parametrize("kind", ["async-tool", "sync-tool-polling-the-signal"])
async def test_stop_mid_tool_repairs_the_thread_in_postgres_before_the_run_ends(
        postgres: PostgresCluster, client: ClientSession, agent: AgentSession,
        open_saver: OpenSaver, open_pooled_saver: OpenSaver, session_name: str,
        kind: str) -> None:
    started = threading.Event()

    if kind == "async-tool":
        @tool
        async def slow_search(q: str) -> str:
            """Search slowly, until cancelled."""
            started.set()
            await asyncio.Event().wait()
            return "never"

        tool_node: Any = ToolNode([slow_search])
    else:
        @tool
        def slow_search(q: str) -> str:
            """A sync tool on a worker thread that stops when the run is cancelled."""
            signal = get_abort_signal()
            started.set()
            while not signal.aborted:
                threading.Event().wait(0.002)
            return f"stopped searching {q}"

        tool_node = CancellableToolNode([slow_search], completed_calls=CompletedCalls())

    log: list[str] = []
    client.on_message(lambda m: log.append(m.name) if m.name == "ai-run-end" else None)
    async with LoggedSaver.from_conn_string(postgres.conninfo) as saver:
        saver.log = log
        await saver.setup()
        graph = chat_graph(StrictFakeChatModel([SEARCHES]), [slow_search],
                           checkpointer=saver, tool_node=tool_node)
        handle = await client.send("search a and b")
        task = asyncio.create_task(run_graph(graph, agent.create_run(handle.invocation)))
        assert await asyncio.to_thread(started.wait, 10)
        await handle.cancel(reason="user_clicked_stop")
        ended = await handle.wait_ended(timeout=10)
        assert (ended.status, ended.cancel_reason) == ("cancelled", "user_clicked_stop")
        # As soon as a client can see the run ended, the repair is committed in Postgres.
        messages = await committed(open_saver, session_name)
        outcome = await task
    assert "checkpoint committed" in log and log.count("ai-run-end") == 1
    assert log[-1] == "ai-run-end", \
        f"a checkpoint was written after the client saw the run end: {log}"
    assert find_history_errors(messages) == [], find_history_errors(messages)
    assert unanswered_tool_calls(messages) == {}
    assert summary(messages)[:2] == [("human", "search a and b"), ("ai", "Looking.")]
    answers = {m.tool_call_id: m for m in messages if m.type == "tool"}
    assert set(answers) == {"call_a", "call_b"}
    if kind == "async-tool":
        assert all(is_cancelled_tool_message(m) for m in answers.values()), \
            "the cancel marks survive Postgres serialisation"
    else:
        assert {m.content for m in answers.values()} == {"stopped searching a",
                                                         "stopped searching b"}
    assert outcome.reason == "cancelled" and outcome.repair is not None
    parts = [p for p in client.messages[-1]["parts"] if p["type"] == "tool-slow_search"]
    assert len(parts) == 2

    # The next turn, on another worker's connection pool: the strict model accepts it.
    model = StrictFakeChatModel(["Answer after the Stop."])
    async with open_pooled_saver() as pooled:
        other = chat_graph(model, [slow_search], checkpointer=pooled)
        again = await client.send("what happened?")
        assert (await run_graph(other, agent.create_run(again.invocation))).reason == "complete"
    assert find_history_errors(model.calls[-1]) == []
    assert client.messages[-1]["parts"][-1]["text"] == "Answer after the Stop."


async def suspend_on_worker_a(broker: InMemoryBroker, client: ClientSession,
                              open_saver: OpenSaver, session_name: str, model: Any,
                              tools: list[Any], completed: CompletedCalls,
                              ask: str) -> tuple[str, str]:
    """Worker A (its own agent session and Postgres connection) runs the graph until an
    ``interrupt()`` suspends it, then goes away. Returns the run id and the assistant
    message's codec id (what the client's answer names)."""
    async with AgentSession(broker.channel(session_name, client_id="agent")) as worker_a, \
            open_saver() as saver_a:
        graph = chat_graph(model, tools, checkpointer=saver_a,
                           tool_node=CancellableToolNode(tools, completed_calls=completed))
        handle = await client.send(ask)
        outcome = await run_graph(graph, worker_a.create_run(handle.invocation))
        assert outcome.reason == "suspended" and outcome.interrupts, outcome
    run_id = client.runs[-1].run_id
    await client.wait_for(
        lambda c: c.run(run_id) is not None and c.run(run_id).status == "suspended")
    cmid = next(e.codec_message_id for e in client.decoder.entries()
                if e.message["role"] == "assistant")
    return run_id, cmid


async def resume_on_worker_b(broker: InMemoryBroker, client: ClientSession,
                             open_saver: OpenSaver, session_name: str, model: Any,
                             tools: list[Any], completed: CompletedCalls, run_id: str,
                             cmid: str, call_id: str, answer: Any) -> None:
    """The client answers the question; worker B, which never saw the run, serves the
    continuation from Postgres on a connection pool of its own."""
    async with AgentSession(broker.channel(session_name, client_id="agent")) as worker_b, \
            open_saver() as saver_b:
        graph = chat_graph(model, tools, checkpointer=saver_b,
                           tool_node=CancellableToolNode(tools, completed_calls=completed))
        resume = await client.send_tool_result(run_id=run_id, codec_message_id=cmid,
                                               tool_call_id=call_id, output=answer)
        outcome = await run_graph(graph, worker_b.create_run(resume.invocation))
        assert outcome.reason == "complete", outcome
    info = await client.wait_run_ended(run_id, timeout=5)
    assert info.status == "complete"


async def test_a_continuation_is_served_from_postgres_by_a_worker_that_never_saw_the_run(
        broker: InMemoryBroker, client: ClientSession, open_saver: OpenSaver,
        open_pooled_saver: OpenSaver, session_name: str) -> None:
    asked: list[str] = []

    @tool
    def delete_file(path: str) -> str:
        """Delete a file after asking."""
        asked.append(path)
        answer = interrupt({"question": f"Delete {path}?"})
        return f"deleted {path}" if answer == "yes" else "kept"

    calls = AIMessage(content="", tool_calls=[
        {"name": "delete_file", "args": {"path": "/a"}, "id": "call_d"}])
    run_id, cmid = await suspend_on_worker_a(
        broker, client, open_saver, session_name, StrictFakeChatModel([calls]),
        [delete_file], CompletedCalls(), "delete /a")
    model_b = StrictFakeChatModel(["Done."])
    await resume_on_worker_b(broker, client, open_pooled_saver, session_name, model_b,
                             [delete_file], CompletedCalls(), run_id, cmid, "call_d", "yes")

    assert asked == ["/a", "/a"], "interrupt() re-runs the asking tool on resume"
    parts = [p for m in client.messages for p in m["parts"] if p.get("toolCallId") == "call_d"]
    assert [(p["state"], p["output"]) for p in parts] == [("output-available", "yes")]
    assert client.messages[-1]["parts"][-1]["text"] == "Done."
    assert find_history_errors(model_b.calls[-1]) == []
    messages = await committed(open_saver, session_name)
    assert summary(messages)[-2:] == [("tool", "deleted /a"), ("ai", "Done.")]
    assert find_history_errors(messages) == []


@pytest.mark.parametrize("record", ["one-process", "one-per-worker"])
async def test_a_continuation_on_another_worker_does_not_rerun_completed_sibling_tools(
        broker: InMemoryBroker, client: ClientSession, open_saver: OpenSaver,
        open_pooled_saver: OpenSaver, session_name: str, record: str) -> None:
    """The model calls ``charge_card`` and ``ship`` at once; ``ship`` asks a human. The
    card is charged before the run suspends; the answer comes back to worker B, which has a
    fresh saver and connection. ``one-process``: A and B share the process's record of
    completed calls (two workers in one process); ``one-per-worker``: each worker process
    has its own, as in a real deployment."""
    ran: list[str] = []

    @tool
    def charge_card(amount: int) -> str:
        """Charge the card (must never happen twice)."""
        ran.append("charge")
        return f"charged {amount}"

    @tool
    def ship(address: str) -> str:
        """Ship after a human confirms."""
        ran.append("ship")
        answer = interrupt({"confirm": address})
        return f"shipped: {answer}"

    tools = [charge_card, ship]
    calls = AIMessage(content="Ordering.", tool_calls=[
        {"name": "charge_card", "args": {"amount": 5}, "id": "call_pay"},
        {"name": "ship", "args": {"address": "Main St"}, "id": "call_ship"}])
    record_a = CompletedCalls()
    record_b = record_a if record == "one-process" else CompletedCalls()
    run_id, cmid = await suspend_on_worker_a(
        broker, client, open_saver, session_name, StrictFakeChatModel([calls]), tools,
        record_a, "order it")
    assert sorted(ran) == ["charge", "ship"]
    model_b = StrictFakeChatModel(["Ordered and shipped."])
    await resume_on_worker_b(broker, client, open_pooled_saver, session_name, model_b, tools,
                             record_b, run_id, cmid, "call_ship", "yes")

    messages = await committed(open_saver, session_name)
    answers = {m.tool_call_id: m.content for m in messages if m.type == "tool"}
    assert answers == {"call_pay": "charged 5", "call_ship": "shipped: yes"}
    assert find_history_errors(messages) == []
    assert sorted(ran) == ["charge", "ship", "ship"], "charge_card ran again on resume"


@pytest.mark.parametrize("earlier_turn", [True, False], ids=["after-a-turn", "first-turn"])
@pytest.mark.parametrize("strategy", ["rollback", "interrupt"])
async def test_a_new_input_interrupts_a_run_mid_tool_and_the_postgres_thread_is_valid(
        broker: InMemoryBroker, client: ClientSession, saver: AsyncPostgresSaver,
        open_saver: OpenSaver, session_name: str, strategy: str, earlier_turn: bool) -> None:
    """Under ``rollback`` the interrupted run's writes, its input included, are gone from
    Postgres (the thread forked back to its head before the run, or deleted if it had none);
    under ``interrupt`` they are kept and repaired. Either way the new run's prompt is valid."""
    started = threading.Event()

    @tool
    async def slow_search(q: str) -> str:
        """Search slowly, until cancelled."""
        started.set()
        await asyncio.Event().wait()
        return "never"

    script = [SEARCHES, "A poem instead."]
    model = StrictFakeChatModel(["Hello there.", *script] if earlier_turn else script)
    graph = chat_graph(model, [slow_search], checkpointer=saver)
    async with AgentSession(broker.channel(session_name, client_id="agent"),
                            multitask=strategy) as worker:
        earlier: list[tuple[str, Any]] = []
        if earlier_turn:
            hello = await client.send("hi")
            assert (await run_graph(graph, worker.create_run(hello.invocation))).reason \
                == "complete"
            earlier = summary(await committed(open_saver, session_name))
        first = await client.send("search a and b")
        first_task = asyncio.create_task(run_graph(graph, worker.create_run(first.invocation)))
        assert await asyncio.to_thread(started.wait, 10)
        second = await client.send("no, write a poem")
        second_run = worker.create_run(second.invocation)
        await second_run.admit()  # the endpoint's order: admitted, then the agent runs it
        second_outcome = await run_graph(graph, second_run)
        first_outcome = await first_task

    assert (first_outcome.reason, first_outcome.rolled_back) == (
        "cancelled", strategy == "rollback")
    assert first_outcome.cancel_reason is not None
    assert first_outcome.cancel_reason.name == "new_input"
    assert second_outcome.reason == "complete"
    prompt = summary(model.calls[-1])  # what the new run's model saw
    if strategy == "rollback":
        assert prompt == [*earlier, ("human", "no, write a poem")]
    else:
        assert prompt[:len(earlier) + 2] == [*earlier, ("human", "search a and b"),
                                             ("ai", "Looking.")]
        assert [kind for kind, _ in prompt[len(earlier) + 2:]] == ["tool", "tool", "human"]
    messages = await committed(open_saver, session_name)
    assert find_history_errors(messages) == []
    assert summary(messages) == [*prompt, ("ai", "A poem instead.")]


async def dropin_turn(agent: AgentSession, graph: Any, handle: Any, text: str,
                      session_name: str, runs: list[Any]) -> None:
    """An existing app's own call, made interruptible by the one line."""
    async with agent.create_run(handle.invocation) as run:
        runs.append(run)
        config: Any = {**thread_of(session_name), "callbacks": [RunCallbackHandler(run)]}
        await graph.ainvoke({"messages": [HumanMessage(text)]}, config)


@pytest.mark.parametrize("point", ["mid-tool", "mid-answer"])
async def test_a_drop_in_run_cancelled_leaves_a_postgres_thread_the_next_turn_can_use(
        client: ClientSession, agent: AgentSession, saver: AsyncPostgresSaver,
        open_saver: OpenSaver, session_name: str, point: str) -> None:
    """Drop-in mode (``RunCallbackHandler`` only, no ``run_graph``): Stop while a tool runs
    lets that tool finish and stops before the next model call; Stop mid-answer stops at the
    next token. What the graph committed to Postgres is a valid history either way."""
    searching, release = asyncio.Event(), asyncio.Event()

    @tool
    async def search(q: str) -> str:
        """Search the web."""
        searching.set()
        await release.wait()
        return f"{q}: early April."

    words = " ".join(f"w{i}" for i in range(300))
    first_reply: Any = AIMessage(content="Let me search.", tool_calls=[
        {"name": "search", "args": {"q": "Kyoto"}, "id": "call_k"}]) if point == "mid-tool" \
        else words
    model = StrictFakeChatModel([first_reply, "Next answer."], token_delay=0.002)
    graph = chat_graph(model, [search], checkpointer=saver)
    runs: list[Any] = []
    handle = await client.send("When should I visit Kyoto?")
    task = asyncio.create_task(
        dropin_turn(agent, graph, handle, "When should I visit Kyoto?", session_name, runs))
    if point == "mid-tool":
        await searching.wait()
    else:
        await client.wait_for(lambda c: bool(c.messages) and "w5 " in str(c.messages[-1]["parts"]))
    await handle.cancel(reason="user_clicked_stop")
    await asyncio.wait_for(runs[0].signal.wait(), 5)  # the Stop reached the agent
    release.set()  # only now does the running tool finish
    await task  # the cancel is an outcome: `async with run` swallows it
    assert (await handle.wait_ended(timeout=5)).status == "cancelled"
    assert len(model.calls) == 1, "nothing called the model after the Stop"

    messages = await committed(open_saver, session_name)
    assert find_history_errors(messages) == [], find_history_errors(messages)
    if point == "mid-tool":
        assert summary(messages) == [("human", "When should I visit Kyoto?"),
                                     ("ai", "Let me search."), ("tool", "Kyoto: early April.")]
    else:  # no repair in drop-in mode: the partial answer is on the channel only
        assert summary(messages) == [("human", "When should I visit Kyoto?")]

    again = await client.send("And the weather?")
    await dropin_turn(agent, graph, again, "And the weather?", session_name, runs)
    assert (await again.wait_ended(timeout=5)).status == "complete"
    assert find_history_errors(model.calls[-1]) == []
    assert client.messages[-1]["parts"][-1]["text"] == "Next answer."

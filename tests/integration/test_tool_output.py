"""Wire fidelity of tool results: what a tool returned is what the client's part shows.

LangChain encodes a tool's non-text return value into the ToolMessage's text before any
callback sees it; the official JS agent sends the value itself. These tests run real graphs
(``ToolNode``, ``CancellableToolNode``, ``create_agent``; under ``run_graph`` and with the
drop-in handler, async and sync) and compare the client's decoded tool parts with the values
the tools returned, type included (``json.dumps`` tells ``True`` from ``1`` and ``{}`` from
``"{}"``). The model and the checkpoint still get exactly LangChain's text. And a result the
client supplied for a suspended run's tool call is never replaced on resume.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from langgraph_interrupt import AbortController, AgentSession, ClientSession
from langgraph_interrupt.integration import CancellableToolNode, RunCallbackHandler, run_graph
from langgraph_interrupt.integration._signal import RunScope, bind_abort_signal
from langgraph_interrupt.integration._tool_output import install_output_capture
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors
from tests.helpers import codec, describe, run_records


class Reading(BaseModel):
    station: str
    day: datetime.date


BLOCKS = [{"type": "text", "text": "a content block"}]

#: tool name -> (what it returns, what the client's part must show)
RESULTS: dict[str, tuple[Any, Any]] = {
    "as_dict": ({"city": "Zürich", "celsius": 21, "tags": ["sunny"]},
                {"city": "Zürich", "celsius": 21, "tags": ["sunny"]}),
    "as_rows": ([{"id": 1}, {"id": 2}], [{"id": 1}, {"id": 2}]),
    "as_int": (3, 3),
    "as_float": (0.5, 0.5),
    "as_false": (False, False),
    "as_none": (None, None),
    "as_model": (Reading(station="ZRH", day=datetime.date(2024, 1, 2)),
                 {"station": "ZRH", "day": "2024-01-02"}),
    "as_json_text": (json.dumps({"a": 1}), '{"a": 1}'),  # a string stays a string
    "as_number_text": ("21", "21"),
    "as_blocks": (BLOCKS, BLOCKS),  # content blocks are the content itself
}


def _make_tool(name: str, value: Any) -> Any:
    def run() -> Any:
        return value

    run.__name__ = name
    run.__doc__ = f"Returns {name}."
    return tool(run)


@tool(response_format="content_and_artifact")
def with_artifact() -> tuple[str, Any]:
    """Returns text for the model and rows on the side."""
    return "2 rows", [{"id": 1}, {"id": 2}]


# A content_and_artifact tool: the part shows the content (what the model saw, and what a
# conversation rebuilt from the channel gives the model back), never the artifact.
TOOLS = [*(_make_tool(name, value) for name, (value, _) in RESULTS.items()), with_artifact]
CALLS = AIMessage(content="", tool_calls=[
    {"name": t.name, "args": {}, "id": f"call_{t.name}"} for t in TOOLS])
EXPECTED = {**{f"call_{name}": json.dumps(shown) for name, (_, shown) in RESULTS.items()},
            "call_with_artifact": json.dumps("2 rows")}


def chat_graph(model: Any, tool_node: Any, *, checkpointer: Any = None) -> Any:
    async def agent_node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def sync_agent_node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableLambda(sync_agent_node, afunc=agent_node))
    builder.add_node("tools", tool_node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def shown(client: ClientSession) -> dict[str, str]:
    """Tool call id -> the JSON of the output its part shows in the client's view."""
    return {p["toolCallId"]: json.dumps(p.get("output")) for m in client.messages
            for p in m["parts"] if "toolCallId" in p and p.get("state") == "output-available"}


def langchain_text(messages: list[Any]) -> dict[str, Any]:
    return {m.tool_call_id: m.content for m in messages if isinstance(m, ToolMessage)}


def graph_for(setup: str, model: Any) -> Any:
    if setup == "create_agent":
        from langchain.agents import create_agent

        return create_agent(model, TOOLS, checkpointer=InMemorySaver())
    node = CancellableToolNode(TOOLS) if setup == "CancellableToolNode" else ToolNode(TOOLS)
    return chat_graph(model, node, checkpointer=InMemorySaver())


@pytest.mark.parametrize("setup", ["ToolNode", "CancellableToolNode", "create_agent"])
async def test_run_graph_publishes_what_each_tool_returned(
        client: ClientSession, agent: AgentSession, setup: str) -> None:
    model = StrictFakeChatModel([CALLS, "Done."])
    graph = graph_for(setup, model)
    handle = await client.send("go")
    outcome = await run_graph(graph, agent.create_run(handle.invocation))
    assert outcome.reason == "complete"
    await handle.wait_ended()
    assert shown(client) == EXPECTED
    # The model and the checkpoint got LangChain's own text, untouched.
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    saved = langchain_text((await graph.aget_state(cfg)).values["messages"])
    assert saved == langchain_text(model.calls[-1])
    assert saved["call_as_dict"] == '{"city": "Zürich", "celsius": 21, "tags": ["sunny"]}'
    assert saved["call_as_int"] == "3" and saved["call_as_blocks"] == BLOCKS


@pytest.mark.parametrize("path", ["ainvoke", "sync stream"])
@pytest.mark.parametrize("setup", ["ToolNode", "CancellableToolNode", "create_agent"])
async def test_the_drop_in_handler_publishes_what_each_tool_returned(
        client: ClientSession, agent: AgentSession, setup: str, path: str) -> None:
    graph = graph_for(setup, StrictFakeChatModel([CALLS, "Done."]))
    handle = await client.send("go")
    inputs = {"messages": [HumanMessage("go")]}
    async with agent.create_run(handle.invocation) as run:
        config: Any = {"callbacks": [RunCallbackHandler(run)],
                       "configurable": {"thread_id": f"drop-in-{setup}-{path}"}}
        if path == "ainvoke":
            await graph.ainvoke(inputs, config=config)
        else:  # sync tools on ToolNode's worker threads, no event loop in the graph
            await asyncio.to_thread(lambda: list(graph.stream(inputs, config=config)))
    await handle.wait_ended()
    assert shown(client) == EXPECTED


async def test_the_conversation_rebuilt_from_the_channel_has_langchains_tool_texts(
        client: ClientSession, agent: AgentSession) -> None:
    """Without a checkpointer the next turn's history comes from the parts on the channel:
    the objects there turn back into the texts ToolNode gave the model."""
    model = StrictFakeChatModel([CALLS, "Done.", "Again."])
    graph = chat_graph(model, ToolNode(TOOLS))
    first = await client.send("go")
    await run_graph(graph, agent.create_run(first.invocation))
    second = await client.send("and?")
    await run_graph(graph, agent.create_run(second.invocation))
    original, rebuilt = langchain_text(model.calls[1]), langchain_text(model.calls[2])
    original.pop("call_as_model")  # LangChain's text for a model is its repr; ours is JSON
    assert rebuilt.pop("call_as_model") == '{"station": "ZRH", "day": "2024-01-02"}'
    assert rebuilt == original


def test_the_capture_is_transparent_outside_a_run_and_records_inside_one() -> None:
    assert install_output_capture()  # idempotent: already installed by the integration
    as_dict = TOOLS[0]
    call = {"name": "as_dict", "args": {}, "id": "call_x", "type": "tool_call"}
    outside = as_dict.invoke(call)
    scope = RunScope(AbortController().signal)
    with bind_abort_signal(scope):
        inside = as_dict.invoke(call)
    assert outside.content == inside.content == json.dumps(RESULTS["as_dict"][0],
                                                           ensure_ascii=False)
    assert [value for message, value in scope.tool_outputs.values()] == [
        RESULTS["as_dict"][0]]


# -- a client's tool result survives the resume ----------------------------------------------
async def suspended_on_a_client_tool(client: ClientSession, agent: AgentSession,
                                     got: list[Any]) -> tuple[Any, Any, str, str]:
    """A graph whose ``ask_color`` tool asks the client (``interrupt()``), run until it is
    suspended; returns the graph, the first send's handle, the run id and the assistant
    message's codec-message-id (what the client's answer names)."""

    @tool
    def ask_color(question: str) -> str:
        """Ask the user."""
        answer = interrupt({"question": question})
        got.append(answer)
        return f"the user said {answer['answer']}"

    model = StrictFakeChatModel([AIMessage(content="", tool_calls=[
        {"name": "ask_color", "args": {"question": "Which color?"}, "id": "call_ask"}]),
        "Blue it is."])
    graph = chat_graph(model, CancellableToolNode([ask_color]), checkpointer=InMemorySaver())
    handle = await client.send("paint it")
    assert (await run_graph(graph, agent.create_run(handle.invocation))).reason == "suspended"
    run_id = client.runs[-1].run_id
    await client.wait_for(lambda c: c.run(run_id) is not None
                          and c.run(run_id).status == "suspended")
    cmid = next(e.codec_message_id for e in client.decoder.entries()
                if e.message["role"] == "assistant")
    return graph, handle, run_id, cmid


def client_answer_kept(broker: Any, client: ClientSession, run_id: str, answer: Any) -> None:
    """The client's part shows exactly ``answer``, and nothing for the call was published
    after ``ai-run-resume``."""
    [part] = [p for m in client.messages for p in m["parts"] if p.get("toolCallId") == "call_ask"]
    assert (part["state"], part["output"]) == ("output-available", answer)
    records = run_records(broker, run_id)
    resumed = records[next(i for i, r in enumerate(records) if r.name == "ai-run-resume"):]
    assert not [r for r in resumed if codec(r).get("toolCallId") == "call_ask"]


async def test_a_client_tool_result_is_never_overwritten_on_resume(
        broker: Any, client: ClientSession, agent: AgentSession) -> None:
    """The client answers ``interrupt()`` with an object: its part keeps exactly that object
    (the agent publishes no output of its own for the call, as the JS agent does not), and
    after ``ai-run-resume`` the message's ``start`` comes first."""
    got: list[Any] = []
    graph, handle, run_id, cmid = await suspended_on_a_client_tool(client, agent, got)
    answer = {"answer": "blue", "shades": [1, 2]}
    resume = await client.send_tool_result(run_id=run_id, codec_message_id=cmid,
                                           tool_call_id="call_ask", output=answer)
    assert (await run_graph(graph, agent.create_run(resume.invocation))).reason == "complete"
    await client.wait_run_ended(run_id, timeout=2)

    assert got == [answer]
    client_answer_kept(broker, client, run_id, answer)
    records = run_records(broker, run_id)
    resumed = records[next(i for i, r in enumerate(records) if r.name == "ai-run-resume"):]
    outputs = [describe(r) for r in resumed if r.name == "ai-output"]
    assert outputs[0] == ("publish", "start", None), outputs
    # The model and the checkpoint have what the tool returned.
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    messages = (await graph.aget_state(cfg)).values["messages"]
    assert langchain_text(messages) == {"call_ask": "the user said blue"}
    assert find_history_errors(messages) == []


async def test_an_approved_tool_runs_on_resume_and_its_result_follows_the_start(
        broker: Any, client: ClientSession, agent: AgentSession) -> None:
    """An approval (``tool-approval-response``, what the JS client sends for a tool that
    needs one) is no result: the tool runs on resume and the agent publishes its value, into
    the original part, after the resumed message's ``start``."""

    @tool
    def wire_money(amount: int) -> dict[str, Any]:
        """Send money after the user approved."""
        interrupt({"approve": amount})
        return {"sent": amount, "currency": "EUR"}

    model = StrictFakeChatModel([AIMessage(content="", tool_calls=[
        {"name": "wire_money", "args": {"amount": 5}, "id": "call_wire"}]), "Sent."])
    graph = chat_graph(model, CancellableToolNode([wire_money]), checkpointer=InMemorySaver())
    handle = await client.send("pay")
    assert (await run_graph(graph, agent.create_run(handle.invocation))).reason == "suspended"
    run_id = client.runs[-1].run_id
    await client.wait_for(lambda c: c.run(run_id) is not None
                          and c.run(run_id).status == "suspended")
    cmid = next(e.codec_message_id for e in client.decoder.entries()
                if e.message["role"] == "assistant")
    approval = await send_approval(client, run_id, cmid, "call_wire")
    assert (await run_graph(graph, agent.create_run(approval))).reason == "complete"
    await client.wait_run_ended(run_id, timeout=2)

    [part] = [p for m in client.messages for p in m["parts"]
              if p.get("toolCallId") == "call_wire"]
    assert (part["state"], part["output"]) == ("output-available",
                                               {"sent": 5, "currency": "EUR"})
    records = run_records(broker, run_id)
    resumed = records[next(i for i, r in enumerate(records) if r.name == "ai-run-resume"):]
    outputs = [(codec(r).get("kind"), r.data) for r in resumed if r.name == "ai-output"]
    assert outputs[:2] == [("start", ""), ("tool-output-available",
                                            {"output": {"sent": 5, "currency": "EUR"}})]


async def send_approval(client: ClientSession, run_id: str, cmid: str, call_id: str) -> Any:
    """Publish the JS client's approval of a tool call to the suspended run; its invocation."""
    from langgraph_interrupt import Invocation
    from langgraph_interrupt._wire import EVENT_INPUT, OutboundMessage, make_extras

    event_id = f"approve-{call_id}"
    transport = {"role": "user", "codec-message-id": cmid, "run-id": run_id,
                 "run-client-id": "user-abc", "parent": cmid, "event-id": event_id,
                 "stream": "false"}
    codec_headers = {"kind": "tool-approval-response", "toolCallId": call_id,
                     "approved": "true"}
    await client.channel.publish([OutboundMessage(
        EVENT_INPUT, "", make_extras(transport, codec_headers))])
    return Invocation(input_event_id=event_id, session_name=client.channel.name)


def test_a_new_call_reusing_a_client_answered_id_gets_its_own_output() -> None:
    """Some models reuse call ids (``call_0`` every turn): a call the client answered must
    not silence a later call with the same id that the agent runs."""
    import uuid

    from langgraph_interrupt.integration._translate import ChunkTranslator

    translator = ChunkTranslator()
    translator.answered_by_client("call_0", "ask")
    llm, run = uuid.uuid4(), uuid.uuid4()
    translator.llm_start(llm, None)
    translator.llm_end(llm, AIMessage("", tool_calls=[
        {"name": "lookup", "args": {}, "id": "call_0"}]))
    translator.tool_start(run, "lookup", "call_0", {})
    chunks = translator.tool_end(run, ToolMessage("found", tool_call_id="call_0"))
    assert chunks == [{"type": "tool-output-available", "toolCallId": "call_0",
                       "output": "found"}]


async def test_a_drop_in_handler_on_a_resumed_run_keeps_the_client_result(
        broker: Any, client: ClientSession, agent: AgentSession) -> None:
    """The same resume driven by the drop-in handler (your own ``Command(resume=...)``): the
    handler reads the answered call off the run's trigger and publishes nothing for it."""
    graph, handle, run_id, cmid = await suspended_on_a_client_tool(client, agent, [])
    answer = {"answer": "blue"}
    resume = await client.send_tool_result(run_id=run_id, codec_message_id=cmid,
                                           tool_call_id="call_ask", output=answer)
    cfg = {"configurable": {"thread_id": handle.invocation.session_name}}
    async with agent.create_run(resume.invocation) as run:
        await graph.ainvoke(Command(resume=answer),
                            config={**cfg, "callbacks": [RunCallbackHandler(run)]})
    await client.wait_run_ended(run_id, timeout=2)

    client_answer_kept(broker, client, run_id, answer)


def test_a_cancel_says_which_calls_never_started() -> None:
    """Closing a cancelled run answers every open call; one whose tool never began is not
    said to have stopped "before it completed"."""
    import uuid

    from langgraph_interrupt.integration._translate import ChunkTranslator

    translator = ChunkTranslator()
    llm, run = uuid.uuid4(), uuid.uuid4()
    translator.llm_start(llm, None)
    translator.llm_end(llm, AIMessage("", tool_calls=[
        {"name": "crawl", "args": {}, "id": "call_run"},
        {"name": "report", "args": {}, "id": "call_wait"}]))
    translator.tool_start(run, "crawl", "call_run", {})
    errors = {c["toolCallId"]: c["errorText"] for c in translator.close("cancelled")
              if c["type"] == "tool-output-error"}
    assert errors == {"call_run": "Cancelled before it completed.",
                      "call_wait": "Cancelled before it started."}

"""The fake chat models and the provider-history oracle in ``langgraph_interrupt.testing``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt.testing import (
    FakeStreamingChatModel,
    ProviderHistoryError,
    ScriptExhaustedError,
    StrictFakeChatModel,
    find_history_errors,
    split_words,
    validate_provider_history,
)

MISSING = ("An assistant message with 'tool_calls' must be followed by tool messages responding "
           "to each 'tool_call_id'. The following tool_call_ids did not have response messages: ")
ORPHAN = ("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
          "message with 'tool_calls'.")
EMPTY = "all messages must have non-empty content except for the optional final assistant message"
DUPLICATE = "each tool_use must have a single result. Found multiple `tool_result` blocks with id: "

WEATHER_CALL = AIMessage(
    content="Checking.",
    tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "call_w1"},
                {"name": "weather", "args": {"city": "Rome"}, "id": "call_w2"}],
)
REASONING = AIMessage(content=[{"type": "reasoning", "reasoning": "The user wants a greeting."},
                               {"type": "text", "text": "Hello there"}])


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def final_fields(message: BaseMessage) -> tuple[Any, ...]:
    """What must be equal whichever way the reply was produced (ids aside)."""
    assert isinstance(message, AIMessage)
    return (message.content, message.tool_calls, message.invalid_tool_calls,
            message.response_metadata["finish_reason"])


# --- streaming shape -----------------------------------------------------------------------------

async def test_astream_yields_word_tokens_in_order_then_one_last_chunk() -> None:
    model = FakeStreamingChatModel(["Hello big world"])
    chunks = [c async for c in model.astream("hi")]
    assert [c.content for c in chunks] == ["Hello", " big", " world", ""]
    assert [c.chunk_position for c in chunks] == [None, None, None, "last"]
    assert chunks[-1].response_metadata["finish_reason"] == "stop"
    assert len({c.id for c in chunks}) == 1 and str(chunks[0].id).startswith("lc_run-")
    assert model.outcomes == ["complete"] and model.chunks_generated == 4


def test_sync_stream_yields_the_same_tokens() -> None:
    model = FakeStreamingChatModel(["Hello big world"])
    chunks = list(model.stream("hi"))
    assert [c.content for c in chunks] == ["Hello", " big", " world", ""]
    assert len({c.id for c in chunks}) == 1


@pytest.mark.parametrize("reply", ["Hello big world", WEATHER_CALL, REASONING])
async def test_every_path_ends_in_the_same_message(reply: str | AIMessage) -> None:
    model = FakeStreamingChatModel([reply] * 4)
    sync_stream = merge(list(model.stream("hi")))
    async_stream = merge([c async for c in model.astream("hi")])
    invoked, ainvoked = model.invoke("hi"), await model.ainvoke("hi")
    assert isinstance(invoked, AIMessage) and not isinstance(invoked, AIMessageChunk)
    expected = final_fields(sync_stream)
    assert final_fields(async_stream) == final_fields(invoked) == final_fields(ainvoked) == expected
    # Ids are LangChain's: lc_run--<run id> when streamed, lc_run--<run id>-0 when invoked.
    assert str(invoked.id).startswith("lc_run-") and str(invoked.id).endswith("-0")


async def test_a_scripted_message_id_is_kept_on_every_chunk() -> None:
    model = FakeStreamingChatModel([AIMessage("Hi you", id="msg-1", tool_calls=[
        {"name": "f", "args": {}, "id": "c1"}])])
    chunks = [c async for c in model.astream("hi")]
    assert {c.id for c in chunks} == {"msg-1"}


async def test_token_delay_is_spent_before_every_chunk_sync_and_async() -> None:
    model = FakeStreamingChatModel(["a b c"] * 2, token_delay=0.02)  # 3 tokens + last chunk
    started = time.perf_counter()
    assert len([c async for c in model.astream("hi")]) == 4
    assert time.perf_counter() - started >= 4 * 0.02
    started = time.perf_counter()
    assert len(list(model.stream("hi"))) == 4
    assert time.perf_counter() - started >= 4 * 0.02


def test_chunk_size_splits_text_into_fixed_pieces() -> None:
    model = FakeStreamingChatModel(["abcdefg"], chunk_size=3)
    assert [c.content for c in model.stream("hi")] == ["abc", "def", "g", ""]


@given(st.text(max_size=60))
def test_split_words_loses_nothing_and_keeps_leading_whitespace(text: str) -> None:
    tokens = split_words(text)
    assert "".join(tokens) == text
    assert all(t.strip() for t in tokens[:-1])  # only a trailing run may be pure whitespace
    assert all(not any(ch.isspace() for ch in t.lstrip()) for t in tokens)  # one word each


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=40),
       args=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=3),
       pieces=st.integers(1, 6))
def test_merged_stream_rebuilds_any_scripted_reply(text: str, args: dict[str, Any],
                                                    pieces: int) -> None:
    reply = AIMessage(text, tool_calls=[{"name": "f", "args": args, "id": "c1"}])
    model = FakeStreamingChatModel([reply], args_pieces=pieces)
    chunks = list(model.stream("hi"))
    merged = merge(chunks)
    assert merged.content == text
    assert merged.tool_calls == [{"name": "f", "args": args, "id": "c1", "type": "tool_call"}]
    deltas = [c.tool_call_chunks[0]["args"] for c in chunks if c.tool_call_chunks][1:]
    assert len(deltas) == min(pieces, len(json.dumps(args))) and all(deltas)


# --- tool calls (research §2.d) ------------------------------------------------------------------

async def test_tool_call_chunks_carry_id_and_name_only_on_the_first_chunk() -> None:
    model = FakeStreamingChatModel([WEATHER_CALL])
    chunks = [c async for c in model.astream("weather?")]
    assert [c.content for c in chunks[:1]] == ["Checking."]
    calls = [c.tool_call_chunks for c in chunks if c.tool_call_chunks]
    assert all(len(tc) == 1 for tc in calls)
    flat = [tc[0] for tc in calls]
    assert flat[0] == {"name": "weather", "args": "", "id": "call_w1", "index": 0,
                       "type": "tool_call_chunk"}
    first_args = [c for c in flat if c["index"] == 0][1:]
    assert all(c["name"] is None and c["id"] is None for c in first_args)
    assert "".join(c["args"] or "" for c in first_args) == '{"city": "Paris"}'
    assert len(first_args) == 3
    starts = [c for c in flat if c["id"] is not None]
    assert [(c["id"], c["name"], c["index"], c["args"]) for c in starts] == [
        ("call_w1", "weather", 0, ""), ("call_w2", "weather", 1, "")]
    # the second call starts only after the first call's deltas
    assert flat.index(starts[1]) == 4
    last = chunks[-1]
    assert last.chunk_position == "last" and not last.tool_call_chunks
    assert last.response_metadata["finish_reason"] == "tool_calls"
    merged = merge(chunks)
    assert merged.tool_calls == [
        {"name": "weather", "args": {"city": "Paris"}, "id": "call_w1", "type": "tool_call"},
        {"name": "weather", "args": {"city": "Rome"}, "id": "call_w2", "type": "tool_call"}]


def test_a_tool_call_without_id_gets_a_deterministic_one() -> None:
    model = FakeStreamingChatModel(["first", AIMessage("", tool_calls=[
        {"name": "f", "args": {"x": 1}, "id": None}])])
    model.invoke("hi")
    reply = model.invoke("again")
    assert isinstance(reply, AIMessage) and reply.tool_calls[0]["id"] == "call_2_0"


# --- reasoning -----------------------------------------------------------------------------------

async def test_reasoning_streams_first_as_indexed_blocks_and_round_trips() -> None:
    model = FakeStreamingChatModel([REASONING, REASONING])
    chunks = [c async for c in model.astream("hi")]
    assert [c.content for c in chunks] == [
        [{"type": "reasoning", "reasoning": "The", "index": 0}],
        [{"type": "reasoning", "reasoning": " user", "index": 0}],
        [{"type": "reasoning", "reasoning": " wants", "index": 0}],
        [{"type": "reasoning", "reasoning": " a", "index": 0}],
        [{"type": "reasoning", "reasoning": " greeting.", "index": 0}],
        [{"type": "text", "text": "Hello", "index": 1}],
        [{"type": "text", "text": " there", "index": 1}],
        [],
    ]
    merged = merge(chunks)
    expected_blocks = [
        {"type": "reasoning", "reasoning": "The user wants a greeting.", "index": 0},
        {"type": "text", "text": "Hello there", "index": 1}]
    assert merged.content_blocks == expected_blocks
    assert merged.text == "Hello there"
    invoked = await model.ainvoke("hi")
    assert invoked.content == expected_blocks and invoked.content_blocks == expected_blocks


def test_extra_block_keys_ride_on_the_first_delta_only() -> None:
    reply = AIMessage(content=[{"type": "reasoning", "reasoning": "a b", "id": "rs_1"}])
    model = FakeStreamingChatModel([reply])
    chunks = list(model.stream("hi"))
    assert chunks[0].content == [{"type": "reasoning", "reasoning": "a", "id": "rs_1", "index": 0}]
    assert chunks[1].content == [{"type": "reasoning", "reasoning": " b", "index": 0}]
    assert merge(chunks).content == [{"type": "reasoning", "reasoning": "a b", "id": "rs_1",
                                      "index": 0}]


# --- the script ----------------------------------------------------------------------------------

def test_responses_are_consumed_in_order_and_prompts_recorded() -> None:
    seen: list[list[BaseMessage]] = []

    def echo(messages: list[BaseMessage]) -> str:
        seen.append(messages)
        return f"echo {messages[-1].text}"

    model = FakeStreamingChatModel(["one", echo, AIMessage("three")])
    assert [model.invoke(p).text for p in ("a", "b", "c")] == ["one", "echo b", "three"]
    assert [[m.text for m in call] for call in model.calls] == [["a"], ["b"], ["c"]]
    assert seen == [model.calls[1]]


def test_a_responder_answers_every_call() -> None:
    model = FakeStreamingChatModel(responder=lambda messages: f"{len(messages)} messages")
    assert model.invoke("a").text == "1 messages"
    assert model.invoke([HumanMessage("a"), AIMessage("b"), HumanMessage("c")]).text == "3 messages"


def test_an_exhausted_script_says_how_many_calls_were_made() -> None:
    model = FakeStreamingChatModel(["one", "two"])
    model.invoke("a")
    model.invoke("b")
    with pytest.raises(ScriptExhaustedError,
                       match="called 3 times but only 2 responses were scripted"):
        model.invoke("c")
    assert len(model.calls) == 3 and model.outcomes[-1] == "error"


def test_responses_and_responder_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either responses or responder"):
        FakeStreamingChatModel(["a"], responder=lambda m: "b")


def test_bind_tools_binds_openai_schemas_and_calls_record_them() -> None:
    @tool
    def weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    model = FakeStreamingChatModel(["ok"])
    model.bind_tools([weather], tool_choice="auto").invoke("hi")
    (kwargs,) = model.call_kwargs
    assert kwargs["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in kwargs["tools"]] == ["weather"]
    assert kwargs["tools"][0]["type"] == "function"


# --- cancellation --------------------------------------------------------------------------------

@pytest.mark.parametrize("delay", [0.0, 30.0])
async def test_cancel_mid_stream_stops_generation_within_one_token(delay: float) -> None:
    model = FakeStreamingChatModel([" ".join(["tok"] * 50)])
    got: list[AIMessageChunk] = []
    reached = asyncio.Event()

    async def consume() -> None:
        async for chunk in model.astream("hi"):
            got.append(chunk)
            if len(got) == 3:
                model.token_delay = delay  # from now on each token takes `delay`
                reached.set()

    task = asyncio.create_task(consume())
    await reached.wait()
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 1.0
    assert model.outcomes == ["cancelled"]
    if delay:
        assert model.chunks_generated == len(got) == 3  # the token being waited for never came
    else:
        assert model.chunks_generated <= len(got) + 1
    generated = model.chunks_generated
    for _ in range(5):
        await asyncio.sleep(0)
    assert model.chunks_generated == generated  # nothing runs on after the cancel


async def test_cancel_during_ainvoke_stops_the_generation() -> None:
    called = asyncio.Event()

    def reply(messages: list[BaseMessage]) -> str:
        called.set()
        return " ".join(["tok"] * 50)

    model = FakeStreamingChatModel(responder=reply, token_delay=30.0)
    task = asyncio.create_task(model.ainvoke("hi"))
    await called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert model.outcomes == ["cancelled"] and model.chunks_generated == 0


def test_sync_stream_stops_when_the_consumer_stops_iterating() -> None:
    model = FakeStreamingChatModel([" ".join(["tok"] * 50)])
    stream = model.stream("hi")
    assert [next(stream).content, next(stream).content] == ["tok", " tok"]
    stream.close()
    assert model.chunks_generated == 2 and model.outcomes == ["closed"]


# --- inside LangGraph ----------------------------------------------------------------------------

@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def tool_turn_model() -> StrictFakeChatModel:
    """Calls the tool twice in parallel, then (if the history is valid) joins the two results."""
    return StrictFakeChatModel([WEATHER_CALL, lambda ms: " and ".join(m.text for m in ms[-2:])])


def hand_built_graph(model: FakeStreamingChatModel) -> Any:
    bound = model.bind_tools([weather])

    async def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    def agent_sync(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", RunnableLambda(agent_sync, afunc=agent))
    graph.add_node("tools", ToolNode([weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver())


def react_agent(model: FakeStreamingChatModel) -> Any:
    from langgraph.prebuilt import create_react_agent

    return create_react_agent(model, [weather], checkpointer=InMemorySaver())


def langchain_agent(model: FakeStreamingChatModel) -> Any:
    agents = pytest.importorskip("langchain.agents")
    return agents.create_agent(model, [weather], checkpointer=InMemorySaver())


BUILDERS = [hand_built_graph, react_agent, langchain_agent]


def check_tool_turn(model: FakeStreamingChatModel, parts: list[tuple[Any, dict[str, Any]]],
                    state: list[BaseMessage]) -> None:
    chunks = [m for m, _ in parts if isinstance(m, AIMessageChunk)]
    tool_results = [m for m, meta in parts if isinstance(m, ToolMessage)]
    starts = [tc for c in chunks for tc in c.tool_call_chunks if tc["id"]]
    assert [(t["id"], t["name"], t["args"]) for t in starts] == [
        ("call_w1", "weather", ""), ("call_w2", "weather", "")]
    assert "".join(c.text for c in chunks) == "Checking.Sunny in Paris and Sunny in Rome"
    assert sorted(m.text for m in tool_results) == ["Sunny in Paris", "Sunny in Rome"]
    assert [m.type for m in state] == ["human", "ai", "tool", "tool", "ai"]
    assert state[-1].text == "Sunny in Paris and Sunny in Rome"
    assert find_history_errors(state) == []
    assert [m.type for m in model.calls[1]] == ["human", "ai", "tool", "tool"]
    assert model.call_kwargs[0]["tools"][0]["function"]["name"] == "weather"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
async def test_one_tool_turn_streams_through_messages_mode(build: Any) -> None:
    model = tool_turn_model()
    graph = build(model)
    config = {"configurable": {"thread_id": "t1"}}
    parts = [p async for p in graph.astream({"messages": [HumanMessage("weather?")]}, config,
                                            stream_mode="messages")]
    state = (await graph.aget_state(config)).values["messages"]
    check_tool_turn(model, parts, state)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_one_tool_turn_streams_through_sync_messages_mode(build: Any) -> None:
    model = tool_turn_model()
    graph = build(model)
    config = {"configurable": {"thread_id": "t1"}}
    parts = list(graph.stream({"messages": [HumanMessage("weather?")]}, config,
                              stream_mode="messages"))
    check_tool_turn(model, parts, graph.get_state(config).values["messages"])


async def test_cancelling_a_graph_mid_token_stops_the_model() -> None:
    model = FakeStreamingChatModel([" ".join(["tok"] * 50)])
    graph = hand_built_graph(model)
    got: list[Any] = []

    async def consume() -> None:
        async for part in graph.astream({"messages": [HumanMessage("hi")]},
                                        {"configurable": {"thread_id": "t"}},
                                        stream_mode="messages"):
            got.append(part)
            if len(got) == 5:
                model.token_delay = 30.0
                reached.set()

    reached = asyncio.Event()
    task = asyncio.create_task(consume())
    await reached.wait()
    at_cancel = model.chunks_generated  # LangGraph may have buffered a few ahead of `got`
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 5 <= model.chunks_generated == at_cancel < 50
    assert model.outcomes == ["cancelled"]


# --- the strict oracle ---------------------------------------------------------------------------

def tool_result(call_id: str, text: str = "ok") -> ToolMessage:
    return ToolMessage(text, tool_call_id=call_id)


VALID = {
    "plain": [SystemMessage("be nice"), HumanMessage("hi"), AIMessage("hello")],
    "tool turn": [HumanMessage("w?"), WEATHER_CALL, tool_result("call_w1"),
                  tool_result("call_w2"), AIMessage("done")],
    "results in any order": [HumanMessage("w?"), WEATHER_CALL, tool_result("call_w2"),
                             tool_result("call_w1")],
    "calls with empty text": [HumanMessage("w?"), AIMessage("", tool_calls=[
        {"name": "f", "args": {}, "id": "c1"}]), tool_result("c1"), HumanMessage("next")],
    "reasoning and text": [HumanMessage("hi"), REASONING],
    "cancelled result": [HumanMessage("w?"), WEATHER_CALL, tool_result("call_w1"),
                         ToolMessage("Cancelled by user before completion.",
                                     tool_call_id="call_w2", status="error"),
                         HumanMessage("never mind")],
    "image-only question": [HumanMessage([{"type": "image", "url": "https://x/y.png"}]),
                            AIMessage([" ", {"type": "text", "text": "A cat."}])],
    "empty": [],
}


@pytest.mark.parametrize("history", VALID.values(), ids=VALID.keys())
def test_valid_histories_are_accepted(history: list[BaseMessage]) -> None:
    assert find_history_errors(history) == []
    validate_provider_history(history)


INVALID = {
    "unanswered calls": (
        [HumanMessage("w?"), WEATHER_CALL, HumanMessage("stop")],
        [f"messages[1]: {MISSING}call_w1, call_w2"]),
    "one of two unanswered at the end": (
        [HumanMessage("w?"), WEATHER_CALL, tool_result("call_w1")],
        [f"messages[1]: {MISSING}call_w2"]),
    "result after a message in between": (
        [HumanMessage("w?"), WEATHER_CALL, tool_result("call_w1"), HumanMessage("x"),
         tool_result("call_w2")],
        [f"messages[1]: {MISSING}call_w2", f"messages[4]: {ORPHAN}"]),
    "orphan result": (
        [HumanMessage("hi"), tool_result("call_zz")],
        [f"messages[1]: {ORPHAN}"]),
    "duplicate result": (
        [HumanMessage("w?"), WEATHER_CALL, tool_result("call_w1"), tool_result("call_w2"),
         tool_result("call_w1")],
        [f"messages[4]: {DUPLICATE}call_w1"]),
    "empty assistant": (
        [HumanMessage("hi"), AIMessage(""), HumanMessage("again")],
        [f"messages[1]: {EMPTY}"]),
    "whitespace assistant at the end": (
        [HumanMessage("hi"), AIMessage("  \n")], [f"messages[1]: {EMPTY}"]),
    "reasoning-only assistant": (
        [HumanMessage("hi"), AIMessage([{"type": "reasoning", "reasoning": "hmm"}])],
        [f"messages[1]: {EMPTY}"]),
    "empty human": ([HumanMessage("")], [f"messages[0]: {EMPTY}"]),
    "blank blocks": ([HumanMessage([{"type": "text", "text": " "}]), AIMessage(["", " "])],
                     [f"messages[0]: {EMPTY}", f"messages[1]: {EMPTY}"]),
    "unparseable call still needs a result": (
        [HumanMessage("w?"), AIMessage("", invalid_tool_calls=[
            {"name": "f", "args": '{"a', "id": "c9", "error": None, "type": "invalid_tool_call"}])],
        [f"messages[1]: {MISSING}c9"]),
}


@pytest.mark.parametrize(("history", "errors"), INVALID.values(), ids=INVALID.keys())
def test_invalid_histories_are_rejected_with_the_provider_text(
        history: list[BaseMessage], errors: list[str]) -> None:
    assert find_history_errors(history) == errors
    with pytest.raises(ProviderHistoryError) as caught:
        validate_provider_history(history)
    assert caught.value.errors == errors
    assert str(caught.value).startswith("Error code: 400 - ")


@st.composite
def conversations(draw: st.DrawFn) -> list[BaseMessage]:
    """Valid histories: turns of a question, tool rounds with all results, and an answer."""
    history: list[BaseMessage] = []
    for turn in range(draw(st.integers(1, 3))):
        history.append(HumanMessage(f"q{turn}"))
        for round_ in range(draw(st.integers(0, 2))):
            ids = [f"c{turn}_{round_}_{i}" for i in range(draw(st.integers(1, 3)))]
            history.append(AIMessage(draw(st.sampled_from(["", "let me look"])), tool_calls=[
                {"name": "f", "args": {}, "id": i} for i in ids]))
            history.extend(tool_result(i) for i in draw(st.permutations(ids)))
        history.append(AIMessage(f"a{turn}"))
    return history


@settings(max_examples=60, deadline=None)
@given(conversations(), st.data())
def test_dropping_any_tool_result_is_caught(history: list[BaseMessage],
                                            data: st.DataObject) -> None:
    assert find_history_errors(history) == []
    results = [i for i, m in enumerate(history) if isinstance(m, ToolMessage)]
    if not results:
        return
    drop = data.draw(st.sampled_from(results))
    dropped = history[drop]
    assert isinstance(dropped, ToolMessage)
    errors = find_history_errors(history[:drop] + history[drop + 1:])
    assert len(errors) == 1
    assert errors[0].startswith("messages[") and errors[0].endswith(
        f"{MISSING}{dropped.tool_call_id}")


async def test_the_strict_model_refuses_before_streaming_and_keeps_its_script() -> None:
    model = StrictFakeChatModel(["fine"])
    bad = [HumanMessage("w?"), WEATHER_CALL, HumanMessage("stop")]
    with pytest.raises(ProviderHistoryError, match="did not have response messages: "
                                                   "call_w1, call_w2"):
        await model.ainvoke(bad)
    with pytest.raises(ProviderHistoryError):
        [c async for c in model.astream(bad)]
    assert model.chunks_generated == 0 and len(model.calls) == 2
    repaired = [*bad[:2], *(ToolMessage("Cancelled", tool_call_id=i, status="error")
                            for i in ("call_w1", "call_w2")), bad[2]]
    assert (await model.ainvoke(repaired)).text == "fine"


def test_the_non_strict_model_accepts_anything() -> None:
    model = FakeStreamingChatModel(["fine"])
    assert model.invoke([HumanMessage("w?"), WEATHER_CALL, HumanMessage("x")]).text == "fine"


def test_tool_call_args_pieces_are_valid_json_once_joined() -> None:
    model = FakeStreamingChatModel([WEATHER_CALL], args_pieces=5)
    pieces = [c.tool_call_chunks[0]["args"] for c in model.stream("w?")
              if c.tool_call_chunks and c.tool_call_chunks[0]["index"] == 1]
    assert pieces[0] == "" and len(pieces) == 6
    assert json.loads("".join(p or "" for p in pieces)) == {"city": "Rome"}

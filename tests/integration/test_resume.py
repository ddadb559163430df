"""Resuming an interrupted answer: the model continues what the cancel cut off, in a new
run, as a new assistant message, without repeating what the user saw."""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from langgraph_interrupt import AgentSession, ClientSession
from langgraph_interrupt.integration import (
    RESUME_MARK,
    interrupted_answer,
    resume_messages,
    run_graph,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors
from tests.conftest import SESSION
from tests.integration.test_runner import chat_graph

CFG = {"configurable": {"thread_id": SESSION}}
STORY = "Once upon a time there was a lighthouse keeper who " + "kept the light " * 30


def continue_story(messages: list[BaseMessage]) -> str:
    """A model that continues from the quoted tail when asked to, else starts over."""
    last = messages[-1]
    if last.additional_kwargs.get(RESUME_MARK):
        assert "Once upon a time" in last.text and "Continue it" in last.text
        return "and one stormy night, a ship came."
    return "Once upon a time (again)."


async def _interrupted_story(client: ClientSession, agent: AgentSession) -> tuple[object, object]:
    model = StrictFakeChatModel([STORY, continue_story], token_delay=0.005)
    graph = chat_graph(model, checkpointer=InMemorySaver())
    handle = await client.send("tell me a story")
    run = agent.create_run(handle.invocation)
    task = asyncio.create_task(run_graph(graph, run))
    await client.wait_for(lambda c: run.progress.tokens >= 8)
    await handle.cancel(reason="user_speaking")
    assert (await task).reason == "cancelled"
    return graph, model


async def test_run_graph_resumes_an_interrupted_answer_as_a_new_message(
        client: ClientSession, agent: AgentSession) -> None:
    graph, model = await _interrupted_story(client, agent)
    thread = (await graph.aget_state(CFG)).values["messages"]
    partial = interrupted_answer(thread)
    assert partial is not None and STORY.startswith(partial.text.strip()[:40])
    shown = [m for m in client.messages if m["role"] == "assistant"][-1]["parts"][-1]["text"]

    again = await client.send("go on")
    outcome = await run_graph(graph, agent.create_run(again.invocation),
                              resume_interrupted=True)
    assert outcome.reason == "complete", outcome.error
    prompt = model.calls[-1]
    assert [m.type for m in prompt] == ["human", "ai", "human", "human"]
    assert prompt[-2].text == "go on" and prompt[-1].additional_kwargs[RESUME_MARK]
    assert shown.rstrip()[-20:] in prompt[-1].text, "the model is told what the user saw"
    assistants = [m for m in client.messages if m["role"] == "assistant"]
    assert len(assistants) == 2, "a new assistant message; the partial one stays as it was"
    assert assistants[-1]["parts"][-1]["text"] == "and one stormy night, a ship came."
    assert assistants[0]["parts"][-1]["text"] == shown
    messages = (await graph.aget_state(CFG)).values["messages"]
    assert find_history_errors(messages) == []
    assert interrupted_answer(messages) is None, "answered: nothing left to resume"


async def test_without_the_option_the_next_run_does_not_resume(
        client: ClientSession, agent: AgentSession) -> None:
    graph, model = await _interrupted_story(client, agent)
    again = await client.send("tell me a story")
    await run_graph(graph, agent.create_run(again.invocation))
    assert not any(m.additional_kwargs.get(RESUME_MARK) for m in model.calls[-1])
    assert [m for m in client.messages if m["role"] == "assistant"][-1]["parts"][-1][
        "text"] == "Once upon a time (again)."


def test_resume_messages_adds_the_instruction_once_and_only_after_a_cut_answer() -> None:
    cut = AIMessage("The answer is forty", response_metadata={
        "finish_reason": "cancelled", "langgraph_interrupt_cancelled": True})
    history = [HumanMessage("what is it?"), cut, HumanMessage("go on")]
    resumed = resume_messages(history)
    assert len(resumed) == 4 and "The answer is forty" in resumed[-1].text
    assert resume_messages(resumed) == resumed, "never twice"
    finished = [*history, AIMessage("two.")]
    assert resume_messages(finished) == finished
    assert resume_messages([HumanMessage("hi")]) == [HumanMessage("hi")]

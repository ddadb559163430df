"""Terminal demo: a LangGraph agent with a tool, stopped mid-tool, then asked again.

The agent is an ordinary LangGraph app (a model node, a tool node, a loop, a checkpointer)
served by ``run_graph``, with ``CancellableToolNode`` where ``ToolNode`` would be; a Python
``ClientSession`` plays the chat front end and prints the conversation as it folds
(``examples/_transcript.py``):

1. the user asks; the answer streams token by token, then the model calls a slow tool;
2. while the tool runs, the user presses Stop (``handle.cancel(reason="user_clicked_stop")``):
   the tool sees the run's abort signal and returns what it found so far (its cut-short
   answer, shown to the user and kept in the thread), and the run ends ``cancelled`` with
   the reason, a few milliseconds after Stop;
3. the thread is valid (every tool call answered), so a strict model accepts the next
   message, which is answered from what the search had found.

Offline by default: the embedded broker and a scripted model that refuses broken histories
as providers do. If OPENAI_API_KEY is set and langchain-openai is installed, a real OpenAI
model answers instead (likewise ANTHROPIC_API_KEY + langchain-anthropic). Where the channel
lives:

* by default, the embedded in-memory broker (nothing to install or configure);
* ``--ably-local``: the offline Ably broker on 127.0.0.1, with agent and client on their own
  real ably-python connections (``AblyChannel``); needs the ``testing`` extra;
* ``ABLY_API_KEY`` set (and no ``--ably-local``): real Ably, on a fresh channel in the ``ai:``
  namespace, which needs the mutable-messages rule (see docs/ably.md).

    python examples/demo.py [--ably-local] [--channel NAME] [--stop-after N] [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from _models import chat_model
from _transcript import Transcript
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from langgraph_interrupt import AgentSession, Channel, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import (
    CUT_SHORT_MARK,
    CancellableToolNode,
    get_abort_signal,
    run_graph,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors

SESSION = "ai:demo"  # with a checkpointer, run_graph's thread id is the session name
SOURCES = 40
QUESTION = "When should I visit Kyoto? Check this year's festival calendar too."
FOLLOW_UP = "Never mind the calendar, just give me the short answer."


# -- the agent: plain LangGraph ----------------------------------------------------------------
class Tool:
    """How slow the tool is, and what it really did (to show that it saw the Stop)."""

    source_delay = 0.25
    searched = 0
    saw_stop = threading.Event()


@tool
def search_festivals(city: str, year: int) -> str:
    """Search the festival calendars of a city for a year (slow: one source at a time)."""
    signal = get_abort_signal()  # the run's abort signal, on this worker thread too
    stopped = threading.Event()
    signal.add_callback(lambda reason: stopped.set())  # wakes the wait below at once
    found: list[str] = []
    for source in range(1, SOURCES + 1):
        # One source takes source_delay, unless Stop is pressed first: then stop searching.
        if signal.aborted or stopped.wait(Tool.source_delay):
            Tool.saw_stop.set()
            return f"Stopped after {source - 1} of {SOURCES} sources: {', '.join(found)}"
        Tool.searched = source
        if source % 10 == 3:
            found.append(f"festival {source} of {city} {year}")
        dispatch_custom_event("search-progress", {"source": source, "of": SOURCES})
    return f"{len(found)} festivals in {city} in {year}: {', '.join(found)}"


def build_agent(model: BaseChatModel) -> Any:
    bound = model.bind_tools([search_festivals])

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", call_model)
    builder.add_node("tools", CancellableToolNode([search_festivals]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def fake_model(delay: float) -> StrictFakeChatModel:
    """The scripted model: it answers, calls the tool, and on the next turn answers from what
    the thread holds. Strict: a history with an unanswered tool call is refused (HTTP 400)."""
    def short_answer(messages: list[BaseMessage]) -> str:
        cut = any(isinstance(m, ToolMessage) and (
            m.status == "error" or CUT_SHORT_MARK in m.response_metadata) for m in messages)
        return ("Go in early April for the cherry blossom, or in the second half of November "
                "for the autumn maples. "
                + ("The festival search was stopped before it finished, so I can't promise "
                   "any dates; ask me again if you want me to look." if cut else ""))

    return StrictFakeChatModel([
        AIMessage("Kyoto is loveliest in spring and in autumn, when the temples are framed "
                  "by blossom or by red maples. Let me check this year's festivals.",
                  tool_calls=[{"name": "search_festivals", "args": {"city": "Kyoto",
                                                                     "year": 2025},
                               "id": "call_festivals"}]),
        short_answer,
    ], token_delay=delay)


# -- the channel -------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def backend(ably_local: bool, channel: str | None
                  ) -> AsyncIterator[tuple[str, str, Callable[[str], Channel]]]:
    """Yields (description, channel name, ``open(client_id) -> Channel``)."""
    key = os.environ.get("ABLY_API_KEY")
    if not ably_local and not key:
        broker = InMemoryBroker()
        name = channel or SESSION
        yield "embedded broker", name, lambda client_id: broker.channel(name, client_id=client_id)
        return
    from langgraph_interrupt.channels import AblyChannel  # imports the ably SDK

    name = channel or f"{SESSION}-{uuid.uuid4().hex[:8]}"  # a fresh channel: empty history
    opened: list[AblyChannel] = []

    def open_with(options: Callable[[str], dict[str, Any]]) -> Callable[[str], Channel]:
        def open_(client_id: str) -> Channel:
            opened.append(AblyChannel.from_options(name, **options(client_id)))
            return opened[-1]
        return open_

    async with contextlib.AsyncExitStack() as stack:
        if ably_local:
            from langgraph_interrupt.testing.ably_broker import AblyBroker

            local = await stack.enter_async_context(AblyBroker())
            description = f"offline Ably broker on {local.http_url}, real ably-python SDK"
            yield description, name, open_with(local.python_client_options)
        else:
            yield "Ably (ABLY_API_KEY)", name, open_with(
                lambda client_id: {"key": key, "client_id": client_id})
        for opened_channel in opened:
            await opened_channel.close()


# -- the story -----------------------------------------------------------------------------------
def sources_seen(client: ClientSession) -> int:
    """The last search progress the client was told about."""
    seen = [p["data"]["source"] for m in client.messages for p in m["parts"]
            if p["type"] == "data-search-progress"]
    return max(seen, default=0)


def show_thread(messages: list[BaseMessage]) -> None:
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
            calls = ", ".join(f"{c['name']} [{c['id']}]" for c in m.tool_calls)
            print(f"  ai     {shorten(m.text)} -> calls {calls}")
        elif isinstance(m, ToolMessage):
            print(f"  tool   [{m.tool_call_id}] ({m.status}) {shorten(m.text)}")
        else:
            print(f"  {m.type:<6} {shorten(m.text)}")


def shorten(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


async def converse(open_channel: Callable[[str], Channel], name: str, graph: Any,
                   stop_after: int) -> None:
    async with ClientSession(open_channel("user-1")) as client, \
            AgentSession(open_channel("agent")) as agent:
        transcript = Transcript(client, progress={
            "search-progress": ("search_festivals sources", lambda data: data["source"])})
        client.on_message(transcript)

        # Turn 1. The agent side is what your endpoint does with the invocation the client
        # POSTs: run_graph reads the new message from the channel and streams the graph.
        handle = await client.send(QUESTION)
        serving = asyncio.create_task(run_graph(graph, agent.create_run(handle.invocation)))
        await client.wait_for(lambda c: sources_seen(c) >= stop_after or serving.done())
        if serving.done():  # a real model may answer without the tool
            transcript.note("the run ended before Stop")
        else:
            transcript.note("Stop pressed")
            await handle.cancel(reason="user_clicked_stop")  # the Stop button
        outcome = await serving
        info = await handle.wait_ended(timeout=10)
        latency = info.cancel_latency
        transcript.line(f"\nRun ended: {info.status}" + (
            f", {latency * 1000:.0f} ms after Stop (reason {info.cancel_reason})"
            if latency is not None else "") + ".")
        # A sync tool runs on a worker thread, which no asyncio cancel reaches: it polls.
        if await asyncio.to_thread(Tool.saw_stop.wait, 2):
            print(f"search_festivals saw the abort signal after {Tool.searched} of "
                  f"{SOURCES} sources and stopped searching.")

        # The thread the next turn starts from: the runner repaired the checkpoint.
        state = await graph.aget_state({"configurable": {"thread_id": name}})
        messages = state.values["messages"]
        repair = outcome.repair
        if repair is not None and repair.changed:
            kept = ", ".join(repair.completed_calls)
            cancelled = ", ".join(repair.cancelled_calls)
            print("\nThe thread, repaired (" + "; ".join(
                part for part in (kept and f"the tool's own answer kept: {kept}",
                                  cancelled and f"cancelled calls answered: {cancelled}")
                if part) + "):")
        else:
            print("\nThe thread (nothing to repair):")
        show_thread(messages)
        print(f"find_history_errors(thread) == {find_history_errors(messages)}\n")

        # Turn 2: the next message on the same thread is answered.
        again = await client.send(FOLLOW_UP)
        await run_graph(graph, agent.create_run(again.invocation))
        info = await again.wait_ended(timeout=30)
        transcript.line(f"\nNext message: {info.status}.")


async def main(stop_after: int, delay: float, *, ably_local: bool = False,
               channel: str | None = None) -> None:
    Tool.source_delay = delay * 6
    model = chat_model(fake_model(delay))
    graph = build_agent(model)
    async with backend(ably_local, channel) as (description, name, open_channel):
        print(f"langgraph_interrupt demo: a LangGraph agent, model {type(model).__name__}; "
              f"{description}, channel {name!r}\n")
        await converse(open_channel, name, graph, stop_after)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-after", type=int, default=4, metavar="N",
                        help="press Stop once the tool has searched N sources")
    parser.add_argument("--delay", type=float, default=0.04,
                        help="seconds per model token (a tool source takes 6 times as long)")
    parser.add_argument("--ably-local", action="store_true",
                        help="run over the offline Ably broker with the real SDK")
    parser.add_argument("--channel", help="channel name (default: a fresh one on Ably)")
    args = parser.parse_args()
    asyncio.run(main(args.stop_after, args.delay, ably_local=args.ably_local,
                     channel=args.channel))

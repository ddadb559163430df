"""Cancellable nodes and tools: Stop mid-tool, and the thread is still valid afterwards.

The graph is an agent with two tools the model calls in parallel:

* ``crawl_site``, a slow *sync* tool (it runs on a worker thread, where no asyncio cancel can
  reach it) that polls ``get_abort_signal()`` between pages and returns what it has;
* ``send_report``, which has a side effect and is still *pending* when Stop is pressed.

``CancellableToolNode`` replaces LangGraph's ``ToolNode``: a call that has not started when
the run is cancelled is never executed and is answered with a ``ToolMessage`` marked
cancelled; a running tool sees the signal; completed calls are never executed twice.
``@cancellable`` makes a node skip once the run is cancelled (no model call starts after
Stop). The runner, ``run_graph``, streams everything to the client, stops the graph when the
client presses Stop, repairs the checkpoint and only then ends the run ``cancelled``.

Here the runner uses ``cancel_mode="drain"``: the step that is running finishes (the crawl
stops early and keeps its partial result, the pending call is skipped), then the graph stops.
With the default ``"immediate"`` the graph stops at once and the runner's repair answers
what was left (see examples/interruption.ipynb). A second message on the same thread then
gets a valid answer from a model that rejects broken histories the way providers do.

Offline by default (the embedded broker and scripted fake models). If OPENAI_API_KEY is set
and langchain-openai is installed, a real OpenAI model answers instead (likewise
ANTHROPIC_API_KEY + langchain-anthropic); OPENAI_MODEL / ANTHROPIC_MODEL pick the model.

    python examples/cancellable_nodes.py [--stop-at-page N] [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from _models import chat_model
from _transcript import Transcript
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import (
    CancellableToolNode,
    cancellable,
    get_abort_signal,
    is_cancelled_tool_message,
    run_graph,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors

SESSION = "ai:crawler"  # with a checkpointer, the thread id defaults to the session name
PAGES = 200
QUESTION = (f"Crawl https://docs.example.com ({PAGES} pages) and email a summary to "
            "me@example.com.")
FOLLOW_UP = "What did you manage to do?"




# -- the tools ---------------------------------------------------------------------------------
@dataclass
class Effects:
    """What the tools really did, to compare with what the client was told."""

    page_delay: float = 0.03
    pages: int = 0
    noticed_stop_at: float | None = None
    emails_sent: list[str] = field(default_factory=list)


EFFECTS = Effects()


@tool
def crawl_site(url: str, pages: int) -> str:
    """Crawl a website, page by page, and return notes about it."""
    signal = get_abort_signal()  # the run's abort signal, even on this worker thread
    for page in range(1, pages + 1):
        if signal.aborted:
            EFFECTS.noticed_stop_at = time.perf_counter()
            return f"Stopped after {page - 1} of {pages} pages of {url}: the user pressed Stop."
        time.sleep(EFFECTS.page_delay)  # one page of work
        EFFECTS.pages = page
        dispatch_custom_event("crawl-progress", {"page": page, "of": pages})  # a data part
    return f"Crawled all {pages} pages of {url}."


@tool
def send_report(to: str) -> str:
    """Email the crawl summary."""
    EFFECTS.emails_sent.append(to)
    return f"Report sent to {to}."


TOOLS = [crawl_site, send_report]


# -- the graph -------------------------------------------------------------------------------
def build_graph(model: BaseChatModel) -> Any:
    bound = model.bind_tools(TOOLS)

    @cancellable  # once the run is cancelled, no new model call starts
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> Any:
        """One tools task per call (as langchain's create_agent does)."""
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return [Send("tools", [call]) for call in last.tool_calls]
        return END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", CancellableToolNode(TOOLS))  # instead of ToolNode(TOOLS)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def fake_model(delay: float) -> StrictFakeChatModel:
    """Scripted replies; strict: a history with an unanswered tool call is refused (HTTP 400)."""
    def recap(messages: list[BaseMessage]) -> str:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        done = " ".join(f"{m.name} said: {m.text}" for m in results
                        if not is_cancelled_tool_message(m))
        skipped = ", ".join(str(m.name) for m in results if is_cancelled_tool_message(m))
        return (f"You stopped me mid-task. {done} I never ran {skipped or 'nothing'}, so no "
                "email went out. Shall I pick the crawl up where it stopped?")

    return StrictFakeChatModel([
        AIMessage("I'll crawl the site and email you the summary.", tool_calls=[
            {"name": "crawl_site", "args": {"url": "https://docs.example.com", "pages": PAGES},
             "id": "call_crawl"},
            {"name": "send_report", "args": {"to": "me@example.com"}, "id": "call_report"}]),
        recap,
    ], token_delay=delay)


def pages_seen(client: ClientSession) -> int:
    """The last crawl page the client was told about."""
    pages = [p["data"]["page"] for m in client.messages for p in m["parts"]
             if p["type"] == "data-crawl-progress"]
    return max(pages, default=0)


def show_checkpoint(messages: list[BaseMessage]) -> None:
    for m in messages:
        if isinstance(m, ToolMessage):
            mark = "cancelled" if is_cancelled_tool_message(m) else m.status
            print(f"  tool   [{m.tool_call_id}] ({mark}) {m.text}")
        elif isinstance(m, AIMessage) and m.tool_calls:
            calls = ", ".join(f"{c['name']} [{c['id']}]" for c in m.tool_calls)
            print(f"  ai     {m.text}  -> calls {calls}")
        else:
            print(f"  {m.type:<6} {m.text}")


async def main(stop_at_page: int, delay: float) -> None:
    EFFECTS.page_delay = delay
    model = chat_model(fake_model(delay / 4))
    graph = build_graph(model)
    print(f"model: {type(model).__name__}; embedded broker, channel {SESSION!r}\n")
    broker = InMemoryBroker()
    async with ClientSession(broker.channel(SESSION, client_id="user-1")) as client, \
            AgentSession(broker.channel(SESSION, client_id="agent")) as session:
        transcript = Transcript(client, progress={
            "crawl-progress": ("crawl_site pages", lambda data: data["page"])})
        client.on_message(transcript)

        # Turn 1: Stop while the crawl runs. The agent side is what your endpoint does with
        # the invocation the client POSTs; run_graph builds the input from the channel.
        # max_concurrency=1: LangGraph runs one task at a time, so send_report waits its turn.
        handle = await client.send(QUESTION)
        serving = asyncio.create_task(run_graph(
            graph, session.create_run(handle.invocation), cancel_mode="drain",
            config={"max_concurrency": 1}))
        await client.wait_for(lambda c: pages_seen(c) >= stop_at_page or serving.done())
        transcript.note("Stop pressed")
        stopped_at = time.perf_counter()
        await handle.cancel()
        outcome = await serving
        info = await handle.wait_ended(timeout=10)

        how = "the running step finished, then the graph stopped" if outcome.drained else \
            "the graph stopped at once"
        transcript.line(f"\nRun ended: {info.status} ({how}).")
        print("What the tools really did:")
        if EFFECTS.noticed_stop_at is not None:
            print(f"  crawl_site noticed the Stop at its next page, "
                  f"{(EFFECTS.noticed_stop_at - stopped_at) * 1000:.0f} ms after it was "
                  f"pressed, and returned after {EFFECTS.pages} pages")
        print(f"  send_report ran {len(EFFECTS.emails_sent)} times"
              f"{': no email was sent' if not EFFECTS.emails_sent else ''}")
        parts = [p for p in client.messages[-1]["parts"] if p["type"].startswith("tool-")]
        cancelled = [p["type"][5:] for p in parts if p["state"] == "output-error"]
        print(f"  the client shows these tool calls cancelled: {', '.join(cancelled)}")

        config = {"configurable": {"thread_id": SESSION}}
        messages = (await graph.aget_state(config)).values["messages"]
        repair = outcome.repair
        wrote = ("nothing to write, the tool node answered every call"
                 if repair is None or not repair.changed else
                 f"answered {repair.cancelled_calls} cancelled, kept {repair.completed_calls}, "
                 f"saved {len(repair.partial_messages)} partial answers")
        print(f"\nThe checkpoint of thread {SESSION!r} after the run (repair: {wrote}):")
        show_checkpoint(messages)
        print(f"find_history_errors(checkpoint) == {find_history_errors(messages)}\n")

        # Turn 2: a new message on the same thread. A strict provider accepts the history.
        again = await client.send(FOLLOW_UP)
        await run_graph(graph, session.create_run(again.invocation))
        info = await again.wait_ended(timeout=30)
        transcript.line(f"\nSecond turn: {info.status}.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-at-page", type=int, default=5, metavar="N",
                        help="press Stop once the client has seen page N of the crawl")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds per crawled page")
    args = parser.parse_args()
    asyncio.run(main(args.stop_at_page, args.delay))

"""The LangGraph agent the Node interop scenarios of ``scenarios_langgraph.mjs`` drive.

A compiled graph (agent node + ``CancellableToolNode``, one tools task per call, with a
checkpointer, so the session is the thread) that ``create_agent_app`` runs with
``run_graph``. The model is the strict scripted fake: it answers by the last user message
and refuses a history a provider would refuse, so "the next turn gets a valid answer" is
checked by the model itself. Tools:

* ``get_weather``: a fast server tool.
* ``crawl_site``: a long tool; it reports progress as a data part, then waits for the run's
  abort signal (the only way it ends), and returns what it did.
* ``send_report``: a side effect, called alongside the crawl; with ``max_concurrency=1`` it
  is still pending when Stop is pressed, so it must never run.
* ``ask_user``: human in the loop, ``interrupt()`` with a question; the client's tool result
  (an object) is the answer, and the tool returns it as it came.
* ``long_job``: a slow tool for the multitask and steering scenarios
  (``scenarios_multitask.mjs``, ``scenarios_graph_steering.mjs``): it reports that it runs
  as a data part, then runs until the scenario releases it (``POST /test/release``,
  :data:`RELEASE_ROUTE`) or the run is cancelled.
* ``VALUE_TOOLS``: server tools returning each kind of value (a list, a number, a bool,
  ``None``, a pydantic model, JSON-looking text, content blocks), for the wire's fidelity.

Steering (``scenarios_graph_steering.mjs``): the model answers user messages that follow
tool results it has not answered yet (a steer taken in after the tools) by appending them to
its answer (:func:`steered_answer`), so the client's text shows what the model saw. "Tell me
a story" streams a story that holds after :data:`HOLD_AFTER` until the thread is released,
like the long job (:class:`HoldingChatModel`). The release can wait until the thread's run
received a number of steers (:func:`on_steer`, pass it in ``session_options``): a scenario
releases only once the agent has its steer, so the steer never races the release. "Narrate
the reindex" calls the long job, held the same way while the model streams the text
before the call.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import adispatch_custom_event
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send, interrupt
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from langgraph_interrupt.integration import (
    CancellableToolNode,
    cancellable,
    get_abort_signal,
    is_cancelled_tool_message,
)
from langgraph_interrupt.server import AgentRequest, default_graph_config
from langgraph_interrupt.testing import StrictFakeChatModel
from langgraph_interrupt.transport import Run, Steer

GREETING = "Hello from the graph!"


@dataclass
class Effects:
    """What the tools really did, by thread (the session name), for the pytest side."""

    crawl_saw_cancel: dict[str, bool] = field(default_factory=dict)
    reports_sent: dict[str, list[str]] = field(default_factory=dict)


EFFECTS = Effects()


@tool
async def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "forecast": "sunny", "celsius": 21}


def thread_of(config: RunnableConfig) -> str:
    return str(config.get("configurable", {}).get("thread_id"))


@tool
async def crawl_site(url: str, config: RunnableConfig) -> str:
    """Crawl a website and return notes about it."""
    signal = get_abort_signal()
    await adispatch_custom_event("crawl-progress", {"url": url, "page": 1})
    await signal.wait()  # a real crawl would poll between pages; this one only stops
    EFFECTS.crawl_saw_cancel[thread_of(config)] = True
    return f"Stopped after 1 page of {url}: the user pressed Stop."


@tool
def send_report(to: str, config: RunnableConfig) -> str:
    """Email the crawl summary."""
    EFFECTS.reports_sent.setdefault(thread_of(config), []).append(to)
    return f"Report sent to {to}."


@tool
def ask_user(question: str) -> Any:
    """Ask the user a question and wait for the answer."""
    return interrupt({"question": question})


#: LangGraph thread (the session name, unique to one server) -> set when the scenario says
#: that thread's long job may finish: the test's stand-in for "the job is done now".
RELEASES: dict[str, asyncio.Event] = {}


@tool
async def long_job(name: str, config: RunnableConfig) -> str:
    """Run a long job."""
    released = RELEASES.setdefault(thread_of(config), asyncio.Event())
    await adispatch_custom_event("job-progress", {"job": name, "state": "running"})
    done = asyncio.ensure_future(released.wait())
    stopped = asyncio.ensure_future(get_abort_signal().wait())
    try:
        await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        done.cancel()
        stopped.cancel()
    return f"Job {name} finished." if released.is_set() else f"Job {name} stopped."


#: LangGraph thread (session name) -> the steers its runs received (``on_steer``), in order.
STEERS: dict[str, list[Steer]] = {}
_STEERED: dict[str, asyncio.Event] = {}


def on_steer(run: Run, steer: Steer) -> None:
    """The session's steer hint: it fires once the steer is in the run (pending)."""
    thread = run.invocation.session_name
    STEERS.setdefault(thread, []).append(steer)
    _STEERED.setdefault(thread, asyncio.Event()).set()


async def release(request: Request) -> JSONResponse:
    """``POST {"thread", "steers"?}``: the long job (or the held story) of that thread
    (session) finishes now; with ``steers``, once the thread's runs received that many
    steers (so a steer the client published is in the run before the job ends)."""
    body = await request.json()
    thread, steers = body["thread"], int(body.get("steers", 0))
    async with asyncio.timeout(10):  # a steer that never arrives fails the scenario
        while len(STEERS.get(thread, ())) < steers:
            event = _STEERED.setdefault(thread, asyncio.Event())
            event.clear()
            await event.wait()
    RELEASES.setdefault(thread, asyncio.Event()).set()
    return JSONResponse({"released": thread, "steers": len(STEERS.get(thread, ()))})


RELEASE_ROUTE = Route("/test/release", release, methods=["POST"])


class Reading(BaseModel):
    station: str
    day: datetime.date


#: tool name -> what it returns; the client's part must show VALUES_SHOWN[name].
VALUES: dict[str, Any] = {
    "list_rows": [{"id": 1}, {"id": 2}],
    "count_rows": 2,
    "is_open": False,
    "nothing": None,
    "reading": Reading(station="ZRH", day=datetime.date(2024, 1, 2)),
    "raw_json": json.dumps({"a": 1}),
    "blocks": [{"type": "text", "text": "a content block"}],
}
VALUES_SHOWN: dict[str, Any] = {**VALUES, "reading": {"station": "ZRH", "day": "2024-01-02"}}


def _value_tool(name: str) -> Any:
    def run() -> Any:
        return VALUES[name]

    run.__name__, run.__doc__ = name, f"Returns {name}."
    return tool(run)


VALUE_TOOLS = [_value_tool(name) for name in VALUES]
TOOLS = [get_weather, crawl_site, send_report, ask_user, long_job, *VALUE_TOOLS]


def answer_of(message: ToolMessage) -> Any:
    """The user's answer as the model reads it: ToolNode's JSON text of the client's object."""
    try:
        return json.loads(message.text)
    except ValueError:
        return message.text


#: "Tell me a story": streamed word by word, held after HOLD_AFTER until the release.
STORY = "Once upon a time there was a job that took all night, and in the morning it was done."
HOLD_AFTER = "Once upon"


def steered_answer(messages: list[BaseMessage]) -> str | None:
    """The answer to user messages that come right after tool results the model has not
    answered yet, none of them cancelled (a turn after a cancel follows cancelled
    results): steers taken in after the tools. The reply to the tools, then what the user
    added, so the text shows the model saw it there. ``None`` for any other prompt."""
    tail = len(messages)
    while tail and isinstance(messages[tail - 1], HumanMessage):
        tail -= 1
    results = tail
    while results and isinstance(messages[results - 1], ToolMessage):
        results -= 1
    tools = messages[results:tail]
    if tail == len(messages) or not tools or any(map(is_cancelled_tool_message, tools)):
        return None
    reply = respond(messages[:tail])
    if not isinstance(reply, str):
        return None
    added = " | ".join(m.text for m in messages[tail:])
    return f"{reply} You also asked, while it ran: {added}."


def respond(messages: list[BaseMessage]) -> AIMessage | str:
    """The scripted model: a reply chosen by the last user message and what followed it."""
    steered = steered_answer(messages)
    if steered is not None:
        return steered
    human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    asked = messages[human].text.lower()
    results = [m for m in messages[human:] if isinstance(m, ToolMessage)]
    if "weather" in asked:
        if not results:
            return AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"},
                                              "id": "call_weather"}])
        return "It is sunny and 21°C in Paris."
    if "crawl" in asked:
        if not results:
            return AIMessage("I'll crawl the docs, then email you.", tool_calls=[
                {"name": "crawl_site", "args": {"url": f"https://docs.example.com/{human}"},
                 "id": f"call_crawl_{human}"},
                {"name": "send_report", "args": {"to": "me@example.com"},
                 "id": f"call_report_{human}"}])
        return "Done."
    if "table" in asked:
        if not results:
            return AIMessage("", tool_calls=[{"name": "ask_user",
                                              "args": {"question": "What time?"},
                                              "id": "call_ask"}])
        return f"Booked a table for {answer_of(results[-1])['time']}."
    if "values" in asked:
        if not results:
            return AIMessage("", tool_calls=[{"name": name, "args": {}, "id": f"call_{name}"}
                                             for name in VALUES])
        return f"Got {len(results)} values."
    if "long job" in asked:
        if not results:
            return AIMessage("Starting the job.", tool_calls=[
                {"name": "long_job", "args": {"name": "reindex"}, "id": f"call_job_{human}"}])
        return "The job is over."
    if "what happened" in asked:
        return what_happened(messages[:human])
    if "narrate" in asked:  # a long job whose call streams after text that holds
        if not results:
            return AIMessage(f"{HOLD_AFTER} a time, I started the job.", tool_calls=[
                {"name": "long_job", "args": {"name": "narrated"}, "id": f"call_story_{human}"}])
        return "The narrated job is over."
    if "story" in asked:
        return STORY
    if "make it short" in asked:
        return f"In short: {STORY.split(',')[0]}, done."
    if "what did you do" in asked:
        cancelled = [str(m.name) for m in messages if isinstance(m, ToolMessage)
                     and is_cancelled_tool_message(m)]
        return f"I stopped when you asked. Not done: {', '.join(cancelled) or 'nothing'}."
    return GREETING


def what_happened(earlier: list[BaseMessage]) -> str:
    """The model's account of the history it was given: the user's requests and the long
    jobs' results (so a client's text shows what the model saw)."""
    asks = [m.text for m in earlier if isinstance(m, HumanMessage)]
    jobs = ["cancelled" if is_cancelled_tool_message(m) else m.text for m in earlier
            if isinstance(m, ToolMessage) and m.name == "long_job"]
    return f"You asked: {' | '.join(asks) or 'nothing'}. Jobs: {' | '.join(jobs) or 'none'}."


#: LangGraph thread (session name) -> every prompt the model was given there, in order.
PROMPTS: dict[str, list[list[BaseMessage]]] = {}


class HoldingChatModel(StrictFakeChatModel):
    """The strict scripted model, recording each thread's prompts (:data:`PROMPTS`); a
    reply that starts with :data:`HOLD_AFTER` stops streaming after it until its thread is
    released (:data:`RELEASES`) or the run is cancelled, so a client can act while the
    model streams its answer."""

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: Any = None, **kwargs: Any) -> Any:
        thread = thread_of(ensure_config())
        PROMPTS.setdefault(thread, []).append(list(messages))
        text = ""
        held = False
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk
            content = chunk.message.content
            text += content if isinstance(content, str) else ""
            if not held and text == HOLD_AFTER:
                held = True
                await self._hold(thread)

    @staticmethod
    async def _hold(thread: str) -> None:
        released = asyncio.ensure_future(RELEASES.setdefault(thread, asyncio.Event()).wait())
        stopped = asyncio.ensure_future(get_abort_signal().wait())
        try:
            await asyncio.wait({released, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            released.cancel()
            stopped.cancel()


def build_graph() -> Any:
    model = HoldingChatModel(responder=respond).bind_tools(TOOLS)

    @cancellable
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> Any:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return [Send("tools", [call]) for call in last.tool_calls]
        return END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", CancellableToolNode(TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def one_task_at_a_time(request: AgentRequest) -> dict[str, Any]:
    """The endpoint's graph config, plus ``max_concurrency=1``: the tools of one step run
    one after the other, so a second call is still pending while the first one runs."""
    return {**default_graph_config(request), "max_concurrency": 1}

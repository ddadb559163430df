"""Barge-in: a voice user talks over a LangGraph agent that is busy with a slow tool.

The same stream of simulated speech (voice activity edges and interim/final transcripts)
arrives three times, each time at an agent with another multitask strategy:

* ``interrupt``: the client's ``BargeIn`` helper ignores a cough (speech shorter than
  0.5 s) and a one-word interim transcript ("actually": ``min_words=2``), then cancels the
  answer at the first interim transcript of two words or more (reason ``user_speaking``);
  the final transcript starts a new run, which the agent answers. The barge-in latency is
  printed: speech start → cancel sent → the old run's end seen, and the agent's own
  timeline of the interruption.
* ``enqueue``: no barge-in; the new input waits until the first answer is complete.
* ``reject``: no barge-in; the new input is refused while the agent is busy, and every
  device sees why (``ai-run-end{error}``, code 40900).

Each time the LangGraph thread stays valid for a model that refuses broken histories.
Offline by default (the embedded broker, a scripted fake model); with OPENAI_API_KEY and
langchain-openai installed a real OpenAI model answers (likewise ANTHROPIC_API_KEY with
langchain-anthropic).

    python examples/barge_in.py [--strategy interrupt enqueue reject]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _models import chat_model
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from langgraph_interrupt import (
    AgentSession,
    BargeIn,
    BargeInCancel,
    ClientSession,
    InMemoryBroker,
    Interruption,
    Run,
    RunRejectedError,
    SendHandle,
)
from langgraph_interrupt.integration import CancellableToolNode, get_abort_signal, run_graph
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors

SESSION = "ai:voice"
FIRST = "Find me a flight to Lisbon on Friday."
SECOND = "Actually, make it Porto."
# (seconds after the first answer started, what the microphone / STT reports)
SPEECH = [
    (0.30, "speech_started", None),   # a cough ...
    (0.45, "speech_stopped", None),   # ... too short: withdrawn
    (0.80, "speech_started", None),   # the user talks over the agent
    (1.00, "interim", "actually"),
    (1.20, "interim", "actually make it"),
    (1.60, "speech_stopped", None),
    (1.65, "final", SECOND),          # the whole utterance: a new input
]




@tool
async def search_flights(city: str) -> str:
    """Search flights to a city (slow: it polls the airlines)."""
    signal = get_abort_signal()
    for _ in range(40):  # 1.2 s of polling, unless the run is cancelled
        if signal.aborted:
            return f"Search for {city} stopped."
        await asyncio.sleep(0.03)
    return f"3 flights to {city} on Friday, the cheapest at 7:05 for 89 EUR."


def fake_model() -> StrictFakeChatModel:
    """Answers whatever the last human message asked, with the tool first."""
    def reply(messages: list[BaseMessage]) -> AIMessage | str:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return f"Here you go: {last.text} Shall I book it?"
        asked = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        city = "Porto" if "Porto" in asked else "Lisbon"
        return AIMessage(f"Let me look up flights to {city}.", tool_calls=[
            {"name": "search_flights", "args": {"city": city}, "id": f"call_{len(messages)}"}])

    return StrictFakeChatModel(responder=reply, token_delay=0.02)


def build_graph(model: BaseChatModel) -> Any:
    bound = model.bind_tools([search_flights])

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", CancellableToolNode([search_flights]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


class Clock:
    def __init__(self) -> None:
        self.zero = time.perf_counter()

    def say(self, who: str, text: str) -> None:
        print(f"  [{time.perf_counter() - self.zero:5.2f}s] {who:<8} {text}", flush=True)


async def scenario(strategy: str, model: BaseChatModel) -> None:
    print(f"\n== multitask={strategy} " + "=" * (60 - len(strategy)))
    clock = Clock()
    broker = InMemoryBroker()
    graph = build_graph(model)

    def interrupted(run: Run, timeline: Interruption) -> None:
        clock.say("agent", f"interruption of {run.run_id[:8]}: received → aborted "
                  f"{timeline.received_to_aborted} ms → stopped {timeline.aborted_to_stopped}"
                  f" ms → ended {timeline.stopped_to_published} ms")

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), multitask=strategy,
                         on_interrupted=interrupted)
    user = ClientSession(broker.channel(SESSION, client_id="user-1"))
    await agent.connect()
    await user.connect()
    answers: list[asyncio.Task[Any]] = []

    async def serve(handle: SendHandle) -> None:
        """What the HTTP endpoint does with a POST: admit the run, then run the graph."""
        run = agent.create_run(handle.invocation)
        try:
            await run.admit()
        except RunRejectedError as exc:
            clock.say("agent", f"refused: {exc.message} ({exc.code})")
            return
        answers.append(asyncio.create_task(run_graph(graph, run)))

    async def say(text: str) -> SendHandle:
        clock.say("user", repr(text))
        handle = await user.send(text)
        await serve(handle)
        return handle

    first = await say(FIRST)
    await first.wait_started()
    clock.say("agent", "answering (model, then a slow flight search)")

    def stopped(cancel: BargeInCancel) -> None:
        clock.say("barge-in", f"cancelled {len(cancel.run_ids)} run(s), reason "
                  f"{cancel.reason}, {cancel.latency:.2f} s after the user began speaking")

    barge_in = BargeIn(user, min_words=2, on_interrupt=stopped) \
        if strategy == "interrupt" else None
    started = time.perf_counter()
    second: SendHandle | None = None
    for at, event, text in SPEECH:
        await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
        if event in ("speech_started", "speech_stopped"):
            clock.say("mic", event.replace("_", " "))
            if barge_in is not None:
                getattr(barge_in, event)()
        elif event == "interim":
            clock.say("stt", f"… {text}")
            if barge_in is not None:
                barge_in.transcript(text or "")
        else:
            if barge_in is not None:
                barge_in.transcript(text or "", final=True)
            second = await say(text or "")
    if barge_in is not None:
        await barge_in.aclose()

    for handle in (first, second):
        assert handle is not None
        info = await handle.wait_ended(timeout=10)
        words = ""
        if info.status == "cancelled":
            words = f": {info.cancel_reason} (by {info.cancelled_by})"
            if info.cancel_latency is not None:
                words += f", cancel sent → run end seen {info.cancel_latency * 1000:.1f} ms"
        elif info.status == "error":
            words = f": {info.error_code} {info.error_message}"
        clock.say("client", f"{'first' if handle is first else 'second'} run {info.status}"
                  f"{words}")
    await asyncio.gather(*answers)
    assistant = [m for m in user.messages if m["role"] == "assistant"]
    last = " ".join(p.get("text", "") for p in assistant[-1]["parts"] if p["type"] == "text")
    clock.say("client", f"last answer: {last!r}")
    state = await graph.aget_state({"configurable": {"thread_id": SESSION}})
    problems = find_history_errors(state.values["messages"])
    clock.say("thread", "valid for the next turn" if not problems else f"broken: {problems}")
    await user.close()
    await agent.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", nargs="+", default=["interrupt", "enqueue", "reject"],
                        choices=["interrupt", "rollback", "enqueue", "reject"])
    args = parser.parse_args()
    for strategy in args.strategy:
        await scenario(strategy, chat_model(fake_model()))


if __name__ == "__main__":
    asyncio.run(main())

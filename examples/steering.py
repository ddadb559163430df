"""Steering: the user adds to their request while a LangGraph agent is still working on it.

The agent searches restaurants with a slow tool. While the search runs, the user steers:
"also, vegan options please". The steer reaches the graph as soon as the search is done
(never between the model's tool call and its result), the next model call sees it, and the
answer reflects it; the client reads its steer's outcome: ``consumed``. Then the user asks
for a long description, interrupts it, and asks the agent to go on: the agent picks up where
it was cut off ("as I was saying…") instead of starting over.

The official JS client steers the same way (``ClientRun.steer``): see docs/steering.md.

Offline by default (the embedded broker, a scripted fake model); with OPENAI_API_KEY and
langchain-openai installed a real OpenAI model answers (likewise ANTHROPIC_API_KEY with
langchain-anthropic).

    python examples/steering.py
"""

from __future__ import annotations

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

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker, Run
from langgraph_interrupt.integration import (
    RESUME_MARK,
    CancellableToolNode,
    get_abort_signal,
    run_graph,
)
from langgraph_interrupt.testing import StrictFakeChatModel, find_history_errors

SESSION = "ai:dinner"




@tool
async def search_restaurants(area: str) -> str:
    """Search restaurants in an area (slow: it asks several sites)."""
    signal = get_abort_signal()
    for _ in range(20):  # 0.6 s
        if signal.aborted:
            return "search stopped"
        await asyncio.sleep(0.03)
    return f"In {area}: Tasca do Chico (fado, grilled fish), Ao 26 (vegan), Prado (seasonal)."


def fake_model() -> StrictFakeChatModel:
    """Reads what it was given, as a real model would, in a few scripted ways."""
    def reply(messages: list[BaseMessage]) -> AIMessage | str:
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        last = messages[-1]
        if last.additional_kwargs.get(RESUME_MARK):
            return "and the tram back up the hill is the best part of the evening."
        if isinstance(last, HumanMessage) and "describe" in last.text.lower():
            return ("Alfama is the oldest quarter of Lisbon: steep lanes, laundry across "
                    "the alleys, fado drifting out of tiny taverns, " * 3)
        if not any(isinstance(m, ToolMessage) for m in messages):
            return AIMessage("Let me search.", tool_calls=[
                {"name": "search_restaurants", "args": {"area": "Alfama"}, "id": "call_1"}])
        wants_vegan = any("vegan" in m.text for m in humans)
        return ("Try Ao 26: it is fully vegan." if wants_vegan
                else "Try Tasca do Chico for fado and grilled fish.")

    return StrictFakeChatModel(responder=reply, token_delay=0.01)


def build_graph(model: BaseChatModel) -> Any:
    bound = model.bind_tools([search_restaurants])

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", CancellableToolNode([search_restaurants]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def say(who: str, text: str, zero: float = time.perf_counter()) -> None:
    print(f"  [{time.perf_counter() - zero:5.2f}s] {who:<7} {text}", flush=True)


def searching(user: ClientSession) -> bool:
    return any(part.get("type") == "tool-search_restaurants" and
               part.get("state") == "input-available"
               for message in user.messages for part in message["parts"])


def last_answer(user: ClientSession) -> str:
    assistant = [m for m in user.messages if m["role"] == "assistant"][-1]
    return " ".join(p["text"] for p in assistant["parts"] if p["type"] == "text")


async def main() -> None:
    broker = InMemoryBroker()
    graph = build_graph(chat_model(fake_model()))

    def steered(run: Run, steer: Any) -> None:
        say("agent", f"a steer arrived from {steer.client_id}; the graph takes it in at its "
                     "next step boundary")

    agent = AgentSession(broker.channel(SESSION, client_id="agent"), on_steer=steered)
    user = ClientSession(broker.channel(SESSION, client_id="user-1"))
    await agent.connect()
    await user.connect()

    print("\n== steering a running agent " + "=" * 40)
    say("user", "'Find me a restaurant in Alfama tonight.'")
    ask = await user.send("Find me a restaurant in Alfama tonight.")
    answering = asyncio.create_task(run_graph(graph, agent.create_run(ask.invocation)))
    run_id = (await ask.wait_started()).run_id
    await user.wait_for(searching)  # the user sees the search running
    say("user", "(while the search runs) 'also, vegan options please'")
    steer = await user.steer(run_id, "also, vegan options please")
    await answering
    outcome = await steer.outcome()
    say("client", f"steer outcome: consumed={outcome.consumed} (run {outcome.run_end_reason})")
    say("client", f"answer: {last_answer(user)!r}")

    print("\n== interrupted, then resumed " + "=" * 40)
    say("user", "'Describe Alfama for me.'")
    describe = await user.send("Describe Alfama for me.")
    run = agent.create_run(describe.invocation)
    describing = asyncio.create_task(run_graph(graph, run))
    await user.wait_for(lambda _: run.progress.tokens >= 12)
    await describe.cancel(reason="user_speaking")
    await describing
    say("client", f"cut off after: {last_answer(user)[-40:]!r}")
    say("user", "'sorry, go on'")
    go_on = await user.send("sorry, go on")
    await run_graph(graph, agent.create_run(go_on.invocation), resume_interrupted=True)
    say("client", f"resumed: {last_answer(user)!r}")

    state = await graph.aget_state({"configurable": {"thread_id": SESSION}})
    problems = find_history_errors(state.values["messages"])
    say("thread", "valid for the next turn" if not problems else f"broken: {problems}")
    await user.close()
    await agent.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Completed tool calls of a suspended step are in the checkpoint: a resume in another
"process" (a fresh graph and a fresh ``CompletedCalls``) does not run them again.

Postgres with two workers: ``tests/postgres``; here the in-memory checkpointer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from langgraph_interrupt.integration import CancellableToolNode, CompletedCalls
from langgraph_interrupt.integration._durable_calls import CHANNEL


def _graph(saver: InMemorySaver, calls: list[dict[str, Any]], ran: list[str],
           charged: asyncio.Event | None = None) -> Any:
    charged = charged or asyncio.Event()

    @tool
    async def charge_card(amount: int) -> str:
        """Charge the card."""
        ran.append("charge")
        charged.set()
        return f"charged {amount}"

    @tool
    async def ship(address: str) -> str:
        """Ship after a human confirms (asks once the card is charged)."""
        ran.append("ship")
        await charged.wait()
        return f"shipped: {interrupt({'confirm': address})}"

    def model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("Ordering.", id="ai-1", tool_calls=calls)]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", CancellableToolNode([charge_card, ship],
                                                  completed_calls=CompletedCalls()))
    builder.add_edge(START, "model")
    builder.add_edge("model", "tools")
    return builder.compile(checkpointer=saver)


PAY = {"name": "charge_card", "args": {"amount": 5}, "id": "call_pay"}
SHIP = {"name": "ship", "args": {"address": "Main St"}, "id": "call_ship"}
CONFIG = {"configurable": {"thread_id": "t1"}}


async def test_a_resume_in_a_fresh_process_returns_the_completed_call() -> None:
    saver, ran = InMemorySaver(), []
    first = await _graph(saver, [PAY, SHIP], ran).ainvoke(
        {"messages": [HumanMessage("order")]}, CONFIG)
    assert "__interrupt__" in first and sorted(ran) == ["charge", "ship"]

    resumed = asyncio.Event()
    resumed.set()  # the card is charged already: ship asks at once
    result = await _graph(saver, [PAY, SHIP], ran, resumed).ainvoke(Command(resume="yes"),
                                                                    CONFIG)

    assert sorted(ran) == ["charge", "ship", "ship"]  # the card was charged once
    answers = {m.tool_call_id: m.content for m in result["messages"] if m.type == "tool"}
    assert answers == {"call_pay": "charged 5", "call_ship": "shipped: yes"}


async def test_a_step_of_one_call_writes_nothing_extra() -> None:
    saver, ran = InMemorySaver(), []
    await _graph(saver, [PAY], ran).ainvoke({"messages": [HumanMessage("pay")]}, CONFIG)
    writes = [w for key, w in saver.writes.items() for w in w.values()]
    assert ran == ["charge"]
    assert not any(CHANNEL in str(w) for w in writes)

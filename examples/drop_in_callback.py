"""Drop-in: stream an existing LangGraph agent to a client by adding one line.

`build_agent` below is an ordinary LangGraph app (a model node, a tool node, a loop); nothing
in it knows about langgraph_interrupt. Serving it on a session channel takes one line,

    config={"callbacks": [RunCallbackHandler(run)]}

and its output (text deltas, tool calls, tool results, one step per model call) reaches the
channel as it is generated, whatever way the app runs the graph (`ainvoke` here).

A Python `ClientSession` sends a message on the embedded broker and prints the conversation
as it folds: the streamed text, each tool call, and the run's status. With `--stop-after N`
it presses Stop once the answer has N words: generation stops at the next token, even in
drop-in mode.

Offline by default (the embedded broker and a scripted fake model). If OPENAI_API_KEY is
set and langchain-openai is installed, a real OpenAI model answers instead (likewise
ANTHROPIC_API_KEY + langchain-anthropic); OPENAI_MODEL / ANTHROPIC_MODEL pick the model.

    python examples/drop_in_callback.py [--stop-after N] [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from _models import chat_model
from _transcript import Transcript
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
from langgraph_interrupt.integration import RunCallbackHandler
from langgraph_interrupt.testing import FakeStreamingChatModel

SESSION = "ai:weather"
QUESTION = "What's the weather in Paris? Should I walk along the Seine this afternoon?"




# -- the existing app: plain LangGraph --------------------------------------------------------
@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"18°C, light breeze and sunny in {city}"


def build_agent(model: BaseChatModel) -> Any:
    bound = model.bind_tools([get_weather])

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", call_model)
    builder.add_node("tools", ToolNode([get_weather]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def fake_model(delay: float) -> FakeStreamingChatModel:
    """What the scripted model answers: a tool call, then an answer built from its result."""
    def answer(messages: list[Any]) -> str:
        return (f"It is {messages[-1].content} right now. A fine afternoon for a walk along "
                "the Seine: start at the Pont Neuf, cross to the Île Saint-Louis for an ice "
                "cream, and follow the quays east until the light turns golden.")

    return FakeStreamingChatModel([
        AIMessage("Let me check the weather in Paris.", tool_calls=[
            {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_weather"}]),
        answer,
    ], token_delay=delay)


def words_of_answer(client: ClientSession) -> int:
    """Words of the answer so far: the assistant's text after its last tool result."""
    if not client.messages or client.messages[-1]["role"] != "assistant":
        return 0
    parts = client.messages[-1]["parts"]
    results = [i for i, p in enumerate(parts) if p.get("state") == "output-available"]
    if not results:
        return 0
    return sum(len(p.get("text", "").split()) for p in parts[results[-1] + 1:]
               if p["type"] == "text")


async def main(stop_after: int | None, delay: float) -> None:
    model = chat_model(fake_model(delay))
    graph = build_agent(model)
    print(f"model: {type(model).__name__}; embedded broker, channel {SESSION!r}\n")
    broker = InMemoryBroker()
    async with ClientSession(broker.channel(SESSION, client_id="user-1")) as client, \
            AgentSession(broker.channel(SESSION, client_id="agent")) as session:
        transcript = Transcript(client)
        client.on_message(transcript)
        handle = await client.send(QUESTION)

        # The agent side: what your endpoint does with the invocation the client POSTs.
        async def serve() -> None:
            async with session.create_run(handle.invocation) as run:
                await graph.ainvoke({"messages": [("user", QUESTION)]},
                                    config={"callbacks": [RunCallbackHandler(run)]})

        serving = asyncio.create_task(serve())
        if stop_after is not None:
            await client.wait_for(lambda c: words_of_answer(c) >= stop_after or serving.done())
            transcript.note("Stop pressed")
            await handle.cancel()
        info = await handle.wait_ended(timeout=30)
        await serving

    transcript.line("")
    print(f"Run ended: {info.status}.")
    if info.status == "cancelled":
        print(f"The answer stopped at {words_of_answer(client)} words: "
              "generation stopped at the next token.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="press Stop once the answer has N words")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds per fake token")
    args = parser.parse_args()
    asyncio.run(main(args.stop_after, args.delay))

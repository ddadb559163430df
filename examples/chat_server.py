"""Browser chat: a LangGraph agent with a slow tool, its web page, and an offline Ably broker.

``bash scripts/chat.sh`` sets everything up and runs this file. One process serves:

* the offline Ably broker (``langgraph_interrupt.testing.ably_broker``) on a free loopback
  port: the browser's realtime connection and the agent's both go to it;
* the agent endpoint, ``create_agent_app(graph)`` at ``POST /api/chat``: each message the
  page sends becomes a run of the LangGraph graph below (``run_graph``), streamed to the
  session's channel; Stop cancels it;
* what the page needs besides: ``GET /api/config`` (where the broker is, which channel
  namespace) and ``GET /api/auth/token`` (the browser's Ably token: never the key);
* the page itself (``web/chat``, built into ``web/chat/dist`` by ``scripts/build_chat.sh``).

The graph is plain LangGraph: a model node and a ``ToolNode`` with one slow tool,
``search_web``, that looks at its sources one at a time, reports progress, and stops early
when it sees the run's abort signal. Offline, a scripted model (strict: it refuses a broken
history, as providers do) answers every message by calling the tool, then streams an answer
from what it found: a few seconds per answer, time enough to press Stop. A message containing
``/error`` makes it fail after the tool, to show an errored answer. With OPENAI_API_KEY or
ANTHROPIC_API_KEY (and the provider's langchain package) a real model answers instead.

    python examples/chat_server.py [--port 8000] [--pace 1.0]

It prints the page's URL with a fresh ``?session=``; open the same URL in a second tab to
watch (and stop) the same conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from _models import chat_model
from ably import AblyRealtime
from langchain_core.callbacks import adispatch_custom_event
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from langgraph_interrupt import CancelRequest
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.integration import get_abort_signal
from langgraph_interrupt.server import create_agent_app
from langgraph_interrupt.testing import StrictFakeChatModel
from langgraph_interrupt.testing.ably_broker import AblyBroker

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "web" / "chat" / "dist"
#: Every conversation is a channel ``ai:chat-<session>``; ``<session>`` is the page's
#: ``?session=`` (the page checks the same pattern).
CHANNEL_PREFIX = "ai:chat-"
SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Who the browser is. A real app takes this from its own login; here every browser is
#: the same user, so any of their tabs may stop any of their runs (``owner_only``).
USER = "web-user"
SOURCES = 10


# -- the agent: plain LangGraph ------------------------------------------------------------------
class Pace:
    """Seconds per model token and per tool source (``--pace`` scales both)."""

    token = 0.05
    source = 0.3


@tool
async def search_web(query: str) -> str:
    """Search the web for a query (slow: one source at a time)."""
    signal = get_abort_signal()  # the run's abort signal: Stop was pressed when it is set
    for source in range(1, SOURCES + 1):
        await adispatch_custom_event("search-progress", {"source": source, "of": SOURCES})
        try:
            await asyncio.wait_for(signal.wait(), Pace.source)  # one source, or Stop
        except TimeoutError:
            continue
        return f"Search for {query!r} stopped early (Stop was pressed): partial results only."
    return f"{SOURCES} sources on {query!r}: all agree it depends, and say why."


def build_graph(model: BaseChatModel) -> Any:
    bound = model.bind_tools([search_web])

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", call_model)
    builder.add_node("tools", ToolNode([search_web]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


class ScriptedModelError(RuntimeError):
    """What the scripted model raises for a message containing ``/error``."""


def scripted_reply(messages: list[BaseMessage]) -> AIMessage | str:
    """The offline model: a new question calls ``search_web``; a tool result is answered."""
    question = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    topic = " ".join(question.split())[:60] or "that"
    last = messages[-1]
    if not isinstance(last, ToolMessage):
        return AIMessage(
            f"Good question. Let me search the web for “{topic}” before I answer.",
            tool_calls=[{"name": "search_web", "args": {"query": topic},
                         "id": f"call_{secrets.token_hex(6)}"}])
    if "/error" in question:
        raise ScriptedModelError("the scripted model failed on purpose (the message "
                                 "contained /error)")
    return (f"I looked at what the search found: {last.text} This is the scripted offline "
            "model, so take it as a demo, not advice; set OPENAI_API_KEY or "
            "ANTHROPIC_API_KEY for a real answer. Ask another question, or press Stop while "
            "the search runs next time.")


def fake_model() -> StrictFakeChatModel:
    return StrictFakeChatModel(responder=scripted_reply, token_delay=Pace.token)


def owner_only(request: CancelRequest) -> bool:
    """Stop is accepted from the user who started the run, on any of their tabs."""
    return request.client_id == request.run.run_client_id


# -- the web server --------------------------------------------------------------------------------
def build_app(graph: Any, broker: AblyBroker, ably: AblyRealtime) -> Starlette:
    """The agent endpoint plus the page, its configuration and its token endpoint."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # every run has ended on the channel: the agent's connection goes last
            await ably.close()

    app = create_agent_app(
        graph,
        channel_factory=lambda name: AblyChannel(ably, name),
        allow_session=lambda name: (name.startswith(CHANNEL_PREFIX)
                                    and SESSION.fullmatch(name[len(CHANNEL_PREFIX):]) is not None),
        on_cancel=owner_only,
        lifespan=lifespan,
    )

    async def config(request: Request) -> JSONResponse:
        """Where the page's Ably client connects (the broker), without any credentials."""
        options = broker.js_client_options()
        options.pop("key")
        return JSONResponse({"ably": options, "channelPrefix": CHANNEL_PREFIX,
                             "authPath": "/api/auth/token", "agentPath": "/api/chat"})

    async def token(request: Request) -> JSONResponse:
        """The browser's Ably token (ably-js ``authUrl``): a TokenDetails for this user."""
        return JSONResponse(broker.issue_token(USER))

    async def page(request: Request) -> Response:
        return FileResponse(DIST / "index.html", headers={"Cache-Control": "no-cache"})

    app.add_route("/api/config", config, methods=["GET"])
    app.add_route("/api/auth/token", token, methods=["GET"])
    app.add_route("/", page, methods=["GET"])
    app.mount("/assets", StaticFiles(directory=DIST / "assets"), name="assets")
    return app


def page_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/?session={secrets.token_hex(4)}"


async def serve(port: int, model: BaseChatModel) -> None:
    """Run the broker, the agent endpoint and the page until SIGINT or SIGTERM."""
    graph = build_graph(model)
    async with AblyBroker() as broker:
        ably = AblyRealtime(**broker.python_client_options(client_id="agent"))
        app = build_app(graph, broker, ably)
        listener = socket.create_server(("127.0.0.1", port))
        bound = listener.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
        print(f"langgraph_interrupt chat: a LangGraph agent, model {type(model).__name__}; "
              f"offline Ably broker on {broker.http_url}\n", flush=True)
        print(f"Open {page_url(bound)}", flush=True)
        print("(the same URL in a second tab shows the same conversation, live; "
              "Ctrl-C stops)", flush=True)
        # On Ctrl-C or SIGTERM uvicorn shuts down gracefully (open runs end cancelled), then
        # raises the signal again for the handler it found: a no-op, so that the broker stops
        # too and the process exits normally.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
        try:
            await server.serve(sockets=[listener])
        finally:
            listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000,
                        help="the page's port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--pace", type=float, default=1.0,
                        help="scale the scripted model's token delay and the tool's speed")
    args = parser.parse_args()
    if not (DIST / "index.html").is_file():
        sys.exit(f"{DIST / 'index.html'} is missing: run `bash scripts/build_chat.sh` "
                 "(or `bash scripts/chat.sh`, which builds it)")
    if args.pace <= 0:
        parser.error("--pace must be positive")
    Pace.token *= args.pace
    Pace.source *= args.pace
    asyncio.run(serve(args.port, chat_model(fake_model())))


if __name__ == "__main__":
    main()

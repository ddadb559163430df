"""This package's agent for ``bench/network.py``, run as a child process.

    .venv/bin/python bench/network_agent.py --ably-port PORT --key KEY [--multitask interrupt]
        [--loop auto|asyncio|uvloop]

Serves ``create_agent_app(agent, channel_factory=...)`` under uvicorn on 127.0.0.1 (any free
port) with ``AblyChannel`` on one ably-python connection, as ``tests/js/harness.py`` does for
the interop tests. The Ably options point at ``--ably-port``: ``bench/network.py`` passes
its delaying proxy there, so the agent's realtime websocket and its REST requests both cross
the delayed link. ``--multitask`` is the endpoint's multitask strategy (default
``concurrent``, passed to ``create_agent_app`` only when another one is asked for, so that
``bench/network.py --agent-ref`` still runs commits from before the strategies);
``bench/bargein.py`` runs one child with ``interrupt`` and one with ``concurrent``. Prints one
JSON line ``{"port": N, "package": DIR, "multitask": S}`` (``package``: where
``langgraph_interrupt`` was imported from) once the HTTP socket listens, then serves until
SIGTERM or SIGINT (then every open run ends ``cancelled``, as at any shutdown). The event
loop is uvicorn's choice, as the ``uvicorn`` command makes it (``--loop auto``: uvloop when
installed, which ``uvicorn[standard]`` and this package's dev extra do); the JSON line names
it (``"loop"``).

The agent is a plain async ``(run, request)`` function (no LangGraph, so no graph cost is
measured) that streams a scripted answer chosen by the POST body, the same script the
official JS agent (``tests/js/bench/agent.mjs``) streams:
``{"tokens": N, "intervalMs": M}`` gives ``start``, ``start-step``, ``text-start``, then
``N`` text deltas of :data:`TOKEN` with ``M`` ms of sleep between two deltas (none before the
first), then ``text-end``, ``finish-step``, ``finish``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from ably import AblyRealtime
from starlette.applications import Starlette

import langgraph_interrupt
from langgraph_interrupt import Run
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.server import AgentRequest, create_agent_app
from langgraph_interrupt.testing.ably_broker._client_options import python_client_options

TOKEN = "tok "  # what both agents stream, 4 characters a token
MAX_TOKENS = 100_000
# create_agent_app's multitask strategies (langgraph_interrupt.transport._multitask), spelled
# out so that --help works on a commit from before them
MULTITASK = ("concurrent", "interrupt", "rollback", "enqueue", "reject")


def script_of(extra: Any) -> tuple[int, float]:
    """``(tokens, interval in seconds)`` from the POST body, bounded."""
    tokens = int(extra.get("tokens", 10))
    interval_ms = float(extra.get("intervalMs", 0))
    return max(0, min(tokens, MAX_TOKENS)), max(0.0, min(interval_ms, 10_000.0)) / 1000.0


async def answer(tokens: int, interval: float) -> AsyncIterator[dict[str, Any]]:
    """The scripted model: a one-step text answer, ``interval`` seconds between deltas."""
    yield {"type": "start"}
    yield {"type": "start-step"}
    yield {"type": "text-start", "id": "t0"}
    for index in range(tokens):
        if index and interval:
            await asyncio.sleep(interval)
        yield {"type": "text-delta", "id": "t0", "delta": TOKEN}
    yield {"type": "text-end", "id": "t0"}
    yield {"type": "finish-step"}
    yield {"type": "finish", "finishReason": "stop"}


async def agent(run: Run, request: AgentRequest) -> None:
    """One agent for every scenario: the body's script, piped; the run ends as it ended."""
    tokens, interval = script_of(request.extra)
    await run.start()
    result = await run.pipe(answer(tokens, interval))
    await run.end(result)


async def serve(ably_port: int, key: str, multitask: str = "concurrent") -> None:
    options = python_client_options("127.0.0.1", ably_port, key=key, client_id="py-agent")
    ably = AblyRealtime(**options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # after every run ended: the agent's connection goes last
            await ably.close()

    strategy = {} if multitask == "concurrent" else {"multitask": multitask}
    app = create_agent_app(agent, channel_factory=lambda name: AblyChannel(ably, name),
                           allow_session=lambda name: name.startswith("ai:"),
                           lifespan=lifespan, **strategy)
    # proto=IPPROTO_TCP, as uvicorn binds its own sockets: asyncio turns Nagle off only on
    # sockets whose proto says TCP, and socket.create_server's (and every socket accepted
    # from it) says 0. Without it an answer that uvicorn writes in two segments (head, then
    # body) waits for the client's delayed ACK, 40 ms on Linux, whenever a POST follows
    # another exchange on the connection closely (a barge-in, bench/bargein.py).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    print(json.dumps({"port": listener.getsockname()[1],
                      "package": os.path.dirname(langgraph_interrupt.__file__),
                      "multitask": multitask,
                      "loop": type(loop).__module__.split(".")[0]}), flush=True)
    try:
        await server.serve(sockets=[listener])
    finally:
        listener.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ably-port", type=int, required=True,
                        help="where the agent's Ably client connects (the delaying proxy)")
    parser.add_argument("--key", required=True, help="the broker's API key")
    parser.add_argument("--multitask", choices=MULTITASK, default="concurrent",
                        help="the endpoint's multitask strategy: what a new input does while "
                        "a run of its session streams (default concurrent)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="the event loop, as uvicorn's --loop: auto (the default) is uvloop "
                        "when it is installed, as with uvicorn[standard] in production")
    args = parser.parse_args(argv)
    loop_factory = uvicorn.Config(app=None, loop=args.loop).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.ably_port, args.key, args.multitask))
    return 0


if __name__ == "__main__":
    sys.exit(main())

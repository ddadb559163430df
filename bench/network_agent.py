"""This package's agent for ``bench/network.py``, run as a child process.

    .venv/bin/python bench/network_agent.py --ably-port PORT --key KEY [--multitask interrupt]
        [--loop auto|asyncio|uvloop] [--prewarm]

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
it (``"loop"``). ``--prewarm`` turns on the endpoint's ``prewarm`` (a session opens when
a client opens its channel, from ``[meta]channel.lifecycle``); the agent then serves only the
conversations the benchmark names for it (``-python-`` in the name), so that it does not
attach to the JS agent's.

Every answer says how long the agent took for it, ``Server-Timing: app;dur=<ms>`` (from
the ASGI call to the answer's head: :class:`ServerTiming`), as the JS agent does; the driver
reports it next to the POST's round trip, which at 0 ms delay is mostly the client's.

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
import time
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


class ServerTiming:
    """ASGI middleware: a ``Server-Timing: app;dur=<ms>`` header on every HTTP answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", []),
                           (b"server-timing", f"app;dur={took:.3f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)


async def serve(ably_port: int, key: str, multitask: str = "concurrent",
                prewarm: bool = False) -> None:
    options = python_client_options("127.0.0.1", ably_port, key=key, client_id="py-agent")
    ably = AblyRealtime(**options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:  # after every run ended: the agent's connection goes last
            await ably.close()

    options: dict[str, Any] = {} if multitask == "concurrent" else {"multitask": multitask}
    if prewarm:  # only when asked: commits from before it run too (--agent-ref)
        options["prewarm"] = True

    def allow(name: str) -> bool:
        return name.startswith("ai:") and (not prewarm or "-python-" in name)

    app = create_agent_app(agent, channel_factory=lambda name: AblyChannel(ably, name),
                           allow_session=allow, lifespan=lifespan, **options)
    # proto=IPPROTO_TCP, as uvicorn binds its own sockets: asyncio turns Nagle off only on
    # sockets whose proto says TCP, and socket.create_server's (and every socket accepted
    # from it) says 0. Without it an answer that uvicorn writes in two segments (head, then
    # body) waits for the client's delayed ACK, 40 ms on Linux, whenever a POST follows
    # another exchange on the connection closely (a barge-in, bench/bargein.py).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    server = uvicorn.Server(uvicorn.Config(ServerTiming(app), lifespan="on",
                                           log_level="warning"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    print(json.dumps({"port": listener.getsockname()[1],
                      "package": os.path.dirname(langgraph_interrupt.__file__),
                      "multitask": multitask, "prewarm": prewarm,
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
    parser.add_argument("--prewarm", action="store_true",
                        help="open a session when a client opens its channel (the endpoint's "
                        "prewarm), before its first POST")
    args = parser.parse_args(argv)
    loop_factory = uvicorn.Config(app=None, loop=args.loop).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.ably_port, args.key, args.multitask, args.prewarm))
    return 0


if __name__ == "__main__":
    sys.exit(main())

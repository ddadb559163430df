"""One agent worker process, as a deployment runs several: for ``tests/workers/`` and
``bench/workers.py``.

    python tests/workers/worker_app.py --broker 127.0.0.1:PORT --pg CONNINFO \
        [--port 0] [--name a] [--control ai-workers] [--agent graph|pipe]

uvicorn serves ``create_agent_app(..., channel_factory=lambda n: AblyChannel(ably, n),
workers=<control>, drain_timeout=...)``: one ably-python connection (client id ``"agent"``,
the same for every worker) to the offline broker, and a LangGraph graph compiled with
``AsyncPostgresSaver`` on a connection pool opened in the lifespan (``docs/postgres.md``).
Once it serves, the process prints one JSON line on stdout, ``{"ready": true, "name",
"port", "worker_id", "pid"}``, and after a clean shutdown (SIGTERM: its runs ended, it left
the others, its connections closed) ``{"stopped": true, "name"}``; nothing else goes there
(uvicorn logs go to stderr). uvicorn re-raises the SIGTERM once it has shut down, so the
exit status after a clean SIGTERM is -15.

The graph (``--agent graph``): a model node (the strict fake model, which refuses any
history a provider would refuse) and one ``CancellableToolNode`` task for all the calls of a
step (``max_concurrency=1``: one call after the other, in the model's order). What the model
does is chosen by the last user message:

* ``slow ...``: calls ``slow_job``, which reports a ``data-tick`` part every ``--tick``
  seconds until the run is cancelled (or the worker dies);
* ``hold ...``: calls ``hold``, which waits until ``POST /test/release {"thread"}`` (or a
  cancel), then answers ``Released on worker <name>.``;
* ``order ...``: calls ``charge_card`` (a side effect: each execution is a row of the
  ``tool_effects`` table, with the worker's name) and ``ask`` (``interrupt()``) in one step;
  after the answer: ``Charged 5 and shipped: <answer> (worker <name>).``;
* ``what happened ...``: an account of the tool results it was given (``cancelled`` for a
  cancelled call), so the answer shows the history the model accepted;
* anything else: ``Hello from worker <name>.``

``--agent pipe`` (the benchmark's cheaper agent) pipes text deltas, one every
``--token-interval`` seconds, until the run is cancelled.

Test routes: ``POST /test/release``; ``POST /test/profile`` (cProfile this worker between a
start and a stop, for benchmarks); ``GET /test/state`` (this worker's id, its endpoint's
open runs, and what its ``WorkerRegistry`` knows), with ``?seen=<client id>:<action>`` to
wait until this worker has seen such a presence event on the control channel, and
``?gone=<worker id>`` to wait until it has seen that worker leave (and, if it is first in
line to end that worker's runs, until it has).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from ably import AblyRealtime  # type: ignore[import-untyped]
from langchain_core.callbacks import adispatch_custom_event
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from langgraph_interrupt.channels import AblyChannel, PresenceEvent
from langgraph_interrupt.integration import (
    CancellableToolNode,
    cancellable,
    get_abort_signal,
    is_cancelled_tool_message,
    run_graph,
)
from langgraph_interrupt.server import AgentRequest, create_agent_app, default_graph_config
from langgraph_interrupt.testing import StrictFakeChatModel
from langgraph_interrupt.testing.ably_broker import DEFAULT_KEY
from langgraph_interrupt.testing.ably_broker._client_options import python_client_options
from langgraph_interrupt.transport import Run, WorkerRegistry

#: The table each ``charge_card`` execution adds a row to (the tests count them).
EFFECTS_DDL = """CREATE TABLE IF NOT EXISTS tool_effects (
    id bigserial PRIMARY KEY, thread_id text NOT NULL, call_id text NOT NULL,
    tool text NOT NULL, worker text NOT NULL, at timestamptz NOT NULL DEFAULT now())"""
TEXT_DELTA = {"type": "text-delta", "id": "t0", "delta": "tok "}


class Worker:
    """This process's settings and state (one per process)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.name
        self.tick: float = args.tick
        self.token_interval: float = args.token_interval
        self.pool: AsyncConnectionPool[Any] | None = None
        self.graph: Any = None
        self.releases: dict[str, asyncio.Event] = {}
        self.seen: list[PresenceEvent] = []  # the control channel's presence, as heard here
        self.profile: cProfile.Profile | None = None
        self._changed: set[asyncio.Future[None]] = set()

    def changed(self) -> None:
        for future in self._changed:
            if not future.done():
                future.set_result(None)
        self._changed.clear()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds, checked at every presence event heard."""
        async with asyncio.timeout(timeout):
            while not predicate():
                future = asyncio.get_running_loop().create_future()
                self._changed.add(future)
                await future


WORKER: Worker


class GcPauses:
    """This process's garbage-collector pauses (``gc.callbacks``; CPU time of the thread,
    not inflated by other processes running meanwhile), for ``/test/state``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.longest = 0.0
        self.collections = 0
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.thread_time()
            return
        pause = time.thread_time() - self._began
        self.seconds += pause
        self.longest = max(self.longest, pause)
        self.collections += 1


GC_PAUSES = GcPauses()


def thread_of(config: RunnableConfig) -> str:
    return str(config.get("configurable", {}).get("thread_id"))


# -- tools ----------------------------------------------------------------------------------
@tool
async def slow_job(name: str) -> str:
    """Run a job that takes as long as it is allowed to."""
    signal = get_abort_signal()
    ticks = 0
    while not signal.aborted:
        ticks += 1
        await adispatch_custom_event("tick", {"job": name, "n": ticks, "worker": WORKER.name})
        try:
            await asyncio.wait_for(signal.wait(), WORKER.tick)
        except TimeoutError:
            pass
    return f"Job {name} stopped after {ticks} ticks."


@tool
async def hold(name: str, config: RunnableConfig) -> str:
    """Wait until the job is released."""
    released = WORKER.releases.setdefault(thread_of(config), asyncio.Event())
    await adispatch_custom_event("held", {"job": name, "worker": WORKER.name})
    done = asyncio.ensure_future(released.wait())
    stopped = asyncio.ensure_future(get_abort_signal().wait())
    try:
        await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        done.cancel()
        stopped.cancel()
    return f"Job {name} released." if released.is_set() else f"Job {name} stopped."


@tool
async def charge_card(amount: int, call_id: Annotated[str, InjectedToolCallId],
                      config: RunnableConfig) -> str:
    """Charge the card (a side effect that must never happen twice)."""
    assert WORKER.pool is not None
    async with WORKER.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO tool_effects (thread_id, call_id, tool, worker) "
            "VALUES (%s, %s, %s, %s)", (thread_of(config), call_id, "charge_card", WORKER.name))
    return f"charged {amount}"


@tool
def ask(question: str) -> Any:
    """Ask the user and wait for the answer."""
    return interrupt({"question": question})


TOOLS = [slow_job, hold, charge_card, ask]


# -- the model ------------------------------------------------------------------------------
def respond(messages: list[BaseMessage]) -> AIMessage | str:
    """The scripted model (see the module notes)."""
    human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    asked = messages[human].text.lower()
    results = {str(m.name): m for m in messages[human:] if isinstance(m, ToolMessage)}
    if asked.startswith("slow"):
        if not results:
            return AIMessage("Starting the job.", tool_calls=[
                {"name": "slow_job", "args": {"name": "index"}, "id": f"call_slow_{human}"}])
        return "The job is over."
    if asked.startswith("hold"):
        if not results:
            return AIMessage("Holding.", tool_calls=[
                {"name": "hold", "args": {"name": "batch"}, "id": f"call_hold_{human}"}])
        return f"Released on worker {WORKER.name}."
    if asked.startswith("order"):
        if not results:
            return AIMessage("Ordering.", tool_calls=[
                {"name": "charge_card", "args": {"amount": 5}, "id": "call_pay"},
                {"name": "ask", "args": {"question": "Ship to Main St?"}, "id": "call_ask"}])
        return (f"Charged {results['charge_card'].text.removeprefix('charged ')} and shipped: "
                f"{results['ask'].text} (worker {WORKER.name}).")
    if asked.startswith("what happened"):
        earlier = [f"{m.name} {'cancelled' if is_cancelled_tool_message(m) else m.text}"
                   for m in messages[:human] if isinstance(m, ToolMessage)]
        return f"Before this: {'; '.join(earlier) or 'nothing'} (worker {WORKER.name})."
    return f"Hello from worker {WORKER.name}."


def build_graph(checkpointer: AsyncPostgresSaver) -> Any:
    model = StrictFakeChatModel(responder=respond).bind_tools(TOOLS)

    @cancellable
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", CancellableToolNode(TOOLS, max_concurrency=1))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


# -- agents ---------------------------------------------------------------------------------
async def graph_agent(run: Run, request: AgentRequest) -> object:
    return await run_graph(WORKER.graph, run, config=default_graph_config(request))


async def _deltas() -> AsyncIterator[dict[str, Any]]:
    for chunk in ({"type": "start"}, {"type": "start-step"}, {"type": "text-start", "id": "t0"}):
        yield chunk
    while True:
        yield TEXT_DELTA
        await asyncio.sleep(WORKER.token_interval)


async def pipe_agent(run: Run, request: AgentRequest) -> object:
    async with run:
        return await run.pipe(_deltas())


# -- test routes ----------------------------------------------------------------------------
def _registry(request: Request) -> WorkerRegistry:
    registry = request.app.state.agent_endpoint.workers
    assert isinstance(registry, WorkerRegistry)
    return registry


def _state(request: Request) -> dict[str, Any]:
    endpoint = request.app.state.agent_endpoint
    registry = _registry(request)
    runs_by_worker: dict[str, int] = {}
    for worker, *_ in registry._runs.values():
        runs_by_worker[worker] = runs_by_worker.get(worker, 0) + 1
    open_runs = [run.run_id for session in endpoint.sessions.sessions.values()
                 for run in session.runs]
    return {"name": WORKER.name, "worker_id": registry.worker_id,
            "present": sorted(registry._present), "runs_by_worker": runs_by_worker,
            "orphans_ended": registry.orphans_ended, "tasks": len(registry._tasks),
            "agents_running": len(endpoint.tasks), "open_runs": open_runs,
            "gc": {"seconds": GC_PAUSES.seconds, "longest": GC_PAUSES.longest,
                   "collections": GC_PAUSES.collections, "frozen": gc.get_freeze_count()}}


async def state(request: Request) -> JSONResponse:
    registry = _registry(request)
    timeout = float(request.query_params.get("timeout", "20"))
    seen = request.query_params.get("seen")
    if seen:
        client_id, _, action = seen.rpartition(":")
        await WORKER.until(lambda: any(e.client_id == client_id and e.action == action
                                       for e in WORKER.seen), timeout)
    gone = request.query_params.get("gone")
    first = None
    if gone:
        await WORKER.until(lambda: gone not in registry._present, timeout)
        first = min([registry.worker_id, *registry._present]) == registry.worker_id
        if first and registry._tasks:  # this worker ends the gone worker's runs at once
            await asyncio.wait_for(asyncio.gather(*registry._tasks), timeout)
    return JSONResponse({**_state(request), "first_in_line": first})


async def profile(request: Request) -> JSONResponse:
    """``{"action": "start"}``: cProfile this worker's event loop from now; ``{"action":
    "stop", "top": N}``: stop, and answer the top N functions by own time (benchmarks)."""
    body = await request.json()
    if body["action"] == "start":
        WORKER.profile = cProfile.Profile(time.thread_time)  # CPU, not wall: others run too
        WORKER.profile.enable()
        return JSONResponse({"profiling": True})
    if WORKER.profile is None:
        return JSONResponse({"error": "not profiling"}, status_code=409)
    WORKER.profile.disable()
    out = io.StringIO()
    pstats.Stats(WORKER.profile, stream=out).sort_stats("tottime").print_stats(
        int(body.get("top", 30)))
    WORKER.profile = None
    return JSONResponse({"stats": out.getvalue()})


async def release(request: Request) -> JSONResponse:
    thread = (await request.json())["thread"]
    WORKER.releases.setdefault(thread, asyncio.Event()).set()
    return JSONResponse({"released": thread})


# -- the app --------------------------------------------------------------------------------
def make_app(args: argparse.Namespace) -> Starlette:
    host, _, port = args.broker.rpartition(":")
    options = python_client_options(host, int(port), key=args.key, client_id="agent")
    if args.no_echo:  # Ably's echoMessages=false: a transport parameter for ably-python
        options["transport_params"] = {"echo": "false"}
    clients: list[AblyRealtime] = []

    def channel_factory(name: str) -> AblyChannel:
        return AblyChannel(clients[0], name)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clients.append(AblyRealtime(**options))
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            args.pg, open=False, min_size=1, max_size=args.pool_size,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
        async with pool:
            saver = AsyncPostgresSaver(pool)
            await saver.setup()
            WORKER.pool = pool
            WORKER.graph = build_graph(saver)
            try:
                yield
            finally:  # after every run ended and this worker left the others
                await clients[0].close()
                print(json.dumps({"stopped": True, "name": WORKER.name}), flush=True)

    agent = graph_agent if args.agent == "graph" else pipe_agent
    app = create_agent_app(agent, channel_factory=channel_factory,
                           allow_session=lambda name: name.startswith("ai:"),
                           workers=args.control, drain_timeout=args.drain_timeout,
                           multitask_overrides=("interrupt", "rollback", "enqueue", "reject"),
                           shutdown_timeout=args.shutdown_timeout, lifespan=lifespan)
    app.router.routes.extend([Route("/test/state", state, methods=["GET"]),
                              Route("/test/release", release, methods=["POST"]),
                              Route("/test/profile", profile, methods=["POST"])])
    return app


class ReadyServer(uvicorn.Server):
    """uvicorn, printing the ready line once the app started (the worker joined the others)
    and the socket listens."""

    def __init__(self, config: uvicorn.Config, app: Starlette, port: int,
                 gc_freeze: bool = False) -> None:
        super().__init__(config)
        self.app, self.port, self.gc_freeze = app, port, gc_freeze

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        registry = self.app.state.agent_endpoint.workers
        assert isinstance(registry, WorkerRegistry)

        def heard(event: PresenceEvent) -> None:  # after the registry's own listener
            WORKER.seen.append(event)
            WORKER.changed()

        registry.control.subscribe_presence(heard)
        if self.gc_freeze:  # what was imported and built at startup is never collected
            gc.collect()
            gc.freeze()
        print(json.dumps({"ready": True, "name": WORKER.name, "port": self.port,
                          "worker_id": registry.worker_id, "pid": os.getpid()}), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One agent worker (see the module notes).")
    parser.add_argument("--broker", required=True, help="the offline broker, HOST:PORT")
    parser.add_argument("--key", default=DEFAULT_KEY, help="the broker's API key")
    parser.add_argument("--pg", required=True, help="libpq connection string (checkpoints)")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument("--name", default="worker", help="a name for answers and logs")
    parser.add_argument("--control", default="ai-workers", help="the workers' control channel")
    parser.add_argument("--agent", choices=("graph", "pipe"), default="graph")
    parser.add_argument("--tick", type=float, default=0.05,
                        help="seconds between slow_job's ticks (default 0.05)")
    parser.add_argument("--token-interval", type=float, default=1.0,
                        help="--agent pipe: seconds between text deltas (default 1)")
    parser.add_argument("--drain-timeout", type=float, default=0.5)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument("--pool-size", type=int, default=10, help="Postgres connections")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once started: the garbage collector skips what "
                        "the imports and the app's startup made")
    parser.add_argument("--no-echo", action="store_true",
                        help="connect with echo=false: this worker's own messages are not "
                        "delivered back to it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    global WORKER
    args = parse_args(argv)
    WORKER = Worker(args)
    app = make_app(args)
    listener = socket.create_server(("127.0.0.1", args.port))
    port = listener.getsockname()[1]
    # keep-alive longer than any pause of a client: a connection the server closes while
    # the client reuses it fails the POST (benchmarks keep 100 connections open)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=30,
                            timeout_keep_alive=120)
    server = ReadyServer(config, app, port, gc_freeze=args.gc_freeze)
    try:
        asyncio.run(server.serve(sockets=[listener]))
    finally:
        listener.close()
    sys.exit(0 if server.started else 1)


if __name__ == "__main__":
    main()

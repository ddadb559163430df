"""The agent HTTP endpoint: the POST the JS client sends to wake the agent.

Owns: serving ``POST {"inputEventId", "sessionName", ...extra}`` (§1.2 of the protocol
notes: the Vercel ``ChatTransport`` POSTs it to ``/api/chat`` with
``Content-Type: application/json`` and only checks ``response.ok``), creating the run on
the session's channel, answering at once with ``{"runId", "invocationId"}``, running the
agent in a background task, and shutting down so that every open run ends ``cancelled``
on the wire before the process exits.

The endpoint guarantees that a run it accepted terminates on the wire: an agent that
raises ends its run ``error`` (with ``error-code``/``error-message``), an agent that
returns without ending it has it ended for it, and nothing an agent does can crash the app.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._abort import CancelReason
from .._errors import (
    AITransportError,
    ErrorCode,
    HistoryFetchFailedError,
    InputEventNotFoundError,
    InvalidArgumentError,
    InvalidInvocationError,
    OperationCancelledError,
    RunRejectedError,
    SessionClosedError,
)
from .._wire import LIFECYCLE_CHANNEL
from ..channels import Channel
from ..transport import OnCancel, Run, WorkerRegistry
from ..transport._multitask import MultitaskStrategy, RunGate
from ._prewarm import SessionWarmer
from ._request import AgentRequest, RequestRejected, check_content_type, parse_body, read_body
from ._sessions import ChannelFactory, SessionPolicy, SessionPool

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

__all__ = ["Agent", "AgentEndpoint", "CancelMode", "GraphConfig", "as_agent", "create_agent_app",
           "default_graph_config"]

logger = logging.getLogger("langgraph_interrupt.server")

#: The agent contract: owns the run's whole lifecycle (start, pipe/write, end or suspend).
Agent: TypeAlias = Callable[[Run, AgentRequest], Awaitable[object]]
CancelMode: TypeAlias = Literal["immediate", "drain"]
#: Builds the LangGraph config for a compiled graph from the request.
GraphConfig: TypeAlias = Callable[[AgentRequest], "RunnableConfig"]

# start() failed for one of these reasons: the trigger cannot be reached, so nothing
# can be published for the run and there is no point in trying to start it again.
_START_FAILURES = (InputEventNotFoundError, HistoryFetchFailedError, OperationCancelledError,
                   SessionClosedError, RunRejectedError)
#: The POST body field that asks for another multitask strategy for this one input.
STRATEGY_FIELD = "multitaskStrategy"
# LangGraph config keys a client must not choose: they select whose checkpoints are read.
_RESERVED_CONFIG = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map"})


def default_graph_config(request: AgentRequest) -> RunnableConfig:
    """``{"configurable": {...extra, "thread_id": <session name>}}``.

    The session is the conversation, so it is the checkpointer's thread. Body fields that
    would pick another thread or checkpoint (``thread_id``, ``checkpoint_*``, ``__*``) are
    dropped: the session policy decides which conversations a caller reaches, not the body.
    """
    configurable = {key: value for key, value in request.extra.items()
                    if key not in _RESERVED_CONFIG and not key.startswith("__")}
    configurable["thread_id"] = request.session_name
    return cast("RunnableConfig", {"configurable": configurable})


def as_agent(agent: Agent | Any, *, cancel_mode: CancelMode = "immediate",
             graph_config: GraphConfig | None = None) -> Agent:
    """``agent`` itself, or a compiled LangGraph graph wrapped with ``run_graph``.

    Raises:
        InvalidArgumentError: neither an async callable nor a graph with ``astream``.
    """
    if callable(agent):
        return agent
    if not hasattr(agent, "astream"):
        raise InvalidArgumentError(
            f"agent must be an async callable (run, request) or a compiled LangGraph graph, "
            f"got {type(agent).__name__}")
    graph = agent
    make_config = graph_config or default_graph_config

    async def run_graph_agent(run: Run, request: AgentRequest) -> object:
        # Imported on first use: a callable agent never needs LangGraph imported at all.
        from ..integration import run_graph

        return await run_graph(graph, run, config=make_config(request),
                               cancel_mode=cancel_mode)

    run_graph_agent.__qualname__ = f"run_graph[{type(graph).__name__}]"
    return run_graph_agent


class AgentEndpoint:
    """The endpoint's state: sessions, background runs, and shutdown.

    :func:`create_agent_app` wraps one in a Starlette app; use it directly to mount the
    handler in another ASGI app (then call :meth:`aclose` from that app's lifespan).
    """

    def __init__(self, agent: Agent | Any, *, channel_factory: ChannelFactory,
                 on_cancel: OnCancel | None = None, allow_session: SessionPolicy | None = None,
                 cancel_mode: CancelMode = "immediate", graph_config: GraphConfig | None = None,
                 max_body_bytes: int = 64 * 1024, shutdown_timeout: float = 10.0,
                 session_idle_timeout: float | None = 300.0,
                 session_options: Mapping[str, Any] | None = None,
                 multitask: MultitaskStrategy = "concurrent", max_active_runs: int | None = None,
                 max_queued_runs: int = 16, multitask_overrides: Collection[str] = (),
                 run_timeout: float | None = None, workers: str | WorkerRegistry | None = None,
                 drain_timeout: float = 5.0, prewarm: bool | Channel = False,
                 max_warm_sessions: int = 100) -> None:
        if max_body_bytes <= 0:
            raise InvalidArgumentError("max_body_bytes must be positive")
        if max_warm_sessions < 0:
            raise InvalidArgumentError("max_warm_sessions must not be negative")
        if drain_timeout < 0:
            raise InvalidArgumentError("drain_timeout must not be negative")
        RunGate(multitask, max_active=max_active_runs, max_queued=max_queued_runs,
                overrides=multitask_overrides)  # the arguments fail here, not per session
        self.agent = as_agent(agent, cancel_mode=cancel_mode, graph_config=graph_config)
        options = {"multitask": multitask, "max_active_runs": max_active_runs,
                   "max_queued_runs": max_queued_runs,
                   "multitask_overrides": tuple(multitask_overrides),
                   "run_timeout": run_timeout, **(session_options or {})}
        self.sessions = SessionPool(channel_factory, allow_session=allow_session,
                                    on_cancel=on_cancel, idle_timeout=session_idle_timeout,
                                    session_options=options, max_warm=max_warm_sessions)
        self._max_body = max_body_bytes
        self._shutdown_timeout = shutdown_timeout
        self._drain_timeout = drain_timeout
        self._factory = channel_factory
        self._workers_spec = workers
        self._prewarm = prewarm
        #: This worker's place among the others, once :meth:`start` made it (``workers``).
        self.workers: WorkerRegistry | None = None
        #: Follows the lifecycle channel to open sessions early, once started (``prewarm``).
        self.warmer: SessionWarmer | None = None
        self._starting: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def _needs_start(self) -> bool:
        return ((self._workers_spec is not None and self.workers is None)
                or (self._prewarm is not False and self.warmer is None))

    async def start(self) -> None:
        """Join the other workers (``workers``) and start prewarming (``prewarm``), if
        asked. :func:`create_agent_app` calls it at startup (after your lifespan entered);
        the first request otherwise. Idempotent."""
        if not self._needs_start:
            return
        if self._starting is None or (self._starting.done() and (
                self._starting.cancelled() or self._starting.exception() is not None)):
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        if self._workers_spec is not None and self.workers is None:
            await self._join()
        if self._prewarm is not False and self.warmer is None:
            lifecycle = self._prewarm
            if lifecycle is True:
                try:
                    made = self._factory(LIFECYCLE_CHANNEL)
                    lifecycle = await made if inspect.isawaitable(made) else made
                except Exception as exc:  # requests are served all the same, as before
                    logger.error("prewarm is off: channel_factory(%r) failed: %r",
                                 LIFECYCLE_CHANNEL, exc)
                    self._prewarm = False
                    return
            assert not isinstance(lifecycle, bool)
            warmer = SessionWarmer(lifecycle, self.sessions.warm)
            await warmer.start()  # a failure is logged: requests are served all the same
            self.warmer = warmer

    async def _join(self) -> None:
        spec = self._workers_spec
        if isinstance(spec, str):
            control = self._factory(spec)
            if inspect.isawaitable(control):
                control = await control
            registry = WorkerRegistry(control, self._factory)
        else:
            assert spec is not None
            registry = spec
        await registry.start()
        self.workers = registry
        self.sessions.configure(workers=registry)  # the sessions opened from now on

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        """The background tasks running agents (a copy)."""
        return set(self._tasks)

    async def handle(self, request: Request) -> Response:
        """``POST``: validate, create the run, answer ``{"runId", "invocationId"}``.

        Every refusal (4xx/503, JSON ``{"error": {...}}``) happens before the run exists.
        """
        try:
            if self._closing:
                raise RequestRejected(503, "unable to start run; the agent is shutting down",
                                      code=ErrorCode.SESSION_CLOSED)
            if self._needs_start:
                await self.start()
            check_content_type(request.headers.get("content-type"))
            raw = await read_body(request.stream(), limit=self._max_body,
                                  content_length=request.headers.get("content-length"))
            invocation, extra = parse_body(raw)
            strategy = extra.pop(STRATEGY_FIELD, None)
            name = invocation.session_name
            session = await self.sessions.acquire(name)  # held until the agent returns
            try:
                run = session.create_run(invocation, multitask=strategy)
            except AITransportError as exc:  # closed since we got it, or a bad strategy
                self.sessions.release(name)
                raise _locate_failed(exc) from None
            try:
                # Find the input (live, with a new session's attach, or in history; no
                # timer), so a continuation is answered with the run it resumes and the
                # agent starts without looking again. Worst case: the input is not on the
                # channel, and this waits trigger_timeout for it. Then the multitask
                # strategy decides (a refusal is this answer; a queued run waits later).
                await run.locate()
                await run.admit()
            except AITransportError as exc:
                self.sessions.release(name)
                await run.end()  # never started: forgotten, nothing published
                raise _locate_failed(exc) from None
        except RequestRejected as exc:
            return JSONResponse(exc.body(), status_code=exc.status_code)
        headers = MappingProxyType({name: ", ".join(request.headers.getlist(name))
                                    for name in request.headers})
        self._spawn(run, AgentRequest(invocation, MappingProxyType(extra), headers))
        return JSONResponse({"runId": run.run_id, "invocationId": run.invocation_id})

    def _spawn(self, run: Run, request: AgentRequest) -> None:
        task = asyncio.create_task(self._drive(run, request),
                                   name=f"agent run {run.invocation_id}")
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self.sessions.release(request.session_name)

        task.add_done_callback(done)

    async def _drive(self, run: Run, request: AgentRequest) -> None:
        """Run the agent; whatever it does, the run ends on the wire."""
        try:
            await self.agent(run, request)
        except asyncio.CancelledError:  # shutdown gave up waiting for this agent
            run.cancel(CancelReason("shutdown", "the agent endpoint is shutting down"))
            await self._finish(run, "cancelled", None)
            raise
        except Exception as exc:
            logger.exception("agent failed for run %s (session %r)", run.run_id,
                             request.session_name)
            await self._finish(run, "error", exc)
        else:
            if run.state in ("created", "active"):
                logger.warning("agent returned without ending run %s; ending it", run.run_id)
                await self._finish(run, None, None)

    async def _finish(self, run: Run, reason: Literal["cancelled", "error"] | None,
                      error: Exception | None) -> None:
        if run.state == "created" and not run.cancelled and not isinstance(
                error, _START_FAILURES):
            # The agent stopped before start(): start the run so that the client sees it
            # end (otherwise its send waits for a run that never appears).
            try:
                await run.start()
            except AITransportError as exc:
                logger.warning("run %s: could not start it to end it: %s", run.run_id, exc)
        try:
            await run.end(reason, error=error)  # a run that never started is forgotten
        except Exception as exc:
            logger.error("run %s: could not end it: %r", run.run_id, exc)

    async def aclose(self) -> None:
        """Shut down (SIGTERM under uvicorn): refuse new requests, drain, end, await.

        First every open run is cancelled with reason ``shutdown`` as a *drain*: a graph
        finishes its current step (its output streamed and checkpointed) and stops there,
        within ``drain_timeout`` seconds. Then closing the sessions ends what is still
        open ``cancelled`` (terminal events shielded, bounded by the sessions'
        ``terminal_timeout``; the close by ``shutdown_timeout``); agents see their run
        cancelled and return. Agents still running after ``shutdown_timeout`` are
        cancelled, and waited for once more within the same bound. Last, this worker
        leaves the others (``workers``), with nothing left for them to end. Idempotent.
        """
        if self._closing:
            return
        self._closing = True
        try:
            if self.warmer is not None:
                await self.warmer.close()  # no session opens from here on
            await self._drain()
            await self.sessions.close(timeout=self._shutdown_timeout)
            tasks = set(self._tasks)
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self._shutdown_timeout)
                if pending:
                    logger.error("%d agent(s) still running after shutdown; cancelling them",
                                 len(pending))
                    for task in pending:
                        task.cancel()
                    await asyncio.wait(pending, timeout=self._shutdown_timeout)
        finally:
            if self.workers is not None:
                await self.workers.close()
            elif self._starting is not None:
                self._starting.cancel()

    async def _drain(self) -> None:
        tasks = set(self._tasks)
        if not tasks or not self._drain_timeout:
            return
        reason = CancelReason("shutdown", "the agent is shutting down", drain=True)
        for session in self.sessions.sessions.values():
            for run in session.runs:
                run.cancel(reason)
        _, pending = await asyncio.wait(tasks, timeout=self._drain_timeout)
        if pending:
            logger.warning("%d run(s) still running after the %.1f s drain; stopping them",
                           len(pending), self._drain_timeout)
            stop = CancelReason("shutdown", "the agent is shutting down")
            for session in self.sessions.sessions.values():
                for run in session.runs:
                    run.cancel(stop)  # a drain escalates to a stop


def _locate_failed(exc: AITransportError) -> RequestRejected:
    """The POST's answer when the run's input cannot be found or read."""
    if isinstance(exc, InputEventNotFoundError):
        return RequestRejected(404, exc.message, code=exc.code)
    if isinstance(exc, InvalidArgumentError | InvalidInvocationError):
        return RequestRejected(400, exc.message, code=exc.code)
    if isinstance(exc, RunRejectedError):  # already ended on the wire, with this error
        return RequestRejected(409, exc.message, code=exc.code)
    return RequestRejected(503, exc.message, code=exc.code)  # closed, history, attach


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    body = RequestRejected(status, f"unable to serve {request.method} {request.url.path}; "
                                   f"{detail}", code=status * 100).body()
    return JSONResponse(body, status_code=status)


def create_agent_app(agent: Agent | Any, *, channel_factory: ChannelFactory,
                     on_cancel: OnCancel | None = None,
                     allow_session: SessionPolicy | None = None,
                     cancel_mode: CancelMode = "immediate",
                     graph_config: GraphConfig | None = None, path: str = "/api/chat",
                     max_body_bytes: int = 64 * 1024, shutdown_timeout: float = 10.0,
                     session_idle_timeout: float | None = 300.0,
                     session_options: Mapping[str, Any] | None = None,
                     multitask: MultitaskStrategy = "concurrent",
                     max_active_runs: int | None = None, max_queued_runs: int = 16,
                     multitask_overrides: Collection[str] = (),
                     run_timeout: float | None = None,
                     workers: str | WorkerRegistry | None = None, drain_timeout: float = 5.0,
                     prewarm: bool | Channel = False, max_warm_sessions: int = 100,
                     lifespan: Callable[[Starlette], AbstractAsyncContextManager[Any]]
                     | None = None) -> Starlette:
    """An ASGI app serving the agent endpoint the JS client (and ``useChat``) POSTs to.

    Args:
        agent: ``async (run, request) -> object``, owning the run's lifecycle (start,
            pipe/write, end or suspend); or a compiled LangGraph graph, run with
            ``run_graph`` (config from ``graph_config``, cancel mode ``cancel_mode``).
        channel_factory: ``(session_name) -> Channel`` (sync or async); called once per
            session, whose :class:`~langgraph_interrupt.AgentSession` is then reused.
        on_cancel: cancel authorisation hook for every session (see ``AgentSession``).
        allow_session: which session names are served (predicate, sync or async, or a
            collection); others get 404. ``None``: all.
        cancel_mode: for a graph: ``"immediate"`` interrupts the running step,
            ``"drain"`` lets it finish and stops before the next.
        graph_config: for a graph: ``(AgentRequest) -> config``; default
            :func:`default_graph_config` (extra body fields in ``configurable``, the
            session name as ``thread_id``).
        path: where to serve the POST (the ``ChatTransport`` default is ``/api/chat``).
        max_body_bytes: larger bodies get 413 without being read in full.
        shutdown_timeout: how long shutdown waits for agents after their runs were ended.
        session_idle_timeout: a session without runs for this long is closed (its channel
            detached); the next request opens it again. ``None``: kept until shutdown.
        session_options: more keyword arguments for each ``AgentSession``.
        multitask: what a new input does while a run of its session is active:
            ``concurrent`` (default), ``interrupt``, ``rollback``, ``enqueue`` or
            ``reject`` (answered 409). See ``docs/interruption.md``.
        max_active_runs / max_queued_runs: active runs per session before the strategy
            applies (default 1; no limit for ``concurrent``), inputs waiting to run.
        multitask_overrides: strategies one POST may ask for in its ``multitaskStrategy``
            field (default none: such a POST is answered 400).
        run_timeout: a deadline per run (seconds from its start); past it the run ends
            ``cancelled`` with reason ``timeout``.
        workers: when several workers serve the deployment, the name of the control
            channel they share (made with ``channel_factory``; every worker the same name
            and client id), or your own :class:`~langgraph_interrupt.WorkerRegistry`: the
            others end this worker's runs ``error`` (50300) if it dies, after Ably's
            presence timeout (``docs/deployment.md``).
        drain_timeout: at shutdown (SIGTERM), how long open runs may take to finish their
            current step before they are ended ``cancelled`` (reason ``shutdown``).
        prewarm: open a session as soon as a client opens its channel, from Ably's
            ``[meta]channel.lifecycle`` (``True``: that channel made with
            ``channel_factory``; or your own handle on it), so that the first turn of a
            conversation is answered without a round trip to Ably. Off by default: each
            worker then attaches to every channel clients open (``docs/deployment.md``).
        max_warm_sessions: prewarming keeps at most this many sessions open: it closes the
            one idle the longest to open another, never one in use.
        lifespan: your own lifespan; it is entered first and exited last, after every run
            has ended (close your Ably client there).

    Returns:
        A Starlette app; ``app.state.agent_endpoint`` is its :class:`AgentEndpoint`.

    Example::

        app = create_agent_app(graph, channel_factory=lambda name: make_channel(name))
        # uvicorn module:app
    """
    endpoint = AgentEndpoint(agent, channel_factory=channel_factory, on_cancel=on_cancel,
                             allow_session=allow_session, cancel_mode=cancel_mode,
                             graph_config=graph_config, max_body_bytes=max_body_bytes,
                             shutdown_timeout=shutdown_timeout,
                             session_idle_timeout=session_idle_timeout,
                             session_options=session_options, multitask=multitask,
                             max_active_runs=max_active_runs, max_queued_runs=max_queued_runs,
                             multitask_overrides=multitask_overrides, run_timeout=run_timeout,
                             workers=workers, drain_timeout=drain_timeout, prewarm=prewarm,
                             max_warm_sessions=max_warm_sessions)

    @asynccontextmanager
    async def run_lifespan(app: Starlette) -> AsyncIterator[Any]:
        if lifespan is None:
            try:
                await endpoint.start()
                yield None
            finally:
                await endpoint.aclose()
            return
        async with lifespan(app) as state:
            try:
                await endpoint.start()
                yield state
            finally:
                await endpoint.aclose()

    app = Starlette(routes=[Route(path, endpoint.handle, methods=["POST"])],
                    exception_handlers={HTTPException: _http_error, Exception: _http_error},
                    lifespan=run_lifespan)
    app.state.agent_endpoint = endpoint
    return app

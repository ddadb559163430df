"""The Python side of the Node interop scenarios: broker, agent endpoint, Node runner.

:class:`InteropServer` runs, on one background thread with its own event loop, the offline
Ably broker and the agent endpoint (``create_agent_app`` under a real uvicorn on a loopback
port), the agent talking to the broker through :class:`AblyChannel` on one ably-python
connection, as in production. A background thread keeps the servers independent of the
test's event loop, so one instance serves a whole module.

:func:`run_scenarios` runs a Node script once for many scenarios (they run concurrently,
each on its own session channel) and returns each scenario's JSON report.

Adding scenarios for another agent (the LangGraph ones: a tool call with streamed input and
output, Stop while tools run, an ``interrupt()`` and its continuation): write
``tests/js/<name>.mjs`` importing ``./lib/client.mjs`` (one ``async (channel) => report``
per scenario, then ``await runScenarios(scenarios)``), and a pytest module whose module
fixture starts ``InteropServer(graph, cancel_mode=...)`` (a compiled graph is run with
``run_graph``) and calls ``run_scenarios(server, "<name>.mjs", [...])`` once, as
``test_interop.py`` does. ``scenarios.mjs``'s ``client-tool`` scenario already sends the
continuation an ``interrupt()`` waits for (a tool result naming the suspended run).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import socket
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from ably import AblyRealtime
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.server import create_agent_app
from langgraph_interrupt.testing.ably_broker import AblyBroker

from ..ably_broker.helpers import SETUP_HINT, node_binary

JS_DIR = Path(__file__).resolve().parent
PINNED = {"@ably/ai-transport": "0.8.0", "ai": "7.0.173"}


def check_js_packages() -> None:
    """Fail (not skip) when tests/js's packages are missing or not the pinned versions."""
    for name, version in PINNED.items():
        package = JS_DIR / "node_modules" / name / "package.json"
        found = json.loads(package.read_text()).get("version") if package.is_file() else None
        if found != version:
            pytest.fail(f"tests/js has {name} {found}, expected {version}; {SETUP_HINT}",
                        pytrace=False)


class InteropServer:
    """The broker and the agent endpoint on a background thread (see the module notes).

    Args:
        agent: the endpoint's agent (or graph).
        routes: more routes on the endpoint's app: test controls the Node scenarios call
            (``graph_agent.RELEASE_ROUTE``).
        app_options: more keyword arguments for ``create_agent_app``.
    """

    def __init__(self, agent: Any, *, routes: Sequence[BaseRoute] = (),
                 **app_options: Any) -> None:
        self.agent = agent
        self.routes = list(routes)
        self.app_options = app_options
        self.prefix = f"ai:interop-{uuid.uuid4().hex[:8]}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="interop-server", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._error: BaseException | None = None
        self.broker: AblyBroker | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> InteropServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the interop server did not start")
        if self._error is not None:
            raise RuntimeError("the interop server failed to start") from self._error
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if self._loop is not None and self._server is not None:
            server = self._server
            self._loop.call_soon_threadsafe(setattr, server, "should_exit", True)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the interop server did not stop")
        if self._error is not None:
            raise RuntimeError("the interop server failed") from self._error

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/chat"

    def js_options(self) -> dict[str, Any]:
        """ably-js client options without a client id (each Node client picks its own)."""
        assert self.broker is not None
        options = self.broker.js_client_options("placeholder")
        options.pop("clientId", None)
        return options

    def wire(self, channel: str, event: str) -> list[tuple[str | None, dict[str, str]]]:
        """The ``event`` messages of ``channel`` as the broker stored them: (publisher's
        client id, transport headers), oldest first."""
        broker = self.broker
        assert broker is not None
        stored = self.call(lambda: broker.history(channel))
        return [(m.get("clientId"), m["extras"]["ai"]["transport"])
                for m in stored if m.get("name") == event]

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` (a function or a coroutine function) on the server's loop: thread-safe
        reads of agent, graph and broker state."""
        return self.submit(fn).result(timeout)

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Start ``fn`` on the server's loop without waiting for it: a Python participant
        that acts while the Node scenarios run (see ``call``)."""
        assert self._loop is not None

        async def wrapper() -> Any:
            result = fn()
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()/stop()
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with AblyBroker() as broker:
            self.broker = broker
            ably = AblyRealtime(**broker.python_client_options(client_id="agent"))

            @asynccontextmanager
            async def lifespan(app: Starlette) -> AsyncIterator[None]:
                try:
                    yield
                finally:  # after every run ended: the agent's connection goes last
                    await ably.close()

            options = {"allow_session": lambda name: name.startswith("ai:"),
                       "lifespan": lifespan, **self.app_options}
            app = create_agent_app(self.agent, channel_factory=lambda n: AblyChannel(ably, n),
                                   **options)
            app.router.routes.extend(self.routes)
            listener = socket.create_server(("127.0.0.1", 0))
            self.port = listener.getsockname()[1]
            self._server = uvicorn.Server(uvicorn.Config(app, lifespan="on",
                                                         log_level="warning"))
            self._ready.set()  # the socket listens: connections queue until serve() accepts
            try:
                await self._server.serve(sockets=[listener])
            finally:
                listener.close()


def run_scenarios(server: InteropServer, script: str, scenarios: list[str], *,
                  timeout: float = 60.0, step_timeout: float = 10.0,
                  **config: Any) -> dict[str, dict[str, Any]]:
    """Run ``node tests/js/<script>`` once for ``scenarios``; returns report by scenario.

    The script prints one JSON line per scenario, ``{"scenario", "ok", ...report}`` or
    ``{"scenario", "ok": false, "error"}``; a scenario missing from the output is reported
    with the script's stderr so that its test fails with the reason. ``step_timeout`` is
    how long a scenario waits for any one thing before it reports a hang (scenarios run
    concurrently, so a broken behaviour costs about one step timeout, within the tests'
    timeout); nothing is paced by it.
    """
    check_js_packages()
    payload = {"ably": server.js_options(), "agentUrl": server.agent_url,
               "prefix": server.prefix, "scenarios": scenarios,
               "timeoutMs": int(step_timeout * 1000), **config}
    proc = subprocess.run([node_binary(), str(JS_DIR / script), json.dumps(payload)],
                          cwd=JS_DIR, capture_output=True, text=True, timeout=timeout,
                          check=False)
    reports: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
            reports[report["scenario"]] = report
    for name in scenarios:
        reports.setdefault(name, {"scenario": name, "ok": False,
                                  "error": f"no report (exit {proc.returncode}); stderr:\n"
                                           f"{proc.stderr[-4000:]}"})
    return reports


def report_of(reports: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The report of scenario ``name``, failing the test with its error if it failed."""
    report = reports[name]
    if not report.get("ok"):
        pytest.fail(f"scenario {name} failed in Node: {report.get('error')}", pytrace=False)
    return report

"""The scripted (non-LangGraph) agent the Node interop scenarios drive.

The scenario is chosen by the POST body's ``scenario`` field (the JS side adds it, as a
front end adds fields through ``prepareSendMessagesRequest``). Answers come from a
:class:`GatedTokens` source, which publishes one token per allowance, so "mid-stream" is an
exact point, not a race: a held run streams its first tokens and then waits, and only a
cancel (or the scenario's hook) moves it on. Every run is recorded in :attr:`log` by session
name for the pytest side to assert on after the Node scenarios ran.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph_interrupt import PipeResult, Run
from langgraph_interrupt.server import AgentRequest
from langgraph_interrupt.testing import text_chunks
from langgraph_interrupt.transport import CancelRequest

TEXT = ["Hello", ", ", "world", "!"]
HELD = ["one ", "two ", "three ", "four ", "five ", "six "]
WEATHER_ARGS = ['{"city', '": "Par', 'is"}']
WEATHER = {"city": "Paris", "forecast": "sunny", "celsius": 21}


def tool_call(call_id: str, name: str, pieces: Sequence[str]) -> list[dict[str, Any]]:
    """A tool call whose JSON input streams in ``pieces`` (as a model streams it)."""
    return [
        {"type": "tool-input-start", "toolCallId": call_id, "toolName": name},
        *({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": p}
          for p in pieces),
        {"type": "tool-input-available", "toolCallId": call_id, "toolName": name,
         "input": json.loads("".join(pieces))},
    ]


def server_tool_answer() -> list[dict[str, Any]]:
    """Step 1: the model calls ``get_weather`` (run by the agent); step 2: it answers."""
    return [
        {"type": "start"}, {"type": "start-step"},
        *tool_call("call-1", "get_weather", WEATHER_ARGS),
        {"type": "tool-output-available", "toolCallId": "call-1", "output": WEATHER},
        {"type": "finish-step"}, {"type": "start-step"},
        {"type": "text-start", "id": "txt-1"},
        {"type": "text-delta", "id": "txt-1", "delta": "Sunny, "},
        {"type": "text-delta", "id": "txt-1", "delta": "21°C."},
        {"type": "text-end", "id": "txt-1"},
        {"type": "finish-step"}, {"type": "finish", "finishReason": "stop"},
    ]


def client_tool_request() -> list[dict[str, Any]]:
    """The model asks the client to run ``get_location`` and stops (``tool-calls``)."""
    return [{"type": "start"}, {"type": "start-step"},
            *tool_call("call-loc", "get_location", ["{}"]),
            {"type": "finish-step"}, {"type": "finish", "finishReason": "tool-calls"}]


class GatedTokens:
    """A one-step text answer that yields token ``i`` only once ``i < allowed``.

    Attributes:
        sent: tokens yielded so far. ``finalised``: the source was closed (the "model
        stopped"). ``waiting_at``: the index the source is blocked at, if any.
    """

    def __init__(self, tokens: Sequence[str], *, allowed: int | None = None,
                 fail_at: int | None = None) -> None:
        self.tokens = list(tokens)
        self.allowed = len(self.tokens) if allowed is None else allowed
        self.fail_at = fail_at
        self.sent = 0
        self.waiting_at: int | None = None
        self.finalised = asyncio.Event()
        self._changed = asyncio.Condition()

    async def allow(self, count: int | None = None) -> None:
        """Let the source go on up to ``count`` tokens (all when ``None``)."""
        async with self._changed:
            self.allowed = len(self.tokens) if count is None else count
            self._changed.notify_all()

    async def blocked_at(self, index: int) -> None:
        """Wait until every token before ``index`` was published and the source waits."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.waiting_at == index)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._run()

    async def _run(self) -> AsyncIterator[dict[str, Any]]:
        chunks = text_chunks(self.tokens)
        try:
            for chunk in chunks[:3]:  # start, start-step, text-start
                yield chunk
            for index, token in enumerate(self.tokens):
                async with self._changed:
                    self.waiting_at = index
                    self._changed.notify_all()
                    await self._changed.wait_for(lambda i=index: i < self.allowed)  # type: ignore[misc]
                    self.waiting_at = None
                if index == self.fail_at:
                    raise RuntimeError("model provider exploded (429)")
                self.sent += 1
                yield {"type": "text-delta", "id": "txt-0", "delta": token}
            for chunk in chunks[-3:]:  # text-end, finish-step, finish
                yield chunk
        finally:
            self.finalised.set()


@dataclass
class RunRecord:
    """What the agent saw and did for one run."""

    scenario: str
    extra: dict[str, Any]
    headers: dict[str, str]
    run: Run
    source: GatedTokens | None = None
    result: PipeResult | None = None
    continuation: bool = False
    cancel_requests: list[tuple[str | None, bool]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run.run_id


class ScenarioAgent:
    """``agent(run, request)`` for ``create_agent_app``, plus its ``on_cancel`` hook.

    Scenarios (``request.extra["scenario"]``):

    * ``text``: stream :data:`TEXT` to the end.
    * ``hold``: stream two tokens of :data:`HELD`, then wait for a cancel.
    * ``tail``: like ``hold``; when a cancel arrives the hook lets two more tokens out and
      accepts only after they were published (the "tail" a cancel cannot stop).
    * ``alongside``: like ``hold``, and released to the end once another run of the same
      session ended ``cancelled``.
    * ``owner-only``: like ``hold``; the hook accepts cancels from the run's owner only, and
      a rejected cancel releases the answer (the run goes on streaming to the end).
    * ``error``: two tokens, then the model raises (the run ends ``error``, 104008).
    * ``raise``: the agent itself raises after starting the run.
    * ``tool-call``: a server tool call (streamed input, then its output), then text.
    * ``client-tool``: asks the client to run a tool and suspends; the client's tool result
      (a continuation naming the run) resumes the same run, which then answers.
    """

    def __init__(self) -> None:
        self.log: dict[str, list[RunRecord]] = {}
        self._records: dict[Run, RunRecord] = {}
        # Cancels decided while the endpoint located the run, before the agent was called.
        self._early_requests: dict[Run, list[tuple[str | None, bool]]] = {}
        self._cancelled: dict[str, asyncio.Event] = {}

    async def __call__(self, run: Run, request: AgentRequest) -> None:
        scenario = str(request.extra.get("scenario", "text"))
        record = RunRecord(scenario, dict(request.extra), dict(request.headers), run)
        self.log.setdefault(request.session_name, []).append(record)
        self._records[run] = record
        record.cancel_requests.extend(self._early_requests.pop(run, ()))
        if scenario == "raise":
            await run.start()
            raise RuntimeError("the agent crashed")
        if scenario in ("tool-call", "client-tool"):
            await self._tools(run, record)
            return
        held = scenario in ("hold", "tail", "alongside", "owner-only")
        source = GatedTokens(HELD if held else TEXT, allowed=2 if held else None,
                             fail_at=2 if scenario == "error" else None)
        record.source = source
        releasing = None
        if scenario == "alongside":
            releasing = asyncio.ensure_future(self._release_after_sibling_cancel(
                request.session_name, source))
        try:
            await run.start()
            record.result = await run.pipe(source)
            await run.end(record.result)
        finally:
            if releasing is not None:
                releasing.cancel()
            if run.end_reason == "cancelled":
                self._cancelled_event(request.session_name).set()

    async def _tools(self, run: Run, record: RunRecord) -> None:
        await run.start()
        assert run.trigger is not None
        record.continuation = run.trigger.is_continuation
        if record.scenario == "tool-call":
            chunks = server_tool_answer()
        elif run.trigger.is_continuation:
            chunks = text_chunks(["You are ", "in Paris."])
        else:
            chunks = client_tool_request()
        record.result = await run.pipe(chunks)
        if record.result.suspend_requested:
            await run.suspend()
        else:
            await run.end(record.result)

    def _cancelled_event(self, session: str) -> asyncio.Event:
        return self._cancelled.setdefault(session, asyncio.Event())

    async def _release_after_sibling_cancel(self, session: str, source: GatedTokens) -> None:
        await self._cancelled_event(session).wait()
        await source.allow()

    async def on_cancel(self, request: CancelRequest) -> bool:
        """The endpoint's cancel authorisation hook (async, as a real one may look users up)."""
        record = self._records.get(request.run)
        if record is None:
            self._early_requests.setdefault(request.run, []).append((request.client_id, True))
            return True
        verdict = True
        if record.scenario == "owner-only":
            verdict = request.client_id == request.run.run_client_id
            if not verdict and record.source is not None:
                await record.source.allow()
        elif record.scenario == "tail" and record.source is not None:
            await record.source.allow(4)
            await record.source.blocked_at(4)  # tokens 3 and 4 went out after the cancel
        record.cancel_requests.append((request.client_id, verdict))
        return verdict

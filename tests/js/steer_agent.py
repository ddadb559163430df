"""The steering agent the Node scenarios of ``scenarios_steering.mjs`` drive.

A plain ``(run, request)`` agent with the JS agent's loop::

    while run.has_input():
        result = await run.pipe(answer)

The POST body (extra fields the scenario adds) picks its behaviour:

* ``holdFor``: the invocation's first pass publishes its first two text deltas (or, with
  ``tool``, the start of its tool call) and then holds until this run received that many
  steers (its ``on_steer`` hint, so the steers are in the run when it goes on), or, with
  ``"cancel"``, until the run is cancelled. 0 or absent: no hold.
* ``release``: the hold also waits for ``POST /test/steer-release {"session"}``
  (:data:`RELEASE_ROUTE`), so a scenario can look at its view while the steer is unanswered.
* ``tool``: a fresh run's first pass asks the client to run ``get_location`` and ends
  ``tool-calls``; the agent then suspends the run. The client's tool result (a continuation
  naming the run) resumes it and the resumed run answers "You are in Paris."

Every pass that takes steers in (``run.steers`` after ``has_input()``) answers with a
sentence naming them: ``Took in: <text> (<client id>); ...``, the texts read off the
session's channel (the agent subscribes to it). Every run is recorded in :attr:`log` by
session name: the steers each pass took in, the hints, how each pass ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from langgraph_interrupt import Run
from langgraph_interrupt._wire import ChannelMessage
from langgraph_interrupt.channels import Channel
from langgraph_interrupt.server import AgentRequest
from langgraph_interrupt.testing import text_chunks
from langgraph_interrupt.transport import Steer

from .scenario_agent import client_tool_request

FIRST = ["one ", "two ", "three."]
RESUMED = ["You are ", "in ", "Paris."]
#: Where a held first pass waits: after start, start-step, text-start and two deltas; for
#: the tool call, after start, start-step, tool-input-start and its one delta.
TEXT_HOLD, TOOL_HOLD = 5, 4


def took_in(steers: Sequence[tuple[str, str | None]]) -> str:
    """The sentence of a pass that answers ``steers`` ((text, client id) pairs)."""
    return "Took in: " + "; ".join(f"{text} ({client})" for text, client in steers) + "."


@dataclass
class SteerRecord:
    """What the agent saw and did for one invocation (a resume is a second record)."""

    scenario: str
    extra: dict[str, Any]
    run: Run
    continuation: bool = False
    hints: list[Steer] = field(default_factory=list)
    passes: list[list[str]] = field(default_factory=list)  # steer ids each pass took in
    results: list[str] = field(default_factory=list)  # each pipe's reason
    more: asyncio.Event = field(default_factory=asyncio.Event)


class SteerAgent:
    """``agent(run, request)`` for ``create_agent_app``, plus its ``on_steer`` hint (pass
    it in ``session_options``) and the release route."""

    def __init__(self) -> None:
        self.log: dict[str, list[SteerRecord]] = {}
        self.texts: dict[str, dict[str, str]] = {}  # session -> steer codec id -> text
        self._records: dict[Run, SteerRecord] = {}
        self._early: dict[Run, list[Steer]] = {}
        self._releases: dict[str, asyncio.Event] = {}
        self.release_route = Route("/test/steer-release", self._release, methods=["POST"])

    # -- hooks ------------------------------------------------------------------------------
    def on_steer(self, run: Run, steer: Steer) -> None:
        record = self._records.get(run)
        if record is None:  # only while the endpoint locates the run
            self._early.setdefault(run, []).append(steer)
            return
        record.hints.append(steer)
        record.more.set()

    async def _release(self, request: Request) -> JSONResponse:
        session = (await request.json())["session"]
        self._releases.setdefault(session, asyncio.Event()).set()
        return JSONResponse({"released": session})

    def _listen(self, channel: Channel) -> None:
        """Keep the text of every user input of the session (the steers' among them)."""
        if channel.name in self.texts:
            return
        texts = self.texts[channel.name] = {}

        def listener(message: ChannelMessage) -> None:
            extras = message.extras or {}
            ai = extras.get("ai") or {}
            transport, codec = ai.get("transport") or {}, ai.get("codec") or {}
            if message.name != "ai-input" or transport.get("role") != "user":
                return
            if codec.get("partType") == "text" and isinstance(message.data, str):
                cmid = transport.get("codec-message-id", "")
                texts[cmid] = texts.get(cmid, "") + message.data

        channel.subscribe(listener)

    # -- the agent ------------------------------------------------------------------------------
    async def __call__(self, run: Run, request: AgentRequest) -> None:
        extra = dict(request.extra)
        session = request.session_name
        record = SteerRecord(str(extra.get("scenario", "")), extra, run)
        self.log.setdefault(session, []).append(record)
        self._records[run] = record
        record.hints.extend(self._early.pop(run, ()))
        self._listen(run.channel)
        await run.start()
        assert run.trigger is not None
        record.continuation = run.trigger.is_continuation
        result = None
        while run.has_input():
            taken = run.steers
            record.passes.append([s.codec_message_id for s in taken])
            noted = [took_in([(self.texts[session].get(s.codec_message_id, "?"), s.client_id)
                              for s in taken])] if taken else []
            if len(record.passes) == 1:
                if extra.get("tool") and not record.continuation:
                    source = self._held(record, client_tool_request(), TOOL_HOLD)
                else:
                    tokens = RESUMED if record.continuation else FIRST
                    source = self._held(record, text_chunks([*tokens, *(
                        f" {n}" for n in noted)]), TEXT_HOLD)
            else:
                source = _chunks(text_chunks(noted))
            result = await run.pipe(source)
            record.results.append(result.reason)
            if result.suspend_requested:
                await run.suspend()
                return
        await run.end(result)

    async def _held(self, record: SteerRecord, chunks: list[dict[str, Any]],
                    at: int) -> AsyncIterator[dict[str, Any]]:
        hold = record.extra.get("holdFor") or 0
        for index, chunk in enumerate(chunks):
            if index == at and hold:
                await self._hold(record, hold)
            yield chunk

    async def _hold(self, record: SteerRecord, hold: int | str) -> None:
        """Until the run got ``hold`` steers (and the release, if asked for); forever for
        ``"cancel"`` (the pipe stops waiting when the run is cancelled)."""
        if hold == "cancel":
            await asyncio.Event().wait()
        while len(record.hints) < int(hold):
            record.more.clear()
            await record.more.wait()
        if record.extra.get("release"):
            session = record.run.channel.name
            await self._releases.setdefault(session, asyncio.Event()).wait()


async def _chunks(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk

"""The graph runner: one compiled graph, one run, every outcome mapped onto the protocol.

Owns: :func:`run_graph` and :class:`GraphOutcome`. Completed → ``ai-run-end{complete}``;
``interrupt()`` → ``ai-run-suspend`` (a continuation resumes it with ``Command(resume=...)``
and ``ai-run-resume``); an exception → ``ai-run-end{error}`` with code and message; a cancel
→ ``ai-run-end{cancelled}``, after the checkpoint is repaired (:mod:`._repair`), or rolled
back to the run's start when a newer input interrupted it under the ``rollback`` multitask
strategy (:mod:`._rollback`).

Cancel modes. ``immediate``: stop now — LangGraph is asked to drain (so nodes polling
``drain_requested`` stop too) and the graph task is cancelled at once, except that a running
shielded node (``@cancellable(shielded=True)``) is waited for first. ``drain``: finish the
current step (LangGraph's ``RunControl.request_drain``), then stop; after ``drain_grace``
seconds it becomes immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl
from langgraph.types import Command

from .._abort import CancelReason, RunCancelled, RunCancelledError
from .._errors import OperationCancelledError
from .._wire import EVENT_INPUT, H_EVENT_ID, H_RUN_ID, read_envelope
from ..transport import Interruption, Run
from ._handler import RunCallbackHandler
from ._messages import load_conversation, to_langchain
from ._repair import RepairReport, repair_thread
from ._resume import interrupted_answer, resume_instruction
from ._rollback import rollback_thread, thread_head
from ._signal import RunScope, bind_abort_signal
from ._steer_input import steer_round_input, take_in_steers_mid_run
from ._thread_turn import thread_turn

__all__ = ["AUTO", "CancelMode", "GraphOutcome", "run_graph"]

logger = logging.getLogger("langgraph_interrupt.langgraph")

CancelMode = Literal["immediate", "drain"]
OutcomeReason = Literal["complete", "cancelled", "error", "suspended"]


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()
_RESUME: Any = _Auto()  # AUTO, plus the instruction to resume an interrupted answer


@dataclass(frozen=True, slots=True)
class GraphOutcome:
    """How a graph run ended. ``run_graph`` never raises for these: they are outcomes."""

    reason: OutcomeReason
    error: BaseException | None = None
    cancel_reason: CancelReason | None = None
    interrupts: tuple[Any, ...] = ()
    repair: RepairReport | None = None
    drained: bool = False  # a drain-mode cancel stopped at a step boundary
    rolled_back: bool = False  # the run's writes were discarded (``rollback`` strategy)
    interruption: Interruption | None = None  # a cancelled run's timeline (Run.interruption)


async def run_graph(graph: Any, run: Run, *, input: Any = AUTO,
                    config: RunnableConfig | None = None, cancel_mode: CancelMode = "immediate",
                    drain_grace: float = 2.0, messages_key: str = "messages",
                    tool_node: str | None = None,
                    resume_interrupted: bool = False) -> GraphOutcome:
    """Run ``graph`` for ``run``: publish its output, map its outcome, leave the thread valid.

    Args:
        input: the graph input. By default it is built from the channel: the run's new user
            message (with a checkpointer: only that message, thread id = session name), the
            whole conversation (without one), or ``Command(resume=...)`` for a continuation
            that answers a pending ``interrupt()``.
        config: merged into the graph config; our callback handler is appended.
        cancel_mode: ``"immediate"`` or ``"drain"`` (see the module docstring).
        drain_grace: seconds a drain may take before it becomes immediate.
        messages_key: the state key holding the conversation (for input and repair).
        tool_node: the node name checkpoint repair answers tool calls as (default: "tools"
            if the graph has it).
        resume_interrupted: if the thread's last answer was cut off by a cancel, have the
            model continue it ("as I was saying…") after the new message, as a new
            assistant message that does not repeat what the user saw (needs a checkpointer;
            see :func:`resume_messages` for a model node of your own).
    """
    if run.state == "created":
        try:
            await run.start()
        except OperationCancelledError:  # cancelled before it started: nothing to repair
            return GraphOutcome("cancelled", cancel_reason=run.signal.reason)
    scope = RunScope(run.signal, run)
    handler = RunCallbackHandler(run, stop_on_cancel=False, scope=scope)
    cfg = _config(graph, run, config, handler)
    # Another worker may be running this thread (the session is the thread by default):
    # wait for its runs of earlier inputs, as the thread's turn does within this process.
    same_thread = (cfg.get("configurable") or {}).get("thread_id") == run.channel.name
    free = not same_thread or await run.wait_other_workers()
    async with thread_turn(graph, cfg, run.signal) as ours:
        if not (ours and free):  # cancelled while another run of the thread ran
            await run.end("cancelled")
            return GraphOutcome("cancelled", cancel_reason=run.signal.reason,
                                interruption=run.interruption)
        if input is AUTO and resume_interrupted:
            input = _RESUME
        return await _run_turn(graph, run, scope, handler, cfg, input, cancel_mode,
                               drain_grace, messages_key, tool_node)


async def _run_turn(graph: Any, run: Run, scope: RunScope, handler: RunCallbackHandler,
                    cfg: RunnableConfig, input: Any, cancel_mode: CancelMode,
                    drain_grace: float, messages_key: str,
                    tool_node: str | None) -> GraphOutcome:
    """The graph run itself, holding the thread's turn."""
    if run.state == "active" and not run.cancelled:
        run.begin_step()  # acknowledged while the graph reads its input and calls the model
    try:
        before = await thread_head(graph, cfg)  # what a rollback returns the thread to
        if input is AUTO or input is _RESUME:
            input = await _auto_input(graph, run, cfg, handler, messages_key, tool_node,
                                      before, resume=input is _RESUME)
    except Exception as exc:
        logger.exception("run %s: could not build the graph input", run.run_id)
        await run.end("error", error=exc)
        return GraphOutcome("error", error=exc)

    interrupts: list[Any] = []
    # Steers mid-run need a checkpoint to stop at and resume from; without one a steer is
    # taken in when the graph finishes (one more round on the whole conversation).
    steerable = getattr(graph, "checkpointer", None) is not None
    pass_input = input
    while True:
        control = RunControl()
        steered: list[bool] = []  # a drain asked for to take a steer in

        def stop_for_steer(_steer: object = None, control: RunControl = control,
                           steered: list[bool] = steered) -> None:
            if not steered and not run.cancelled:
                steered.append(True)  # stop at this step's boundary to take the steer in
                control.request_drain("a steer arrived")

        async def drive(pass_input: Any = pass_input, control: RunControl = control) -> None:
            with bind_abort_signal(scope):
                async for part in graph.astream(pass_input, cfg, stream_mode="updates",
                                                control=control):
                    if isinstance(part, Mapping) and "__interrupt__" in part:
                        interrupts.extend(part["__interrupt__"])

        stop_watching = run.watch_steers(stop_for_steer) if steerable else None
        if steerable and run._steering.pending:
            # Waiting since a boundary that was not clean: stop after the step that starts
            # now (a drain asked before it would stop the graph before it, for good).
            handler.on_node_start = stop_for_steer
        task = asyncio.ensure_future(drive())
        aborted = asyncio.ensure_future(run.signal.wait())
        try:
            await asyncio.wait({task, aborted}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                reason = run.signal.reason
                mode: CancelMode = "drain" if reason is not None and reason.drain \
                    else cancel_mode
                await _stop(task, control, scope, reason, mode, drain_grace)
                run.note_stopped()
        except asyncio.CancelledError:  # the task running us: shutdown, ends cancelled
            run.cancel(CancelReason("shutdown", "the task running the graph was cancelled"))
            await _stop(task, control, scope, run.signal.reason, "immediate", 0)
            await _finish_cancelled(graph, run, cfg, handler, scope, messages_key, tool_node,
                                    _input_messages(input, messages_key), before)
            raise
        finally:
            aborted.cancel()
            if stop_watching is not None:
                stop_watching()
            handler.on_node_start = None

        error = None if task.cancelled() else task.exception()
        if isinstance(error, GraphDrained) and steered and not run.cancelled:
            try:
                resume, pass_input = await take_in_steers_mid_run(
                    graph, run, cfg, messages_key, handler.next_message)
            except Exception as exc:  # the checkpointer or the channel failed: an outcome
                logger.exception("run %s: could not take the steers in", run.run_id)
                await run.end("error", error=exc)
                return GraphOutcome("error", error=exc)
            if resume:  # from the step boundary, with the steers in view if clean there
                continue
            error = None  # drained at the very end: finished
        if run.cancelled or task.cancelled() or isinstance(
                error, GraphDrained | RunCancelled | RunCancelledError):
            if not run.cancelled:  # cancelled by something else than the run's signal
                run.cancel(CancelReason("error", "the graph was cancelled"))
            repair = await _finish_cancelled(graph, run, cfg, handler, scope, messages_key,
                                             tool_node, _input_messages(input, messages_key),
                                             before)
            return GraphOutcome("cancelled", cancel_reason=run.signal.reason,
                                repair=repair or None, drained=isinstance(error, GraphDrained),
                                rolled_back=repair is False, interruption=run.interruption)
        if error is not None:
            logger.info("run %s: graph raised %r", run.run_id, error)
            await run.end("error", error=error)
            return GraphOutcome("error", error=error)
        if interrupts:
            await handler.finish("suspended")  # closing chunks go in before the step ends
            await run.end_step("complete")
            await run.suspend()
            return GraphOutcome("suspended", interrupts=tuple(interrupts))
        if run._steering.pending:  # the JS agent's `while (run.hasInput())` loop
            try:
                pass_input = await steer_round_input(graph, run, cfg, handler, messages_key,
                                                     tool_node, before, _auto_input)
            except Exception as exc:
                logger.exception("run %s: could not read the steers", run.run_id)
                await run.end("error", error=exc)
                return GraphOutcome("error", error=exc)
            if pass_input is not None:
                continue
        await run.end("complete")
        return GraphOutcome("complete")


async def _stop(task: asyncio.Future[None], control: RunControl, scope: RunScope,
                reason: CancelReason | None, mode: CancelMode, grace: float) -> None:
    control.request_drain(str(reason or "cancelled"))
    if mode == "drain":
        done, _ = await asyncio.wait({task}, timeout=grace)
        if done:
            return
    elif scope.in_critical_section:
        await scope.idle(timeout=grace)  # the shielded body finishes; its writes commit
        done, _ = await asyncio.wait({task}, timeout=grace)  # the drain stops at the boundary
        if done:
            return
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def _finish_cancelled(graph: Any, run: Run, cfg: RunnableConfig,
                            handler: RunCallbackHandler, scope: RunScope, messages_key: str,
                            tool_node: str | None, inputs: list[Any],
                            before: Any) -> RepairReport | Literal[False] | None:
    """Flush what was generated, repair the checkpoint (or roll it back: ``False``), then
    end the run ``cancelled``: the thread is valid before anyone can see the run ended."""
    await handler.flush()
    if run.rollback and before is not None:
        try:
            await asyncio.shield(rollback_thread(graph, cfg, before))
        except Exception:
            logger.exception("run %s: rollback failed; repairing the thread instead",
                             run.run_id)
        else:
            await run.end("cancelled")
            return False
    repair: RepairReport | None = None
    try:
        repair = await asyncio.shield(repair_thread(
            graph, cfg, partial=handler.translator.open_llm_calls(),
            shown=[*inputs, *handler.translator.shown_messages()],
            tool_results=scope.tool_results, reason=str(run.signal.reason or "cancelled"),
            messages_key=messages_key, tool_node=tool_node))
    except Exception:
        logger.exception("run %s: checkpoint repair failed", run.run_id)
    await run.end("cancelled")
    return repair


def _input_messages(input: Any, messages_key: str) -> list[Any]:
    """The messages the run gave the graph (a cancel before its first checkpoint was written
    can leave the thread without them)."""
    messages = input.get(messages_key) if isinstance(input, Mapping) else None
    return [m for m in messages if isinstance(m, BaseMessage)] if isinstance(messages, list) \
        else []


def _config(graph: Any, run: Run, config: RunnableConfig | None,
            handler: RunCallbackHandler) -> RunnableConfig:
    cfg: dict[str, Any] = dict(config or {})
    callbacks = cfg.get("callbacks")
    if callbacks is None:
        cfg["callbacks"] = [handler]
    elif isinstance(callbacks, list):
        cfg["callbacks"] = [*callbacks, handler]
    else:  # a callback manager
        callbacks = callbacks.copy()
        callbacks.add_handler(handler, inherit=True)
        cfg["callbacks"] = callbacks
    configurable = dict(cfg.get("configurable") or {})
    if getattr(graph, "checkpointer", None) is not None:
        configurable.setdefault("thread_id", run.invocation.session_name)
    cfg["configurable"] = configurable
    return cfg  # type: ignore[return-value]


async def _auto_input(graph: Any, run: Run, cfg: RunnableConfig, handler: RunCallbackHandler,
                      messages_key: str, tool_node: str | None, state: Any, *,
                      resume: bool = False) -> Any:
    trigger = run.trigger
    assert trigger is not None
    entries, raw = await load_conversation(run.channel)
    payload = _trigger_payload(raw, trigger.event_id)
    has_checkpointer = getattr(graph, "checkpointer", None) is not None
    pending: tuple[Any, ...] = ()
    if state is not None:
        pending = tuple(getattr(state, "interrupts", ()) or ())
    names = _tool_names(entries)
    for call_id in _client_results(raw, trigger.event_id, trigger.run_id):
        # The client's result is final: its tool part keeps exactly what the client sent.
        handler.translator.answered_by_client(call_id, names.get(call_id, "tool"))
    if payload is not None and payload[0] in ("tool-result", "tool-result-error",
                                              "tool-approval-response"):
        kind, target, data = payload
        if kind == "tool-approval-response" and target in names:
            # The approved tool runs now: its result answers into the original part.
            handler.translator.expect_call(target, names[target])
        if pending:
            return Command(resume=_resume_value(kind, data))
    if has_checkpointer:
        # A new message while interrupt() questions were pending (or after a crash) would
        # leave tool calls unanswered: answer them "cancelled" before the new turn.
        await repair_thread(graph, cfg, reason="superseded by a new message",
                            messages_key=messages_key, tool_node=tool_node)
        mine = to_langchain([e.message for e in entries
                             if e.codec_message_id == trigger.codec_message_id])
        if resume:
            thread = (await graph.aget_state(cfg)).values.get(messages_key) or []
            partial = interrupted_answer(thread)
            if partial is not None:
                mine.append(resume_instruction(partial))
        return {messages_key: mine}
    return {messages_key: to_langchain([e.message for e in entries])}


def _trigger_payload(raw: list[Any], event_id: str) -> tuple[str, str | None, Any] | None:
    for message in raw:
        if message.name != EVENT_INPUT:
            continue
        envelope = read_envelope(message.extras)
        if envelope is None or envelope.transport.get(H_EVENT_ID) != event_id:
            continue
        return envelope.codec.get("kind", ""), envelope.codec.get("toolCallId"), message.data
    return None


def _tool_names(entries: list[Any]) -> dict[str, str]:
    """Tool call id -> tool name, for every tool part of the conversation."""
    names: dict[str, str] = {}
    for entry in entries:
        for part in entry.message.get("parts", []):
            call_id = part.get("toolCallId") if isinstance(part, Mapping) else None
            if isinstance(call_id, str) and call_id:
                kind = str(part.get("type", ""))
                names[call_id] = str(part.get("toolName") or "") if kind == "dynamic-tool" \
                    else kind.removeprefix("tool-")
    return names


def _client_results(raw: list[Any], event_id: str, run_id: str | None) -> list[str]:
    """Tool call ids the client answered for this run: the trigger itself, and (a
    continuation) every tool result sent to the run it resumes."""
    answered: list[str] = []
    for message in raw:
        if message.name != EVENT_INPUT:
            continue
        envelope = read_envelope(message.extras)
        if envelope is None or envelope.codec.get("kind") not in ("tool-result",
                                                                   "tool-result-error"):
            continue
        mine = envelope.transport.get(H_EVENT_ID) == event_id or (
            run_id is not None and envelope.transport.get(H_RUN_ID) == run_id)
        call_id = envelope.codec.get("toolCallId")
        if mine and call_id:
            answered.append(call_id)
    return answered


def _resume_value(kind: str, data: Any) -> Any:
    if kind == "tool-result" and isinstance(data, Mapping):
        return data.get("output")
    if kind == "tool-result-error" and isinstance(data, Mapping):
        return {"error": data.get("message")}
    return data


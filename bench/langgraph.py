# ruff: noqa: E402  (the sys.path fix below must run before the langgraph imports)
"""LangGraph integration benchmark: handler overhead per token, and cancel latency.

Run from the repository root::

    .venv/bin/python bench/langgraph.py              # defaults: ~55 s on 2 cores
    .venv/bin/python bench/langgraph.py --json       # machine-readable results
    .venv/bin/python bench/langgraph.py --profile    # also cProfile one handler repetition

What it measures (see docs/performance.md for recorded figures):

1. Tokens/s. A ``StateGraph(MessagesState)`` with one ``agent`` node (``await
   model.ainvoke(messages)``) streams one ``FakeStreamingChatModel`` reply of ``--tokens``
   word tokens (``token_delay=0``: the model still yields to the loop once per token),
   consumed with ``graph.astream(..., stream_mode="messages")`` so that the model streams
   even without a handler. Cases, interleaved within each of ``--repeat`` repetitions:

   * ``none``: no callback handler;
   * ``noop``: one ``AsyncCallbackHandler`` that overrides only ``on_llm_new_token``
     (``async def ...: pass``), as in the research (§2.e);
   * ``handler``: ``RunCallbackHandler(run)`` on a run of an ``AgentSession`` on the
     embedded ``InMemoryBroker``, watched by a folding ``ClientSession``. Timed from just
     before ``graph.astream`` to the client's listener seeing ``ai-run-end`` (the run ends
     when ``async with run`` exits), and separately to the end of the graph's stream;
   * ``none_updates``: no handler, ``stream_mode="updates"`` (the model generates the same
     chunks, through ``_agenerate``, with no per-token callback at all);
   * ``run_graph``: the same graph through ``run_graph(graph, run)`` (its own handler,
     ``stream_mode="updates"``, input rebuilt from the channel), to ``ai-run-end``.
     Informational, compared with ``none_updates``: without ``"messages"`` it does not pay
     for LangGraph's own message stream.

   Each case first runs one discarded 500-token warm-up. Medians of the repetitions give
   µs/token; a handler's *extra cost* is its µs/token minus the no-handler case's in the
   same stream mode. The target: ``RunCallbackHandler``'s extra cost at most 1.5x the no-op
   handler's.
2. Cancel latency. ``run_graph(graph, run, cancel_mode="immediate")`` on a graph with a
   tool node and an ``InMemorySaver`` (``--checkpointer sqlite``: an ``AsyncSqliteSaver`` on
   a fresh file per sample) so the checkpoint repair runs, with a paced model
   (``--token-delay`` seconds before each token). The client's ``on_message`` listener
   notices that the model has generated ``--cancel-after`` tokens, waits a random fraction
   of one token interval (seeded), and calls ``client.cancel(run_id)``. From just before that
   call (``time.perf_counter()`` throughout): when the run's abort signal fired on the agent;
   when the model's stream stopped (the model's async generator was closed or cancelled: no
   token can be generated after it) and how many tokens were generated after the cancel;
   when the run started ending (its finalizers run, after run_graph's flush and checkpoint
   repair, before the terminal publishes); when the client's listener saw ``ai-run-end``.
   ``--samples`` samples after one discarded warm-up, one fresh broker, sessions, model and
   graph each, ``gc.collect()`` between them. Also: the same in drop-in
   mode (``RunCallbackHandler(run)`` inside ``async with run``, no runner, no repair), and
   ``--drain-samples`` samples with ``cancel_mode="drain"``, where the model's step (text,
   then a tool call) finishes and the tool never runs. Target: cancel to ``ai-run-end``
   under 5 ms in immediate mode.

Not a test: it asserts only that each scenario ended the way it must (every token folded by
the client, every cancelled run ended ``cancelled``).
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's directory is first on sys.path and this file (langgraph.py)
# would shadow the langgraph package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import logging
import platform
import pstats
import random
import shlex
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import PrivateAttr

from langgraph_interrupt import (
    AgentSession,
    ChannelMessage,
    ClientSession,
    InMemoryBroker,
    __version__,
)
from langgraph_interrupt.integration import RunCallbackHandler, run_graph
from langgraph_interrupt.testing import FakeStreamingChatModel

CHANNEL = "ai:bench"
TIMEOUT = 30.0  # seconds; anything slower is a failure, not a sample
CASES = ("none", "noop", "handler", "none_updates", "run_graph")


class _QuietDropInCancel(logging.Filter):
    """LangChain logs a warning for every exception a callback raises, also when the handler
    re-raises it on purpose (``raise_error``): drop-in mode stops generation by raising
    ``RunCancelledError`` from ``on_llm_new_token``, once per cancel sample. Hide only that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Error in %s.%s callback: %s" and isinstance(record.args, tuple)
                    and "RunCancelledError" in str(record.args[-1]))


logging.getLogger("langchain_core.callbacks.manager").addFilter(_QuietDropInCancel())


class _GCPauses:
    """Records garbage-collector pauses as (start, end, generation) while active."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((self._started, time.perf_counter(), info["generation"]))

    def __enter__(self) -> _GCPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def within(self, begin: float, end: float) -> float:
        """Milliseconds of collection between ``begin`` and ``end``."""
        return sum((min(b, end) - max(a, begin)) * 1000.0 for a, b, _ in self.pauses
                   if b > begin and a < end)


def _text(tokens: int) -> str:
    """``tokens`` word tokens for the fake model ("tok", then " tok": ~4 characters each)."""
    return "tok" + " tok" * (tokens - 1)


def _run_id(message: ChannelMessage) -> str | None:
    extras = message.extras or {}
    return extras.get("ai", {}).get("transport", {}).get("run-id")


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": _percentile(values, 50), "p90": _percentile(values, 90),
            "p99": _percentile(values, 99), "max": max(values), "min": min(values),
            "mean": statistics.fmean(values)}


@tool
def lookup(query: str) -> str:
    """Look something up (the cancel benchmark's tool; a cancel always lands before it)."""
    return f"found {query}"


def _graph(model: Any, *, tools: bool = False, checkpointer: Any = None) -> Any:
    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    if tools:
        builder.add_node("tools", ToolNode([lookup]))
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


class NoOpHandler(AsyncCallbackHandler):
    """The research's no-op handler: only ``on_llm_new_token`` overridden."""

    async def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        return None


class _Sessions:
    """A fresh embedded broker with a connected client and agent on one channel."""

    async def __aenter__(self) -> _Sessions:
        self.broker = InMemoryBroker()
        self.client = ClientSession(self.broker.channel(CHANNEL, client_id="user"))
        await self.client.connect()
        self.agent = AgentSession(self.broker.channel(CHANNEL, client_id="agent"))
        await self.agent.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.agent.close()
        await self.client.close()

    def run_end_future(self) -> asyncio.Future[float]:
        """Resolves with the time the client's listener sees the first ``ai-run-end``."""
        ended: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def listener(message: ChannelMessage) -> None:
            if message.name == "ai-run-end" and not ended.done():
                ended.set_result(time.perf_counter())

        self.client.on_message(listener)
        return ended

    def folded_text(self) -> str:
        parts = self.client.messages[-1]["parts"]
        return "".join(p.get("text", "") for p in parts if p.get("type") == "text")


# -- 1. tokens per second -------------------------------------------------------------------
async def _stream_once(case: str, text: str) -> dict[str, float]:
    """One repetition of one case: seconds to the end of the graph's stream, and (cases
    with a run) to the client seeing ``ai-run-end``."""
    model = FakeStreamingChatModel([text])
    graph = _graph(model)
    inputs = {"messages": [HumanMessage("question")]}
    if case in ("none", "noop", "none_updates"):
        config: dict[str, Any] = {"callbacks": [NoOpHandler()]} if case == "noop" else {}
        mode = "updates" if case == "none_updates" else "messages"
        items = 0
        begin = time.perf_counter()
        async for _ in graph.astream(inputs, config, stream_mode=mode):
            items += 1
        finish = time.perf_counter()
        if mode == "messages":
            assert items >= model.chunks_generated - 1, (items, model.chunks_generated)
        assert model.chunks_generated > text.count(" "), "the model generated every token"
        return {"graph_s": finish - begin}
    async with _Sessions() as s:
        ended = s.run_end_future()
        handle = await s.client.send("question")
        if case == "handler":
            async with s.agent.create_run(handle.invocation) as run:
                begin = time.perf_counter()
                async for _ in graph.astream(inputs, {"callbacks": [RunCallbackHandler(run)]},
                                             stream_mode="messages"):
                    pass
                graph_done = time.perf_counter()
        else:
            run = s.agent.create_run(handle.invocation)
            begin = time.perf_counter()
            outcome = await run_graph(graph, run)
            graph_done = time.perf_counter()
            assert outcome.reason == "complete", outcome
        end = await asyncio.wait_for(ended, TIMEOUT)
        assert s.folded_text() == text, "the client must have folded every token"
    return {"graph_s": graph_done - begin, "end_s": end - begin}


async def bench_throughput(tokens: int, repeat: int) -> dict[str, Any]:
    text = _text(tokens)
    times: dict[str, dict[str, list[float]]] = {c: {"graph_s": [], "end_s": []} for c in CASES}
    for case in CASES:  # warm-up, discarded: first-call costs are not per-token costs
        await _stream_once(case, _text(500))
    for _ in range(repeat):
        for case in CASES:  # interleaved, so drift in the machine's load hits every case
            gc.collect()
            for key, value in (await _stream_once(case, text)).items():
                times[case][key].append(value)
    out: dict[str, Any] = {"tokens": tokens, "repeat": repeat, "cases": {}}
    for case, series in times.items():
        row: dict[str, Any] = {}
        for key, values in series.items():
            if values:
                med = statistics.median(values)
                row[key] = {"median_s": med, "tokens_per_s": tokens / med,
                            "us_per_token": med / tokens * 1e6,
                            "best_us_per_token": min(values) / tokens * 1e6,
                            "all_tokens_per_s": [tokens / v for v in values]}
        out["cases"][case] = row
    base = out["cases"]["none"]["graph_s"]["us_per_token"]
    noop_extra = out["cases"]["noop"]["graph_s"]["us_per_token"] - base
    handler = out["cases"]["handler"]
    out["extra_us_per_token"] = {
        "noop": noop_extra,
        "handler_to_run_end": handler["end_s"]["us_per_token"] - base,
        "handler_graph_only": handler["graph_s"]["us_per_token"] - base}
    out["ratio_vs_noop"] = {k: v / noop_extra if noop_extra > 0 else float("inf")
                            for k, v in out["extra_us_per_token"].items() if k != "noop"}
    # The same from each case's best repetition: on a shared machine the fastest run is the
    # one least disturbed by other processes (a cross-check on the medians, not the verdict).
    best = {c: out["cases"][c][k]["best_us_per_token"]
            for c, k in (("none", "graph_s"), ("noop", "graph_s"), ("handler", "end_s"))}
    best_noop = best["noop"] - best["none"]
    out["best_of_repeat"] = {
        "extra_us_per_token_noop": best_noop,
        "extra_us_per_token_handler_to_run_end": best["handler"] - best["none"],
        "ratio_handler_to_run_end": (best["handler"] - best["none"]) / best_noop
        if best_noop > 0 else float("inf")}
    # run_graph streams with stream_mode="updates": its baseline is the same graph without a
    # handler in that mode (the model generates the same chunks, with no callback per token).
    out["run_graph_extra_us_per_token"] = (out["cases"]["run_graph"]["end_s"]["us_per_token"]
                                           - out["cases"]["none_updates"]["graph_s"]
                                           ["us_per_token"])
    return out


def profile_handler(tokens: int, top: int) -> str:
    text = _text(tokens)
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_stream_once("handler", text))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- 2. cancel latency ----------------------------------------------------------------------
class TimedModel(FakeStreamingChatModel):
    """The fake model, plus when its stream last produced a token and when it stopped."""

    _last_token_at: float = PrivateAttr(default=0.0)
    _stopped_at: float = PrivateAttr(default=0.0)

    async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None,
                       **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                self._last_token_at = time.perf_counter()
                yield chunk
        finally:  # cancelled, closed or done: no token is generated after this
            self._stopped_at = time.perf_counter()


def _reply(tokens: int) -> AIMessage:
    return AIMessage(content=_text(tokens),
                     tool_calls=[{"name": "lookup", "args": {"query": "x"}, "id": "call_1"}])


def _watch(run: Any, marks: dict[str, float]) -> None:
    """Record when the run's abort signal fires on the agent, and when the run starts
    ending: its finalizers run right before the terminal publishes, after run_graph's
    flush and checkpoint repair (this one is registered first, so it runs first)."""
    run.signal.add_callback(lambda _: marks.setdefault("abort", time.perf_counter()))
    run.add_finalizer(lambda *_: marks.setdefault("ending", time.perf_counter()) and None)


async def _checkpointer(kind: str, stack: contextlib.AsyncExitStack, directory: str) -> Any:
    if kind == "memory":
        return InMemorySaver()
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # optional dependency

    path = os.path.join(directory, f"{uuid.uuid4().hex}.sqlite")  # a fresh file per sample
    return await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(path))


async def _cancel_once(mode: str, cancel_after: int, reply_tokens: int, token_delay: float,
                       jitter: float, gc_pauses: _GCPauses | None = None, *,
                       checkpointer: str = "memory", directory: str = "") -> dict[str, Any]:
    model = TimedModel([_reply(reply_tokens)], token_delay=token_delay)
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack, _Sessions() as s:
        ended = s.run_end_future()
        reached: asyncio.Future[None] = loop.create_future()

        def listener(message: ChannelMessage) -> None:
            if not reached.done() and model.chunks_generated >= cancel_after:
                reached.set_result(None)

        s.client.on_message(listener)
        handle = await s.client.send("question")
        marks: dict[str, float] = {}
        if mode == "drop-in":
            graph = _graph(model)

            async def serve() -> Any:
                async with s.agent.create_run(handle.invocation) as run:
                    _watch(run, marks)
                    async for _ in graph.astream(
                            {"messages": [HumanMessage("question")]},
                            {"callbacks": [RunCallbackHandler(run)]}, stream_mode="messages"):
                        pass
                return None

            task = asyncio.create_task(serve())
        else:
            saver = await _checkpointer(checkpointer, stack, directory)
            graph = _graph(model, tools=True, checkpointer=saver)
            run = s.agent.create_run(handle.invocation)
            _watch(run, marks)
            task = asyncio.create_task(run_graph(graph, run, cancel_mode=mode))  # type: ignore[arg-type]
        await asyncio.wait_for(reached, TIMEOUT)
        await asyncio.sleep(jitter)
        run_id = handle.run_id
        assert run_id is not None
        at_cancel = model.chunks_generated
        sent = time.perf_counter()
        await s.client.cancel(run_id)
        end = await asyncio.wait_for(ended, TIMEOUT)
        outcome = await asyncio.wait_for(task, TIMEOUT)
        info = s.client.run(run_id)
        assert info is not None and info.status == "cancelled", info
        after = model.chunks_generated - at_cancel
        sample = {
            "to_abort_ms": (marks["abort"] - sent) * 1000.0,
            "to_stream_stop_ms": (model._stopped_at - sent) * 1000.0,
            "to_ending_ms": (marks["ending"] - sent) * 1000.0,
            "to_last_token_ms": (model._last_token_at - sent) * 1000.0 if after else 0.0,
            "tokens_after_cancel": after,
            "to_run_end_ms": (end - sent) * 1000.0,
            "model_outcome": model.outcomes[-1] if model.outcomes else None,
            "gc_ms": gc_pauses.within(sent, end) if gc_pauses else 0.0,
        }
        if outcome is not None:
            assert outcome.reason == "cancelled", outcome
            repair = outcome.repair
            sample["drained"] = outcome.drained
            sample["repair"] = {"partial": len(repair.partial_messages) if repair else 0,
                                "cancelled_calls": len(repair.cancelled_calls) if repair else 0}
            if mode == "drain":
                assert repair is not None and repair.cancelled_calls == ["call_1"], repair
    return sample


async def bench_cancel(mode: str, samples: int, cancel_after: int, reply_tokens: int,
                       token_delay: float, seed: int, checkpointer: str) -> dict[str, Any]:
    rng = random.Random(seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-langgraph-") as directory:
        kwargs = {"checkpointer": checkpointer, "directory": directory}
        # One discarded warm-up sample: the first cancel, repair and end of a process run
        # cold code paths (imports inside LangGraph, pydantic schemas) no later sample pays.
        await _cancel_once(mode, cancel_after, reply_tokens, token_delay, 0.0, **kwargs)
        with _GCPauses() as gc_pauses:
            for _ in range(samples):
                gc.collect()
                rows.append(await _cancel_once(mode, cancel_after, reply_tokens, token_delay,
                                               rng.uniform(0.0, token_delay), gc_pauses,
                                               **kwargs))
    out: dict[str, Any] = {"mode": mode, "samples": samples, "cancel_after": cancel_after,
                           "reply_tokens": reply_tokens, "token_delay_s": token_delay,
                           "checkpointer": None if mode == "drop-in" else checkpointer}
    for key in ("to_abort_ms", "to_stream_stop_ms", "to_ending_ms", "to_run_end_ms"):
        out[key] = _summary([r[key] for r in rows])
    after = [r["tokens_after_cancel"] for r in rows]
    out["tokens_after_cancel"] = {"min": min(after), "median": statistics.median(after),
                                  "max": max(after)}
    out["model_outcomes"] = sorted({str(r["model_outcome"]) for r in rows})
    out["all_to_run_end_ms"] = [r["to_run_end_ms"] for r in rows]
    out["gc"] = {"samples_with_gc": sum(r["gc_ms"] > 0 for r in rows),
                 "max_ms_in_a_sample": max(r["gc_ms"] for r in rows)}
    slowest = max(rows, key=lambda r: r["to_run_end_ms"])
    out["slowest"] = {"to_run_end_ms": slowest["to_run_end_ms"], "gc_ms": slowest["gc_ms"]}
    if "drained" in rows[0]:
        out["drained"] = sum(bool(r["drained"]) for r in rows)
        out["repair_partial"] = sum(r["repair"]["partial"] for r in rows)
        out["repair_cancelled_calls"] = sum(r["repair"]["cancelled_calls"] for r in rows)
    return out


# -- reporting ------------------------------------------------------------------------------
def _git_commit() -> str | None:
    """The repository's HEAD (with ``+dirty`` when the package has local changes), if known."""
    root = os.path.dirname(_HERE)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "langgraph_interrupt"],
                               cwd=root, text=True, capture_output=True, check=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def _environment() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "package_version": __version__, "git_commit": _git_commit(),
            "langgraph": version("langgraph"), "langchain_core": version("langchain-core"),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))}


def _fmt_latency(label: str, s: dict[str, float]) -> str:
    return (f"  {label:<28} p50={s['p50']:8.3f}  p90={s['p90']:8.3f}  p99={s['p99']:8.3f}  "
            f"max={s['max']:8.3f} ms")


def _print_report(env: dict[str, Any], throughput: dict[str, Any] | None,
                  cancels: list[dict[str, Any]], targets: dict[str, float]) -> None:
    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
          f"{env['cpu_count']} CPUs, langgraph_interrupt {env['package_version']} "
          f"(commit {env['git_commit']}), langgraph {env['langgraph']}, "
          f"langchain-core {env['langchain_core']}")
    print(f"command: {env['command']}")
    print(f"1-minute load average before the run: {env['load_average_1m']}")
    if throughput is not None:
        t = throughput
        print(f"\n[1] tokens/s, one {t['tokens']:,}-token fake-model stream through "
              f"StateGraph(MessagesState), median of {t['repeat']}")
        labels = {"none": "no handler", "noop": "no-op AsyncCallbackHandler",
                  "handler": "RunCallbackHandler", "none_updates": "no handler",
                  "run_graph": "run_graph"}
        bases = {"messages": t["cases"]["none"]["graph_s"]["us_per_token"],
                 "updates": t["cases"]["none_updates"]["graph_s"]["us_per_token"]}
        print("  case                        timed to                tok/s  us/token  "
              "(+ vs no handler, same stream mode)")
        for case, row in t["cases"].items():
            updates = case in ("none_updates", "run_graph")
            for key, timed in (("end_s", "ai-run-end"), ("graph_s", "end of graph stream")):
                if key not in row:
                    continue
                if case in ("none", "noop", "none_updates"):
                    timed = f"astream({'updates' if updates else 'messages'})"
                elif case == "run_graph" and key == "graph_s":
                    timed = "run_graph returned"
                r = row[key]
                extra = r["us_per_token"] - bases["updates" if updates else "messages"]
                rates = ", ".join(f"{x:,.0f}" for x in r["all_tokens_per_s"])
                print(f"  {labels[case]:<27} {timed:<20} {r['tokens_per_s']:8,.0f} "
                      f"{r['us_per_token']:8.1f}  (+{extra:5.1f})  (all: {rates})")
        e, ratio = t["extra_us_per_token"], t["ratio_vs_noop"]
        print(f"  extra cost per token vs no handler: no-op {e['noop']:.1f} us; "
              f"RunCallbackHandler {e['handler_to_run_end']:.1f} us to ai-run-end "
              f"({ratio['handler_to_run_end']:.2f}x the no-op's), "
              f"{e['handler_graph_only']:.1f} us graph only "
              f"({ratio['handler_graph_only']:.2f}x)")
        goal = targets["extra_cost_ratio"]
        verdict = ", ".join(f"{'met' if ratio[k] <= goal else 'NOT met'} {label}"
                            for k, label in (("handler_to_run_end", "to ai-run-end"),
                                             ("handler_graph_only", "graph only")))
        print(f"  target extra cost <= {goal:g}x the no-op handler's: {verdict}")
        bb = t["best_of_repeat"]
        print(f"  cross-check with each case's best repetition: no-op "
              f"+{bb['extra_us_per_token_noop']:.1f} us, RunCallbackHandler "
              f"+{bb['extra_us_per_token_handler_to_run_end']:.1f} us to ai-run-end "
              f"({bb['ratio_handler_to_run_end']:.2f}x)")
        print(f"  run_graph (stream_mode=updates): +{t['run_graph_extra_us_per_token']:.1f} "
              "us/token over the same graph without a handler in that mode (informational)")
    for c in cancels:
        saver = {"memory": ", InMemorySaver", "sqlite": ", AsyncSqliteSaver (file)",
                 None: ", no checkpointer"}[c["checkpointer"]]
        print(f"\n[2] cancel latency, {c['mode']} mode{saver}, {c['samples']} samples, cancel "
              f"after {c['cancel_after']} of {c['reply_tokens']} tokens, "
              f"{c['token_delay_s'] * 1000:g} ms/token")
        print(_fmt_latency("cancel -> abort signal", c["to_abort_ms"]))
        print(_fmt_latency("cancel -> stream stopped", c["to_stream_stop_ms"]))
        print(_fmt_latency("cancel -> run ending", c["to_ending_ms"]))
        print(_fmt_latency("cancel -> client ai-run-end", c["to_run_end_ms"]))
        a = c["tokens_after_cancel"]
        print(f"  tokens generated after the cancel: min {a['min']}, median {a['median']:g}, "
              f"max {a['max']}; model stream outcomes: {', '.join(c['model_outcomes'])}")
        print(f"  GC inside the cancel window: {c['gc']['samples_with_gc']} sample(s), at most "
              f"{c['gc']['max_ms_in_a_sample']:.2f} ms; slowest sample "
              f"{c['slowest']['to_run_end_ms']:.3f} ms with {c['slowest']['gc_ms']:.2f} ms of GC")
        if "drained" in c:
            print(f"  runs drained at a step boundary: {c['drained']}/{c['samples']}; repair "
                  f"saved {c['repair_partial']} partial answer(s), answered "
                  f"{c['repair_cancelled_calls']} tool call(s) cancelled")
        if c["mode"] == "immediate":
            goal = targets["cancel_to_run_end_ms"]
            p50, p99 = c["to_run_end_ms"]["p50"], c["to_run_end_ms"]["p99"]
            print(f"  target cancel -> ai-run-end < {goal:g} ms: p50 "
                  f"{'met' if p50 < goal else 'NOT met'}, p99 {'met' if p99 < goal else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000,
                        help="tokens in the tokens/s stream (default 20000)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="tokens/s repetitions per case; medians are reported (default 5)")
    parser.add_argument("--samples", type=int, default=50,
                        help="cancel samples in immediate and in drop-in mode (default 50)")
    parser.add_argument("--drain-samples", type=int, default=5,
                        help="cancel samples in drain mode (default 5; 0 to skip)")
    parser.add_argument("--cancel-after", type=int, default=20,
                        help="tokens the model generates before the client cancels (default 20)")
    parser.add_argument("--token-delay", type=float, default=0.005,
                        help="seconds before each token of the cancel benchmark's model "
                        "(default 0.005)")
    parser.add_argument("--checkpointer", choices=("memory", "sqlite"), default="memory",
                        help="the run_graph cancel samples' checkpointer: InMemorySaver or "
                        "AsyncSqliteSaver on a fresh file per sample (default memory)")
    parser.add_argument("--seed", type=int, default=1, help="cancel jitter seed (default 1)")
    parser.add_argument("--only", choices=("throughput", "cancel"),
                        help="run only one of the two benchmarks")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one RunCallbackHandler repetition and print the top "
                        "entries by own time")
    parser.add_argument("--profile-top", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    if min(args.tokens, args.repeat, args.samples, args.cancel_after) < 1 or (
            args.drain_samples < 0 or args.token_delay <= 0):
        parser.error("--tokens, --repeat, --samples, --cancel-after and --token-delay must be "
                     "positive")

    targets = {"extra_cost_ratio": 1.5, "cancel_to_run_end_ms": 5.0}
    env = _environment()
    throughput: dict[str, Any] | None = None
    cancels: list[dict[str, Any]] = []
    started = time.perf_counter()
    if args.only in (None, "throughput"):
        throughput = asyncio.run(bench_throughput(args.tokens, args.repeat))
    if args.only in (None, "cancel"):
        runs = [("immediate", args.samples, args.cancel_after + 1000),
                ("drop-in", args.samples, args.cancel_after + 1000)]
        if args.drain_samples:  # the step has 2x cancel-after tokens more to stream
            runs.append(("drain", args.drain_samples, 3 * args.cancel_after))
        for mode, samples, reply_tokens in runs:
            cancels.append(asyncio.run(bench_cancel(mode, samples, args.cancel_after,
                                                    reply_tokens, args.token_delay, args.seed,
                                                    args.checkpointer)))
    elapsed = time.perf_counter() - started
    profile = profile_handler(args.tokens, args.profile_top) if args.profile else None

    if args.json:
        print(json.dumps({"environment": env, "arguments": vars(args), "targets": targets,
                          "throughput": throughput, "cancel": cancels, "elapsed_s": elapsed,
                          **({"profile": profile} if profile else {})}, indent=2))
    else:
        _print_report(env, throughput, cancels, targets)
        print(f"\nbenchmarks took {elapsed:.1f} s")
        if profile:
            print("\n[profile] one RunCallbackHandler repetition, by own time:\n")
            print(profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Transport benchmark on the embedded broker: cancel latency under load, and deltas/s.

Run from the repository root::

    .venv/bin/python bench/transport.py              # defaults: 100 runs, 3 rounds, ~25 s
    .venv/bin/python bench/transport.py --json       # machine-readable results
    .venv/bin/python bench/transport.py --profile    # also cProfile one deltas/s case

What it measures (see docs/performance.md for recorded figures):

1. Cancel latency. One ``AgentSession`` hosts ``--runs`` concurrent runs on one
   ``InMemoryBroker`` channel; one ``ClientSession`` watches. Every run pipes an endless
   token source (a text delta, then ``await asyncio.sleep(--token-interval)``), so all runs
   are streaming. The client cancels the runs one after another, each while the others
   keep streaming. A sample is the time from just before ``client.cancel(run_id)`` (which
   publishes ``ai-cancel``) to the client's ``on_message`` listener seeing that run's
   ``ai-run-end`` (both ``time.perf_counter()``). ``--repeat`` rounds, each with fresh
   runs, give ``runs * repeat`` samples.
2. Deltas/s. A pre-built list of ``--deltas`` text-delta chunks (framed by start,
   text-start, text-end, finish) piped through one run, timed from just before
   ``run.pipe`` to the client's listener seeing ``ai-run-end`` (with a folding
   ``ClientSession`` attached), or to the end of the run (agent only: the client detached
   after sending the input). Best and median of ``--repeat`` repetitions.

Diagnostics printed alongside: the event-loop iterations a cancel takes (a callback that
re-schedules itself counts them), garbage-collector pauses (``gc.callbacks``), the rate at
which the cancel benchmark's streams deliver deltas, and the machine's load average.

Not a test: it asserts only that the runs ended the way the scenario requires.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import plot  # bench/plot.py: --plot

from langgraph_interrupt import (
    AgentSession,
    ChannelMessage,
    ClientSession,
    InMemoryBroker,
    Invocation,
    PipeResult,
    __version__,
)

CHANNEL = "ai:bench"
TOKEN = "tok "  # a typical LLM token is ~4 characters
DELTA = {"type": "text-delta", "id": "t0", "delta": TOKEN}
HEAD = [{"type": "start"}, {"type": "start-step"}, {"type": "text-start", "id": "t0"}]
TAIL = [{"type": "text-end", "id": "t0"}, {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"}]
CANCEL_GAP = 0.002  # seconds of streaming between one run's end and the next cancel
WARMUP = 0.2  # seconds every run streams before the first cancel of a round
TIMEOUT = 30.0  # seconds; a cancel that takes longer is a failure, not a sample


def _run_id(message: ChannelMessage) -> str | None:
    extras = message.extras or {}
    return extras.get("ai", {}).get("transport", {}).get("run-id")


class _GCPauses:
    """Records garbage-collector pauses (per generation) while active."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, ms)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"],
                                (time.perf_counter() - self._started) * 1000.0))

    def __enter__(self) -> _GCPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            ms = [p for g, p in self.pauses if g == gen]
            out[f"gen{gen}"] = {"count": len(ms), "max_ms": max(ms, default=0.0),
                                "total_ms": sum(ms)}
        return out


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": _percentile(values, 50), "p90": _percentile(values, 90),
            "p99": _percentile(values, 99), "max": max(values), "min": min(values),
            "mean": statistics.fmean(values)}


# -- 1. cancel latency ----------------------------------------------------------------------
async def _tokens(interval: float) -> AsyncIterator[dict[str, Any]]:
    for chunk in HEAD:
        yield chunk
    while True:
        yield DELTA
        await asyncio.sleep(interval)


async def _drive(session: AgentSession, invocation: Invocation, interval: float) -> PipeResult:
    async with session.create_run(invocation) as run:
        return await run.pipe(_tokens(interval))


async def _cancel_round(n_runs: int, interval: float, rng: random.Random) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    broker = InMemoryBroker()
    client = ClientSession(broker.channel(CHANNEL, client_id="user"))
    await client.connect()
    started: set[str] = set()
    all_started = loop.create_future()
    waiting: dict[str, asyncio.Future[tuple[float, int]]] = {}
    deltas = 0
    # Event-loop iterations between a cancel and its run end: a callback that re-schedules
    # itself runs once per iteration (only while a cancel is outstanding).
    ticks, ticking = 0, False

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticking:
            loop.call_soon(tick)

    def listener(message: ChannelMessage) -> None:
        nonlocal deltas
        name = message.name
        if name is None:
            deltas += 1
        elif name == "ai-run-end":
            arrived = time.perf_counter()
            future = waiting.pop(_run_id(message) or "", None)
            if future is not None and not future.done():
                future.set_result((arrived, ticks))
        elif name == "ai-run-start":
            started.add(_run_id(message) or "")
            if len(started) == n_runs and not all_started.done():
                all_started.set_result(None)

    client.on_message(listener)
    handles = [await client.send(f"question {i}") for i in range(n_runs)]
    session = AgentSession(broker.channel(CHANNEL, client_id="agent"))
    await session.connect()
    tasks = [asyncio.create_task(_drive(session, h.invocation, interval)) for h in handles]
    await asyncio.wait_for(all_started, TIMEOUT)
    await asyncio.sleep(WARMUP)

    run_ids = [h.run_id for h in handles]
    assert all(run_ids), "every run must have started"
    rng.shuffle(run_ids)
    samples: list[tuple[float, int]] = []  # (latency ms, runs streaming when cancelled)
    hops: list[int] = []
    deltas_at_start, phase_start = deltas, time.perf_counter()
    for position, run_id in enumerate(run_ids):
        assert run_id is not None
        future: asyncio.Future[tuple[float, int]] = loop.create_future()
        waiting[run_id] = future
        ticking, ticks = True, 0
        loop.call_soon(tick)
        sent = time.perf_counter()
        await client.cancel(run_id)
        arrived, at_tick = await asyncio.wait_for(future, TIMEOUT)
        ticking = False
        samples.append(((arrived - sent) * 1000.0, n_runs - position))
        hops.append(at_tick)
        await asyncio.sleep(CANCEL_GAP)
    phase = time.perf_counter() - phase_start
    results = await asyncio.gather(*tasks)
    reasons = {r.reason for r in results}
    assert reasons == {"cancelled"}, f"every run must end cancelled, got {reasons}"
    await session.close()
    await client.close()
    return {"samples": samples, "hops": hops, "deltas": deltas - deltas_at_start,
            "seconds": phase}


async def bench_cancel(n_runs: int, rounds: int, interval: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    samples: list[tuple[float, int]] = []
    hops: list[int] = []
    deltas, seconds = 0, 0.0
    gc_pauses = _GCPauses()
    for _ in range(rounds):
        gc.collect()
        with gc_pauses:
            result = await _cancel_round(n_runs, interval, rng)
        samples.extend(result["samples"])
        hops.extend(result["hops"])
        deltas += result["deltas"]
        seconds += result["seconds"]
    latencies = [ms for ms, _ in samples]
    # Split by load: how many runs were still streaming when the cancel was sent.
    quarter = max(1, n_runs // 4)
    by_load = []
    for hi in range(n_runs, 0, -quarter):
        lo = max(1, hi - quarter + 1)
        subset = [ms for ms, live in samples if lo <= live <= hi]
        if subset:
            by_load.append({"streaming": f"{lo}-{hi}", **_summary(subset)})
    return {"runs": n_runs, "rounds": rounds, "token_interval_s": interval,
            "samples": samples,  # (ms, runs streaming): for --plot, not printed
            "latency_ms": _summary(latencies), "latency_ms_by_load": by_load,
            "loop_iterations": {"median": statistics.median(hops), "max": max(hops)},
            "stream_rate_deltas_per_s": deltas / seconds if seconds else 0.0,
            "gc": gc_pauses.summary()}


# -- 2. deltas per second ------------------------------------------------------------------
def _chunks(n: int) -> list[dict[str, Any]]:
    return [*HEAD, *([DELTA] * n), *TAIL]


async def _throughput_once(chunks: list[dict[str, Any]], n: int, with_client: bool,
                           gc_pauses: _GCPauses | None = None) -> float:
    loop = asyncio.get_running_loop()
    broker = InMemoryBroker()
    client = ClientSession(broker.channel(CHANNEL, client_id="user"))
    await client.connect()
    ended = loop.create_future()

    def listener(message: ChannelMessage) -> None:
        if message.name == "ai-run-end" and not ended.done():
            ended.set_result(time.perf_counter())

    client.on_message(listener)
    handle = await client.send("question")
    if not with_client:
        await client.close()  # the input is on the channel; nothing folds from here on
    async with AgentSession(broker.channel(CHANNEL, client_id="agent")) as session:
        with gc_pauses or contextlib.nullcontext():
            async with session.create_run(handle.invocation) as run:
                begin = time.perf_counter()
                result = await run.pipe(chunks)
            finish = time.perf_counter()
            if with_client:
                finish = await asyncio.wait_for(ended, TIMEOUT)
    assert result.reason == "complete", result
    if with_client:
        folded = client.messages[-1]["parts"]
        text = next(p["text"] for p in folded if p["type"] == "text")
        assert len(text) == n * len(TOKEN), "the client must have folded every delta"
        await client.close()
    return n / (finish - begin)


async def bench_throughput(n: int, repeat: int, with_client: bool) -> dict[str, Any]:
    chunks = _chunks(n)
    rates = []
    gc_pauses = _GCPauses()
    for _ in range(repeat):
        gc.collect()
        rates.append(await _throughput_once(chunks, n, with_client, gc_pauses))
    return {"deltas": n, "repeat": repeat, "client": with_client,
            "best_deltas_per_s": max(rates), "median_deltas_per_s": statistics.median(rates),
            "all_deltas_per_s": rates, "gc": gc_pauses.summary()}


def profile_throughput(n: int, top: int) -> str:
    chunks = _chunks(n)
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(_throughput_once(chunks, n, with_client=True))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- reporting ------------------------------------------------------------------------------
def _git_commit() -> str | None:
    """The repository's HEAD (with ``+dirty`` when the package has local changes), if known."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))}


def _fmt_latency(label: str, s: dict[str, float]) -> str:
    return (f"{label:<22} n={s['n']:<4} p50={s['p50']:7.3f}  p90={s['p90']:7.3f}  "
            f"p99={s['p99']:7.3f}  max={s['max']:7.3f} ms")


def _print_report(env: dict[str, Any], cancel: list[dict[str, Any]],
                  throughput: list[dict[str, Any]], targets: dict[str, float]) -> None:
    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
          f"{env['cpu_count']} CPUs, langgraph_interrupt {env['package_version']} "
          f"(commit {env['git_commit']})")
    print(f"command: {env['command']}")
    print(f"1-minute load average before the run: {env['load_average_1m']}")
    for c in cancel:
        print(f"\n[1] cancel -> ai-run-end latency, {c['runs']} concurrent runs, "
              f"token interval {c['token_interval_s']:g} s, {c['rounds']} round(s); "
              f"streams delivered {c['stream_rate_deltas_per_s']:,.0f} deltas/s to the client")
        print(_fmt_latency("all cancels", c["latency_ms"]))
        print(f"{'':<22} event-loop iterations from cancel to run end (+-1): median "
              f"{c['loop_iterations']['median']:g}, max {c['loop_iterations']['max']}")
        for row in c["latency_ms_by_load"]:
            print(_fmt_latency(f"  {row['streaming']} streaming", row))
        pauses = ", ".join(f"{g}: {v['count']} (max {v['max_ms']:.1f} ms)"
                           for g, v in c["gc"].items())
        print(f"{'':<22} GC pauses during the rounds: {pauses}")
        ok = c["latency_ms"]["p99"] <= targets["p99_ms"]
        print(f"target p99 <= {targets['p99_ms']:g} ms: {'met' if ok else 'NOT met'}")
    for t in throughput:
        who = "agent + folding client" if t["client"] else "agent only"
        rates = ", ".join(f"{r:,.0f}" for r in t["all_deltas_per_s"])
        print(f"\n[2] deltas/s through run.pipe, {t['deltas']:,} deltas, {who}")
        print(f"best {t['best_deltas_per_s']:,.0f}/s  median {t['median_deltas_per_s']:,.0f}/s"
              f"  (all: {rates})")
        gc_ms = sum(v["total_ms"] for v in t["gc"].values())
        print(f"GC: {gc_ms:,.0f} ms in {t['repeat']} repetition(s), "
              f"{t['gc']['gen2']['count']} full collection(s), "
              f"longest full collection {t['gc']['gen2']['max_ms']:.0f} ms")
        if t["client"]:
            goal = targets["deltas_per_s"]
            verdicts = [f"{'met' if t[f'{k}_deltas_per_s'] >= goal else 'NOT met'} by the {k}"
                        for k in ("best", "median")]
            print(f"target >= {targets['deltas_per_s']:,.0f} deltas/s: {', '.join(verdicts)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100,
                        help="concurrent streaming runs for the cancel benchmark (default 100)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="cancel rounds (runs*repeat samples) and deltas/s repetitions "
                        "(default 3)")
    parser.add_argument("--deltas", type=int, default=200_000,
                        help="text deltas piped per deltas/s repetition (default 200000)")
    parser.add_argument("--token-interval", type=float, nargs="+", default=[0.0, 0.01],
                        metavar="SECONDS",
                        help="sleep after each token of the cancel benchmark's sources, once "
                        "per value (default: 0 0.01; 0 is asyncio.sleep(0): every run "
                        "streams as fast as the loop allows; 0.01 is ~100 tokens/s per run)")
    parser.add_argument("--seed", type=int, default=1, help="cancel order seed (default 1)")
    parser.add_argument("--only", choices=("cancel", "throughput"),
                        help="run only one of the two benchmarks")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one deltas/s repetition (with client) and print "
                        "the top entries by own time")
    parser.add_argument("--profile-top", type=int, default=25, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="also write the cancel latency distributions as a PNG "
                        "(needs matplotlib: the bench extra)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1 or args.deltas < 1:
        parser.error("--runs, --repeat and --deltas must be positive")
    if args.plot:
        if args.only == "throughput":
            parser.error("--plot draws the cancel benchmark: not with --only throughput")
        plot.require()

    targets = {"p99_ms": 2.0, "deltas_per_s": 50_000.0}
    env = _environment()
    cancel: list[dict[str, Any]] = []
    throughput: list[dict[str, Any]] = []
    started = time.perf_counter()
    if args.only in (None, "cancel"):
        for interval in args.token_interval:
            cancel.append(asyncio.run(bench_cancel(args.runs, args.repeat, interval, args.seed)))
    if args.only in (None, "throughput"):
        for with_client in (True, False):
            throughput.append(asyncio.run(bench_throughput(args.deltas, args.repeat,
                                                           with_client)))
    elapsed = time.perf_counter() - started
    profile = profile_throughput(args.deltas, args.profile_top) if args.profile else None
    samples = [result.pop("samples") for result in cancel]
    if args.plot:
        _plot(args, env, cancel, samples)

    if args.json:
        print(json.dumps({"environment": env, "arguments": vars(args), "targets": targets,
                          "cancel": cancel,
                          "throughput": throughput, "elapsed_s": elapsed,
                          **({"profile": profile} if profile else {})}, indent=2))
    else:
        _print_report(env, cancel, throughput, targets)
        print(f"\nbenchmarks took {elapsed:.1f} s")
        if profile:
            print("\n[profile] one deltas/s repetition with client, by own time:\n")
            print(profile)
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


def _plot(args: argparse.Namespace, env: dict[str, Any], cancel: list[dict[str, Any]],
          samples: list[list[tuple[float, int]]]) -> None:
    """One panel per token interval; a curve per quarter of the runs still streaming."""
    panels = []
    for result, pairs in zip(cancel, samples, strict=True):
        interval = result["token_interval_s"]
        pace = "as fast as the loop allows" if interval == 0 else \
            f"a token every {interval * 1000:g} ms"
        panel = plot.Panel(f"client.cancel → ai-run-end seen; {result['runs']} runs, {pace}")
        for bucket in result["latency_ms_by_load"]:
            lo, hi = (int(x) for x in bucket["streaming"].split("-"))
            panel.series[f"{lo}-{hi} streaming"] = [ms for ms, live in pairs
                                                    if lo <= live <= hi]
        panels.append(panel)
    plot.write_ecdfs(args.plot, "Cancel latency on the embedded broker (bench/transport.py)",
                     panels, log_x=True, note=_note(env))


def _note(env: dict[str, Any]) -> str:
    return (f"{env['cpu_count']} CPUs, load {plot.load(env['load_average_1m'])} before the "
            f"run, {env['implementation']} {env['python']}, commit {env['git_commit']}; "
            f"{env['command'].split('python', 1)[-1].strip()}")


if __name__ == "__main__":
    sys.exit(main())

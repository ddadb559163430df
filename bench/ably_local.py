"""Ably benchmark on the offline broker: cancel latency and deltas/s through the real SDK.

Run from the repository root::

    .venv/bin/python bench/ably_local.py              # defaults: 10 runs, 3 rounds, ~15 s
    .venv/bin/python bench/ably_local.py --json       # machine-readable results
    .venv/bin/python bench/ably_local.py --broker inline   # broker in this process and loop

The agent (``AgentSession``) and the client (``ClientSession``) each have their own
``ably.AblyRealtime`` connection (ably-python 3.1.4, msgpack) and talk through
``AblyChannel`` to the offline broker on 127.0.0.1. By default the broker runs in a child
process (``python -m langgraph_interrupt.testing.ably_broker``), as the service would be
remote; agent and client share this process and its event loop.

What it measures (see docs/performance.md for recorded figures):

1. Cancel latency. ``--runs`` concurrent runs on one channel, each piping an endless
   source (a text delta, then ``await asyncio.sleep(--token-interval)``). The client cancels
   them one after another in a seeded random order while the others keep streaming. A
   sample is the time from just before ``client.cancel(run_id)`` (which publishes
   ``ai-cancel``) to the client's ``on_message`` listener seeing that run's ``ai-run-end``,
   both ``time.perf_counter()``. ``--repeat`` rounds, each with fresh runs and channel.
2. Deltas/s. A pre-built list of ``--deltas`` text deltas (framed by start, text-start,
   text-end, finish) piped through one run, timed from just before ``run.pipe`` to the
   client's listener seeing ``ai-run-end``. Best and median of ``--repeat`` repetitions.

Not a test: it asserts only that the runs ended the way the scenario requires.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from transport import (  # bench/transport.py: the shared percentile and environment helpers
    DELTA,
    HEAD,
    TAIL,
    TOKEN,
    _environment,
    _run_id,
    _summary,
)

from langgraph_interrupt import AgentSession, ChannelMessage, ClientSession, PipeResult
from langgraph_interrupt.channels import AblyChannel
from langgraph_interrupt.testing.ably_broker import AblyBroker
from langgraph_interrupt.testing.ably_broker._client_options import python_client_options

CANCEL_GAP = 0.002  # seconds of streaming between one run's end and the next cancel
WARMUP = 0.2  # seconds every run streams before the first cancel of a round
TIMEOUT = 30.0  # seconds; a cancel that takes longer is a failure, not a sample
ROOT = Path(__file__).resolve().parents[1]


class Broker:
    """Where the broker runs: a child process (default) or this event loop."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._inline: AblyBroker | None = None
        self._process: subprocess.Popen[str] | None = None
        self.port = 0
        self.key = ""

    async def __aenter__(self) -> Broker:
        if self.mode == "inline":
            self._inline = AblyBroker()
            await self._inline.start()
            self.port, self.key = self._inline.port, self._inline.key
            return self
        command = [sys.executable, "-m", "langgraph_interrupt.testing.ably_broker", "--json"]
        self._process = await asyncio.to_thread(
            subprocess.Popen, command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        info = json.loads(await asyncio.to_thread(self._process.stdout.readline))
        self.port, self.key = info["port"], info["key"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._inline is not None:
            await self._inline.stop()
        if self._process is not None:
            self._process.terminate()
            await asyncio.to_thread(self._process.wait, 10)

    def channel(self, name: str, client_id: str) -> AblyChannel:
        """A participant on its own realtime connection (closed by ``AblyChannel.close``)."""
        options = python_client_options("127.0.0.1", self.port, key=self.key,
                                        client_id=client_id)
        return AblyChannel.from_options(name, **options)


# -- 1. cancel latency ----------------------------------------------------------------------
async def _tokens(interval: float) -> AsyncIterator[dict[str, Any]]:
    for chunk in HEAD:
        yield chunk
    while True:
        yield DELTA
        await asyncio.sleep(interval)


async def _drive(session: AgentSession, invocation: Any, interval: float) -> PipeResult:
    async with session.create_run(invocation) as run:
        return await run.pipe(_tokens(interval))


async def _cancel_round(broker: Broker, name: str, n_runs: int, interval: float,
                        rng: random.Random) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    client_channel = broker.channel(name, "user")
    agent_channel = broker.channel(name, "agent")  # the sessions subscribe, then attach
    client = ClientSession(client_channel)
    await client.connect()
    started: set[str] = set()
    all_started: asyncio.Future[None] = loop.create_future()
    waiting: dict[str, asyncio.Future[float]] = {}
    deltas = 0

    def listener(message: ChannelMessage) -> None:
        nonlocal deltas
        if message.name is None:
            deltas += 1
        elif message.name == "ai-run-end":
            arrived = time.perf_counter()
            future = waiting.pop(_run_id(message) or "", None)
            if future is not None and not future.done():
                future.set_result(arrived)
        elif message.name == "ai-run-start":
            started.add(_run_id(message) or "")
            if len(started) == n_runs and not all_started.done():
                all_started.set_result(None)

    client.on_message(listener)
    handles = [await client.send(f"question {i}") for i in range(n_runs)]
    session = AgentSession(agent_channel)
    await session.connect()
    tasks = [asyncio.create_task(_drive(session, h.invocation, interval)) for h in handles]
    await asyncio.wait_for(all_started, TIMEOUT)
    await asyncio.sleep(WARMUP)

    run_ids = [h.run_id for h in handles]
    assert all(run_ids), "every run must have started"
    rng.shuffle(run_ids)
    samples: list[tuple[float, int]] = []
    deltas_at_start, phase_start = deltas, time.perf_counter()
    for position, run_id in enumerate(run_ids):
        assert run_id is not None
        future: asyncio.Future[float] = loop.create_future()
        waiting[run_id] = future
        sent = time.perf_counter()
        await client.cancel(run_id)
        arrived = await asyncio.wait_for(future, TIMEOUT)
        samples.append(((arrived - sent) * 1000.0, n_runs - position))
        await asyncio.sleep(CANCEL_GAP)
    phase = time.perf_counter() - phase_start
    results = await asyncio.gather(*tasks)
    reasons = {r.reason for r in results}
    assert reasons == {"cancelled"}, f"every run must end cancelled, got {reasons}"
    await session.close()
    await client.close()
    await agent_channel.close()
    await client_channel.close()
    return {"samples": samples, "deltas": deltas - deltas_at_start, "seconds": phase}


async def bench_cancel(mode: str, n_runs: int, rounds: int, interval: float,
                       seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    samples: list[tuple[float, int]] = []
    deltas, seconds = 0, 0.0
    async with Broker(mode) as broker:
        for index in range(rounds):
            gc.collect()
            result = await _cancel_round(broker, f"ai:bench-cancel-{index}", n_runs, interval,
                                         rng)
            samples.extend(result["samples"])
            deltas += result["deltas"]
            seconds += result["seconds"]
    return {"runs": n_runs, "rounds": rounds, "token_interval_s": interval,
            "latency_ms": _summary([ms for ms, _ in samples]),
            "stream_rate_deltas_per_s": deltas / seconds if seconds else 0.0}


# -- 2. deltas per second ------------------------------------------------------------------
async def _throughput_once(broker: Broker, name: str, n: int) -> float:
    loop = asyncio.get_running_loop()
    client_channel = broker.channel(name, "user")
    agent_channel = broker.channel(name, "agent")  # the sessions subscribe, then attach
    client = ClientSession(client_channel)
    await client.connect()
    ended: asyncio.Future[float] = loop.create_future()

    def listener(message: ChannelMessage) -> None:
        if message.name == "ai-run-end" and not ended.done():
            ended.set_result(time.perf_counter())

    client.on_message(listener)
    handle = await client.send("question")
    chunks = [*HEAD, *([DELTA] * n), *TAIL]
    async with AgentSession(agent_channel) as session:
        async with session.create_run(handle.invocation) as run:
            begin = time.perf_counter()
            result = await run.pipe(chunks)
        finish = await asyncio.wait_for(ended, TIMEOUT)
    assert result.reason == "complete", result
    text = next(p["text"] for p in client.messages[-1]["parts"] if p["type"] == "text")
    assert len(text) == n * len(TOKEN), "the client must have folded every delta"
    await client.close()
    await agent_channel.close()
    await client_channel.close()
    return n / (finish - begin)


async def bench_throughput(mode: str, n: int, repeat: int) -> dict[str, Any]:
    rates = []
    async with Broker(mode) as broker:
        for index in range(repeat):
            gc.collect()
            rates.append(await _throughput_once(broker, f"ai:bench-deltas-{index}", n))
    return {"deltas": n, "repeat": repeat, "best_deltas_per_s": max(rates),
            "median_deltas_per_s": statistics.median(rates), "all_deltas_per_s": rates}


# -- reporting ------------------------------------------------------------------------------
def _print_report(env: dict[str, Any], mode: str, cancel: list[dict[str, Any]],
                  throughput: dict[str, Any] | None) -> None:
    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
          f"{env['cpu_count']} CPUs, langgraph_interrupt {env['package_version']} "
          f"(commit {env['git_commit']}), ably-python {env['ably_python']}")
    print(f"command: {env['command']}")
    print(f"1-minute load average before the run: {env['load_average_1m']}")
    where = "a child process" if mode == "process" else "this process and event loop"
    print(f"broker: offline AblyBroker on 127.0.0.1 in {where}; agent and client on their "
          "own AblyRealtime connections (msgpack)")
    for c in cancel:
        s = c["latency_ms"]
        print(f"\n[1] cancel -> ai-run-end latency as seen by the client, {c['runs']} concurrent "
              f"runs, token interval {c['token_interval_s']:g} s, {c['rounds']} round(s); "
              f"streams delivered {c['stream_rate_deltas_per_s']:,.0f} deltas/s to the client")
        print(f"n={s['n']}  p50={s['p50']:.3f}  p90={s['p90']:.3f}  p99={s['p99']:.3f}  "
              f"max={s['max']:.3f} ms")
    if throughput is not None:
        t = throughput
        rates = ", ".join(f"{r:,.0f}" for r in t["all_deltas_per_s"])
        print(f"\n[2] streamed deltas/s through run.pipe, {t['deltas']:,} deltas, one run, "
              "until the client folded ai-run-end")
        print(f"best {t['best_deltas_per_s']:,.0f}/s  median {t['median_deltas_per_s']:,.0f}/s"
              f"  (all: {rates})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10,
                        help="concurrent streaming runs for the cancel benchmark (default 10)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="cancel rounds and deltas/s repetitions (default 3)")
    parser.add_argument("--deltas", type=int, default=5_000,
                        help="text deltas piped per deltas/s repetition (default 5000)")
    parser.add_argument("--token-interval", type=float, nargs="+", default=[0.01],
                        metavar="SECONDS",
                        help="sleep after each token of the cancel benchmark's sources, once "
                        "per value (default 0.01: ~100 tokens/s per run)")
    parser.add_argument("--seed", type=int, default=1, help="cancel order seed (default 1)")
    parser.add_argument("--broker", choices=("process", "inline"), default="process",
                        help="run the broker in a child process (default) or in this loop")
    parser.add_argument("--only", choices=("cancel", "throughput"),
                        help="run only one of the two benchmarks")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1 or args.deltas < 1:
        parser.error("--runs, --repeat and --deltas must be positive")

    from importlib import metadata
    env = {**_environment(), "ably_python": metadata.version("ably")}
    cancel: list[dict[str, Any]] = []
    throughput: dict[str, Any] | None = None
    started = time.perf_counter()
    if args.only in (None, "cancel"):
        for interval in args.token_interval:
            cancel.append(asyncio.run(bench_cancel(args.broker, args.runs, args.repeat,
                                                   interval, args.seed)))
    if args.only in (None, "throughput"):
        throughput = asyncio.run(bench_throughput(args.broker, args.deltas, args.repeat))
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"environment": env, "arguments": vars(args), "cancel": cancel,
                          "throughput": throughput, "elapsed_s": elapsed}, indent=2))
    else:
        _print_report(env, args.broker, cancel, throughput)
        print(f"\nbenchmarks took {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

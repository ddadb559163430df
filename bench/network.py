"""Over a delayed link: this package's agent against the official JS agent, side by side.

Run from the repository root (after ``bash scripts/setup_js.sh``)::

    .venv/bin/python bench/network.py                   # delays 0 15 50 ms, ~4-5 min on 2 cores
    .venv/bin/python bench/network.py --delays 15       # one delay
    .venv/bin/python bench/network.py --only cancel tokens --samples 50
    .venv/bin/python bench/network.py --json            # machine-readable
    .venv/bin/python bench/network.py --delays 15 --trace --samples 2    # wire timelines
    .venv/bin/python bench/network.py --agent-ref b7b2e0b   # this package's agent at a commit

Processes, all on 127.0.0.1:

* the offline Ably broker (``python -m langgraph_interrupt.testing.ably_broker``), a child;
* two agents, each behind its own HTTP endpoint and each connected to the broker through its
  own :class:`DelayProxy` (in this process) that holds every byte ``--delays`` ms in each
  direction, so both the realtime websocket and the REST requests of an agent cross the
  delayed link:

  - this package: ``create_agent_app(agent, channel_factory=...)`` under uvicorn with
    ``AblyChannel`` on one ably-python connection (``bench/network_agent.py``, a child);
  - the official JS agent: ``createAgentSession`` + ``createRun`` from
    ``@ably/ai-transport/vercel`` 0.8.0 as its README's "Agent" section shows
    (``tests/js/bench/agent.mjs``, a Node child);

  both stream the same scripted answer (no LLM, no LangGraph) chosen by the POST body;
* the driver, the official JS client (``tests/js/bench/driver.mjs``: ``createClientSession``,
  ``view.send``, the POST, ``session.cancel``, ai@7's ``Chat`` on the Vercel
  ``ChatTransport`` for useChat's Stop), connected straight to the broker, one Node process
  per delay. It interleaves the agents' samples (AB BA AB ...).

Figures per delay and agent, all as the official client sees them (ms from just before
``view.send`` unless said otherwise): POST answered (the POST's round trip, sent once
``view.send`` resolved, as the ChatTransport does), ``ai-run-start`` seen, first text delta
seen, each on the first turn of a fresh conversation and on the next turn of it;
``session.cancel(runId)`` -> ``ai-run-end`` (cancelled) seen; useChat's ``stop()`` ->
``ai-run-end`` (cancelled) seen; and tokens/s of a fast answer (no pause between tokens),
counted from just before ``view.send`` to the run's ``ai-run-end`` seen (the whole answer on
screen and closed), and from the first text delta seen to ``ai-run-end``. Each figure is
printed with its ratio this package / JS. (First to last delta is in the JSON output only:
an agent that coalesces sends the answer in a few messages, which makes it meaningless.)

A benchmark, not a test: it asserts only that each scenario ended as intended (runs complete
or cancelled as scripted, every token delivered). Details in bench/README.md; recorded
figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

import plot  # bench/plot.py: --plot
from ably_local import Broker  # bench/ably_local.py: the broker as a child process
from transport import _environment, _percentile  # bench/transport.py: shared helpers
from wiretap import UP, WireEvent, WireTap  # bench/wiretap.py: decodes what the proxy sees

from langgraph_interrupt.testing.ably_broker._client_options import js_client_options

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "tests" / "js"
AGENTS = ("python", "js")  # "python" is this package
GROUPS = ("turns", "cancel", "stop", "tokens")
READY_TIMEOUT = 30.0  # seconds for a child to say it listens


# -- the delaying proxy ---------------------------------------------------------------------
class DelayProxy:
    """A loopback TCP proxy that forwards each direction ``delay`` seconds late.

    Every chunk read is stamped with ``now + delay`` and queued; one sender per direction
    writes the queue in order, each chunk once its time has come. Reading goes on while the
    sender waits, so the delay adds latency without limiting throughput, and byte order is
    kept. An end of stream is forwarded (``write_eof``) after the same delay. Set ``delay``
    at any time: it applies to what is read from then on. TCP connection set-up itself is
    not delayed (the proxy accepts locally); only data is.
    """

    def __init__(self, target_port: int, delay: float = 0.0, *, trace: bool = False) -> None:
        self.target_port = target_port
        self.delay = delay
        self.trace: list[WireEvent] | None = [] if trace else None  # see wiretap.py
        self.port = 0
        self.connections = 0
        self.bytes = [0, 0]  # agent -> broker, broker -> agent
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # one per connection
        self._pumps: set[asyncio.Task[None]] = set()  # two per connection

    async def start(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, down_reader: asyncio.StreamReader,
                      down_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        pumps: set[asyncio.Task[None]] = set()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self.connections += 1
            tap = None if self.trace is None else WireTap(self.connections, self.trace)
            pumps = {asyncio.create_task(self._pump(down_reader, up_writer, 0, tap)),
                     asyncio.create_task(self._pump(up_reader, down_writer, 1, tap))}
            self._pumps |= pumps
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            if not any(p.cancelled() or p.exception() is not None for p in done):
                await asyncio.wait(pumps)  # each direction forwards its end of stream
        except OSError:
            pass  # the broker refused the connection: close the agent's side
        finally:
            for pump in pumps:  # a side reset or closed: the other side goes too
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps -= pumps
            for writer in (down_writer, up_writer):
                if writer is not None:
                    writer.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: int, tap: WireTap | None) -> None:
        loop = asyncio.get_running_loop()
        queue: collections.deque[tuple[float, bytes]] = collections.deque()
        queued = asyncio.Event()

        async def receive() -> None:
            while True:
                data = await reader.read(1 << 16)
                if tap is not None:
                    tap.feed(direction, data, time.time())
                queue.append((loop.time() + self.delay, data))
                queued.set()
                self.bytes[direction] += len(data)
                if not data:  # end of stream, forwarded in turn
                    return

        async def forward() -> None:
            while True:
                if not queue:
                    queued.clear()
                    await queued.wait()
                    continue
                due, data = queue.popleft()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        tasks = {asyncio.create_task(receive()), asyncio.create_task(forward())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            await asyncio.gather(*tasks)  # the receiver queued the end; let it be forwarded
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# -- child processes ------------------------------------------------------------------------
def node_binary() -> str:
    path = ROOT / ".node" / "NODE_BIN"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `bash scripts/setup_js.sh` first")
    return path.read_text().strip()


def js_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("@ably/ai-transport", "ably", "ai"):
        package = JS_DIR / "node_modules" / name / "package.json"
        out[name] = json.loads(package.read_text()).get("version") if package.is_file() else None
    if out["@ably/ai-transport"] is None:
        raise SystemExit("tests/js/node_modules is missing: run `bash scripts/setup_js.sh` first")
    return out


class Child:
    """A child process that prints one JSON line when it is ready; stderr to a temp file."""

    def __init__(self, name: str, command: list[str], cwd: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.cwd = cwd
        self.env = env
        self.info: dict[str, Any] = {}
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> Child:
        self._process = await asyncio.create_subprocess_exec(
            *self.command, cwd=self.cwd, env=self.env, stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr)
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), READY_TIMEOUT)
            self.info = json.loads(line)
        except (TimeoutError, json.JSONDecodeError) as exc:
            await self.stop()
            error = self.stderr()[-2000:]
            self.close()
            raise RuntimeError(f"{self.name} did not start: {error}") from exc
        return self

    def stderr(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        self._stderr.close()

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        self._process.terminate()
        try:
            await asyncio.wait_for(self._process.wait(), 15)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()


# -- one delay ------------------------------------------------------------------------------
async def drive(config: dict[str, Any], limit: float, progress: bool) -> list[dict[str, Any]]:
    """Run the Node driver once; its sample lines (raises on its error or a hang)."""
    with tempfile.TemporaryFile() as stderr:
        return await _drive(config, limit, progress, stderr)


async def _drive(config: dict[str, Any], limit: float, progress: bool,
                 stderr: IO[bytes]) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        node_binary(), str(JS_DIR / "bench" / "driver.mjs"), json.dumps(config), cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=stderr, limit=1 << 20)
    assert process.stdout is not None
    samples: list[dict[str, Any]] = []
    done = False

    async def read() -> None:
        nonlocal done
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode().strip()
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record["kind"] == "sample":
                samples.append(record)
                if progress:
                    print(".", end="", file=sys.stderr, flush=True)
            elif record["kind"] == "error":
                raise RuntimeError(f"driver: {record['agent']} agent, {record['group']} "
                                   f"sample {record['index']}: {record['error']}")
            elif record["kind"] == "group":
                samples.append(record)
            elif record["kind"] == "done":
                done = True

    try:
        await asyncio.wait_for(read(), limit)
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        raise RuntimeError(f"the driver did not finish within {limit:.0f} s") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if progress:
            print(file=sys.stderr, flush=True)
    if not done:
        stderr.seek(0)
        raise RuntimeError("the driver stopped early: "
                           + stderr.read().decode(errors="replace")[-3000:])
    return samples


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per agent: the figures of one delay (medians; p50/p99 nearest rank for cancels)."""
    out: dict[str, dict[str, Any]] = {}
    for agent in AGENTS:
        mine = [s for s in samples if s["kind"] == "sample" and s["agent"] == agent]
        by = {g: [s for s in mine if s["group"] == g] for g in GROUPS}
        figures: dict[str, Any] = {}
        for which in ("first", "next"):
            rows = [s[which] for s in by["turns"]]
            if rows:
                figures[f"{which}_post_ms"] = _median([r["postMs"] for r in rows])
                handled = [r["postServerMs"] for r in rows if r.get("postServerMs") is not None]
                if handled:
                    figures[f"{which}_post_server_ms"] = _median(handled)
                figures[f"{which}_start_ms"] = _median([r["startMs"] for r in rows])
                figures[f"{which}_delta_ms"] = _median([r["firstDeltaMs"] for r in rows])
                figures[f"{which}_send_ms"] = _median([r["sendMs"] for r in rows])
        for group, key in (("cancel", "cancelMs"), ("stop", "stopMs")):
            values = [s[key] for s in by[group]]
            if values:
                figures[f"{group}_p50_ms"] = _percentile(values, 50)
                figures[f"{group}_p99_ms"] = _percentile(values, 99)
                figures[f"{group}_max_ms"] = max(values)
                figures[f"{group}_n"] = len(values)
        if by["cancel"]:
            figures["hold_delta_ms"] = _median([s["turn"]["firstDeltaMs"] for s in by["cancel"]])
        rows = by["tokens"]
        if rows:
            figures["tokens_per_s"] = _median(
                [r["tokens"] / (r["sendToEndMs"] / 1000.0) for r in rows])
            figures["tokens_per_s_first_to_end"] = _median(
                [r["tokens"] / ((r["sendToEndMs"] - r["firstDeltaMs"]) / 1000.0) for r in rows])
            # Degenerate when the agent coalesces the answer into a few messages: kept in the
            # JSON output only.
            figures["tokens_per_s_first_to_last"] = _median(
                [r["tokensAfterFirst"] / (r["firstToLastMs"] / 1000.0)
                 for r in rows if r["firstToLastMs"] > 0])
            figures["tokens_messages"] = _median([r["messages"] for r in rows])
            figures["tokens_n"] = len(rows)
        out[agent] = figures
    return out


# -- wire timelines (--trace) ----------------------------------------------------------------
TRACE_ROWS = 80  # at most this many rows per timeline


def _timeline(events: list[WireEvent], epoch_ms: float, span_ms: float, channel: str,
              delay_ms: float, marks: list[tuple[float, str, str]]) -> list[str]:
    """Client marks and the agent's wire events from ``epoch_ms`` to ``span_ms`` after it.

    Agent -> broker events are placed when the agent sent them (the proxy read them), and
    broker -> agent events when they reached the agent (read + delay): the agent's view of
    the link. The client's marks are in the client's time (the same machine's clock).
    """
    rows = list(marks)
    for event in events:
        if event.channel is not None and event.channel != channel:
            continue
        at = event.at * 1000.0 - epoch_ms + (0.0 if event.direction == UP else delay_ms)
        if -0.5 <= at <= span_ms + 0.5:
            who = "agent -> broker" if event.direction == UP else "broker -> agent"
            rows.append((at, who, event.text))
    rows.sort(key=lambda row: row[0])
    lines = [f"{at:8.1f} ms  {who:<15}  {text}" for at, who, text in rows[:TRACE_ROWS]]
    if len(rows) > TRACE_ROWS:
        lines.append(f"{'':>11}  ... {len(rows) - TRACE_ROWS} more")
    return lines


def timelines(samples: list[dict[str, Any]], events: dict[str, list[WireEvent]],
              delay: float) -> dict[str, dict[str, list[str]]]:
    """Per agent: the first traced turn, next turn and cancel of one delay."""
    out: dict[str, dict[str, list[str]]] = {}
    for agent in AGENTS:
        mine = [s for s in samples if s["kind"] == "sample" and s["agent"] == agent]
        turns = next((s for s in mine if s["group"] == "turns"), None)
        cancel = next((s for s in mine if s["group"] == "cancel"), None)
        items: dict[str, list[str]] = {}
        if turns is not None:
            for which in ("first", "next"):
                f = turns[which]
                marks = [(0.0, "client", "view.send called"),
                         (f["sendMs"], "client", "view.send resolved (input published), POST"),
                         (f["sendMs"] + f["postMs"], "client", "POST answered"),
                         (f["startMs"], "client", "ai-run-start seen"),
                         (f["firstDeltaMs"], "client", "first text delta seen")]
                items[f"{which} turn"] = _timeline(events[agent], f["epochMs"],
                                                   f["firstDeltaMs"], f["channel"], delay, marks)
        if cancel is not None:
            marks = [(0.0, "client", "session.cancel(runId) called"),
                     (cancel["cancelPublishMs"], "client", "ai-cancel published (acknowledged)"),
                     (cancel["cancelMs"], "client", "ai-run-end (cancelled) seen")]
            items["cancel"] = _timeline(events[agent], cancel["epochMs"], cancel["cancelMs"],
                                        cancel["channel"], delay, marks)
        out[agent] = items
    return out


# -- reporting ------------------------------------------------------------------------------
ROWS = [  # (key, label, unit)
    ("first_post_ms", "POST answered, first turn", "ms"),
    ("next_post_ms", "POST answered, next turn", "ms"),
    ("first_post_server_ms", "POST handled in the agent, first turn", "ms"),
    ("next_post_server_ms", "POST handled in the agent, next turn", "ms"),
    ("first_start_ms", "send -> ai-run-start, first turn", "ms"),
    ("next_start_ms", "send -> ai-run-start, next turn", "ms"),
    ("first_delta_ms", "send -> first text delta, first turn", "ms"),
    ("next_delta_ms", "send -> first text delta, next turn", "ms"),
    ("cancel_p50_ms", "session.cancel -> cancelled, p50", "ms"),
    ("cancel_p99_ms", "session.cancel -> cancelled, p99", "ms"),
    ("stop_p50_ms", "useChat stop() -> cancelled, p50", "ms"),
    ("stop_p99_ms", "useChat stop() -> cancelled, p99", "ms"),
    ("tokens_per_s", "fast answer, send -> run end", "tok/s"),
    ("tokens_per_s_first_to_end", "fast answer, first delta -> run end", "tok/s"),
    ("tokens_messages", "fast answer, messages carrying text", ""),
]


def round_trips(results: dict[float, dict[str, dict[str, Any]]]
                ) -> dict[float, dict[str, dict[str, float]]]:
    """Round trips a delay adds to each ms figure: (figure - figure at 0 ms) / (2 x delay)."""
    out: dict[float, dict[str, dict[str, float]]] = {}
    if 0 not in results:
        return out
    for delay, figures in results.items():
        if delay <= 0:
            continue
        out[delay] = {}
        for agent, mine in figures.items():
            base = results[0][agent]
            out[delay][agent] = {
                key: (mine[key] - base[key]) / (2 * delay)
                for key, _, unit in ROWS
                if unit == "ms" and mine.get(key) is not None and base.get(key) is not None}
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if unit == "tok/s" or not unit else f"{value:.1f}"


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return ours / theirs if ours is not None and theirs else None


def targets(results: dict[float, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The issue's acceptance targets, judged on the delays that were measured."""
    out: list[dict[str, Any]] = []

    def add(name: str, delay: float, value: float | None, limit: float | None,
            text: str) -> None:
        met = None if value is None or limit is None else value <= limit
        out.append({"target": name, "delay_ms": delay, "value": value, "limit": limit,
                    "met": met, "text": text})

    for delay, figures in results.items():
        py, js = figures["python"], figures["js"]
        if delay == 15:
            add("cancel p50 <= 55 ms", delay, py.get("cancel_p50_ms"), 55.0,
                "session.cancel -> cancelled p50 (ms)")
            add("cancel p99 <= 75 ms", delay, py.get("cancel_p99_ms"), 75.0,
                "session.cancel -> cancelled p99 (ms)")
            for which in ("first", "next"):
                add(f"send -> first delta, {which} turn <= 0.6x JS", delay,
                    _ratio(py.get(f"{which}_delta_ms"), js.get(f"{which}_delta_ms")), 0.6,
                    "ratio this package / JS")
            ours, theirs = py.get("tokens_per_s"), js.get("tokens_per_s")
            add("tokens/s >= JS", delay, _ratio(theirs, ours), 1.0,
                "ratio JS / this package (<= 1 is met)")
        if delay in (0, 15, 50):
            for which in ("first", "next"):
                add(f"POST answered, {which} turn, no slower than JS", delay,
                    _ratio(py.get(f"{which}_post_ms"), js.get(f"{which}_post_ms")), 1.0,
                    "ratio this package / JS (<= 1 is met)")
    return out


def print_report(env: dict[str, Any], args: argparse.Namespace, out: dict[str, Any]) -> None:
    results: dict[float, dict[str, dict[str, Any]]] = out["results"]
    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
          f"{env['cpu_count']} CPUs, langgraph_interrupt {env['package_version']} "
          f"(commit {env['git_commit']}, git describe {env['git_describe']}), "
          f"ably-python {env['ably_python']}")
    print(f"Node {env['node']}, @ably/ai-transport {env['js']['@ably/ai-transport']}, "
          f"ably {env['js']['ably']}, ai {env['js']['ai']}")
    print(f"command: {env['command']}")
    print(f"1-minute load average before the run: {env['load_average_1m']}")
    print(f"this package's agent runs from: {env['agent_source']}, event loop "
          f"{out.get('agent_loop')}")
    print("agents: this package (create_agent_app + AblyChannel, uvicorn, child process) and "
          "the official JS agent (createAgentSession + createRun per POST as its README, "
          "Node child); each behind its own proxy to the broker")
    print(f"scripts: text {args.text_tokens} tokens at {args.text_interval_ms:g} ms; hold "
          f"{args.hold_tokens} tokens at {args.hold_interval_ms:g} ms (cancelled); fast "
          f"{args.tokens} tokens, no pause; {args.think_ms:g} ms pause after each run ended; "
          f"{args.open_ms:g} ms from a conversation's channel opening to its first send; "
          f"this package's agent {'prewarms' if args.prewarm else 'does not prewarm'} sessions")
    for delay, figures in results.items():
        n, took = out["counts"][delay], out["seconds"][delay]
        print(f"\n== one-way delay {delay:g} ms between each agent and the broker "
              f"(round trip {2 * delay:g} ms); clients straight to the broker ==")
        print("samples per agent (both agents' time): " + ", ".join(
            f"{g} {n.get(g, 0)} ({took[g]:.0f} s)" for g in GROUPS if g in took))
        rts = round_trips(results).get(delay, {})
        py, js = figures["python"], figures["js"]
        py_rt, js_rt = rts.get("python", {}), rts.get("js", {})
        print("ms figures: medians, or p50/p99 (nearest rank); RTs: round trips the delay "
              "adds, (figure - figure at 0 ms) / round trip")
        print(f"{'figure':<38} {'unit':>5} {'package':>9} {'RTs':>5} {'JS agent':>9} "
              f"{'RTs':>5} {'package/JS':>10}")
        for key, label, unit in ROWS:
            if key not in py and key not in js:
                continue
            ratio = _ratio(py.get(key), js.get(key)) if unit else None
            shown = f"{ratio:.2f}x" if ratio is not None else "-"
            a = f"{py_rt[key]:.1f}" if key in py_rt else ""
            b = f"{js_rt[key]:.1f}" if key in js_rt else ""
            print(f"{label:<38} {unit:>5} {_fmt(py.get(key), unit):>9} {a:>5} "
                  f"{_fmt(js.get(key), unit):>9} {b:>5} {shown:>10}")
    print("\ntargets (issue 10):")
    for t in targets(results):
        state = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  {t['delay_ms']:g} ms: {t['target']:<46} {value:>8}  {state}  ({t['text']})")
    for delay, per_agent in out["traces"].items():
        for agent, items in per_agent.items():
            who = "this package" if agent == "python" else "the JS agent"
            for what, lines in items.items():
                print(f"\nwire timeline, {who}, {what}, one-way delay {delay:g} ms (agent -> "
                      "broker: when the agent sent it; broker -> agent: when it arrived)")
                for line in lines:
                    print(line)
    proxy_info = out["proxy"]
    print(f"\nproxy: {proxy_info['connections']} connections, agent->broker "
          f"{proxy_info['bytes_up']:,} bytes, broker->agent {proxy_info['bytes_down']:,} bytes")


# -- main -----------------------------------------------------------------------------------
def _git_describe() -> str | None:
    try:
        return subprocess.run(["git", "describe", "--dirty", "--always", "--tags"], cwd=ROOT,
                              text=True, capture_output=True, check=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _config(args: argparse.Namespace, delay: float, broker: Broker,
            agents: dict[str, str], groups: list[str]) -> dict[str, Any]:
    ably = js_client_options("127.0.0.1", broker.port, key=broker.key)
    samples = {"turns": args.turn_samples, "cancel": args.samples, "stop": args.stop_samples,
               "tokens": args.token_samples}
    return {
        "ably": ably,
        "agents": [{"name": name, "url": url} for name, url in agents.items()],
        "prefix": f"ai:net-{uuid.uuid4().hex[:6]}-d{delay:g}",
        "groups": groups,
        "samples": samples,
        "scripts": {
            "text": {"tokens": args.text_tokens, "intervalMs": args.text_interval_ms},
            "hold": {"tokens": args.hold_tokens, "intervalMs": args.hold_interval_ms},
            "fast": {"tokens": args.tokens, "intervalMs": 0},
        },
        "turnsPerConversation": args.turns_per_conversation,
        "thinkMs": args.think_ms,
        "openMs": args.open_ms,
        "seed": args.seed,
        "timeoutMs": int(args.step_timeout * 1000),
        # the fast answer may take a round trip per token (an agent awaiting each append)
        "tokensTimeoutMs": int((args.step_timeout + 1.5 * args.tokens * 2 * delay / 1000) * 1000),
    }


def export_package(ref: str, into: str) -> dict[str, str]:
    """``git archive REF langgraph_interrupt`` into ``into``; the agent child's environment."""
    archive = subprocess.run(["git", "archive", ref, "langgraph_interrupt"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    path = os.pathsep.join(p for p in (into, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


async def run(args: argparse.Namespace, progress: bool) -> dict[str, Any]:
    groups = [g for g in GROUPS if not args.only or g in args.only]
    with tempfile.TemporaryDirectory(prefix="network-agent-") as package_dir:
        agent_env = export_package(args.agent_ref, package_dir) if args.agent_ref else None
        return await _run(args, progress, groups, agent_env)


async def _run(args: argparse.Namespace, progress: bool, groups: list[str],
               agent_env: dict[str, str] | None) -> dict[str, Any]:
    results: dict[float, dict[str, dict[str, Any]]] = {}
    raw: dict[float, list[dict[str, Any]]] = {}
    counts: dict[float, dict[str, int]] = {}
    seconds: dict[float, dict[str, float]] = {}
    traces: dict[float, dict[str, dict[str, list[str]]]] = {}
    children: list[Child] = []
    proxies: list[DelayProxy] = []
    async with Broker("process") as broker:
        try:
            proxies = [await DelayProxy(broker.port, trace=args.trace).start() for _ in AGENTS]
            py_proxy, js_proxy = proxies
            python_agent = await Child("this package's agent", [
                sys.executable, str(ROOT / "bench" / "network_agent.py"),
                "--ably-port", str(py_proxy.port), "--key", broker.key,
                *(["--loop", args.agent_loop] if args.agent_loop != "auto" else []),
                *(["--prewarm"] if args.prewarm else [])], ROOT,
                agent_env).start()
            children.append(python_agent)
            js_ably = js_client_options("127.0.0.1", js_proxy.port, key=broker.key)
            js_agent = await Child("the JS agent", [
                node_binary(), str(JS_DIR / "bench" / "agent.mjs"),
                json.dumps({"ably": js_ably})],
                JS_DIR).start()
            children.append(js_agent)
            agents = {"python": f"http://127.0.0.1:{python_agent.info['port']}/api/chat",
                      "js": f"http://127.0.0.1:{js_agent.info['port']}/api/chat"}
            for delay in args.delays:
                for proxy in proxies:
                    proxy.delay = delay / 1000.0
                await asyncio.sleep(0.2 + 2 * delay / 1000.0)  # let queued bytes drain
                if progress:
                    print(f"delay {delay:g} ms: ", end="", file=sys.stderr, flush=True)
                samples = await drive(_config(args, delay, broker, agents, groups),
                                      args.max_seconds, progress)
                raw[delay] = samples
                results[delay] = summarise(samples)
                counts[delay] = dict(collections.Counter(
                    s["group"] for s in samples
                    if s["kind"] == "sample" and s["agent"] == "python"))
                seconds[delay] = {s["group"]: s["seconds"] for s in samples
                                  if s["kind"] == "group"}
                if args.trace:
                    traces[delay] = timelines(samples, {
                        agent: proxy.trace or [] for agent, proxy in zip(AGENTS, proxies,
                                                                         strict=True)}, delay)
                    for proxy in proxies:
                        proxy.trace.clear()  # the connections' WireTaps hold this list
        finally:
            for child in reversed(children):
                await child.stop()
            stderr = {child.name: child.stderr() for child in children}
            for child in children:
                child.close()
            for proxy in proxies:
                await proxy.close()
    package = children[0].info.get("package") if children else None
    loop_name = children[0].info.get("loop", "asyncio") if children else None
    return {"results": results, "samples": raw, "counts": counts, "seconds": seconds,
            "agent_stderr": stderr, "traces": traces,
            "agent_package": package, "agent_loop": loop_name,
            "proxy": {"connections": sum(p.connections for p in proxies),
                      "bytes_up": sum(p.bytes[0] for p in proxies),
                      "bytes_down": sum(p.bytes[1] for p in proxies)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="this package's agent's event loop (uvicorn's --loop; default "
                        "auto: uvloop when installed, as uvicorn[standard] in production)")
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 15, 50], metavar="MS",
                        help="one-way delays between each agent and the broker, in ms "
                        "(default 0 15 50)")
    parser.add_argument("--samples", type=int, default=30,
                        help="session.cancel samples per agent and delay (default 30)")
    parser.add_argument("--turn-samples", type=int, default=8,
                        help="conversations (first + next turn) per agent and delay (default 8)")
    parser.add_argument("--stop-samples", type=int, default=10,
                        help="useChat Stop samples per agent and delay (default 10)")
    parser.add_argument("--token-samples", type=int, default=3,
                        help="fast answers per agent and delay (default 3)")
    parser.add_argument("--tokens", type=int, default=1000,
                        help="tokens of the fast answer (default 1000)")
    parser.add_argument("--text-tokens", type=int, default=10,
                        help="tokens of the turns' answer (default 10)")
    parser.add_argument("--text-interval-ms", type=float, default=10.0,
                        help="ms between two tokens of the turns' answer (default 10)")
    parser.add_argument("--hold-tokens", type=int, default=1500,
                        help="tokens of the answer that gets cancelled (default 1500)")
    parser.add_argument("--hold-interval-ms", type=float, default=20.0,
                        help="ms between two tokens of the answer that gets cancelled "
                        "(default 20)")
    parser.add_argument("--think-ms", type=float, default=250.0,
                        help="pause after each run ended, before the next send (default 250)")
    parser.add_argument("--open-ms", type=float, default=0.0,
                        help="turns: pause between a conversation's channel opening and its "
                        "first send, as a user reading and typing (default 0)")
    parser.add_argument("--prewarm", action="store_true",
                        help="this package's agent opens a session when a client opens its "
                        "channel (create_agent_app(prewarm=True)), before the first POST")
    parser.add_argument("--turns-per-conversation", type=int, default=10,
                        help="cancel, stop and fast-answer turns per conversation (default 10)")
    parser.add_argument("--only", nargs="+", choices=GROUPS,
                        help="measure only these groups")
    parser.add_argument("--agent-ref", metavar="GIT_REF",
                        help="run this package's agent from a git ref (git archive of "
                        "langgraph_interrupt/ into a temporary directory) instead of the "
                        "working tree; the broker and the benchmark still use the working tree")
    parser.add_argument("--trace", action="store_true",
                        help="decode what crosses the proxies and print, per delay and agent, "
                        "the wire timeline of the first traced turn, next turn and cancel")
    parser.add_argument("--seed", type=int, default=1, help="cancel phase seed (default 1)")
    parser.add_argument("--step-timeout", type=float, default=20.0,
                        help="seconds the driver waits for any one event (default 20)")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="hard limit for the driver at one delay (default 900)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="also write the latency distributions (cancel, useChat stop, "
                        "first text delta) per delay and agent as a PNG (needs matplotlib: "
                        "the bench extra)")
    args = parser.parse_args(argv)
    if args.plot:
        plot.require()
    counts = (args.samples, args.turn_samples, args.stop_samples, args.token_samples)
    if min(counts) < 0 or max(counts) == 0 or args.tokens < 1 or args.hold_tokens < 2:
        parser.error("sample counts must not be negative and tokens must be positive")
    if any(d < 0 for d in args.delays):
        parser.error("--delays must not be negative")

    from importlib import metadata
    node = subprocess.run([node_binary(), "--version"], capture_output=True, text=True,
                          check=False).stdout.strip()
    agent_source = f"working tree, commit {_environment()['git_commit']}"
    if args.agent_ref:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", args.agent_ref], cwd=ROOT,
                                    text=True, capture_output=True, check=True,
                                    timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            parser.error(f"--agent-ref {args.agent_ref}: not a git ref here")
        agent_source = f"git ref {args.agent_ref}, commit {commit} (clean export)"
    env = {**_environment(), "git_describe": _git_describe(), "agent_source": agent_source,
           "ably_python": metadata.version("ably"), "node": node, "js": js_versions()}
    started = time.perf_counter()
    out = asyncio.run(run(args, progress=True))
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"environment": env, "arguments": vars(args),
                          "results": {f"{d:g}": r for d, r in out["results"].items()},
                          "targets": targets(out["results"]),
                          "round_trips": {f"{d:g}": r
                                          for d, r in round_trips(out["results"]).items()},
                          "samples": {f"{d:g}": s for d, s in out["samples"].items()},
                          "proxy": out["proxy"], "agent_stderr": out["agent_stderr"],
                          "agent_loop": out.get("agent_loop"),
                          "traces": {f"{d:g}": t for d, t in out["traces"].items()},
                          "elapsed_s": elapsed}, indent=2))
    else:
        print_report(env, args, out)
        for name, text in out["agent_stderr"].items():
            lines = [line for line in text.splitlines() if line.strip()]
            if lines:
                print(f"{name} wrote {len(lines)} line(s) to stderr; the last: {lines[-1][:300]}")
        print(f"\nbenchmark took {elapsed:.1f} s")
    if args.plot:
        write_plot(args.plot, env, out["samples"])
        if not args.json:
            print(f"plot: {args.plot}")
    return 0


PLOTTED = (  # (title, curves: (label, agent, sample group, value of a sample))
    ("session.cancel → cancelled seen",
     (("this package", "python", "cancel", lambda s: s["cancelMs"]),
      ("official JS agent", "js", "cancel", lambda s: s["cancelMs"]))),
    ("useChat stop() → cancelled seen",
     (("this package", "python", "stop", lambda s: s["stopMs"]),
      ("official JS agent", "js", "stop", lambda s: s["stopMs"]))),
    ("send → first text delta seen",
     (("this package, first turn", "python", "turns", lambda s: s["first"]["firstDeltaMs"]),
      ("JS agent, first turn", "js", "turns", lambda s: s["first"]["firstDeltaMs"]),
      ("this package, next turn", "python", "turns", lambda s: s["next"]["firstDeltaMs"]),
      ("JS agent, next turn", "js", "turns", lambda s: s["next"]["firstDeltaMs"]))),
)


def write_plot(path: str, env: dict[str, Any], samples: dict[float, list[dict[str, Any]]]
               ) -> None:
    """A row per figure measured, a column per delay: each panel both agents' ECDFs."""
    delays = sorted(samples)
    panels = []
    for title, curves in PLOTTED:
        row = []
        for delay in delays:
            panel = plot.Panel(f"{title}, {delay:g} ms one-way")
            for label, agent, group, value in curves:
                panel.series[label] = [value(s) for s in samples[delay]
                                       if s["kind"] == "sample" and s["agent"] == agent
                                       and s["group"] == group]
                # the agent is the color, the next turn dashed
                panel.styles[label] = {"color": plot.COLORS[agent == "js"],
                                       "linestyle": "--" if "next" in label else "-"}
            row.append(panel)
        if any(any(p.series.values()) for p in row):
            panels.extend(row)
    plot.write_ecdfs(path, "Over a delayed link, in the official client's view "
                     "(bench/network.py)", panels, columns=len(delays),
                     note=_plot_note(env))


def _plot_note(env: dict[str, Any]) -> str:
    load = env.get("load_average_1m")
    return (f"{env['cpu_count']} CPUs, load {plot.load(load)} before the run, "
            f"{env['implementation']} {env['python']}, {env.get('git_describe')}; "
            f"agent from {env.get('agent_source')}; "
            f"{env['command'].split('python', 1)[-1].strip()}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

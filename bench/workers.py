"""Several agent worker processes on the offline broker and Postgres: starting runs, a
cancel-all storm, memory per run, and the time to end a dead worker's runs.

Run from the repository root::

    .venv/bin/python bench/workers.py                       # 2 then 4 workers, 1,000 runs
    .venv/bin/python bench/workers.py --workers 4 --runs 200 --presence-leave-timeout 2000

Processes, each on its own: the offline broker (``python -m
langgraph_interrupt.testing.ably_broker``, a fresh one per worker count, presence leave
timeout ``--presence-leave-timeout``), one throwaway PostgreSQL cluster (``initdb`` in a
temporary directory; the checkpointer's tables set up before the workers start), and N
worker processes (``tests/workers/worker_app.py``: uvicorn + ``create_agent_app`` with
``AblyChannel``, ``workers="ai-workers"``, an ``AsyncPostgresSaver`` pool). This process
is every user: ``--clients`` ably-python connections sharing the sessions, one
``ClientSession`` per session, and the load balancer (POSTs go round-robin to the workers).

The agent (``--agent``): ``pipe`` (default) pipes one text delta every ``--token-interval``
seconds until the run is cancelled; ``graph`` runs the LangGraph graph of the worker tests
(the strict fake model calls ``slow_job``, which reports a tick every ``--token-interval``
seconds until cancelled; every step is checkpointed in Postgres, and a cancel repairs the
thread there before the run ends).

For each worker count, in order:

1. **Start.** ``--runs`` runs in total, one session each (``--runs-per-session`` more in one
   session, as concurrent runs): the client publishes the input, then POSTs it to worker
   ``i mod N``, at most ``--concurrency`` POSTs in flight. *Runs/s started*: runs divided by
   the time from the first input published to the last ``ai-run-start`` the clients saw.
2. **Memory.** After the runs streamed for ``--warmup`` seconds: the workers' resident
   memory (``VmRSS``) minus theirs before the first run, divided by the runs.
3. **Cancel-all storm.** Every session's client publishes the cancels of its runs
   (``cancel_runs(all=True)``: one publish per session), all sessions at once. A sample is
   ``RunInfo.cancel_latency``: from just before that client's publish of ``ai-cancel`` to
   its folding the run's ``ai-run-end``, on its own clock. Two more views of the same
   cancels, without this process's queue of 1,000 publishes: on the broker's clock, from
   its timestamp of the ``ai-cancel`` to its timestamp of the ``ai-run-end`` (what the
   workers took, plus the broker's hops), and from the ``ai-cancel``'s timestamp to a client
   folding the ``ai-run-end``. Also: the storm's span (first publish to last run end), the
   CPU seconds each process used during it (``/proc/<pid>/stat``) and the garbage
   collector's time (``gc.callbacks``, in this process and in the workers). Then every run
   must have ended ``cancelled`` for its client and no worker may still hold a run
   (``GET /test/state`` on each).
4. **Orphaned runs.** ``--orphans`` new runs (default: one worker's share, runs / N), all on
   worker 0; once every one has streamed, worker 0 is killed with SIGKILL. A sample is the
   time from the kill to the client folding that run's ``ai-run-end{error}`` (code 50300,
   ended by a surviving worker). Reported with the broker's presence leave timeout, which
   is most of it (Ably's is 15 s, the default here).

Where the time goes: ``--spy SECONDS`` samples this process, the broker and the last worker
with ``py-spy`` during the storm (``pip install py-spy``); ``--profile N`` runs cProfile in
this process and every worker during the storm (or ``--profile-phase start``), slower but
by function. ``--gc-freeze`` / ``--worker-gc-freeze`` call ``gc.freeze()`` before the storm
here and once started in the workers. Everything shares the machine's CPUs: the load average
before the run is printed.

The results are printed as a table, then as one JSON line. Not a test: it asserts only that
every run ended the way the scenario requires (and exits 1 if one did not).
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
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The repository root, not bench/, first: bench/langgraph.py would shadow LangGraph.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

import aiohttp  # noqa: E402
from ably import AblyRealtime  # type: ignore[import-untyped]  # noqa: E402

from langgraph_interrupt import ChannelMessage, ClientSession, __version__  # noqa: E402
from langgraph_interrupt._wire import (  # noqa: E402
    EVENT_CANCEL,
    EVENT_RUN_END,
    H_RUN_ID,
    read_envelope,
)
from langgraph_interrupt.channels import AblyChannel  # noqa: E402
from langgraph_interrupt.testing._postgres import PostgresCluster  # noqa: E402
from tests.workers.processes import (  # noqa: E402
    BrokerProcess,
    Deployment,
    WorkerProcess,
    database,
)

TIMEOUT = 180.0  # seconds for any one phase; longer is a failure, not a figure
TARGET_P99_MS = 100.0


# -- helpers ---------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": min(values), "p50": percentile(values, 50),
            "p90": percentile(values, 90), "p99": percentile(values, 99), "max": max(values),
            "mean": statistics.fmean(values)}


def rss_kib(pid: int) -> int:
    """Resident memory of a process (``VmRSS``), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class GcPauses:
    """Garbage-collector time in this process (``gc.callbacks``; CPU time of the thread,
    so that a pause is not inflated by other processes running meanwhile)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._began
            self.count += 1

    def reset(self) -> tuple[float, int]:
        seconds, count = self.seconds, self.count
        self.seconds, self.count = 0.0, 0
        return seconds, count


GC = GcPauses()


class CpuMeter:
    """CPU seconds used by this process (the clients), the broker and the workers between
    :meth:`start` and :meth:`stop`, and the wall time between them."""

    def __init__(self, broker: int, workers: list[int]) -> None:
        self.pids = {"clients": os.getpid(), "broker": broker,
                     **{f"worker {i}": pid for i, pid in enumerate(workers)}}
        self._began: dict[str, float] = {}
        self._wall = 0.0

    def start(self) -> None:
        self._began = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wall = time.monotonic()
        GC.reset()

    def stop(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) - self._began[name] for name, pid in self.pids.items()}
        workers = sum(v for k, v in used.items() if k.startswith("worker"))
        gc_seconds, collections = GC.reset()
        return {"wall_s": time.monotonic() - self._wall, "clients_s": used["clients"],
                "broker_s": used["broker"], "workers_s": workers,
                "clients_gc_s": gc_seconds, "clients_gc_collections": collections}


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "package_version": __version__, "git_commit": commit,
            "ably_python": metadata.version("ably"),
            "load_average_1m": os.getloadavg()[0],
            "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))}


@dataclass
class Stamps:
    """Broker timestamps (ms) of each run's ``ai-cancel`` and ``ai-run-end``, and this
    process's wall clock (ms) when a client folded the ``ai-run-end``."""

    cancel: dict[str, int] = field(default_factory=dict)
    end: dict[str, int] = field(default_factory=dict)
    end_seen: dict[str, float] = field(default_factory=dict)

    def listen(self, client: ClientSession) -> None:
        def on_message(message: ChannelMessage) -> None:
            if message.name not in (EVENT_CANCEL, EVENT_RUN_END):
                return
            envelope = read_envelope(message.extras)
            run_id = envelope.transport.get(H_RUN_ID) if envelope is not None else None
            if not run_id:
                return
            if message.name == EVENT_CANCEL:
                self.cancel.setdefault(run_id, message.timestamp)
            elif run_id not in self.end:
                self.end[run_id] = message.timestamp
                self.end_seen[run_id] = time.time() * 1000
        client.on_message(on_message)

    def broker_ms(self, run_ids: list[str]) -> list[float]:
        """``ai-cancel`` accepted by the broker to ``ai-run-end`` accepted by it."""
        return [float(self.end[r] - self.cancel[r]) for r in run_ids
                if r in self.end and r in self.cancel]

    def seen_ms(self, run_ids: list[str]) -> list[float]:
        """``ai-cancel`` accepted by the broker to a client folding ``ai-run-end``."""
        return [self.end_seen[r] - self.cancel[r] for r in run_ids
                if r in self.end_seen and r in self.cancel]


@dataclass
class Users:
    """The clients: ``count`` realtime connections, sessions spread over them."""

    broker: BrokerProcess
    count: int
    connections: list[AblyRealtime] = field(default_factory=list)
    sessions: list[ClientSession] = field(default_factory=list)
    stamps: Stamps = field(default_factory=Stamps)

    def open(self) -> None:
        self.connections = [AblyRealtime(**self.broker.client_options(f"user-{i}"))
                            for i in range(self.count)]

    async def session(self, name: str, index: int, gate: asyncio.Semaphore) -> ClientSession:
        client = ClientSession(AblyChannel(self.connections[index % self.count], name))
        self.stamps.listen(client)
        async with gate:
            await client.connect()
        self.sessions.append(client)
        return client

    async def close(self) -> None:
        for client in self.sessions:
            with contextlib.suppress(Exception):
                await client.close()
        for connection in self.connections:
            with contextlib.suppress(Exception):
                await connection.close()


async def run_seen(client: ClientSession, run_id: str) -> None:
    await client.wait_for(lambda s: s.run(run_id) is not None, timeout=TIMEOUT)


async def start_runs(users: Users, workers: list[WorkerProcess], prefix: str, runs: int,
                     per_session: int, concurrency: int
                     ) -> tuple[list[tuple[ClientSession, list[str]]], float]:
    """Start ``runs`` runs (``per_session`` per session), POSTed round-robin to ``workers``;
    return each session with its run ids, and the seconds from the first input published
    to the last ``ai-run-start`` seen."""
    gate = asyncio.Semaphore(concurrency)
    n_sessions = -(-runs // per_session)
    clients = await asyncio.gather(*(users.session(f"{prefix}-{i}", i, gate)
                                     for i in range(n_sessions)))
    # aiohttp, not httpx: httpx's pool scans every connection for each queued request,
    # which made this process, not the workers, the bottleneck of the start.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        async def one(index: int, client: ClientSession, count: int) -> list[str]:
            run_ids: list[str] = []
            for _ in range(count):
                async with gate:
                    handle = await client.send("slow job please")
                    worker = workers[(index * per_session + len(run_ids)) % len(workers)]
                    async with http.post(f"{worker.url}/api/chat",
                                         json=handle.invocation.to_json()) as response:
                        response.raise_for_status()
                        run_ids.append((await response.json())["runId"])
            for run_id in run_ids:
                await run_seen(client, run_id)
            return run_ids

        counts = [min(per_session, runs - i * per_session) for i in range(n_sessions)]
        began = time.monotonic()
        started = await asyncio.wait_for(asyncio.gather(
            *(one(i, c, n) for i, (c, n) in enumerate(zip(clients, counts, strict=True)))),
            TIMEOUT)
        took = time.monotonic() - began
    return list(zip(clients, started, strict=True)), took


def answers_streaming(client: ClientSession) -> int:
    """Assistant messages with some output (a text delta or a tick) folded."""
    return sum(1 for m in client.messages if m["role"] == "assistant" and any(
        (p["type"] == "text" and p.get("text")) or p["type"] == "data-tick"
        for p in m["parts"]))


async def streamed(sessions: list[tuple[ClientSession, list[str]]]) -> None:
    """Until every session's client has folded some output of each of its runs."""
    async def one(client: ClientSession, runs: int) -> None:
        await client.wait_for(lambda s: answers_streaming(s) >= runs, timeout=TIMEOUT)
    await asyncio.gather(*(one(c, len(r)) for c, r in sessions))


class Spy:
    """``py-spy record`` (when installed) sampling processes during the storm
    (``--spy``): where their CPU went, by the file of the innermost frame, and the hottest
    innermost frames. Sampling does not slow the processes down the way cProfile does."""

    def __init__(self, args: argparse.Namespace, pids: dict[str, int], logs: Path) -> None:
        self.seconds = args.spy
        self.pids = pids
        self.logs = logs
        self.running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self) -> None:
        if not self.seconds:
            return
        binary = Path(sys.executable).with_name("py-spy")
        for name, pid in self.pids.items():
            out = self.logs / f"spy-{name}-{pid}.txt"
            command = [str(binary), "record", "-p", str(pid), "-d", str(self.seconds),
                       "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"]
            with out.with_suffix(".log").open("w") as log:
                self.running[name] = (subprocess.Popen(command, stdout=log, stderr=log), out)

    def stop(self, result: dict[str, Any]) -> None:
        spied: dict[str, Any] = {}
        for name, (process, out) in self.running.items():
            process.wait()
            if out.exists():
                spied[name] = self.summarise(out)
            else:
                spied[name] = {"samples": 0, "by_area": {}, "top": [],
                               "error": out.with_suffix(".log").read_text().strip()[-300:]}
        if spied:
            result["spy"] = spied

    @staticmethod
    def summarise(path: Path) -> dict[str, Any]:
        by_area: dict[str, int] = {}
        by_frame: dict[str, int] = {}
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            samples = int(count)
            leaf = stack.rsplit(";", 1)[-1]
            total += samples
            by_frame[leaf] = by_frame.get(leaf, 0) + samples
            area = "other"
            for key in ("langgraph_interrupt", "ably", "websockets", "asyncio", "msgpack",
                        "aiohttp", "pyee", "uvicorn", "starlette", "psycopg", "json"):
                if f"/{key}/" in leaf or f"{key}/" in leaf.split("(", 1)[-1]:
                    area = key
                    break
            by_area[area] = by_area.get(area, 0) + samples
        top = sorted(by_frame.items(), key=lambda item: -item[1])[:12]
        return {"samples": total,
                "by_area": {k: round(v / total, 3) for k, v in
                            sorted(by_area.items(), key=lambda item: -item[1])} if total else {},
                "top": [(frame, round(n / total, 3)) for frame, n in top] if total else []}


class Profiler:
    """cProfile of this process (the clients) and of every worker during one phase
    (``--profile N --profile-phase``): the top N functions by own time of the clients and
    of the last worker go into the result."""

    def __init__(self, args: argparse.Namespace, workers: list[WorkerProcess],
                 phase: str) -> None:
        self.top = args.profile if args.profile_phase == phase else 0
        self.workers = workers
        self.profile = cProfile.Profile(time.thread_time)  # CPU time, not wall time

    async def start(self) -> None:
        if self.top:
            await asyncio.gather(*(w.profile("start") for w in self.workers))
            self.profile.enable()

    async def stop(self, result: dict[str, Any]) -> None:
        if not self.top:
            return
        self.profile.disable()
        stats = [await w.profile("stop", self.top) for w in self.workers]
        out = io.StringIO()
        pstats.Stats(self.profile, stream=out).sort_stats("tottime").print_stats(self.top)
        result["profile"] = {"clients": out.getvalue(), "last_worker": stats[-1]}


# -- one worker count ------------------------------------------------------------------------
async def bench_deployment(args: argparse.Namespace, n_workers: int, pg: PostgresCluster,
                           logs: Path) -> dict[str, Any]:
    broker = BrokerProcess(args.presence_leave_timeout, logs).start()
    extra = ["--agent", args.agent, "--token-interval", str(args.token_interval),
             "--tick", str(args.token_interval), "--pool-size", str(args.pool_size),
             *(["--no-echo"] if args.no_echo else []),
             *(["--gc-freeze"] if args.worker_gc_freeze else [])]
    deployment = Deployment(broker, pg, logs, control="ai-workers", extra_args=extra)
    users = Users(broker, args.clients)
    result: dict[str, Any] = {"workers": n_workers, "runs": args.runs}
    try:
        workers = deployment.start(*(f"w{i}" for i in range(n_workers)))
        users.open()
        rss_before = {w.name: rss_kib(w.pid) for w in workers}
        prefix = f"ai:bench-{n_workers}-{os.getpid()}"

        # 1. start
        profiler = Profiler(args, workers, "start")
        await profiler.start()
        sessions, took = await start_runs(users, workers, prefix, args.runs,
                                          args.runs_per_session, args.concurrency)
        await profiler.stop(result)
        result["start_seconds"] = took
        result["runs_per_s_started"] = args.runs / took
        await streamed(sessions)

        # 2. memory
        meter = CpuMeter(broker.process.pid, [w.pid for w in workers])  # type: ignore[union-attr]
        meter.start()
        await asyncio.sleep(args.warmup)  # every run streams meanwhile
        result["cpu_streaming"] = meter.stop()
        rss_after = {w.name: rss_kib(w.pid) for w in workers}
        delta = sum(rss_after.values()) - sum(rss_before.values())
        result["rss_kib_before"], result["rss_kib_after"] = rss_before, rss_after
        result["memory_kib_per_run"] = delta / args.runs

        # 3. cancel-all storm
        profiler = Profiler(args, workers, "storm")
        await profiler.start()
        spy = Spy(args, {"clients": os.getpid(), "broker": broker.process.pid,  # type: ignore[union-attr]
                         f"worker {n_workers - 1}": workers[-1].pid}, logs)
        spy.start()
        if args.gc_freeze:  # the clients' heap: the benchmark's, not the workers'
            gc.collect()
            gc.freeze()
        gc_before = [(await w.state())["gc"] for w in workers]
        meter.start()
        storm_began = time.monotonic()
        await asyncio.gather(*(c.cancel_runs(all=True) for c, _ in sessions))
        published = time.monotonic()

        async def ended(client: ClientSession, run_ids: list[str]) -> None:
            for run_id in run_ids:
                await client.wait_run_ended(run_id, timeout=TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*(ended(c, r) for c, r in sessions)), TIMEOUT)
        result["cpu_storm"] = meter.stop()
        gc_after = [(await w.state())["gc"] for w in workers]
        result["workers_gc_storm"] = {
            "seconds": sum(a["seconds"] - b["seconds"]
                           for a, b in zip(gc_after, gc_before, strict=True)),
            "collections": sum(a["collections"] - b["collections"]
                               for a, b in zip(gc_after, gc_before, strict=True)),
            "longest_ever": max(a["longest"] for a in gc_after)}
        await profiler.stop(result)
        spy.stop(result)
        infos = [c.run(r) for c, run_ids in sessions for r in run_ids]
        statuses = sorted({i.status if i else "missing" for i in infos})
        latencies = [i.cancel_latency * 1000 for i in infos
                     if i is not None and i.cancel_latency is not None]
        last_end = max(i.ended_at for i in infos if i is not None and i.ended_at is not None)
        all_runs = [r for _, run_ids in sessions for r in run_ids]
        result["cancel_ms"] = summary(latencies)
        result["cancel_broker_ms"] = summary(users.stamps.broker_ms(all_runs))
        result["cancel_seen_ms"] = summary(users.stamps.seen_ms(all_runs))
        result["storm_publish_ms"] = (published - storm_began) * 1000
        result["storm_span_ms"] = (last_end - storm_began) * 1000
        result["statuses_after_storm"] = statuses
        result["left_active_clients"] = sum(1 for i in infos if i is None or not i.ended)
        states = [await w.state() for w in workers]
        result["left_active_workers"] = sum(len(s["open_runs"]) + s["agents_running"]
                                            for s in states)

        # 4. orphaned runs
        victim, survivors = workers[0], workers[1:]
        orphans = args.orphans if args.orphans is not None else args.runs // n_workers
        orphaned, _ = await start_runs(users, [victim], f"{prefix}-orphan", orphans, 1,
                                       args.concurrency)
        await streamed(orphaned)
        killed_at = time.monotonic()
        victim.kill()
        await asyncio.wait_for(asyncio.gather(*(ended(c, r) for c, r in orphaned)),
                               args.presence_leave_timeout / 1000 + TIMEOUT)
        oinfos = [c.run(r) for c, run_ids in orphaned for r in run_ids]
        waits = [(i.ended_at - killed_at) * 1000 for i in oinfos
                 if i is not None and i.ended_at is not None]
        result["orphans"] = orphans
        result["orphan_end_ms"] = summary(waits)
        result["orphan_statuses"] = sorted({f"{i.status}:{i.error_code}" for i in oinfos if i})
        result["presence_leave_timeout_ms"] = args.presence_leave_timeout
        result["orphans_ended_by"] = {w.name: (await w.state())["orphans_ended"]
                                      for w in survivors}
    except BaseException:
        for worker in deployment.workers.values():
            print(f"--- worker {worker.name} (exit {worker.process.poll()}), last lines of its "
                  f"log:\n{worker.log_tail()}", file=sys.stderr)
        raise
    finally:
        await users.close()
        deployment.stop()
        broker.stop()
    return result


# -- report ----------------------------------------------------------------------------------
def check(result: dict[str, Any]) -> list[str]:
    problems = []
    if result["statuses_after_storm"] != ["cancelled"]:
        problems.append(f"runs ended {result['statuses_after_storm']} after the storm")
    if result["left_active_clients"] or result["left_active_workers"]:
        problems.append("runs left active")
    if result["orphan_statuses"] != ["error:50300"]:
        problems.append(f"orphaned runs ended {result['orphan_statuses']}")
    return problems


def print_table(env: dict[str, Any], args: argparse.Namespace,
                results: list[dict[str, Any]]) -> None:
    print(f"Python {env['python']} on {env['platform']}, {env['cpu_count']} CPUs, "
          f"langgraph_interrupt {env['package_version']} (commit {env['git_commit']}), "
          f"ably-python {env['ably_python']}; 1-minute load average before: "
          f"{env['load_average_1m']:.2f}")
    print(f"command: {env['command']}")
    print(f"agent: {args.agent}, one {'delta' if args.agent == 'pipe' else 'tick'} every "
          f"{args.token_interval:g} s per run; {args.runs_per_session} run(s) per session; "
          f"{args.clients} client connections; broker presence leave timeout "
          f"{args.presence_leave_timeout} ms\n")
    header = ("workers", "runs", "started/s", "KiB/run", "cancel p50", "p99", "max",
              "storm span", "left active", "orphans", "orphan end first", "p50", "last")
    rows = []
    for r in results:
        c, o = r["cancel_ms"], r["orphan_end_ms"]
        rows.append((str(r["workers"]), f"{r['runs']:,}", f"{r['runs_per_s_started']:.0f}",
                     f"{r['memory_kib_per_run']:.1f}", f"{c['p50']:.0f} ms",
                     f"{c['p99']:.0f} ms", f"{c['max']:.0f} ms",
                     f"{r['storm_span_ms']:.0f} ms",
                     str(r["left_active_clients"] + r["left_active_workers"]),
                     str(r["orphans"]), f"{o['min'] / 1000:.2f} s", f"{o['p50'] / 1000:.2f} s",
                     f"{o['max'] / 1000:.2f} s"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for line in (header, *rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
    for r in results:
        verdict = "meets" if r["cancel_ms"]["p99"] <= TARGET_P99_MS else "misses"
        b, seen = r["cancel_broker_ms"], r["cancel_seen_ms"]
        print(f"\n{r['workers']} workers: from the broker accepting ai-cancel to it accepting "
              f"ai-run-end: p50 {b['p50']:.0f} p99 {b['p99']:.0f} max {b['max']:.0f} ms; to a "
              f"client folding ai-run-end: p50 {seen['p50']:.0f} p99 {seen['p99']:.0f} ms")
        for phase in ("streaming", "storm"):
            cpu = r[f"cpu_{phase}"]
            print(f"{r['workers']} workers, CPU while {phase} ({cpu['wall_s']:.2f} s): clients "
                  f"{cpu['clients_s']:.2f} s (of which GC {cpu['clients_gc_s']:.2f} s), broker "
                  f"{cpu['broker_s']:.2f} s, workers {cpu['workers_s']:.2f} s")
        g = r["workers_gc_storm"]
        print(f"{r['workers']} workers, GC in the workers during the storm: "
              f"{g['collections']} collections, {g['seconds']:.2f} s; longest pause since "
              f"start {g['longest_ever'] * 1000:.0f} ms")
        print(f"{r['workers']} workers: cancel p99 {r['cancel_ms']['p99']:.0f} ms {verdict} "
              f"the {TARGET_P99_MS:.0f} ms target; storm publishes took "
              f"{r['storm_publish_ms']:.0f} ms; orphaned runs ended by "
              f"{r['orphans_ended_by']} ({r['orphan_statuses']}); RSS KiB before "
              f"{r['rss_kib_before']} after {r['rss_kib_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="N agent worker processes on the offline broker and PostgreSQL: runs "
        "started/s, memory per run, cancel-all storm latency, time to end a dead worker's "
        "runs (see the module docstring).")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4], metavar="N",
                        help="worker processes, one deployment per value (default: 2 4)")
    parser.add_argument("--runs", type=int, default=1000,
                        help="concurrent runs in total (default 1000)")
    parser.add_argument("--runs-per-session", type=int, default=1,
                        help="concurrent runs in one session (default 1)")
    parser.add_argument("--agent", choices=("pipe", "graph"), default="pipe",
                        help="pipe: text deltas until cancelled (default); graph: the "
                        "LangGraph agent's slow tool, checkpointed in Postgres")
    parser.add_argument("--token-interval", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between a run's deltas (pipe) or ticks (graph) "
                        "(default 1.0)")
    parser.add_argument("--clients", type=int, default=10,
                        help="client realtime connections the sessions share (default 10)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="POSTs and session connects in flight (default 100)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds the runs stream before memory is read (default 2)")
    parser.add_argument("--orphans", type=int, default=None,
                        help="runs on the worker that is killed (default: runs / workers)")
    parser.add_argument("--presence-leave-timeout", type=int, default=15_000, metavar="MS",
                        help="the broker's presence leave timeout for a lost connection "
                        "(default 15000, Ably's)")
    parser.add_argument("--pool-size", type=int, default=10,
                        help="Postgres connections per worker (default 10)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="cProfile this process (the clients) and every worker during "
                        "one phase; print the top N functions by own time of the clients "
                        "and of the last worker")
    parser.add_argument("--spy", type=int, default=0, metavar="SECONDS",
                        help="sample this process, the broker and the last worker with "
                        "py-spy (pip install py-spy) for SECONDS from the storm's start")
    parser.add_argument("--profile-phase", choices=("start", "storm"), default="storm",
                        help="the phase --profile covers (default storm)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() in this process before the storm (its 1,000 "
                        "sessions are the harness, not the system measured)")
    parser.add_argument("--worker-gc-freeze", action="store_true",
                        help="workers call gc.freeze() once started")
    parser.add_argument("--no-echo", action="store_true",
                        help="workers connect with echo=false (Ably's echoMessages: their "
                        "own messages are not delivered back to them)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.runs_per_session < 1 or min(args.workers) < 2:
        parser.error("--runs and --runs-per-session must be positive, --workers at least 2")

    env = environment()
    results = []
    with tempfile.TemporaryDirectory(prefix="lgi-bench-") as tmp, database("bench") as pg:
        for n in args.workers:
            results.append(asyncio.run(bench_deployment(args, n, pg, Path(tmp))))
    print_table(env, args, results)
    for r in results:
        for name, spied in r.pop("spy", {}).items():
            print(f"\n[py-spy] {name} during the storm, {spied['samples']} samples; by the "
                  f"innermost frame's package: {spied['by_area']} {spied.get('error', '')}")
            for frame, share in spied["top"]:
                print(f"  {share:6.1%}  {frame}")
        if "profile" in r:
            profile = r.pop("profile")
            print(f"\n[profile] the clients during the {args.profile_phase}, {r['workers']} "
                  "workers:")
            print(profile["clients"])
            print(f"\n[profile] worker {r['workers'] - 1} during the {args.profile_phase}:")
            print(profile["last_worker"])
    print(json.dumps({"environment": env, "arguments": vars(args), "results": results}))
    problems = [f"{r['workers']} workers: {p}" for r in results for p in check(r)]
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Barge-in latency: the ``interrupt`` multitask strategy against the client's cancel-then-send.

Run from the repository root (after ``bash scripts/setup_js.sh``)::

    .venv/bin/python bench/bargein.py                    # delays 0 15 50 ms + in process, ~4 min
    .venv/bin/python bench/bargein.py --delays 15 --samples 50
    .venv/bin/python bench/bargein.py --only in-process  # no Node, no network (~25 s)
    .venv/bin/python bench/bargein.py --json             # machine-readable (every sample)
    .venv/bin/python bench/bargein.py --delays 0 50 --samples 10 --trace   # the wire
    .venv/bin/python bench/bargein.py --agent-ref HEAD   # the package from a commit

A long answer streams (slow tokens); once the client has seen its first delta, plus a seeded
random part of one token interval, the user barges in with a new message. Three ways, each
timed from that moment (t0), in the client's view:

* **A, ``interrupt``**: the agent's endpoint runs ``create_agent_app(multitask="interrupt")``.
  The client only sends: ``view.send`` + the POST. The endpoint cancels the streaming run
  (``ai-run-end`` cancelled, ``x-cancel-reason: new_input``) and starts the new one.
* **B, cancel, wait, send** (what a front end does today, and what the ``@ably/ai-transport``
  README's UI amounts to: its Stop is ``void session.cancel(runId)``, and its Send button is
  back once ``useChat`` stops streaming, that is once the run ended): ``session.cancel(runId)``,
  wait until the run is seen ``cancelled``, then ``view.send`` + POST, against the default
  ``concurrent`` endpoint.
* **B', cancel + send**: ``session.cancel(runId)`` not awaited (the README's ``void``) and
  ``view.send`` + POST at once, against the same ``concurrent`` endpoint: both runs live
  until the cancel lands.

Figures from t0: the old run's ``ai-run-end`` (cancelled) seen, the new run's ``ai-run-start``
seen, the new run's first text delta seen. Medians and p90 (nearest rank) per delay, the
difference B - A (and B' - A) in ms and in round trips (2 x delay), and the target of issue 12:
A reaches the new run's first token at least one round trip sooner than B at 15 and 50 ms.

Over the network: the infrastructure of ``bench/network.py`` (imported from it): the offline
broker in a child process; two ``bench/network_agent.py`` children (this package's agent,
``--multitask interrupt`` and ``--multitask concurrent``), each reaching the broker through
its own :class:`DelayProxy` that holds every byte ``--delays`` ms in each direction; the
official JS client (``tests/js/bench/driver.mjs``, group ``bargein``) straight to the broker,
one Node process per delay, the three ways interleaved (sample i of each before sample i + 1,
the order alternating). In process: the same three ways on the in-memory broker with this
package's ``ClientSession`` and the endpoint under httpx's ASGI transport (no network, no
Node): the agent's own cost.

A benchmark, not a test: it asserts only that each scenario ended as intended (the old run
cancelled, the new one complete). Details in bench/README.md; figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import plot  # bench/plot.py: --plot
from ably_local import Broker  # bench/ably_local.py: the broker as a child process
from network import (  # bench/network.py: the delayed link and its children
    ROOT,
    Child,
    DelayProxy,
    _git_describe,
    _timeline,
    drive,
    export_package,
    js_versions,
    node_binary,
)
from network_agent import agent as scripted_agent  # the agent both children serve
from transport import _environment, _percentile  # bench/transport.py: shared helpers
from wiretap import DOWN, UP  # bench/wiretap.py: directions of what the proxy saw

import langgraph_interrupt
from langgraph_interrupt import ClientSession, InMemoryBroker
from langgraph_interrupt._wire import (
    EVENT_RUN_END,
    EVENT_RUN_START,
    H_CANCEL_REASON,
    H_INPUT_CODEC_MESSAGE_ID,
    H_RUN_ID,
    H_RUN_REASON,
    read_envelope,
)
from langgraph_interrupt.testing.ably_broker._client_options import js_client_options

MODES = ("interrupt", "cancel-wait", "cancel-send")
LABELS = {"interrupt": "A  interrupt (agent)", "cancel-wait": "B  cancel, wait, send",
          "cancel-send": "B' cancel + send"}
STRATEGY = {"interrupt": "interrupt", "cancel-wait": "concurrent", "cancel-send": "concurrent"}
FIGURES = (("cancelledMs", "old run cancelled seen"), ("startMs", "new ai-run-start seen"),
           ("firstDeltaMs", "new first text delta seen"))
TARGET_DELAYS = (15.0, 50.0)
# --agent-ref: the exported package's directory and commit, set for the re-executed process
EXPORT_DIR, EXPORT_COMMIT = "BARGEIN_PACKAGE_DIR", "BARGEIN_PACKAGE_COMMIT"


# -- summaries --------------------------------------------------------------------------------
def summarise(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per mode: n, and median / p90 (nearest rank) of each figure."""
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        mine = [s for s in samples if s.get("kind", "sample") == "sample"
                and s.get("mode") == mode]
        if not mine:
            continue
        figures: dict[str, Any] = {"n": len(mine)}
        for key, _ in FIGURES:
            values = [s[key] for s in mine]
            figures[f"{key}_p50"] = statistics.median(values)
            figures[f"{key}_p90"] = _percentile(values, 90)
        figures["postMs_p50"] = statistics.median(s["postMs"] for s in mine)
        figures["sendAtMs_p50"] = statistics.median(s["sendAtMs"] for s in mine)
        figures["old_end_before_new_start"] = sum(bool(s["oldBeforeNewStart"]) for s in mine)
        out[mode] = figures
    return out


def compare(summary: dict[str, dict[str, Any]], delay: float | None) -> dict[str, Any]:
    """B - A and B' - A on the new run's first delta (medians and p90s), in ms and round
    trips; the target (B - A >= one round trip) where a delay is given and targeted."""
    out: dict[str, Any] = {}
    a = summary.get("interrupt")
    for mode, name in (("cancel-wait", "b_minus_a"), ("cancel-send", "b2_minus_a")):
        b = summary.get(mode)
        if a is None or b is None:
            continue
        for q in ("p50", "p90"):
            diff = b[f"firstDeltaMs_{q}"] - a[f"firstDeltaMs_{q}"]
            out[f"{name}_{q}_ms"] = diff
            out[f"{name}_{q}_rt"] = diff / (2 * delay) if delay else None
    if delay in TARGET_DELAYS and "b_minus_a_p50_ms" in out:
        assert delay is not None
        out["target"] = {"text": f"A's first token >= one round trip ({2 * delay:g} ms) "
                                 "sooner than B's (medians)",
                         "value_ms": out["b_minus_a_p50_ms"], "limit_ms": 2 * delay,
                         "met": out["b_minus_a_p50_ms"] >= 2 * delay}
    return out


# -- in process: the in-memory broker, ClientSession, the endpoint over httpx ------------------
class Watch:
    """When this client folded each run's start (by input), end and first text append."""

    def __init__(self, client: ClientSession) -> None:
        self.starts: dict[str, tuple[float, str]] = {}  # input cmid -> (t, run id)
        self.ends: dict[str, tuple[float, str | None, str | None]] = {}  # run -> (t, why)
        self.first: dict[str, float] = {}  # run id -> t of its first non-empty append
        client.on_message(self._on)

    def _on(self, message: Any) -> None:
        t = time.perf_counter()
        envelope = read_envelope(message.extras)
        if envelope is None:
            return
        h = envelope.transport
        run_id = h.get(H_RUN_ID)
        if run_id is None:
            return
        if message.name == EVENT_RUN_START:
            self.starts.setdefault(h.get(H_INPUT_CODEC_MESSAGE_ID, ""), (t, run_id))
        elif message.name == EVENT_RUN_END:
            self.ends.setdefault(run_id, (t, h.get(H_RUN_REASON), h.get(H_CANCEL_REASON)))
        elif message.name is None and isinstance(message.data, str) and message.data:
            self.first.setdefault(run_id, t)  # the script's only appends are text deltas


class InProcess:
    """One endpoint per strategy on one in-memory broker, driven over httpx's ASGI transport."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.broker = InMemoryBroker()
        self.http: dict[str, Any] = {}
        self.random = random.Random(args.seed)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[InProcess]:
        import httpx

        from langgraph_interrupt.server import create_agent_app

        async with contextlib.AsyncExitStack() as stack:
            for strategy in ("interrupt", "concurrent"):
                app = create_agent_app(
                    scripted_agent,
                    channel_factory=lambda name: self.broker.channel(name, client_id="agent"),
                    allow_session=lambda name: name.startswith("ai:"), multitask=strategy)
                await stack.enter_async_context(app.router.lifespan_context(app))
                self.http[strategy] = await stack.enter_async_context(httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://agent.test"))
            yield self

    async def post(self, mode: str, handle: Any, script: dict[str, Any]) -> float:
        t = time.perf_counter()
        response = await self.http[STRATEGY[mode]].post(
            "/api/chat", json={**handle.invocation.to_json(), **script})
        if response.status_code != 200:
            raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
        return time.perf_counter() - t

    async def sample(self, mode: str, client: ClientSession, watch: Watch) -> dict[str, Any]:
        args, timeout = self.args, self.args.step_timeout
        hold = {"tokens": args.hold_tokens, "intervalMs": args.hold_interval_ms}
        text = {"tokens": args.text_tokens, "intervalMs": args.text_interval_ms}
        old = await client.send("hold please")
        await self.post(mode, old, hold)
        old_id = (await client.wait_for(lambda s: watch.starts.get(old.codec_message_id),
                                        timeout=timeout))[1]
        await client.wait_for(lambda s: watch.first.get(old_id), timeout=timeout)
        await asyncio.sleep(self.random.random() * args.hold_interval_ms / 1000.0)
        t0 = time.perf_counter()
        send_at = 0.0
        if mode == "cancel-wait":
            await client.cancel(old_id)
            await client.wait_for(lambda s: watch.ends.get(old_id), timeout=timeout)
            send_at = time.perf_counter() - t0
        elif mode == "cancel-send":
            await client.cancel(old_id)  # the publish only (in-memory: at once), then send
        new = await client.send("no, something else")
        sent = time.perf_counter() - t0
        post = await self.post(mode, new, text)
        started, new_id = await client.wait_for(
            lambda s: watch.starts.get(new.codec_message_id), timeout=timeout)
        first = await client.wait_for(lambda s: watch.first.get(new_id), timeout=timeout)
        end_t, reason, why = await client.wait_for(lambda s: watch.ends.get(old_id),
                                                   timeout=timeout)
        expected = "new_input" if mode == "interrupt" else "client_request"
        if (reason, why) != ("cancelled", expected):
            raise RuntimeError(f"{mode}: the old run ended {reason} ({why}), "
                               f"expected cancelled ({expected})")
        new_end = await client.wait_for(lambda s: watch.ends.get(new_id), timeout=timeout)
        if new_end[1] != "complete":
            raise RuntimeError(f"{mode}: the new run ended {new_end[1]}, expected complete")
        await asyncio.sleep(args.think_ms / 1000.0)
        return {"kind": "sample", "mode": mode, "cancelledMs": (end_t - t0) * 1000,
                "startMs": (started - t0) * 1000, "firstDeltaMs": (first - t0) * 1000,
                "sendAtMs": send_at * 1000, "sentMs": sent * 1000,
                "postMs": post * 1000, "oldBeforeNewStart": end_t <= started}

    async def run(self, progress: bool) -> list[dict[str, Any]]:
        samples: list[dict[str, Any]] = []
        prefix = f"ai:bargein-{uuid.uuid4().hex[:6]}"
        async with self.serving():
            clients: dict[str, tuple[ClientSession, Watch]] = {}
            used: dict[str, int] = dict.fromkeys(MODES, 0)
            blocks: dict[str, int] = dict.fromkeys(MODES, 0)
            try:
                for index in range(-1, self.args.in_process_samples):  # -1: warm-up
                    order = MODES if index % 2 == 0 else tuple(reversed(MODES))
                    for mode in order:
                        if mode not in clients or used[mode] >= self.args.turns_per_conversation:
                            if mode in clients:
                                await clients[mode][0].close()
                            name = f"{prefix}-{mode}-{blocks[mode]}"
                            blocks[mode] += 1
                            client = ClientSession(self.broker.channel(name, client_id="user"))
                            await client.connect()
                            clients[mode], used[mode] = (client, Watch(client)), 0
                        used[mode] += 1
                        sample = await self.sample(mode, *clients[mode])
                        if index >= 0:
                            samples.append(sample)
                            if progress:
                                print(".", end="", file=sys.stderr, flush=True)
            finally:
                for client, _ in clients.values():
                    await client.close()
                if progress:
                    print(file=sys.stderr, flush=True)
        return samples


# -- over the network: bench/network.py's set-up ------------------------------------------------
def _config(args: argparse.Namespace, delay: float, broker: Broker,
            urls: dict[str, str]) -> dict[str, Any]:
    ably = js_client_options("127.0.0.1", broker.port, key=broker.key)
    return {
        "ably": ably,
        "agents": [{"name": mode, "url": urls[STRATEGY[mode]], "mode": mode} for mode in MODES],
        "prefix": f"ai:barge-{uuid.uuid4().hex[:6]}-d{delay:g}",
        "groups": ["bargein"],
        "samples": {"bargein": args.samples},
        "scripts": {
            "text": {"tokens": args.text_tokens, "intervalMs": args.text_interval_ms},
            "hold": {"tokens": args.hold_tokens, "intervalMs": args.hold_interval_ms},
        },
        "turnsPerConversation": args.turns_per_conversation,
        "thinkMs": args.think_ms,
        "seed": args.seed,
        "timeoutMs": int(args.step_timeout * 1000),
    }


def timelines(samples: list[dict[str, Any]], events: dict[str, list[Any]],
              delay: float) -> dict[str, list[str]]:
    """Per mode: the wire timeline of its first sample, from t0 to the new first delta."""
    out: dict[str, list[str]] = {}
    for mode in MODES:
        s = next((s for s in samples if s["kind"] == "sample" and s.get("mode") == mode), None)
        if s is None:
            continue
        sent = s["sentMs"]  # from t0
        first = {"interrupt": "view.send called", "cancel-wait": "session.cancel(runId) called",
                 "cancel-send": "session.cancel(runId) called (not awaited), view.send"}[mode]
        marks = [(0.0, "client", first),
                 (sent, "client", "input published, POST sent"),
                 (sent + s["postMs"], "client", "POST answered"),
                 (s["cancelledMs"], "client", "old run: ai-run-end (cancelled) seen"),
                 (s["startMs"], "client", "new run: ai-run-start seen"),
                 (s["firstDeltaMs"], "client", "new run: first text delta seen")]
        if mode == "cancel-wait":
            marks.append((s["sendAtMs"], "client", "view.send called"))
            if s.get("cancelPublishMs") is not None:
                marks.append((s["cancelPublishMs"], "client", "ai-cancel published (ACK)"))
        out[mode] = _timeline(events[STRATEGY[mode]], s["epochMs"], s["firstDeltaMs"],
                              s["channel"], delay, marks)
    return out


def _first(events: list[Any], channel: str, direction: int, needle: str, since: float,
           until: float, delay: float) -> float | None:
    """When the first matching wire event reached the agent's side of the link (epoch s)."""
    for e in events:
        t = e.at + (delay / 1000.0 if e.direction == DOWN else 0.0)  # arrival: read + delay
        if (e.channel == channel and e.direction == direction and since <= t <= until
                and needle in e.text):
            return t
    return None


def reactions(samples: list[dict[str, Any]], events: dict[str, list[Any]],
              delay: float) -> dict[str, dict[str, Any]]:
    """Per mode, from the wire at the agent (every sample): how long the agent took from the
    barge-in's arrival (A: the new ``ai-input``; B and B': the ``ai-cancel``) to sending the
    old run's ``ai-run-end``, and from the new ``ai-input``'s arrival to sending the new
    ``ai-run-start``; medians and p90 in ms, agent's clock only (no clock is compared)."""
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        trigger = "ai-input" if mode == "interrupt" else "ai-cancel"
        wire = events[STRATEGY[mode]]
        to_end: list[float] = []
        to_start: list[float] = []
        for s in samples:
            if s["kind"] != "sample" or s.get("mode") != mode:
                continue
            since = s["epochMs"] / 1000.0 - 0.001
            until = since + (s["firstDeltaMs"] + 5.0) / 1000.0
            arrived = _first(wire, s["channel"], DOWN, f"create {trigger}", since, until, delay)
            inputs = _first(wire, s["channel"], DOWN, "create ai-input", since, until, delay)
            if arrived is not None:
                ended = _first(wire, s["channel"], UP, "create ai-run-end", arrived, until,
                               delay)
                if ended is not None:
                    to_end.append((ended - arrived) * 1000)
            if inputs is not None:
                started = _first(wire, s["channel"], UP, "create ai-run-start", inputs, until,
                                 delay)
                if started is not None:
                    to_start.append((started - inputs) * 1000)
        out[mode] = {"trigger": trigger, "n": len(to_end),
                     "to_old_end_p50": statistics.median(to_end) if to_end else None,
                     "to_old_end_p90": _percentile(to_end, 90) if to_end else None,
                     "input_to_new_start_p50": statistics.median(to_start) if to_start else None,
                     "input_to_new_start_p90": _percentile(to_start, 90) if to_start else None}
    return out


async def network(args: argparse.Namespace, progress: bool,
                  deadline: float) -> dict[str, Any]:
    raw: dict[float, list[dict[str, Any]]] = {}
    seconds: dict[float, float] = {}
    traces: dict[float, dict[str, list[str]]] = {}
    reacted: dict[float, dict[str, dict[str, Any]]] = {}
    children: list[Child] = []
    proxies: dict[str, DelayProxy] = {}
    stderr: dict[str, str] = {}
    async with Broker("process") as broker:
        try:
            for strategy in ("interrupt", "concurrent"):
                proxies[strategy] = await DelayProxy(broker.port, trace=args.trace).start()
                children.append(await Child(f"this package's agent ({strategy})", [
                    sys.executable, str(ROOT / "bench" / "network_agent.py"),
                    "--ably-port", str(proxies[strategy].port), "--key", broker.key,
                    "--multitask", strategy], ROOT).start())
            urls = {child.info["multitask"]: f"http://127.0.0.1:{child.info['port']}/api/chat"
                    for child in children}
            for delay in args.delays:
                for proxy in proxies.values():
                    proxy.delay = delay / 1000.0
                    if proxy.trace is not None:  # in place: each connection's tap holds it
                        proxy.trace.clear()
                await asyncio.sleep(0.2 + 2 * delay / 1000.0)  # let queued bytes drain
                if progress:
                    print(f"delay {delay:g} ms: ", end="", file=sys.stderr, flush=True)
                started = time.perf_counter()
                limit = deadline - time.perf_counter()
                if limit <= 1:
                    raise RuntimeError("--max-seconds reached before delay "
                                       f"{delay:g} ms; nothing measured there")
                samples = await drive(_config(args, delay, broker, urls), limit, progress)
                raw[delay] = [s for s in samples if s["kind"] == "sample"]
                seconds[delay] = time.perf_counter() - started
                if args.trace:
                    wire = {s: p.trace or [] for s, p in proxies.items()}
                    traces[delay] = timelines(raw[delay], wire, delay)
                    reacted[delay] = reactions(raw[delay], wire, delay)
        finally:
            for child in reversed(children):
                await child.stop()
            stderr = {child.name: child.stderr() for child in children}
            for child in children:
                child.close()
            for proxy in proxies.values():
                await proxy.close()
    return {"samples": raw, "seconds": seconds, "traces": traces, "reactions": reacted,
            "agent_stderr": stderr,
            "agent_package": children[0].info.get("package") if children else None}


# -- reporting ------------------------------------------------------------------------------------
def _table(summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"{'':<24} {'n':>3} " + " ".join(f"{label:>27}" for _, label in FIGURES),
             f"{'':<24} {'':>3} " + " ".join(f"{'p50':>13} {'p90':>13}" for _ in FIGURES)]
    for mode in MODES:
        f = summary.get(mode)
        if f is None:
            continue
        cells = " ".join(f"{f[f'{key}_p50']:>13.1f} {f[f'{key}_p90']:>13.1f}"
                         for key, _ in FIGURES)
        lines.append(f"{LABELS[mode]:<24} {f['n']:>3} {cells}")
    return lines


def _diffs(c: dict[str, Any]) -> list[str]:
    lines = []
    for name, what in (("b_minus_a", "B - A "), ("b2_minus_a", "B' - A")):
        if f"{name}_p50_ms" not in c:
            continue
        parts = []
        for q in ("p50", "p90"):
            rt = c[f"{name}_{q}_rt"]
            shown = f" ({rt:+.2f} round trips)" if rt is not None else ""
            parts.append(f"{q} {c[f'{name}_{q}_ms']:+.1f} ms{shown}")
        lines.append(f"{what}, new first text delta: " + ", ".join(parts))
    return lines


def print_report(env: dict[str, Any], args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}, "
          f"{env['cpu_count']} CPUs, langgraph_interrupt {env['package_version']} "
          f"(commit {env['git_commit']}, git describe {env['git_describe']}), "
          f"ably-python {env['ably_python']}")
    if env.get("node"):
        print(f"Node {env['node']}, @ably/ai-transport {env['js']['@ably/ai-transport']}, "
              f"ably {env['js']['ably']}, ai {env['js']['ai']}")
    print(f"command: {env['command']}")
    print(f"1-minute load average before the run: {env['load_average_1m']}")
    print(f"this package (agents and in-process part) runs from: {env['package_source']}")
    print(f"scripts: the answer barged in on: {args.hold_tokens} tokens at "
          f"{args.hold_interval_ms:g} ms; the new answer: {args.text_tokens} tokens at "
          f"{args.text_interval_ms:g} ms; {args.think_ms:g} ms pause after each sample")
    print("ms from t0, the barge-in (A: just before view.send; B and B': just before "
          "session.cancel), medians and p90 (nearest rank)")
    if "in_process" in out:
        ip = out["in_process"]
        print(f"\n== in process: in-memory broker, ClientSession, the endpoint under httpx's "
              f"ASGI transport ({ip['seconds']:.0f} s) ==")
        for line in _table(ip["summary"]):
            print(line)
        for line in _diffs(ip["compare"]):
            print(line)
    for delay, summary in out.get("network", {}).items():
        took = out["network_seconds"][delay]
        print(f"\n== one-way delay {delay:g} ms between each agent and the broker (round trip "
              f"{2 * delay:g} ms); the official JS client straight to the broker "
              f"({took:.0f} s) ==")
        for line in _table(summary):
            print(line)
        c = out["network_compare"][delay]
        for line in _diffs(c):
            print(line)
        for mode in MODES:
            f = summary.get(mode)
            if f is not None:
                print(f"{LABELS[mode]}: POST answered p50 {f['postMs_p50']:.1f} ms; old run's "
                      f"end seen before the new run's start in {f['old_end_before_new_start']}"
                      f"/{f['n']}")
    targets = [c["target"] | {"delay_ms": d} for d, c in out.get("network_compare", {}).items()
               if "target" in c]
    if targets:
        print("\ntarget (issue 12):")
        for t in targets:
            state = "met" if t["met"] else "NOT met"
            print(f"  {t['delay_ms']:g} ms: {t['text']}: B - A = {t['value_ms']:.1f} ms "
                  f"(>= {t['limit_ms']:g})  {state}")
    for delay, per_mode in out.get("reactions", {}).items():
        print(f"\nthe agent's reaction on the wire, one-way delay {delay:g} ms (all samples; "
              "ms on the agent's side of the link, p50 / p90):")
        for mode, r in per_mode.items():
            def pair(key: str, r: dict[str, Any] = r) -> str:
                p50, p90 = r[f"{key}_p50"], r[f"{key}_p90"]
                return "-" if p50 is None else f"{p50:.1f} / {p90:.1f}"
            print(f"  {LABELS[mode]:<24} {r['trigger']} in -> old ai-run-end out "
                  f"{pair('to_old_end'):>13};  ai-input in -> new ai-run-start out "
                  f"{pair('input_to_new_start'):>13}  (n={r['n']})")
    for delay, per_mode in out.get("traces", {}).items():
        for mode, lines in per_mode.items():
            print(f"\nwire timeline, {LABELS[mode].strip()}, one-way delay {delay:g} ms (agent "
                  "-> broker: when the agent sent it; broker -> agent: when it arrived)")
            for line in lines:
                print(line)


async def run(args: argparse.Namespace, progress: bool) -> dict[str, Any]:
    deadline = time.perf_counter() + args.max_seconds
    out: dict[str, Any] = {}
    if "in-process" in args.only and args.in_process_samples > 0:
        if progress:
            print("in process: ", end="", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            samples = await asyncio.wait_for(InProcess(args).run(progress),
                                             max(1.0, deadline - time.perf_counter()))
        except TimeoutError:
            raise RuntimeError("--max-seconds reached during the in-process part") from None
        summary = summarise(samples)
        out["in_process"] = {"samples": samples, "summary": summary,
                             "compare": compare(summary, None),
                             "seconds": time.perf_counter() - started}
    if "network" in args.only:
        net = await network(args, progress, deadline)
        out["network"] = {d: summarise(s) for d, s in net["samples"].items()}
        out["network_compare"] = {d: compare(s, d) for d, s in out["network"].items()}
        out["network_samples"] = net["samples"]
        out["network_seconds"] = net["seconds"]
        out["traces"] = net["traces"]
        out["reactions"] = net["reactions"]
        out["agent_stderr"] = net["agent_stderr"]
        out["agent_package"] = net["agent_package"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 15, 50], metavar="MS",
                        help="one-way delays between each agent and the broker, in ms "
                        "(default 0 15 50)")
    parser.add_argument("--samples", type=int, default=30,
                        help="barge-ins per way and delay over the network (default 30)")
    parser.add_argument("--in-process-samples", type=int, default=30,
                        help="barge-ins per way in process (default 30; 0: skip)")
    parser.add_argument("--only", nargs="+", choices=("network", "in-process"),
                        default=["network", "in-process"], help="measure only these parts")
    parser.add_argument("--hold-tokens", type=int, default=1500,
                        help="tokens of the answer barged in on (default 1500)")
    parser.add_argument("--hold-interval-ms", type=float, default=20.0,
                        help="ms between two of its tokens (default 20)")
    parser.add_argument("--text-tokens", type=int, default=10,
                        help="tokens of the new answer (default 10)")
    parser.add_argument("--text-interval-ms", type=float, default=10.0,
                        help="ms between two of its tokens (default 10)")
    parser.add_argument("--think-ms", type=float, default=250.0,
                        help="pause after each sample's runs ended (default 250)")
    parser.add_argument("--turns-per-conversation", type=int, default=5,
                        help="barge-ins per conversation, two runs each (default 5)")
    parser.add_argument("--agent-ref", metavar="GIT_REF",
                        help="run this package (the agent children and the in-process part) "
                        "from a git ref (git archive of langgraph_interrupt/ into a temporary "
                        "directory) instead of the working tree; the broker still runs from "
                        "the working tree")
    parser.add_argument("--trace", action="store_true",
                        help="decode what crosses the proxies and print, per delay and way, "
                        "the wire timeline of its first barge-in")
    parser.add_argument("--seed", type=int, default=1, help="pause seed (default 1)")
    parser.add_argument("--step-timeout", type=float, default=20.0,
                        help="seconds any one wait may take (default 20)")
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="hard limit for the whole benchmark (default 900)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="also write the latency distributions of the three ways, in "
                        "process and per delay, as a PNG (needs matplotlib: the bench extra)")
    args = parser.parse_args(argv)
    if args.plot:
        plot.require()
    if args.samples < 1 or args.in_process_samples < 0 or args.hold_tokens < 2 \
            or args.text_tokens < 1 or args.turns_per_conversation < 1:
        parser.error("--samples, --text-tokens and --turns-per-conversation must be positive "
                     "and --hold-tokens at least 2")
    if any(d < 0 for d in args.delays):
        parser.error("--delays must not be negative")

    if args.agent_ref and not os.environ.get(EXPORT_DIR):
        # Run everything but the broker from a clean export of the ref: re-execute this
        # script with the export first on PYTHONPATH (the agent children inherit it).
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", args.agent_ref], cwd=ROOT,
                                    text=True, capture_output=True, check=True,
                                    timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            parser.error(f"--agent-ref {args.agent_ref}: not a git ref here")
        into = tempfile.mkdtemp(prefix="bargein-package-")
        env = {**export_package(args.agent_ref, into), EXPORT_DIR: into, EXPORT_COMMIT: commit}
        argv0 = getattr(sys, "orig_argv", [sys.executable, *sys.argv])
        os.execve(sys.executable, [sys.executable, *argv0[1:]], env)
    source = f"working tree, commit {_environment()['git_commit']}"
    if os.environ.get(EXPORT_DIR):
        if not langgraph_interrupt.__file__.startswith(os.environ[EXPORT_DIR]):
            raise SystemExit(f"--agent-ref: langgraph_interrupt came from "
                             f"{langgraph_interrupt.__file__}, not the export")
        source = (f"git ref {args.agent_ref}, commit {os.environ[EXPORT_COMMIT]} (clean export; "
                  "the broker runs from the working tree)")
    try:
        return _main(args, source)
    finally:
        if os.environ.get(EXPORT_DIR):
            shutil.rmtree(os.environ[EXPORT_DIR], ignore_errors=True)


def _main(args: argparse.Namespace, source: str) -> int:
    from importlib import metadata
    env: dict[str, Any] = {**_environment(), "git_describe": _git_describe(),
                           "package_source": source,
                           "ably_python": metadata.version("ably"), "node": None, "js": None}
    if "network" in args.only:
        env["node"] = subprocess.run([node_binary(), "--version"], capture_output=True,
                                     text=True, check=False).stdout.strip()
        env["js"] = js_versions()
    started = time.perf_counter()
    try:
        out = asyncio.run(run(args, progress=True))
    except RuntimeError as exc:  # a scenario that did not end as intended, or the time limit
        print(f"bench/bargein.py: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    if args.json:
        net = out.get("network", {})
        print(json.dumps({
            "environment": env, "arguments": vars(args),
            "in_process": out.get("in_process"),
            "network": {f"{d:g}": {"summary": s, "compare": out["network_compare"][d],
                                   "seconds": out["network_seconds"][d],
                                   "samples": out["network_samples"][d]}
                        for d, s in net.items()},
            "traces": {f"{d:g}": t for d, t in out.get("traces", {}).items()},
            "reactions": {f"{d:g}": r for d, r in out.get("reactions", {}).items()},
            "agent_stderr": out.get("agent_stderr"), "elapsed_s": elapsed}, indent=2))
    else:
        print_report(env, args, out)
        for name, text in (out.get("agent_stderr") or {}).items():
            lines = [line for line in text.splitlines() if line.strip()]
            if lines:
                print(f"{name} wrote {len(lines)} line(s) to stderr; the last: {lines[-1][:300]}")
        print(f"\nbenchmark took {elapsed:.1f} s")
    if args.plot:
        write_plot(args.plot, env, out)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0


PLOTTED = (("cancelledMs", "barge-in → old run's cancelled end seen"),
           ("firstDeltaMs", "barge-in → new answer's first delta seen"))


def write_plot(path: str, env: dict[str, Any], out: dict[str, Any]) -> None:
    """A row per figure, a column per place (in process, then each delay): the three ways."""
    places: list[tuple[str, list[dict[str, Any]]]] = []
    if out.get("in_process"):
        places.append(("in process", out["in_process"]["samples"]))
    for delay, samples in sorted(out.get("network_samples", {}).items()):
        places.append((f"{delay:g} ms one-way", samples))
    panels = []
    for key, title in PLOTTED:
        for place, samples in places:
            panel = plot.Panel(f"{title}, {place}")
            for mode in MODES:
                panel.series[" ".join(LABELS[mode].split())] = [
                    s[key] for s in samples
                    if s.get("kind", "sample") == "sample" and s.get("mode") == mode]
            panels.append(panel)
    load = plot.load(env.get("load_average_1m"))
    plot.write_ecdfs(path, "Barge-in: A, the interrupt strategy, against the client's "
                     "cancel-then-send (bench/bargein.py)", panels, columns=len(places),
                     note=f"{env['cpu_count']} CPUs, load {load} before the run, "
                     f"{env['implementation']} {env['python']}, {env.get('git_describe')}; "
                     f"package from {env.get('package_source')}; "
                     f"{env['command'].split('python', 1)[-1].strip()}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

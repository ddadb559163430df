"""Messages per answer versus added token latency, by append rollup window.

Run from the repository root::

    .venv/bin/python bench/rollup.py                       # defaults, ~30 s
    .venv/bin/python bench/rollup.py --rtt 0.03 --tokens 300 --rate 50 --json

One run streams ``--tokens`` text deltas at ``--rate`` tokens/s (a model's pace) through
``AgentSession(append_rollup_window=W)`` on the embedded broker, behind a channel wrapper
whose acknowledgements come back ``--rtt`` seconds after the broker applied each operation
(what a link with a one-way delay of rtt/2 does to acknowledgements; delivery to the
subscriber itself is immediate, so the figures isolate the transport's own holding back).

For each window it prints the messages the answer cost on the channel (every publish,
append and update of the run, lifecycle included) and the latency each token gained: the
time from the source yielding it to a subscriber receiving it, p50 and p99 over all tokens.
Not a test: it asserts only that every token arrived, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker, OutboundMessage

SESSION = "ai:rollup"


class DelayedAcks:
    """A channel handle: applied at once, acknowledged ``rtt`` seconds later."""

    def __init__(self, inner: Any, rtt: float) -> None:
        self.inner = inner
        self.rtt = rtt
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def publish(self, messages: Sequence[OutboundMessage]) -> list[str]:
        serials: list[str] = await self.inner.publish(messages)
        self.sent += len(messages)
        await asyncio.sleep(self.rtt)
        return serials

    async def append(self, serial: str, data: str, extras: Mapping[str, Any]) -> None:
        await self.inner.append(serial, data, extras)
        self.sent += 1
        await asyncio.sleep(self.rtt)

    async def update(self, serial: str, data: Any, extras: Mapping[str, Any]) -> None:
        await self.inner.update(serial, data, extras)
        self.sent += 1
        await asyncio.sleep(self.rtt)


async def one(window: float, args: argparse.Namespace) -> dict[str, Any]:
    broker = InMemoryBroker()
    yielded: dict[str, float] = {}
    latency: list[float] = []
    received: list[str] = []

    def on_message(message: Any) -> None:
        if message.action == "message.append" and message.data:
            now = time.perf_counter()
            for token in message.data.split("|")[:-1]:
                received.append(token)
                latency.append(now - yielded[token])

    watcher = broker.channel(SESSION, client_id="watcher")
    watcher.subscribe(on_message)
    await watcher.attach()
    channel = DelayedAcks(broker.channel(SESSION, client_id="agent"), args.rtt)
    async with ClientSession(broker.channel(SESSION, client_id="user")) as client, \
            AgentSession(channel, append_rollup_window=window) as agent:  # type: ignore[arg-type]
        handle = await client.send("go")
        tokens = [f"t{i}" for i in range(args.tokens)]

        async def source() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "start"}
            yield {"type": "text-start", "id": "x"}
            for token in tokens:
                await asyncio.sleep(1 / args.rate)
                yielded[token] = time.perf_counter()
                yield {"type": "text-delta", "id": "x", "delta": token + "|"}
            yield {"type": "text-end", "id": "x"}
            yield {"type": "finish"}

        async with agent.create_run(handle.invocation) as run:
            result = await run.pipe(source())
        assert result.reason == "complete", result
    await watcher.detach()
    assert received == tokens, "every token, in order"
    latency.sort()
    return {"window_ms": window * 1000, "messages": channel.sent,
            "p50_ms": statistics.median(latency) * 1000,
            "p99_ms": latency[int(len(latency) * 0.99) - 1] * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=0.03, help="ack delay, s (default 0.03)")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s (default 50)")
    parser.add_argument("--windows", type=float, nargs="+", default=[0, 0.04, 0.1, 0.25],
                        help="rollup windows, s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [await one(w, args) for w in args.windows]
    if args.json:
        print(json.dumps({"args": vars(args), "rows": rows}))
        return
    print(f"python {sys.version.split()[0]}; command: {' '.join(sys.argv)}")
    print(f"{args.tokens} tokens at {args.rate:g}/s, acknowledgements after {args.rtt * 1000:g} ms")
    print("| window ms | messages | token latency p50 ms | p99 ms |")
    print("| ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['window_ms']:g} | {row['messages']} | {row['p50_ms']:.1f} | "
              f"{row['p99_ms']:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())

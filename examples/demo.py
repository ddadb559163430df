"""Terminal demo: stream an answer, press Stop mid-stream, watch the run end cleanly.

A Python client sends a message, an agent streams a scripted answer token by token, the
client cancels after a few tokens, and every wire event is printed as the client sees it.
Where the channel lives:

* by default, the embedded in-memory broker (nothing to install or configure);
* ``--ably-local``: the offline Ably broker on 127.0.0.1, with agent and client on their own
  real ably-python connections (``AblyChannel``); needs the ``testing`` extra;
* ``ABLY_API_KEY`` set (and no ``--ably-local``): real Ably, on a fresh channel in the ``ai:``
  namespace, which needs the mutable-messages rule (see docs/ably.md).

    python examples/demo.py [--ably-local] [--channel NAME] [--stop-after N] [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from langgraph_interrupt import (
    AgentSession,
    Channel,
    ChannelMessage,
    ClientSession,
    InMemoryBroker,
)
from langgraph_interrupt.testing import ScriptedStream

ANSWER = ("The sea covers about seventy-one percent of the Earth. It holds most of the "
          "planet's water, drives its weather, and is home to more life than anywhere else.")
SESSION = "ai:demo"


def short(value: str | None) -> str:
    return (value or "")[:8]


class Printer:
    """Prints each wire message the client receives, as a person would want to read it."""

    def __init__(self) -> None:
        self.streaming = False

    def __call__(self, message: ChannelMessage) -> None:
        extras = message.extras or {}
        ai = extras.get("ai", {}) if isinstance(extras, dict) else {}
        t, c = ai.get("transport", {}), ai.get("codec", {})
        if message.action == "message.append":
            if message.data:
                print(message.data, end="", flush=True)
                self.streaming = True
                return
            self._newline()
            self._line("agent", "ai-output", f"{c.get('kind')} stream {t.get('status')}")
            return
        self._newline()
        who = "client" if message.client_id == "user-1" else "agent"
        name = message.name or ""
        if name == "ai-input":
            self._line(who, name, repr(message.data))
        elif name == "ai-cancel":
            target = (f"run {short(t['run-id'])}" if t.get("run-id")
                      else f"the run of input {short(t.get('input-codec-message-id'))}")
            self._line(who, name, f"{target}  <- Stop pressed")
        elif name in ("ai-run-start", "ai-run-resume", "ai-run-suspend"):
            self._line(who, name, f"run {short(t.get('run-id'))}")
        elif name == "ai-run-end":
            self._line(who, name, f"run {short(t.get('run-id'))}  reason={t.get('run-reason')}")
        elif name == "ai-step-start":
            self._line(who, name, f"step {t.get('step-id', '').rsplit('-', 1)[-1]}")
        elif name == "ai-step-end":
            self._line(who, name, f"reason={t.get('step-reason')}")
        elif name == "ai-output" and t.get("stream") == "true":
            self._line(who, name, f"{c.get('kind')} stream opened:")
            print("           ", end="", flush=True)
            self.streaming = True
        else:
            self._line(who, name, c.get("kind", ""))

    def _newline(self) -> None:
        if self.streaming:
            print()
            self.streaming = False

    @staticmethod
    def _line(who: str, name: str, detail: str) -> None:
        print(f"  {who:<7} {name:<15} {detail}")


@contextlib.asynccontextmanager
async def backend(ably_local: bool, channel: str | None
                  ) -> AsyncIterator[tuple[str, str, Callable[[str], Channel]]]:
    """Yields (description, channel name, ``open(client_id) -> Channel``)."""
    key = os.environ.get("ABLY_API_KEY")
    if not ably_local and not key:
        broker = InMemoryBroker()
        name = channel or SESSION
        yield "embedded broker", name, lambda client_id: broker.channel(name, client_id=client_id)
        return
    from langgraph_interrupt.channels import AblyChannel  # imports the ably SDK

    name = channel or f"{SESSION}-{uuid.uuid4().hex[:8]}"  # a fresh channel: empty history
    opened: list[AblyChannel] = []

    def open_with(options: Callable[[str], dict[str, Any]]) -> Callable[[str], Channel]:
        def open_(client_id: str) -> Channel:
            opened.append(AblyChannel.from_options(name, **options(client_id)))
            return opened[-1]
        return open_

    async with contextlib.AsyncExitStack() as stack:
        if ably_local:
            from langgraph_interrupt.testing.ably_broker import AblyBroker

            local = await stack.enter_async_context(AblyBroker())
            description = f"offline Ably broker on {local.http_url}, real ably-python SDK"
            yield description, name, open_with(local.python_client_options)
        else:
            yield "Ably (ABLY_API_KEY)", name, open_with(
                lambda client_id: {"key": key, "client_id": client_id})
        for opened_channel in opened:
            await opened_channel.close()


async def main(stop_after: int, delay: float, *, ably_local: bool = False,
               channel: str | None = None) -> None:
    async with backend(ably_local, channel) as (description, name, open_channel):
        print(f"langgraph_interrupt demo: {description}, channel {name!r}\n")
        await converse(open_channel, stop_after, delay)


async def converse(open_channel: Callable[[str], Channel], stop_after: int,
                   delay: float) -> None:
    async with ClientSession(open_channel("user-1")) as client, \
            AgentSession(open_channel("agent")) as agent:
        client.on_message(Printer())
        handle = await client.send("Tell me about the sea.")

        # What an HTTP endpoint would do with the invocation the client POSTs.
        tokens = [word + " " for word in ANSWER.split()]
        stream = ScriptedStream(tokens, delay=delay)

        async def serve() -> None:
            async with agent.create_run(handle.invocation) as run:
                await run.pipe(stream)

        serving = asyncio.create_task(serve())
        await client.wait_for(lambda c: stream.sent >= stop_after)
        await handle.cancel()  # the Stop button: works even before the run id is known
        info = await handle.wait_ended(timeout=5)
        await serving

    assistant = client.messages[-1]
    kept = "".join(p.get("text", "") for p in assistant["parts"])
    print(f"\nRun {info.run_id} ended: {info.status}")
    print(f"The model stopped after {stream.sent} of {len(tokens)} tokens "
          f"(source closed: {stream.finalised.is_set()}).")
    print(f"Partial answer kept in the conversation: {kept.strip()!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-after", type=int, default=8, help="tokens before Stop")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per token")
    parser.add_argument("--ably-local", action="store_true",
                        help="run over the offline Ably broker with the real SDK")
    parser.add_argument("--channel", help="channel name (default: a fresh one on Ably)")
    args = parser.parse_args()
    asyncio.run(main(args.stop_after, args.delay, ably_local=args.ably_local,
                     channel=args.channel))

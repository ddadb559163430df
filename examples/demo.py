"""Terminal demo: stream an answer, press Stop mid-stream, watch the run end cleanly.

Runs offline on the embedded broker. A Python client sends a message, an agent streams a
scripted answer token by token, the client cancels after a few tokens, and every wire
event is printed as the client sees it.

    python examples/demo.py [--stop-after N] [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio

from langgraph_interrupt import AgentSession, ChannelMessage, ClientSession, InMemoryBroker
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


async def main(stop_after: int, delay: float) -> None:
    broker = InMemoryBroker()
    print(f"langgraph_interrupt demo: embedded broker, channel {SESSION!r}\n")
    async with ClientSession(broker.channel(SESSION, client_id="user-1")) as client, \
            AgentSession(broker.channel(SESSION, client_id="agent")) as agent:
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
    args = parser.parse_args()
    asyncio.run(main(args.stop_after, args.delay))

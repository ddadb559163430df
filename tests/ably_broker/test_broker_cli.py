"""The command-line broker: prints its port and client options, serves until interrupted."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from ably import AblyRealtime

from .helpers import REPO, attached


async def test_command_prints_options_and_stops_on_ctrl_c():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "langgraph_interrupt.testing.ably_broker",
        "--json",
        "--client-id",
        "cli-user",
        "--lifetime",
        "25",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        info = json.loads(line)
        port = info["port"]
        assert info["js"]["port"] == port
        assert info["js"]["endpoint"] == "127.0.0.1"
        assert info["js"]["clientId"] == "cli-user"
        assert info["python"]["endpoint"] == f"127.0.0.1:{port}/"

        client = AblyRealtime(**info["python"])
        try:
            channel = await attached(client, "ai:cli")
            assert (await channel.publish("m", "x")).serials
            history = await channel.history()
            assert [m.data for m in history.items] == ["x"]
        finally:
            await client.close()

        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

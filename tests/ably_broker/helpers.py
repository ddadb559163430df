"""Helpers for the broker tests: waiting on deliveries without sleeping, and running Node."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
SETUP_HINT = "run `bash scripts/setup_js.sh` from the repository root"
MIN_NODE_MAJOR = 22
ABLY_JS_VERSION = "2.28.0"


class Collector:
    """A subscribe listener that records messages and lets a test await them (no sleeping)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, message: Any) -> None:
        """The listener (ably-python accepts functions and bound methods, not callables)."""
        self.messages.append(message)
        self._changed.set()

    async def wait_until(
        self, predicate: Callable[[list[Any]], bool], timeout: float = 5.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.messages):
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least ``count`` messages arrived; returns the first ``count``."""
        await self.wait_until(lambda messages: len(messages) >= count, timeout)
        return self.messages[:count]

    async def wait_for_name(self, name: str, timeout: float = 5.0) -> Any:
        await self.wait_until(lambda ms: any(m.name == name for m in ms), timeout)
        return next(m for m in self.messages if m.name == name)


class StateWatcher:
    """Records a realtime client's connection state changes; waits on them without sleeping."""

    def __init__(self, client: Any) -> None:
        self.changes: list[Any] = []
        self._changed = asyncio.Event()
        client.connection.on(self._on_change)

    def _on_change(self, change: Any) -> None:
        self.changes.append(change)
        self._changed.set()

    async def wait_for(self, state: Any, *, after: int = 0, timeout: float = 5.0) -> Any:
        """The first recorded change (from index ``after``) into ``state``."""
        async with asyncio.timeout(timeout):
            while True:
                for change in self.changes[after:]:
                    if change.current == state:
                        return change
                self._changed.clear()
                await self._changed.wait()


def _node_major(binary: str) -> int:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    version = out.stdout.strip().lstrip("v")
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def node_binary() -> str:
    """The Node >= 22 binary recorded by scripts/setup_js.sh (or on PATH); fails otherwise."""
    candidates = []
    recorded = REPO / ".node" / "NODE_BIN"
    if recorded.is_file():
        candidates.append(recorded.read_text().strip())
    on_path = shutil.which("node")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and _node_major(candidate) >= MIN_NODE_MAJOR:
            break
    else:
        pytest.fail(f"Node >= {MIN_NODE_MAJOR} not found; {SETUP_HINT}", pytrace=False)
    package = JS_DIR / "node_modules" / "ably" / "package.json"
    if not package.is_file():
        pytest.fail(f"npm packages of tests/js are not installed; {SETUP_HINT}", pytrace=False)
    version = json.loads(package.read_text()).get("version")
    if version != ABLY_JS_VERSION:
        pytest.fail(
            f"tests/js has ably {version}, expected {ABLY_JS_VERSION}; {SETUP_HINT}", pytrace=False
        )
    return candidate


class NodeScript:
    """A running ``node tests/js/<script> <mode> <json>`` emitting JSON lines on stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, script: str, mode: str, config: dict[str, Any]) -> NodeScript:
        proc = await asyncio.create_subprocess_exec(
            node_binary(),
            str(JS_DIR / script),
            mode,
            json.dumps(config),
            cwd=JS_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def next_event(self, timeout: float = 15.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    stderr = b""
                    if self.proc.stderr is not None:
                        stderr = await self.proc.stderr.read()
                    raise AssertionError(
                        f"node exited without an event; stderr:\n{stderr.decode()[-4000:]}"
                    )
                text = line.decode().strip()
                if not text.startswith("{"):
                    continue
                event: dict[str, Any] = json.loads(text)
                self.events.append(event)
                if event.get("event") == "error":
                    raise AssertionError(f"node script failed: {event}")
                return event

    async def expect(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        event = await self.next_event(timeout)
        assert event.get("event") == name, event
        return event

    async def finish(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit (killing it, by its own handle, on timeout)."""
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()


async def attached(client: Any, name: str, listener: Any = None, **options: Any) -> Any:
    """Get a channel, subscribe ``listener`` if given, and wait until it is attached."""
    channel = client.channels.get(name, **options)
    if isinstance(listener, Collector):
        await channel.subscribe(listener.add)
    elif listener is not None:
        await channel.subscribe(listener)
    else:
        await channel.attach()
    return channel


def attach_serial(channel: Any) -> str:
    """The ATTACHED channelSerial ably-python keeps privately (what ably-js calls attachSerial)."""
    serial: str = channel._RealtimeChannel__attach_serial
    return serial


def connection_id(client: Any) -> str:
    cid: str = client.connection.connection_manager.connection_id
    return cid

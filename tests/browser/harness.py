"""The browser tests' harness: the chat server as ``scripts/chat.sh`` runs it, and Chromium.

:class:`ChatServer` runs ``examples/chat_server.py`` (what ``scripts/chat.sh``
execs after its set-up) as a subprocess on a free port, with the provider keys removed so the
scripted model answers, and reads the URL it prints. At the end it sends SIGTERM, as Ctrl-C
would, and fails if the server did not stop cleanly or printed a traceback.

The fixtures (``conftest.py``): ``chat_server``, one per module; ``browser``, one per
module, Debian's Chromium (``/usr/bin/chromium``) driven by the
Python Playwright client (no browser is downloaded); ``context``, a fresh browser context (a
fresh profile, as a new user); ``page``, one page in it. A test fails if a page throws.

Nothing is skipped: without Chromium, the page's bundle or Playwright, the tests fail with
the command that installs them (``bash scripts/setup_browser.sh``, which the test command
runs).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SETUP_HINT = "run `bash scripts/setup_browser.sh` from the repository root"
# Without the background-networking flags Chromium's own connections (updates, sync, field
# trials) fail on a closed network and can take the page's connections with them.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: The scripted model and tool at a quarter of their default pace: the search tool runs
#: about 1 s (Stop lands within a few frames of its start), a whole answer about 2 s.
PACE = "0.25"
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
URL_LINE = re.compile(r"Open (http://127\.0\.0\.1:\d+)/\?session=[0-9a-f]+")


class ChatServer:
    """``examples/chat_server.py`` in a subprocess; its output is kept for diagnostics."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "examples" / "chat_server.py"), "--port", "0",
             "--pace", PACE],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            encoding="utf-8")
        self.lines: list[str] = []
        self.base_url = ""
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if match := URL_LINE.search(line):
                self.base_url = match.group(1)
                self._started.set()
        self._started.set()  # the server exited: start() reports it

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def start(self, timeout: float = 20.0) -> ChatServer:
        if not self._started.wait(timeout) or not self.base_url:
            self.proc.kill()
            pytest.fail(f"the chat server did not print its URL (exit {self.proc.poll()}); "
                        f"{SETUP_HINT}. Its output:\n{self.output}", pytrace=False)
        return self

    def url(self, session: str) -> str:
        return f"{self.base_url}/?session={session}"

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (uvicorn's graceful shutdown: open runs end cancelled), then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the chat server did not stop on SIGTERM. Its output:\n{self.output}",
                        pytrace=False)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


class PageErrors:
    """Uncaught exceptions in the pages of one test (the test fails if there are any)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Any) -> Any:
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

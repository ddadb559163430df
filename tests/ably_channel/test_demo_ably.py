"""The demo runs over the offline Ably broker with the real SDK (``--ably-local``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_over_the_offline_ably_broker_streams_then_stops() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ABLY_API_KEY"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--ably-local",
                           "--delay", "0.01", "--stop-after", "5"], capture_output=True,
                          text=True, timeout=60, check=True, env=env)
    out = done.stdout
    assert re.search(r"offline Ably broker on http://127\.0\.0\.1:\d+, real ably-python SDK", out)
    for event in ("ai-input", "ai-run-start", "ai-cancel", "ai-step-end", "ai-run-end"):
        assert event in out
    assert "reason=cancelled" in out and "ended: cancelled" in out
    stopped = re.search(r"stopped after (\d+) of (\d+) tokens \(source closed: True\)", out)
    assert stopped is not None and int(stopped.group(1)) < int(stopped.group(2))
    kept = re.search(r"Partial answer kept in the conversation: '(.+)'", out)
    assert kept is not None and kept.group(1).startswith("The sea covers")
    assert "Traceback" not in done.stderr and "Task exception" not in done.stderr

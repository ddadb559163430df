"""The README quick start and the demo run as documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_quick_start_runs_and_cancels(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S)
    assert code is not None, "the README has a Python quick start"
    assert len(code.group(1).splitlines()) <= 25
    script = tmp_path / "quickstart.py"
    script.write_text(code.group(1))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "PipeResult(reason='cancelled'" in out
    assert out.splitlines()[0] == "cancelled", out


def run_demo(*args: str) -> str:
    """``examples/demo.py --delay 0.01 --stop-after 3 ARGS`` offline (no provider or Ably
    key), checked to exit cleanly; its stdout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ABLY_API_KEY")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--delay", "0.01",
                           "--stop-after", "3", *args], capture_output=True, timeout=60,
                          check=True, env=env | {"PYTHONIOENCODING": "utf-8"}, text=True,
                          encoding="utf-8")
    assert "Traceback" not in done.stderr and "Task exception" not in done.stderr, done.stderr
    return done.stdout


def assert_demo_story(out: str) -> None:
    """The demo's story, line by line in this order: the answer streams, the tool runs, Stop
    (after the third source, as asked), the tool part cancelled, the run cancelled with the
    reason, the tool really stopped, the thread repaired and valid, the next message answered."""
    lines = out.splitlines()
    assert lines[0].startswith("langgraph_interrupt demo: a LangGraph agent, model "
                               "StrictFakeChatModel; "), lines[0]
    patterns = (
        r"you: When should I visit Kyoto\?",
        r"\[run (\w{8}) started\]$",
        r"assistant: Kyoto is loveliest .* Let me check this year's festivals\.$",
        r"  -> search_festivals\(city='Kyoto', year=2025\)  \(input-available\)$",
        r"  \.\. search_festivals sources: 1 2 3$",  # Stop waits for the third source
        r"\[Stop pressed\]$",
        r"  x  search_festivals: Cancel.*  \(output-error\)$",
        r"\[run (\w{8}) cancelled\] reason user_clicked_stop, by user-1$",
        r"Run ended: cancelled, \d+ ms after Stop \(reason user_clicked_stop\)\.$",
        r"search_festivals saw the abort signal after (\d+) of 40 sources",
        r"The thread, repaired \(cancelled calls answered: call_festivals\):$",
        r"  tool   \[call_festivals\] \(error\) Cancel",
        r"find_history_errors\(thread\) == \[\]$",
        r"you: Never mind the calendar",
        r"\[run (\w{8}) started\]$",
        r"assistant: Go in early April .* The festival search was stopped before it "
        r"finished, .* look\.$",
        r"\[run (\w{8}) complete\]$",
        r"Next message: complete\.$",
    )
    found, at = [], 0
    for pattern in patterns:  # in this order, each after the one before
        at = next((i for i in range(at, len(lines)) if re.match(pattern, lines[i])), -1)
        assert at >= 0, f"no line matches {pattern!r} after the previous one in:\n{out}"
        found.append(re.match(pattern, lines[at]))
        at += 1
    started, cancelled, searched, restarted, completed = (
        m.group(1) for m in found if m is not None and m.groups())
    assert started == cancelled != restarted == completed  # one cancelled run, then another
    assert 3 <= int(searched) < 40, "the tool stopped searching soon after Stop"


def test_the_demo_stops_a_langgraph_agent_mid_tool_then_answers_the_next_message() -> None:
    out = run_demo()
    assert "; embedded broker, channel 'ai:demo'" in out.splitlines()[0]
    assert_demo_story(out)


def test_the_interruption_page_example_runs() -> None:
    page = (ROOT / "docs" / "interruption.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    example = next(block for block in blocks if "asyncio.run(main())" in block)
    out = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.splitlines() == ["cancelled new_input user-1", "complete"]

"""The README quick start and the demo run as documented."""

from __future__ import annotations

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


def test_the_demo_streams_then_stops_and_reports_the_run_cancelled() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--delay", "0.01",
                          "--stop-after", "5"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    for event in ("ai-input", "ai-run-start", "ai-cancel", "ai-step-end", "ai-run-end"):
        assert event in out
    assert "reason=cancelled" in out
    assert re.search(r"ended: cancelled", out)
    stopped = re.search(r"stopped after (\d+) of (\d+) tokens \(source closed: True\)", out)
    assert stopped is not None and int(stopped.group(1)) < int(stopped.group(2))


def test_the_interruption_page_example_runs() -> None:
    page = (ROOT / "docs" / "interruption.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    example = next(block for block in blocks if "asyncio.run(main())" in block)
    out = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.splitlines() == ["cancelled new_input user-1", "complete"]

"""The examples run offline: both scripts as subprocesses, the notebook through a Jupyter kernel.

Every example uses a real model when the environment has a provider key, so each runs here
with the keys removed from its environment: the test proves the offline path, and no key
(nor a bill) leaks into the suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_example(script: str, *args: str) -> list[str]:
    """Run ``examples/<script>`` with this interpreter; its stdout lines."""
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=ROOT,
                            env=offline_env(), capture_output=True, text=True,
                            encoding="utf-8", timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout.splitlines()


def index_of(lines: list[str], pattern: str) -> int:
    """The index of the first line matching ``pattern`` (a regex, from the line's start)."""
    for i, line in enumerate(lines):
        if re.match(pattern, line):
            return i
    raise AssertionError(f"no line matches {pattern!r} in:\n" + "\n".join(lines))


def in_order(lines: list[str], *patterns: str) -> None:
    found = [index_of(lines, p) for p in patterns]
    assert found == sorted(found), list(zip(patterns, found, strict=True))


def test_drop_in_callback_streams_an_existing_agent_with_one_line() -> None:
    lines = run_example("drop_in_callback.py", "--delay", "0.005")
    assert lines[0].startswith("model: FakeStreamingChatModel")
    in_order(lines,
             r"you: What's the weather in Paris\?",
             r"\[run \w{8} started\]",
             r"assistant: Let me check the weather in Paris\.",
             r"  -> get_weather\(city='Paris'\)",
             r"  <- get_weather: 18°C, light breeze and sunny in Paris",
             r"assistant: It is 18°C.* until the light turns golden\.$",
             r"\[run \w{8} complete\]",
             r"Run ended: complete\.")


def test_drop_in_callback_stop_stops_generation_at_the_next_token() -> None:
    lines = run_example("drop_in_callback.py", "--stop-after", "5", "--delay", "0.02")
    in_order(lines,
             r"  <- get_weather: ",
             r"assistant: It is ",
             r"\[Stop pressed\]",
             r"\[run \w{8} cancelled\]",
             r"Run ended: cancelled\.")
    answer = lines[index_of(lines, r"assistant: It is ")]
    assert "golden" not in answer, "the answer went on after Stop"
    stopped = re.search(r"stopped at (\d+) words", lines[-1])
    assert stopped is not None and 5 <= int(stopped.group(1)) < 12, lines[-1]


def test_cancellable_nodes_stop_mid_tool_skips_the_pending_call_and_the_next_turn_is_valid(
        ) -> None:
    lines = run_example("cancellable_nodes.py", "--stop-at-page", "3", "--delay", "0.02")
    assert lines[0].startswith("model: StrictFakeChatModel")
    in_order(lines,
             r"  -> crawl_site\(url='https://docs.example.com', pages=200\)",
             r"  -> send_report\(to='me@example.com'\)",
             r"  \.\. crawl_site pages: 1 2 3",
             r"\[Stop pressed\]",
             r"  <- crawl_site: Stopped after \d+ of 200 pages",
             r"  x  send_report: Cancelled before it started: cancelled by client",
             r"\[run \w{8} cancelled\]",
             r"  send_report ran 0 times: no email was sent",
             r"  the client shows these tool calls cancelled: send_report$",
             r"  tool   \[call_crawl\] \(success\) Stopped after",
             r"  tool   \[call_report\] \(cancelled\) Cancelled before it started",
             r"find_history_errors\(checkpoint\) == \[\]$",
             r"you: What did you manage to do\?",
             r"assistant: You stopped me mid-task\. crawl_site said: Stopped after .* "
             r"I never ran send_report",
             r"\[run \w{8} complete\]",
             r"Second turn: complete\.")
    assert index_of(lines, r"  crawl_site noticed the Stop at its next page")


@pytest.mark.filterwarnings("ignore:Jupyter is migrating its paths:DeprecationWarning")
def test_the_notebook_runs_the_story_end_to_end(tmp_path: Path) -> None:
    # Imported here, under this test's warning filter (older jupyter_core warns on import).
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    # A kernel spec for *this* interpreter (the venv's), found only through our manager, so
    # neither a user's kernels nor another Python can stand in for it.
    write_kernel_spec(tmp_path / "kernels" / "examples-venv")
    manager = AsyncKernelManager(
        kernel_name="examples-venv",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
    notebook = nbformat.read(EXAMPLES / "interruption.ipynb", as_version=4)
    env = offline_env() | {"JUPYTER_PLATFORM_DIRS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    NotebookClient(notebook, km=manager, timeout=20, startup_timeout=20,
                   record_timing=False).execute(cwd=str(EXAMPLES), env=env, cleanup_kc=True)

    outputs = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                assert output.get("output_type") != "error", output
                if output.get("name") == "stdout":
                    outputs.append(output["text"])
    lines = "".join(outputs).splitlines()
    assert lines[0] == "model: StrictFakeChatModel"
    in_order(lines,
             r"  -> crawl_site\(url='https://docs.example.com', pages=200\)",
             r"  <- fetch_sitemap: https://docs.example.com/sitemap.xml lists 200 pages",
             r"\[Stop pressed\]",
             r"  x  crawl_site: Cancelled before it completed\.",
             r"\[run \w{8} cancelled\]",
             r"crawl_site's thread saw the signal \d+ ms after Stop",
             # the client's view: one part done, the stopped one cancelled
             r"fetch_sitemap +output-available +https://docs",
             r"crawl_site +output-error +Cancelled before it completed\.",
             # before the repair: unanswered calls a provider rejects
             r"unanswered tool calls: \{'call_sitemap': 'fetch_sitemap', 'call_crawl'",
             r"a provider would answer 400: messages\[1\]: An assistant message with "
             r"'tool_calls' must be followed by tool messages",
             # after: every call answered, the thread valid
             r"  tool  \[call_sitemap\] \(success\) https://docs.example.com/sitemap.xml",
             r"  tool  \[call_crawl\] \(cancelled\) Cancelled before it completed",
             r"find_history_errors\(after\) == \[\]$",
             # the next turn, on the strict fake
             r"you: What did you manage to do\?",
             r"assistant: You stopped me mid-task\. What I have: .*sitemap.* "
             r"What was cancelled: crawl_site\.",
             r"\[run \w{8} complete\]",
             r"second turn: complete$")


def test_barge_in_interrupts_then_enqueues_then_rejects_the_same_speech() -> None:
    lines = [line.strip() for line in run_example("barge_in.py")]
    sections = "\n".join(lines).split("== multitask=")[1:]
    assert [s.split(" ", 1)[0] for s in sections] == ["interrupt", "enqueue", "reject"]
    interrupt, enqueue, reject = ([line.split("] ", 1)[-1] for line in section.splitlines()]
                                  for section in sections)
    in_order(interrupt, r"mic +speech started", r"mic +speech stopped",  # the cough
             r"stt +… actually make it",
             r"barge-in cancelled 1 run\(s\), reason user_speaking, 0\.\d+ s after",
             r"agent +interruption of \w{8}: received → aborted [\d.]+ ms",
             r"client +first run cancelled: user_speaking \(by user-1\), cancel sent",
             r"client +second run complete",
             r"client +last answer: '.*flights to Porto.*",
             r"thread +valid for the next turn")
    assert sum("barge-in" in line for line in interrupt) == 1, "the cough was withdrawn"
    in_order(enqueue, r"user +'Actually, make it Porto\.'", r"client +first run complete",
             r"client +second run complete", r"client +last answer: '.*flights to Porto.*",
             r"thread +valid")
    in_order(reject, r"agent +refused: .* multitask strategy is reject \(40900\)",
             r"client +first run complete", r"client +second run error: 40900 ",
             r"client +last answer: '.*flights to Lisbon.*", r"thread +valid")


def test_steering_takes_a_steer_in_then_resumes_an_interrupted_answer() -> None:
    lines = [line.split("] ", 1)[-1] for line in run_example("steering.py")]
    in_order(lines,
             r"user +'Find me a restaurant in Alfama tonight\.'",
             r"user +\(while the search runs\) 'also, vegan options please'",
             r"agent +a steer arrived from user-1",
             r"client +steer outcome: consumed=True \(run complete\)",
             r"client +answer: '.*vegan.*'",
             r"user +'Describe Alfama for me\.'",
             r"client +cut off after: ",
             r"client +resumed: 'and the tram back up the hill",
             r"thread +valid for the next turn")

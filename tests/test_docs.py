"""The README's and the docs' snippets (every one that is a program) and the demo run as
documented; the links between them lead somewhere."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ABLY_API_KEY")
NOT_RUN = "# not run:"  # the first line of a snippet that is a fragment, not a program
CONTINUES = "# continues the quick start"  # a snippet run after the quick start's definitions
DOCS = ROOT / "docs"
#: Pages whose snippets are not run here, and why (their owners check them).
NOT_HERE = {
    "postgres.md": "it needs a PostgreSQL server (tests/postgres)",
}
#: For docs snippets that sign with an Ably key (a token request) without connecting: the
#: offline broker's key, which no Ably service accepts. A snippet that connects to Ably is
#: marked ``# not run:``.
OFFLINE_ABLY_KEY = {"ABLY_API_KEY": "broker.testkey:broker-secret"}


def readme_python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)


def quick_start() -> str:
    """The first Python block under the README's ``## Quick start``."""
    section = (ROOT / "README.md").read_text().split("\n## Quick start\n", 1)[1]
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert code is not None, "the README's quick start has a Python block"
    return code.group(1)


def program_of(block: str) -> str:
    """What runs for a README block: the block, after the quick start's definitions (without its
    ``asyncio.run(main())``) when the block says it continues the quick start."""
    if not block.startswith(CONTINUES):
        return block
    definitions = quick_start().replace("\nasyncio.run(main())\n", "\n")
    assert definitions != quick_start(), "the quick start ends with asyncio.run(main())"
    return definitions + "\n" + block


def run_offline(code: str, tmp_path: Path, name: str = "snippet.py",
                extra_env: dict[str, str] | None = None) -> str:
    """Run ``code`` as a script in a fresh interpreter, without provider or Ably keys, checked
    to exit cleanly within the timeout; its stdout."""
    script = tmp_path / name
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          encoding="utf-8", timeout=60, check=False, cwd=tmp_path,
                          env=env | (extra_env or {}) | {"PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, f"{name} failed:\n{code}\n{done.stderr}"
    assert "Traceback" not in done.stderr and "Task exception" not in done.stderr, done.stderr
    return done.stdout


def test_the_readme_quick_start_is_a_langgraph_app_made_interruptible_by_one_line() -> None:
    code = quick_start()
    assert len(code.splitlines()) <= 45, "the quick start stays short"
    assert "StateGraph(" in code and "FakeStreamingChatModel(" in code and "@tool" in code
    assert code.count("RunCallbackHandler(run)") == 1
    assert re.search(r'config\["callbacks"\] = \[RunCallbackHandler\(run\)\]', code)
    assert "run_graph" not in code and ".pipe(" not in code, "drop-in, not the transport API"


def test_the_readme_quick_start_runs_and_cancels(tmp_path: Path) -> None:
    """Pasted into a file, the quick start runs offline: Stop lands while the tool runs, the
    run ends cancelled, and the thread is valid (``find_history_errors`` prints ``[]``)."""
    out = run_offline(quick_start(), tmp_path, "quickstart.py")
    assert out.splitlines() == ["cancelled", "[]"], out


def test_the_readme_serves_the_quick_start_graph_with_create_agent_app(tmp_path: Path) -> None:
    blocks = [b for b in readme_python_blocks() if "create_agent_app(" in b]
    assert len(blocks) == 1 and blocks[0].startswith(CONTINUES), blocks
    check = ("from starlette.applications import Starlette\n"
             "assert isinstance(app, Starlette)\n"
             "print([route.path for route in app.routes])\n")
    out = run_offline(program_of(blocks[0]) + check, tmp_path, "serve.py")
    assert out.splitlines() == ["['/api/chat']"], out


def test_the_readme_puts_langgraph_first_and_the_transport_api_after() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("# langgraph_interrupt\n\n```bash\n"
                             "bash scripts/demo.sh    # set up and run the demo")
    headings = re.findall(r"^#+ .*$", readme, re.M)
    order = ["## Quick start", "### Serve it to the official client", "## The transport API"]
    assert [h for h in headings if h in order] == order, headings


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_every_readme_python_block_runs_offline(index: int, tmp_path: Path) -> None:
    """Every README snippet is a program that runs as shown (or says it continues the quick
    start), unless its first line marks it ``# not run:`` (a fragment, kept few)."""
    block = readme_python_blocks()[index]
    if block.startswith(NOT_RUN):
        pytest.skip("a fragment, marked " + NOT_RUN)
    run_offline(program_of(block), tmp_path, f"readme_block_{index}.py")


def test_readme_fragments_are_few() -> None:
    blocks = readme_python_blocks()
    assert len(blocks) >= 3
    assert sum(b.startswith(NOT_RUN) for b in blocks) <= 2


# -- the docs ----------------------------------------------------------------------------------
class Snippet:
    """One ```python block of a docs page: its code (unindented, for a block in a list) and
    the output the page shows for it (a ```text block right after "It prints...:"), if any."""

    def __init__(self, page: str, index: int, code: str, prints: str | None) -> None:
        self.page, self.index, self.code, self.prints = page, index, code, prints

    def __repr__(self) -> str:
        return f"{self.page}#{self.index}"


BLOCK = re.compile(r"^([ \t]*)```python\n(.*?)^\1```\n"
                   r"(?:\nIt prints[^\n]*:\n\n```text\n(.*?)^```)?", re.S | re.M)


def docs_snippets() -> list[Snippet]:
    """Every ```python block of docs/*.md (but the pages in NOT_HERE), in page order."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        if page.name in NOT_HERE:
            continue
        for index, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
            indent, body, prints = match.groups()
            code = "".join(line.removeprefix(indent)
                           for line in body.splitlines(keepends=True))
            found.append(Snippet(page.name, index, code, prints))
    return found


def output_pattern(shown: str) -> re.Pattern[str]:
    """What a page shows a program printing, as a pattern: numbers may differ (timings)."""
    lines = [re.sub(r"\d+", r"\\d+", re.escape(line)) for line in shown.splitlines()]
    return re.compile("\n".join(lines) + "\n?")


@pytest.mark.parametrize("snippet", docs_snippets(), ids=repr)
def test_every_docs_python_block_runs_offline(snippet: Snippet, tmp_path: Path) -> None:
    """Every docs snippet is a program that runs as shown, offline (or says it continues the
    README's quick start), and prints what the page says it prints; a fragment says
    ``# not run: <why>`` on its first line."""
    if snippet.code.startswith(NOT_RUN):
        pytest.skip(snippet.code.splitlines()[0])
    out = run_offline(program_of(snippet.code), tmp_path, "doc_snippet.py",
                      extra_env=OFFLINE_ABLY_KEY)
    if snippet.prints is not None:
        assert output_pattern(snippet.prints).fullmatch(out), \
            f"{snippet!r} printed:\n{out}\nthe page shows:\n{snippet.prints}"


def test_docs_fragments_are_few_and_say_why() -> None:
    snippets = docs_snippets()
    fragments = [s for s in snippets if s.code.startswith(NOT_RUN)]
    assert len(snippets) >= 15
    assert 3 * len(fragments) <= len(snippets), f"too many fragments: {fragments}"
    for fragment in fragments:
        why = fragment.code.splitlines()[0].removeprefix(NOT_RUN).strip()
        assert len(why) >= 15, f"{fragment!r} does not say why it is not run"


def test_the_docs_programs_cover_the_cancellation_decisions() -> None:
    """The cancellation page shows run_graph being called, and the program that presses Stop
    mid-tool prints a cut-short answer kept and a pending call that never started."""
    cancellation = [s for s in docs_snippets() if s.page == "cancellation.md"]
    assert any("run_graph(graph, session.create_run(invocation))" in s.code
               and "Invocation.from_json(" in s.code for s in cancellation)
    shown = "\n".join(s.prints or "" for s in cancellation)
    assert "tool-crawl output-available stopped after" in shown
    assert "tool-send_report output-error Cancelled before it started" in shown


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub makes for a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.*)$", text, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", ["README.md", *sorted(
    f"docs/{p.name}" for p in DOCS.glob("*.md") if p.name not in NOT_HERE)])
def test_links_lead_to_files_and_headings_in_the_repository(page: str) -> None:
    """A relative link names a file of this repository (not one beside it), and a link to a
    heading names one that exists."""
    path = ROOT / page
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.is_relative_to(ROOT), f"{page} links outside the repository: {target}"
        assert linked.exists(), f"{page} links to a missing file: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in heading_anchors(linked.read_text(encoding="utf-8")), \
                f"{page} links to a missing heading: {target}"


# -- the pictures --------------------------------------------------------------------------------
def test_the_benchmarks_import_matplotlib_only_for_a_plot() -> None:
    code = ("import sys; sys.path.insert(0, 'bench')\n"
            "import bargein, network, plot, transport\n"
            "assert 'matplotlib' not in sys.modules, 'imported without --plot'\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_a_benchmark_plots_its_latency_distributions(tmp_path: Path) -> None:
    """``--plot PATH`` writes a PNG of the cancel latencies (a short transport.py run)."""
    pytest.importorskip("matplotlib", reason="the bench extra (matplotlib) is not installed")
    png = tmp_path / "cancel.png"
    done = subprocess.run(
        [sys.executable, "bench/transport.py", "--only", "cancel", "--runs", "8", "--repeat",
         "1", "--token-interval", "0.01", "--plot", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert f"plot: {png}" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_the_performance_page_shows_the_benchmarks_pictures() -> None:
    page = (DOCS / "performance.md").read_text(encoding="utf-8")
    for name, script in (("transport-cancel", "transport"), ("network-latency", "network"),
                         ("bargein-latency", "bargein")):
        assert f"](images/{name}.png)" in page, name
        assert f"bench/{script}.py" in page and f"--plot docs/images/{name}.png" in page


def diagram_steps() -> list[str]:
    """What the protocol page's cancel diagram has the agent publish after the client's
    ``ai-cancel``, in order, as the kinds :func:`wire_steps` names (the flush left out: how
    much is left to flush depends on timing)."""
    page = (DOCS / "protocol.md").read_text(encoding="utf-8")
    diagram = re.search(r"^```mermaid\n(sequenceDiagram\n.*?)^```", page, re.S | re.M)
    assert diagram is not None, "protocol.md has a Mermaid sequence diagram"
    labels = re.findall(r"^\s*(\w+)\s*-?->>\s*(\w+)\s*:\s*(.*)$", diagram.group(1), re.M)
    after = [i for i, (_, _, text) in enumerate(labels) if text.startswith("ai-cancel")]
    assert after, "the diagram shows the client's ai-cancel"
    kinds = {"tool-output-error": "tool-output-error", "what it writes": "on_cancelled",
             "status: cancelled": "status:cancelled", "ai-step-end": "ai-step-end",
             "ai-run-end": "ai-run-end"}
    steps = []
    for source, _, text in labels[after[0] + 1:]:
        if source == "A":
            steps += [kind for key, kind in kinds.items() if key in text]
    return steps


def wire_steps(records: list[Any]) -> tuple[list[str], dict[str, str]]:
    """The agent's publishes after the client's ``ai-cancel`` as kinds (appends of text left
    out), and the ``ai-run-end``'s transport headers."""
    steps: list[str] = []
    end: dict[str, str] = {}
    cancelled = False
    for record in records:
        ai = (record.extras or {}).get("ai", {})
        transport, codec = ai.get("transport", {}), ai.get("codec", {})
        if record.name == "ai-cancel":
            assert transport.get("x-cancel-reason") == "user_clicked_stop"
            cancelled = True
        elif not cancelled or record.client_id != "agent":
            continue
        elif record.op == "append" and transport.get("status") == "cancelled":
            steps.append("status:cancelled")
        elif record.name == "ai-output" and codec.get("kind") == "tool-output-error":
            steps.append("tool-output-error")
        elif record.name == "ai-output" and str(codec.get("kind", "")).startswith("data-"):
            steps.append("on_cancelled")
        elif record.name in ("ai-step-end", "ai-run-end"):
            steps.append(record.name)
            if record.name == "ai-run-end":
                end = transport
    return steps, end


async def test_the_protocol_pages_cancel_diagram_is_the_order_on_the_wire() -> None:
    """A recorded Stop with everything open at once: a text stream (a model streaming), a tool
    call (a tool running) and an ``on_cancelled`` hook that writes."""
    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph

    from langgraph_interrupt import AgentSession, ClientSession, InMemoryBroker
    from langgraph_interrupt.integration import run_graph
    from langgraph_interrupt.testing import FakeStreamingChatModel

    working = asyncio.Event()

    @tool
    async def crawl(url: str) -> str:
        """Crawl until stopped."""
        working.set()
        await asyncio.Event().wait()
        return "never"

    model = FakeStreamingChatModel([" ".join(f"w{i}" for i in range(500))], token_delay=0.01)

    async def talk(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    async def work(state: MessagesState) -> dict[str, Any]:
        await crawl.ainvoke({"name": "crawl", "args": {"url": "/"}, "id": "c1",
                             "type": "tool_call"})
        return {}

    graph = (StateGraph(MessagesState).add_node(talk).add_node(work)
             .add_edge(START, "talk").add_edge(START, "work")
             .compile(checkpointer=InMemorySaver()))

    async def note(run: Any, reason: Any) -> None:
        await run.write({"type": "data-cancel-note", "data": {"why": reason.name}})

    broker = InMemoryBroker(record=True)
    async with ClientSession(broker.channel("ai:wire", client_id="user-1")) as client, \
            AgentSession(broker.channel("ai:wire", client_id="agent")) as session:
        handle = await client.send("go")
        serving = asyncio.create_task(run_graph(
            graph, session.create_run(handle.invocation, on_cancelled=note)))
        await asyncio.wait_for(working.wait(), 10)
        await client.wait_for(lambda c: "w3 " in str(c.messages[-1]["parts"]))
        await handle.cancel(reason="user_clicked_stop")
        assert (await serving).reason == "cancelled"
    steps, end = wire_steps(broker.records)
    assert steps == diagram_steps() == ["tool-output-error", "on_cancelled", "status:cancelled",
                                        "ai-step-end", "ai-run-end"], steps
    assert end["run-reason"] == "cancelled"
    assert (end["x-cancel-reason"], end["x-cancel-by"]) == ("user_clicked_stop", "user-1")


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
    (after the third source, as asked), the tool's own cut-short answer shown, the run
    cancelled with the reason, the tool really stopped, the thread keeping that answer and
    valid, the next message answered from it."""
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
        r"  <- search_festivals: Stopped after (\d+) of 40 sources.*  \(output-available\)$",
        r"\[run (\w{8}) cancelled\] reason user_clicked_stop, by user-1$",
        r"Run ended: cancelled, \d+ ms after Stop \(reason user_clicked_stop\)\.$",
        r"search_festivals saw the abort signal after (\d+) of 40 sources",
        r"The thread, repaired \(the tool's own answer kept: call_festivals\):$",
        r"  tool   \[call_festivals\] \(success\) Stopped after (\d+) of 40",
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
    started, shown, cancelled, searched, kept, restarted, completed = (
        m.group(1) for m in found if m is not None and m.groups())
    assert started == cancelled != restarted == completed  # one cancelled run, then another
    assert 3 <= int(searched) < 40, "the tool stopped searching soon after Stop"
    assert shown == searched == kept  # what the client saw is what the thread holds


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

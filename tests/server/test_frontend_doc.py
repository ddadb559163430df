"""docs/frontend.md stays true: its server code builds an app that serves as described, and
the names its TypeScript imports exist in the pinned JS packages."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "frontend.md").read_text()
NODE_MODULES = ROOT / "tests" / "js" / "node_modules"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


@pytest.fixture
def doc_server(monkeypatch):
    """The doc's server.py, executed with a stand-in ``my_agent`` (no network is used:
    the Ably realtime client is only made in the lifespan, which is not entered here)."""
    [source] = [b for b in blocks("python") if "create_agent_app(\n    graph" in b]
    agent = types.ModuleType("my_agent")

    class Graph:  # quacks like a compiled graph
        def astream(self, *args, **kwargs):
            raise AssertionError("not run here")

    agent.graph = Graph()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_agent", agent)
    monkeypatch.setenv("ABLY_API_KEY", "app.key:secret")
    namespace: dict[str, object] = {"__name__": "server"}
    exec(compile(source, "docs/frontend.md:server.py", "exec"), namespace)
    return namespace


async def test_the_doc_server_serves_the_invocation_post_and_a_token(doc_server) -> None:
    app = doc_server["app"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent.test") as http:
        refused = await http.post("/api/chat", json={"inputEventId": "e",
                                                     "sessionName": "other:1"})
        bad = await http.post("/api/chat", content=b"{", headers={
            "content-type": "application/json"})
        preflight = await http.options("/api/chat", headers={
            "origin": "http://localhost:3000", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        token = await http.get("/api/auth/token")

    assert refused.status_code == 404  # allow_session: only "ai:" sessions
    assert bad.status_code == 400
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert token.status_code == 200
    signed = token.json()
    assert (signed["keyName"], signed["clientId"]) == ("app.key", "user-1")
    assert signed["capability"] == '{"ai:user-1-*": ["history", "publish", "subscribe"]}'
    assert None not in signed.values()
    await doc_server["rest"].close()


def test_the_doc_owner_only_hook_compares_the_requester_with_the_run_owner(doc_server) -> None:
    owner_only = doc_server["owner_only"]
    run = types.SimpleNamespace(run_client_id="user-1")
    assert owner_only(types.SimpleNamespace(client_id="user-1", run=run)) is True
    assert owner_only(types.SimpleNamespace(client_id="intruder", run=run)) is False


def test_every_python_block_compiles() -> None:
    for index, source in enumerate(blocks("python")):
        compile(source, f"docs/frontend.md:python-{index}", "exec")


IMPORT = re.compile(r"import\s*\{([^}]*)\}\s*from\s*'([^']+)'")


def test_the_names_the_typescript_imports_exist_in_the_pinned_packages() -> None:
    checked = 0
    for source in blocks("tsx") + blocks("ts"):
        for names, module in IMPORT.findall(source):
            package = "/".join(module.split("/")[:2] if module.startswith("@") else
                               module.split("/")[:1])
            root = NODE_MODULES / package
            if not root.is_dir():
                continue  # react and @ai-sdk/react are the app's, not pinned here
            declared = "\n".join(p.read_text() for p in root.rglob("*.d.ts")
                                 if "node_modules" not in p.relative_to(root).parts)
            for name in (n.strip().removeprefix("type ").strip() for n in names.split(",")):
                if name:
                    assert re.search(rf"\b{re.escape(name)}\b", declared), (
                        f"{module} does not declare {name}")
                    checked += 1
    assert checked >= 5

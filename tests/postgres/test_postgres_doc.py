"""docs/postgres.md's server runs as documented: a pool opened in the lifespan, the tables set
up, each POST a run of the graph, the thread in Postgres."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from langgraph_interrupt import ClientSession
from langgraph_interrupt.testing._postgres import PostgresCluster
from tests.postgres.conftest import OpenSaver
from tests.postgres.test_postgres_checkpointer import committed, summary

DOC = Path(__file__).resolve().parents[2] / "docs" / "postgres.md"


def server_block() -> str:
    section = DOC.read_text(encoding="utf-8").split("\n## The server\n", 1)[1]
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert code is not None, "docs/postgres.md's server section has a Python block"
    return code.group(1)


async def test_the_documented_server_keeps_each_sessions_thread_in_postgres(
        postgres: PostgresCluster, open_saver: OpenSaver, session_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres.url)  # TCP, as a deployment would
    server: dict[str, Any] = {"__name__": "server"}
    exec(compile(server_block(), str(DOC), "exec"), server)
    app, broker = server["app"], server["broker"]
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as http, \
            ClientSession(broker.channel(session_name, client_id="user-1")) as client:
        for text in ("hi", "still there?"):
            handle = await client.send(text)
            response = await http.post("/api/chat", json=handle.invocation.to_json())
            assert response.status_code == 200, response.text
            assert (await handle.wait_ended(timeout=10)).status == "complete"
        assert client.messages[-1]["parts"][-1]["text"] == "Answer to message 3."
    assert server["pool"].closed, "the lifespan closed the pool"
    assert summary(await committed(open_saver, session_name)) == [
        ("human", "hi"), ("ai", "Answer to message 1."),
        ("human", "still there?"), ("ai", "Answer to message 3.")]

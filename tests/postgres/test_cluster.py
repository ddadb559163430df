"""The throwaway cluster helper: it starts from nothing, and is stopped and removed whatever
happens inside it."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from langgraph_interrupt.testing._postgres import (
    PostgresCluster,
    PostgresUnavailableError,
    postgres_cluster,
)


def test_the_session_cluster_is_fast_and_not_durable(postgres: PostgresCluster) -> None:
    with psycopg.connect(postgres.conninfo) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'port')").fetchall())
        database = conn.execute("SELECT current_database()").fetchone()
    assert settings == {"fsync": "off", "port": str(postgres.port)}
    assert database == ("langgraph",)
    with psycopg.connect(postgres.url) as conn:  # TCP on 127.0.0.1 too
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_cluster_is_stopped_and_removed_even_when_its_user_fails() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), postgres_cluster(dbname="doomed") as cluster:
        with psycopg.connect(cluster.conninfo) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("doomed",)
        raise Boom
    assert not cluster.directory.exists(), "the temporary directory was removed"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=5).close()  # nothing listens any more


def test_a_port_taken_between_the_probe_and_the_start_is_retried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from langgraph_interrupt.testing import _postgres

    with socket.socket() as taken:  # a port someone else listens on
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        real = _postgres._free_port
        probed: list[int] = []

        def probe() -> int:  # the first probe "finds" the busy port
            probed.append(busy if not probed else real())
            return probed[-1]

        monkeypatch.setattr(_postgres, "_free_port", probe)
        with postgres_cluster(dbname="retried") as cluster:
            assert probed == [busy, cluster.port]
            with psycopg.connect(cluster.url) as conn:
                assert conn.execute("SELECT current_database()").fetchone() == ("retried",)


def test_missing_binaries_are_an_error_that_says_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailableError, match=r"setup_postgres\.sh"), \
            postgres_cluster(bin_dir=tmp_path):
        pass

"""Real processes for the multi-worker tests and ``bench/workers.py``: the offline broker, a
throwaway Postgres cluster made ready for the workers, and agent worker processes
(``worker_app.py``) that share a control channel.

Everything here synchronises on what a process prints (the broker's JSON line, a worker's
ready line) or on its exit, never on a timer; a process that dies first is reported with
the tail of its log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from langgraph_interrupt.testing._postgres import PostgresCluster, postgres_cluster

ROOT = Path(__file__).resolve().parents[2]
WORKER_APP = Path(__file__).resolve().with_name("worker_app.py")
START_TIMEOUT = 60.0  # seconds for a process to print its ready line (imports, a loaded CI)


def _read_line(stream: IO[str], timeout: float) -> str:
    """One line from ``stream`` (a child's stdout), or TimeoutError; '' at end of file."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(stream.readline).result(timeout)
    finally:
        pool.shutdown(wait=False)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class BrokerProcess:
    """``python -m langgraph_interrupt.testing.ably_broker --json`` in a child process."""

    presence_leave_timeout_ms: int
    log_dir: Path
    port: int = 0
    key: str = ""
    process: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> BrokerProcess:
        log = self.log_dir / "broker.log"
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "langgraph_interrupt.testing.ably_broker", "--json",
                 "--presence-leave-timeout", str(self.presence_leave_timeout_ms)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, START_TIMEOUT)
        if not line:
            raise RuntimeError(f"the broker exited ({self.process.wait()}): {_tail(log)}")
        info = json.loads(line)
        self.port, self.key = info["port"], info["key"]
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def client_options(self, client_id: str, *,
                       capability: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """ably-python options for a participant; ``capability`` limits its token."""
        from langgraph_interrupt.testing.ably_broker._client_options import (
            python_client_options,
        )

        options = python_client_options("127.0.0.1", self.port, key=self.key,
                                        client_id=client_id)
        if capability is not None:
            options["default_token_params"] = {"client_id": client_id,
                                               "capability": json.dumps(capability)}
        return options


#: A notification on channel :data:`CHECKPOINTS` (payload: the thread id) whenever a
#: checkpoint row is committed, so a test waits for a commit instead of polling. The saver
#: writes a checkpoint's blobs before its row, so the row's commit means all of it is there.
CHECKPOINTS = "lgi_checkpoints"
NOTIFY_DDL = f"""CREATE OR REPLACE FUNCTION lgi_notify_checkpoint() RETURNS trigger AS $$
BEGIN PERFORM pg_notify('{CHECKPOINTS}', NEW.thread_id); RETURN NEW; END $$ LANGUAGE plpgsql"""
NOTIFY_TRIGGER = """CREATE OR REPLACE TRIGGER lgi_checkpoint_committed
AFTER INSERT OR UPDATE ON checkpoints FOR EACH ROW EXECUTE FUNCTION lgi_notify_checkpoint()"""


async def prepare_database(cluster: PostgresCluster) -> None:
    """The checkpointer's tables and the tools' effects table, once, before the workers
    start (their own ``setup()`` then has nothing to migrate, so they never race)."""
    import psycopg

    from .worker_app import EFFECTS_DDL

    async with AsyncPostgresSaver.from_conn_string(cluster.conninfo) as saver:
        await saver.setup()
    async with await psycopg.AsyncConnection.connect(cluster.conninfo, autocommit=True) as conn:
        await conn.execute(EFFECTS_DDL)
        await conn.execute(NOTIFY_DDL)
        await conn.execute(NOTIFY_TRIGGER)


@contextlib.contextmanager
def database(dbname: str = "workers") -> Iterator[PostgresCluster]:
    """A throwaway cluster with the workers' tables (stopped and removed at the end)."""
    with postgres_cluster(dbname=dbname) as cluster:
        asyncio.run(prepare_database(cluster))
        yield cluster


@dataclass
class WorkerProcess:
    """One ``worker_app.py`` process, once it printed its ready line."""

    name: str
    process: subprocess.Popen[str]
    log: Path
    port: int = 0
    worker_id: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> WorkerProcess:
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, timeout)
        if not line:
            raise RuntimeError(f"worker {self.name} exited ({self.process.wait()}) before it "
                               f"was ready:\n{_tail(self.log)}")
        ready = json.loads(line)
        self.port, self.worker_id = ready["port"], ready["worker_id"]
        return self

    def wait_stopped(self, timeout: float = 30.0) -> int:
        """After SIGTERM: the worker's ``stopped`` line (a clean shutdown), then its exit
        status (uvicorn re-raises the SIGTERM after shutting down: -15)."""
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, timeout)
        if not line or not json.loads(line).get("stopped"):
            raise AssertionError(f"worker {self.name} did not shut down cleanly ({line!r}):\n"
                                 f"{self.log_tail()}")
        code = self.process.wait(timeout)
        self.process.stdout.close()  # it may be replaced (ensure): leave no pipe open
        return code

    def log_tail(self) -> str:
        return _tail(self.log)

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        """The client's POST to this worker (the load balancer chose it)."""
        async with httpx.AsyncClient(timeout=20) as http:
            return await http.post(f"{self.url}/api/chat", json=body)

    async def state(self, **params: str) -> dict[str, Any]:
        """``GET /test/state`` (``seen=client:action``, ``gone=worker id``: wait first)."""
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"{self.url}/test/state", params=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def release(self, thread: str) -> None:
        async with httpx.AsyncClient(timeout=20) as http:
            (await http.post(f"{self.url}/test/release", json={"thread": thread})
             ).raise_for_status()

    async def profile(self, action: str, top: int = 30) -> str:
        """``POST /test/profile``: ``start`` cProfiling the worker, or ``stop`` and get its
        top functions by own time."""
        async with httpx.AsyncClient(timeout=60) as http:
            response = await http.post(f"{self.url}/test/profile",
                                       json={"action": action, "top": top})
        response.raise_for_status()
        return str(response.json().get("stats", ""))

    def kill(self) -> None:
        """``kill -9``: no shutdown, no presence leave; the broker sees the socket close."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def terminate(self) -> None:
        """SIGTERM: uvicorn shuts the app down (drain, end runs, leave the others)."""
        self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> int:
        if self.alive:
            self.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


@dataclass
class Deployment:
    """Workers of one deployment: one control channel, the broker, the database."""

    broker: BrokerProcess
    pg: PostgresCluster
    log_dir: Path
    control: str = "ai-workers"
    extra_args: Sequence[str] = ()
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    def _launch(self, name: str, args: Sequence[str]) -> WorkerProcess:
        log = self.log_dir / f"worker-{name}-{len(os.listdir(self.log_dir))}.log"
        command = [sys.executable, str(WORKER_APP), "--name", name, "--port", "0",
                   "--broker", self.broker.address, "--key", self.broker.key,
                   "--pg", self.pg.conninfo, "--control", self.control,
                   *self.extra_args, *args]
        with log.open("w") as stderr:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=stderr, text=True)
        return WorkerProcess(name, process, log)

    def start(self, *names: str, args: Sequence[str] = ()) -> list[WorkerProcess]:
        """Start workers ``names`` at once (their imports overlap); wait until all serve."""
        launched = [self._launch(name, args) for name in names]
        for worker in launched:
            worker.wait_ready()
            self.workers[worker.name] = worker
        return launched

    def ensure(self, *names: str) -> list[WorkerProcess]:
        """Workers ``names``, started again if a test killed them."""
        missing = [n for n in names if n not in self.workers or not self.workers[n].alive]
        if missing:
            self.start(*missing)
        return [self.workers[n] for n in names]

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()

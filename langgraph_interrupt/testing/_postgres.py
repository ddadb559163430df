"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temporary directory, started on a
free port, always stopped and removed.

Owns: :func:`postgres_cluster` and :class:`PostgresCluster`. Nothing else is needed but the
server binaries (``initdb``, ``pg_ctl``, ``createdb``; ``bash scripts/setup_postgres.sh``
installs Debian's): no running server, no configuration, no password. The cluster trusts
local connections, listens on a Unix socket in its directory and on ``127.0.0.1`` at a free
port, and runs with ``fsync`` off (fast, and nothing survives it anyway).

PostgreSQL refuses to run as root: as root the cluster runs as the ``postgres`` system user
(Debian's package creates it), else as the current user. Connections from any local user are
trusted; the database superuser is ``postgres``::

    with postgres_cluster() as cluster:
        async with AsyncPostgresSaver.from_conn_string(cluster.conninfo) as saver:
            await saver.setup()
            ...

Synchronous on purpose, so that a session-scoped pytest fixture can hold it::

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[PostgresCluster]:
        with postgres_cluster() as cluster:
            yield cluster
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PostgresCluster", "PostgresUnavailableError", "find_postgres_bin",
           "postgres_cluster"]

_SUPERUSER = "postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.65535" and a margin
_PORT_TRIES = 5
_FAST: Mapping[str, str] = {"fsync": "off", "synchronous_commit": "off",
                            "full_page_writes": "off"}


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server binaries are missing, or the cluster could not start."""


@dataclass(frozen=True, slots=True)
class PostgresCluster:
    """A running throwaway cluster (see :func:`postgres_cluster`)."""

    bin_dir: Path
    directory: Path  # holds data/, the log and the Unix socket
    port: int
    dbname: str
    user: str = _SUPERUSER
    tcp: bool = True
    run_as: str | None = None  # the OS user running the server; None: the current one

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def conninfo(self) -> str:
        """A libpq connection string for :attr:`dbname` over the Unix socket (psycopg's
        ``AsyncConnection.connect``, ``AsyncPostgresSaver.from_conn_string``)."""
        return self.conninfo_for(self.dbname)

    @property
    def url(self) -> str:
        """A ``postgresql://`` URL for :attr:`dbname` over TCP on ``127.0.0.1`` (needs
        ``tcp=True``): for other processes and tools that want a URL."""
        if not self.tcp:
            raise PostgresUnavailableError("the cluster was started without TCP (tcp=False)")
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def conninfo_for(self, dbname: str) -> str:
        """A libpq connection string for another database of this cluster."""
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={dbname}"

    def create_database(self, dbname: str) -> str:
        """Create database ``dbname``; returns its connection string."""
        _check_name(dbname)
        _run([str(self.bin_dir / "createdb"), "-h", str(self.socket_dir), "-p",
              str(self.port), "-U", self.user, dbname], cwd=self.directory)
        return self.conninfo_for(dbname)

    def log(self) -> str:
        """The server log so far (for a failure message)."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$PG_BIN``, else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian, Ubuntu), else ``initdb`` on ``PATH``."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    debian.sort(key=lambda path: _version(Path(path).parent.name), reverse=True)
    candidates.extend(Path(path) for path in debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "pg_ctl")):
            return directory
    return None


@contextlib.contextmanager
def postgres_cluster(*, dbname: str = "test", bin_dir: str | Path | None = None,
                     run_as: str | None = None, tcp: bool = True,
                     settings: Mapping[str, str] | None = None,
                     start_timeout: float = 60.0) -> Iterator[PostgresCluster]:
    """Start a throwaway cluster with database ``dbname``; stop and delete it on exit,
    whatever happened.

    Args:
        dbname: the database created in it (its :attr:`PostgresCluster.conninfo`).
        bin_dir: the server binaries; default :func:`find_postgres_bin`.
        run_as: the OS user running the server; default ``postgres`` as root, else the
            current user.
        tcp: also listen on ``127.0.0.1`` at the cluster's port (else the socket only).
        settings: server settings on top of the fast, non-durable defaults
            (``fsync=off``, ``synchronous_commit=off``, ``full_page_writes=off``).
        start_timeout: seconds ``pg_ctl start`` may wait for the server.

    Raises:
        PostgresUnavailableError: no binaries, no user to run as, or the server did not
            start (with its log).
    """
    _check_name(dbname)
    binaries = Path(bin_dir) if bin_dir is not None else find_postgres_bin()
    if binaries is None or not os.access(binaries / "initdb", os.X_OK):
        raise PostgresUnavailableError(
            "PostgreSQL server binaries not found (initdb, pg_ctl): run "
            "`bash scripts/setup_postgres.sh` (Debian: apt-get install postgresql) or set "
            "PG_BIN to their directory")
    owner = _server_user(run_as)
    directory = Path(_short_tempdir())
    try:
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        user = owner.pw_name if owner is not None else None
        _run([str(binaries / "initdb"), "-D", str(directory / "data"), "-U", _SUPERUSER,
              "--auth=trust", "--no-sync", "--no-locale", "-E", "UTF8"],
             cwd=directory, user=owner)
        options = {**_FAST, **(settings or {}),
                   "unix_socket_directories": f"'{directory}'",
                   "listen_addresses": "'127.0.0.1'" if tcp else "''"}
        port = _start(binaries, directory, owner, options, start_timeout)
        try:
            cluster = PostgresCluster(bin_dir=binaries, directory=directory, port=port,
                                      dbname=dbname, tcp=tcp, run_as=user)
            cluster.create_database(dbname)
            yield cluster
        finally:
            _stop(binaries, directory, owner)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- helpers -------------------------------------------------------------------------------
def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _check_name(dbname: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", dbname):
        raise ValueError(f"not a plain database name: {dbname!r}")


def _server_user(run_as: str | None) -> pwd.struct_passwd | None:
    """Whom the server runs as: ``None`` for the current user (not root)."""
    if run_as is None and os.geteuid() != 0:
        return None
    name = run_as or "postgres"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PostgresUnavailableError(
            f"PostgreSQL cannot run as root and there is no {name!r} user to run it as "
            "(Debian's postgresql package creates 'postgres'; or pass run_as=)") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise PostgresUnavailableError(f"only root can run the cluster as {name!r}")
    if entry.pw_uid == 0:
        raise PostgresUnavailableError("PostgreSQL cannot run as root")
    return entry


def _short_tempdir() -> str:
    """A private temporary directory whose socket path fits in ``sun_path``."""
    directory = tempfile.mkdtemp(prefix="lgi-pg-")
    if len(directory) + len("/.s.PGSQL.65535") <= _SOCKET_PATH_MAX:
        return directory
    os.rmdir(directory)
    return tempfile.mkdtemp(prefix="lgi-pg-", dir="/tmp")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(binaries: Path, directory: Path, owner: pwd.struct_passwd | None,
           options: Mapping[str, str], timeout: float) -> int:
    """``pg_ctl start`` on a free port; another port if that one was taken meanwhile."""
    log = directory / "postgres.log"
    for attempt in range(_PORT_TRIES):
        port = _free_port()
        settings = {**options, "port": str(port)}
        flags = " ".join(f"-c {key}={value}" for key, value in settings.items())
        result = _run([str(binaries / "pg_ctl"), "start", "-w", "-t", str(int(timeout)),
                       "-D", str(directory / "data"), "-l", str(log), "-o", flags],
                      cwd=directory, user=owner, check=False)
        if result.returncode == 0:
            return port
        text = log.read_text(errors="replace") if log.exists() else ""
        taken = "could not bind" in text or "already in use" in text
        if taken and attempt + 1 < _PORT_TRIES:
            continue  # the port was taken between the probe and the start
        raise PostgresUnavailableError(
            f"pg_ctl start failed ({result.returncode}): {result.stdout}\n--- server log ---\n"
            f"{text}")
    raise AssertionError("unreachable")


def _stop(binaries: Path, directory: Path, owner: pwd.struct_passwd | None) -> None:
    if not (directory / "data" / "postmaster.pid").exists():
        return  # never started, or already stopped
    _run([str(binaries / "pg_ctl"), "stop", "-w", "-m", "immediate", "-D",
          str(directory / "data")], cwd=directory, user=owner, check=False)


def _run(command: list[str], *, cwd: Path, user: pwd.struct_passwd | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program (as ``user`` when given: we are root). Output goes to a file,
    not a pipe: a server started by ``pg_ctl`` must not hold our pipe open."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    extra: dict[str, Any] = {}
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with tempfile.TemporaryFile(mode="w+") as output:
        result = subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT, text=True,
                                check=False, **extra)
        output.seek(0)
        text = output.read()
    completed = subprocess.CompletedProcess(command, result.returncode, text, "")
    if check and result.returncode != 0:
        raise PostgresUnavailableError(
            f"{Path(command[0]).name} failed ({result.returncode}): {text.strip()}")
    return completed

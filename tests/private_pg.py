"""A private PostgreSQL server for fault drills: started, stopped, restarted and killed by the test itself, never
the shared server the rest of the suite uses.

Its binaries come from the embedded PostgreSQL wheel (pgserver) when installed, else from the machine
(``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``). PostgreSQL refuses to run as root: as root the server
runs as the unprivileged user ``nobody`` (its data folder is theirs)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2


def find_bindir() -> Path | None:
    with contextlib.suppress(ImportError):
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (bundled / "pg_ctl").is_file():
            return bundled
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            found = Path(subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                                        text=True).stdout.strip())
            if (found / "pg_ctl").is_file():
                return found
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="etl-private-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "nobody")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "nobody", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd=self.root)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=False)

    def restart(self, down_s: float = 3.0, mode: str = "fast") -> None:
        """Down for ``down_s`` seconds (connections refused), then up again."""
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self.url, connect_timeout=5)
        conn.autocommit = True
        return conn

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = find_bindir()
    if bindir is None:
        import pytest

        pytest.skip("no PostgreSQL binaries for a private server (install the local extra, or a PostgreSQL server)")
    server = PrivatePostgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.close()

"""A throwaway PostgreSQL cluster of a test's own, on a port of its own: the test may stop
it as a crash would (``pg_ctl stop -m immediate``) and start it again on the same port.

``initdb`` refuses to run as root, so when the tests run as root the cluster's commands
run as the ``postgres`` user (``runuser``), in a folder of its own under the system's
temporary directory (pytest's own folders are closed to other users). Clients connect
over TCP on 127.0.0.1 with trust authentication.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_service
from tests.realtime.conftest import free_port, reachable
from tests.waiting import PATIENCE, wait_until

CLUSTER_USER = "postgres"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder (Debian layout), if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


class PgCluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="fs-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            user = pwd.getpwnam(CLUSTER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", CLUSTER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PATIENCE)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr.strip()}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                # Stopped by killing its processes, never by a power cut: what was written
                # survives without fsync, and the machine is spared the syncing.
                "fsync = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 32MB\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t",
                  str(int(PATIENCE)), "start")  # fmt: skip
        wait_until(lambda: reachable("127.0.0.1", self.port), what="the private PostgreSQL")

    def crash(self) -> None:
        """Stop at once, as a crash would (the next start recovers from the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return reachable("127.0.0.1", self.port)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        conninfo = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=30) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.crash()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster, started; removed when the test ends."""
    pytest.importorskip("psycopg")
    bin_dir = pg_bin()
    if bin_dir is None:
        need_service("PostgreSQL", "no initdb under /usr/lib/postgresql/*/bin")
        raise AssertionError("unreachable")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        need_service("PostgreSQL", "running as root needs runuser to start a cluster")
    cluster = PgCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()

"""A real PostgreSQL server for the tests, started from Debian's binaries in a temp folder.

``make test`` installs ``postgresql`` (the Makefile's ``postgresql`` target); without it these
tests fail rather than skip. The server refuses to run as root, so under root it is started
as the ``postgres`` user with ``runuser``; it listens on 127.0.0.1 on a free port only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import free_port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: run `make postgresql` (or "
            "`apt-get install -y postgresql`); the PostgreSQL store tests need a real server",
            pytrace=False,
        )
    return Path(found[-1]).parent


PASSWORD = "tollway-test-pw"


class PostgresServer:
    """One throw-away cluster: password authentication, no fsync, superuser ``postgres``."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tollway-pg-"))
        self.data = self.root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        # With a password and sslmode=disable asyncpg reads no file while connecting
        # (~/.pgpass, ~/.postgresql/*): blockbuster would flag those reads on the loop.
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}?sslmode=disable"

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD)
        pwfile.chmod(0o644)
        subprocess.run(
            [*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8",
             "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        log = self.root / "postgres.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(self.data),
                 "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.root),
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        ready = [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{log.read_text(errors='replace')}")
            if subprocess.run(ready, check=False).returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("postgres never became ready")

    def create_database(self, name: str) -> str:
        """A fresh database; its URL."""
        subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-q", "-c", f'CREATE DATABASE "{name}"'],
            check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PGPASSWORD": PASSWORD},
        )  # fmt: skip
        return self.url(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Fast shutdown: open sessions are ended (a plain SIGTERM would wait for them).
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                 "-w", "-t", "10", "stop"],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)

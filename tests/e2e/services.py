"""Private PostgreSQL and Redis servers that a test may stop and start again, without touching the machine's own.

Each runs from the machine's binaries in a temporary directory, on a free loopback port; `stop()` ends it the
way a crash or an operator would, `start()` brings it back on the same port (PostgreSQL with its data, Redis
empty, as a Redis that keeps nothing on disk comes back).
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests import secrets_audit
from tests.e2e.server import free_port


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (trust auth, user postgres)."""

    def __init__(self):
        self.bin = _postgres_bin()
        if self.bin is None:
            pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl)")
        # Not under pytest's tmp_path: the server runs as the postgres user, who must reach its directory.
        self.root = Path(tempfile.mkdtemp(prefix="tollgate-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        os.chmod(self.root, 0o755)
        self._as_server_user(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def _as_server_user(self, *command) -> None:
        command = [str(part) for part in command]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.root, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> "PrivatePostgres":
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=100"
        self._as_server_user(
            self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "server.log", "-w", "start"
        )
        return self

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` ends every server process at once, like a crash: recovery replays the WAL on start."""
        self._as_server_user(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        log = self.root / "server.log"
        if log.exists():
            secrets_audit.register_output("a private PostgreSQL's log", log.read_text(errors="replace"))
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PrivatePostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class PrivateRedis:
    """A redis-server that keeps nothing on disk."""

    def __init__(self):
        self.executable = shutil.which("redis-server")
        if self.executable is None:
            pytest.skip("needs redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            [self.executable, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        """SIGKILL: the clients' connections drop and new ones are refused."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "PrivateRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log.seek(0)
        secrets_audit.register_output("a private Redis's log", self.log.read())
        self.log.close()

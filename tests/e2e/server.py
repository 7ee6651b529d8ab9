"""A live Tollgate server for end-to-end tests: `manage.py serve` in a subprocess on its own fresh database.

The tests talk to it only over HTTP (the openai SDK, the management API), like a user would. It gets its own
SQLite file, or its own PostgreSQL database when the suite runs with DATABASE_URL, so nothing is shared with the
test process's transactions.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx

from tests import secrets_audit

ROOT = Path(__file__).resolve().parents[2]
MASTER_KEY = "sk-e2e-master-7c1d9e4a2b8f6035a9e4c2d1"


def within_one_minute(seconds_needed: float = 15) -> None:
    """Wait for the next minute when fewer than `seconds_needed` seconds are left of this one: rpm limits count per
    clock minute, so a burst that crossed a minute boundary would be admitted twice over."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url(workdir: Path) -> tuple[str, callable]:
    """A fresh database for one server, and how to drop it afterwards."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        return f"sqlite:///{workdir / 'gateway.sqlite3'}", lambda: None
    parsed = urllib.parse.urlparse(base)
    name = f"tollgate_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    admin = parsed._replace(path="/postgres").geturl()
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return parsed._replace(path=f"/{name}").geturl(), drop


class GatewayServer:
    def __init__(self, workdir: Path, config_text: str, *, workers: int = 1, env: dict | None = None):
        self.workdir = workdir
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(config_text)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.master_key = MASTER_KEY
        self.database_url, self._drop_database = _database_url(workdir)
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": "e2e-secret-key-" + secrets.token_hex(16),
            "TOLLGATE_MASTER_KEY": MASTER_KEY,
            "TOLLGATE_VAR_DIR": str(workdir),
            "TOLLGATE_SYNC_INTERVAL": "0.2",
            # Tests refuse wrong keys on purpose, all from 127.0.0.1: the failed-auth throttle has its own tests.
            "TOLLGATE_AUTH_FAILURE_LIMIT": "10000",
            "PYTHONUNBUFFERED": "1",
            # Every record, so that the secrets audit would see a secret logged at any level.
            "LOG_LEVEL": "DEBUG",
            **(env or {}),
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server counts in its own var dir's metrics folder
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / "server.log"
        secrets_audit.register_secrets_in_env(self.env, "a live server's environment")
        secrets_audit.register_secrets_in_config(config_text, f"a live server's config ({self.config_path})")
        secrets_audit.register_log_file(self.log_path, "live server log")

    def manage(self, *args: str, check: bool = True, env_extra: dict | None = None) -> subprocess.CompletedProcess:
        secrets_audit.register_secrets_in_env(env_extra or {}, f"the environment of manage.py {args[0]}")
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(env_extra or {})},
            capture_output=True,
            text=True,
        )
        secrets_audit.register_output(f"manage.py {args[0]} of a live server", result.stdout + result.stderr)
        if check:
            result.check_returncode()
        return result

    def start(self) -> "GatewayServer":
        secrets_audit.register_server(self.url)
        self.manage("migrate", "--noinput")
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = self._popen(log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start in 30 s:\n{self.log()}")

    def _popen(self, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--config",
                str(self.config_path),
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drop_database()

    def query(self, sql: str, *params) -> list[tuple]:
        """Read the server's database directly (SQL with %s placeholders), as an operator would."""
        if self.database_url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", headers=self.admin_headers(), timeout=30, **kwargs)

    def __enter__(self) -> "GatewayServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

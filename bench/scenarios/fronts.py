"""What the front protocols cost: /v1/messages (Anthropic) and /v1/responses (OpenAI) against /chat/completions, the
same call on the same server and upstream, at 1 and 16 connections, JSON and streamed (issue 17).

    .venv/bin/python -m bench.scenarios.fronts [--seconds 4] [--rounds 2] [--database-url postgres://...]
                                               [--redis-url redis://...]

Starts bench/upstream.py (JSON answers on /ok/, paced streams of 10 chunks 5 ms apart on /paced/) and one Tollgate
server on a fresh database (SQLite in a temporary folder unless --database-url names a PostgreSQL server, where a
database of its own is made and dropped), called with a virtual key with a budget and limits: the full hot path.
Rows alternate endpoint by endpoint, `--rounds` times, so a drift of the machine falls on all three alike; each
figure is the median of the rounds. Every answer must be a 200 and the ledger must hold one log per answer, by
call type, or the run says it is not a result.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import httpx

from bench import load, services
from bench.targets import MESSAGES, ROOT, deployment, tollgate_config

MASTER_KEY = "sk-bench-fronts-" + secrets.token_hex(12)
PROMPT = MESSAGES[0]["content"]
# The same call in each API: what the client sends, and the call type its spend log records.
ENDPOINTS = {
    "chat": ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 100}, "chat"),
    "messages": ("/v1/messages", {"messages": MESSAGES, "max_tokens": 100}, "anthropic_messages"),
    "responses": ("/v1/responses", {"input": PROMPT, "max_output_tokens": 100}, "responses"),
}
MODES = {"json": "bench-model", "stream": "bench-stream"}
PACED_CHUNKS = 10


def body(endpoint: str, mode: str) -> bytes:
    payload = {"model": MODES[mode], **ENDPOINTS[endpoint][1]}
    if mode == "stream":
        payload["stream"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


class Database:
    """The server's database: SQLite in the work folder, or a fresh PostgreSQL database dropped at the end."""

    def __init__(self, base_url: str | None, workdir: Path):
        self.base_url = base_url
        if not base_url:
            self.url = f"sqlite:///{workdir / 'fronts.sqlite3'}"
            return
        import psycopg

        self.psycopg = psycopg
        parsed = urllib.parse.urlparse(base_url)
        self.name = f"tollgate_bench_fronts_{secrets.token_hex(3)}"
        self.admin = parsed._replace(path="/postgres").geturl()
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = parsed._replace(path=f"/{self.name}").geturl()

    def logs_by_call_type(self) -> dict[str, int]:
        sql = "SELECT call_type, count(*) FROM spend_spendlog GROUP BY call_type"
        if not self.base_url:
            import sqlite3

            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                return dict(conn.execute(sql).fetchall())
        with self.psycopg.connect(self.url) as conn:
            return dict(conn.execute(sql).fetchall())

    def drop(self) -> None:
        if self.base_url:
            with self.psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def start_upstream(workdir: Path) -> tuple[services.Service, str]:
    port = services.free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--chunks", str(PACED_CHUNKS)]
    argv += ["--gap-ms", "5", "--first-ms", "5"]
    base = f"http://127.0.0.1:{port}"
    upstream = services.Service("bench-upstream", argv, None, ROOT, workdir / "upstream.log", f"{base}/stats")
    upstream.start().wait_healthy(30)
    return upstream, base


def start_tollgate(workdir: Path, database: Database, redis_url: str | None, upstream: str) -> tuple:
    config = workdir / "config.yaml"
    deployments = [deployment("bench-model", f"{upstream}/ok/v1"), deployment("bench-stream", f"{upstream}/paced/v1")]
    config.write_text(tollgate_config(deployments))
    env = {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
        "DATABASE_URL": database.url,
        "SECRET_KEY": "bench-fronts-" + secrets.token_hex(16),
        "TOLLGATE_MASTER_KEY": MASTER_KEY,
        "TOLLGATE_VAR_DIR": str(workdir),
        "PYTHONUNBUFFERED": "1",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True)
    port = services.free_port()
    argv = [sys.executable, "manage.py", "serve", "--config", str(config), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    server = services.Service("tollgate", argv, env, ROOT, workdir / "tollgate.log", f"{base}/health/liveliness")
    server.start().wait_healthy(60)
    master = {"Authorization": f"Bearer {MASTER_KEY}"}
    key = httpx.post(
        f"{base}/key/generate",
        json={"models": list(MODES.values()), "max_budget": 1_000_000, "rpm_limit": 1_000_000_000},
        headers=master,
        timeout=30,
    ).json()["key"]
    return server, base, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def measure(args, workdir: Path, server, base: str, headers: dict) -> tuple[list[dict], dict[str, int]]:
    answered = dict.fromkeys(ENDPOINTS, 0)
    for endpoint, mode in ((e, m) for e in ENDPOINTS for m in MODES):  # warm-up: imports, pools, caches
        for _ in range(10):
            response = httpx.post(f"{base}{ENDPOINTS[endpoint][0]}", content=body(endpoint, mode), headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"warm-up {endpoint} {mode}: {response.status_code} {response.text[:300]}")
            answered[endpoint] += 1
    samples: dict[tuple, list] = {}
    for _ in range(args.rounds):
        for mode in MODES:
            for connections in args.connections:
                for endpoint, (path, _, _) in ENDPOINTS.items():
                    before = services.cpu_seconds(server.pid)
                    result = load.start_wrk(
                        f"{base}{path}", body(endpoint, mode), headers, connections, args.seconds, 2.0, workdir
                    ).result()
                    cpu_ms = 1000 * (services.cpu_seconds(server.pid) - before) / max(result.completed, 1)
                    answered[endpoint] += result.ok
                    problems = result.problems((200,))
                    if problems:
                        raise RuntimeError(f"{endpoint} {mode} c={connections} is not a result: {problems}")
                    samples.setdefault((mode, connections, endpoint), []).append((result.rps, cpu_ms, result.p50_ms))
                    print(f"  {mode:6} c={connections:<3} {endpoint:9} {result.rps:8.0f} req/s {cpu_ms:6.2f} ms CPU")
    rows = []
    for (mode, connections, endpoint), values in samples.items():
        rps, cpu, p50 = (statistics.median(column) for column in zip(*values, strict=True))
        rows.append(
            {"mode": mode, "connections": connections, "endpoint": endpoint, "rps": rps, "cpu_ms": cpu, "p50_ms": p50}
        )
    return rows, answered


def report(rows: list[dict]) -> str:
    lines = ["| | " + " | ".join(ENDPOINTS) + " | messages / chat | responses / chat |", "| --- " * 6 + "|"]
    by = {(r["mode"], r["connections"], r["endpoint"]): r for r in rows}
    for mode, connections in sorted({(r["mode"], r["connections"]) for r in rows}):
        cells = [by[(mode, connections, endpoint)] for endpoint in ENDPOINTS]
        chat = cells[0]
        figures = [f"{c['rps']:,.0f} req/s, {c['cpu_ms']:.2f} ms CPU" for c in cells]
        ratios = [f"{c['rps'] / chat['rps']:.2f}x req/s, {c['cpu_ms'] / chat['cpu_ms']:.2f}x CPU" for c in cells[1:]]
        lines.append(f"| {mode} c={connections} | " + " | ".join(figures + ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=lambda text: [int(c) for c in text.split(",")], default=[1, 16])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fronts-"))
    database = Database(args.database_url, workdir)
    upstream = server = None
    try:
        upstream, upstream_base = start_upstream(workdir)
        server, base, headers = start_tollgate(workdir, database, args.redis_url, upstream_base)
        rows, answered = measure(args, workdir, server, base, headers)
        logs = database.logs_by_call_type()
        expected = {ENDPOINTS[endpoint][2]: count for endpoint, count in answered.items()}
        ledger_ok = logs == expected
        print(f"\nledger: {logs} logs for {expected} answers: {'OK' if ledger_ok else 'MISMATCH: not a result'}")
        print(report(rows))
        (workdir / "fronts.json").write_text(json.dumps({"rows": rows, "ledger_ok": ledger_ok, "logs": logs}))
        print(f"\n{workdir / 'fronts.json'}")
    finally:
        for service in (server, upstream):
            if service is not None:
                service.stop()
        database.drop()


if __name__ == "__main__":
    main()

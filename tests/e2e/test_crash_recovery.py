"""Crashes lose no spend and charge nothing twice.

A server process killed with SIGKILL in the middle of a load: after a restart on the same database every call
that was answered is in the ledger once, and `reconcile_spend` finds the key's, user's and team's stored spend equal
to the sum of their logs. A Celery worker killed in the middle of a rollup: the next run completes it and the
daily rollups equal the logs exactly.
"""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests import secrets_audit
from tests.e2e.server import ROOT, GatewayServer
from tests.polling import wait_until

pytestmark = pytest.mark.live

# Odd per-token prices, so that any rounding or double charge shows in the last decimal place.
CONFIG = """
model_list:
  - model_name: crash-mock
    litellm_params: {model: mock/crash}
    model_info: {id: crash-mock-1, input_cost_per_token: 0.0000013, output_cost_per_token: 0.00000000037}
"""
CALLS = 400
CONCURRENCY = 40
KILL_AFTER = 150  # answered calls before the SIGKILL: the rest are queued, in flight or refused


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (uvicorn's workers, when there are several), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _kill_server(server: GatewayServer) -> None:
    """SIGKILL the server process and its workers: no shutdown handler, no flush, as a crash or the OOM killer."""
    victims = [server.process.pid, *_descendants(server.process.pid)]
    for pid in victims:  # the parent first, so it cannot replace the workers
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait(10)
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in victims[1:]),
        "the killed workers to be gone",
        timeout=10,
    )


@pytest.fixture
def server(tmp_path):
    with GatewayServer(tmp_path, CONFIG, workers=2 if os.environ.get("REDIS_URL") else 1) as live:
        yield live


def _payers(server: GatewayServer) -> dict[str, str]:
    """A team, a user in it and a key of both, made through the management API."""
    team = server.api("POST", "/team/new", json={"team_alias": "Crash team"})
    assert team.status_code == 200, team.text
    team_id = team.json()["team_id"]
    user = server.api("POST", "/user/new", json={"teams": [team_id], "auto_create_key": False})
    assert user.status_code == 200, user.text
    user_id = user.json()["user_id"]
    key = server.api("POST", "/key/generate", json={"user_id": user_id, "team_id": team_id})
    assert key.status_code == 200, key.text
    return {"key": key.json()["key"], "key_hash": key.json()["token"], "user_id": user_id, "team_id": team_id}


async def _load_with_a_crash(server: GatewayServer, key: str) -> list[tuple[str, bool]]:
    """CALLS calls, CONCURRENCY at a time (a quarter of them streamed), with the server SIGKILLed once KILL_AFTER
    have been answered. Returns (call id, completed) for every call that got a 200: a stream is completed only
    once its [DONE] arrived."""
    answered: list[tuple[str, bool]] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    killed = asyncio.Event()

    async def one(client: httpx.AsyncClient, number: int) -> None:
        stream = number % 4 == 0
        body = {"model": "crash-mock", "messages": [{"role": "user", "content": f"call {number} " * (number % 7 + 1)}]}
        async with gate:
            if killed.is_set():
                return
            try:
                async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": stream}) as response:
                    text = (await response.aread()).decode()
                    if response.status_code == 200:
                        answered.append((response.headers["x-litellm-call-id"], not stream or "[DONE]" in text))
            except httpx.TransportError:
                return  # refused, reset or cut off by the crash: its charge is whatever the ledger committed
        if len(answered) >= KILL_AFTER and not killed.is_set():
            killed.set()
            _kill_server(server)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30, limits=limits) as client:
        await asyncio.gather(*(one(client, number) for number in range(CALLS)))
    assert killed.is_set(), "the load finished before the server was killed"
    return answered


def _money(value) -> Decimal:
    return Decimal(str(value))  # PostgreSQL gives Decimals, SQLite the stored text


def test_a_server_killed_mid_load_loses_no_call_and_charges_none_twice(server):
    payers = _payers(server)

    answered = asyncio.run(_load_with_a_crash(server, payers["key"]))
    server.start()  # the same database, a fresh process
    after_restart = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {payers['key']}"},
        json={"model": "crash-mock", "messages": [{"role": "user", "content": "still charging?"}]},
        timeout=30,
    )
    reconcile = server.manage("reconcile_spend", check=False)

    assert after_restart.status_code == 200, after_restart.text
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert "Spend reconciles" in reconcile.stdout
    logs = server.query("SELECT request_id, cost FROM spend_spendlog WHERE key_hash = %s", payers["key_hash"])
    logged = Counter(request_id for request_id, _ in logs)
    completed = {call_id for call_id, done in answered if done} | {after_restart.headers["x-litellm-call-id"]}
    assert len(completed) > KILL_AFTER / 2
    assert completed <= set(logged), "a call answered in full is missing from the ledger"
    assert max(logged.values()) == 1
    assert len(logged) <= CALLS + 1
    total = sum((_money(cost) for _, cost in logs), Decimal(0))
    stored = {
        "key": server.query("SELECT spend FROM keys_virtualkey WHERE token_hash = %s", payers["key_hash"]),
        "user": server.query("SELECT spend FROM keys_internaluser WHERE user_id = %s", payers["user_id"]),
        "team": server.query("SELECT spend FROM keys_team WHERE team_id = %s", payers["team_id"]),
    }
    assert {kind: _money(rows[0][0]) for kind, rows in stored.items()} == {"key": total, "user": total, "team": total}
    assert total > 0


# -- a Celery worker killed mid-rollup ---------------------------------------------------------------------------------

ROLLUP_LOGS = 60_000


@pytest.fixture
def worker(server):
    """Starts Celery workers on a queue of this test's own; kills whichever are left at the end."""
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    processes: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        log_path = server.workdir / f"worker-{len(processes)}.log"
        secrets_audit.register_log_file(log_path, "Celery worker log")
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "gateway",
                    "worker",
                    "-Q",
                    queue,
                    "--pool",
                    "solo",
                    "-l",
                    "debug",
                ],
                cwd=ROOT,
                env=server.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed whole
            )
        processes.append(process)
        return process

    yield queue, start
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _enqueue_rollup(server: GatewayServer, queue: str) -> None:
    server.manage("shell", "-c", f"from spend.tasks import rollup_spend; rollup_spend.apply_async(queue='{queue}')")


def _rolled_up_to(server: GatewayServer) -> int:
    rows = server.query("SELECT last_log_id FROM spend_rollupstate")
    return rows[0][0] if rows else 0


def _rollup_in_progress(server: GatewayServer) -> bool:
    """A transaction of the worker's is rewriting daily rows and has written some (PostgreSQL's view of its own
    sessions: a transaction is given an id at its first write), so a kill now leaves them half-done."""
    return bool(
        server.query(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND xact_start IS NOT NULL AND backend_xid IS NOT NULL AND query ILIKE %s",
            "%spend_dailyspend%",
        )
    )


@pytest.mark.worker
@pytest.mark.skipif(
    not (os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL", "").startswith("postgres")),
    reason="needs REDIS_URL (a Redis broker) and PostgreSQL",
)
def test_a_worker_killed_mid_rollup_leaves_nothing_half_counted(server, worker):
    queue, start_worker = worker
    server.manage("generate_spend_data", "--logs", str(ROLLUP_LOGS), "--days", "90", "--no-rollup")
    first = start_worker()
    _enqueue_rollup(server, queue)
    wait_until(lambda: _rolled_up_to(server) > 0, "the first rollup", timeout=300, interval=0.1)
    # Late logs across all 90 days: the next rollup recomputes every day, long enough to be killed in the middle.
    server.manage("generate_spend_data", "--logs", str(ROLLUP_LOGS), "--days", "90", "--no-rollup", "--seed", "2")
    last_log_id = server.query("SELECT max(id) FROM spend_spendlog")[0][0]

    _enqueue_rollup(server, queue)
    wait_until(lambda: _rollup_in_progress(server), "the second rollup to start writing", timeout=120, interval=0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    interrupted_at = _rolled_up_to(server)
    start_worker()
    _enqueue_rollup(server, queue)  # the next scheduled run
    wait_until(lambda: _rolled_up_to(server) == last_log_id, "the rollup after the crash", timeout=300, interval=0.1)

    assert interrupted_at < last_log_id, "the rollup finished before the worker was killed"
    per_day_logs = server.query(
        "SELECT (start_time AT TIME ZONE %s)::date AS day, count(*), sum(cost) FROM spend_spendlog"
        " GROUP BY day ORDER BY day",
        server.env.get("TIME_ZONE") or "UTC",
    )
    per_day_rollups = server.query(
        "SELECT day, sum(requests), sum(cost) FROM spend_dailyspend GROUP BY day HAVING sum(requests) > 0 ORDER BY day"
    )
    assert per_day_rollups == per_day_logs
    assert sum(count for _, count, _ in per_day_rollups) == 2 * ROLLUP_LOGS

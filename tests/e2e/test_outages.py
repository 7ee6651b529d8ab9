"""Redis and PostgreSQL stop under load, against a live server with the openai SDK as the client.

Redis: every call is still served, on per-process limits with a warning, and the shared limits resume when Redis
is back. PostgreSQL: calls are refused with 503 (no call is served that cannot be charged), the calls already
under way are kept in the spool, service resumes by itself, and every call the upstream answered is charged
exactly once. Each test brings its own PostgreSQL or Redis server, so stopping it harms nothing else.
"""

import threading
import time
from collections import Counter
from decimal import Decimal

import openai
import pytest
import redis

from tests.e2e.server import GatewayServer, within_one_minute
from tests.e2e.services import PrivatePostgres, PrivateRedis
from tests.fakes.upstream import Behaviour, FakeUpstream
from tests.polling import wait_until

pytestmark = pytest.mark.live

CONFIG = """
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{up}/v1", api_key: sk-upstream-outage-secret-5}}
    model_info: {{id: openai-1}}
"""


class Load:
    """Threads calling the gateway with the openai SDK until stopped; each outcome is (status, error code)."""

    def __init__(self, server: GatewayServer, key: str, threads: int = 6):
        self.server = server
        self.key = key
        self.outcomes: list[tuple[int, str | None]] = []
        self.errors: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        client = openai.OpenAI(base_url=f"{self.server.url}/v1", api_key=self.key, max_retries=0, timeout=30)
        while not self._stopping.is_set():
            try:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
                outcome, error = (200, None), None
            except openai.APIStatusError as exc:
                error = exc.response.json()["error"]
                outcome = (exc.status_code, error["code"])
            with self._lock:
                self.outcomes.append(outcome)
                if error:
                    self.errors.append(error)
        client.close()

    def count(self, status: int, since: int = 0, code: str | None = None) -> int:
        with self._lock:
            return sum(
                1 for got, got_code in self.outcomes[since:] if got == status and (code is None or code == got_code)
            )

    def wait_until(self, predicate, what: str, timeout: float = 60) -> None:
        """Poll while the load runs; a timeout names the outcomes so far."""
        wait_until(predicate, lambda: f"{what}: {Counter(self.outcomes)}", timeout, interval=0.02)

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)


def generate_key(server: GatewayServer, **limits) -> str:
    response = server.api("POST", "/key/generate", json={"max_budget": 1000, **limits})
    assert response.status_code == 200, response.text
    return response.json()["key"]


def logged(server: GatewayServer) -> tuple[int, int, Decimal]:
    (count, distinct), *_ = server.query("SELECT count(*), count(DISTINCT request_id) FROM spend_spendlog")
    costs = server.query("SELECT cost FROM spend_spendlog")
    return count, distinct, sum((Decimal(str(cost)) for (cost,) in costs), Decimal(0))


def test_postgresql_stopping_under_load_refuses_new_calls_and_charges_every_answered_one(tmp_path, monkeypatch):
    with PrivatePostgres() as postgres, FakeUpstream(prompt_tokens=12, completion_tokens=7) as up:
        # Calls take a little while upstream, so some are always under way when the database goes.
        up.behaviour = Behaviour(first_byte_delay=0.05)
        monkeypatch.setenv("DATABASE_URL", postgres.url)
        with GatewayServer(tmp_path, CONFIG.format(up=up.url)) as server:
            key = generate_key(server, rpm_limit=100_000)
            with Load(server, key) as load:
                load.wait_until(lambda: load.count(200) >= 30, "calls before the outage")
                postgres.stop()
                load.wait_until(lambda: load.count(503) >= 20, "calls refused during the outage")
                postgres.start()
                back = len(load.outcomes)
                load.wait_until(lambda: load.count(200, since=back) >= 30, "service to resume by itself")

            # The spool is written before service resumes; the ledger is whole once every call has returned.
            assert not list((tmp_path / "spool").glob("*.jsonl"))
            reconcile = server.manage("reconcile_spend", check=False)
            ((spend,),) = server.query("SELECT spend FROM keys_virtualkey")
            count, distinct, total = logged(server)
            log = server.log()

    statuses = Counter(status for status, _ in load.outcomes)
    assert set(statuses) == {200, 503}, statuses
    assert {error["code"] for error in load.errors} == {"ledger_unavailable"}
    assert all(error["message"] and error["type"] for error in load.errors)
    # Every call the upstream answered was served and is charged exactly once; no refused call reached it.
    assert count == distinct == statuses[200] == len(up.requests)
    assert Decimal(str(spend)) == total > 0
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    # Calls under way when the database went were answered from the spool, and the warning says so.
    assert "charges spooled" in log and "calls are served again" in log


def test_redis_stopping_under_load_falls_back_to_process_limits_and_shared_limits_resume(tmp_path):
    with PrivateRedis() as redis_server, FakeUpstream() as up:
        env = {"REDIS_URL": redis_server.url}
        with GatewayServer(tmp_path, CONFIG.format(up=up.url), workers=2, env=env) as server:
            key = generate_key(server, rpm_limit=100_000, tpm_limit=1_000_000_000)
            with Load(server, key) as load:
                load.wait_until(lambda: load.count(200) >= 30, "calls before the outage")
                redis_server.stop()
                down = len(load.outcomes)
                load.wait_until(lambda: load.count(200, since=down) >= 60, "calls during the outage")
                redis_server.start()
                restarted = time.monotonic()
                load.wait_until(
                    lambda: time.monotonic() - restarted > 2 and redis_keys(redis_server.url) > 0,
                    "the counters to be back in Redis",
                )
            statuses = Counter(status for status, _ in load.outcomes)
            log = server.log()

            # A process whose last call still found a dead connection counts alone for up to a second more: a burst
            # with a fresh key each time, until the limit is held in Redis again (two processes counting alone would
            # admit up to 20).
            bursts = []

            def limit_is_shared() -> bool:
                bursts.append(rpm_burst(server, generate_key(server, rpm_limit=10), calls=30))
                return bursts[-1] == {200: 10, 429: 20}

            wait_until(limit_is_shared, lambda: f"an rpm limit of 10 held by both processes together: {bursts}")

    assert statuses == {200: len(load.outcomes)}, load.errors[:3]
    assert "budgets by the database, rate limits per process until it is back" in log


def redis_keys(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return client.dbsize()
    finally:
        client.close()


def rpm_burst(server: GatewayServer, key: str, calls: int) -> Counter:
    """`calls` calls inside one rate-limit minute, each on a fresh connection so both processes answer some."""
    within_one_minute()
    statuses = Counter()
    for _ in range(calls):
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30) as client:
            try:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
                statuses[200] += 1
            except openai.RateLimitError:
                statuses[429] += 1
    return statuses

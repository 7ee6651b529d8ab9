"""Repeated failed authentication from one address is slowed down (429 with retry-after), without the database."""

import asyncio
import os
import secrets
import time

import httpx
import pytest
import redis

from keys import throttle as auth_throttle
from keys.errors import RateLimited
from keys.throttle import AuthFailureCounter, AuthThrottled
from tests.e2e.server import GatewayServer
from tests.polling import wait_until_async

REDIS_URL = os.environ.get("REDIS_URL", "")
BACKENDS = ["process", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL"))]


def fresh_address() -> str:
    return f"198.51.100.{secrets.randbelow(250)}-{secrets.token_hex(4)}"


@pytest.fixture
async def counters():
    """Makes counters, and closes their connections on the test's own event loop."""
    made = []

    def make(backend: str, limit: int = 3, window: float = 60.0, redis_url: str | None = None):
        url = redis_url if redis_url is not None else (REDIS_URL if backend == "redis" else "")
        made.append(AuthFailureCounter(limit=limit, window=window, redis_url=url))
        return made[-1]

    yield make
    for made_counter in made:
        await made_counter.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_address_is_refused_after_the_limit_and_others_are_not(counters, backend):
    failures, address, other = counters(backend), fresh_address(), fresh_address()
    for _ in range(2):
        failures.record_failure(address)
    await failures.flush()
    assert await failures.retry_after(address) == 0

    failures.record_failure(address)
    await failures.flush()

    assert 55 <= await failures.retry_after(address) <= 60
    assert await failures.retry_after(other) == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_window_ends(counters, backend):
    window = 1.0
    failures, address = counters(backend, limit=1, window=window), fresh_address()
    started = time.monotonic()
    failures.record_failure(address)
    await failures.flush()
    assert await failures.retry_after(address) >= 1

    async def clean():
        return await failures.retry_after(address) == 0

    await wait_until_async(clean, "the address may try again after the window")

    assert time.monotonic() - started >= window  # refused for the whole window, not less


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
async def test_every_process_sees_the_failures_counted_in_redis(counters):
    address = fresh_address()
    first, second = counters("redis"), counters("redis")
    for _ in range(3):
        first.record_failure(address)
    await first.flush()

    assert await second.retry_after(address) > 0
    assert await second.retry_after(address) > 0  # refused each time: no clean answer stands for it here
    assert second.retry_after_sync(address) > 0


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
async def test_a_clean_address_is_asked_about_again_beside_its_calls_after_a_moment(counters, monkeypatch):
    address = fresh_address()
    checking, failing = counters("redis"), counters("redis")
    assert await checking.retry_after(address) == 0
    reads = []
    make_client = checking._redis_async
    monkeypatch.setattr(checking, "_redis_async", lambda: reads.append(1) or make_client())
    for _ in range(3):
        failing.record_failure(address)
    await failing.flush()

    within_the_moment = await checking.retry_after(address)  # other processes' failures show a moment later
    reads_within_the_moment = len(reads)
    checking._clean_until[address] -= auth_throttle._SHARED_CLEAN_SECONDS
    after_it = await checking.retry_after(address)  # goes through, Redis asked beside it
    asked_beside_it = len(checking._pending)
    await checking.flush()
    reads_by_then = len(reads)
    the_call_after = await checking.retry_after(address)

    assert (within_the_moment, reads_within_the_moment) == (0, 0)
    assert (after_it, asked_beside_it, reads_by_then) == (0, 1, 1)
    assert the_call_after > 0 and len(reads) == 2


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
async def test_a_failure_here_makes_the_next_check_ask_redis_at_once(counters):
    address = fresh_address()
    checking, failing = counters("redis"), counters("redis")
    assert await checking.retry_after(address) == 0
    for _ in range(2):
        failing.record_failure(address)
    await failing.flush()

    checking.record_failure(address)  # the third failure, counted in Redis by both
    await checking.flush()

    assert await checking.retry_after(address) > 0


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
def test_synchronous_code_counts_in_redis_too():
    address = fresh_address()
    first, second = AuthFailureCounter(3, 60, REDIS_URL), AuthFailureCounter(3, 60, REDIS_URL)
    for _ in range(3):
        first.record_failure(address)

    assert second.retry_after_sync(address) > 0
    first._sync_client.close()
    second._sync_client.close()


async def test_lost_redis_falls_back_to_this_process(counters, caplog):
    failures, address = counters("redis", limit=2, redis_url="redis://127.0.0.1:1/0"), fresh_address()
    assert await failures.retry_after(address) == 0
    failures.record_failure(address)
    failures.record_failure(address)
    await failures.flush()

    assert await failures.retry_after(address) > 0
    assert "counting in this process" in caplog.text


async def test_a_lost_redis_is_warned_about_once_and_tried_again_a_second_later(counters, caplog, monkeypatch):
    failures = counters("redis", limit=100, redis_url="redis://127.0.0.1:1/0")
    connects = []
    make_client = failures._redis_async
    monkeypatch.setattr(failures, "_redis_async", lambda: connects.append(1) or make_client())

    for _ in range(5):
        assert await failures.retry_after(fresh_address()) == 0
    tried_during_the_outage = len(connects)
    failures._redis_down_until -= auth_throttle._REDIS_RETRY_SECONDS  # a second later
    await failures.retry_after(fresh_address())

    assert tried_during_the_outage == 1
    assert len(connects) == 2
    assert caplog.text.count("counting in this process") == 1


def test_the_in_process_table_stays_bounded(monkeypatch):
    monkeypatch.setattr(auth_throttle, "_MAX_TRACKED_ADDRESSES", 100)
    failures = AuthFailureCounter(limit=5, window=0.0001)
    for index in range(1000):
        failures.record_failure(f"10.0.{index // 256}.{index % 256}")

    assert len(failures._local) <= 100


@pytest.fixture
def throttle(settings):
    settings.TOLLGATE_AUTH_FAILURE_LIMIT = 2
    settings.TOLLGATE_AUTH_FAILURE_WINDOW = 60
    auth_throttle.reset_auth_failures()
    yield
    auth_throttle.reset_auth_failures()


@pytest.fixture
async def async_throttle(throttle):
    yield
    await auth_throttle.auth_failures().close()


async def test_check_raises_a_rate_limit_the_proxy_maps_to_429(async_throttle):
    address = fresh_address()
    await auth_throttle.check_auth_throttle(address)
    auth_throttle.record_auth_failure(address)
    auth_throttle.record_auth_failure(address)
    await auth_throttle.auth_failures().flush()

    with pytest.raises(AuthThrottled) as refused:
        await auth_throttle.check_auth_throttle(address)

    assert isinstance(refused.value, RateLimited)
    assert refused.value.code == "too_many_failed_auth"
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    with pytest.raises(AuthThrottled):
        auth_throttle.check_auth_throttle_sync(address)


async def test_a_limit_of_zero_turns_the_throttle_off(async_throttle, settings):
    settings.TOLLGATE_AUTH_FAILURE_LIMIT = 0
    address = fresh_address()
    for _ in range(10):
        auth_throttle.record_auth_failure(address)

    await auth_throttle.check_auth_throttle(address)


@pytest.mark.django_db
def test_counting_and_checking_never_query_the_database(throttle, django_assert_num_queries):
    address = fresh_address()

    async def fail_then_check():
        for _ in range(5):
            auth_throttle.record_auth_failure(address)
        try:
            await auth_throttle.check_auth_throttle(address)
        finally:
            await auth_throttle.auth_failures().close()

    with django_assert_num_queries(0), pytest.raises(AuthThrottled):
        asyncio.run(fail_then_check())


@pytest.mark.parametrize(
    ("trust", "forwarded", "expected"),
    [
        (False, "203.0.113.9", "192.0.2.1"),
        (True, "203.0.113.9", "203.0.113.9"),
        # Only the entry our own proxy appended counts: the client chooses the others.
        (True, "10.9.9.9, 203.0.113.9", "203.0.113.9"),
        (True, "", "192.0.2.1"),
    ],
)
def test_client_ip(rf, settings, trust, forwarded, expected):
    settings.TOLLGATE_TRUST_X_FORWARDED_FOR = trust
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = rf.get("/v1/models", REMOTE_ADDR="192.0.2.1", **headers)

    assert auth_throttle.client_ip(request) == expected


def teardown_module():
    if REDIS_URL:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter("tollgate:authfail:198.51.100.*"):
            client.delete(key)
        client.close()


@pytest.mark.live
def test_a_caller_cannot_pick_its_address_with_x_forwarded_for(tmp_path):
    # Through the real server: uvicorn, left to its defaults, would trust the header from a caller on 127.0.0.1.
    config = "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\n"
    env = {"TOLLGATE_AUTH_FAILURE_LIMIT": "3", "TOLLGATE_TRUST_X_FORWARDED_FOR": "0"}
    with GatewayServer(tmp_path, config, env=env) as server:

        def call(key: str, forwarded_for: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded_for}
            return httpx.get(f"{server.url}/v1/models", headers=headers, timeout=10)

        wrong = [call(f"sk-wrong-{n}", f"203.0.113.{n}").status_code for n in range(3)]
        throttled = call(server.master_key, "203.0.113.99")

    assert wrong == [401, 401, 401]
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "too_many_failed_auth"

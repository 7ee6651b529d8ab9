"""Fixtures for the keys tests: fresh caches and counters per test, the API client, Redis with its own prefix."""

import contextlib
import json
import uuid
from concurrent.futures import Future
from decimal import Decimal

import pytest
import redis

from keys.cache import key_cache
from keys.limits import local_counters
from keys.limits_redis import redis_counters
from keys.throttle import close_auth_failures

REDIS_URL = "redis://127.0.0.1:6379/0"


def _inline_submit(function, *args) -> Future:
    """Run the cache's database reads on the test's thread: its queries are counted and see the test's data."""
    future = Future()
    try:
        future.set_result(function(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


async def _seeds_as_held(limits):
    return list(limits)


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch, settings, request):
    settings.REDIS_URL = ""
    if request.node.get_closest_marker("django_db") is None:
        # Limits made by the factories, with no rows behind them: Redis's views are seeded from what they hold.
        monkeypatch.setattr("keys.limits_redis.seeds", _seeds_as_held)
    # Async tests read the database on the loop's thread, inside the test's transaction, where queries are counted.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    key_cache().clear()
    monkeypatch.setattr(key_cache(), "submit", _inline_submit)
    local_counters().clear()
    yield
    key_cache().clear()
    local_counters().clear()


@contextlib.asynccontextmanager
async def _redis_limits(settings):
    """Limits counted in the local Redis, under a prefix of this test's own; removed afterwards."""
    prefix = f"tollgate-test:{uuid.uuid4().hex}:"
    settings.REDIS_URL = REDIS_URL
    settings.TOLLGATE_LIMITS_PREFIX = prefix
    counters = redis_counters()
    try:
        yield counters
    finally:
        await counters.close()
        await close_auth_failures()  # the failed-auth throttle's connections, opened on this loop by the calls
        client = redis.Redis.from_url(REDIS_URL)
        stale = list(client.scan_iter(match=f"{prefix}*"))
        if stale:
            client.delete(*stale)
        client.close()


@pytest.fixture
async def redis_limits(settings):
    async with _redis_limits(settings) as counters:
        yield counters


@pytest.fixture(params=["local", "redis"])
async def backend(request, settings):
    """Each limits test runs against this process's counters and against Redis."""
    if request.param == "local":
        yield "local"
        return
    async with _redis_limits(settings):
        yield "redis"


class Api:
    """The management API through Django's test client, as curl would send it."""

    def __init__(self, client, headers):
        self.client = client
        self.headers = headers

    def post(self, path: str, body, **headers):
        text = body if isinstance(body, str) else json.dumps(body)
        response = self.client.post(path, text, content_type="application/json", **{**self.headers, **headers})
        return response.status_code, _decoded(response)

    def get(self, path: str, **headers):
        response = self.client.get(path, **{**self.headers, **headers})
        return response.status_code, _decoded(response)


def _decoded(response):
    return json.loads(response.content, parse_float=Decimal) if response.content else None


@pytest.fixture
def api(client, master_headers, settings):
    settings.ROOT_URLCONF = "tests.keys.urls"
    return Api(client, master_headers)

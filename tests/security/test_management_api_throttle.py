"""The management API's master key is guarded by the proxy's failed-auth throttle, with the same counts.

Requests go through the ASGI application as uvicorn serves it, so the proxy's paths take the proxy's handler and the
management API's take Django's, each in its own way (async on the event loop, sync in a thread).
"""

import os
import secrets

import httpx
import pytest

from gateway.asgi import application
from keys import throttle as auth_throttle
from tests.e2e.server import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 3
REDIS_URL = os.environ.get("REDIS_URL", "")
BACKENDS = ["process", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL"))]


@pytest.fixture(params=BACKENDS)
async def throttle(request, settings):
    """The throttle counting in this process, or in Redis as every server process would."""
    settings.TOLLGATE_AUTH_FAILURE_LIMIT = LIMIT
    settings.TOLLGATE_AUTH_FAILURE_WINDOW = 60
    settings.REDIS_URL = REDIS_URL if request.param == "redis" else ""
    auth_throttle.reset_auth_failures()
    yield
    await auth_throttle.auth_failures().close()
    auth_throttle.reset_auth_failures()


def fresh_address() -> str:
    return f"198.51.100.{secrets.randbelow(250)}"


async def send(address: str, method: str, path: str, key: str | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.request(method, path, headers=headers)
    await auth_throttle.auth_failures().flush()
    return response


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.json()["error"]["code"] == "too_many_failed_auth"
    assert 1 <= int(response.headers["retry-after"]) <= 60


@pytest.mark.parametrize("wrong_key", ["sk-not-the-master-key", None])
async def test_wrong_master_keys_get_the_address_throttled(throttle, wrong_key):
    address, other = fresh_address(), fresh_address()
    refused = [(await send(address, "GET", "/key/info", wrong_key)).status_code for _ in range(LIMIT)]

    right_key_from_there = await send(address, "GET", "/key/list", MASTER_KEY)
    right_key_elsewhere = await send(other, "GET", "/key/list", MASTER_KEY)

    assert refused == [401] * LIMIT
    assert_throttled(right_key_from_there)
    assert right_key_elsewhere.status_code == 200


async def test_failures_on_the_proxy_throttle_the_management_api(throttle):
    address = fresh_address()
    for _ in range(LIMIT):
        assert (await send(address, "GET", "/v1/models", "sk-guess")).status_code == 401

    assert_throttled(await send(address, "POST", "/key/generate", MASTER_KEY))


async def test_failures_on_the_management_api_throttle_the_proxy(throttle):
    address = fresh_address()
    for _ in range(LIMIT):
        assert (await send(address, "POST", "/team/new", "sk-guess")).status_code == 401

    assert_throttled(await send(address, "GET", "/v1/models", MASTER_KEY))


async def test_the_master_key_is_not_counted_as_a_failure(throttle):
    address = fresh_address()
    answers = [(await send(address, "GET", "/key/list", MASTER_KEY)).status_code for _ in range(LIMIT + 2)]

    assert answers == [200] * (LIMIT + 2)

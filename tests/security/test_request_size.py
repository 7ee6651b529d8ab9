"""A body over TOLLGATE_MAX_REQUEST_BYTES gets 413 in the OpenAI error shape on every endpoint.

Requests go through the ASGI application as uvicorn serves it: the proxy's paths take the proxy's handler, which has
no middleware, and the management API's take Django's.
"""

import httpx
import pytest

from gateway.asgi import application
from keys.models import VirtualKey
from tests.e2e.server import MASTER_KEY

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 1000
AUTH = {"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"}

MANAGEMENT = [
    ("POST", "/key/generate"),
    ("POST", "/key/update"),
    ("GET", "/key/info"),
    ("POST", "/team/new"),
    ("POST", "/user/new"),
    ("GET", "/spend/logs"),  # reads no body: refused all the same
    ("POST", "/spend/calculate"),
    ("POST", "/model/new"),
    ("POST", "/admin/login/"),
]
PROXY = [
    "/chat/completions",
    "/v1/chat/completions",
    "/completions",
    "/v1/completions",
    "/embeddings",
    "/v1/embeddings",
    "/openai/deployments/demo/chat/completions",
]


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.TOLLGATE_MAX_REQUEST_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT


def body_of(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    head = b'{"metadata": {"pad": "'
    return head + b"x" * (size - len(head) - 3) + b'"}}'


async def send(method: str, path: str, body, headers=AUTH) -> httpx.Response:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, content=body, headers=headers)


async def chunked(body: bytes):
    """The body in two parts, without a Content-Length: the server learns its size only by reading it."""
    yield body[: len(body) // 2]
    yield body[len(body) // 2 :]


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": f"Request body is larger than the limit of {LIMIT} bytes.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }


@pytest.mark.parametrize(("method", "path"), MANAGEMENT)
async def test_management_api_refuses_a_body_one_byte_over_the_limit(method, path):
    assert_too_large(await send(method, path, body_of(LIMIT + 1)))  # was an HTML 400


@pytest.mark.parametrize("path", ["/key/generate", "/spend/calculate", "/model/new"])
async def test_management_api_refuses_a_chunked_body_over_the_limit(path):
    response = await send("POST", path, chunked(body_of(LIMIT + 1)))

    assert_too_large(response)


async def test_a_body_at_the_limit_is_served():
    response = await send("POST", "/key/generate", body_of(LIMIT))

    assert response.status_code == 200, response.text[:300]
    assert await VirtualKey.objects.acount() == 1


async def test_nothing_is_stored_from_a_refused_body():
    await send("POST", "/key/generate", chunked(body_of(LIMIT + 1)))

    assert await VirtualKey.objects.acount() == 0


@pytest.mark.parametrize("path", PROXY)
async def test_proxy_refuses_a_body_one_byte_over_the_limit(path):
    assert_too_large(await send("POST", path, body_of(LIMIT + 1)))  # was a 500 internal_error


async def test_proxy_refuses_a_chunked_body_over_the_limit():
    assert_too_large(await send("POST", "/v1/chat/completions", chunked(body_of(LIMIT + 1))))


async def test_a_chunked_body_under_the_limit_is_read_as_sent():
    """Without a Content-Length DRF reads a body as empty: a restricted key asked for chunked came out unrestricted."""
    response = await send("POST", "/key/generate", chunked(b'{"models": ["gpt-4o"], "key_alias": "chunked"}'))

    assert response.status_code == 200, response.text[:300]
    key = await VirtualKey.objects.aget()
    assert (key.models, key.key_alias) == (["gpt-4o"], "chunked")

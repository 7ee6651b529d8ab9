"""The pool every upstream call goes through, against the fake upstream on loopback."""

import asyncio

import aiohttp
import httpx
import orjson
import pytest

from gateway.providers.base import UpstreamRequest
from gateway.proxy.dispatch import is_timeout
from gateway.proxy.upstream import close_upstream_pool, send_upstream, upstream_pool
from tests.fakes.upstream import Behaviour, FakeUpstream

BODY = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
NOTHING_LISTENS = "http://127.0.0.1:9/v1/chat/completions"


@pytest.fixture
async def upstream():
    async with FakeUpstream() as up:
        yield up
    await close_upstream_pool()


def call(url: str, headers: dict | None = None) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {"content-type": "application/json", **(headers or {})}, BODY)


async def test_a_providers_request_goes_out_with_its_url_headers_and_body(upstream):
    request = call(f"{upstream.url}/v1/chat/completions?api-version=1", {"authorization": "Bearer sk-up"})

    response = await send_upstream(request, httpx.Timeout(30.0))

    assert response.status_code == 200 and response.json()["object"] == "chat.completion" and response.is_closed
    [seen] = upstream.requests
    assert (seen.method, seen.path, seen.query, seen.body) == (
        "POST",
        "/v1/chat/completions",
        {"api-version": "1"},
        BODY,
    )
    assert seen.headers["authorization"] == "Bearer sk-up"
    assert seen.headers["content-length"] == str(len(BODY))
    assert (seen.headers["accept-encoding"], seen.headers["user-agent"]) == ("gzip, deflate", "tollgate")


async def test_a_compressed_answer_is_read_decoded(upstream):
    upstream.script(Behaviour(gzip=True))

    response = await send_upstream(call(f"{upstream.url}/v1/chat/completions"), httpx.Timeout(30.0))

    assert response.headers["content-encoding"] == "gzip" and response.json()["object"] == "chat.completion"


async def test_a_streamed_answer_is_left_unread_for_the_relay(upstream):
    response = await send_upstream(call(f"{upstream.url}/v1/chat/completions"), httpx.Timeout(30.0), stream=True)

    assert not response.is_closed
    assert orjson.loads(await response.aread())["object"] == "chat.completion"
    await response.aclose()


async def test_an_upstream_that_does_not_answer_in_the_read_timeout_is_an_httpx_timeout(upstream):
    upstream.script(Behaviour(first_byte_delay=2.0))

    with pytest.raises(httpx.TransportError) as raised:
        await send_upstream(call(f"{upstream.url}/v1/chat/completions"), httpx.Timeout(0.2))

    assert is_timeout(raised.value)


async def test_an_upstream_refusing_connections_is_an_httpx_error_caused_by_the_refusal():
    try:
        with pytest.raises(httpx.TransportError) as raised:
            await send_upstream(call(NOTHING_LISTENS), httpx.Timeout(5.0))
    finally:
        await close_upstream_pool()

    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectorError) and not is_timeout(raised.value)


async def test_a_cookie_one_upstream_answer_sets_never_rides_along_on_the_next_call(upstream):
    # To an upstream named by host name: aiohttp's default jar would keep its cookie.
    url = upstream.url.replace("127.0.0.1", "localhost") + "/v1/chat/completions"
    upstream.script(Behaviour(headers=(("Set-Cookie", "__cf_bm=caller-one; Path=/"),)))

    first = await send_upstream(call(url), httpx.Timeout(30.0))
    await send_upstream(call(url), httpx.Timeout(30.0))

    assert first.headers["set-cookie"] == "__cf_bm=caller-one; Path=/"  # still there, for whoever reads it
    assert [seen.headers.get("cookie") for seen in upstream.requests] == [None, None]


async def test_each_event_loop_has_one_pool_made_again_once_closed():
    first = upstream_pool()
    assert upstream_pool() is first

    await close_upstream_pool()

    assert upstream_pool() is not first
    other_loop = await asyncio.to_thread(lambda: asyncio.run(_pool_of_a_new_loop()))
    assert other_loop is not upstream_pool()
    await close_upstream_pool()


async def _pool_of_a_new_loop():
    pool = upstream_pool()
    await close_upstream_pool()
    return pool

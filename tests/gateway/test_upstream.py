"""The pool every upstream call goes through."""

import asyncio
import json

import httpx
import pytest

import gateway.proxy.upstream
from gateway.providers.base import UpstreamRequest
from gateway.proxy.upstream import close_upstream_transport, send_upstream, upstream_transport

CALL = UpstreamRequest(
    "POST", "http://127.0.0.1:9/v1/chat/completions", {"authorization": "Bearer sk-up"}, b'{"model":"m"}'
)


@pytest.fixture
def upstream(monkeypatch):
    """A MockTransport as the loop's shared transport; the requests it got, and the answer it gives."""
    sent: list[httpx.Request] = []
    answer = {"headers": {}, "json": {"ok": True}}

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        body = httpx.ByteStream(json.dumps(answer["json"]).encode())  # a body still to read, as on the wire
        return httpx.Response(200, headers=answer["headers"], stream=body)

    transport = httpx.MockTransport(handler)
    monkeypatch.setattr(gateway.proxy.upstream, "upstream_transport", lambda: transport)
    return sent, answer


async def test_a_providers_request_goes_out_with_its_url_headers_body_and_timeout(upstream):
    sent, _ = upstream

    answer = await send_upstream(CALL, httpx.Timeout(30.0, connect=5.0))

    assert answer.json() == {"ok": True} and answer.is_closed
    [request] = sent
    assert (request.method, str(request.url), request.content) == ("POST", CALL.url, b'{"model":"m"}')
    assert request.headers["authorization"] == "Bearer sk-up"
    assert request.headers["content-length"] == "13"
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert request.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}


async def test_a_streamed_answer_is_left_unread_for_the_relay(upstream):
    answer = await send_upstream(CALL, httpx.Timeout(30.0), stream=True)

    assert not answer.is_closed
    assert await answer.aread() == b'{"ok": true}'
    await answer.aclose()


async def test_a_cookie_one_upstream_answer_sets_never_rides_along_on_the_next_call(upstream):
    sent, answer = upstream
    answer["headers"] = {"set-cookie": "__cf_bm=caller-one; Path=/; HttpOnly"}

    first = await send_upstream(CALL, httpx.Timeout(30.0))
    await send_upstream(CALL, httpx.Timeout(30.0))

    assert first.cookies["__cf_bm"] == "caller-one"  # the answer still carries it, for whoever reads it
    assert [request.headers.get("cookie") for request in sent] == [None, None]


async def test_each_event_loop_has_one_pool_made_again_once_closed():
    first = upstream_transport()
    assert upstream_transport() is first

    await close_upstream_transport()

    assert upstream_transport() is not first
    other_loop = await asyncio.to_thread(lambda: asyncio.run(_transport_of_a_new_loop()))
    assert other_loop is not upstream_transport()
    await close_upstream_transport()


async def _transport_of_a_new_loop():
    transport = upstream_transport()
    await close_upstream_transport()
    return transport

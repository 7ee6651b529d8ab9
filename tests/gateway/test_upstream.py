"""The pool every upstream call goes through."""

import asyncio
import contextlib

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
    """A MockTransport as the loop's shared transport, answering {"ok": true}; the requests it got."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b'{"ok": true}'))  # a body still to read, as on the wire

    transport = httpx.MockTransport(handler)
    monkeypatch.setattr(gateway.proxy.upstream, "upstream_transport", lambda: transport)
    return sent


async def test_a_providers_request_goes_out_with_its_url_headers_body_and_timeout(upstream):
    sent = upstream

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


async def test_a_cookie_one_upstream_answer_sets_never_rides_along_on_the_next_call():
    # Through the real pool, to an upstream named by host name: aiohttp's default jar would keep its cookie.
    cookies_sent: list[str | None] = []

    async def upstream_setting_a_cookie(reader, writer):
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().lower().split("\r\n")
                fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
                await reader.readexactly(int(fields.get("content-length", 0)))
                cookies_sent.append(fields.get("cookie"))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nSet-Cookie: __cf_bm=caller-one; Path=/\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                )
        writer.close()

    server = await asyncio.start_server(upstream_setting_a_cookie, "localhost", 0)
    port = server.sockets[0].getsockname()[1]
    call = UpstreamRequest("POST", f"http://localhost:{port}/v1/chat/completions", {}, b"{}")
    try:
        first = await send_upstream(call, httpx.Timeout(30.0))
        await send_upstream(call, httpx.Timeout(30.0))
    finally:
        await close_upstream_transport()
        server.close()

    assert first.cookies["__cf_bm"] == "caller-one"  # the answer still carries it, for whoever reads it
    assert cookies_sent == [None, None]


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
